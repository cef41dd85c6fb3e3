"""The vectorised fast path: one array simulation over a whole parameter grid.

It reproduces ``run.runner.run_backtest`` (backtrader + ``execution.bt.TargetWeightStrategy``)
fill for fill, from the same pieces: the strategy's decision function (``StrategySpec.weights``),
the one sizing rule (``execution.sizing.order_sizes`` and ``order_legs``, called here for many
runs at once) and the ledger the event-driven executor rebuilds from fills. What backtrader adds
is replicated too, because exact agreement depends on it:

* **Timing.** The decision of row ``r`` acts on bar ``r + lag`` (lag 1 for ``next_close`` and
  ``next_open``, 0 for ``same_close``). Close fills are cheat-on-close orders that backtrader
  books in the *next* broker cycle at the creation bar's close and date, so orders created on
  the last bar never fill (they still count as a rebalance decision). Open fills happen in the
  same cycle, so the last bar's open orders do fill.
* **Rebalancing.** ``on_change``: a bar trades when its target tuple (NaN read as 0) differs from
  the last decided tuple; all-NaN rows (warm-up, no decision) are skipped without forgetting
  the last target. ``daily``: every decided bar.
* **Orders.** Sells (and zero deltas) first in asset order, then buys in asset order; orders of
  ``|size| <= 1e-12 * max(1, max |holding|)`` are not sent. Slippage moves the fill price by
  the percentage (``slip_out``: never capped at the bar's high/low).
* **Broker cash.** The sizing rule reads the broker's cash, so the simulator keeps that cash
  with backtrader's own arithmetic (average position price, closed value plus P&L, commission
  per execution leg, the margin check that rejects an opening leg which would make cash
  negative). Keeping it bit-exact matters: after a 100 % buy the cash left is about 1e-12 of
  equity, and whether the next ``daily`` rebalance sends a dust order depends on its last bits.

Equity is the runner's ledger: initial cash plus the cumulated fill cash flows, plus shares at
the closes. The conformance tests (``tests/test_sweep_conformance.py``) hold this module to
``run_backtest`` for every registered strategy, fill mode, cost setting and sizing mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, require_extra
from volbacktest.engine.execution.instruments import refuse_fast_path
from volbacktest.engine.execution.metrics import performance_metrics, run_labels
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.execution.sizing import CostModel, order_legs, order_sizes
from volbacktest.engine.inputs.config import BacktestConfig, ExecutionConfig
from volbacktest.engine.inputs.market import Market, market_for, warmup_summary


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class MarketArrays:
    """The arrays one simulation reads: the calendar, fill prices and the decision inputs."""

    calendar: pd.DatetimeIndex
    assets: tuple[str, ...]
    open: np.ndarray  # (n_bars, n_assets)
    close: np.ndarray  # (n_bars, n_assets)
    inputs: Mapping[str, np.ndarray]  # dataset name -> closes (warmup + n_bars,)
    warmup: int = 0  # leading rows of ``inputs`` before the first bar (Market.warmup)

    @classmethod
    def from_market(cls, market: Market, plan) -> MarketArrays:
        """Arrays for ``plan`` (a ``DecisionPlan``: anything with ``assets()``/``inputs()``).
        Chain-derived inputs (``column@chain``) are in the market already, computed as the
        backtest's chain indicator computes them (``inputs.chainseries.series_on_calendar``)."""
        assets = tuple(plan.assets())
        names = tuple(dict.fromkeys(plan.inputs()))
        missing = [n for n in (*assets, *names) if n not in market.frames]
        if missing:
            raise ValueError(
                f"the market has no frame for {missing}; it holds {sorted(market.frames)}"
            )
        opens = np.column_stack(
            [market.frames[a]["open"].to_numpy(dtype=np.float64) for a in assets]
        )
        closes = np.column_stack(
            [market.frames[a]["close"].to_numpy(dtype=np.float64) for a in assets]
        )
        inputs = market.decision_inputs(names)
        return cls(market.calendar, assets, opens, closes, inputs, market.n_warmup)

    def weights(self, plan) -> np.ndarray:
        """``plan``'s target weights on the calendar, decided over warm-up and trading bars
        (what ``engine.execution.bt.TargetWeights`` evaluates)."""
        return plan.weights(self.inputs, warmup=self.warmup)


