"""A million-run fast-path sweep: time, peak memory and store size (issue 16, "a store that
scales").

    python bench/bench_sweep_million.py [--runs 1000000] [--workers 1] [--chunk-size 256]
                                        [--no-report]

The sweep runs the way ``volbacktest sweep`` runs it (``engine.sweep.run.run_sweep``: the fast
path into the SQLite store with ``store_returns: top``, then the end-of-sweep steps: the
overfitting statistics, ``ranking.csv``, the event-driven re-run of the top 3 with the drift
check and their Parquet return series, and the HTML report without tear sheets) on the embedded
synthetic market's last 4,000 daily bars. The grid is bench_sweep's ``--scale`` one (VRatio
window x 100 bands) times a commission axis: 100 bands x up to 200 windows x as many commission
rates as make ``--runs``.

The same sweep is run twice, each in its own child process whose whole process tree is sampled
every 50 ms (PSS, and RSS for reference, as in ``bench_sweep.py``): with ``--runs / 10`` runs and
with ``--runs``. Flat memory means the two peaks are about equal; the store's bytes per run are
the SQLite file (and its WAL, if any) plus the Parquet return series, divided by the runs. The
load average is printed: the machine may be shared, which slows the wall clock, not the
memory or the store.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_sweep import bench_start_date, sweep_mapping, watch_tree

BANDS = 100
MAX_WINDOWS = 200
FIRST_WINDOW = 2


def grid_for(runs: int) -> dict:
    """window x band x commission with about ``runs`` combinations (commission outermost, so a
    chunk of the fast path shares one execution setting)."""
    windows = min(MAX_WINDOWS, max(1, runs // BANDS))
    rates = max(1, runs // (BANDS * windows))
    return {
        "execution.commission.percent": [round(0.00001 * i, 6) for i in range(rates)],
        "window": list(range(FIRST_WINDOW, FIRST_WINDOW + windows)),
        "band": [round(0.001 * i, 3) for i in range(BANDS)],
    }


def child(args) -> dict:
    import warnings

    from volbacktest.engine.sweep.execute import ExecutorOptions
    from volbacktest.engine.sweep.run import run_sweep
    from volbacktest.engine.sweep.spec import plan_from_mapping

    warnings.simplefilter("ignore")
    raw = sweep_mapping(200, args.start)
    raw["name"] = "bench_million"
    raw["sweep"]["grid"] = grid_for(args.runs)
    raw["sweep"]["store_returns"] = "top"
    plan = plan_from_mapping(raw)
    opts = ExecutorOptions(
        "vectorised", workers=args.workers, chunk_size=args.chunk_size, progress=False
    )
    t0 = time.perf_counter()
    out = run_sweep(plan, opts=opts, out=Path(args.out), report=args.report, tearsheets=False)
    wall = time.perf_counter() - t0
    st = out.stats[0]
    folder = out.folder
    sqlite = sum(p.stat().st_size for p in folder.glob("sweep.sqlite*"))
    parquet = sum(p.stat().st_size for p in (folder / "returns").glob("*.parquet"))
    return {
        "runs": st.ran,
        "failed": st.failed,
        "wall": wall,
        "execute": st.elapsed_s,
        "sqlite": sqlite,
        "parquet": parquet,
        "ranking_csv": (folder / "ranking.csv").stat().st_size,
        "pbo_blocks": out.overfitting.pbo_blocks,
        "best": out.ranking.index[0],
    }


def run_child(args, runs: int) -> dict:
    """One sweep of ``runs`` runs in a child process, its process tree sampled every 50 ms."""
    with tempfile.TemporaryDirectory(prefix="bench_million_") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--child", "--json", str(out), "--out", tmp]
        cmd += ["--runs", str(runs), "--workers", str(args.workers), "--start", args.start]
        cmd += ["--chunk-size", str(args.chunk_size)] + ([] if args.report else ["--no-report"])
        code, peak, _ = watch_tree(cmd)
        if code != 0:
            raise SystemExit(f"the {runs}-run sweep failed with exit status {code}")
        result = json.loads(out.read_text())
    return {**result, "peak_pss_mb": peak["pss"], "peak_rss_mb": peak["rss"]}


def kernel() -> str:
    """Which commit and which fast-path simulation (``vectorised.kernel_for``) measured."""
    from volbacktest.engine.execution.vectorised import kernel_for

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()[:72]
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown commit"
    return f"{commit}; {kernel_for(2)} kernel"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1, help="fast-path processes (chunks)")
    ap.add_argument("--chunk-size", type=int, default=256, help="runs per fast-path chunk")
    ap.add_argument("--no-report", dest="report", action="store_false", help="no HTML report")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        Path(args.json).write_text(json.dumps(child(args)))
        return
    args.start = bench_start_date()
    load = os.getloadavg()
    measured = kernel()  # the code the children run (commits made meanwhile are not theirs)
    rows = [run_child(args, max(1, args.runs // 10)), run_child(args, args.runs)]
    grid = grid_for(args.runs)
    shape = " x ".join(f"{len(v)} {k.split('.')[-1]}" for k, v in grid.items())
    print(
        f"fast-path sweep, VRatio {shape} on 4,000 synthetic daily bars from {args.start}, "
        f"store_returns top, {args.workers} process(es), report {'on' if args.report else 'off'}"
    )
    print(f"kernel: {measured}; {os.cpu_count()} CPUs; load average {load[0]:.1f} before, ", end="")
    print(f"{os.getloadavg()[0]:.1f} after (a shared machine slows the wall clock only)")
    print(
        f"{'runs':>9} {'wall s':>8} {'runs/s':>7} {'execute s':>9} {'after s':>7} "
        f"{'peak PSS MB':>11} {'peak RSS MB':>11} {'SQLite MB':>9} {'Parquet MB':>10} "
        f"{'B/run':>6} {'ranking.csv MB':>14} {'PBO S':>5}"
    )
    for r in rows:
        size = r["sqlite"] + r["parquet"]
        print(
            f"{r['runs']:>9,} {r['wall']:8.1f} {r['runs'] / r['execute']:7.0f} "
            f"{r['execute']:9.1f} {r['wall'] - r['execute']:7.1f} {r['peak_pss_mb']:11.0f} "
            f"{r['peak_rss_mb']:11.0f} {r['sqlite'] / 1e6:9.1f} {r['parquet'] / 1e6:10.2f} "
            f"{size / r['runs']:6.0f} {r['ranking_csv'] / 1e6:14.1f} {r['pbo_blocks']:>5}"
        )
    small, big = rows
    flat = big["peak_pss_mb"] / small["peak_pss_mb"] if small["peak_pss_mb"] else float("nan")
    total = (big["sqlite"] + big["parquet"]) / 1e6
    print(
        f"peak memory at {big['runs']:,} runs / at {small['runs']:,} runs: {flat:.2f} "
        f"(flat: about 1); store {total:.0f} MB, target < 300 MB for 1,000,000 runs: "
        + (
            "MET"
            if big["runs"] >= 1_000_000 and total < 300
            else "n/a"
            if big["runs"] < 1_000_000
            else "NOT MET"
        )
    )


if __name__ == "__main__":
    main()
