"""Adaptive search (sweep.search, Optuna TPE): finds the shipped grid's best cell, keeps to the
constraints, and resumes exactly after SIGKILL by replaying the stored trials."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sweep_support import SHORT, kill_when_stored

from volbacktest.engine.errors import ConfigError
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.metrics import METRIC_NAMES
from volbacktest.engine.sweep.records import MarketCache
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import load_sweep, plan_from_mapping
from volbacktest.engine.sweep.store import STORE_NAME, ResultsStore

pytest.importorskip("optuna", reason="the search extra is not installed")

REPO = Path(__file__).resolve().parents[1]
FAST = ExecutorOptions("vectorised", progress=False)


def test_tpe_finds_the_best_cell_of_the_shipped_grid_in_50_trials(tmp_path):
    """Seeds 0..9 all found it when this was written (37-42 distinct runs of 50 trials)."""
    plan = load_sweep(REPO / "configs" / "sweeps" / "vratio_grid.yaml")
    markets = MarketCache()
    grid = run_sweep(plan, opts=FAST, out=tmp_path / "grid", report=False, top=0, markets=markets)
    raw = yaml.safe_load((REPO / "configs" / "sweeps" / "vratio_grid.yaml").read_text())
    raw["sweep"]["search"] = {"method": "optuna", "trials": 50, "sampler": "tpe", "seed": 3}
    found = run_sweep(
        plan_from_mapping(raw),
        opts=FAST,
        out=tmp_path / "tpe",
        report=False,
        top=0,
        markets=markets,
    )
    assert found.stats[0].total == 50
    assert len(found.ranking) == found.stats[0].ran < 50  # repeated asks reuse stored runs
    assert found.ranking.index[0] == grid.ranking.index[0]
    assert found.ranking["sharpe"].iloc[0] == grid.ranking["sharpe"].iloc[0]


def _raw(out, trials: int, **search) -> dict:
    return {
        "name": "search",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"out_dir": str(out), "tearsheet": False, "plots": False},
        "sweep": {
            "grid": {"window": {"start": 2, "end": 60}, "band": [0.0, 0.01, 0.02, 0.03]},
            "constraints": [{"lhs": "window", "op": ">=", "value": 5}],
            "search": {"method": "optuna", "trials": trials, "seed": 1, **search},
            "top": 0,
            "store_returns": "none",
        },
    }


def test_search_keeps_to_the_constraints_and_refuses_what_it_cannot_do(tmp_path):
    out = run_sweep(plan_from_mapping(_raw(tmp_path, 30)), opts=FAST, report=False)
    assert (out.ranking["p.window"] >= 5).all() and len(out.ranking) > 5
    with pytest.raises(ConfigError, match="executor: vectorised"):
        plan_from_mapping(
            {**_raw(tmp_path, 5), "sweep": {**_raw(tmp_path, 5)["sweep"], "executor": "local"}}
        )


def test_search_resumes_after_sigkill_exactly(tmp_path):
    raw = _raw(tmp_path / "killed", 100)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "volbacktest", "sweep", str(path), "--no-report", "--no-progress"]
    store_path = tmp_path / "killed" / "search" / STORE_NAME
    kill_when_stored(cmd, REPO, store_path, 8)
    plan = plan_from_mapping(raw)
    with ResultsStore(store_path) as s:
        before = s.count()
    assert before >= 8
    resumed = run_sweep(plan, opts=FAST, resume=True, report=False)
    clean = run_sweep(plan, opts=FAST, out=tmp_path / "clean", report=False)
    assert resumed.stats[0].skipped == before
    assert resumed.stats[0].ran == clean.stats[0].ran - before
    with ResultsStore(resumed.store_path) as r, ResultsStore(clean.store_path) as c:
        a, b = r.frame(), c.frame()
    assert a.index.is_unique and set(a.index) == set(b.index)
    cols = ["p.window", "p.band", "status", *METRIC_NAMES]
    pd.testing.assert_frame_equal(a[cols].sort_index(), b[cols].sort_index())
