"""backtrader adapters: a numpy-backed feed, the target-weights indicator and the executor.

These classes only move data and orders; the numbers come from the strategy's pure decision
function (``strategies``) and the pure sizing rule (``engine.execution.sizing``).

Fill modes (``ExecutionConfig.fill``), for a decision computed on bar t's close:

* ``next_close``: filled at bar t+1's close. At bar t+1 the executor reads the decision of
  bar t and submits a cheat-on-close market order (backtrader books it in the next broker cycle
  at the creation bar's close; the transaction carries the fill bar's date).
* ``next_open``: filled at bar t+1's open, through ``cheat_on_open``: the executor runs in
  ``next_open`` of bar t+1, sizes at that open, and the broker fills at the same open.
* ``same_close``: filled at bar t's own close, i.e. on the close the signal observed. This is
  look-ahead on daily data; it exists to compare with published replications and every output
  labels it.
"""

from __future__ import annotations

import array
import logging
import warnings

import backtrader as bt
import numpy as np
import pandas as pd

from volbacktest.engine.errors import ExecutionWarning
from volbacktest.engine.execution.sizing import CostModel, order_sizes, rebalance_orders
from volbacktest.engine.inputs.chainseries import ChainContext, ChainSeriesSpec, split_input

log = logging.getLogger(__name__)

MAX_ASSETS = 8  # assets of one strategy (weight lines w0..)
MAX_SIGNALS = 8  # signal series of one run (lines s0.. of the one SignalFeed)


_SIZED: dict[tuple[type, str, int], type] = {}


def _numbered_lines(cls: type, prefix: str, n: int) -> type:
    """``cls`` with the lines ``{prefix}0 .. {prefix}{n-1}`` (backtrader declares lines per
    class, and every line costs a cursor move per bar: a run declares only the lines it uses)."""
    key = (cls, prefix, n)
    if key not in _SIZED:
        lines = tuple(f"{prefix}{j}" for j in range(n))
        _SIZED[key] = type(f"{cls.__name__}{n}", (cls,), {"lines": lines, "__module__": __name__})
    return _SIZED[key]


_ORDINAL_OF_1970 = 719_163  # datetime.date(1970, 1, 1).toordinal()


def bt_dates(index: pd.DatetimeIndex) -> np.ndarray:
    """backtrader's float dates (``bt.date2num``) of ``index``; a naive index of midnights (daily
    bars) in one numpy step: ``date2num`` of a midnight is its proleptic ordinal as a float."""
    index = pd.DatetimeIndex(index)
    if index.tz is None and (index == index.normalize()).all():
        days = index.to_numpy().astype("datetime64[D]").astype(np.int64)
        return (days + _ORDINAL_OF_1970).astype(np.float64)
    return np.array([bt.date2num(d) for d in index.to_pydatetime()], dtype=np.float64)


