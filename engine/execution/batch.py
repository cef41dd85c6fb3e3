"""Event-driven runs of many configs in one backtrader pass over feeds preloaded once.

``run_backtest`` builds, preloads and advances its feeds for every run (about a quarter of a
4,000-bar run's CPU time: a batch of runs costs about 0.75 of as many single runs). A sweep's
combinations share the market and the execution settings, so a :class:`BatchRunner` builds the
feeds exactly as ``run_backtest`` does, preloads them once, and runs a batch of
``TargetWeightStrategy`` instances side by side in one bar loop (backtrader's own optimisation
path, ``runstrategies(predata=True)``). The one change: each strategy trades through its own
``BackBroker``, configured as ``run_backtest`` configures its broker, so the strategies cannot
see each other's cash, orders or positions. Each result is then collected by the same ledger
(``execution.eventdriven.collect``).

Nothing numerical is re-implemented: decisions, sizing, broker arithmetic and ledger are the
engine's. ``tests/test_sweep_pool.py`` checks that every result is identical to
``run_backtest`` (equity, transactions, metrics) for every strategy and fill mode, with costs,
integer lots and daily rebalancing, and across consecutive batches on the same runner.
"""

from __future__ import annotations

from collections.abc import Sequence

import backtrader as bt
from backtrader import indicator, linebuffer

from volbacktest.engine.execution.bt import TargetWeightStrategy
from volbacktest.engine.execution.eventdriven import (
    add_feeds,
    collect,
    configure_broker,
    new_cerebro,
    run_key,
    warn_if_look_ahead,
)
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import BacktestConfig
from volbacktest.engine.inputs.market import Market


class OwnBrokerStrategy(TargetWeightStrategy):
    """``TargetWeightStrategy`` trading through a broker of its own (``own_broker``)."""

    params = (("own_broker", None),)

    def __init__(self):
        self.broker = self.p.own_broker
        self.broker.start()
        super().__init__()


class MultiBrokerCerebro(bt.Cerebro):
    """Cerebro whose broker cycle runs every strategy's own broker and routes its
    notifications to that strategy (as ``Cerebro._brokernotify`` does for the one broker)."""

    def _brokernotify(self):
        for strat in self.runningstrats:
            broker = strat.broker
            broker.next()
            while True:
                order = broker.get_notification()
                if order is None:
                    break
                strat._addnotification(order, quicknotify=self.p.quicknotify)


class BatchRunner:
    """Feeds of one market preloaded once; :meth:`run` executes configs sharing its key."""

    def __init__(self, cfg: BacktestConfig, market: Market):
        self.key = run_key(cfg)
        self.market = market
        cerebro = new_cerebro(cfg.execution, MultiBrokerCerebro)
        add_feeds(cerebro, cfg, market)
        # what Cerebro.run() prepares before running strategies, then the one preload
        cerebro._event_stop = False
        cerebro._dorunonce = True
        cerebro._dopreload = True
        cerebro._exactbars = 0
        cerebro.runwriters = []
        cerebro.writers_csv = False
        cerebro.runstrats = []
        for data in cerebro.datas:
            data.reset()
            data.extend(size=cerebro.params.lookahead)
            data._start()
            data.preload()
        self._cerebro = cerebro

    def run(self, cfgs: Sequence[BacktestConfig]) -> list[BacktestResult]:
        """Results of ``cfgs`` (all with this runner's key), each equal to ``run_backtest``."""
        for cfg in cfgs:
            if run_key(cfg) != self.key:
                raise ValueError(
                    f"config {cfg.name!r} needs other feeds or broker settings than this runner"
                )
            warn_if_look_ahead(cfg)
        cerebro = self._cerebro
        objcache = cerebro.p.objcache
        linebuffer.LineActions.cleancache()
        indicator.Indicator.cleancache()
        linebuffer.LineActions.usecache(objcache)
        indicator.Indicator.usecache(objcache)
        specs = [
            (
                OwnBrokerStrategy,
                (),
                {
                    "plan": cfg.plan,
                    "execution": cfg.execution,
                    "warmup": self.market.warmup_inputs(cfg.plan.inputs()),
                    "own_broker": configure_broker(bt.brokers.BackBroker(), cfg.execution),
                },
            )
            for cfg in cfgs
        ]
        strats = cerebro.runstrategies(specs, predata=True)
        return [collect(cfg, self.market, s) for cfg, s in zip(cfgs, strats, strict=True)]
