"""``volbacktest run CONFIG.yaml [...]`` (or just ``volbacktest CONFIG.yaml [...]``): run
backtests and write each run's results folder, plus a comparison when there are several."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_root, data_root, load_configs

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
    add_data_root(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from volbacktest.engine.run.report import format_table, write_comparison, write_run
    from volbacktest.engine.run.runner import run_backtest

    configs = load_configs(args.configs, data_root(args.data_root))
    results = []
    for cfg in configs:
        if args.no_tearsheet:
            cfg = cfg.with_overrides(**{"report.tearsheet": False})
        out_dir = args.out or cfg.report.out_dir
        result = run_backtest(cfg)
        folder = write_run(result, out_dir)
        results.append(result)
        print(f"{cfg.name}: results in {folder}")
    print()
    print(format_table(results))
    if args.compare or len(results) > 1:
        out_dir = (args.out or configs[0].report.out_dir) / "comparison"
        folder = write_comparison(results, out_dir)
        print(f"\ncomparison in {folder}")
    return 0
