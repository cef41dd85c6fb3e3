"""Parameter sweeps: YAML spec, a vectorised fast path held to the event-driven engine, local
process-pool and Dask executors, a resumable SQLite results store, walk-forward splits.

Entry points: ``load_sweep(path)`` -> :class:`SweepPlan`; ``run_sweep(plan, ...)`` ->
:class:`SweepOutcome`; the array simulator ``simulate`` / ``fast_backtest``; and the CLI
``volbacktest sweep SWEEP.yaml`` (``engine.cli.sweep``).
"""

from volbacktest.engine.execution.vectorised import MarketArrays, fast_backtest, simulate

from .execute import ExecutorOptions
from .run import SweepOutcome, run_sweep
from .spec import SweepPlan, load_sweep, plan_from_mapping

__all__ = [
    "ExecutorOptions",
    "MarketArrays",
    "SweepOutcome",
    "SweepPlan",
    "fast_backtest",
    "load_sweep",
    "plan_from_mapping",
    "run_sweep",
    "simulate",
]
