"""Run one backtest: config → market → backtrader → ledger → result (the event-driven pieces
are ``execution.eventdriven``; the batch runner of sweeps shares them)."""

from __future__ import annotations

import dataclasses
import logging

from volbacktest.engine.execution.bt import TargetWeightStrategy
from volbacktest.engine.execution.eventdriven import (
    add_feeds,
    collect,
    configure_broker,
    new_cerebro,
    warn_if_look_ahead,
)
from volbacktest.engine.execution.futures import (
    FuturesMarket,
    is_futures_run,
    run_futures_backtest,
)
from volbacktest.engine.execution.options import (
    OptionsMarket,
    is_options_run,
    run_options_backtest,
)
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import BacktestConfig
from volbacktest.engine.inputs.market import Market, market_for

log = logging.getLogger(__name__)


def run_backtest(
    cfg: BacktestConfig,
    *,
    market: Market | FuturesMarket | OptionsMarket | None = None,
    runonce: bool = True,
    preload: bool = True,
) -> BacktestResult:
    """Run ``cfg`` on backtrader and return the ledger-based result (a ``futures:`` config runs
    on the futures contract executor, ``engine.execution.futures``, an ``options:`` config on the
    options executor, ``engine.execution.options``)."""
    warn_if_look_ahead(cfg)
    if is_futures_run(cfg):
        futures_market = market if isinstance(market, FuturesMarket) else None
        return run_futures_backtest(cfg, futures_market, runonce=runonce)
    if is_options_run(cfg):
        options_market = market if isinstance(market, OptionsMarket) else None
        return run_options_backtest(cfg, options_market, runonce=runonce)
    market = market or market_for(cfg)
    cerebro = new_cerebro(cfg.execution, runonce=runonce, preload=preload)
    configure_broker(cerebro.broker, cfg.execution)
    add_feeds(cerebro, cfg, market)
    cerebro.addstrategy(
        TargetWeightStrategy,
        plan=cfg.plan,
        execution=cfg.execution,
        warmup=market.warmup_inputs(cfg.plan.inputs()),
    )
    result = collect(cfg, market, cerebro.run()[0])
    return dataclasses.replace(result, provenance=market.provenance)
