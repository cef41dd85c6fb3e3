"""Helpers shared by the sweep and comparison tests (not a test module)."""

from __future__ import annotations

from dataclasses import dataclass

import backtrader as bt
import numpy as np

from volbacktest.engine.execution.batch import BatchRunner, OwnBrokerStrategy
from volbacktest.engine.execution.eventdriven import collect, configure_broker
from volbacktest.engine.inputs.config import config_from_mapping

# two years of the embedded market: about 500 bars, quick to build and to run
SHORT = {"synthetic": {"seed": 11, "start": "2008-01-02", "end": "2009-12-31"}}


def cfg_for(name: str, fill: str = "next_close", **execution):
    """A config of a registered strategy with default parameters on the SHORT market."""
    return config_from_mapping(
        {
            "name": f"t_{name}_{fill}",
            "strategy": {"name": name},
            "data": SHORT,
            "execution": {"fill": fill, **execution},
            "report": {"tearsheet": False, "plots": False},
        }
    )


@dataclass(frozen=True)
class FixedPlan:
    """A decision plan replaying a fixed target-weights matrix (prefix-stable by slicing)."""

    matrix: np.ndarray
    names: tuple[str, ...]

    def assets(self):
        return self.names

    def inputs(self):
        return self.names

    def weights(self, inputs, warmup=0):
        return self.matrix[: len(inputs[self.names[0]]) - warmup]

    def describe(self):
        return "fixed weights"


def backtrader_run_of(cfg, market, plan, runner: BatchRunner | None = None):
    """``plan``'s target weights executed by backtrader exactly as run_backtest executes a
    strategy (TargetWeightStrategy, the run's broker settings, the runner's ledger)."""
    runner = runner or BatchRunner(cfg, market)
    spec = {
        "plan": plan,
        "execution": cfg.execution,
        "own_broker": configure_broker(bt.brokers.BackBroker(), cfg.execution),
    }
    strat = runner._cerebro.runstrategies([(OwnBrokerStrategy, (), spec)], predata=True)[0]
    return strat, collect(cfg, market, strat)
