"""Sweep throughput and memory: the 200-combination VRatio grid on 4,000 daily bars.

    python bench/bench_sweep.py [--combos 200] [--workers 2] [--repeat 3] [--batch-size 5]
                                [--start-methods fork,forkserver,spawn] [--skip-optstrategy]
                                [--scale 20000 [--dask]]

Measured in this one run, each executor in its own child process (so imports and memory of one
do not leak into another), with the child's whole process tree sampled every 50 ms:

* numpy reference: the same VRatio switch as position-times-returns in plain numpy (a
  cumulative-sum moving average per window, the band's hysteresis, one-bar lag, no costs, no
  broker): the physical limit of the task, what the fast path's runs/s are divided by;
* engine fast path: ``engine.sweep.fast.run_fast`` over the grid (decisions, array simulation,
  metrics) with the compiled kernel when numba is installed (extra ``fast``) and again with
  the numpy kernel (``VOLBT_KERNEL=numpy``, the reference it equals bit for bit), and the same
  through ``execute`` into a SQLite store (what ``sweep`` does), on one core and as chunks on
  ``--workers`` processes (``engine.sweep.fastpool``);
* ``--scale N``: an N-run grid (same market) through ``execute`` on 1 and on ``--workers``
  processes (store_returns none), the parallel speed-up of the chunked fast path; with
  ``--dask`` also as chunks on a Dask LocalCluster of ``--workers`` processes
  (``engine.sweep.dask_executor``, the cluster started before the clock);
* engine event-driven pool: ``engine.sweep.pool.run_local`` with ``--workers`` processes under
  each start method (``fork`` is the engine's default on Linux; ``forkserver`` and ``spawn`` for
  comparison), batches of ``--batch-size`` strategies per backtrader pass (results identical to
  ``run_backtest``), the market handed to every worker by the initializer, records streamed
  back;
* backtrader ``optstrategy`` (maxcpus=2, optreturn=True): ``PandasData`` feeds and a plain
  ``bt.Strategy`` doing the same VRatio switch (SMA of VIX3M/VIX against 1 ± band, cheat-on-close,
  ``order_target_percent`` at 99 % to avoid margin rejections);
* vectorbt, when installed.

Peak memory is the sum over the process tree (parent + workers) of PSS (proportional set size:
shared library pages counted once) and, for reference, of RSS (shared pages counted in every
process). Targets: fast path >= 5,000 runs/s on one core (issue 16; 1,000 in issue 7); the
chunked fast path on 2 processes >= 1.7x one on a 20,000-run grid (``--scale 20000``); pool
>= 1.5x optstrategy's runs/s with peak memory < 300 MB (issue 7). The load average is
printed: other jobs on this 2-core machine slow every wall-clock figure alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import backtrader as bt

N_BARS = 4000
BANDS = (0.0, 0.01, 0.02, 0.03, 0.05)
FIRST_WINDOW = 2
SYN = {"seed": 7, "start": "2003-01-02", "end": "2019-12-31"}


# --------------------------------------------------------------------------- the grid
def sweep_mapping(combos: int, start: str) -> dict:
    windows = list(range(FIRST_WINDOW, FIRST_WINDOW + max(1, combos // len(BANDS))))
    return {
        "name": "bench_sweep",
        "strategy": {"name": "vratio"},
        "data": {"source": "synthetic", "synthetic": SYN, "start": start},
        "execution": {"fill": "next_close"},
        "report": {"tearsheet": False, "plots": False},
        "sweep": {"grid": {"window": windows, "band": list(BANDS)}, "rank": "sharpe"},
    }


def bench_start_date() -> str:
    """First date of the last N_BARS bars of the synthetic market (so every executor sees the
    same 4,000 bars from a plain config)."""
    from volbacktest.engine.inputs.config import config_from_mapping
    from volbacktest.engine.inputs.market import market_for

    cfg = config_from_mapping(
        {"name": "b", "strategy": {"name": "vratio"}, "data": {"synthetic": SYN}}
    )
    cal = market_for(cfg).calendar
    return f"{cal[-N_BARS]:%Y-%m-%d}"


# --------------------------------------------------------------------------- children
class VRatioSwitch(bt.Strategy):
    """The plain backtrader VRatio switch for optstrategy (module level, so it pickles)."""

    params = (("window", 10), ("band", 0.0))

    def __init__(self):
        self.xiv, self.vxx, self.vix, self.vix3m = self.datas
        ratio = self.vix3m.close / self.vix.close
        self.sma = bt.indicators.SMA(ratio, period=self.p.window)
        self.holding = None

    def next(self):
        r = self.sma[0]
        if r > 1.0 + self.p.band:
            want = self.xiv
        elif r < 1.0 - self.p.band:
            want = self.vxx
        else:
            want = self.holding
        if want is not None and want is not self.holding:
            other = self.vxx if want is self.xiv else self.xiv
            self.order_target_percent(data=other, target=0.0)
            self.order_target_percent(data=want, target=0.99)
            self.holding = want


def child_prepare(args) -> dict:
    import pickle

    from volbacktest.engine.inputs.market import market_for
    from volbacktest.engine.sweep.spec import plan_from_mapping

    start = bench_start_date()
    plan = plan_from_mapping(sweep_mapping(args.combos, start))
    market = market_for(plan.base)
    assert len(market.calendar) == N_BARS, len(market.calendar)
    frames = {k: market.frames[k] for k in ("xiv", "vxx", "vix", "vix3m")}
    Path(args.frames).write_bytes(pickle.dumps(frames))
    Path(args.frames).with_suffix(".market.pkl").write_bytes(pickle.dumps(market))
    return {"start": start, "combos": plan.count()}


def child_fast(args) -> dict:
    import warnings

    from volbacktest.engine.execution.vectorised import fast_backtest
    from volbacktest.engine.inputs.market import market_for
    from volbacktest.engine.run.runner import run_backtest
    from volbacktest.engine.sweep.execute import ExecutorOptions, execute
    from volbacktest.engine.sweep.fast import run_fast
    from volbacktest.engine.sweep.records import MarketCache
    from volbacktest.engine.sweep.spec import plan_from_mapping
    from volbacktest.engine.sweep.store import ResultsStore

    warnings.simplefilter("ignore")
    plan = plan_from_mapping(sweep_mapping(args.combos, args.start))
    cache = MarketCache()
    cache.put(plan.base, market_for(plan.base))
    combos = list(plan.iter_combos())
    list(run_fast(combos, chunk_size=256, markets=cache))  # warm caches and imports
    walls, cpus = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        records = list(run_fast(combos, chunk_size=256, markets=cache))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert len(records) == len(combos) and all(r.ok for r in records)
        del records
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore.open(
            Path(tmp), fingerprint=plan.fingerprint(), name=plan.name, resume=False
        )
        t0 = time.perf_counter()
        stats = execute(plan, store, ExecutorOptions("vectorised", progress=False), markets=cache)
        with_store = time.perf_counter() - t0
        store.close()
    drift = 0.0
    for c in combos[:: max(1, len(combos) // 3)][:3]:
        ev = run_backtest(c.config, market=cache.get(c.config))
        fa = fast_backtest(c.config, cache.get(c.config))
        drift = max(drift, float(((ev.equity - fa.equity).abs() / ev.equity).max()))
    from volbacktest.engine.execution.vectorised import kernel_for

    return {
        "kernel": kernel_for(2),
        "runs": len(combos),
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "wall_with_store": with_store,
        "store_runs": stats.ran,
        "drift": drift,
    }


def child_fast_numpy(args) -> dict:
    """The fast path with the numpy simulation (the reference the compiled kernel equals)."""
    os.environ["VOLBT_KERNEL"] = "numpy"
    return child_fast(args)


def child_pool(args) -> dict:
    """The pool as ``sweep --executor local`` runs it, with the market read from the file the
    prepare step wrote (as optstrategy reads its frames: the synthetic generator's own memory is
    not the pool's); the initializer hands it to every worker."""
    from volbacktest.engine.sweep.pool import batches, run_local
    from volbacktest.engine.sweep.spec import plan_from_mapping

    plan = plan_from_mapping(sweep_mapping(args.combos, args.start))
    combos = list(plan.iter_combos())
    t0, c0 = time.perf_counter(), time.process_time()
    blob = Path(args.frames).with_suffix(".market.pkl").read_bytes()
    preload = [(plan.resolved_for({}), blob)]
    ok = 0
    work = batches(combos, args.batch_size)
    for rec in run_local(
        work, workers=args.workers, preload=preload, start_method=args.start_method
    ):
        ok += rec.ok
    wall = time.perf_counter() - t0
    assert ok == len(combos), f"{len(combos) - ok} runs failed"
    return {"runs": len(combos), "wall": wall, "cpu": time.process_time() - c0}


def child_optstrategy(args) -> dict:
    import pickle

    frames = pickle.loads(Path(args.frames).read_bytes())

    windows = list(range(FIRST_WINDOW, FIRST_WINDOW + max(1, args.combos // len(BANDS))))
    t0, c0 = time.perf_counter(), time.process_time()
    cerebro = bt.Cerebro(stdstats=False, maxcpus=2, optreturn=True)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.set_coc(True)
    for name in ("xiv", "vxx", "vix", "vix3m"):
        frame = frames[name].copy()
        frame["volume"] = frame["volume"].fillna(0.0)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=name)
    cerebro.optstrategy(VRatioSwitch, window=windows, band=list(BANDS))
    results = cerebro.run()
    return {
        "runs": len(results),
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
    }


def child_vectorbt(args) -> dict:
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        return {"skipped": "not installed"}
    return {"skipped": "installed, but no vectorbt baseline is written here yet"}


def child_numpy(args) -> dict:
    """Position-times-returns in plain numpy: the limit of the task (no broker, no costs)."""
    import pickle

    import numpy as np

    frames = pickle.loads(Path(args.frames).read_bytes())
    px = np.column_stack([frames[k]["close"].to_numpy(dtype=float) for k in ("xiv", "vxx")])
    ratio = frames["vix3m"]["close"].to_numpy(dtype=float) / frames["vix"]["close"].to_numpy(
        dtype=float
    )
    windows = list(range(FIRST_WINDOW, FIRST_WINDOW + max(1, args.combos // len(BANDS))))

    def sweep():
        ret = np.zeros_like(px)
        ret[1:] = px[1:] / px[:-1] - 1.0
        csum = np.concatenate([[0.0], np.cumsum(ratio)])
        sharpes = []
        for w in windows:
            sma = np.full(len(ratio), np.nan)
            sma[w - 1 :] = (csum[w:] - csum[:-w]) / w
            for band in BANDS:
                state = np.where(sma > 1 + band, 1.0, np.where(sma < 1 - band, -1.0, np.nan))
                idx = np.where(np.isnan(state), 0, np.arange(len(state)))
                np.maximum.accumulate(idx, out=idx)
                state = state[idx]  # hold the last decision
                pos = np.zeros(len(state))
                pos[1:] = state[:-1]  # decided at a close, held from the next bar
                r = np.where(pos > 0, ret[:, 0], np.where(pos < 0, ret[:, 1], 0.0))
                sharpes.append(r.mean() / r.std() * np.sqrt(252))
        return sharpes

    sweep()
    walls, cpus = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = sweep()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"runs": len(out), "wall": statistics.median(walls), "cpu": statistics.median(cpus)}


def child_fast_parallel(args) -> dict:
    """The fast path as chunks on ``--workers`` processes (what ``sweep --workers N`` does with
    executor vectorised), into a store without return series."""
    import warnings

    from volbacktest.engine.inputs.market import market_for
    from volbacktest.engine.sweep.execute import ExecutorOptions, execute
    from volbacktest.engine.sweep.records import MarketCache
    from volbacktest.engine.sweep.spec import plan_from_mapping
    from volbacktest.engine.sweep.store import ResultsStore

    warnings.simplefilter("ignore")
    raw = sweep_mapping(args.combos, args.start)
    if args.scale:
        per_band = 100
        raw["sweep"]["grid"] = {
            "window": list(range(FIRST_WINDOW, FIRST_WINDOW + max(1, args.scale // per_band))),
            "band": [round(0.001 * i, 3) for i in range(per_band)],
        }
    plan = plan_from_mapping(raw)
    cache = MarketCache()
    cache.put(plan.base, market_for(plan.base))

    def timed(**where) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            store = ResultsStore.open(
                Path(tmp),
                fingerprint=plan.fingerprint(),
                name=plan.name,
                resume=False,
                store_returns="none",
            )
            opts = ExecutorOptions(
                "vectorised", chunk_size=args.chunk_size, progress=False, **where
            )
            t0, c0 = time.perf_counter(), time.process_time()
            stats = execute(plan, store, opts, markets=cache)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            store.close()
        assert stats.failed == 0
        return {"runs": stats.ran, "wall": wall, "cpu": cpu}

    out = {}
    for workers in (1, args.workers) if args.scale else (args.workers,):
        out[workers] = timed(workers=workers)
    if args.scale and args.dask:  # a cluster already running: its start timed apart
        from volbacktest.engine.sweep.dask_executor import local_cluster

        t0 = time.perf_counter()
        with local_cluster(args.workers) as address:
            start = time.perf_counter() - t0
            out["dask"] = {**timed(scheduler=address), "cluster_start": start}
    last = out[args.workers]
    return {**last, "by_workers": {str(k): v for k, v in out.items()}}


CHILDREN = {
    "prepare": child_prepare,
    "numpy": child_numpy,
    "fast": child_fast,
    "fast_numpy": child_fast_numpy,
    "fast_parallel": child_fast_parallel,
    "pool": child_pool,
    "optstrategy": child_optstrategy,
    "vectorbt": child_vectorbt,
}


# --------------------------------------------------------------------------- measuring
def _tree_sample(pid: int, cpu: dict) -> tuple[float, float, list[float]]:
    """Summed PSS and RSS (MB) of a process and its descendants, and each one's PSS; records
    each process's CPU seconds so far in ``cpu`` (by pid)."""
    try:
        import psutil
    except ImportError:  # no sampling: main() reports getrusage's largest single RSS instead
        return 0.0, 0.0, []

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0, []
    pss = rss = 0
    each = []
    for p in procs:
        try:
            m = p.memory_full_info()
            t = p.cpu_times()
        except psutil.Error:
            continue
        cpu[p.pid] = t.user + t.system
        pss += getattr(m, "pss", m.rss)
        rss += m.rss
        each.append(round(getattr(m, "pss", m.rss) / 1e6))
    return pss / 1e6, rss / 1e6, each


def watch_tree(cmd: list[str]) -> tuple[int, dict, dict[int, float]]:
    """Run ``cmd`` and sample its process tree every 50 ms: its exit status, the peaks (summed
    PSS and RSS in MB, each process's PSS at the PSS peak) and each process's CPU seconds."""
    proc = subprocess.Popen(cmd)
    peak = {"pss": 0.0, "rss": 0.0, "each": []}
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            pss, rss, each = _tree_sample(proc.pid, cpu)
            if pss > peak["pss"]:
                peak["pss"], peak["each"] = pss, each
            peak["rss"] = max(peak["rss"], rss)
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    code = proc.wait()
    stop.set()
    th.join()
    return code, peak, cpu


def run_child(kind: str, args, extra: list[str]) -> dict:
    """Run one measurement in a child process; sample its process tree's memory."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    code, peak, cpu = watch_tree([sys.executable, __file__, "--child", kind, "--json", out, *extra])
    if code != 0:
        raise SystemExit(f"child {kind} failed with exit status {code}")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["peak_pss_mb"] = peak["pss"]
    result["peak_rss_mb"] = peak["rss"]
    result["peak_pss_each"] = peak["each"]
    # without psutil: the largest RSS of any one process of the tree (getrusage, kB on Linux)
    result["max_single_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e3
    result["tree_cpu"] = sum(cpu.values())  # every process of the run (sampled every 50 ms)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--combos", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=5, help="runs per backtrader pass")
    ap.add_argument(
        "--start-methods",
        default="fork,forkserver,spawn",
        help="pool start methods to measure (the first is the engine's default on Linux)",
    )
    ap.add_argument("--start-method", help=argparse.SUPPRESS)
    ap.add_argument("--skip-optstrategy", action="store_true")
    ap.add_argument("--skip-pool", action="store_true", help="no event-driven pool rows")
    ap.add_argument(
        "--scale", type=int, default=0, help="also an N-run grid on 1 vs --workers processes"
    )
    ap.add_argument("--chunk-size", type=int, default=256, help="runs per fast-path chunk")
    ap.add_argument(
        "--dask",
        action="store_true",
        help="with --scale: also the chunks on a Dask LocalCluster of --workers processes",
    )
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--json")
    ap.add_argument("--start")
    ap.add_argument("--frames")
    args = ap.parse_args()
    if args.child:
        result = CHILDREN[args.child](args)
        Path(args.json).write_text(json.dumps(result))
        return

    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    frames = str(Path(tmp) / "frames.pkl")
    common = ["--combos", str(args.combos), "--workers", str(args.workers)]
    common += ["--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size)]
    prep = run_child("prepare", args, [*common, "--frames", frames])
    common += ["--start", prep["start"], "--frames", frames, "--repeat", str(args.repeat)]
    load = os.getloadavg()
    methods = [] if args.skip_pool else [m for m in args.start_methods.split(",") if m]
    rows = {"numpy": run_child("numpy", args, common), "fast": run_child("fast", args, common)}
    rows["fast_numpy"] = run_child("fast_numpy", args, common)
    rows["fast_parallel"] = run_child("fast_parallel", args, common)
    if args.scale:
        scale = [*common, "--scale", str(args.scale), *(["--dask"] if args.dask else [])]
        rows["scale"] = run_child("fast_parallel", args, scale)
    for m in methods:
        rows[f"pool:{m}"] = run_child("pool", args, [*common, "--start-method", m])
    if not args.skip_optstrategy:
        rows["optstrategy"] = run_child("optstrategy", args, common)
    vbt = run_child("vectorbt", args, common)
    print(
        f"VRatio sweep: {prep['combos']} combinations (window {FIRST_WINDOW}.. x band "
        f"{list(BANDS)}), {N_BARS} daily bars from {prep['start']}; {os.cpu_count()} CPUs; "
        f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    report(rows, methods, vbt, args.workers)


def report(rows: dict, methods: list[str], vbt: dict, workers: int) -> None:
    """The table beside optstrategy, then the verdict on each target."""
    header = f"{'executor':<44} {'runs':>5} {'wall s':>8} {'runs/s':>8} {'cpu s':>7} "
    header += f"{'peak PSS MB':>11} {'peak RSS MB':>11} {'vs optstr.':>10}"
    print(header)
    base = rows.get("optstrategy")
    base_rate = base["runs"] / base["wall"] if base else None

    def line(name, r, wall=None):
        wall = r["wall"] if wall is None else wall
        rate = r["runs"] / wall
        vs = f"{rate / base_rate:9.2f}x" if base_rate else f"{'n/a':>10}"
        print(
            f"{name:<44} {r['runs']:>5} {wall:8.3f} {rate:8.1f} {r['cpu']:7.2f} "
            f"{r['peak_pss_mb']:11.0f} {r['peak_rss_mb']:11.0f} {vs}"
        )
        return rate

    ref = rows["numpy"]
    ref_rate = line("numpy reference (position x returns, median)", ref)
    fast = rows["fast"]
    fast_rate = line(f"engine fast path, 1 core ({fast['kernel']} kernel, median)", fast)
    line("engine fast path + SQLite store, 1 core", fast, fast["wall_with_store"])
    line("engine fast path, 1 core, numpy kernel", rows["fast_numpy"])
    par = rows["fast_parallel"]
    par_rate = line(f"engine fast path, {workers} processes (chunks)", par)
    pool_rates = {
        m: line(f"engine event-driven pool ({workers} workers, {m})", rows[f"pool:{m}"])
        for m in methods
    }
    if base:
        line("backtrader optstrategy (maxcpus=2, optreturn)", base)
    print(f"{'vectorbt':<44} {vbt.get('skipped', '')}")
    print(
        f"fast path CPU time: {fast['cpu']:.3f} s -> {fast['runs'] / fast['cpu']:.0f} runs per "
        f"CPU-second; fast vs event-driven on 3 runs: max relative equity diff {fast['drift']:.1e}"
    )
    print(
        f"fast path / numpy reference: {fast_rate / ref_rate:.3f} (1 core), "
        f"{par_rate / ref_rate:.3f} ({workers} processes, pool start-up included)"
    )
    print(
        f"target fast path >= 5000 runs/s on one core: {'MET' if fast_rate >= 5000 else 'NOT MET'} "
        f"({fast_rate:.0f})"
    )
    if "scale" in rows:
        by = rows["scale"]["by_workers"]
        one, many = by["1"], by[str(workers)]
        speedup = one["wall"] / many["wall"]
        print(
            f"{one['runs']}-run grid through execute (store without series): 1 process "
            f"{one['wall']:.1f} s ({one['runs'] / one['wall']:.0f} runs/s), {workers} processes "
            f"{many['wall']:.1f} s ({many['runs'] / many['wall']:.0f} runs/s): speed-up "
            f"{speedup:.2f}x; target >= 1.7x: {'MET' if speedup >= 1.7 else 'NOT MET'}"
        )
        if "dask" in by:
            d = by["dask"]
            print(
                f"the same grid as chunks on a Dask LocalCluster of {workers} worker processes: "
                f"{d['wall']:.1f} s ({d['runs'] / d['wall']:.0f} runs/s; cluster start "
                f"{d['cluster_start']:.1f} s not included): {one['wall'] / d['wall']:.2f}x "
                f"1 process, {many['wall'] / d['wall']:.2f}x the local pool"
            )
    tree = [f"{m} pool {rows[f'pool:{m}']['tree_cpu']:.1f}" for m in methods]
    if base:
        tree.append(f"optstrategy {base['tree_cpu']:.1f}")
    print(
        "CPU seconds of each measured process tree (workers included, with interpreter start-up "
        "and imports; load-independent): " + ", ".join(tree)
    )
    if not fast["peak_pss_mb"]:
        print(
            "psutil is not installed: no tree sampling; largest single-process RSS seen "
            f"(getrusage) {max(r['max_single_rss_mb'] for r in rows.values()):.0f} MB"
        )
    for m in methods:
        r = rows[f"pool:{m}"]
        speed = ""
        if base_rate:
            ratio = pool_rates[m] / base_rate
            speed = f"speed {ratio:.2f}x optstrategy {'MET' if ratio >= 1.5 else 'NOT MET'}; "
        pss = r["peak_pss_mb"]
        print(
            f"target pool ({m}) >= 1.5x optstrategy and < 300 MB: {speed}peak PSS {pss:.0f} MB "
            f"{'MET' if pss < 300 else 'NOT MET'} (RSS sum {r['peak_rss_mb']:.0f} MB; PSS per "
            f"process at the peak, parent first: {r['peak_pss_each']})"
        )


if __name__ == "__main__":
    main()