class _NumpyFeed(bt.feed.DataBase):
    """Daily bars read from numpy arrays (about 3x faster than ``PandasData``, which reads every
    cell through ``DataFrame.iloc``). Subclasses give their columns to ``_bind`` (line alias ->
    values, one per bar; lines not given stay NaN, as backtrader leaves a line nobody sets).

    ``preload`` writes each line's whole buffer at once instead of backtrader's bar-by-bar
    ``load``; after it, ``advance`` moves the lines' cursors and sets the ``tick_*`` attributes
    the broker fills from without backtrader's per-alias ``getattr``/``setattr`` loops, and
    ``advance_peek`` reads the next date directly. They leave the lines, cursors and ticks
    exactly as backtrader's own methods do (a test compares them); any setting they do not
    cover (filters, time zones, date bounds, look-ahead or bounded buffers, a master data) keeps
    backtrader's methods. ``_load`` serves runs without preload."""

    params = (("frame", None),)

    def __init__(self):
        super().__init__()
        self._dt = bt_dates(self.p.frame.index)
        self._i = 0
        self._bulk = False  # preloaded by ``preload`` below: the fast advance applies
        self._sources: list[tuple[object, np.ndarray]] = []

    def _bind(self, columns: dict[str, np.ndarray]) -> None:
        """The values of each line (by alias); the datetime line is always the frame's index."""
        columns = {"datetime": self._dt, **columns}
        self._sources = [
            (getattr(self.lines, alias), np.ascontiguousarray(values, dtype=np.float64))
            for alias, values in columns.items()
        ]
        aliases = self.lines.getlinealiases()
        self._tick_none = {f"tick_{a}": None for a in aliases if a != "datetime"}
        self._tick_none["tick_last"] = None
        self._tick_lines = [
            (f"tick_{a}", getattr(self.lines, a)) for a in aliases if a != "datetime"
        ]
        self._tick_last_line = self.lines[0]
        self._all_lines = list(self.lines)
        self._dt_line = self.lines.datetime

    def start(self):
        super().start()
        self._i = 0
        self._bulk = False

    def _load(self):
        i = self._i
        if i >= len(self._dt):
            return False
        for line, values in self._sources:
            line[0] = values[i]
        self._i = i + 1
        return True

    def _plain_buffers(self) -> bool:
        """True when ``load`` would keep every bar unchanged into empty unbounded buffers."""
        lines = list(self.lines)
        return (
            not self._filters
            and not self._ffilters
            and not self._barstack
            and not self._barstash
            and not self._tzinput
            and (len(self._dt) == 0 or self.fromdate <= self._dt.min())
            and (len(self._dt) == 0 or self._dt.max() <= self.todate)
            and all(
                line.mode == line.UnBounded
                and not line.bindings
                and not line.extension
                and len(line.array) == 0
                for line in lines
            )
        )

    def preload(self):
        if self._i or not self._plain_buffers():
            return super().preload()
        n = len(self._dt)
        given = {id(line): values for line, values in self._sources}
        for line in self.lines:
            values = given.get(id(line))
            if values is None:
                values = np.full(n, np.nan)
            line.array.frombytes(values.tobytes())
            line.idx = n - 1  # where backtrader's load loop leaves it
            line.lencount = n
        self._i = n
        self._last()
        self.home()
        self._bulk = True

    def advance(self, size=1, datamaster=None, ticks=True):
        if not self._bulk or datamaster is not None or not ticks:
            return super().advance(size, datamaster=datamaster, ticks=ticks)
        # backtrader's DataBase.advance: ticks cleared, lines advanced (LineBuffer.advance of
        # an unbounded buffer), ticks filled from the new bar unless past the buffer's last bar
        state = self.__dict__
        state.update(self._tick_none)
        for line in self._all_lines:
            line._idx += size
            line.lencount += size
        line0 = self._tick_last_line
        if line0.lencount < len(line0.array):
            for name, line in self._tick_lines:
                state[name] = line.array[line._idx]
            state["tick_last"] = line0.array[line0._idx]

    def advance_peek(self):
        if not self._bulk:
            return super().advance_peek()
        line0 = self._tick_last_line  # backtrader: the next bar's datetime, inf after the last
        if line0.lencount < len(line0.array):
            dtline = self._dt_line
            return dtline.array[dtline._idx + 1]
        return float("inf")


class ArrayFeed(_NumpyFeed):
    """A tradable instrument's daily bars. ``frame`` needs float columns open/high/low/close
    (volume optional); missing opens make ``has_open`` False."""

    def __init__(self):
        super().__init__()
        frame: pd.DataFrame = self.p.frame
        cols = {
            c: frame[c].to_numpy(dtype=np.float64) if c in frame else np.full(len(frame), np.nan)
            for c in ("open", "high", "low", "close", "volume")
        }
        cols["openinterest"] = np.zeros(len(frame))
        self._bind(cols)
        self.has_open = bool(np.isfinite(cols["open"]).all())


