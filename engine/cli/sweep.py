"""``volbacktest sweep SWEEP.yaml [--executor vectorised|local|dask] ...``: run a parameter
sweep (or walk-forward) and write its results folder: ``sweep.sqlite`` (every run),
``ranking.csv``, ``drift.csv`` and ``report/report.html`` with PNG and CSV files beside it.
Exit status 1 when the event-driven re-run of the best runs drifts from the fast path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from volbacktest.engine.errors import ConfigError

from .common import (
    add_command,
    add_data_root,
    add_overwrite,
    data_root,
    non_negative_int,
    positive_int,
)

DESCRIPTION = """\
Run a parameter sweep defined by a backtest config plus a `sweep:` block (and optionally
`split:` for walk-forward) and write its results folder: sweep.sqlite (every run), ranking.csv,
drift.csv and report/report.html. The best runs are re-run event-driven to check the fast path
(exit status 1 when they drift). Options given here override the file's `sweep:` values."""

EXAMPLE = """
volbacktest sweep configs/sweeps/vratio_grid.yaml
volbacktest sweep configs/sweeps/vratio_grid.yaml --workers 2
volbacktest sweep configs/sweeps/vratio_grid.yaml --scheduler tcp://HOST:8786
volbacktest sweep configs/sweeps/vratio_grid.yaml --scheduler local --workers 2
volbacktest sweep configs/sweeps/vratio_grid.yaml --executor local --workers 2
volbacktest sweep configs/sweeps/vratio_grid.yaml --executor dask --scheduler tcp://HOST:8786
volbacktest sweep configs/sweeps/vratio_walkforward.yaml --data-root ../shared/data
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "sweep",
        parents,
        summary="run a parameter sweep or walk-forward from a sweep YAML",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    p.add_argument("sweep", type=Path, metavar="SWEEP", help="sweep YAML file")
    p.add_argument(
        "--executor",
        choices=["vectorised", "local", "dask"],
        help="vectorised: array fast path (default from the file, else vectorised), in this "
        "process, in chunks on --workers processes, or on the Dask cluster of --scheduler; "
        "local: event-driven in a process pool; dask: event-driven on a Dask cluster",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="Dask scheduler for --executor vectorised or dask, e.g. tcp://10.0.0.5:8786, or "
        "'local': a cluster of --workers processes on this machine, started for the sweep",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="processes: of the local pool (--executor local, or vectorised in chunks), or of "
        "the cluster started by --scheduler local (default: one per CPU); a cluster at an "
        "address has its own",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue a sweep stored in the same folder"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="results root (default: the config's report.out_dir); the sweep writes DIR/<name>/",
    )
    p.add_argument(
        "--top",
        type=non_negative_int,
        metavar="N",
        help="best runs re-run event-driven and reported",
    )
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        metavar="N",
        help="runs per vectorised pass (and per chunk sent to a worker)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, metavar="N", help="runs per event-driven backtrader pass"
    )
    p.add_argument(
        "--start-method",
        choices=["forkserver", "spawn", "fork"],
        help="local pool process start method (default forkserver where available, else spawn)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--no-tearsheet", action="store_true", help="skip the pyfolio tear sheets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_overwrite(p, "sweep folder DIR/<name>/ (the new sweep runs in a temporary folder)")
    add_data_root(p)
    p.set_defaults(handler=run)


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
    wf = outcome.walkforward
    if len(head):
        scope = ""
        if wf is not None:  # the ranking is the first window's in-sample one (ranking.csv too)
            first = wf.windows.iloc[0]
            scope = (
                f" in walk-forward window {first['window']} (1 of {len(wf.windows)}, in-sample "
                f"{first['train_start']:%Y-%m-%d}..{first['train_end']:%Y-%m-%d}; every "
                "window's choice is in the table below)"
            )
        lines.append(f"best by {plan.spec.rank.describe()}{scope}:")
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
    ov = outcome.overfitting
    if ov is not None and ov.n_trials:
        lines.append(
            "selection bias (Bailey & López de Prado; Bailey, Borwein, López de Prado & Zhu):"
        )
        lines += [f"  {label}: {value}" for label, value in ov.rows()]
        lines.append(f"  {ov.verdict()}")
        lines += [f"  WARNING best run on the edge of the grid: {w}" for w in ov.boundary]
    if wf is not None:
        lines.append("walk-forward (in-sample vs out-of-sample):")
        lines.append(wf.side_by_side.to_string(float_format=lambda v: f"{v:.4g}"))
    lines.append(f"store: {outcome.store_path}")
    if outcome.report is not None:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)


def _moved(outcome, old: Path, new: Path):
    """``outcome`` with its paths moved from the temporary folder ``old`` to ``new``."""

    def move(path):
        return None if path is None else new / Path(path).relative_to(old)

    return dataclasses.replace(
        outcome, folder=new, store_path=move(outcome.store_path), report=move(outcome.report)
    )


def run(args) -> int:
    from volbacktest.engine.run.outputs import atomic_dir, check_output_dir
    from volbacktest.engine.sweep.execute import ExecutorOptions
    from volbacktest.engine.sweep.run import run_sweep
    from volbacktest.engine.sweep.spec import load_sweep

    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the stored sweep, --overwrite replaces it: pick one")
    plan = load_sweep(args.sweep)
    root = data_root(args.data_root)
    if root is not None:  # a new plan around the overridden base config (the spec is unchanged)
        plan = dataclasses.replace(plan, base=plan.base.with_overrides(**{"data.root": root}))
    opts = ExecutorOptions(
        kind=args.executor or plan.spec.executor,
        workers=args.workers or plan.spec.workers,
        scheduler=args.scheduler,
        chunk_size=args.chunk_size or plan.spec.chunk_size,
        batch_size=args.batch_size or plan.spec.batch_size,
        start_method=args.start_method or plan.spec.start_method,
        progress=not args.no_progress,
    )
    folder = Path(args.out if args.out is not None else plan.base.report.out_dir) / plan.name
    # before any work; an existing sweep is the store's to refuse (--resume continues it)
    check_output_dir(folder, "sweep folder", overwrite=True)
    kwargs = dict(
        opts=opts,
        resume=args.resume,
        top=args.top,
        report=not args.no_report,
        tearsheets=not args.no_tearsheet,
    )
    if args.overwrite:  # the new sweep is run aside and replaces the old one whole
        with atomic_dir(folder, overwrite=True) as tmp:
            outcome = run_sweep(plan, out=tmp, **kwargs)  # writes tmp/<name>/
            for entry in list(outcome.folder.iterdir()):
                entry.rename(tmp / entry.name)
            outcome.folder.rmdir()
        outcome = _moved(outcome, outcome.folder, folder)
    else:
        outcome = run_sweep(plan, out=folder.parent, **kwargs)
    print(_summary(outcome))
    return 1 if outcome.drifted else 0
