"""Event-driven sweeps in a process pool: records stream into the store, a failing combination
is recorded and the sweep goes on, a dead worker is survived, a killed sweep resumes exactly."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sweep_support import SHORT, kill_when_stored

from volbacktest import strategies
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.sweep import pool
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.metrics import METRIC_NAMES
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import plan_from_mapping
from volbacktest.engine.sweep.store import STORE_NAME, ResultsStore

REPO = Path(__file__).resolve().parents[1]

COSTS = {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}}


def _sweep_raw(out: Path, **sweep) -> dict:
    return {
        "name": "pool_sweep",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "execution": COSTS,
        "report": {"out_dir": str(out), "tearsheet": False, "plots": False},
        "sweep": {
            "grid": {"window": [3, 8, 20], "band": [0.0, 0.02]},
            "rank": "sharpe",
            "top": 1,
            **sweep,
        },
    }


def test_run_batch_isolates_a_failing_combination(monkeypatch):
    """A combination whose decision raises fails alone; the rest of its batch finishes."""
    spec = strategies.REGISTRY["vratio"]
    original = spec.decide

    def flaky(inputs, params):
        if params.window == 8:
            raise RuntimeError("window 8 breaks on purpose")
        return original(inputs, params)

    monkeypatch.setitem(
        strategies.REGISTRY, "vratio", type(spec)(spec.name, spec.params_model, flaky, spec.summary)
    )
    plan = plan_from_mapping(_sweep_raw(Path("unused")))
    tasks = [pool.Task.of(c) for c in plan.iter_combos()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = pool.run_batch(tasks)
    assert sorted(r.index for r in records) == list(range(len(tasks)))
    failed = [r for r in records if not r.ok]
    assert {r.params["window"] for r in failed} == {8}
    assert all("window 8 breaks on purpose" in r.error for r in failed)
    # the others are whole: each equals its own run_backtest (returns bit for bit, metrics)
    monkeypatch.setitem(strategies.REGISTRY, "vratio", spec)
    configs = {c.run_id: c.config for c in plan.iter_combos()}
    for r in records:
        if r.ok:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                alone = run_backtest(configs[r.run_id])
            np.testing.assert_array_equal(r.returns, alone.returns.to_numpy())
            assert r.metrics["sharpe"] == alone.metrics["sharpe"]
            assert r.metrics["trades"] == alone.metrics["trades"]


# --------------------------------------------------------------------------- the pool
@pytest.mark.parametrize("start_method", ["spawn", None])
def test_local_pool_matches_fast_path_and_records_failures(tmp_path, start_method):
    """A real process pool (2 workers, spawned and with the platform default): every run stored
    once; a combination naming a dataset the market lacks is recorded with its error and the
    sweep finishes."""
    raw = _sweep_raw(tmp_path / "local", store_returns="all")
    raw["sweep"]["grid"]["vix3m"] = ["vix3m", "no_such_series"]
    plan = plan_from_mapping(raw)
    opts = ExecutorOptions(
        "local", workers=2, batch_size=3, start_method=start_method, progress=False
    )
    out = run_sweep(plan, opts=opts, report=False)
    fast = run_sweep(
        plan,
        opts=ExecutorOptions("vectorised", progress=False),
        out=tmp_path / "fast",
        report=False,
    )
    assert out.stats[0].ran == plan.count() == 12
    with ResultsStore(out.store_path) as s, ResultsStore(fast.store_path) as f:
        a, b = s.frame(), f.frame()
        assert a.index.is_unique and set(a.index) == set(b.index)
        failed = a[a["status"] == "failed"]
        assert len(failed) == 6 and (failed["p.vix3m"] == "no_such_series").all()
        assert failed["error"].str.contains("no_such_series").all()
        ok = a[a["status"] == "ok"].index
        np.testing.assert_allclose(a.loc[ok, "sharpe"], b.loc[ok, "sharpe"], rtol=1e-9)
        for rid in ok:
            np.testing.assert_allclose(s.returns(rid), f.returns(rid), rtol=1e-9, atol=1e-15)
    assert not out.drifted and len(out.drift) == 1


DYING_WORKER_SCRIPT = """
import json, os, sys
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.sweep import pool
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import plan_from_mapping

