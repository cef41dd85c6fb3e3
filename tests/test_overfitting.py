"""Selection-bias statistics: DSR against the paper's worked example, PSR/PBO against
independent first-principles references, and a sweep of pure-noise strategies."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sweep_support import SHORT

import volbacktest as vb
from volbacktest.engine.calculators import overfitting as of
from volbacktest.engine.sweep.store import ResultsStore

GOLDEN = Path(__file__).parent / "golden" / "dsr_bailey2014"


def test_dsr_reproduces_the_papers_numerical_example():
    row = pd.read_csv(GOLDEN / "example.csv").iloc[0]
    sr0 = of.expected_max_sharpe(row["n_trials"], row["sr_variance_per_day"])
    assert sr0 == pytest.approx(row["sr0_per_day"], abs=5e-5)
    dsr = of.deflated_sharpe(
        row["sharpe_per_day"],
        int(row["n_obs"]),
        n_trials=row["n_trials"],
        sr_variance=row["sr_variance_per_day"],
        skew=row["skew"],
        kurtosis=row["kurtosis"],
    )
    assert dsr == pytest.approx(row["dsr"], abs=5e-5)


def test_psr_is_the_normal_tail_of_lo_standard_error_for_gaussian_returns():
    """With skew 0 and kurtosis 3 the PSR is Phi((SR - SR*) / se) with Lo's (2002) standard
    error se = sqrt((1 + SR^2 / 2) / (T - 1)); PSR(SR) = 0.5; it falls with skew < 0."""
    sr, t = 0.08, 750
    se = math.sqrt((1 + sr**2 / 2) / (t - 1))
    assert of.probabilistic_sharpe(sr, 0.02, t) == pytest.approx(stats.norm.cdf(0.06 / se))
    assert of.probabilistic_sharpe(sr, sr, t) == pytest.approx(0.5)
    assert of.probabilistic_sharpe(sr, 0.0, t, skew=-2, kurtosis=9) < of.probabilistic_sharpe(
        sr, 0.0, t
    )


def test_moments_from_block_sums_match_numpy_and_scipy():
    rng = np.random.default_rng(3)
    r = rng.standard_t(4, size=(1003, 5)) * 0.01 + 0.0004
    m = of.moments_from_sums(of.block_sums(r, 16), len(r), 16)
    np.testing.assert_allclose(m.sharpe, r.mean(axis=0) / r.std(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(m.skew, stats.skew(r, axis=0), rtol=1e-8)
    np.testing.assert_allclose(m.kurtosis, stats.kurtosis(r, axis=0, fisher=False), rtol=1e-8)


def test_mean_pairwise_correlation_from_the_unit_sum_equals_corrcoef():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(400, 1))
    r = base * rng.uniform(0.2, 1.0, 12) + rng.normal(size=(400, 12))
    c = np.corrcoef(r, rowvar=False)
    want = c[~np.eye(12, dtype=bool)].mean()
    got = of.mean_pairwise_correlation(of.unit_deviations(r).sum(axis=1), 12)
    assert got == pytest.approx(want, rel=1e-12)
    assert of.effective_trials(100, 1.0) == 1.0 and of.effective_trials(100, 0.0) == 100
    assert of.effective_trials(100, 0.25) == pytest.approx(0.25 + 0.75 * 100)


def _pbo_reference(r: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """CSCV as the paper's steps read, on the raw matrix: every half of the S blocks as
    in-sample, the in-sample best by Sharpe, its out-of-sample rank by scipy's rankdata."""
    blocks = np.array_split(np.arange(len(r)), s)
    lam = []
    for ins in itertools.combinations(range(s), s // 2):
        is_rows = np.concatenate([blocks[i] for i in ins])
        oos_rows = np.concatenate([blocks[i] for i in range(s) if i not in ins])

        def sr(rows):
            x = r[rows]
            return x.mean(axis=0) / x.std(axis=0)

        best = int(np.argmax(sr(is_rows)))
        rank = stats.rankdata(sr(oos_rows))[best]
        w = rank / (r.shape[1] + 1)
        lam.append(math.log(w / (1 - w)))
    lam = np.array(lam)
    return float(np.mean(lam <= 0)), lam


@pytest.mark.parametrize("s", [2, 6, 10])
def test_pbo_equals_a_direct_cscv_on_the_return_matrix(s):
    rng = np.random.default_rng(s)
    r = rng.normal(0.0, 0.01, size=(601, 23)) + rng.normal(0, 0.0004, size=23)
    got = of.pbo(r, s)
    want, lam = _pbo_reference(r, s)
    assert got.n_splits == math.comb(s, s // 2) == len(lam)
    assert got.pbo == pytest.approx(want)
    np.testing.assert_allclose(np.sort(got.logits), np.sort(lam), rtol=1e-12)


def test_pbo_by_hand_two_blocks_three_trials():
    """S = 2: two splits. Trial a is best in the first half and worst in the second, c the
    reverse, b in between: each in-sample winner ranks last of 3 out of sample, relative
    rank 1/4, logit ln(1/3) in both splits: PBO = 1. Flipping b's halves makes b the
    consistent middle: still 1. A trial best in both halves gives logit ln(3): PBO = 0."""
    h = np.array([1.0, -1.0])  # a half with mean 0, spread 1: Sharpe = mean / 1
    a = np.concatenate([0.5 + h, -0.5 + h])
    b = np.concatenate([0.0 + h, 0.0 + h])
    c = np.concatenate([-0.5 + h, 0.5 + h])
    res = of.pbo(np.column_stack([a, b, c]), 2)
    assert res.pbo == 1.0
    np.testing.assert_allclose(res.logits, [math.log(1 / 3)] * 2)
    d = np.concatenate([0.9 + h, 0.9 + h])
    res = of.pbo(np.column_stack([a, b, c, d]), 2)
    assert res.pbo == 0.0
    np.testing.assert_allclose(res.logits, [math.log(4)] * 2)  # rank 4 of 4: w = 4/5


def test_pbo_separates_noise_from_a_planted_edge():
    rng = np.random.default_rng(11)
    noise = rng.normal(0.0, 0.01, size=(1000, 100))
    assert 0.3 < of.pbo(noise).pbo < 0.7  # no skill: the in-sample best is a coin flip
    noise[:, 7] += 0.002  # one trial with a true per-day Sharpe of 0.2
    assert of.pbo(noise).pbo < 0.1


class CoinParams(vb.StrategyParams):
    seed: int = 0

    def assets(self):
        return ("xiv", "vxx")

    def inputs(self):
        return ("vix",)


@vb.strategy(params=CoinParams)
def coin(inputs, p):
    """Each day XIV or VXX by a coin toss of its own seed: no skill at all."""
    rng = np.random.default_rng(p.seed)
    pick = rng.integers(0, 2, size=len(inputs["vix"]))
    return np.column_stack([pick == 0, pick == 1]).astype(float)


def _spec(out, strategy: str, grid: dict, top: int) -> dict:
    return {
        "name": strategy,
        "strategy": {"name": strategy},
        "data": SHORT,
        "report": {"out_dir": str(out), "tearsheet": False, "plots": False},
        "sweep": {"grid": grid, "rank": "sharpe", "top": top},
    }


def test_a_sweep_of_pure_noise_strategies_is_called_overfit(tmp_path):
    spec = _spec(tmp_path, "coin", {"seed": list(range(60))}, top=1)
    out = vb.sweep(spec, strategy=coin, report=False, progress=False)
    ov = out.overfitting
    assert ov.n_trials == 60
    assert ov.pbo >= 0.3  # about 0.5 for no skill; a skilled selection gives about 0
    assert ov.best_dsr < 0.95 and ov.significant is False
    assert ov.best_psr > ov.best_dsr  # deflation lowers the best run's confidence
    assert abs(ov.mean_correlation) < 0.2  # coin tosses of different seeds barely correlate
    ranking = pd.read_csv(out.folder / "ranking.csv", index_col=0)
    assert {"psr", "dsr"} <= set(ranking.columns)
    best = ranking.iloc[0]
    assert best["dsr"] == pytest.approx(ov.best_dsr, rel=1e-9)
    # the per-day Sharpe from the stored moments equals empyrical's annualised one
    assert ov.best_sharpe * math.sqrt(252) == pytest.approx(best["sharpe"], rel=1e-9)
    assert (out.folder / "overfitting.json").is_file()
    with ResultsStore(out.store_path) as s:
        ids, sums, n_obs = s.moments("")
    assert len(ids) == 60 and n_obs > 400


def test_a_best_run_on_the_edge_of_the_grid_is_warned_about(tmp_path):
    spec = _spec(tmp_path, "vratio", {"window": [5, 10, 20], "band": [0.0, 0.02, 0.05]}, top=0)
    out = vb.sweep(spec, report=False, progress=False)
    best = out.ranking.iloc[0]
    expected = []
    for name, values in (("window", [5, 10, 20]), ("band", [0.0, 0.02, 0.05])):
        v = best[f"p.{name}"]
        if v == max(values):
            expected.append(f"{name}={v} is the largest value tried; widen the grid above it")
        elif v == min(values):
            expected.append(f"{name}={v} is the smallest value tried; widen the grid below it")
    assert expected, "this grid's best run is on its edge (as the shipped grid's is)"
    assert out.overfitting.boundary == expected