class SignalFeed(_NumpyFeed):
    """Signal-only series (VIX, VIX3M, SPX, futures, ...) as the lines ``s0, s1, ...`` of one
    non-tradable feed (``SignalFeed.of(frame)``: one line per column, in order). One feed for
    all signals keeps backtrader's per-feed, per-bar overhead down; the executor never sends
    orders to it."""

    FIRST_SIGNAL_LINE = 7  # after datetime, open, high, low, close, volume, openinterest

    @classmethod
    def of(cls, frame: pd.DataFrame) -> SignalFeed:
        if frame.shape[1] > MAX_SIGNALS:
            raise ValueError(f"at most {MAX_SIGNALS} signal series per run, got {frame.shape[1]}")
        return _numbered_lines(cls, "s", frame.shape[1])(frame=frame)

    def __init__(self):
        super().__init__()
        frame: pd.DataFrame = self.p.frame
        values = frame.to_numpy(dtype=np.float64)
        self.names = tuple(frame.columns)
        self._bind({f"s{j}": values[:, j] for j in range(values.shape[1])})

    def line_of(self, name: str):
        return self.lines[self.FIRST_SIGNAL_LINE + self.names.index(name)]


class TargetWeights(bt.Indicator):
    """Target weights per asset, from a strategy's pure decision function.

    The inputs are lines (an asset's close, or a signal line), in the order of
    ``params.inputs()``. ``once`` calls
    the function over the whole preloaded history; ``next`` calls it over the history seen so far
    and keeps the last row. Decision functions are prefix-stable, so both modes give identical
    values (a test checks it). ``warmup`` (one array per input, same order: the market's
    history before the first bar, ``Market.warmup``) is put before the lines' values, and only
    the lines' rows are kept (``DecisionPlan.weights(..., warmup=)``). ``TargetWeights.of(plan)``
    is the class with one line ``w0, w1, ...`` per asset of ``plan``.
    """

    params = (("plan", None), ("input_names", ()), ("warmup", ()))

    @classmethod
    def of(cls, plan) -> type[TargetWeights]:
        k = len(plan.assets())
        if k > MAX_ASSETS:
            raise ValueError(f"at most {MAX_ASSETS} assets per strategy, got {k}")
        return _numbered_lines(cls, "w", k)

    def __init__(self):
        self._k = len(self.p.plan.assets())
        self._n_warmup = len(self.p.warmup[0]) if len(self.p.warmup) else 0

    def _compute(self, arrays) -> np.ndarray:
        if self._n_warmup:
            arrays = [np.concatenate((h, a)) for h, a in zip(self.p.warmup, arrays, strict=True)]
        inputs = dict(zip(self.p.input_names, arrays, strict=True))
        return self.p.plan.weights(inputs, warmup=self._n_warmup)

    def next(self):
        n = len(self.datas[0])
        arrays = [np.asarray(d.lines[0].get(size=n), dtype=np.float64) for d in self.datas]
        w = self._compute(arrays)[-1]
        for j in range(self._k):
            self.lines[j][0] = w[j]

    def once(self, start, end):
        arrays = [np.frombuffer(d.lines[0].array, dtype=np.float64)[:end] for d in self.datas]
        w = self._compute(arrays)
        for j in range(self._k):
            self.lines[j].array[start:end] = array.array("d", w[start:end, j])


