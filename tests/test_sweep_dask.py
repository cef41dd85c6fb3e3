"""Sweeps on a real dask.distributed LocalCluster: the event-driven one (scheduler and two
worker processes on loopback, one thread each), including a combination that fails; the fast
path in chunks (the same store as in one process, Ctrl-C and resume, a lost worker)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import DASK_TEST_CLUSTER, DASK_TEST_DASHBOARD
from sweep_support import SHORT, assert_same_sweep

from volbacktest.engine.errors import EngineError
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import plan_from_mapping
from volbacktest.engine.sweep.store import ResultsStore

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


@pytest.fixture
def cluster(busy_dask_ports):
    """Started while Dask's default ports are held: the cluster must not need them."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, **DASK_TEST_CLUSTER
    ) as lc:
        yield lc


def _plan(out, name: str = "dask_sweep", **sweep):
    return plan_from_mapping(
        {
            "name": name,
            "strategy": {"name": "vratio"},
            "data": SHORT,
            "execution": {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}},
            "report": {"out_dir": str(out), "tearsheet": False, "plots": False},
            "sweep": {
                "grid": {"window": [4, 10, 25], "band": [0.0, 0.02], "vix3m": ["vix3m", "nope"]},
                "rank": "sharpe",
                "top": 1,
                "batch_size": 2,
                **sweep,
            },
        }
    )


def test_sweep_on_a_local_cluster_records_failures(cluster, tmp_path):
    plan = _plan(tmp_path)
    opts = ExecutorOptions("dask", scheduler=cluster.scheduler_address, progress=False)
    out = run_sweep(plan, opts=opts, report=False)
    fast = run_sweep(
        plan, opts=ExecutorOptions("vectorised", progress=False), out=tmp_path / "f", report=False
    )
    with ResultsStore(out.store_path) as s, ResultsStore(fast.store_path) as f:
        a, b = s.frame(), f.frame()
    assert len(a) == plan.count() == 12 and a.index.is_unique
    assert set(a["executor"]) == {"dask"}
    failed = a[a["status"] == "failed"]
    assert set(failed["p.vix3m"]) == {"nope"} and len(failed) == 6
    assert failed["error"].str.contains("nope").all()
    ok = a[a["status"] == "ok"].index
    np.testing.assert_allclose(a.loc[ok, "sharpe"], b.loc[ok, "sharpe"], rtol=1e-9)
    assert not out.drifted


def test_unreachable_scheduler_is_one_clear_error(tmp_path, monkeypatch):
    from volbacktest.engine.sweep import dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2)
    plan = _plan(tmp_path)
    opts = ExecutorOptions("dask", scheduler="tcp://127.0.0.1:9", progress=False)
    with pytest.raises(EngineError, match="could not reach the Dask scheduler"):
        run_sweep(plan, opts=opts, report=False)


# --------------------------------------------------------------------------- the fast path
# ``--executor vectorised --scheduler ADDRESS``: chunks of the grid run through ``run_fast`` on
# the cluster's workers, records streamed into the store as chunks finish


@pytest.fixture
def threads_cluster():
    """Two single-threaded workers inside this process: chunks run on two threads at once."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=DASK_TEST_DASHBOARD
    ) as lc:
        yield lc


def _fast_plan(out):
    """80 runs, half of them failing (no ``nope`` series), in chunks of 8."""
    grid = {"window": list(range(3, 23)), "band": [0.0, 0.02], "vix3m": ["vix3m", "nope"]}
    return _plan(out, "dask_fast", grid=grid, top=0, chunk_size=8, store_returns="all")


def _dask_fast(address: str) -> ExecutorOptions:
    return ExecutorOptions("vectorised", scheduler=address, chunk_size=8, progress=False)


def test_fast_path_on_a_dask_cluster_gives_the_same_store(threads_cluster, tmp_path):
    plan = _fast_plan(tmp_path)
    vec = ExecutorOptions("vectorised", progress=False)
    one = run_sweep(plan, opts=vec, out=tmp_path / "one", report=False)
    two = run_sweep(plan, opts=_dask_fast(threads_cluster.scheduler_address), report=False)
    assert two.stats[0].ran == plan.count() == 80 and two.stats[0].failed == 40
    assert_same_sweep(one, two)
    with ResultsStore(two.store_path) as s:
        failed = s.frame(status="failed")
    assert set(failed["p.vix3m"]) == {"nope"} and failed["error"].str.contains("nope").all()


def test_interrupted_dask_fast_sweep_cancels_its_chunks_and_resumes(
    threads_cluster, tmp_path, monkeypatch
):
    """Ctrl-C while records stream in: the runs stored stay, the cluster forgets the sweep's
    chunks and its plugin, and a resumed sweep on the cluster runs only the rest."""
    plan = _fast_plan(tmp_path)
    opts = _dask_fast(threads_cluster.scheduler_address)
    add = ResultsStore.add
    calls = []

    def interrupting_add(self, rec):
        calls.append(rec.run_id)
        if len(calls) == 20:
            raise KeyboardInterrupt
        add(self, rec)

    monkeypatch.setattr(ResultsStore, "add", interrupting_add)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, opts=opts, report=False)
    monkeypatch.undo()
    scheduler = threads_cluster.scheduler
    deadline = time.monotonic() + 10
    while scheduler.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not scheduler.tasks
    assert not [name for name in scheduler.worker_plugins if name.startswith("volbt-")]
    path = tmp_path / plan.name / "sweep.sqlite"
    with ResultsStore(path) as s:  # the passes staged whole before the interrupted one
        stored = s.count()
    assert 0 < stored < 20
    again = run_sweep(plan, opts=opts, resume=True, report=False)
    assert (again.stats[0].skipped, again.stats[0].ran) == (stored, 80 - stored)
    vec = ExecutorOptions("vectorised", progress=False)
    assert_same_sweep(run_sweep(plan, opts=vec, out=tmp_path / "one", report=False), again)


def test_a_lost_worker_keeps_the_stored_runs_and_names_resume(busy_dask_ports, tmp_path):
    """A worker process killed while it runs a chunk (no retries allowed here): the sweep ends
    with one error naming --resume, the chunks stored before stay, and a resume completes it."""
    import os

    import dask

    class KillOnChunk(distributed.WorkerPlugin):  # defined here: pickled by value
        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and str(key).startswith("volbt-chunk-"):
                if int(str(key).rsplit("-", 1)[1]) >= 24:  # the chunk of runs 24..31
                    os._exit(1)

    plan = _fast_plan(tmp_path)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, **DASK_TEST_CLUSTER
        ) as lc,
        distributed.Client(lc, set_as_default=False) as client,
    ):
        client.register_plugin(KillOnChunk(), name="kill-on-chunk")
        with pytest.raises(
            EngineError,
            match=r"lost the fast-path chunk of runs \d+\.\.\d+ \(KilledWorker.*--resume",
        ):
            run_sweep(plan, opts=_dask_fast(lc.scheduler_address), report=False)
    path = tmp_path / plan.name / "sweep.sqlite"
    with ResultsStore(path) as s:
        stored = s.count()
    assert 16 <= stored < 80  # chunks 0 and 8 reached the store before chunk 24 was sent
    vec = ExecutorOptions("vectorised", progress=False)
    again = run_sweep(plan, opts=vec, resume=True, report=False)
    assert (again.stats[0].skipped, again.stats[0].ran) == (stored, 80 - stored)
    assert_same_sweep(run_sweep(plan, opts=vec, out=tmp_path / "one", report=False), again)