def decision_stack(plans: Sequence, inputs: Mapping[str, np.ndarray], warmup: int = 0):
    """Target weights of every decision plan (``cfg.plan``: the strategy's decision function
    and its filters, exactly what ``engine.execution.bt.TargetWeights`` evaluates), shape
    ``(n_runs, n_bars, n_assets)``; ``warmup``: leading rows of ``inputs`` before the first bar
    (``MarketArrays.warmup``)."""
    if not plans:
        raise ValueError("no decision plans to evaluate")
    first = plans[0].weights(inputs, warmup=warmup)
    out = np.empty((len(plans), *first.shape))
    out[0] = first
    for j, plan in enumerate(plans[1:], start=1):
        out[j] = plan.weights(inputs, warmup=warmup)
    return out


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Fills:
    """Every execution of a simulation, in broker order (flat arrays of equal length)."""

    run: np.ndarray  # index of the run within the simulated stack
    bar: np.ndarray  # fill bar (the transaction's date)
    asset: np.ndarray  # column in MarketArrays.assets
    size: np.ndarray  # signed shares
    price: np.ndarray  # execution price (slipped)
    commission: np.ndarray

    def of_run(self, j: int) -> Fills:
        sel = self.run == j
        return Fills(*(getattr(self, f)[sel] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class GridSimulation:
    """Ledger results of ``n_runs`` simulations on one market."""

    equity: np.ndarray  # (n_bars, n_runs)
    returns: np.ndarray  # (n_bars, n_runs); bar 0 relative to the initial cash
    gross_exposure: np.ndarray  # (n_bars, n_runs): Σ |shares × close|
    fills: Fills
    rebalances: np.ndarray  # (n_runs,) decisions acted on (as engine.execution.bt counts them)
    rejected: np.ndarray  # (n_runs,) opening legs the broker would reject for lack of cash
    unfilled_at_end: np.ndarray  # (n_runs,) a close-fill target decided for the final close
    holdings: np.ndarray | None = None  # (n_bars, n_runs, n_assets) when asked for
    cash: np.ndarray | None = None  # (n_bars, n_runs) ledger cash, when holdings are kept
    kernel: str = "numpy"  # which simulation produced it (KERNELS)

    @property
    def n_runs(self) -> int:
        return self.equity.shape[1]


# --------------------------------------------------------------------------- events
def _any_change(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    out = a[0] != b[0]
    for x, y in zip(a[1:], b[1:], strict=True):
        out |= x != y
    return out


def _event_rows(w_cols: list[np.ndarray], valid: np.ndarray, rebalance: str) -> np.ndarray:
    """Mask ``(n_runs, n_bars)`` of decision rows that trigger a rebalance (``w_cols``: one
    ``(n_runs, n_bars)`` array of NaN-as-zero weights per asset)."""
    if rebalance == "daily":
        return valid
    n_runs, n_bars = valid.shape
    changed = np.ones((n_runs, n_bars), dtype=bool)
    if np.all(valid[:, 1:] >= valid[:, :-1]):  # warm-up then decisions: compare with row - 1
        changed[:, 1:] = _any_change([w[:, 1:] for w in w_cols], [w[:, :-1] for w in w_cols])
        changed[:, 1:] |= ~valid[:, :-1]
        return valid & changed
    idx = np.where(valid, np.arange(n_bars), -1)
    last = np.maximum.accumulate(idx, axis=1)
    prev = np.full((n_runs, n_bars), -1)
    prev[:, 1:] = last[:, :-1]
    prev_safe = np.maximum(prev, 0)
    changed = _any_change(w_cols, [np.take_along_axis(w, prev_safe, axis=1) for w in w_cols])
    return valid & (changed | (prev < 0))


def _pack(run: np.ndarray, values: Sequence[np.ndarray], n_runs: int):
    """Events sorted by run (then time) packed into ``(n_runs, max_events)`` matrices."""
    counts = np.bincount(run, minlength=n_runs)
    width = int(counts.max(initial=0))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(len(run)) - starts[run]
    packed = []
    for v in values:
        m = np.full((n_runs, width), -1, dtype=np.int64)
        m[run, pos] = v
        packed.append(m)
    return counts, packed


# --------------------------------------------------------------------------- exact pieces
def _position_update(old, avg, size, price):
    """backtrader ``Position.update`` over arrays: (new size, new price, opened, closed)."""
    new = old + size
    flat_after = new == 0
    flat_before = old == 0
    opens = flat_before | (((old > 0) & (size > 0)) | ((old < 0) & (size < 0)))  # from 0 / grow
    reduces = ((old > 0) & (new > 0)) | ((old < 0) & (new < 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        grown_avg = np.where(flat_before, price, (avg * old + size * price) / new)
    # precedence as in Position.update: closed to zero, opened/grown, reduced, reversed
    new_avg = np.where(flat_after, 0.0, np.where(opens, grown_avg, np.where(reduces, avg, price)))
    opened = np.where(flat_after, 0.0, np.where(opens, size, np.where(reduces, 0.0, new)))
    closed = np.where(flat_after, size, np.where(opens, 0.0, np.where(reduces, size, -old)))
    return new, new_avg, opened, closed


@dataclass
class _Book:
    """Broker state of the runs being simulated (cash as backtrader keeps it)."""

    cash: np.ndarray  # (n_runs,)
    shares: np.ndarray  # (n_runs, n_assets)
    avg_price: np.ndarray  # (n_runs, n_assets)


class _FillLog:
    def __init__(self):
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, run, bar, asset, size, price, comm):
        self.parts.append((run, bar, np.full(len(run), asset), size, price, comm))

    def build(self) -> Fills:
        if not self.parts:
            e_i, e_f = np.empty(0, dtype=np.int64), np.empty(0)
            return Fills(e_i, e_i, e_i, e_f, e_f, e_f)
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        order = np.lexsort((cols[1], cols[0]))  # stable: broker order within a run and bar
        cols = [c[order] for c in cols]
        return Fills(
            cols[0].astype(np.int64),
            cols[1].astype(np.int64),
            cols[2].astype(np.int64),
            cols[3],
            cols[4],
            cols[5],
        )


def _execute(book: _Book, rows, asset, size, base_price, bars, ex: ExecutionConfig, log):
    """Broker execution of one market order per row (backtrader ``BackBroker._execute``)."""
    slip = ex.slippage.percent
    if slip:
        price = np.where(size > 0, base_price * (1 + slip), base_price * (1 - slip))
    else:
        price = base_price
    unit_comm = price * ex.commission.percent + ex.commission.per_share
    old = book.shares[rows, asset]
    avg = book.avg_price[rows, asset]
    new, new_avg, opened, closed = _position_update(old, avg, size, price)
    cash = book.cash[rows]
    has_closed = closed != 0
    closed_comm = np.abs(closed) * unit_comm
    if has_closed.any():
        pnl = (-closed) * (price - avg) * 1.0
        closed_value = (-closed) * avg
        cash = np.where(has_closed, ((cash + (closed_value + pnl)) - closed_comm) + 0.0, cash)
    opened_comm = np.abs(opened) * unit_comm
    after_open = (cash - opened * price) - opened_comm
    has_opened = opened != 0
    rejected = has_opened & (after_open < 0.0)
    cash = np.where(has_opened & ~rejected, after_open, cash)
    exec_size = size
    if rejected.any() or (has_opened & has_closed).any():  # broker re-derives the position
        opened = np.where(rejected, 0.0, opened)
        opened_comm = np.where(rejected, 0.0, opened_comm)
        exec_size = closed + opened
        new, new_avg, _, _ = _position_update(old, avg, exec_size, price)
    done = exec_size != 0
    book.cash[rows] = cash
    book.shares[rows, asset] = np.where(done, new, old)
    book.avg_price[rows, asset] = np.where(done, new_avg, avg)
    d = np.flatnonzero(done)
    if len(d):
        es = exec_size[d]
        log.add(
            rows[d],
            bars[d],
            asset,
            es,
            (0.0 + es * price[d]) / es,  # backtrader's OrderData.addbit average price
            0.0 + (closed_comm[d] + opened_comm[d]),
        )
    return rejected


def _rebalance_step(
    book, rows, weights, prices, bars, ex: ExecutionConfig, costs: CostModel, log
) -> np.ndarray:
    """The one sizing rule (``execution.sizing.order_sizes``) for many runs at once, then the
    broker executions."""
    held = book.shares[rows]
    delta = order_sizes(
        weights,
        held,
        book.cash[rows],
        prices,
        costs,
        integer_lot=ex.integer_lot,
        max_gross_leverage=ex.max_gross_leverage,
    )
    return _send_orders(book, rows, held, delta, prices, bars, ex, log)


def _send_orders(book, rows, held_before, delta, prices, bars, ex, log) -> np.ndarray:
    """Execute one rebalance's orders in the executor's order (``sizing.rebalance_orders``):
    sells first, then buys, in asset order; a trade crossing zero goes out as two legs, close
    then open (``sizing.order_legs``)."""
    rejected = np.zeros(len(rows), dtype=np.int64)
    first, second = order_legs(held_before, delta)
    crossing = second != 0.0
    any_cross = bool(crossing.any())
    sent = delta != 0.0
    buys = delta > 0
    for phase in (sent & ~buys, sent & buys):
        for j in range(delta.shape[1]):
            sel = np.flatnonzero(phase[:, j])
            if not len(sel):
                continue
            rejected[sel] += _execute(
                book, rows[sel], j, first[sel, j], prices[sel, j], bars[sel], ex, log
            )
            if any_cross:
                two = sel[crossing[sel, j]]
                if len(two):
                    rejected[two] += _execute(
                        book, rows[two], j, second[two, j], prices[two, j], bars[two], ex, log
                    )
    return rejected


# --------------------------------------------------------------------------- kernels
KERNELS = ("auto", "numba", "numpy")
KERNEL_ENV = "VOLBT_KERNEL"  # auto | numba | numpy: which simulation the fast path runs


def numba_available() -> bool:
    """Whether the compiled kernel (extra ``fast``: numba) can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_for(n_assets: int, requested: str | None = None) -> str:
    """The simulation that runs: ``numba`` (``engine.execution.numba_kernel``, the default when
    numba is installed and the run trades fewer than 8 assets) or ``numpy`` (the reference,
    this module). ``requested`` (or the ``VOLBT_KERNEL`` environment variable) forces one;
    asking for ``numba`` without it installed names the extra."""
    choice = requested or os.environ.get(KERNEL_ENV) or "auto"
    if choice not in KERNELS:
        raise ConfigError(f"{KERNEL_ENV}={choice!r}: the fast-path kernel is one of {KERNELS}")
    if choice == "numpy":
        return "numpy"
    if choice == "numba":
        require_extra("numba", "fast")
    elif not numba_available():
        return "numpy"
    from volbacktest.engine.execution.numba_kernel import MAX_ASSETS

    return "numba" if n_assets <= MAX_ASSETS else "numpy"


# --------------------------------------------------------------------------- the simulator
def simulate(
    weights: np.ndarray,
    arrays: MarketArrays,
    execution: ExecutionConfig,
    *,
    keep_holdings: bool = False,
    kernel: str | None = None,
) -> GridSimulation:
    """Simulate ``weights`` (``(n_runs, n_bars, n_assets)`` target weights, NaN = no decision)
    on one market with the execution settings of ``run_backtest``; ``kernel`` as
    :func:`kernel_for` (both give the same bits: ``tests/test_fast_kernel.py``)."""
    w_all = np.asarray(weights, dtype=np.float64)
    if w_all.ndim == 2:
        w_all = w_all[None]
    n_runs, n_bars, k = w_all.shape
    if arrays.close.shape != (n_bars, k):
        raise ValueError(
            f"weights cover {n_bars} bars x {k} assets but the market arrays are "
            f"{arrays.close.shape}"
        )
    ex = execution
    next_open = ex.fill.uses_open
    lag = ex.fill.lag
    fill_prices = arrays.open if next_open else arrays.close
    if kernel_for(k, kernel) == "numba":
        return _simulate_compiled(w_all, fill_prices, arrays.close, ex, keep_holdings)
    last_fill_bar = n_bars - 1 if next_open else n_bars - 2

    w_cols = []
    valid = np.zeros((n_runs, n_bars), dtype=bool)
    for j in range(k):
        col = np.ascontiguousarray(w_all[:, :, j])
        known = ~np.isnan(col)
        valid |= known
        w_cols.append(np.where(known, col, 0.0))
    del w_all
    run_idx, row_idx = np.nonzero(_event_rows(w_cols, valid, ex.rebalance))
    bar_idx = row_idx + lag
    live = bar_idx <= last_fill_bar
    rebalances = np.bincount(run_idx[live], minlength=n_runs)
    # a close-fill target decided for the last bar is reported, not traded (engine.execution.bt)
    unfilled = np.zeros(n_runs, dtype=bool)
    unfilled[run_idx[bar_idx == n_bars - 1]] = not next_open
    counts, (ev_row, ev_bar) = _pack(run_idx[live], [row_idx[live], bar_idx[live]], n_runs)

    book = _Book(
        cash=np.full(n_runs, float(ex.initial_cash)),
        shares=np.zeros((n_runs, k)),
        avg_price=np.zeros((n_runs, k)),
    )
    log = _FillLog()
    costs = CostModel.of(ex)
    rejected = np.zeros(n_runs, dtype=np.int64)
    for e in range(ev_row.shape[1]):
        rows = np.flatnonzero(counts > e)
        r = ev_row[rows, e]
        b = ev_bar[rows, e]
        w = np.column_stack([wc[rows, r] for wc in w_cols])
        rejected[rows] += _rebalance_step(book, rows, w, fill_prices[b], b, ex, costs, log)
    fills = log.build()
    equity, gross, holdings, cash = _ledger(
        fills, arrays.close, n_runs, ex.initial_cash, keep_holdings
    )
    returns = np.empty_like(equity)
    returns[:, 0] = equity[:, 0] / ex.initial_cash - 1.0
    returns[:, 1:] = equity[:, 1:] / equity[:, :-1] - 1.0
    # (n_bars, n_runs) views of run-contiguous arrays: column reductions stay contiguous
    return GridSimulation(
        equity.T,
        returns.T,
        gross.T,
        fills,
        rebalances,
        rejected,
        unfilled,
        holdings,
        None if cash is None else cash.T,
    )


def _simulate_compiled(w_all, fill_prices, closes, ex, keep: bool) -> GridSimulation:
    from volbacktest.engine.execution.numba_kernel import simulate_compiled

    equity, returns, gross, log, counts, holdings, cash = simulate_compiled(
        np.ascontiguousarray(w_all), fill_prices, closes, ex, keep
    )
    ints = log[:, :3].astype(np.int64)
    fills = Fills(
        ints[:, 0], ints[:, 1], ints[:, 2], log[:, 3].copy(), log[:, 4].copy(), log[:, 5].copy()
    )
    return GridSimulation(
        equity.T,
        returns.T,
        gross.T,
        fills,
        counts[0],
        counts[1],
        counts[2].astype(bool),
        holdings if keep else None,
        cash.T if keep else None,
        kernel="numba",
    )


def _ledger(fills: Fills, closes: np.ndarray, n_runs: int, initial_cash: float, keep: bool):
    """Equity rebuilt from fills as ``engine.run.runner`` does: cash = initial + Σ flows to date,
    plus shares held at each close. Arrays are ``(n_runs, n_bars)``."""
    n_bars, k = closes.shape
    # np.bincount adds the weights of one cell in their order, as np.add.at does (same bits)
    cell = fills.run * n_bars + fills.bar
    flow = np.bincount(
        cell, weights=-fills.size * fills.price - fills.commission, minlength=n_runs * n_bars
    ).reshape(n_runs, n_bars)
    cash = initial_cash + np.cumsum(flow, axis=1)
    del flow
    equity = cash.copy()
    gross = np.zeros((n_runs, n_bars))
    holdings = np.zeros((n_bars, n_runs, k)) if keep else None
    shares = np.empty((n_runs, n_bars))
    for j in range(k):
        sel = fills.asset == j
        shares[:] = np.bincount(
            cell[sel], weights=fills.size[sel], minlength=n_runs * n_bars
        ).reshape(n_runs, n_bars)
        np.cumsum(shares, axis=1, out=shares)
        value = shares * closes[:, j]
        equity += value
        gross += np.abs(value)
        if keep:
            holdings[:, :, j] = shares.T
    return equity, gross, holdings, (cash if keep else None)


# --------------------------------------------------------------------------- single runs
def result_from_weights(
    cfg: BacktestConfig,
    market: Market,
    weights: np.ndarray,
    *,
    rule: str | None = None,
):
    """A full ``BacktestResult`` (ledger, positions, transactions, metrics) of one weights
    matrix ``(n_bars, n_assets)`` simulated with ``cfg.execution`` on ``market``."""
    plan = cfg.plan
    arrays = MarketArrays.from_market(market, plan)
    sim = simulate(weights[None], arrays, cfg.execution, keep_holdings=True)
    cal = arrays.calendar
    assets = list(arrays.assets)
    f = sim.fills
    tx = pd.DataFrame(
        {
            "date": cal[f.bar],
            "symbol": np.asarray(assets, dtype=object)[f.asset],
            "size": f.size,
            "price": f.price,
            "commission": f.commission,
        }
    )
    tx["value"] = -tx["size"] * tx["price"]
    tx = tx.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    equity = pd.Series(sim.equity[:, 0], index=cal, name="equity")
    returns = pd.Series(sim.returns[:, 0], index=cal, name="returns")
    holdings = pd.DataFrame(sim.holdings[:, 0, :], index=cal, columns=assets)
    positions = holdings * arrays.close
    positions["cash"] = sim.cash[:, 0]
    metrics = performance_metrics(returns, positions, tx, equity)
    warm_metrics, warm_note = warmup_summary(market, weights)
    notes = [*market.notes, warm_note]
    if sim.unfilled_at_end[0]:
        notes.append(
            f"the target decided for the final close {cal[-1]:%Y-%m-%d} was not traded: the "
            "backtest ends at that close"
        )
    metrics.update(
        {
            **run_labels(cfg, market.source, rule=rule or plan.describe()),
            "rebalances": int(sim.rebalances[0]),
            **warm_metrics,
        }
    )
    return BacktestResult(
        config=cfg,
        equity=equity,
        returns=returns,
        positions=positions,
        holdings=holdings,
        transactions=tx,
        weights=pd.DataFrame(weights, index=cal, columns=assets),
        metrics=metrics,
        market_notes=tuple(notes),
        problems=(f"{int(sim.rejected[0])} opening orders rejected for lack of cash",)
        if sim.rejected[0]
        else (),
    )


def fast_backtest(cfg: BacktestConfig, market: Market | None = None):
    """``run_backtest`` through the vectorised simulator (same result, no backtrader)."""
    refuse_fast_path(cfg)
    if market is None:
        market = market_for(cfg)
    arrays = MarketArrays.from_market(market, cfg.plan)
    return result_from_weights(cfg, market, arrays.weights(cfg.plan))
