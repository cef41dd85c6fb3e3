"""The OU pairs strategy (issue 5) and the embedded cointegrated pair.

* data/synthetic_pairs.py: calendar, determinism, bar layout, and that the closes (and the
  interleaved opens/closes) are the model with its known parameters;
* ou_pairs: the decision equals the calculators called directly on another input path
  (pandas Series through ``rolling_ou_fit`` + ``rolling_optimal_weights``), is bit-identical on
  every prefix, never reads later data, is flat (without warnings) where the fit is not
  mean-reverting, honours the horizon policy and the gamma = 0 limit;
* zscore_pairs: equals ``zscore_rule_weights`` and is prefix-stable;
* configs: validation messages; the embedded config runs with a report and the executor holds
  exactly (h*, -h*) of equity one bar after each decision; the real GLD/GDX config runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volbacktest.data.calendars import nyse_sessions
from volbacktest.data.synthetic import market_frames
from volbacktest.data.synthetic_pairs import DT_YEARS, TRUE_PARAMS, pair_frames, simulate_pair_bars
from volbacktest.engine.calculators import ou
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.inputs.config import config_from_mapping, load_config
from volbacktest.engine.inputs.market import Market, market_for
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest
from volbacktest.strategies.pairs import (
    OUPairsParams,
    ZScorePairsParams,
    ou_pairs,
    ou_pairs_decision,
    zscore_pairs,
)

REPO = Path(__file__).resolve().parents[1]
SHORT = {"seed": 11, "start": "2008-01-02", "end": "2010-12-31"}  # the spine tests' market
N_SE = 3.0  # a single deterministic path: each estimate within 3 standard errors of the truth

PARAM_CASES = {
    "rolling_marginal": {},
    "rolling_joint": {"method": "joint", "window": 150},
    "expanding": {"window": None, "min_obs": 100},
    "fixed_end": {"horizon": "fixed_end", "horizon_years": 2.0, "window": 120, "gamma": -3.0},
    "log_utility_min_obs": {"gamma": 0.0, "window": 200, "min_obs": 60},
}


@pytest.fixture(scope="module")
def pair():
    frames = pair_frames(**SHORT)
    return {name: f["close"] for name, f in frames.items()}


def closes(pair, n=None):
    return {k: v.to_numpy()[:n] for k, v in pair.items()}


# ------------------------------------------------------------------------- the embedded pair
def test_pair_frames_layout_calendar_and_determinism():
    frames = pair_frames(**SHORT)
    again = pair_frames(**SHORT)
    other = pair_frames(seed=12, start=SHORT["start"], end=SHORT["end"])
    sessions = nyse_sessions(SHORT["start"], SHORT["end"])
    assert set(frames) == {"pair_a", "pair_b"}
    for name, f in frames.items():
        assert f.index.equals(sessions) and f.index.name == "date"
        assert list(f.columns) == ["open", "high", "low", "close", "volume"]
        assert (f.dtypes == np.float64).all()
        assert np.isfinite(f.to_numpy()).all() and (f[["open", "close"]] > 0).all().all()
        np.testing.assert_array_equal(f["high"], np.maximum(f["open"], f["close"]))
        np.testing.assert_array_equal(f["low"], np.minimum(f["open"], f["close"]))
        pd.testing.assert_frame_equal(f, again[name])
        assert not np.array_equal(f["close"], other[name]["close"])


def test_opens_and_closes_interleave_the_half_session_path():
    n = 40
    sim = simulate_pair_bars(5, n)
    frames = pair_frames(seed=5, start="2019-01-02", end="2019-02-28")
    assert len(frames["pair_a"]) == n
    np.testing.assert_array_equal(frames["pair_a"]["open"], sim.price_a[0::2])
    np.testing.assert_array_equal(frames["pair_b"]["close"], sim.price_b[1::2])
    assert sim.dt_years == DT_YEARS / 2


@pytest.mark.parametrize("method", ["marginal", "joint"])
@pytest.mark.parametrize("sampling", ["closes", "opens_and_closes"])
def test_pair_is_the_model_with_its_true_parameters(method, sampling):
    """Closes at dt = 1/252 and the interleaved half-session path at dt/2 both recover the known
    parameters (one 15-year path: each within N_SE standard errors)."""
    frames = pair_frames(seed=7)
    a, b = frames["pair_a"], frames["pair_b"]
    if sampling == "closes":
        price_a, price_b, dt = a["close"], b["close"], DT_YEARS
    else:
        price_a = np.column_stack([a["open"], a["close"]]).ravel()
        price_b = np.column_stack([b["open"], b["close"]]).ravel()
        dt = DT_YEARS / 2
    fit = ou.fit_ou(price_a, price_b, dt, method=method)
    for name in ou.PARAM_NAMES:
        est, se, true = getattr(fit, name), getattr(fit.stderr, name), getattr(TRUE_PARAMS, name)
        assert abs(est - true) <= N_SE * se, (name, est, true, se)


def test_synthetic_market_includes_the_pair():
    cfg = config_from_mapping(
        {"name": "p", "strategy": {"name": "ou_pairs"}, "data": {"synthetic": SHORT}}
    )
    market = market_for(cfg)
    expected = pair_frames(**SHORT)
    assert expected["pair_a"].index.equals(market_frames(**SHORT)["vix"].index)
    assert market.tradable == ("pair_a", "pair_b")
    for name in ("pair_a", "pair_b"):
        pd.testing.assert_frame_equal(market.frames[name], expected[name], check_freq=False)


# ------------------------------------------------------------------------- ou_pairs decision
def direct_weights(pair, p: OUPairsParams) -> np.ndarray:
    """h for A straight from the calculators, on pandas Series (another input path)."""
    a, b = pair[p.leg_a], pair[p.leg_b]
    min_obs = p.min_obs if p.min_obs is not None else (p.window or 252)
    fits = ou.rolling_ou_fit(
        a, b, p.dt_years, window=p.window, min_obs=min_obs, method=p.method, warn=False
    )
    x = (np.log(a) - np.log(b)).to_numpy()
    tau = np.full(len(a), p.horizon_years)
    if p.horizon == "fixed_end":
        tau = p.horizon_years - np.arange(len(a)) * p.dt_years
    control = ou.rolling_optimal_weights(
        fits, x, np.maximum(tau, 0.0), p.gamma, max_abs_weight=p.max_abs_weight
    )
    h = np.where(tau < 0, 0.0, control["weight"].to_numpy())
    return np.where(fits["n_obs"].to_numpy() >= min_obs, h, np.nan)


@pytest.mark.parametrize("case", PARAM_CASES)
def test_decision_equals_calculators_called_directly(pair, case):
    p = OUPairsParams(**PARAM_CASES[case])
    w = ou_pairs(closes(pair), p)
    expected = direct_weights(pair, p)
    assert w.shape == (len(expected), 2)
    np.testing.assert_array_equal(w[:, 0], expected)
    np.testing.assert_array_equal(w[:, 1], -expected)
    decided = ~np.isnan(expected)
    first = p.min_obs if p.min_obs is not None else (p.window or 252)
    assert decided.argmax() == first and decided[first:].all()
    assert np.abs(w[decided]).max() <= p.max_abs_weight
    assert (w[decided, 0] != 0).mean() > 0.5  # not trivially flat


def test_gamma_zero_is_the_myopic_weight_at_every_horizon(pair):
    """gamma = 0 (log utility): h* does not depend on tau and equals -k(x-theta)/eta^2 + rho
    sigma/eta + 1/2 with the bar's own estimates."""
    p = OUPairsParams(gamma=0.0, max_abs_weight=10.0)
    d1 = ou_pairs_decision(closes(pair), p)
    d2 = ou_pairs_decision(closes(pair), p.model_copy(update={"horizon_years": 7.0}))
    np.testing.assert_allclose(d1.h_star, d2.h_star, rtol=1e-12, atol=1e-12)
    f = d1.fits
    myopic = (
        -f["k"] * (d1.log_spread - f["theta"]) / f["eta"] ** 2
        + f["rho"] * f["sigma"] / f["eta"]
        + 0.5
    )
    active = d1.active
    assert active.sum() > 400
    np.testing.assert_allclose(d1.h_star[active], myopic[active], rtol=1e-10, atol=1e-12)


