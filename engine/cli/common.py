"""Pieces shared by the subcommands: the help formatter, ``--data-root`` and config loading."""

from __future__ import annotations

import argparse
from pathlib import Path

from volbacktest.engine.errors import ConfigError

PROG = "volbacktest"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their line breaks (examples stay one command a line)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_command(subparsers, name: str, parents, *, summary: str, description: str, example: str):
    """A subparser with a one-line ``summary`` (the top-level list), a ``description`` and the
    ``example`` lines as its epilog."""
    return subparsers.add_parser(
        name,
        parents=parents,
        help=summary,
        description=description,
        epilog="example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines()),
        formatter_class=HelpFormatter,
    )


DATA_ROOT_HELP = (
    "folder holding the shared market data, e.g. ../shared/data (overrides data.root of every "
    "config; searched before $VOLBT_DATA_ROOT and ../shared/data)"
)


def add_data_root(
    parser: argparse.ArgumentParser, *names: str, help_text: str = DATA_ROOT_HELP
) -> None:
    parser.add_argument(
        *(names or ("--data-root",)), dest="data_root", type=Path, metavar="DIR", help=help_text
    )


def data_root(path: Path | None) -> str | None:
    """``--data-root`` as an absolute folder name, or None; a folder that does not exist is an
    error (the search would otherwise fall back to other roots without a word)."""
    if path is None:
        return None
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"--data-root {path}: no such folder")
    return str(folder)


def load_configs(paths, data_root: str | None = None) -> list:
    """Validate every file before running any; names must be distinct. ``data_root`` (from
    ``--data-root``) replaces ``data.root`` of each config."""
    from volbacktest.engine.inputs.config import load_config

    configs = [load_config(p) for p in paths]
    if data_root is not None:
        configs = [c.with_overrides(**{"data.root": data_root}) for c in configs]
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"several configs share the name {dupes}; give each a distinct `name`")
    return configs


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be {least} or more")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--workers -2`` is a usage error, not a traceback)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def add_overwrite(parser: argparse.ArgumentParser, what: str = "results folder") -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace an existing {what} (replaced whole once the new one is complete; "
        "without it an existing one is refused before any work)",
    )


def load_markets(configs) -> list:
    """Every config's market (its data files read and checked) before any backtest runs, so
    that a bad file of the second config stops the command before the first is written."""
    from volbacktest.engine.inputs.market import market_for

    return [market_for(cfg) for cfg in configs]
