"""The compact results store (schema 3): run ids in 10 bytes, older stores refused with the
fix, PBO over trials in chunks equal to one pass, and a sweep too large to read whole
(ranking.csv streamed, the best runs kept, the report from SQLite grid means) giving the same
ranking.csv as one read whole."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from sweep_support import SHORT

from volbacktest.engine.calculators import overfitting as of
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.sweep import run as sweep_run
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.records import RunIds
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import plan_from_mapping
from volbacktest.engine.sweep.store import STORE_NAME, ResultsStore


def test_run_ids_hold_twenty_hex_digits_in_ten_bytes():
    rng = np.random.default_rng(5)
    ids = [bytes(rng.integers(0, 256, 10, dtype=np.uint8)).hex() for _ in range(500)]
    ids.append(ids[0][:16] + "ffff")  # same first 16 digits as another id
    held = RunIds.from_bytes(b"".join(bytes.fromhex(i) for i in ids[::2]))
    assert len(held) == len(ids[::2])
    assert all(i in held for i in ids[::2])
    assert not any(i in held for i in ids[1::2] if i not in ids[::2])
    assert sorted(held) == sorted(ids[::2])
    assert "not-an-id" not in held and 7 not in held
    both = RunIds.concat([held, RunIds.from_bytes(bytes.fromhex(ids[1]))])
    assert ids[1] in both and len(both) == len(held) + 1


def test_an_older_store_is_refused_with_the_fix(tmp_path):
    con = sqlite3.connect(tmp_path / STORE_NAME)
    con.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '2'), ('name', 'old');"
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, params TEXT);"
    )
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match=r"schema 2 .*--overwrite"):
        ResultsStore.open(tmp_path, fingerprint="x", name="old", resume=True)


def test_pbo_over_trials_in_chunks_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(11)
    r = rng.normal(0.0, 0.01, size=(480, 57))
    r[:, 30:40] = r[:, [3]]  # tied trials across chunk boundaries
    r[:, 5] += 0.002  # one with an edge
    whole = of.pbo_from_sums(of.block_sums(r, 8), len(r), 8)
    monkeypatch.setattr(of, "TRIALS_PER_CHUNK", 7)
    chunked = of.pbo_from_sums(of.block_sums(r, 8), len(r), 8)
    np.testing.assert_array_equal(chunked.logits, whole.logits)
    assert chunked.pbo == whole.pbo and chunked.n_splits == whole.n_splits == 70


def test_a_sweep_too_large_to_read_whole_writes_the_same_ranking(tmp_path, monkeypatch):
    raw = {
        "name": "t_large",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"tearsheet": False, "plots": False},
        "sweep": {
            "grid": {"window": [5, 10, 20], "band": [0.0, 0.01, 0.02, 0.05]},
            "top": 1,
        },
    }
    plan = plan_from_mapping(raw)
    opts = ExecutorOptions("vectorised", progress=False)
    whole = run_sweep(plan, opts=opts, out=tmp_path / "whole", tearsheets=False)
    monkeypatch.setattr(sweep_run, "REPORT_ALL_RUNS", 5)
    monkeypatch.setattr(sweep_run, "RANKING_KEPT", 4)
    monkeypatch.setattr("volbacktest.engine.sweep.store.READ_CHUNK", 5)
    large = run_sweep(plan, opts=opts, out=tmp_path / "large", tearsheets=False)
    a = pd.read_csv(whole.folder / "ranking.csv", index_col=0)
    b = pd.read_csv(large.folder / "ranking.csv", index_col=0)
    cols = [c for c in a.columns if c not in ("elapsed_s", "finished_at")]
    assert len(a) == 12 and a["psr"].notna().all()
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert list(large.ranking.index) == list(a.index[:4])  # the best RANKING_KEPT in memory
    assert large.overfitting == whole.overfitting
    page = large.report.read_text(encoding="utf-8")
    assert "12 runs: 12 finished, 0 failed (this report shows the best 4" in page
    # the heatmap's cells are SQLite's means over all runs, as the whole frame's pivot
    heat = pd.read_csv(large.report.parent / "heatmap.csv", index_col=0)
    want = pd.read_csv(whole.report.parent / "heatmap.csv", index_col=0)
    pd.testing.assert_frame_equal(heat, want)
