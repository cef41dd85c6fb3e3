"""How much a sweep's best run can be trusted: PSR, DSR and PBO of the finished runs, and a
warning when the best run sits on the edge of the grid.

Computed from the store (the runs' ``moments`` and the ``accum`` table, kept for every finished
run whatever ``store_returns`` says), so a resumed sweep gets the statistics of all its runs.
The moments are read in chunks (three passes: the Sharpe ratios' variance, then PBO's two), so
memory does not grow with the number of runs; the per-run PSR and DSR are added to each chunk
of the ranking as it is written (:meth:`Deflation.apply`). The formulas
and their sources are in ``engine.calculators.overfitting``; what is reported:

* ``n_trials``: finished runs; ``mean_correlation`` of their daily returns (all pairs);
  ``effective_trials`` = rho + (1 - rho) n_trials;
* ``sr_variance``: variance of the runs' per-day Sharpe ratios; ``expected_max_sharpe``
  (``SR0``, per day and annualised) of that many independent trials without skill;
* per run (columns of ``ranking.csv``): ``psr`` = P(true Sharpe > 0) and ``dsr`` =
  P(true Sharpe > SR0), each with the run's own skewness and kurtosis;
* ``pbo``: CSCV over ``blocks`` contiguous blocks (``C(S, S/2)`` splits), Sharpe ratio as the
  performance measure;
* ``boundary``: swept numeric axes (three or more values) where the best run takes the
  smallest or largest value tried, e.g. ``band=0.05 is the largest value tried``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.overfitting import (
    effective_trials,
    expected_max_sharpe,
    mean_pairwise_correlation,
    moments_from_totals,
    pbo_from_chunks,
    probabilistic_sharpe,
)
from volbacktest.engine.execution.metrics import TRADING_DAYS_PER_YEAR
from volbacktest.engine.run.outputs import atomic_file

from .records import params_of_row
from .spec import SweepPlan
from .store import ResultsStore

log = logging.getLogger(__name__)

SIGNIFICANT = 0.95  # DSR at or above which the best run is called significant


@dataclass(frozen=True)
class OverfitStats:
    n_trials: int
    n_obs: int
    mean_correlation: float | None
    effective_trials: float
    sr_variance: float | None  # of per-day Sharpe ratios
    expected_max_sharpe: float | None  # SR0 per day
    best_run: str | None
    best_sharpe: float | None  # per day
    best_psr: float | None
    best_dsr: float | None
    pbo: float | None
    pbo_blocks: int | None
    pbo_splits: int | None
    boundary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def significant(self) -> bool | None:
        return None if self.best_dsr is None else self.best_dsr >= SIGNIFICANT

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the printed summary and the HTML report."""
        ann = math.sqrt(TRADING_DAYS_PER_YEAR)

        def f(v, fmt="{:.4g}"):
            return "n/a" if v is None or not np.isfinite(v) else fmt.format(v)

        return [
            ("trials (finished runs)", str(self.n_trials)),
            ("mean correlation of their daily returns", f(self.mean_correlation, "{:.3f}")),
            ("effective independent trials", f(self.effective_trials, "{:.1f}")),
            (
                "expected max Sharpe of that many trials without skill (SR0, annualised)",
                f(None if self.expected_max_sharpe is None else self.expected_max_sharpe * ann),
            ),
            (
                "best run's Sharpe (annualised)",
                f(None if self.best_sharpe is None else self.best_sharpe * ann),
            ),
            ("best run's PSR, P(true Sharpe > 0)", f(self.best_psr, "{:.3f}")),
            ("best run's DSR, P(true Sharpe > SR0)", f(self.best_dsr, "{:.3f}")),
            (
                "PBO (CSCV)",
                f(self.pbo, "{:.3f}")
                + (
                    f" over {self.pbo_splits} splits of {self.pbo_blocks} blocks"
                    if self.pbo_splits
                    else ""
                ),
            ),
        ]

    def verdict(self) -> str:
        parts = []
        if self.best_dsr is not None:
            parts.append(
                f"DSR {self.best_dsr:.3f}: the best run is "
                + ("significant" if self.significant else "NOT significant")
                + f" after {self.effective_trials:.0f} effective trials (threshold {SIGNIFICANT})"
            )
        if self.pbo is not None:
            parts.append(f"PBO {self.pbo:.2f} (0.5 = a coin flip, no skill in the selection)")
        return "; ".join(parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float)


