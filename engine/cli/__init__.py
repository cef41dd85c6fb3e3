"""Command-line entry: parse, configure logging, validate configs, run, write outputs.

``run_backtest.py CONFIG.yaml [...]`` runs backtests (the default command). Other capabilities
are subcommands, each a module exposing ``main(argv) -> int`` and imported only when used:

    run_backtest.py compare A.yaml B.yaml ...   comparison report of several configs
    run_backtest.py sweep SWEEP.yaml            parameter sweep / walk-forward
    run_backtest.py vix --preset ...            VIX / iVIX history from option chains
    run_backtest.py futures ... | etn ...       VIX futures curve / ETN reconstruction
    run_backtest.py datasets                    list the dataset catalogue

Errors the user can fix (bad config, missing or malformed data) print one message and exit with
status 2; ``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from volbacktest.engine.errors import ConfigError, EngineError

log = logging.getLogger("engine")

# subcommand -> module with ``main(argv: list[str]) -> int``
SUBCOMMANDS = {
    "compare": "volbacktest.engine.run.compare",
    "sweep": "volbacktest.engine.cli.sweep",
    "vix": "volbacktest.engine.cli.vix",
    "futures": "volbacktest.engine.cli.futures",
    "etn": "volbacktest.engine.cli.futures",
    "datasets": "volbacktest.engine.cli",
}


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_backtest.py",
        description="Run YAML-configured volatility strategy backtests on backtrader. "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (run_backtest.py SUBCOMMAND --help).",
    )
    p.add_argument("configs", nargs="+", type=Path, help="one or more YAML config files")
    p.add_argument("--compare", action="store_true", help="also write a comparison report")
    p.add_argument("--out", type=Path, help="results folder (overrides report.out_dir)")
    p.add_argument("--no-tearsheet", action="store_true", help="skip pyfolio tear sheets")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            if argv[0] == "datasets":
                return _datasets(argv[1:])
            module = importlib.import_module(SUBCOMMANDS[argv[0]])
            return int(module.main(argv))
        return run_configs(_run_parser().parse_args(argv))
    except EngineError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def load_configs(paths) -> list:
    """Validate every file before running any; names must be distinct."""
    from volbacktest.engine.inputs.config import load_config

    configs = [load_config(p) for p in paths]
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"several configs share the name {dupes}; give each a distinct `name`")
    return configs


def run_configs(args) -> int:
    from volbacktest.engine.run.report import format_table, write_comparison, write_run
    from volbacktest.engine.run.runner import run_backtest

    configs = load_configs(args.configs)
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


def _datasets(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="run_backtest.py datasets", description="List the datasets configs can name."
    )
    p.add_argument("--root", type=Path, help="data root to check for files")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    from volbacktest.data.catalogue import list_datasets, search_roots

    roots = search_roots(args.root)
    print("search roots: " + ", ".join(str(r) for r in roots))
    for line in list_datasets():
        print(line)
    return 0
