"""The batched event-driven runner (feeds preloaded once, one broker per strategy) gives exactly
the results of separate ``run_backtest`` calls: every strategy, every fill mode, with costs,
integer lots and daily rebalancing, and across consecutive batches on the same runner."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from sweep_support import cfg_for

from volbacktest import strategies
from volbacktest.engine.execution.batch import BatchRunner
from volbacktest.engine.inputs.market import market_for
from volbacktest.engine.run.runner import run_backtest

COSTS = {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}}


def same_result(a, b) -> None:
    pd.testing.assert_series_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    pd.testing.assert_frame_equal(a.weights, b.weights)
    assert a.metrics == b.metrics
    assert a.problems == b.problems


SETTINGS = {
    "costs": COSTS,
    "lots": {"sizing": "integer", "lot_size": 10, **COSTS},
    "daily": {"rebalance": "daily", **COSTS},
}
CASES = [
    ("next_close", "costs"),
    ("next_open", "costs"),
    ("same_close", "costs"),
    ("next_close", "lots"),
    ("next_open", "daily"),
]


@pytest.mark.parametrize(("fill", "setting"), CASES)
@pytest.mark.parametrize("name", strategies.share_names())
def test_batch_runner_equals_run_backtest(name, fill, setting):
    """Strategies side by side on shared feeds, each with its own broker, give exactly the
    results of separate run_backtest calls (the same config twice in a batch: a shared broker
    would double every order)."""
    cfg = cfg_for(name, fill, **SETTINGS[setting])
    market = market_for(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # same_close's LookAheadWarning
        ref = run_backtest(cfg, market=market)
        runner = BatchRunner(cfg, market)
        first = runner.run([cfg, cfg])
        again = runner.run([cfg])  # the same preloaded feeds, a later batch
    for res in (*first, *again):
        same_result(res, ref)


def test_batch_runner_mixed_parameters_and_key_check():
    base = cfg_for("vratio", **COSTS)
    cfgs = [
        base.with_overrides(**{"strategy.params.window": w, "strategy.params.band": b})
        for w in (2, 9, 30)
        for b in (0.0, 0.02)
    ]
    market = market_for(base)
    runner = BatchRunner(base, market)
    for res, cfg in zip(runner.run(cfgs), cfgs, strict=True):
        same_result(res, run_backtest(cfg, market=market))
    other = base.with_overrides(**{"execution.fill": "next_open"})
    with pytest.raises(ValueError, match="other feeds or broker settings"):
        runner.run([other])
