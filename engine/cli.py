"""Command-line entry: parse, configure logging, validate configs, run, write outputs.

Errors the user can fix (bad config, missing or malformed data) print one message and exit with
status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.errors import EngineError

log = logging.getLogger("engine")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_backtest.py",
        description="Run YAML-configured volatility strategy backtests on backtrader.",
    )
    p.add_argument("configs", nargs="+", type=Path, help="one or more YAML config files")
    p.add_argument("--compare", action="store_true", help="also write a comparison report")
    p.add_argument("--out", type=Path, help="results folder (overrides report.out_dir)")
    p.add_argument("--no-tearsheet", action="store_true", help="skip pyfolio tear sheets")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    try:
        return _run(args)
    except EngineError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(args) -> int:
    from engine.config import load_config
    from engine.report import format_table, write_comparison, write_run
    from engine.runner import run_backtest

    configs = [load_config(p) for p in args.configs]  # validate every file before running any
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from engine.errors import ConfigError

        raise ConfigError(f"several configs share the name {dupes}; give each a distinct `name`")
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
