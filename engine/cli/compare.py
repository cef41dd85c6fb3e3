"""``volbacktest compare A.yaml B.yaml ...``: run several configs and write one self-contained
HTML comparison report (``engine.run.compare.write_report``)."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_root, data_root, load_configs

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
    add_data_root(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from volbacktest.engine.run.compare import write_report
    from volbacktest.engine.run.report import format_table
    from volbacktest.engine.run.runner import run_backtest

    configs = load_configs(args.configs, data_root(args.data_root))
    results = [run_backtest(cfg) for cfg in configs]
    out = args.out or Path(configs[0].report.out_dir) / "compare"
    path = write_report(results, out, title=args.title, tearsheets=not args.no_tearsheet)
    print(format_table(results) + f"\n\nreport: {path}")
    return 0
