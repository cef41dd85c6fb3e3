"""The command line: ``volbacktest COMMAND ...`` (also ``python -m volbacktest`` and
``python run_backtest.py``).

Commands are argparse subparsers, one module each (``run``, ``compare``, ``sweep``, ``vix``,
``futures`` with ``etn``, ``datasets``) exposing ``add_parser(subparsers, parents)``, which sets
the ``handler`` run with the parsed arguments; the modules import the engine only inside their
handlers, so ``--help`` stays fast. ``volbacktest CONFIG.yaml ...`` is short for
``volbacktest run CONFIG.yaml ...``.

Exit status: 0 done; 1 a sweep's event-driven re-check drifted from its fast path; 2 a usage
error or an error the user can fix (bad config, missing or malformed data, an output location
that is a file, not writable or already holds a result without ``--overwrite``, permissions,
encodings, CSV parse errors: one ``error:`` line on stderr, the traceback with ``--debug``);
70 an engine bug (the traceback and a request to report it); 130 interrupted; 141 stdout was a
closed pipe. The boundary is :func:`user_error`.
Logging is configured here only: warnings by default, ``-v`` info, ``-vv`` or ``--debug``
debug, ``-q`` errors only.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
import traceback
from pathlib import Path

from volbacktest.engine.errors import EngineError

from . import compare, datasets, futures, run, sweep, vix
from .common import PROG, HelpFormatter, load_configs

__all__ = ["COMMANDS", "build_parser", "load_configs", "main"]

log = logging.getLogger("volbacktest")

COMMANDS = ("run", "compare", "sweep", "vix", "futures", "etn", "datasets")
_MODULES = (run, compare, sweep, vix, futures, datasets)  # futures registers futures and etn
_GLOBAL_FLAGS = re.compile(r"-v+|--verbose|-q|--quiet|--debug")
_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

DESCRIPTION = "Event-driven backtests of volatility strategies on backtrader, configured in YAML."

EPILOG = """\
examples:
  volbacktest configs/vratio.yaml             run a backtest (short for: volbacktest run ...)
  volbacktest compare configs/vratio.yaml configs/vrp.yaml
  volbacktest sweep configs/sweeps/vratio_grid.yaml
  volbacktest datasets
  volbacktest COMMAND --help                  the options and examples of one command

-v, -q and --debug work anywhere on the command line. Exit status: 0 done, 1 a sweep's
event-driven re-check drifted, 2 a usage, config, data or output-location error (one line on
stderr), 70 an engine bug (please report it), 130 interrupted."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volbacktest")
    except PackageNotFoundError:
        return "unknown"


def _global_options(after_command: bool) -> argparse.ArgumentParser:
    """``-v``/``-q``/``--debug`` as a parent parser, for the top level and every command.

    :func:`_route` moves these flags before the command; the command's copies (shown in its
    ``--help``, and parsing what is not moved, e.g. ``--verb``) have destinations prefixed
    ``sub_``, as a subparser's defaults would otherwise reset the values given before it.
    """
    prefix = "sub_" if after_command else ""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("logging and errors (anywhere on the command line)")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest=f"{prefix}verbose",
        help="more logging: -v info, -vv debug",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        dest=f"{prefix}quiet",
        help="log errors only (no warnings)",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        dest=f"{prefix}debug",
        help="show tracebacks instead of one-line errors; debug logging",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``volbacktest`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        parents=[_global_options(after_command=False)],
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {_version()}",
        help="print the version and exit",
    )
    subparsers = parser.add_subparsers(
        title="commands",
        dest="command",
        metavar="COMMAND",
        required=True,
        help="`volbacktest COMMAND --help` shows its options and an example",
    )
    parents = [_global_options(after_command=True)]
    for module in _MODULES:
        module.add_parser(subparsers, parents)
    return parser


def _looks_like_config(arg: str) -> bool:
    return arg.lower().endswith((".yaml", ".yml")) or Path(arg).is_file()


def _route(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` ready for the parser: ``-v``/``-q``/``--debug`` moved to the front (so that they
    work anywhere, even between a command's files), and ``run`` inserted for the
    ``volbacktest CONFIG.yaml ...`` shortcut. A first argument that is neither a command nor a
    config is a usage error with a did-you-mean."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if _GLOBAL_FLAGS.fullmatch(a)]
    rest = [a for a in argv[:end] if not _GLOBAL_FLAGS.fullmatch(a)] + argv[end:]
    if not rest or rest[0] in COMMANDS:
        return flags + rest
    first = rest[0]
    if first.startswith("-"):  # run's options first: volbacktest --out DIR CONFIG.yaml
        later = [a for a in rest[1:] if not a.startswith("-")]
        if first not in ("-h", "--help", "--version") and any(map(_looks_like_config, later)):
            return [*flags, "run", *rest]
        return flags + rest
    if _looks_like_config(first):
        return [*flags, "run", *rest]
    close = difflib.get_close_matches(first.lower(), COMMANDS, n=1)
    if close:
        hint = f"; did you mean '{close[0]}'?"
    else:
        hint = ", and no such file" if any(c in first for c in "/\\.") else ""
    parser.error(
        f"unknown command '{first}'{hint} (commands: {', '.join(COMMANDS)}; "
        "or a CONFIG.yaml to run)"
    )
    return argv  # not reached: parser.error exits


def configure_logging(verbose: int = 0, quiet: bool = False, debug: bool = False) -> int:
    """Log to stderr: the package at the chosen level, everything else warnings (errors with
    ``quiet``); returns the package's level."""
    if debug or verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    elif quiet:
        level = logging.ERROR
    else:
        level = logging.WARNING
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format=_LOG_FORMAT)
    log.setLevel(level)
    logging.captureWarnings(True)
    return level


