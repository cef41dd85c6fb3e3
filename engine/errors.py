"""Exceptions and typed warnings shared across the engine.

Every error raised at a public boundary names what was wrong (file, row, column, key) and
how to fix it; the CLI prints ``str(error)`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class for errors the CLI reports as one clear message (exit status 2)."""


class ConfigError(EngineError, ValueError):
    """A configuration file or value is invalid."""


class DataError(EngineError, ValueError):
    """An input data file or frame is invalid (names the file, row/column and the fix)."""


class DataNotFoundError(EngineError, FileNotFoundError):
    """A data file could not be found in any search root."""


class OutputError(EngineError, OSError):
    """An output location cannot be used (a file where a folder is needed, not writable, or
    an earlier result that would be replaced without ``--overwrite``)."""


class MissingExtraError(EngineError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class EngineWarning(UserWarning):
    """Base class for warnings issued by the engine."""


class DataQualityWarning(EngineWarning):
    """Data was repaired or dropped according to a documented policy (counts are in the text)."""


class StaleDataWarning(DataQualityWarning):
    """A run of repeated identical values (e.g. a forward-filled vendor series) was found."""


class LookAheadWarning(EngineWarning):
    """A run uses a fill mode that sees the bar it trades on (``same_close``)."""


class ExecutionWarning(EngineWarning):
    """An order was rejected, cancelled or could not be placed as intended."""


class ConvergenceWarning(EngineWarning):
    """A numerical routine did not converge; the result carries a status flag."""


class NotMeanRevertingWarning(EngineWarning):
    """An estimated spread is not mean-reverting (k <= 0 or b >= 1)."""


def require_extra(module: str, extra: str):
    """Import ``module`` or raise one ImportError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(
            f"{module} is needed for this feature; install it with "
            f"`pip install -e '.[{extra}]'` (or `pip install {module}`)"
        ) from exc
