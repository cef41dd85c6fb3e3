"""The event-driven executor's pieces shared by a single run (``run.runner.run_backtest``) and
a batch of runs over one preloaded market (``execution.batch.BatchRunner``): the cerebro and
broker settings, the feeds, and the ledger that turns a finished strategy into a result.

The equity, positions and returns reported are rebuilt from the fills (initial cash, every
transaction with its commission, and closing prices), so a fill at a bar's close is booked on
that bar; the broker's own bar-by-bar value is kept as a cross-check and must agree on every bar
that has no same-bar fill pending (a mismatch is an engine bug and raises).
"""

from __future__ import annotations

import json
import warnings

import backtrader as bt
import numpy as np
import pandas as pd

from volbacktest.engine.errors import EngineError
from volbacktest.engine.execution.bt import (
    ArrayFeed,
    OptionChainFeed,
    PercentPerShareCommission,
    SignalFeed,
)
from volbacktest.engine.execution.metrics import equity_returns, performance_metrics, run_labels
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.chainseries import is_chain_input, load_chain, parse_input
from volbacktest.engine.inputs.config import BacktestConfig, ExecutionConfig
from volbacktest.engine.inputs.market import Market, warmup_summary

LEDGER_RTOL = 1e-9


def warn_if_look_ahead(cfg: BacktestConfig, stacklevel: int = 3) -> None:
    """The one look-ahead warning of a ``same_close`` run (results are labelled too)."""
    if cfg.execution.look_ahead:
        warnings.warn(cfg.execution.fill.look_ahead_warning(cfg.name), stacklevel=stacklevel)


def new_cerebro(
    ex: ExecutionConfig, cls: type[bt.Cerebro] = bt.Cerebro, *, runonce=True, preload=True
) -> bt.Cerebro:
    """A cerebro with the engine's settings for ``ex``'s fill mode."""
    return cls(
        stdstats=False,
        runonce=runonce,
        preload=preload,
        cheat_on_open=ex.fill.uses_open,
        quicknotify=True,
    )


def run_key(cfg: BacktestConfig, *, broker: bool = True) -> str:
    """A string equal for configs that can share one market (``broker=False``: same data
    settings, datasets and need for opens) or one preloaded cerebro and broker settings
    (``broker=True``: also the same execution settings). The sweep's market cache, its
    vectorised groups and its event-driven batches all key on it."""
    plan = cfg.plan
    # pydantic-core's JSON (fields in model order): about 20x faster than model_dump + json
    # here, and a sweep keys every combination on it
    parts = [
        cfg.data.model_dump_json(),
        json.dumps([list(plan.assets()), list(plan.inputs()), cfg.execution.fill.uses_open]),
    ]
    if broker:
        parts.append(cfg.execution.model_dump_json())
    return "\n".join(parts)


def configure_broker(broker: bt.brokers.BackBroker, ex) -> bt.brokers.BackBroker:
    """The broker settings of every run: cash, fill mode (cheat-on-close/open), no submit-time
    cash check (the sizing rule keeps cash >= 0 after costs), slippage and commission."""
    broker.setcash(ex.initial_cash)
    broker.set_checksubmit(False)
    broker.set_coc(not ex.fill.uses_open)
    broker.set_coo(ex.fill.uses_open)
    if ex.slippage.percent:
        broker.set_slippage_perc(
            ex.slippage.percent, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
        )
    broker.addcommissioninfo(
        PercentPerShareCommission(
            commission=ex.commission.percent, per_share=ex.commission.per_share
        )
    )
    return broker


def add_feeds(cerebro: bt.Cerebro, cfg: BacktestConfig, market: Market) -> None:
    """The run's feeds: one per traded asset (an option-chain feed where a chain input uses
    it), and one non-tradable SignalFeed carrying every other input series."""
    plan = cfg.plan
    assets = list(plan.assets())
    for n in assets:
        cerebro.adddata(asset_feed(n, plan, cfg, market), name=n)
    signal_names = [n for n in plan.inputs() if n not in assets and not is_chain_input(n)]
    if signal_names:
        signals = pd.DataFrame({n: market.frames[n]["close"] for n in signal_names})
        cerebro.adddata(SignalFeed.of(signals), name="signals")