_RUN_BATCH = pool.run_batch


def dying_batch(tasks, executor="local"):
    # kills its worker process on the combination with window 8 (a crashed worker)
    if any(t.params["window"] == 8 for t in tasks):
        os._exit(13)
    return _RUN_BATCH(tasks, executor)


if __name__ == "__main__":
    pool.run_batch = dying_batch  # forked workers inherit the patched module
    opts = ExecutorOptions("local", workers=1, batch_size=2, start_method="fork", progress=False)
    out = run_sweep(plan_from_mapping(json.loads(sys.argv[1])), opts=opts, report=False, top=0)
    print(out.store_path)
"""


def test_pool_survives_a_dead_worker(tmp_path):
    """A worker that dies breaks the pool: it is restarted, innocent runs are retried, and the
    combination that kills its worker is recorded as failed; the sweep finishes. (Run in a
    fresh single-threaded process: the patched worker function reaches workers by fork.)"""
    script = tmp_path / "dying.py"
    script.write_text(DYING_WORKER_SCRIPT, encoding="utf-8")
    raw = json.dumps(_sweep_raw(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script), raw], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "a worker process died; restarting the pool" in done.stderr
    with ResultsStore(Path(done.stdout.strip().splitlines()[-1])) as s:
        df = s.frame()
    assert len(df) == 6 and df.index.is_unique
    dead = df[df["status"] == "failed"]
    assert set(dead["p.window"]) == {8}
    assert dead["error"].str.startswith("WorkerDied").all()
    assert (df.loc[df["p.window"] != 8, "status"] == "ok").all()


def test_resume_after_sigkill_is_exact(tmp_path):
    """SIGKILL a sweep midway, resume it: every combination exactly once, results identical to
    an uninterrupted run."""
    sweep = tmp_path / "resume.yaml"
    raw = _sweep_raw(tmp_path / "killed")
    raw["sweep"]["grid"] = {"window": list(range(2, 42)), "band": [0.0, 0.01, 0.03]}
    raw["sweep"].update({"batch_size": 2, "top": 0, "store_returns": "all"})
    sweep.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cmd = [
        sys.executable,
        str(REPO / "run_backtest.py"),
        "sweep",
        str(sweep),
        "--executor",
        "local",
        "--workers",
        "1",
        "--no-report",
        "--no-progress",
    ]
    store_path = tmp_path / "killed" / "pool_sweep" / STORE_NAME
    kill_when_stored(cmd, REPO, store_path, 10)
    plan = plan_from_mapping(raw)
    con = sqlite3.connect(store_path)
    before = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    con.close()
    assert 10 <= before < plan.count()
    with pytest.raises(Exception, match="--resume"):
        run_sweep(plan, opts=ExecutorOptions("local", workers=1, progress=False), report=False)
    opts = ExecutorOptions("local", workers=2, batch_size=4, progress=False)
    resumed = run_sweep(plan, opts=opts, resume=True, report=False)
    assert resumed.stats[0].skipped == before
    assert resumed.stats[0].ran == plan.count() - before
    clean = run_sweep(plan, opts=opts, out=tmp_path / "clean", report=False)
    with ResultsStore(resumed.store_path) as r, ResultsStore(clean.store_path) as c:
        a, b = r.frame(), c.frame()
        assert len(a) == plan.count() and a.index.is_unique
        assert (a["status"] == "ok").all()
        cols = ["idx", "status", *METRIC_NAMES]
        pd.testing.assert_frame_equal(a[cols].sort_index(), b[cols].sort_index())
        blobs = r.returns_blobs()
        assert len(blobs) == plan.count() and blobs == c.returns_blobs()
