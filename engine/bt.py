"""backtrader adapters: a numpy-backed feed, the target-weights indicator and the executor.

These classes only move data and orders; the numbers come from the strategy's pure decision
function (``strategies``) and the pure sizing rule (``engine.execution``).

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

from engine.errors import ExecutionWarning
from engine.execution import CostModel, order_sizes

log = logging.getLogger(__name__)

MAX_ASSETS = 8  # weight lines available to one strategy


class ArrayFeed(bt.feed.DataBase):
    """A daily feed read from numpy arrays (about 3× faster than ``PandasData``, which reads
    every cell through ``DataFrame.iloc``). ``frame`` needs a DatetimeIndex and float columns
    open/high/low/close (volume optional). Missing opens make ``has_open`` False."""

    params = (("frame", None),)

    def __init__(self):
        super().__init__()
        frame: pd.DataFrame = self.p.frame
        idx = pd.DatetimeIndex(frame.index)
        self._dt = np.array([bt.date2num(d) for d in idx.to_pydatetime()], dtype=np.float64)
        cols = {}
        for c in ("open", "high", "low", "close", "volume"):
            cols[c] = (
                frame[c].to_numpy(dtype=np.float64) if c in frame else np.full(len(frame), np.nan)
            )
        self._cols = cols
        self.has_open = bool(np.isfinite(cols["open"]).all())
        self._i = 0

    def start(self):
        super().start()
        self._i = 0

    def _load(self):
        i = self._i
        if i >= len(self._dt):
            return False
        lines = self.lines
        lines.datetime[0] = self._dt[i]
        c = self._cols
        lines.open[0] = c["open"][i]
        lines.high[0] = c["high"][i]
        lines.low[0] = c["low"][i]
        lines.close[0] = c["close"][i]
        lines.volume[0] = c["volume"][i]
        lines.openinterest[0] = 0.0
        self._i = i + 1
        return True


class TargetWeights(bt.Indicator):
    """Target weights per asset, from a strategy's pure decision function.

    The inputs are the data feeds named by ``params.inputs()`` (their close line). ``once`` calls
    the function over the whole preloaded history; ``next`` calls it over the history seen so far
    and keeps the last row. Decision functions are prefix-stable, so both modes give identical
    values (a test checks it).
    """

    lines = tuple(f"w{i}" for i in range(MAX_ASSETS))
    params = (("spec", None), ("sparams", None), ("input_names", ()))

    def __init__(self):
        self._k = len(self.p.sparams.assets())
        if self._k > MAX_ASSETS:
            raise ValueError(f"at most {MAX_ASSETS} assets per strategy, got {self._k}")

    def _compute(self, arrays) -> np.ndarray:
        inputs = dict(zip(self.p.input_names, arrays, strict=True))
        return self.p.spec.weights(inputs, self.p.sparams)

    def next(self):
        n = len(self.datas[0])
        arrays = [np.asarray(d.close.get(size=n), dtype=np.float64) for d in self.datas]
        w = self._compute(arrays)[-1]
        for j in range(MAX_ASSETS):
            self.lines[j][0] = w[j] if j < self._k else 0.0

    def once(self, start, end):
        arrays = [np.frombuffer(d.close.array, dtype=np.float64)[:end] for d in self.datas]
        w = self._compute(arrays)
        for j in range(MAX_ASSETS):
            col = w[start:end, j] if j < self._k else np.zeros(end - start)
            self.lines[j].array[start:end] = array.array("d", col)


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

    params = (("spec", None), ("sparams", None), ("execution", None))

    def __init__(self):
        sp = self.p.sparams
        ex = self.p.execution
        self.assets = [self.getdatabyname(n) for n in sp.assets()]
        inputs = [self.getdatabyname(n) for n in sp.inputs()]
        self.target = TargetWeights(
            *inputs, spec=self.p.spec, sparams=sp, input_names=tuple(sp.inputs())
        )
        self._lag = 0 if ex.fill == "same_close" else 1
        self._costs = CostModel(ex.commission.percent, ex.commission.per_share, ex.slippage.percent)
        self._lot = ex.lot_size if ex.sizing == "integer" else None
        self._last_target = None
        self.pending: dict[int, bt.Order] = {}
        self.fills: list[tuple] = []
        self.problems: list[str] = []
        self.decisions = 0
        self.broker_values: list[float] = []

    # -- hooks -------------------------------------------------------------------------------
    def next_open(self):
        if self.p.execution.fill == "next_open":
            self._rebalance(use_open=True)

    def next(self):
        if self.p.execution.fill != "next_open":
            self._rebalance(use_open=False)
        self.broker_values.append(self.broker.getvalue())

    def notify_order(self, order):
        if order.status in (order.Submitted, order.Accepted):
            return
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
    def _rebalance(self, use_open: bool):
        lag = self._lag
        if len(self) <= lag:
            return
        k = len(self.assets)
        w = np.array([self.target.lines[j][-lag] for j in range(k)], dtype=np.float64)
        if np.isnan(w).all():
            return  # no decision yet (warm-up)
        w = np.nan_to_num(w)
        if self.p.execution.rebalance == "on_change" and self._last_target is not None:
            if np.array_equal(w, self._last_target):
                return
        if self.pending:
            msg = f"{len(self.pending)} orders still pending at {self.datetime.date(0)}; skipped"
            self.problems.append(msg)
            warnings.warn(ExecutionWarning(msg), stacklevel=2)
            return
        self.decisions += 1
        self._last_target = w
        prices = np.array(
            [(d.open[0] if use_open else d.close[0]) for d in self.assets], dtype=np.float64
        )
        holdings = np.array([self.getposition(d).size for d in self.assets], dtype=np.float64)
        delta = order_sizes(
            w,
            holdings,
            self.broker.getcash(),
            prices,
            self._costs,
            integer_lot=self._lot,
            max_gross_leverage=self.p.execution.max_gross_leverage,
        )
        tiny = 1e-12 * max(1.0, float(np.abs(holdings).max(initial=0.0)))
        for j in np.argsort(delta > 0, kind="stable"):  # sells first
            size = float(delta[j])
            if abs(size) <= tiny:
                continue
            data = self.assets[j]
            order = (self.buy if size > 0 else self.sell)(
                data=data, size=abs(size), exectype=bt.Order.Market
            )
            self.pending[order.ref] = order