def asset_feed(name: str, plan, cfg: BacktestConfig, market: Market):
    """A price feed for a traded asset; an option-chain feed when some input is derived from a
    chain on this asset."""
    chains = {parse_input(n, cfg.data)[2] for n in plan.inputs() if is_chain_input(n)}
    for chain in chains:
        if chain.underlying == name:
            chain_df, context = load_chain(chain.name, cfg.data)
            return OptionChainFeed(
                frame=market.frames[name], chain=chain_df, context=context, chain_name=chain.name
            )
    return ArrayFeed(frame=market.frames[name])


def collect(cfg: BacktestConfig, market: Market, strat) -> BacktestResult:
    plan = cfg.plan
    assets = list(plan.assets())
    cal = market.calendar
    closes = pd.DataFrame({a: market.frames[a]["close"] for a in assets}, index=cal)

    tx = pd.DataFrame(strat.fills, columns=["date", "symbol", "size", "price", "commission"])
    tx["date"] = pd.to_datetime(tx["date"]).dt.normalize()
    tx["value"] = -tx["size"] * tx["price"]  # cash flow before commission
    tx = tx.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    if len(tx):
        flow = tx.groupby("date")[["value", "commission"]].sum()
        cash_flow = (flow["value"] - flow["commission"]).reindex(cal, fill_value=0.0)
        shares = tx.pivot_table(index="date", columns="symbol", values="size", aggfunc="sum")
        shares = shares.reindex(index=cal, columns=assets).fillna(0.0).cumsum()
        shares = shares.rename_axis(columns=None)  # as without fills: no 'symbol' axis name
    else:
        cash_flow = pd.Series(0.0, index=cal)
        shares = pd.DataFrame(0.0, index=cal, columns=assets)
    cash = cfg.execution.initial_cash + cash_flow.cumsum()
    values = shares * closes
    equity = values.sum(axis=1) + cash
    equity.name = "equity"

    # cross-check against the broker's own marks (see module docstring): at each mark the broker
    # has booked every fill dated before the marked bar (and, for next_open, on it)
    marks = pd.Series(dict(strat.broker_values))
    same_bar = not cfg.execution.fill.uses_open
    fill_bars = {cal.get_loc(d) for d in tx["date"]} if same_bar else set()
    marks = marks[[b not in fill_bars for b in marks.index]]
    ledger = equity.to_numpy()[marks.index.to_numpy(dtype=int)]
    # rounding scales with the money that has moved through the book, not with a near-zero equity
    scale = np.maximum(np.abs(marks.to_numpy()), cfg.execution.initial_cash)
    rel = np.abs(ledger - marks.to_numpy()) / scale
    if len(rel) and float(rel.max()) > LEDGER_RTOL:
        i = int(marks.index[int(rel.argmax())])
        raise EngineError(
            f"internal ledger mismatch on {cal[i]:%Y-%m-%d}: fills give {equity.iloc[i]:.6f}, "
            f"broker {marks[i]:.6f}; please report this with the config"
        )

    returns = equity_returns(equity, cfg.execution.initial_cash)
    positions = values.copy()
    positions["cash"] = cash
    w_lines = strat.target.lines
    weights = pd.DataFrame(
        {a: np.asarray(w_lines[j].array[: len(cal)], dtype=float) for j, a in enumerate(assets)},
        index=cal,
    )
    metrics = performance_metrics(returns, positions, tx, equity)
    warm_metrics, warm_note = warmup_summary(market, weights.to_numpy())
    notes = [*market.notes, warm_note]
    if strat.unfilled_at_end is not None:
        notes.append(
            f"target {dict(zip(assets, strat.unfilled_at_end, strict=True))} for the final "
            f"close {cal[-1]:%Y-%m-%d} was not traded: the backtest ends at that close"
        )
    metrics.update(
        {
            **run_labels(cfg, market.source, rule=plan.describe()),
            "rebalances": strat.decisions,
            **warm_metrics,
        }
    )
    return BacktestResult(
        config=cfg,
        equity=equity,
        returns=returns,
        positions=positions,
        holdings=shares,
        transactions=tx,
        weights=weights,
        metrics=metrics,
        market_notes=tuple(notes),
        problems=tuple(strat.problems),
    )