def boundary_warnings(plan: SweepPlan, best: pd.Series) -> list[str]:
    """Numeric grid axes (three or more values) on which ``best`` takes an extreme value."""
    if not plan.spec.grid:
        return []
    out = []
    values = params_of_row(best)
    for name, axis in plan.axes.items():
        nums = [v for v in axis if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(nums) < 3 or len(nums) != len(axis) or name not in values:
            continue
        v = values[name]
        if v == max(nums):
            out.append(f"{name}={v} is the largest value tried; widen the grid above it")
        elif v == min(nums):
            out.append(f"{name}={v} is the smallest value tried; widen the grid below it")
    return out


@dataclass(frozen=True)
class Deflation:
    """What the per-run PSR and DSR need: the common number of returns and ``SR0``."""

    store: ResultsStore
    n_obs: int
    sr0: float | None

    def apply(self, ranking: pd.DataFrame) -> pd.DataFrame:
        """``ranking`` (rows indexed by run id) with ``psr`` and ``dsr`` columns."""
        out = ranking.copy()
        if not self.n_obs or not len(out):
            out["psr"] = np.nan
            out["dsr"] = np.nan
            return out
        totals = self.store.moment_totals(list(out.index), self.n_obs)
        m = moments_from_totals(totals, self.n_obs)
        psr = probabilistic_sharpe(m.sharpe, 0.0, self.n_obs, m.skew, m.kurtosis)
        out["psr"] = np.atleast_1d(psr)
        if self.sr0 is None:
            out["dsr"] = np.nan
        else:
            dsr = probabilistic_sharpe(m.sharpe, self.sr0, self.n_obs, m.skew, m.kurtosis)
            out["dsr"] = np.atleast_1d(dsr)
        return out


def _sharpe_variance(store: ResultsStore, segment: str, n_obs: int) -> tuple[int, float | None]:
    """(runs with a finite Sharpe ratio, the sample variance of those per-day Sharpe ratios),
    chunk by chunk (Chan et al.'s pairwise update of count, mean and squared deviations)."""
    count, mean, m2 = 0, 0.0, 0.0
    for totals, _ in store.moment_chunks(segment, n_obs):
        sr = moments_from_totals(totals, n_obs).sharpe
        sr = sr[np.isfinite(sr)]
        if not len(sr):
            continue
        k, mu = len(sr), float(sr.mean())
        d = mu - mean
        total = count + k
        m2 += float(((sr - mu) ** 2).sum()) + d * d * count * k / total
        mean += d * k / total
        count = total
    return count, (m2 / (count - 1) if count > 1 else None)


def overfit_statistics(
    plan: SweepPlan, store: ResultsStore, segment: str, best: pd.Series | None
) -> tuple[OverfitStats, Deflation]:
    """The sweep's :class:`OverfitStats` (``best``: the first row of the ranking, None when no
    run finished) and the :class:`Deflation` giving each ranked run its PSR and DSR."""
    n_obs, n = store.moments_length(segment)
    notes: list[str] = []
    if n == 0:
        stats = OverfitStats(
            0,
            0,
            None,
            0.0,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            [],
            ["no finished run with returns"],
        )
        return stats, Deflation(store, 0, None)
    finite, sr_var = _sharpe_variance(store, segment, n_obs)
    if n == 1 and finite == 1:
        sr_var = 0.0  # one trial, no selection: SR0 = 0 and the DSR is the PSR
    n_corr, usum = store.correlation_sum(segment)
    rho = mean_pairwise_correlation(usum, n_corr) if usum is not None and n_corr > 1 else None
    if rho is not None and not np.isfinite(rho):
        rho = None
    n_eff = effective_trials(n, rho if rho is not None else 0.0)
    if rho is None and n > 1:
        notes.append("correlation unknown: every run counted as an independent trial")
    sr0 = expected_max_sharpe(n_eff, sr_var) if sr_var is not None else None
    deflation = Deflation(store, n_obs, sr0)
    top = {}
    if best is not None and np.isfinite(store.moment_totals([str(best.name)], n_obs)).all():
        row = deflation.apply(best.to_frame().T).iloc[0]
        m = moments_from_totals(store.moment_totals([str(best.name)], n_obs), n_obs)
        top = {
            "sharpe": float(m.sharpe[0]),
            "psr": float(row["psr"]),
            "dsr": float(row["dsr"]) if sr0 is not None else None,
        }
    pbo = None
    if n >= 2:
        pbo = pbo_from_chunks(
            lambda: (blocks for _, blocks in store.moment_chunks(segment, n_obs)),
            n,
            n_obs,
            store.blocks,
        )
    else:
        notes.append("PBO needs at least two finished runs")
    boundary = boundary_warnings(plan, best) if best is not None else []
    stats = OverfitStats(
        n_trials=n,
        n_obs=n_obs,
        mean_correlation=rho,
        effective_trials=n_eff,
        sr_variance=sr_var,
        expected_max_sharpe=sr0,
        best_run=None if best is None else str(best.name),
        best_sharpe=top.get("sharpe"),
        best_psr=top.get("psr"),
        best_dsr=top.get("dsr"),
        pbo=None if pbo is None else pbo.pbo,
        pbo_blocks=None if pbo is None else pbo.n_blocks,
        pbo_splits=None if pbo is None else pbo.n_splits,
        boundary=boundary,
        notes=notes,
    )
    for w in boundary:
        log.warning("best run on the edge of the grid: %s", w)
    return stats, deflation


def sweep_statistics(
    plan: SweepPlan, store: ResultsStore, segment: str, ranking: pd.DataFrame
) -> tuple[OverfitStats, pd.DataFrame]:
    """The sweep's :class:`OverfitStats` and ``ranking`` (best first) with ``psr`` and
    ``dsr`` columns."""
    best = ranking.iloc[0] if len(ranking) else None
    stats, deflation = overfit_statistics(plan, store, segment, best)
    return stats, deflation.apply(ranking)


def write_statistics(stats: OverfitStats, folder: Path) -> Path:
    path = Path(folder) / "overfitting.json"
    with atomic_file(path) as tmp:  # replaced whole, like ranking.csv beside it
        tmp.write_text(stats.to_json() + "\n", encoding="utf-8")
    return path
