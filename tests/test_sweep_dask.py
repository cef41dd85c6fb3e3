"""The event-driven sweep on a real dask.distributed LocalCluster (scheduler and two worker
processes on loopback, one thread each), including a combination that fails."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DASK_TEST_CLUSTER
from sweep_support import SHORT

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


def _plan(out):
    return plan_from_mapping(
        {
            "name": "dask_sweep",
            "strategy": {"name": "vratio"},
            "data": SHORT,
            "execution": {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}},
            "report": {"out_dir": str(out), "tearsheet": False, "plots": False},
            "sweep": {
                "grid": {"window": [4, 10, 25], "band": [0.0, 0.02], "vix3m": ["vix3m", "nope"]},
                "rank": "sharpe",
                "top": 1,
                "batch_size": 2,
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