class PercentPerShareCommission(bt.CommInfoBase):
    """Stock-like commission: ``|size| × (price × percent + per_share)``."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("per_share", 0.0),
    )

    def _getcommission(self, size, price, pseudoexec):
        return abs(size) * (price * self.p.commission + self.p.per_share)


class TargetWeightStrategy(bt.Strategy):
    """Executes a registered strategy's target weights with an explicit fill mode.

    One decision per bar; orders of one rebalance are submitted together (sells first) and
    tracked until the broker reports them; no order is overwritten or resubmitted within a bar.
    """

    params = (("plan", None), ("execution", None), ("warmup", None))

    def __init__(self):
        plan = self.p.plan
        ex = self.p.execution
        assets = plan.assets()
        self.assets = [self.getdatabyname(n) for n in assets]
        signals = next((d for d in self.datas if isinstance(d, SignalFeed)), None)
        inputs = []
        for n in plan.inputs():
            if n in assets:
                inputs.append(self.getdatabyname(n).close)
            elif "@" in n:
                inputs.append(self._chain_line(n))
            else:
                inputs.append(signals.line_of(n))
        warm = self.p.warmup  # the market's history before the first bar, by input name
        self.target = TargetWeights.of(plan)(
            *inputs,
            plan=plan,
            input_names=plan.inputs(),
            warmup=tuple(warm[n] for n in plan.inputs()) if warm else (),
        )
        self._wlines = [self.target.lines[j] for j in range(len(self.assets))]
        self._lag = ex.fill.lag
        self._costs = CostModel.of(ex)
        self._lot = ex.integer_lot
        self._last_target = None
        self.pending: dict[int, bt.Order] = {}
        self.fills: list[tuple] = []
        self.problems: list[str] = []
        self.decisions = 0
        self._traded_at_open = False
        self.unfilled_at_end = None  # a target decided for the final close (cannot fill)
        self.broker_values: list[tuple[int, float]] = []  # (bar, value) cross-check marks

    def _chain_line(self, name: str):
        """The line of the chain indicator computing ``column@chain`` on its option-chain feed
        (one indicator per chain series, shared by the inputs that use it)."""
        spec, column, chain = split_input(name)
        feed = next(
            d for d in self.datas if isinstance(d, OptionChainFeed) and d.p.chain_name == chain
        )
        cache = self.__dict__.setdefault("_chain_indicators", {})
        key = (spec.name, chain)
        if key not in cache:
            cache[key] = ChainIndicator.for_spec(spec)(feed)
        return cache[key].lines[spec.columns.index(column)]

    # -- hooks -------------------------------------------------------------------------------
    def next_open(self):
        if self.p.execution.fill.uses_open:
            self._traded_at_open = self._rebalance(use_open=True)

    def next(self):
        if not self.p.execution.fill.uses_open:
            self._rebalance(use_open=False)
        elif self._traded_at_open:  # mark the close after an open fill, for the ledger check
            self._traded_at_open = False
            self.broker_values.append((len(self) - 1, self.broker.getvalue()))

    def notify_order(self, order):
        if order.status in (order.Submitted, order.Accepted, order.Partial):
            return  # a Completed notification follows and carries the cumulative fill
        self.pending.pop(order.ref, None)
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append(
                (
                    bt.num2date(ex.dt),
                    order.data._name,
                    float(ex.size),
                    float(ex.price),
                    float(ex.comm),
                )
            )
        else:
            msg = (
                f"order {order.ref} for {order.data._name} ({order.getstatusname()}) on "
                f"{bt.num2date(order.created.dt):%Y-%m-%d}, size {order.created.size:.6g}"
            )
            self.problems.append(msg)
            warnings.warn(ExecutionWarning(msg), stacklevel=2)

    # -- the rebalance -------------------------------------------------------------------------
    def _rebalance(self, use_open: bool) -> bool:
        """Trade to the current target if it changed; True when orders were submitted."""
        # In next_open (cheat-on-open) backtrader has advanced the feeds but not yet this
        # strategy's indicators, so ``line[0]`` is still the previous bar's decision.
        ago = 0 if use_open else -self._lag
        if len(self) <= (0 if use_open else self._lag):
            return False
        w = tuple(line[ago] for line in self._wlines)
        if all(x != x for x in w):
            return False  # no decision yet (warm-up)
        w = tuple(x if x == x else 0.0 for x in w)
        if self.p.execution.rebalance == "on_change" and w == self._last_target:
            return False
        if self.pending:
            msg = f"{len(self.pending)} orders still pending at {self.datetime.date(0)}; skipped"
            self.problems.append(msg)
            warnings.warn(ExecutionWarning(msg), stacklevel=2)
            return False
        if not use_open and self._at_last_bar():
            # a close fill books in the broker's next cycle, which never comes after the last
            # bar: say so instead of leaving an order that silently never fills
            self.unfilled_at_end = w
            return False
        self.decisions += 1
        self._last_target = w
        if not use_open:  # cross-check point for the ledger (value before this bar's orders)
            self.broker_values.append((len(self) - 1, self.broker.getvalue()))
        prices = np.array(
            [(d.open[0] if use_open else d.close[0]) for d in self.assets], dtype=np.float64
        )
        holdings = np.array([self.getposition(d).size for d in self.assets], dtype=np.float64)
        delta = order_sizes(
            np.array(w),
            holdings,
            self.broker.getcash(),
            prices,
            self._costs,
            integer_lot=self._lot,
            max_gross_leverage=self.p.execution.max_gross_leverage,
        )
        for j, size in rebalance_orders(delta, holdings):
            order = (self.buy if size > 0 else self.sell)(
                data=self.assets[j], size=abs(size), exectype=bt.Order.Market
            )
            self.pending[order.ref] = order
        return bool(self.pending)

    def _at_last_bar(self) -> bool:
        feed = self.assets[0]
        return len(feed) >= len(feed._dt)

    def stop(self):
        self.broker_values.append((len(self) - 1, self.broker.getvalue()))


# --------------------------------------------------------------------------- option chains


class OptionChainFeed(ArrayFeed):
    params = (("chain", None), ("context", None), ("chain_name", ""))

    def __init__(self):
        super().__init__()
        chain: pd.DataFrame = self.p.chain
        order = np.argsort(chain["trade_date"].to_numpy(), kind="stable")
        self._chain = chain.iloc[order].reset_index(drop=True)
        self._chain_dates = self._chain["trade_date"].to_numpy(dtype="datetime64[ns]")
        self.dates = pd.DatetimeIndex(self.p.frame.index)
        self.context: ChainContext = self.p.context

    def chain_between(self, first, last) -> pd.DataFrame:
        """Chain rows with ``first <= trade_date <= last``."""
        lo = np.searchsorted(self._chain_dates, np.datetime64(pd.Timestamp(first), "ns"), "left")
        hi = np.searchsorted(self._chain_dates, np.datetime64(pd.Timestamp(last), "ns"), "right")
        return self._chain.iloc[lo:hi]

    def chain_today(self) -> pd.DataFrame:
        """The point-in-time chain of the current bar."""
        day = self.dates[len(self) - 1]
        return self.chain_between(day, day)


class ChainIndicator(bt.Indicator):
    """Base of indicators computed from an option chain feed (see module docstring)."""

    lines = ()
    series_spec: ChainSeriesSpec | None = None
    _classes: dict[str, type] = {}

    @classmethod
    def for_spec(cls, spec: ChainSeriesSpec) -> type:
        if spec.name not in cls._classes:
            cls._classes[spec.name] = type(
                f"ChainIndicator_{spec.name}",
                (cls,),
                {"lines": tuple(spec.columns), "series_spec": spec, "__module__": __name__},
            )
        return cls._classes[spec.name]

    def _frame(self, chain: pd.DataFrame) -> pd.DataFrame:
        return self.series_spec.compute(chain, self.data.context)

    def next(self):
        feed = self.data
        i = len(feed) - 1
        day = feed.dates[i]
        first = feed.dates[max(0, i - self.series_spec.lookback_days)]
        frame = self._frame(feed.chain_between(first, day))
        row = frame.reindex([day])
        for j, col in enumerate(self.series_spec.columns):
            self.lines[j][0] = float(row[col].iloc[0])

    def once(self, start, end):
        feed = self.data
        dates = feed.dates[:end]
        frame = self._frame(feed.chain_between(dates[0], dates[-1])).reindex(dates)
        for j, col in enumerate(self.series_spec.columns):
            values = frame[col].to_numpy(dtype=np.float64)[start:end]
            self.lines[j].array[start:end] = array.array("d", values)
