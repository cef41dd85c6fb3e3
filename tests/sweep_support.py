"""Helpers shared by the sweep and comparison tests (not a test module)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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


def kill_when_stored(cmd: list[str], cwd: Path, store_path: Path, at_least: int) -> int:
    """Start ``cmd`` (a sweep) in its own session, SIGKILL it once its store holds
    ``at_least`` runs, and return how many it held; fails if the sweep ended first."""
    proc = subprocess.Popen(cmd, cwd=cwd, start_new_session=True)
    stored = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if store_path.exists():
                try:
                    con = sqlite3.connect(store_path, timeout=1)
                    stored = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    continue
                if stored >= at_least:
                    break
        assert proc.poll() is None, "the sweep finished before it could be killed"
        assert stored >= at_least
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return stored


def assert_same_sweep(one, two) -> None:
    """Two sweeps' outcomes (``run_sweep``) with equal stores: every run id, index, status,
    error, metric, return series and per-run moments; the same overfitting statistics (the
    correlation sum adds runs in the order they arrive: equal up to rounding)."""
    import pandas as pd
    import pytest

    from volbacktest.engine.sweep.metrics import METRIC_NAMES
    from volbacktest.engine.sweep.store import ResultsStore

    cols = ["idx", "status", "executor", "error", *METRIC_NAMES]
    with ResultsStore(one.store_path) as a, ResultsStore(two.store_path) as b:
        pd.testing.assert_frame_equal(a.frame()[cols], b.frame()[cols])
        assert a.returns_blobs() == b.returns_blobs()
        ids_a, sums_a, n_a = a.moments()
        ids_b, sums_b, n_b = b.moments()
    assert ids_a.equals(ids_b) and n_a == n_b
    np.testing.assert_array_equal(sums_a, sums_b)
    x, y = one.overfitting, two.overfitting
    assert (x.n_trials, x.pbo, x.best_run, x.boundary) == (
        y.n_trials,
        y.pbo,
        y.best_run,
        y.boundary,
    )
    assert y.mean_correlation == pytest.approx(x.mean_correlation, rel=1e-12)
    assert y.best_dsr == pytest.approx(x.best_dsr, rel=1e-9)
