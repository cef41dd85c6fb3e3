"""What a run's report adds to its ledger: the benchmark (``report.benchmark``) and round trips.

:func:`analyse` loads the benchmark dataset from the run's own data source (the embedded market
or the shared/user files, as ``data.*`` says), puts its total-return close on the run's calendar
(carried forward over the benchmark's missing days, so a holiday of the benchmark is a zero
return) and measures the run against it (:func:`engine.execution.metrics.benchmark_metrics`); it
matches the fills into FIFO round trips (:mod:`engine.run.trades`). Both go into metrics.json,
the run page and ``round_trips.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError
from volbacktest.engine.execution.instruments import instrument, trades_contracts
from volbacktest.engine.execution.metrics import benchmark_metrics
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.market import load_raw
from volbacktest.engine.run.trades import RoundTrips, no_round_trips, round_trips, trade_metrics


@dataclass(frozen=True)
class Analysis:
    """Benchmark returns on the run's calendar (None without ``report.benchmark``), the metrics
    to add to metrics.json, the round trips, and notes for the reader."""

    benchmark: pd.Series | None
    metrics: dict
    trips: RoundTrips
    notes: tuple[str, ...] = field(default_factory=tuple)


def benchmark_returns(result: BacktestResult) -> tuple[pd.Series | None, list[str]]:
    """Daily total returns of ``report.benchmark`` on the run's calendar, and notes."""
    name = result.config.report.benchmark
    if not name:
        return None, []
    try:
        close = load_raw(name, result.config.data)["close"].astype(float)
    except (ConfigError, DataError) as exc:
        raise ConfigError(f"report.benchmark: {name!r} could not be loaded: {exc}") from exc
    cal = result.equity.index
    inside = close[(close.index >= cal[0]) & (close.index <= cal[-1])]
    if inside.empty:
        raise ConfigError(
            f"report.benchmark: {name!r} has no prices between {cal[0]:%Y-%m-%d} and "
            f"{cal[-1]:%Y-%m-%d} (it covers {close.index[0]:%Y-%m-%d}..{close.index[-1]:%Y-%m-%d});"
            " pick a benchmark that covers the run"
        )
    on_cal = close.reindex(close.index.union(cal)).ffill().reindex(cal)
    rets = on_cal.pct_change(fill_method=None)
    rets.name = name
    notes = []
    first = on_cal.first_valid_index()
    if first is not None and first > cal[0]:
        notes.append(f"benchmark {name} starts {first:%Y-%m-%d}, after the run's first bar")
    missing = int(cal.difference(close.index).size)
    if missing:
        notes.append(
            f"benchmark {name} has no price on {missing} of the run's {len(cal)} bars: "
            "its last close is carried (a zero benchmark return)"
        )
    return rets, notes


def analyse(result: BacktestResult) -> Analysis:
    """The benchmark and round-trip analysis of one run (see the module docstring)."""
    bench, notes = benchmark_returns(result)
    notes = list(notes)
    if trades_contracts(result.config):
        # share-based FIFO matching (value / shares as the price) does not hold for contracts
        # with a multiplier, margin and expiries; their trades table has every trade's reason
        trips = no_round_trips()
        notes.append(
            f"round trips are built for share runs only; this {instrument(result.config)} "
            "run lists each contract trade (with its reason) in its transactions table"
        )
    else:
        trips = round_trips(result)
    metrics = {}
    if bench is not None:
        metrics["benchmark"] = str(bench.name)
        metrics.update(benchmark_metrics(result.returns, bench))
    metrics.update(trade_metrics(trips))
    return Analysis(bench, metrics, trips, tuple(notes))
