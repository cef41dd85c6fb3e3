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
