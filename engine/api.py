"""The Python front door: ``volbacktest.run``, ``volbacktest.sweep`` and ``volbacktest.strategy``.

What the command line does from a notebook or a script, with the same validation and results:

* :func:`run` one backtest from a config (a :class:`BacktestConfig`, a YAML path or a dict),
  optionally on the user's own frames (``data=``) and with a strategy of the user's own
  (``strategy=``); it returns a :class:`RunResult` (metrics, returns, equity, positions,
  transactions, weights; ``plot()``, ``tearsheet()``, ``save()``);
* :func:`sweep` a parameter grid from a sweep YAML or dict, as ``volbacktest sweep`` does;
* :func:`strategy` makes a :class:`StrategySpec` from a decision function and its parameter
  model, for ``run``/``sweep`` only: the global registry (``volbacktest.strategies``) is left
  alone, so re-running the cell that defines it just works.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from volbacktest.engine.errors import ConfigError, require_extra
from volbacktest.engine.execution.futures import is_futures_run
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import BacktestConfig, config_from_mapping, read_yaml
from volbacktest.engine.inputs.market import Market, market_for
from volbacktest.engine.run.report import equity_figure, tearsheet_figure, write_run
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.sweep import (
    ExecutorOptions,
    SweepOutcome,
    SweepPlan,
    plan_from_mapping,
    run_sweep,
)
from volbacktest.strategies.base import StrategyParams, StrategySpec

ConfigLike = BacktestConfig | str | Path | Mapping[str, Any]
Frames = Mapping[str, pd.DataFrame | pd.Series]
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


# --------------------------------------------------------------------------- strategies
def strategy(
    params: type[StrategyParams], *, name: str | None = None, summary: str | None = None
) -> Callable[[Callable], StrategySpec]:
    """Decorator: a decision function and its parameter model as a :class:`StrategySpec` that
    ``run(..., strategy=spec)`` and ``sweep(..., strategy=spec)`` use, never registered.

    ``params``: a :class:`StrategyParams` subclass defining ``assets()`` (the traded dataset
    names, the weights' columns) and ``inputs()`` (the dataset names the function reads);
    unknown keys are rejected as for the built-in strategies. ``name``: what the config's
    ``strategy.name`` says (default: the function's name). ``summary``: one line (default: the
    first line of the function's docstring). The function is ``decide(inputs, p) -> weights``:
    ``inputs`` maps each name of ``p.inputs()`` to its closes (1-D arrays, oldest first) and
    the result is an ``(n_bars, len(p.assets()))`` array of target weights, row t decided on
    bar t's close (NaN: no decision yet). It stays callable as ``spec.decide``::

        @volbacktest.strategy(params=MyParams)
        def my_rule(inputs, p): ...

        volbacktest.run({"strategy": {"params": {"window": 20}}}, strategy=my_rule)
    """
    if not (isinstance(params, type) and issubclass(params, StrategyParams)):
        raise TypeError(
            f"strategy(params=...): expected a subclass of StrategyParams, got {params!r}"
        )
    missing = [m for m in ("assets", "inputs") if getattr(params, m) is getattr(StrategyParams, m)]
    if missing:
        raise TypeError(
            f"strategy(params={params.__name__}): define {' and '.join(missing)}() on it "
            "(the dataset names it trades / reads)"
        )

    def make(decide: Callable) -> StrategySpec:
        if not callable(decide):
            raise TypeError(f"@strategy decorates a decision function, got {decide!r}")
        doc = (getattr(decide, "__doc__", None) or "").strip()
        line = summary or (doc.splitlines()[0] if doc else f"user strategy {decide.__name__}")
        return StrategySpec(name or decide.__name__, params, decide, line)

    return make


def _user_strategy(value) -> StrategySpec | None:
    if value is None or isinstance(value, StrategySpec):
        return value
    raise ConfigError(
        f"strategy=: expected a strategy made with @volbacktest.strategy (a StrategySpec), got "
        f"{type(value).__name__}"
    )


# --------------------------------------------------------------------------- configs
def _default_name(raw: Mapping, user: StrategySpec | None, suffix: str = "") -> str:
    """A dict config without ``name`` is named after its strategy (``run`` if that cannot be
    a name)."""
    section = raw.get("strategy")
    name = section.get("name") if isinstance(section, Mapping) else None
    name = name or (user.name if user is not None else None)
    return f"{name}{suffix}" if isinstance(name, str) and _NAME.match(name) else f"run{suffix}"


def _config(config: ConfigLike, user: StrategySpec | None) -> BacktestConfig:
    if isinstance(config, BacktestConfig):
        if user is None or config.user_strategy is user:
            return config
        raw = config.model_dump(exclude={"source_file"})  # params as given, not resolved
        return config_from_mapping(raw, source=config.source_file, strategy=user)
    if isinstance(config, str | Path):
        return config_from_mapping(read_yaml(config), source=Path(config), strategy=user)
    if isinstance(config, Mapping):
        raw = dict(config)
        raw.setdefault("name", _default_name(raw, user))
        return config_from_mapping(raw, strategy=user)
    raise ConfigError(
        f"config: expected a BacktestConfig, a YAML path or a dict, got {type(config).__name__}"
    )


def _market(cfg: BacktestConfig, data: Frames | Market | None) -> Market | None:
    if is_futures_run(cfg):  # the futures executor reads the settle matrix of data.source
        if data is not None:
            raise ConfigError(
                f"{cfg.name}: data= is not supported for a futures: config (it reads the CFE "
                "files or the embedded market of data.source); leave data out"
            )
        return None
    if isinstance(data, Market):
        data.check_serves(cfg)
        return data
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(
            "data: expected a mapping of dataset names to DataFrames/Series (or a Market), got "
            f"{type(data).__name__}"
        )
    return market_for(cfg, frames=data or None)


# --------------------------------------------------------------------------- results
@contextlib.contextmanager
def _keeping_backend(plots: bool):
    """The report writers switch matplotlib to its headless backend; when plots are written,
    resolve the caller's backend first (a notebook's inline one) and put it back afterwards."""
    if not plots:
        yield
        return
    require_extra("matplotlib", "dev")
    import matplotlib
    import matplotlib.pyplot  # noqa: F401 - resolves the caller's backend before the switch

    before = matplotlib.get_backend()
    try:
        yield
    finally:
        if matplotlib.get_backend() != before:
            matplotlib.pyplot.switch_backend(before)


class RunResult:
    """One backtest's results (what ``volbacktest run`` writes, in memory).

    ``metrics`` (dict: cagr, sharpe, sortino, max_drawdown, calmar, turnover, trades, exposure,
    rule, fill, ...), ``returns`` and ``equity`` (Series), ``positions`` (value per asset and
    cash), ``holdings`` (shares), ``transactions``, ``weights`` (the decision of every bar),
    ``config`` (the validated :class:`BacktestConfig`), ``notes`` (data notes and problems);
    ``plot()``, ``tearsheet()`` and ``save()``. ``result`` is the engine's
    :class:`~volbacktest.engine.execution.result.BacktestResult`.
    """

    __slots__ = ("result",)

    def __init__(self, result: BacktestResult):
        self.result = result

    config = property(lambda self: self.result.config, doc="the validated config")
    metrics = property(lambda self: self.result.metrics, doc="metrics by name")
    returns = property(lambda self: self.result.returns, doc="daily returns")
    equity = property(lambda self: self.result.equity, doc="portfolio value by date")
    positions = property(lambda self: self.result.positions, doc="value per asset and cash")
    holdings = property(lambda self: self.result.holdings, doc="shares per asset")
    transactions = property(lambda self: self.result.transactions, doc="every fill")
    weights = property(lambda self: self.result.weights, doc="target weights decided per bar")

    @property
    def notes(self) -> tuple[str, ...]:
        """What the data assembly reported (carried-forward values, user frames, ...) and any
        problems the run met."""
        return tuple(self.result.market_notes) + tuple(self.result.problems)

    def plot(self):
        """Equity (log scale) and drawdown as a matplotlib Figure (nothing is written)."""
        return equity_figure(self.result)

    def tearsheet(self):
        """pyfolio-reloaded's returns tear sheet as a matplotlib Figure (nothing is written)."""
        return tearsheet_figure(self.result)

    def save(self, out_dir: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Write the run's folder ``out_dir/<name>/`` as the command line does (config.yaml,
        metrics.json, CSVs, and the plots that ``report.plots``/``report.tearsheet`` ask
        for); ``out_dir`` defaults to ``report.out_dir``. Returns the folder. The folder is
        written whole and moved into place; an existing one is refused unless ``overwrite``
        (then it is replaced whole)."""
        report = self.config.report
        with _keeping_backend(report.plots or report.tearsheet):
            return write_run(self.result, Path(out_dir or report.out_dir), overwrite=overwrite)

    def __repr__(self) -> str:
        m = self.metrics
        shown = ", ".join(
            f"{k}={m[k]:.4g}"
            for k in ("sharpe", "cagr", "max_drawdown")
            if isinstance(m.get(k), int | float)
        )
        return f"RunResult({self.config.name!r}, {m.get('rule', '')!r}, {shown})"


# --------------------------------------------------------------------------- run, sweep
def run(
    config: ConfigLike,
    *,
    data: Frames | Market | None = None,
    strategy: StrategySpec | None = None,
) -> RunResult:
    """Run one backtest and return its :class:`RunResult`.

    ``config``: a :class:`BacktestConfig`, a YAML path, or a dict in the YAML's layout (without
    ``name`` it is named after its strategy; every key left out takes its default).
    ``data``: the user's own frames by dataset name (a DataFrame with a ``close`` column, or a
    Series of closes, on dates), used instead of ``data.source`` for those names and checked as
    files are (DataError/ConfigError naming the dataset); or a :class:`Market` from
    ``Market.from_frames``, used as it is (its dates and carry-forward, not ``data.*``; build it
    with ``need_open=True`` for ``execution.fill: next_open``). ``strategy``: a strategy made
    with :func:`strategy`, for this run only (``strategy.name`` must name it, or is filled in).
    """
    user = _user_strategy(strategy)
    cfg = _config(config, user)
    return RunResult(run_backtest(cfg, market=_market(cfg, data)))


def _plan(spec, user: StrategySpec | None) -> SweepPlan:
    if isinstance(spec, SweepPlan):
        if user is not None and spec.base.user_strategy is not user:
            raise ConfigError(
                "strategy=: give the strategy when the plan is built "
                "(plan_from_mapping(raw, strategy=...)), or pass the sweep as a dict or path"
            )
        return spec
    if isinstance(spec, str | Path):
        raw = read_yaml(spec, "sweep", "configs/sweeps/vratio_grid.yaml")
        return plan_from_mapping(raw, source=Path(spec), strategy=user)
    if isinstance(spec, Mapping):
        raw = dict(spec)
        raw.setdefault("name", _default_name(raw, user, "_sweep"))
        return plan_from_mapping(raw, strategy=user)
    raise ConfigError(f"sweep: expected a sweep YAML path or a dict, got {type(spec).__name__}")


def sweep(
    spec: str | Path | Mapping[str, Any] | SweepPlan,
    *,
    strategy: StrategySpec | None = None,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    top: int | None = None,
    report: bool = True,
    tearsheets: bool = True,
    progress: bool = True,
) -> SweepOutcome:
    """Run a parameter sweep (or walk-forward) and write its folder ``out/<name>/``, as
    ``volbacktest sweep`` does; returns the :class:`SweepOutcome` (``ranking``: the best
    10,000 finished runs at most, ``ranking.csv`` and the store hold every run; ``top``,
    ``drift``, ``walkforward``, ``report``, ``overfitting``: PSR, DSR, PBO and grid-edge
    warnings of the best run).

    ``spec``: a sweep YAML path or a dict in the layout of ``configs/sweeps/*.yaml`` (a backtest
    config plus ``sweep:`` and optionally ``split:``). ``strategy``: a strategy made with
    :func:`strategy` (vectorised executor in this process only: pool and Dask workers know only
    registered strategies). ``executor`` (``vectorised``, ``local``, ``dask``), ``workers``,
    ``scheduler`` (a Dask address, or ``"local"`` for a cluster of ``workers`` processes started
    for the sweep: with ``vectorised`` the fast path runs there in chunks) and ``top`` override
    the spec's values; ``out`` defaults to ``report.out_dir``; ``resume`` continues a sweep
    stored in the same folder.
    """
    plan = _plan(spec, _user_strategy(strategy))
    opts = ExecutorOptions(
        kind=executor or plan.spec.executor,
        workers=workers or plan.spec.workers,
        scheduler=scheduler,
        chunk_size=plan.spec.chunk_size,
        batch_size=plan.spec.batch_size,
        start_method=plan.spec.start_method,
        progress=progress,
    )
    with _keeping_backend(report):
        return run_sweep(
            plan,
            opts=opts,
            out=Path(out) if out is not None else None,
            resume=resume,
            top=top,
            report=report,
            tearsheets=tearsheets,
        )


__all__ = ["RunResult", "run", "strategy", "sweep"]