EXIT_BUG = 70  # EX_SOFTWARE of sysexits.h: an internal error, reported with its traceback


def _os_error(exc: OSError) -> str:
    """An operating-system error on a file as one line naming the file and the fix."""
    import errno

    name = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc)
    fixes = {
        errno.EACCES: "check its permissions, or choose another location with --out",
        errno.EPERM: "check its permissions, or choose another location with --out",
        errno.EROFS: "the file system is read-only: choose another location with --out",
        errno.ENOSPC: "free some disk space or choose another location with --out",
        errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
        errno.EISDIR: "it is a folder where a file is needed: give a file name",
        errno.ENOENT: "check the path (relative paths start from the current folder)",
    }
    fix = fixes.get(exc.errno, "check the path and its permissions")
    return f"{name}: {reason}; {fix}"


def user_error(exc: BaseException) -> str | None:
    """The one-line message for a failure the user can fix, or None for an engine bug.

    Errors of the engine (:class:`EngineError`: config, data, outputs) carry their own message;
    file-system errors (permissions, read-only folders, a file where a folder is expected),
    undecodable files and CSV parse errors that reach here without one are described from the
    exception. Anything else is a bug."""
    if isinstance(exc, EngineError):
        return str(exc)
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"a file is not text in the expected encoding ({exc.reason} at byte {exc.start}); "
            "check that every input is a CSV/YAML text file (UTF-8), not a binary file"
        )
    pandas_errors = sys.modules.get("pandas.errors")
    if pandas_errors is not None and isinstance(
        exc, (pandas_errors.ParserError, pandas_errors.EmptyDataError)
    ):
        return f"a CSV file could not be read: {exc}; fix the line named (or the file)"
    return None


def _failure(exc: Exception, debug: bool) -> int:
    """Report a failed command: one ``error:`` line and exit status 2 for what the user can
    fix, the traceback and a request to report it (status 70) for an engine bug."""
    message = user_error(exc)
    if debug or message is None:
        traceback.print_exception(exc)
    if message is None:
        print(
            f"internal error ({type(exc).__name__}): this is a bug in {PROG}, not in your "
            "input; please report it with the command line and the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
    if not debug:
        print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return the exit status
    (also for usage errors, ``--help`` and ``--version``, which argparse ends with SystemExit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(_route(parser, argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    debug = args.debug or getattr(args, "sub_debug", False)
    configure_logging(
        verbose=args.verbose + getattr(args, "sub_verbose", 0),
        quiet=args.quiet or getattr(args, "sub_quiet", False),
        debug=debug,
    )
    try:
        return int(args.handler(args))
    except BrokenPipeError:  # output piped into e.g. `head`, which has exited
        try:  # no second error when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe
    except Exception as exc:  # noqa: BLE001 - the error boundary: every failure is reported
        return _failure(exc, debug)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130
