"""``volbacktest compare A.yaml B.yaml ...``: run several configs and write one self-contained
HTML comparison report (``engine.run.compare.write_report``)."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_root, add_overwrite, data_root, load_configs, load_markets

DESCRIPTION = """\
Run several configs and write one self-contained HTML comparison report (metrics, equity
curves, drawdowns, rolling Sharpe, monthly returns, tear sheets) with PNG and CSV files
beside it."""

EXAMPLE = """
volbacktest compare configs/vratio.yaml configs/vrp.yaml --no-tearsheet
volbacktest compare configs/real/vratio.yaml configs/real/vrp.yaml --out results/cmp
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "compare",
        parents,
        summary="run several configs and write one HTML comparison report",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    p.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="YAML config files")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="report folder (default: <report.out_dir of the first config>/compare)",
    )
    p.add_argument("--no-tearsheet", action="store_true", help="skip the pyfolio tear sheets")
    p.add_argument(
        "--title", default="Strategy comparison", help="report title (default: %(default)s)"
    )
    add_overwrite(p, "report folder")
    add_data_root(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from volbacktest.engine.run.compare import write_report
    from volbacktest.engine.run.outputs import atomic_dir, check_output_dir
    from volbacktest.engine.run.report import format_table
    from volbacktest.engine.run.runner import run_backtest

    configs = load_configs(args.configs, data_root(args.data_root))
    out = Path(args.out or Path(configs[0].report.out_dir) / "compare")
    check_output_dir(out, "report folder", overwrite=args.overwrite)  # before any work
    markets = load_markets(configs)
    results = [run_backtest(cfg, market=m) for cfg, m in zip(configs, markets, strict=True)]
    with atomic_dir(out, overwrite=args.overwrite) as tmp:
        page = write_report(results, tmp, title=args.title, tearsheets=not args.no_tearsheet)
    path = out / page.relative_to(tmp)
    print(format_table(results) + f"\n\nreport: {path}")
    return 0
