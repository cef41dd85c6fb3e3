"""``run_backtest.py sweep SWEEP.yaml [--executor local|dask|vectorised] [--scheduler ADDR]
[--workers N] [--resume] [--out DIR]``: run a parameter sweep (or walk-forward) and write its
results folder: ``sweep.sqlite`` (every run), ``ranking.csv``, ``drift.csv`` and
``report/report.html`` with PNG and CSV files beside it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from volbacktest.engine.sweep.execute import ExecutorOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_backtest.py sweep",
        description="Run a parameter sweep defined by a backtest config plus a `sweep:` block "
        "(and optionally `split:` for walk-forward).",
    )
    p.add_argument("sweep", type=Path, help="sweep YAML file")
    p.add_argument(
        "--executor",
        choices=["vectorised", "local", "dask"],
        help="vectorised: array fast path (default from the file, else vectorised); local: "
        "event-driven in a process pool; dask: event-driven on a Dask cluster",
    )
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--workers", type=int, help="processes for --executor local")
    p.add_argument("--resume", action="store_true", help="continue a sweep in the same folder")
    p.add_argument("--out", type=Path, help="results root (default: the config's report.out_dir)")
    p.add_argument("--top", type=int, help="best runs re-run event-driven and reported")
    p.add_argument("--chunk-size", type=int, help="runs per vectorised pass")
    p.add_argument("--batch-size", type=int, help="runs per event-driven backtrader pass")
    p.add_argument(
        "--start-method",
        choices=["forkserver", "spawn", "fork"],
        help="local pool process start method (default forkserver where available, else spawn)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--no-tearsheet", action="store_true", help="skip pyfolio tear sheets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _summary(outcome) -> str:
    plan = outcome.plan
    lines = []
    stats = outcome.stats
    total = sum(s.total for s in stats)
    ran = sum(s.ran for s in stats)
    failed = sum(s.failed for s in stats)
    skipped = sum(s.skipped for s in stats)
    elapsed = sum(s.elapsed_s for s in stats)
    where = f" in {len(stats)} walk-forward windows" if len(stats) > 1 else ""
    rate = f"{ran / elapsed:.1f} runs/s" if elapsed > 0 and ran else "nothing to run"
    lines.append(
        f"{total} runs{where}: {ran} run now ({failed} failed), {skipped} already stored; {rate}"
    )
    metric = plan.spec.rank.metric
    head = outcome.ranking.head(5)
    if len(head):
        lines.append(f"best by {plan.spec.rank.describe()}:")
        for run_id, row in head.iterrows():
            params = ", ".join(
                f"{k[2:]}={row[k]}" for k in outcome.ranking.columns if k.startswith("p.")
            )
            lines.append(f"  {run_id}  {params}  {metric}={row[metric]:.4g}")
    if len(outcome.drift):
        worst = outcome.drift["max_rel_equity_diff"].max()
        verdict = "DRIFT" if outcome.drifted else "agrees"
        lines.append(
            f"event-driven re-run of the top {len(outcome.drift)}: {verdict} "
            f"(max relative equity difference {worst:.2g})"
        )
    wf = outcome.walkforward
    if wf is not None:
        lines.append("walk-forward (in-sample vs out-of-sample):")
        lines.append(wf.side_by_side.to_string(float_format=lambda v: f"{v:.4g}"))
    lines.append(f"store: {outcome.store_path}")
    if outcome.report is not None:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:])
    from volbacktest.engine.sweep.run import run_sweep
    from volbacktest.engine.sweep.spec import load_sweep

    plan = load_sweep(args.sweep)
    opts = ExecutorOptions(
        kind=args.executor or plan.spec.executor,
        workers=args.workers or plan.spec.workers,
        scheduler=args.scheduler,
        chunk_size=args.chunk_size or plan.spec.chunk_size,
        batch_size=args.batch_size or plan.spec.batch_size,
        start_method=args.start_method or plan.spec.start_method,
        progress=not args.no_progress,
    )
    outcome = run_sweep(
        plan,
        opts=opts,
        out=args.out,
        resume=args.resume,
        top=args.top,
        report=not args.no_report,
        tearsheets=not args.no_tearsheet,
    )
    sys.stdout.write(_summary(outcome) + "\n")
    return 1 if outcome.drifted else 0
