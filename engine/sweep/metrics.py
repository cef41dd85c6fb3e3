"""Performance metrics of many runs at once, equal to ``execution.metrics.performance_metrics``.

empyrical's ratios accept 2-D arrays (one column per run), so the same library computes the
same numbers here as for a single run; the trading statistics are the runner's definitions
evaluated over columns. ``tests/test_sweep.py`` checks column by column against
``performance_metrics``.
"""

from __future__ import annotations

import warnings

import numpy as np

from volbacktest.engine.execution.metrics import (
    SUMMARY_METRICS,
    TRADING_DAYS_PER_YEAR,
    finite_or_none,
)
from volbacktest.engine.execution.vectorised import Fills, GridSimulation

# The headline metrics of side-by-side tables (walk-forward, comparison reports).
# Numeric metrics every run records (the store has one column each); rank by any of them.
METRIC_NAMES = (*SUMMARY_METRICS, "final_equity", "time_in_market", "rebalances")
# Metrics for which smaller is better (used when a rank spec gives no direction).
LOWER_IS_BETTER = frozenset({"annual_volatility", "turnover", "trades", "rebalances"})


def numeric_metrics(metrics: dict) -> dict[str, float | None]:
    """The numeric subset of a run's metrics dict, in METRIC_NAMES order."""
    return {k: finite_or_none(metrics.get(k)) for k in METRIC_NAMES}


def grid_metrics(sim: GridSimulation) -> dict[str, np.ndarray]:
    """Every metric of METRIC_NAMES for each run of ``sim`` (arrays of length ``n_runs``;
    NaN where ``performance_metrics`` gives None). A simulation of the compiled kernel gets its
    metrics from the compiled pass (``execution.numba_kernel.grid_metrics_kernel``: the same
    definitions, sums left to right); runs it leaves out, and numpy simulations, go through
    empyrical here."""
    if sim.kernel != "numba":
        return _empyrical_metrics(
            sim.returns, sim.equity, sim.gross_exposure, sim.fills, sim.rebalances
        )
    from volbacktest.engine.execution.numba_kernel import grid_metrics_kernel

    f = sim.fills
    values, fallback = grid_metrics_kernel(
        sim.returns.T,
        sim.equity.T,
        sim.gross_exposure.T,
        f.run,
        f.size,
        f.price,
        float(TRADING_DAYS_PER_YEAR),
    )
    out = dict(zip(METRIC_NAMES[:-1], values, strict=True))  # all but rebalances
    out["rebalances"] = sim.rebalances.astype(np.float64)
    left = np.flatnonzero(fallback)
    if len(left):
        sel = np.isin(f.run, left)
        remap = np.full(sim.n_runs, -1, dtype=np.int64)
        remap[left] = np.arange(len(left))
        fills = Fills(
            remap[f.run[sel]],
            f.bar[sel],
            f.asset[sel],
            f.size[sel],
            f.price[sel],
            f.commission[sel],
        )
        part = _empyrical_metrics(
            sim.returns[:, left],
            sim.equity[:, left],
            sim.gross_exposure[:, left],
            fills,
            sim.rebalances[left],
        )
        for k, v in part.items():
            out[k][left] = v
    return {k: out[k] for k in METRIC_NAMES}


def _empyrical_metrics(r, equity, gross_exposure, f: Fills, rebalances) -> dict[str, np.ndarray]:
    import empyrical as ep

    n_bars, n_runs = r.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empyrical divides by a zero vol
        cagr = np.asarray(ep.annual_return(r, period="daily"), dtype=np.float64)
        vol = np.asarray(ep.annual_volatility(r, period="daily"), dtype=np.float64)
        sharpe = np.asarray(ep.sharpe_ratio(r, period="daily"), dtype=np.float64)
        sortino = np.asarray(ep.sortino_ratio(r, period="daily"), dtype=np.float64)
        max_dd = np.asarray(ep.max_drawdown(r), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            calmar = np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan)
    calmar[np.isinf(calmar)] = np.nan
    years = n_bars / TRADING_DAYS_PER_YEAR
    traded = np.bincount(f.run, weights=np.abs(f.size) * f.price, minlength=n_runs)
    trades = np.bincount(f.run, minlength=n_runs).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = gross_exposure / equity
        exposure[np.isinf(exposure)] = np.nan
        turnover = traded / equity.mean(axis=0) / years
        total = equity[-1] / equity[0] * (1 + r[0]) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN exposure column
        exposure_mean = np.nanmean(exposure, axis=0)
    return {
        "cagr": cagr,
        "annual_volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "calmar": calmar,
        "total_return": total,
        "final_equity": equity[-1].copy(),
        "turnover": turnover,
        "trades": trades,
        "exposure": exposure_mean,
        "time_in_market": (gross_exposure > 0).mean(axis=0),
        "rebalances": np.asarray(rebalances).astype(np.float64),
    }


def metric_rows(values: dict[str, np.ndarray]) -> list[dict[str, float | None]]:
    """Column arrays from :func:`grid_metrics` as one dict per run (None for NaN)."""
    n = len(next(iter(values.values())))
    cols = {k: values[k].tolist() for k in METRIC_NAMES}
    return [{k: finite_or_none(cols[k][j]) for k in METRIC_NAMES} for j in range(n)]
