"""``volbacktest run CONFIG.yaml [...]`` (or just ``volbacktest CONFIG.yaml [...]``): run
backtests and write each run's results folder, plus a comparison when there are several."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_root, add_overwrite, data_root, load_configs, load_markets

DESCRIPTION = """\
Run YAML-configured volatility strategy backtests on backtrader and write one results folder
per config (metrics.json, returns, positions, weights and transactions CSV, plots); with several
configs also a comparison. `volbacktest CONFIG.yaml ...` is short for
`volbacktest run CONFIG.yaml ...`."""

EXAMPLE = """
volbacktest run configs/vratio.yaml
volbacktest configs/*.yaml --out results/all --no-tearsheet
volbacktest run configs/real/vratio.yaml --data-root ../shared/data
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "run",
        parents,
        summary="run backtests from YAML configs (or just: volbacktest CONFIG.yaml)",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    p.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="YAML config files")
    p.add_argument(
        "--compare",
        action="store_true",
        help="also write a comparison for a single config (automatic for several)",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder (overrides report.out_dir)"
    )
    p.add_argument("--no-tearsheet", action="store_true", help="skip the pyfolio tear sheets")
    add_overwrite(p, "results folder results/<name>/ (and comparison/)")
    add_data_root(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from volbacktest.engine.run.outputs import check_output_dir
    from volbacktest.engine.run.report import format_table, write_comparison, write_run
    from volbacktest.engine.run.runner import run_backtest

    configs = load_configs(args.configs, data_root(args.data_root))
    if args.no_tearsheet:
        configs = [c.with_overrides(**{"report.tearsheet": False}) for c in configs]
    # every output location and every config's data are checked before the first run
    folders = [Path(args.out or cfg.report.out_dir) / cfg.name for cfg in configs]
    for cfg, folder in zip(configs, folders, strict=True):
        check_output_dir(folder, f"results folder of {cfg.name!r}:", overwrite=args.overwrite)
    comparison = None
    if args.compare or len(configs) > 1:
        comparison = Path(args.out or configs[0].report.out_dir) / "comparison"
        check_output_dir(comparison, "comparison folder", overwrite=args.overwrite)
    markets = load_markets(configs)
    results = [
        run_backtest(cfg, market=market) for cfg, market in zip(configs, markets, strict=True)
    ]
    for result, folder in zip(results, folders, strict=True):
        write_run(result, folder.parent, overwrite=args.overwrite)
        print(f"{result.label}: results in {folder}")
    print()
    print(format_table(results))
    if comparison is not None:
        write_comparison(results, comparison, overwrite=args.overwrite)
        print(f"\ncomparison in {comparison}")
    return 0
