"""Where results go: output locations checked before any work, and written whole or not at all.

Every command that writes (``run``, ``compare``, ``sweep``, ``vix``, ``futures``, ``etn``) and
the Python API's ``save`` use these helpers, so the rules hold everywhere:

* :func:`check_output_dir` / :func:`check_output_file` run *before* any computation: the
  location must be a folder (or a file) or creatable, its nearest existing parent a writable
  folder, and an existing result is refused unless ``overwrite`` is set. A bad location is a
  :class:`~volbacktest.engine.errors.OutputError` naming the path and the fix (exit status 2),
  not a ``PermissionError`` after an hour of work.
* :func:`atomic_dir` gives a temporary sibling folder (``.NAME.partial-XXXX``, same file
  system) to write into and renames it into place when the block ends without an error; on an
  error (or Ctrl-C) the partial folder is removed and the earlier result is untouched. With
  ``overwrite`` the earlier folder is moved aside, the new one moved in and the old one deleted
  only then: a results folder always holds one whole run, never a mix of two (a rerun with
  ``--no-tearsheet`` no longer leaves the previous run's ``tearsheet.png``).
* :func:`atomic_file` does the same for a single file (``os.replace``).

The overwrite policy: an existing result is never replaced silently. ``volbacktest run`` (and
the other commands) refuse an existing output without ``--overwrite``; ``vb``'s ``save`` takes
``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from volbacktest.engine.errors import OutputError

__all__ = [
    "atomic_dir",
    "atomic_file",
    "check_output_dir",
    "check_output_file",
    "holds_result",
]

PARTIAL_PREFIX = "."
PARTIAL_TAG = ".partial-"


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` at worst)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _check_parent(path: Path, what: str) -> None:
    """The folder that will receive ``path`` exists or can be made, and is writable."""
    parent = path.parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        raise OutputError(
            f"{what} {path}: {existing} is a file, not a folder; choose another location "
            "(--out, or report.out_dir in the config) or move that file away"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {path}: the folder {existing} is not writable (permission denied); "
            "choose a writable location or fix its permissions"
        )


def holds_result(path: Path) -> bool:
    """True when ``path`` exists and is not an empty folder."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def check_output_dir(path: str | os.PathLike[str], what: str, *, overwrite: bool) -> Path:
    """Check that a results folder can be written at ``path`` (before any work); return it.

    Refuses a file at ``path``, a parent that is a file or not writable, and (unless
    ``overwrite``) a folder that already holds something.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{what} {path} is a file, not a folder; choose another folder (--out DIR) or "
            "move the file away"
        )
    _check_parent(path, what)
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(
                f"{what} {path} is not writable (permission denied); choose a writable "
                "location (--out DIR) or fix its permissions"
            )
        if not overwrite and holds_result(path):
            raise OutputError(
                f"{what} {path} already holds a result; pass --overwrite to replace it "
                "(it is replaced whole once the new one is complete), or choose another "
                "folder with --out"
            )
    return path


def check_output_file(path: str | os.PathLike[str], what: str, *, overwrite: bool) -> Path:
    """Check that a file can be written at ``path`` (before any work); return it."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name, e.g. {path}/out.csv")
    _check_parent(path, what)
    if path.exists():
        if not os.access(path, os.W_OK):
            raise OutputError(
                f"{what} {path} is not writable (permission denied); choose another file"
            )
        if not overwrite:
            raise OutputError(
                f"{what} {path} already exists; pass --overwrite to replace it, or choose "
                "another file"
            )
    return path


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``target``; move it into place when the block ends.

    An exception (or KeyboardInterrupt) removes the partial folder and leaves ``target`` as it
    was. An existing ``target`` is an :class:`OutputError` unless ``overwrite``; then it is
    replaced only after the new folder is complete.
    """
    target = Path(target)
    if not overwrite and holds_result(target):
        raise OutputError(
            f"{target} already holds a result; pass --overwrite (overwrite=True) to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{target.name}{PARTIAL_TAG}", dir=target.parent)
    )
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a results folder is ordinary
        if target.exists() or target.is_symlink():
            old = Path(
                tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{target.name}.old-", dir=target.parent)
            )
            os.replace(target, old / "previous")
            os.replace(tmp, target)
            _discard(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling file name of ``target``; ``os.replace`` it into place when the
    block ends without an error (removed otherwise). Overwrite checks are the caller's
    (:func:`check_output_file`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f"{PARTIAL_PREFIX}{target.name}{PARTIAL_TAG}",
        suffix=target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
