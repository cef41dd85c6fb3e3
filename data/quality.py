"""The spike, stale and gap checks on every price series a run reads, and their policy.

The rules are ``engine.calculators.series_checks`` (also used per contract by ``data.cfe``);
here they are applied to one dataset's ``close`` and worded: each :class:`SeriesProblem` names
the dataset, the file and its line(s) where known, the dates, what is wrong and the fix.
:func:`enforce` applies the policy: ``"stop"`` (the default of ``data.on_problem``) raises one
:class:`DataError` listing the problems; ``"warn"`` returns them as notes for the run (and logs
them). Problems a catalogue entry acknowledges (documented in the shared PROVENANCE files) are
notes either way. Nothing is repaired or interpolated.

Thresholds (``data.checks``; the defaults pass every catalogued and embedded series, measured):
``spike`` 0.7 in log (a doubling or halving for one day that comes back; a x10 typo is 2.3),
``stale`` 10 (identical closes on more than 10 consecutive rows), ``gap`` 10 (more than 10
sessions of ``calendar`` missing between two rows; ``weekdays`` by default, or ``nyse``/``sse``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions, sse_sessions
from volbacktest.engine.calculators.series_checks import gaps, spike_rows, stale_runs
from volbacktest.engine.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KINDS = ("spike", "stale", "gap")
CALENDARS = ("weekdays", "nyse", "sse")
_SHOWN = 10  # problems listed in one message

_FIXES = {
    "spike": "correct the value from the source (a x10 or /10 typo?) or delete the row",
    "stale": "the feed stopped updating: cut the file before the repeated values, or set "
    "data.end before them",
    "gap": "restore the missing rows from the source, or start/end the run outside the gap",
}


@dataclass(frozen=True)
class Thresholds:
    """When a series is implausible: see the module docstring."""

    spike: float = 0.7
    stale: int = 10
    gap: int = 10
    calendar: str = "weekdays"


@dataclass(frozen=True)
class SeriesProblem:
    dataset: str
    kind: str
    first: pd.Timestamp
    last: pd.Timestamp
    detail: str
    file: str = ""
    lines: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = Path(self.file).name if self.file else f"dataset {self.dataset!r}"
        if self.lines:
            shown = ", ".join(str(n) for n in self.lines[:4])
            where += f" line{'s' if len(self.lines) > 1 else ''} {shown}"
        span = f"{self.first:%Y-%m-%d}"
        if self.last != self.first:
            span += f"..{self.last:%Y-%m-%d}"
        fix = _FIXES[self.kind]
        return f"{self.dataset}: {where} ({span}): {self.kind}: {self.detail}; fix: {fix}"


def sessions_between(calendar: str, first, last) -> pd.DatetimeIndex:
    """The sessions of ``calendar`` (``weekdays``, ``nyse`` or ``sse``) from first to last."""
    if calendar == "nyse":
        return nyse_sessions(first, last)
    if calendar == "sse":
        return sse_sessions(first, last)
    if calendar == "weekdays":
        return pd.bdate_range(first, last)
    raise ConfigError(f"data.checks.calendar: {calendar!r} is not one of {', '.join(CALENDARS)}")


def find_problems(
    frame: pd.DataFrame,
    name: str,
    thresholds: Thresholds = Thresholds(),
    line_of: Mapping[pd.Timestamp, int] | Callable[[], Mapping] | None = None,
) -> list[SeriesProblem]:
    """Spikes, stale runs and gaps of ``frame['close']`` (rows without a close are skipped).
    ``line_of`` maps dates to file lines for the messages, or is a function that reads them
    (called only when a problem is found; default: looked up in the file the frame came from,
    when it can be read)."""
    close = frame["close"].dropna()
    if len(close) < 2:
        return []
    v = close.to_numpy(dtype=np.float64)
    idx = close.index
    file = str(frame.attrs.get("source", "")).split(";")[0]
    found: list[tuple[str, int, int, str]] = []
    for i in np.flatnonzero(spike_rows(v, thresholds.spike)):
        before = f"{v[i - 1]:g} -> " if i > 0 else ""
        after = f" -> {v[i + 1]:g}" if i + 1 < len(v) else ""
        found.append(
            (
                "spike",
                i,
                i,
                f"close {before}{v[i]:g}{after} jumps more than {thresholds.spike:g} in log "
                "and comes back",
            )
        )
    for a, b in stale_runs(v, thresholds.stale):
        found.append(
            (
                "stale",
                a,
                b,
                f"the close is {v[a]:g} on {b - a + 1} consecutive rows (more than "
                f"{thresholds.stale})",
            )
        )
    sessions = sessions_between(thresholds.calendar, idx[0], idx[-1])
    for a, b, missing in gaps(idx, sessions, thresholds.gap):
        found.append(
            (
                "gap",
                a,
                b,
                f"no rows for {missing} sessions ({thresholds.calendar}) between "
                f"{idx[a]:%Y-%m-%d} and {idx[b]:%Y-%m-%d} (more than {thresholds.gap})",
            )
        )
    if not found:
        return []
    if line_of is None:
        line_of = file_lines(file) if file else {}
    elif callable(line_of):  # the file is read for line numbers only when something is found
        line_of = line_of()
    out = []
    for kind, a, b, detail in found:
        ends = (idx[a], idx[b])
        lines = tuple(line_of[d] for d in dict.fromkeys(ends) if d in line_of)
        out.append(SeriesProblem(name, kind, idx[a], idx[b], detail, file, lines))
    return out


def file_lines(path: str | Path, **read: object) -> dict[pd.Timestamp, int]:
    """Date -> line number of a dated price file (for messages; empty when it cannot be read as
    one, e.g. a Parquet file or a folder)."""
    from volbacktest.data import loaders

    try:
        return loaders.date_lines(path, **read)  # type: ignore[arg-type]
    except (DataError, OSError, ValueError, KeyError, IndexError):
        return {}


def enforce(
    problems: Sequence[SeriesProblem],
    on_problem: str,
    acknowledged: Iterable[str] = (),
    where: str = "data.on_problem",
) -> list[str]:
    """Apply the policy; returns the notes for the run (acknowledged kinds, or all with warn)."""
    known = set(acknowledged)
    notes = [f"acknowledged: {p}" for p in problems if p.kind in known]
    new = [p for p in problems if p.kind not in known]
    if new and on_problem == "stop":
        listing = "\n".join(f"  {p}" for p in new[:_SHOWN])
        more = f"\n  ... and {len(new) - _SHOWN} more" if len(new) > _SHOWN else ""
        raise DataError(
            f"{len(new)} implausible value(s) in the data:\n{listing}{more}\nNothing is "
            f"interpolated. Fix the file(s), or set {where}: warn to run anyway (the problems "
            "are then listed in the run's notes), or widen data.checks."
        )
    notes += [str(p) for p in new]
    for note in notes:
        log.info("%s", note)
    return notes