def test_fixed_end_horizon_shrinks_tau_then_goes_flat(pair):
    p = OUPairsParams(horizon="fixed_end", horizon_years=2.0, window=120)
    d = ou_pairs_decision(closes(pair), p)
    n_end = math.floor(2.0 / p.dt_years + 1e-9)
    np.testing.assert_allclose(d.tau_years[:3], [2.0, 2.0 - p.dt_years, 2.0 - 2 * p.dt_years])
    assert (d.tau_years[n_end + 1 :] < 0).all()
    assert (d.weight[n_end + 1 :] == 0).all() and not d.active[n_end + 1 :].any()
    assert (d.weight[120 : n_end + 1] != 0).mean() > 0.9
    # the control near the end uses the shrinking tau (alpha, beta -> 0): differs from rolling
    rolling = ou_pairs_decision(closes(pair), p.model_copy(update={"horizon": "rolling"}))
    near = slice(n_end - 100, n_end)
    assert np.abs(d.h_star[near] - rolling.h_star[near]).max() > 1e-3


def test_not_mean_reverting_fits_are_flat_and_silent():
    """A spread that mean-reverts, then drifts away explosively (x_t = 1.004 x_(t-1) + noise):
    the later windows have b >= 1; those bars hold weight 0 (a decision, not NaN) and no
    NotMeanRevertingWarning escapes (warnings are errors here)."""
    rng = np.random.default_rng(3)
    n = 700
    x = np.zeros(n)
    for t in range(1, n):  # an AR(1) recursion written plainly: this is the test's reference
        slope = 0.9 if t < 300 else 1.004
        x[t] = slope * x[t - 1] + 0.01 * rng.standard_normal() + (0.05 if t == 300 else 0.0)
    b = 30 * np.exp(np.cumsum(0.02 * rng.standard_normal(n)))
    a = b * np.exp(x)
    p = OUPairsParams(window=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = ou_pairs_decision({"pair_a": a, "pair_b": b}, p)
        w = ou_pairs({"pair_a": a, "pair_b": b}, p)
    assert not caught
    not_mr = ~d.fits["mean_reverting"].to_numpy() & (d.fits["n_obs"].to_numpy() >= 100)
    assert not_mr.sum() > 100 and (~not_mr[100:]).sum() > 100
    assert (w[not_mr] == 0).all()
    assert np.isnan(w[:100]).all() and not np.isnan(w[100:]).any()


@pytest.mark.parametrize("case", PARAM_CASES)
def test_prefix_bit_identical_over_a_range(pair, case):
    """Every prefix length around and after the first decision, plus a spread of later ones."""
    p = OUPairsParams(**PARAM_CASES[case])
    full = ou_pairs(closes(pair), p)
    first = p.effective_min_obs
    lengths = [*range(1, 8), *range(first - 3, first + 40), *range(first + 40, len(full), 23)]
    for n in lengths:
        np.testing.assert_array_equal(ou_pairs(closes(pair, n), p), full[:n], err_msg=str(n))


@given(
    case=st.sampled_from(sorted(PARAM_CASES)),
    t=st.integers(0, 755),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30, deadline=None)
def test_decision_never_reads_later_data(pair, case, t, seed):
    """Replacing every close after bar t leaves rows 0..t bit-identical."""
    p = OUPairsParams(**PARAM_CASES[case])
    base = closes(pair)
    rng = np.random.default_rng(seed)
    other = {k: v.copy() for k, v in base.items()}
    for v in other.values():
        v[t + 1 :] *= rng.uniform(0.5, 1.5, size=len(v) - t - 1)
    np.testing.assert_array_equal(ou_pairs(other, p)[: t + 1], ou_pairs(base, p)[: t + 1])


# ------------------------------------------------------------------------- zscore_pairs
def test_zscore_pairs_equals_calculator_and_is_prefix_stable(pair):
    p = ZScorePairsParams(lookback=40, entry_z=1.5, exit_z=0.25, weight=0.8)
    w = zscore_pairs(closes(pair), p)
    x = np.log(pair["pair_a"].to_numpy()) - np.log(pair["pair_b"].to_numpy())
    h = ou.zscore_rule_weights(ou.rolling_zscore(x, 40), entry_z=1.5, exit_z=0.25, weight=0.8)
    np.testing.assert_array_equal(w[39:, 0], h[39:])
    np.testing.assert_array_equal(w[:, 1], -w[:, 0])
    assert np.isnan(w[:39]).all()
    assert set(np.unique(w[39:, 0])) == {-0.8, 0.0, 0.8}
    for n in (1, 38, 39, 40, 41, 200, 517):
        np.testing.assert_array_equal(zscore_pairs(closes(pair, n), p), w[:n])


# ------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"gamma": 1.0}, "strategy.params.gamma: Input should be less than 1"),
        ({"leg_b": "pair_a"}, "leg_a and leg_b are both 'pair_a'"),
        ({"window": 100, "min_obs": 150}, "min_obs (150) cannot exceed window (100)"),
        ({"window": 3}, "strategy.params.window: Input should be greater than or equal to 5"),
        ({"method": "jiont"}, "did you mean 'joint'"),
        ({"horizon": "fixed"}, "valid choices: 'rolling' or 'fixed_end'"),
        ({"max_abs_wieght": 2}, "did you mean 'max_abs_weight'"),
        ({"when_not_mean_reverting": "hold"}, "valid choices: 'flat'"),
    ],
)
def test_bad_params_name_the_key(params, expected):
    raw = {"name": "bad", "strategy": {"name": "ou_pairs", "params": params}}
    with pytest.raises(ConfigError) as err:
        config_from_mapping(raw, source="bad.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("bad.yaml: ")


def test_zscore_band_order_is_validated():
    raw = {"name": "z", "strategy": {"name": "zscore_pairs", "params": {"exit_z": 2.5}}}
    with pytest.raises(ConfigError, match=r"exit_z \(2.5\) must be below entry_z \(2.0\)"):
        config_from_mapping(raw)


def test_shipped_configs_are_consistent():
    for path in ("ou_pairs.yaml", "real/ou_pairs_gld_gdx.yaml"):
        cfg = load_config(REPO / "configs" / path)
        p = cfg.params
        assert cfg.strategy.name == "ou_pairs"
        assert cfg.execution.rebalance == "daily" and cfg.execution.fill == "next_close"
        assert cfg.execution.max_gross_leverage == pytest.approx(2 * p.max_abs_weight)
        assert p.dt_years == pytest.approx(1 / 252, rel=1e-15)


# ------------------------------------------------------------------------- backtests
def pair_market(**synthetic) -> Market:
    frames = pair_frames(**synthetic)
    cal = frames["pair_a"].index
    return Market(cal, frames, ("pair_a", "pair_b"), "synthetic")


def test_embedded_config_runs_with_report_and_holds_h_star(tmp_path):
    """The shipped embedded config (on a 3-year range) writes a full report; after every
    next-close fill the book holds exactly (h*, -h*) of equity decided on the previous bar, and
    the equity equals ``ou.simulate_wealth`` of the lagged weights (no costs in the config)."""
    cfg = load_config(REPO / "configs" / "ou_pairs.yaml").with_overrides(
        **{f"data.synthetic.{k}": v for k, v in SHORT.items()}
    )
    result = run_backtest(cfg, market=pair_market(**SHORT))
    out = write_run(result, tmp_path)
    for name in ("metrics.json", "returns.csv", "positions.csv", "equity.png", "tearsheet.png"):
        assert (out / name).stat().st_size > 0, name
    assert not result.problems
    w = result.weights.to_numpy()
    held = result.positions[["pair_a", "pair_b"]].div(result.equity, axis=0).to_numpy()
    first = int(np.flatnonzero(~np.isnan(w[:, 0]))[0])
    assert first == 252 and np.all(held[: first + 1] == 0)
    # the decision of the second-to-last bar is not filled: the run ends before backtrader's
    # next broker cycle books the last bar's cheat-on-close order (an engine limitation)
    np.testing.assert_allclose(held[first + 1 : -1], w[first:-2], rtol=1e-9, atol=1e-12)
    assert result.metrics["trades"] > 2 * 400  # rebalanced daily on both legs
    # and the equity is the pure wealth recursion of the calculators with the one-bar lag
    px = {k: f["close"].to_numpy() for k, f in pair_frames(**SHORT).items()}
    lagged = np.r_[0.0, np.nan_to_num(w[:-1, 0])]
    wealth = ou.simulate_wealth(px["pair_a"], px["pair_b"], lagged, dt_years=DT_YEARS).wealth
    np.testing.assert_allclose(result.equity / cfg.execution.initial_cash, wealth, rtol=1e-9)


def test_real_gld_gdx_config_runs(shared_data):
    cfg = load_config(REPO / "configs" / "real" / "ou_pairs_gld_gdx.yaml").with_overrides(
        **{"data.root": str(shared_data), "report.tearsheet": False, "report.plots": False}
    )
    market = market_for(cfg)
    assert f"{market.calendar[0]:%Y-%m-%d}" == "2007-01-03"
    assert f"{market.calendar[-1]:%Y-%m-%d}" == "2019-07-12"
    result = run_backtest(cfg, market=market)
    decided = result.weights.notna().all(axis=1)
    # the first bar with 252 transitions: the 155 sessions from 2006-05-22 before data.start are
    # warm-up (data.warmup: auto), so it is traded bar 97; on the trading calendar alone it
    # would be bar 252 (2007 has 251 sessions from 2007-01-03)
    assert market.n_warmup == 155 and f"{market.warmup.index[0]:%Y-%m-%d}" == "2006-05-22"
    assert decided.idxmax() == market.calendar[252 - 155] == pd.Timestamp("2007-05-23")
    closes = market.decision_inputs(("gld", "gdx"))
    expected = ou_pairs(closes, cfg.params)[market.n_warmup :]
    np.testing.assert_array_equal(result.weights.to_numpy(), expected)
    d = ou_pairs_decision(closes, cfg.params)
    fits = d.fits["mean_reverting"].to_numpy()[market.n_warmup :]
    share_not_mr = float((~fits[decided.to_numpy()]).mean())
    assert 0.0 < share_not_mr < 0.1  # about 3 % of the bars (README)
    for key in ("cagr", "sharpe", "max_drawdown"):
        assert np.isfinite(result.metrics[key])
    assert not result.problems
