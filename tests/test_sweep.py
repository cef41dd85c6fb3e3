"""Sweep spec (YAML, grids, random draws, constraints, errors), run ids, the results store,
grid metrics vs ``performance_metrics``, a 10,000-combination fast-path sweep in flat memory,
walk-forward (fixed split and rolling windows; Cooper's VRatio on the real data) and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sweep_support import SHORT, FixedPlan, assert_same_sweep, backtrader_run_of

from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.vectorised import MarketArrays, decision_stack, simulate
from volbacktest.engine.inputs.market import market_for
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.sweep.execute import ExecutorOptions, execute
from volbacktest.engine.sweep.metrics import METRIC_NAMES, grid_metrics
from volbacktest.engine.sweep.records import MarketCache
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import load_sweep, plan_from_mapping, run_id_of
from volbacktest.engine.sweep.store import ResultsStore
from volbacktest.engine.sweep.walkforward import make_windows

REPO = Path(__file__).resolve().parents[1]


def raw_sweep(**sweep) -> dict:
    return {
        "name": "t_sweep",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"tearsheet": False, "plots": False},
        "sweep": {"grid": {"window": [5, 10], "band": [0.0, 0.02]}, **sweep},
    }


# --------------------------------------------------------------------------- the spec
def test_grid_ranges_lists_and_dotted_keys():
    plan = plan_from_mapping(
        raw_sweep(
            grid={
                "window": {"start": 2, "end": 41},
                "band": [0.0, 0.01, 0.02, 0.03, 0.05],
                "execution.fill": ["next_close", "next_open"],
            }
        )
    )
    assert plan.axes["window"] == list(range(2, 42))
    assert plan.count() == 40 * 5 * 2
    combos = list(plan.iter_combos())
    assert len(combos) == 400 and len({c.run_id for c in combos}) == 400
    assert combos[0].params == {"window": 2, "band": 0.0, "execution.fill": "next_close"}
    assert combos[1].config.execution.fill == "next_open"
    assert combos[-1].config.params.window == 41 and combos[-1].config.params.band == 0.05
    fr = plan_from_mapping(raw_sweep(grid={"band": {"start": 0.0, "end": 0.05, "step": 0.01}}))
    assert fr.axes["band"] == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]


def test_run_id_is_a_hash_of_the_resolved_config():
    plan = plan_from_mapping(raw_sweep())
    combo = next(plan.iter_combos())
    resolved = combo.config.resolved()
    assert combo.run_id == run_id_of(resolved)
    # name and report do not change results, so they do not change the id
    renamed = plan_from_mapping({**raw_sweep(), "name": "other", "report": {"plots": True}})
    assert next(renamed.iter_combos()).run_id == combo.run_id
    # the same combination written as a plain config has the same id
    explicit = plan_from_mapping(
        {
            **raw_sweep(grid={"band": [0.0]}),
            "strategy": {"name": "vratio", "params": {"window": 5}},
        }
    )
    assert next(explicit.iter_combos()).run_id == combo.run_id
    # any result-relevant change changes it
    costly = plan_from_mapping({**raw_sweep(), "execution": {"commission": {"percent": 0.001}}})
    assert next(costly.iter_combos()).run_id != combo.run_id


def test_constraints_are_declarative():
    plan = plan_from_mapping(
        raw_sweep(
            grid={"window": [3, 5, 10, 20], "std_window": [5, 10, 20]},
            constraints=[
                {"lhs": "window", "op": "<", "rhs": "std_window"},
                {"lhs": "band", "op": "==", "value": 0.0},
            ],
        )
        | {"strategy": {"name": "stdlvix"}}
    )
    pairs = [(c.params["window"], c.params["std_window"]) for c in plan.iter_combos()]
    assert pairs == [(w, s) for w in (3, 5, 10, 20) for s in (5, 10, 20) if w < s]
    assert plan.count() == len(pairs)


def test_random_draws_are_seeded_and_distinct():
    spec = {
        "grid": {},
        "random": {
            "n": 30,
            "seed": 5,
            "params": {
                "window": {"kind": "int", "low": 2, "high": 12},
                "band": {"kind": "uniform", "low": 0.0, "high": 0.05},
                "orientation": {"kind": "choice", "choices": ["vix3m_over_vix", "vix_over_vix3m"]},
            },
        },
    }
    a = [c.params for c in plan_from_mapping(raw_sweep(**spec)).iter_combos()]
    b = [c.params for c in plan_from_mapping(raw_sweep(**spec)).iter_combos()]
    assert a == b and len(a) == 30
    assert all(2 <= p["window"] <= 12 and 0.0 <= p["band"] <= 0.05 for p in a)
    other = plan_from_mapping(raw_sweep(**{**spec, "random": {**spec["random"], "seed": 6}}))
    assert [c.params for c in other.iter_combos()] != a
    # no params: n distinct points of the grid, without replacement
    sampled = plan_from_mapping(
        raw_sweep(
            grid={"window": list(range(2, 22)), "band": [0.0, 0.01]}, random={"n": 7, "seed": 1}
        )
    )
    pts = [tuple(c.params.values()) for c in sampled.iter_combos()]
    assert len(pts) == len(set(pts)) == 7 == sampled.count()


BAD_SWEEPS = [
    ({"grid": {"windw": [5]}}, "sweep.grid.windw: value 5 is not valid", "did you mean 'window'"),
    ({"grid": {"window": [0, 5]}}, "sweep.grid.window: value 0 is not valid", "greater than"),
    ({"grid": {"window": 5}}, "sweep.grid", "must be a list of values or a range"),
    ({"grid": {"window": [5, 5]}}, "sweep.grid.window", "appears more than once"),
    ({"rank": "sharp"}, "sweep.rank.metric", "did you mean 'sharpe'"),
    ({"executor": "threads"}, "sweep.executor", "valid choices"),
    ({"grdi": {}}, "sweep", "unknown key 'grdi'"),
    (
        {"constraints": [{"lhs": "window", "op": "<", "rhs": "slow"}]},
        "sweep.constraints",
        "unknown parameter 'slow'",
    ),
    (
        {"constraints": [{"lhs": "window", "op": "=<", "rhs": "band"}]},
        "sweep.constraints.0.op",
        "valid choices",
    ),
    (
        {"constraints": [{"lhs": "window", "op": ">", "value": 100}]},
        "sweep.constraints",
        "no combination",
    ),
    ({"grid": {"window": {"start": 9, "end": 2}}}, "sweep.grid", "end 2 is before start 9"),
    ({"grid": {}}, "sweep", "nothing to sweep"),
]


@pytest.mark.parametrize(("sweep", "where", "what"), BAD_SWEEPS)
def test_bad_sweeps_name_the_key_the_value_and_the_fix(tmp_path, sweep, where, what):
    raw = raw_sweep()
    raw["sweep"] = {**raw["sweep"], **sweep}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    msg = str(info.value)
    assert str(path) in msg and where in msg and what in msg, msg


def test_base_config_errors_keep_the_engine_style(tmp_path):
    raw = raw_sweep()
    raw["execution"] = {"fill": "next_clos"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"execution\.fill.*did you mean 'next_close'"):
        load_sweep(path)
    path.write_text(yaml.safe_dump({k: v for k, v in raw.items() if k != "sweep"}))
    with pytest.raises(ConfigError, match=r"sweep: required block is missing"):
        load_sweep(path)


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "sweeps").glob("*.yaml")))
def test_shipped_sweep_files_validate(path):
    plan = load_sweep(path)
    assert plan.count() >= 2
    if path.stem == "vratio_grid":
        assert plan.count() == 200
        assert plan.axes == {"window": list(range(2, 42)), "band": [0.0, 0.01, 0.02, 0.03, 0.05]}


# --------------------------------------------------------------------------- metrics
def test_grid_metrics_equal_performance_metrics():
    plan = plan_from_mapping(
        raw_sweep(grid={"window": [3, 12, 30], "band": [0.0, 0.04]})
        | {"execution": {"commission": {"percent": 0.001}, "slippage": {"percent": 0.001}}}
    )
    combos = list(plan.iter_combos())
    market = market_for(plan.base)
    arrays = MarketArrays.from_market(market, plan.base.plan)
    sim = simulate(
        decision_stack([c.config.plan for c in combos], arrays.inputs, arrays.warmup),
        arrays,
        plan.base.execution,
    )
    values = grid_metrics(sim)
    for j, c in enumerate(combos):
        ref = run_backtest(c.config, market=market).metrics
        for m in METRIC_NAMES:
            if ref[m] is None:
                assert not np.isfinite(values[m][j]), m
            else:
                assert values[m][j] == pytest.approx(ref[m], rel=1e-9, abs=1e-12), m


# --------------------------------------------------------------------------- store
def test_store_holds_each_run_once_and_refuses_to_mix(tmp_path):
    plan = plan_from_mapping(raw_sweep(store_returns="all"))
    opts = ExecutorOptions("vectorised", progress=False)
    out = run_sweep(plan, opts=opts, out=tmp_path, report=False, top=0)
    with ResultsStore(out.store_path) as s:
        df = s.frame()
        assert len(df) == 4 and df.index.is_unique and (df["status"] == "ok").all()
        assert list(df.columns[:2]) == ["p.window", "p.band"]
        r = s.returns(df.index[0])
        assert isinstance(r.index, pd.DatetimeIndex) and len(r) == 505
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(plan, opts=opts, out=tmp_path, report=False, top=0)
    again = run_sweep(plan, opts=opts, out=tmp_path, resume=True, report=False, top=0)
    assert again.stats[0].ran == 0 and again.stats[0].skipped == 4
    other = plan_from_mapping({**raw_sweep(), "execution": {"commission": {"percent": 0.01}}})
    with pytest.raises(ConfigError, match="different sweep"):
        run_sweep(other, opts=opts, out=tmp_path, resume=True, report=False, top=0)
    # a real, queryable SQLite file
    import sqlite3

    con = sqlite3.connect(out.store_path)
    best = con.execute(
        "SELECT run_id, params, sharpe FROM run_table ORDER BY sharpe DESC LIMIT 1"
    ).fetchone()
    axes = json.loads(con.execute("SELECT value FROM meta WHERE key = 'axes'").fetchone()[0])
    con.close()
    assert best[0] == out.ranking.index[0]
    assert dict(zip(axes, json.loads(best[1]), strict=True)) == {
        k[2:]: v for k, v in out.ranking.iloc[0].items() if k.startswith("p.")
    }


def test_ten_thousand_combinations_in_flat_memory(tmp_path):
    """10,000 runs through the fast path in chunks: the traced peak is the same as for 1,000
    (results stream to the store; nothing is kept per run)."""

    def plan(n_windows: int):
        return plan_from_mapping(
            {
                "name": "big",
                "strategy": {"name": "vratio"},
                "data": {"synthetic": {"seed": 3, "start": "2010-01-04", "end": "2010-12-31"}},
                "sweep": {
                    "grid": {
                        "window": {"start": 2, "end": 1 + n_windows},
                        "band": {"start": 0.0, "end": 0.049, "step": 0.001},
                    }
                },
            }
        )

    markets = MarketCache()
    peaks = {}
    for n_windows in (20, 200):
        p = plan(n_windows)
        markets.get(p.base)
        folder = tmp_path / str(n_windows)
        store = ResultsStore.open(folder, fingerprint=p.fingerprint(), name="big", resume=False)
        tracemalloc.start()
        try:
            stats = execute(
                p,
                store,
                ExecutorOptions("vectorised", chunk_size=256, progress=False),
                markets=markets,
            )
            peaks[n_windows] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            store.close()
        assert stats.ran == stats.total == n_windows * 50
        assert stats.failed == 0
    assert peaks[200] < 1.2 * peaks[20], peaks
    with ResultsStore(tmp_path / "200" / "sweep.sqlite") as s:
        assert s.count(status="ok") == 10_000


# --------------------------------------------------------------------------- walk-forward
def test_windows_fixed_and_rolling():
    from volbacktest.engine.sweep.spec import SplitSpec

    cal = pd.bdate_range("2020-01-01", periods=100)
    (w,) = make_windows(cal, SplitSpec(in_sample_end="2020-03-01"))
    assert w.train_start == cal[0] and w.train_end == pd.Timestamp("2020-02-28")
    assert w.test_start == pd.Timestamp("2020-03-02") and w.test_end == cal[-1]
    ws = make_windows(cal, SplitSpec(rolling={"train": 40, "test": 20}))
    assert [(cal.get_loc(x.train_start), cal.get_loc(x.test_start)) for x in ws] == [
        (0, 40),
        (20, 60),
        (40, 80),
    ]
    assert ws[-1].test_end == cal[-1]
    anchored = make_windows(cal, SplitSpec(rolling={"train": 40, "test": 30, "anchored": True}))
    assert {x.train_start for x in anchored} == {cal[0]} and anchored[-1].test_end == cal[-1]
    with pytest.raises(ConfigError, match="no out-of-sample bars"):
        make_windows(cal, SplitSpec(in_sample_end="2021-01-01"))


def test_rolling_walk_forward_stitches_out_of_sample(tmp_path):
    """Each window's choice is the in-sample best; the stitched out-of-sample path equals the
    same stitched target weights executed by backtrader."""
    raw = raw_sweep(grid={"window": [3, 10, 30], "band": [0.0, 0.03]}, rank="sharpe", top=1)
    raw["data"] = {"synthetic": {"seed": 11, "start": "2007-01-02", "end": "2010-12-31"}}
    raw["execution"] = {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}}
    raw["split"] = {"rolling": {"train": 250, "test": 120}}
    plan = plan_from_mapping(raw)
    out = run_sweep(
        plan, opts=ExecutorOptions("vectorised", progress=False), out=tmp_path, report=False
    )
    wf = out.walkforward
    assert len(wf.windows) == len(make_windows(market_for(plan.base).calendar, plan.split))
    with ResultsStore(out.store_path) as s:
        for _, row in wf.windows.iterrows():
            seg = s.frame(row["window"], status="ok")
            assert len(seg) == 6
            assert row["is.sharpe"] == pytest.approx(seg["sharpe"].max())
    oos = wf.out_of_sample
    assert oos.equity.index[0] == wf.windows["test_start"].iloc[0]
    assert oos.equity.index[-1] == wf.windows["test_end"].iloc[-1]
    # backtrader on the stitched weights
    market = market_for(plan.base)
    sl = market.calendar[
        (market.calendar >= oos.equity.index[0]) & (market.calendar <= oos.equity.index[-1])
    ]
    sub = type(market)(
        sl, {k: v.loc[sl] for k, v in market.frames.items()}, market.tradable, market.source
    )
    fixed = FixedPlan(oos.weights.to_numpy(), ("xiv", "vxx"))
    _, ev = backtrader_run_of(plan.base, sub, fixed)
    np.testing.assert_allclose(oos.equity.to_numpy(), ev.equity.to_numpy(), rtol=1e-9)
    assert set(wf.side_by_side.columns) == {
        f"in-sample (mean of {len(wf.windows)} windows)",
        f"out-of-sample {oos.equity.index[0]:%Y-%m-%d}..{oos.equity.index[-1]:%Y-%m-%d}",
    }


@pytest.mark.shared_data
def test_cooper_vratio_walk_forward_on_real_data(shared_data, monkeypatch, tmp_path):
    """Cooper's VRatio, parameters chosen up to the publication (2013-02-28), applied to the
    end of XIV's history: the report shows in-sample and out-of-sample side by side."""
    monkeypatch.setenv("VOLBT_DATA_ROOT", str(shared_data))
    plan = load_sweep(REPO / "configs" / "sweeps" / "vratio_walkforward.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data-quality notes of the real files
        out = run_sweep(
            plan, opts=ExecutorOptions("vectorised", progress=False), out=tmp_path, tearsheets=False
        )
    wf = out.walkforward
    assert wf.in_sample.equity.index[0] == pd.Timestamp("2010-11-30")
    assert wf.in_sample.equity.index[-1] == pd.Timestamp("2013-02-28")
    assert wf.out_of_sample.equity.index[0] == pd.Timestamp("2013-03-01")
    assert wf.out_of_sample.equity.index[-1] == pd.Timestamp("2017-12-05")
    cols = list(wf.side_by_side.columns)
    assert cols == ["in-sample 2010-11-30..2013-02-28", "out-of-sample 2013-03-01..2017-12-05"]
    chosen = {k[2:]: v for k, v in wf.windows.iloc[0].items() if k.startswith("p.")}
    assert chosen == {k[2:]: v for k, v in out.ranking.iloc[0].items() if k.startswith("p.")}
    assert wf.side_by_side.loc["sharpe", cols[0]] == pytest.approx(out.ranking["sharpe"].iloc[0])
    html = out.report.read_text(encoding="utf-8")
    for text in ("Walk-forward: in-sample vs out-of-sample", cols[0], cols[1]):
        assert text in html
    assert not out.drifted


# --------------------------------------------------------------------------- CLI
def test_cli_sweep_runs_and_reports(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw_sweep(top=1), sort_keys=False), encoding="utf-8")
    cmd = [
        sys.executable,
        str(REPO / "run_backtest.py"),
        "sweep",
        str(path),
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(
        [*cmd, "--no-progress", "--no-tearsheet"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "4 runs: 4 run now (0 failed)" in done.stdout and "agrees" in done.stdout
    assert (tmp_path / "t_sweep" / "report" / "report.html").is_file()
    again = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    assert "Traceback" not in again.stderr
    bad = subprocess.run(
        [*cmd[:3], str(tmp_path / "missing.yaml")], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2 and "sweep file not found" in bad.stderr


@pytest.mark.parametrize("kept", ["top", "none", "all"])
def test_store_returns_keeps_the_series_asked_for(tmp_path, kept):
    """Metrics of every run in SQLite; return series (Parquet parts) for every run, for the
    ``top`` best (equal to their event-driven re-runs), or none; the overfitting statistics
    need none of them."""
    plan = plan_from_mapping(raw_sweep(store_returns=kept, top=2, rank="sharpe"))
    opts = ExecutorOptions("vectorised", progress=False)
    out = run_sweep(plan, opts=opts, out=tmp_path, report=False)
    with ResultsStore(out.store_path) as s:
        assert s.count(status="ok") == 4 and s.store_returns == kept
        ids = s.returns_ids()
        want = {"all": set(s.frame().index), "top": set(out.ranking.index[:2]), "none": set()}
        assert ids == want[kept]
        for res, rid in zip(out.top, out.ranking.index[:2], strict=True):
            if rid in ids:
                np.testing.assert_allclose(s.returns(rid), res.returns, rtol=1e-9, atol=1e-15)
    assert (out.folder / "returns").is_dir() == (kept != "none")
    assert out.overfitting.n_trials == 4 and out.overfitting.pbo is not None


def _count_moving_averages(monkeypatch) -> list[int]:
    """The windows of every moving average computed from now on (memo hits excluded)."""
    from volbacktest.engine.calculators import rolling

    calls = []
    kernel = rolling._rolling_mean

    def counted(x, window):
        calls.append(window)
        return kernel(x, window)

    counted.__name__ = kernel.__name__
    monkeypatch.setattr(rolling, "_rolling_mean", counted)
    return calls


def test_shared_windows_compute_each_moving_average_once(monkeypatch):
    """Inside a fast-path pass, runs that share a signal share its moving average: computed
    once per distinct input and window, returned as the same numbers as without the memo."""
    from volbacktest.engine.calculators import rolling

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    x[17] = np.nan
    plain = rolling.rolling_mean(x, 10)
    calls = _count_moving_averages(monkeypatch)
    with rolling.shared_windows():
        a = rolling.rolling_mean(x.copy(), 10)
        a[:] = 0.0  # a caller's copy: the memo is not changed through it
        b = rolling.rolling_mean(x.copy(), 10)
        c = rolling.rolling_mean(x + 1e-12, 10)  # a different input
        rolling.rolling_mean(x, 11)
    assert calls == [10, 10, 11]
    np.testing.assert_array_equal(b, plain)
    assert not np.array_equal(c, plain, equal_nan=True)
    rolling.rolling_mean(x, 10)  # outside the block nothing is remembered
    assert calls == [10, 10, 11, 10]


def test_shared_windows_are_per_thread(monkeypatch):
    """Two threads (a Dask worker's chunks) inside overlapping ``shared_windows`` blocks: each
    has its own memo, and none stays active after both blocks end."""
    import threading

    from volbacktest.engine.calculators import rolling

    calls = _count_moving_averages(monkeypatch)
    x = np.arange(50.0)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with rolling.shared_windows():
            rolling.rolling_mean(x, 5)
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with rolling.shared_windows():
            b_in.set()
            a_out.wait(5)
            rolling.rolling_mean(x, 5)  # not the first thread's memo: computed again
            rolling.rolling_mean(x, 5)  # this thread's memo

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert calls == [5, 5]
    rolling.rolling_mean(x, 5)
    rolling.rolling_mean(x, 5)  # no memo left active in this thread
    assert calls == [5, 5, 5, 5]


def test_chunked_fast_path_on_two_workers_gives_the_same_store(tmp_path):
    """Chunks of the grid on a 2-process pool (configs built in the workers, records streamed
    back): the same runs, metrics, indices and return series as the single-process fast path;
    a resumed parallel sweep skips what is stored."""
    raw = raw_sweep(
        grid={"window": list(range(3, 23)), "band": [0.0, 0.01, 0.03]},
        store_returns="all",
        top=0,
        chunk_size=16,
    )
    plan = plan_from_mapping(raw)
    one = run_sweep(
        plan, opts=ExecutorOptions("vectorised", progress=False), out=tmp_path / "1", report=False
    )
    opts = ExecutorOptions("vectorised", workers=2, chunk_size=16, progress=False)
    two = run_sweep(plan, opts=opts, out=tmp_path / "2", report=False)
    assert two.stats[0].ran == plan.count() == 60
    assert_same_sweep(one, two)
    with ResultsStore(two.store_path) as b:
        assert len(b.returns_blobs()) == 60
    again = run_sweep(plan, opts=opts, out=tmp_path / "2", resume=True, report=False)
    assert again.stats[0].ran == 0 and again.stats[0].skipped == 60
