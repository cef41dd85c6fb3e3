"""Loaders for real market-data files (Cboe, Yahoo, ETN issuers, CFE, SSE) and files like them.

Every loader takes a path and returns a frame with

* a tz-naive, normalised ``DatetimeIndex`` named ``date`` (``datetime64[ns]``), sorted
  ascending, without duplicates;
* float64 columns in lower case: the standard ``open, high, low, close, volume`` first (NaN where
  the source lacks the field: a close-only file has an all-NaN ``open``), then source-specific
  extras (``adj_close``, ``raw_close``, ``settle``, ``amount``, ...);
* ``frame.attrs``: ``source`` (the file path), ``has_open`` (True only when every row has an
  open price: fills at the next open need it) and loader-specific entries (``splits``,
  ``layout``, ``segments``, ``price_basis``).

Policy shared by every loader (each docstring adds its own):

* Lines above the header (Cboe disclaimers, titles, footnotes) are skipped: the header is the
  line just above the first line that holds a number. The layout is read from the content,
  never from the file name.
* Dates: see :func:`parse_dates` (ISO, DD/MM/YYYY and M/D/YYYY inferred per file; a footnote
  ``*`` is stripped; an ambiguous file needs ``date_format=``).
* Cells ``''``, ``null``, ``NaN``, ``N/A`` ... are missing values; any other non-numeric cell is a
  :class:`DataError` naming the file, line, column and value.
* Rows without the required price (Yahoo ``null`` rows) are dropped with a
  :class:`DataQualityWarning` giving the count and the dates. Dates passed in ``acknowledged``
  (issues documented in the data's provenance) are logged at INFO instead of warned.
* Prices <= 0 or a negative volume: :class:`DataError`.
* ``high < low``: ``bad_range="drop"`` (default: drop the row, warn), ``"nan"`` (blank high and
  low, keep the close, warn) or ``"raise"`` (:class:`DataError`).
* Duplicate dates: :class:`DataError` naming the lines.
* Newest-first files are reversed; any other disorder is sorted with a warning.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError, DataQualityWarning

logger = logging.getLogger(__name__)

STANDARD_COLUMNS = ("open", "high", "low", "close", "volume")
"""Columns every single-instrument frame carries, in this order."""

BadRange = Literal["drop", "nan", "raise"]
AmbiguousOrder = Literal["raise", "day_first", "month_first"]
SplitsArg = Literal["infer"] | Sequence["Split | tuple[object, float]"] | None

_MISSING_TOKENS = frozenset({"", "null", "nan", "na", "n/a", "#n/a", "none", "nat"})
_HEADER_SCAN_LINES = 40  # disclaimer/title lines above a header never exceed a handful
_DATE_COLUMN_NAMES = ("date", "datetime", "trade_date", "timestamp", "day")
_PRICE_COLUMNS = frozenset(
    {"open", "high", "low", "close", "adj_close", "raw_close", "settle", "pre_close"}
)
_LIST_LIMIT = 10  # dates or lines quoted in one message
_ISO_RE = r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_COMPACT_RE = r"^(\d{4})(\d{2})(\d{2})$"
_DAY_MONTH_RE = r"^(\d{1,2})([-/.])(\d{1,2})[-/.](\d{4})$"
_MAX_MONTH = 12

# Split detection: a split shows up as a jump of the Close/Adj Close ratio (or of the raw close)
# by a whole factor n >= 2 or 1/n. With an Adj Close column the ratio only carries the rounding
# of 2-decimal prices (< 1 %), hence a 2 % band; from raw closes alone the day's market move adds
# to the jump (XIV 2011-06-27: 9.84 for a 10:1 split), hence 3 %.
SPLIT_TOLERANCE_ADJ = 0.02
SPLIT_TOLERANCE_RAW = 0.03
_MIN_SPLIT_FACTOR = 2

# CFE VIX futures were quoted x10 (e.g. 148.3 for 14.83) before the contract was rescaled on
# 2007-03-26 (CFE notice; see ../shared/data/vix_futures_continuous/PROVENANCE.md).
CFE_RESCALE_DATE = pd.Timestamp("2007-03-26")
CFE_OLD_SCALE = 10.0
# Front/second VIX futures never settled above ~40 points before 2007, so a median above this on
# the pre-2007-03-26 rows means the file is still on the x10 scale.
_X10_MEDIAN_THRESHOLD = 50.0


# --------------------------------------------------------------------------------------------
# result objects


@dataclass(frozen=True)
class Split:
    """A share split on ``date`` (the first day traded on the new basis).

    ``ratio`` is new shares per old share: 10.0 for a 10-for-1 split (price / 10), 0.25 for a
    1-for-4 reverse split (price x 4).
    """

    date: pd.Timestamp
    ratio: float

    def __str__(self) -> str:
        if self.ratio >= 1:
            text = f"{self.ratio:g}-for-1 split"
        else:
            text = f"1-for-{1 / self.ratio:g} reverse split"
        return f"{self.date:%Y-%m-%d} {text}"


@dataclass(frozen=True)
class _Table:
    """A delimited file read as strings, with the physical line number of every row."""

    path: Path
    cells: pd.DataFrame  # str cells, normalised column names
    lines: np.ndarray  # 1-based line numbers in the file
    original: Mapping[str, str]  # normalised name -> name as written in the file
    preamble: tuple[str, ...]  # lines skipped above the header
    has_header: bool

    @property
    def label(self) -> str:
        return self.path.name

    def show(self, column: str) -> str:
        name = self.original.get(column, column)
        return f"'{name}'" if name else f"{column} (unnamed)"


# --------------------------------------------------------------------------------------------
# small helpers


def _warn(message: str, category: type[Warning] = DataQualityWarning) -> None:
    """Warn with the stack level of the first caller outside this package."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 2  # stacklevel of ``frame`` as seen from warnings.warn below
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame = frame.f_back
        level += 1
    warnings.warn(category(message), stacklevel=level)


def _date_list(dates: Iterable[pd.Timestamp], limit: int = _LIST_LIMIT) -> str:
    items = [f"{pd.Timestamp(d):%Y-%m-%d}" for d in dates]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _line_list(lines: Iterable[object], values: Iterable[object] | None = None) -> str:
    lines = list(lines)
    if values is None:
        parts = [f"line {n}" for n in lines[:_LIST_LIMIT]]
    else:
        parts = [f"line {n} ({v!r})" for n, v in zip(lines[:_LIST_LIMIT], values, strict=False)]
    more = f" and {len(lines) - _LIST_LIMIT} more" if len(lines) > _LIST_LIMIT else ""
    return ", ".join(parts) + more


def _as_dates(values: Iterable[object]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(values))).normalize().as_unit("ns")


def _report(message: str, dates: pd.DatetimeIndex, acknowledged: pd.DatetimeIndex) -> None:
    """Warn about ``dates`` (the message is formatted with the count and the dates), except the
    acknowledged ones, which are logged at INFO."""

    def fill(mask: np.ndarray) -> str:
        text = message.replace("{count}", str(int(mask.sum())))
        return text.replace("{dates}", _date_list(dates[mask]))

    known = np.asarray(dates.isin(acknowledged))
    if known.any():
        logger.info("acknowledged: %s", fill(known))
    if (~known).any():
        _warn(fill(~known))


def _normalise_name(name: object) -> str:
    text = str(name).strip().lower()
    if text.startswith("unnamed:"):
        return ""
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_")


def _holds_number(token: str) -> bool:
    token = token.strip().strip('*"').strip()
    if not any(ch.isdigit() for ch in token):
        return False
    if re.fullmatch(r"-?\d+,\d+", token):  # a decimal comma: a number, reported as such later
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# reading


def _scan_preamble(path: Path, sep: str = ",") -> tuple[int, list[list[str]]]:
    """1-based line of the first row holding a number, and the rows above it."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=sep)
        head: list[list[str]] = []
        try:
            for row in itertools.islice(reader, _HEADER_SCAN_LINES):
                if any(_holds_number(tok) for tok in row):
                    return reader.line_num, head
                head.append(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(
                f"{path}: not a comma-separated text file ({exc}); check that this is the "
                "right file (UTF-8 text, one row a line)"
            ) from None
    raise DataError(
        f"{path.name}: no line with a number in the first {_HEADER_SCAN_LINES} lines, so no "
        "data rows were found; check that this is a comma-separated price file"
    )


_TEXT_PROBE_BYTES = 65_536


def check_text_file(path: Path) -> None:
    """A :class:`DataError` when ``path`` starts like a binary file (a NUL byte, or bytes that
    are not UTF-8, in its first 64 KiB) rather than CSV text."""
    with open(path, "rb") as fh:
        head = fh.read(_TEXT_PROBE_BYTES)
    bad = head.find(b"\x00")
    if bad < 0:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut by the probe's end
                bad = exc.start
    if bad >= 0:
        raise DataError(
            f"{path}: not a UTF-8 text file (binary content at byte {bad}); expected a "
            "comma-separated text file, check that this is the right file"
        )


def read_csv_checked(path: Path, **kwargs: object) -> pd.DataFrame:
    """``pd.read_csv`` with the failures a user can cause (a binary or non-UTF-8 file, a row
    with extra fields, an empty file) as a :class:`DataError` naming the file and the fix."""
    check_text_file(Path(path))
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); expected a "
            "comma-separated text file, check that this is the right file"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a CSV with a header") from None
    except pd.errors.ParserError as exc:
        sep = kwargs.get("sep", ",")
        raise DataError(
            f"{path}: not a well-formed {sep!r}-separated CSV ({str(exc).strip()}). A row with "
            "more fields than the header often means a decimal comma ('12,5') in a "
            "comma-separated file, another separator, or a stray comma or quote: fix that line "
            "(or delete it), or check the separator and the decimal mark"
        ) from None


_READ_OPTIONS = {
    "dtype": str,
    "na_filter": False,
    "skip_blank_lines": False,
    "skipinitialspace": True,
    "encoding": "utf-8-sig",
}


def _read_table(
    path: str | os.PathLike[str], *, names: Sequence[str] | None = None, sep: str = ","
) -> _Table:
    """Read a CSV as strings, skipping preamble lines; ``names`` are used if it has no header;
    ``sep`` is the field separator."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such data file; check the path")
    first_data_line, head = _scan_preamble(path, sep)
    options = {**_READ_OPTIONS, "sep": sep}
    has_header = first_data_line > 1
    if has_header:
        header = head[-1]
        if sum(1 for tok in header if tok.strip()) < 2:
            raise DataError(
                f"{path.name}: line {first_data_line - 1} should be the header (column names) "
                f"but holds {','.join(header)!r}; add a header line such as "
                "'Date,Open,High,Low,Close' above the first data row"
            )
        frame = read_csv_checked(path, skiprows=first_data_line - 2, header=0, **options)
        raw_names = [str(c) for c in frame.columns]
        preamble = tuple(",".join(r) for r in head[:-1])
    elif names is None:
        raise DataError(
            f"{path.name}: line 1 already holds data, so the file has no header row; add one "
            "(e.g. 'Date,Open,High,Low,Close,Volume') or use a loader that knows this "
            "headerless layout"
        )
    else:
        frame = read_csv_checked(path, header=None, **options)
        if frame.shape[1] != len(names):
            raise DataError(
                f"{path.name}: headerless file has {frame.shape[1]} columns but this layout "
                f"has {len(names)} ({', '.join(names)}); check that it is the right file"
            )
        raw_names = list(names)
        preamble = ()
    normalised = [
        _normalise_name(raw) or f"unnamed_{position}" for position, raw in enumerate(raw_names)
    ]
    original = {
        norm: ("" if norm.startswith("unnamed_") else raw)
        for norm, raw in zip(normalised, raw_names, strict=True)
    }
    frame.columns = normalised
    frame = frame.fillna("")
    lines = np.arange(len(frame), dtype=np.int64) + first_data_line
    blank = frame.apply(lambda col: col.str.strip().eq("")).all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    return _Table(path, frame, lines, original, preamble, has_header)


def _date_column(table: _Table, date_column: str | None = None) -> str:
    if date_column is not None:
        name = _normalise_name(date_column)
        if name not in table.cells.columns:
            raise DataError(
                f"{table.label}: no column {date_column!r}; columns are "
                f"{', '.join(table.cells.columns)}; pass date_column= one of them"
            )
        return name
    for name in _DATE_COLUMN_NAMES:
        if name in table.cells.columns:
            return name
    first = table.cells.columns[0]
    if first.startswith("unnamed_") and len(table.cells):
        sample = table.cells[first].str.strip().str.strip("*").iloc[0]
        if any(re.match(rx, sample) for rx in (_ISO_RE, _COMPACT_RE, _DAY_MONTH_RE)):
            return first
    raise DataError(
        f"{table.label}: no date column found (looked for {', '.join(_DATE_COLUMN_NAMES)} or an "
        f"unnamed first column of dates); columns are {', '.join(table.cells.columns)}; pass "
        "date_column="
    )


def _numeric(table: _Table, column: str) -> np.ndarray:
    """Column as float64: missing tokens -> NaN, anything else non-numeric -> DataError."""
    text = table.cells[column].str.strip()
    missing = text.str.lower().isin(_MISSING_TOKENS)
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = (values.isna() & ~missing).to_numpy()
    if bad.any():
        raise DataError(
            f"{table.label}: column {table.show(column)} has {int(bad.sum())} non-numeric "
            f"value(s): {_line_list(table.lines[bad], text[bad])}; fix those cells (use an "
            "empty cell or 'null' for a missing value) or delete the rows"
            + (
                " (numbers like '12,5' use a decimal comma: declare it, e.g. decimal: ',')"
                if text[bad].str.fullmatch(r"-?\d+,\d+").any()
                else ""
            )
        )
    return values.to_numpy(dtype=np.float64)


def _group(text: pd.Series, pattern: str, group: int) -> pd.Series:
    """Regex group ``group`` of every value (all values match ``pattern``), as int64."""
    return text.str.replace(pattern, rf"\{group}", regex=True).astype("int64")


def _day_month_order(
    text: pd.Series, lines: np.ndarray, source: str, column: str, ambiguous: AmbiguousOrder
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(year, month, day) of D/M/YYYY-or-M/D/YYYY strings: a field above 12 decides."""
    first, second, year = (_group(text, _DAY_MONTH_RE, g) for g in (1, 3, 4))
    sep = re.match(_DAY_MONTH_RE, text.iloc[0]).group(2)
    day_month, month_day = f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"
    day_first = (first > _MAX_MONTH).to_numpy()
    month_first = (second > _MAX_MONTH).to_numpy()
    if day_first.any() and month_first.any():
        a, b = np.flatnonzero(day_first)[0], np.flatnonzero(month_first)[0]
        raise DataError(
            f"{source}: column {column!r} is inconsistent: line {lines[a]} ({text[a]!r}) can "
            f"only be day-first but line {lines[b]} ({text[b]!r}) can only be month-first; fix "
            f"the rows, or write every date as YYYY-MM-DD (from Python a loader also takes "
            f"date_format={day_month!r} or {month_day!r})"
        )
    if day_first.any():
        logger.debug("%s: dates read as %s", source, day_month)
        return year, second, first
    if month_first.any() or ambiguous == "month_first":
        logger.debug("%s: dates read as %s", source, month_day)
        return year, first, second
    if ambiguous == "day_first":
        logger.debug("%s: dates read as %s", source, day_month)
        return year, second, first
    raise DataError(
        f"{source}: column {column!r}: the dates are ambiguous: no day or month field exceeds "
        f"12 in any of the {len(text)} rows ({text.iloc[0]!r} .. {text.iloc[-1]!r}), so "
        "DD/MM/YYYY and MM/DD/YYYY cannot be told apart; write the dates as YYYY-MM-DD "
        f"(from Python a loader also takes date_format={day_month!r} for day first or "
        f"date_format={month_day!r} for month first)"
    )


_DATE_LAYOUTS = {  # name -> pattern (all anchored)
    "year-first (YYYY-MM-DD)": _ISO_RE,
    "compact (YYYYMMDD)": _COMPACT_RE,
    "day/month-first (D/M/YYYY or M/D/YYYY)": _DAY_MONTH_RE,
}


def parse_dates(
    values: Sequence[str] | pd.Series,
    *,
    date_format: str | None = None,
    source: str = "dates",
    lines: np.ndarray | None = None,
    column: str = "date",
    ambiguous: AmbiguousOrder = "raise",
) -> pd.DatetimeIndex:
    """Parse date strings of one file into a normalised ``datetime64[ns]`` index.

    Without ``date_format`` the layout is inferred for the whole column: year-first
    (``2010-06-01``, ``2010/05/31``, optionally with a time), ``YYYYMMDD``, or day/month-first
    with a 4-digit year (``D/M/YYYY`` or ``M/D/YYYY``, any of ``/ - .``). For the latter a first
    field above 12 anywhere in the file means DD/MM/YYYY, a second field above 12 means
    MM/DD/YYYY; a file where neither happens is ambiguous and needs ``date_format=``
    ('%d/%m/%Y' or '%m/%d/%Y'), unless ``ambiguous`` names the order a known source always
    uses ("month_first" for Cboe's US dates, "day_first"). Mixed layouts, unparseable and
    impossible dates raise :class:`DataError` naming ``source``, the line and ``column``. A
    leading/trailing ``*`` (Cboe footnote marker) and blanks are stripped.
    """
    text = pd.Series(values, dtype="str").reset_index(drop=True)
    text = text.str.strip().str.strip("*").str.strip()
    lines = np.arange(1, len(text) + 1) if lines is None else np.asarray(lines)

    def fail(mask: np.ndarray, problem: str, fix: str) -> DataError:
        return DataError(
            f"{source}: column {column!r}: {problem}: {_line_list(lines[mask], text[mask])}; {fix}"
        )

    if date_format is not None:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise fail(
                bad,
                f"{int(bad.sum())} date(s) do not match date_format={date_format!r}",
                "fix those rows or pass the right date_format",
            )
        return pd.DatetimeIndex(parsed).normalize().as_unit("ns")

    kinds = {
        name: text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
        for name, pattern in _DATE_LAYOUTS.items()
    }
    unknown = ~np.logical_or.reduce(list(kinds.values()))
    if unknown.any():
        raise fail(
            unknown,
            f"{int(unknown.sum())} value(s) are not dates",
            "fix those rows (write dates as YYYY-MM-DD; from Python a loader also takes "
            "date_format=, e.g. '%d.%m.%y')",
        )
    present = [(name, mask) for name, mask in kinds.items() if mask.any()]
    if len(present) > 1:
        (name_a, mask_a), (name_b, mask_b) = present[:2]
        first_a, first_b = np.flatnonzero(mask_a)[0], np.flatnonzero(mask_b)[0]
        raise DataError(
            f"{source}: column {column!r} mixes date layouts: line {lines[first_a]} "
            f"({text[first_a]!r}) is {name_a} but line {lines[first_b]} ({text[first_b]!r}) is "
            f"{name_b}; make the column consistent (every date as YYYY-MM-DD)"
        )
    pattern = _DATE_LAYOUTS[present[0][0]]
    if pattern == _DAY_MONTH_RE:
        year, month, day = _day_month_order(text, lines, source, column, ambiguous)
    else:
        year, month, day = (_group(text, pattern, g) for g in (1, 2, 3))
    parsed = pd.to_datetime(
        pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce"
    )
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise fail(
            bad,
            f"{int(bad.sum())} impossible calendar date(s)",
            "fix those rows (day/month out of range)",
        )
    return pd.DatetimeIndex(parsed).as_unit("ns")


# --------------------------------------------------------------------------------------------
# assembling a validated frame


def _assemble(
    table: _Table,
    columns: Mapping[str, str | None],
    *,
    required: Sequence[str],
    date_column: str | None = None,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
    extras: bool = False,
    text_columns: Sequence[str] = (),
    price_columns: Iterable[str] = _PRICE_COLUMNS,
    ambiguous: AmbiguousOrder = "raise",
) -> pd.DataFrame:
    """Build the validated, sorted frame from ``table``.

    ``columns`` maps output names to table columns (None: absent -> NaN). With ``extras`` every
    other named column is kept as a float column. ``text_columns`` are carried as strings.
    """
    if bad_range not in ("drop", "nan", "raise"):
        raise ConfigError(f"bad_range={bad_range!r}: valid choices are 'drop', 'nan', 'raise'")
    known = _as_dates(acknowledged)
    date_col = _date_column(table, date_column)
    dates = parse_dates(
        table.cells[date_col],
        date_format=date_format,
        source=table.label,
        lines=table.lines,
        column=table.original.get(date_col) or date_col,
        ambiguous=ambiguous,
    )
    data: dict[str, np.ndarray] = {}
    for out, src in columns.items():
        data[out] = np.full(len(dates), np.nan) if src is None else _numeric(table, src)
    if extras:
        used = {date_col, *text_columns, *(s for s in columns.values() if s)}
        for name in table.cells.columns:
            if name not in used and not name.startswith("unnamed_") and name not in data:
                data[name] = _numeric(table, name)
    frame = pd.DataFrame(data, index=dates)
    for name in text_columns:
        frame[name] = table.cells[name].str.strip().to_numpy()
    frame["_line"] = table.lines

    null = frame[list(required)].isna().any(axis=1).to_numpy()
    if null.any():
        _report(
            f"{table.label}: dropped {{count}} row(s) without a {'/'.join(required)} value "
            "('null' or empty cells): {dates}",
            frame.index[null],
            known,
        )
        frame = frame.loc[~null]
    _check_values(frame, table, columns, frozenset(price_columns))
    _check_duplicates(frame, table)
    frame = _apply_bad_range(frame, table, bad_range, known)
    frame = _ascending(frame, table.label)
    return finish_frame(frame.drop(columns="_line"), table.path)


def _check_values(
    frame: pd.DataFrame, table: _Table, columns: Mapping[str, str | None], prices: frozenset[str]
) -> None:
    """Prices must be > 0 and volumes >= 0 (DataError naming the lines)."""
    for name in frame.columns:
        if name in prices:
            bad, what = (frame[name] <= 0).to_numpy(), "price(s) <= 0 (prices must be positive)"
        elif name == "volume":
            bad, what = (frame[name] < 0).to_numpy(), "negative volume(s)"
        else:
            continue
        if bad.any():
            raise DataError(
                f"{table.label}: column {table.show(columns.get(name) or name)} has "
                f"{int(bad.sum())} {what}: {_line_list(frame['_line'][bad], frame[name][bad])}; "
                "fix or delete those rows"
            )


def _check_duplicates(frame: pd.DataFrame, table: _Table) -> None:
    duplicated = frame.index.duplicated(keep=False)
    if duplicated.any():
        groups = [
            f"{day:%Y-%m-%d} on lines {', '.join(str(n) for n in grp['_line'])}"
            for day, grp in frame.loc[duplicated].groupby(level=0)
        ]
        raise DataError(
            f"{table.label}: {len(groups)} duplicate date(s): {'; '.join(groups[:_LIST_LIMIT])}; "
            "delete the duplicate rows (keep the correct one) and reload"
        )


def _apply_bad_range(
    frame: pd.DataFrame, table: _Table, bad_range: BadRange, known: pd.DatetimeIndex
) -> pd.DataFrame:
    """Rows with high < low: drop them, blank high/low, or raise (``bad_range``)."""
    if not {"high", "low"} <= set(frame.columns):
        return frame
    crossed = (frame["high"] < frame["low"]).to_numpy()
    if not crossed.any():
        return frame
    if bad_range == "raise":
        raise DataError(
            f"{table.label}: {int(crossed.sum())} row(s) have high < low: "
            f"{_line_list(frame['_line'][crossed])}; fix them, or pass bad_range='drop' or 'nan'"
        )
    action = "dropped" if bad_range == "drop" else "set high/low to NaN on"
    _report(
        f"{table.label}: {action} {{count}} row(s) with high < low (bad_range={bad_range!r}): "
        f"{{dates}} (lines {', '.join(str(n) for n in frame['_line'][crossed][:_LIST_LIMIT])})",
        frame.index[crossed],
        known,
    )
    if bad_range == "drop":
        return frame.loc[~crossed]
    return frame.assign(high=frame["high"].where(~crossed), low=frame["low"].where(~crossed))


def _ascending(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Oldest first: newest-first files are reversed, other disorder sorted with a warning."""
    if frame.index.is_monotonic_increasing:
        return frame
    if frame.index.is_monotonic_decreasing:
        logger.debug("%s: newest-first file, reversed", label)
        return frame.iloc[::-1]
    steps_back = int((np.diff(frame.index.asi8) < 0).sum())
    _warn(
        f"{label}: dates are out of order ({steps_back} step(s) back in time, neither oldest- "
        "nor newest-first); sorted them. Check the date layout (a wrong DD/MM vs MM/DD guess "
        "also scrambles the order)"
    )
    return frame.sort_index(kind="stable")


def finish_frame(frame: pd.DataFrame, source: Path | str | None = None) -> pd.DataFrame:
    """Standard column order, float64, a ``date`` index in ns and attrs (``source``,
    ``has_open``): the frame every loader (and ``data.frames.user_frame``) returns."""
    if "close" in frame.columns:
        for name in STANDARD_COLUMNS:
            if name not in frame.columns:
                frame[name] = np.nan
        order = [*STANDARD_COLUMNS, *(c for c in frame.columns if c not in STANDARD_COLUMNS)]
        frame = frame[order]
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.astype(dict.fromkeys(numeric, np.float64))
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns")
    frame.index.name = "date"
    attrs = dict(frame.attrs)
    if source is not None:
        attrs["source"] = str(source)
    if "open" in frame.columns:
        attrs["has_open"] = bool(len(frame) and frame["open"].notna().all())
    frame.attrs = attrs
    return frame


def close_only_frame(close: pd.Series, **extra: pd.Series) -> pd.DataFrame:
    """A standard frame from a close series: open/high/low/volume are NaN, never the close.

    A close-only series cannot fill orders at the open; ``attrs['has_open']`` is False and the
    all-NaN ``open`` column says so.
    """
    frame = pd.DataFrame({"close": close.astype(np.float64), **extra})
    return finish_frame(frame)


def adjust_to_total_return(frame: pd.DataFrame) -> pd.DataFrame:
    """Scale open/high/low/close by ``adj_close / close`` (Yahoo's split+dividend adjustment).

    Returns ``close`` = the total-return close, ``raw_close`` = the close as traded (as in the
    file), without the now redundant ``adj_close``. Use ``close`` for returns and P&L,
    ``raw_close`` for traded price levels (e.g. option strikes).
    """
    if "adj_close" not in frame.columns:
        raise DataError(
            f"{frame.attrs.get('source', 'frame')}: no 'Adj Close' column, so the total-return "
            "(split- and dividend-adjusted) close this dataset uses cannot be computed; use a "
            "download that has Adj Close (Yahoo's daily history does)"
        )
    scale = frame["adj_close"] / frame["close"]
    out = frame.assign(
        **{c: frame[c] * scale for c in ("open", "high", "low")},
        raw_close=frame["close"],
        close=frame["adj_close"],
    ).drop(columns="adj_close")
    out.attrs = {**frame.attrs, "price_basis": "adj_close"}
    return finish_frame(out)


# --------------------------------------------------------------------------------------------
# Cboe indexes


def load_cboe_index(
    path: str | os.PathLike[str],
    *,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
) -> pd.DataFrame:
    """Load a Cboe index history file (VIX, VIX3M/VXV, VIX9D/VXST, VIX6M/VXMT, ...).

    Both layouts are read, detected from the content: the new ``DATE,OPEN,HIGH,LOW,CLOSE``
    file (``attrs['layout'] = 'cboe_new'``) and the old ``*dailyprices.csv`` files with
    disclaimer/title/footnote lines above the header, an unnamed or ``Date`` column, mixed
    ``12/4/2007``/``10/06/2014`` dates, ``*4/20/2011`` footnote dates and values with a leading
    space (``'cboe_old'``). Cboe writes US dates: a file whose day/month fields are all <= 12
    (a short excerpt) is read month-first; ``date_format=`` overrides. Values are index points
    (15.04 = 15.04 % annualised), not decimals.

    Policy: rows without a close are dropped with a warning; rows with a close but empty
    open/high/low (VIX9D before 2013-11-19, VIX6M before 2013-11-27) are kept with NaN there, so
    ``attrs['has_open']`` is False for those files; ``volume`` is NaN. Other rules as in the
    module docstring.
    """
    table = _read_table(path)
    missing = [c for c in ("open", "high", "low", "close") if c not in table.cells.columns]
    if missing:
        raise DataError(
            f"{table.label}: not a Cboe index history file: no {', '.join(missing)} column(s) "
            f"(columns are {', '.join(table.original.values())}); expected a header like "
            "'DATE,OPEN,HIGH,LOW,CLOSE'"
        )
    frame = _assemble(
        table,
        {c: c for c in ("open", "high", "low", "close")},
        required=("close",),
        date_format=date_format,
        acknowledged=acknowledged,
        bad_range=bad_range,
        ambiguous="month_first",
    )
    new_layout = not table.preamble and table.original.get("date") == "DATE"
    frame.attrs["layout"] = "cboe_new" if new_layout else "cboe_old"
    return frame


def splice_histories(
    primary: pd.DataFrame,
    secondary: pd.DataFrame,
    *,
    column: str = "close",
    max_abs_diff: float = 0.05,
    acknowledged: Iterable[object] = (),
    label: str = "splice",
) -> pd.DataFrame:
    """Union of two histories of one series, ``primary`` preferred where both have a date.

    The overlap is checked on ``column``: days where they differ by more than ``max_abs_diff``
    (in the series' units) are reported in one :class:`DataQualityWarning` with the count and
    the dates; so are dates filled from ``secondary`` inside ``primary``'s own date span
    (holes). Acknowledged dates are logged at INFO instead. ``attrs['segments']`` lists
    (source, first date, last date) of the rows taken from each frame.
    """
    known = _as_dates(acknowledged)
    name_p = Path(primary.attrs.get("source", "primary")).name
    name_s = Path(secondary.attrs.get("source", "secondary")).name
    common = primary.index.intersection(secondary.index)
    diff = (primary.loc[common, column] - secondary.loc[common, column]).abs()
    bad = diff.index[(diff > max_abs_diff).to_numpy()]
    if len(bad):
        detail = ", ".join(
            f"{d:%Y-%m-%d} ({primary.loc[d, column]:g} vs {secondary.loc[d, column]:g})"
            for d in bad[:_LIST_LIMIT]
        )
        _report(
            f"{label}: {name_p} and {name_s} disagree on {column} by more than {max_abs_diff:g} "
            f"on {{count}} of {len(common)} overlapping day(s) ({detail}; affected: {{dates}}); "
            f"the values of {name_p} are used",
            bad,
            known,
        )
    extra = secondary.index.difference(primary.index)
    if len(primary) and len(extra):
        holes = extra[(extra > primary.index[0]) & (extra < primary.index[-1])]
        if len(holes):
            _report(
                f"{label}: filled {{count}} date(s) missing inside {name_p}'s range from "
                f"{name_s}: {{dates}}",
                holes,
                known,
            )
    out = pd.concat([primary, secondary.loc[extra]]).sort_index()
    segments = []
    for name, frame in ((name_s, secondary.loc[extra]), (name_p, primary)):
        if len(frame):
            segments.append((name, frame.index[0], frame.index[-1]))
    out.attrs = {
        **primary.attrs,
        "source": f"{primary.attrs.get('source', '')};{secondary.attrs.get('source', '')}",
        "segments": tuple(sorted(segments, key=lambda s: s[1])),
        "overlap_days": len(common),
        "overlap_disagreements": tuple(bad),
    }
    return finish_frame(out)


def load_vix3m(
    old_path: str | os.PathLike[str],
    new_path: str | os.PathLike[str],
    *,
    max_abs_diff: float = 0.05,
    acknowledged: Iterable[object] = (),
) -> pd.DataFrame:
    """VIX3M (ex-VXV) history: the old ``vix3mdailyprices.csv`` spliced with ``VIX3M_History.csv``.

    The new-layout file (from 2009-09-18) is preferred wherever it has a date; the old file
    supplies 2007-12-04 .. 2009-09-17 (and any date the new one lacks). Closes are compared on
    the overlap (2,775 days in the shared copies): disagreements above ``max_abs_diff`` index
    points are reported in a :class:`DataQualityWarning` naming the dates (2009-11-27, a half
    day, differs by 0.14 in the shared copies; pass it in ``acknowledged`` to log it instead).
    See :func:`splice_histories`.
    """
    old = load_cboe_index(old_path, acknowledged=acknowledged)
    new = load_cboe_index(new_path, acknowledged=acknowledged)
    return splice_histories(
        new, old, max_abs_diff=max_abs_diff, acknowledged=acknowledged, label="VIX3M"
    )


# --------------------------------------------------------------------------------------------
# Yahoo-style OHLCV


def _yahoo_table_frame(
    table: _Table,
    *,
    date_format: str | None,
    acknowledged: Iterable[object],
    bad_range: BadRange,
) -> pd.DataFrame:
    cols = table.cells.columns
    if "close" not in cols:
        hint = ""
        if "adj_close" in cols:
            hint = " (only an Adj Close: use load_etn for close-only files)"
        raise DataError(
            f"{table.label}: no Close column{hint}; columns are "
            f"{', '.join(table.original.values())}"
        )
    mapping = {c: (c if c in cols else None) for c in STANDARD_COLUMNS}
    return _assemble(
        table,
        mapping,
        required=("close",),
        date_format=date_format,
        acknowledged=acknowledged,
        bad_range=bad_range,
        extras=True,
    )


def load_yahoo_ohlcv(
    path: str | os.PathLike[str],
    *,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
) -> pd.DataFrame:
    """Load a Yahoo-style ``Date,Open,High,Low,Close[,Adj Close],Volume`` file (any column order).

    Dates may be ISO, DD/MM/YYYY or M/D/YYYY (inferred per file, see :func:`parse_dates`;
    an all-ambiguous file needs ``date_format=``); newest-first files are reversed; disclaimer
    lines above the header are skipped. ``Adj Close`` becomes ``adj_close``; other extra numeric
    columns are kept under lower-case names. Prices are as in the file (no adjustment: see
    :func:`adjust_to_total_return` and :func:`load_etn`).

    Policy: ``null`` rows (no close) are dropped with a :class:`DataQualityWarning` giving the
    count and dates (``acknowledged`` dates are logged instead); duplicate dates raise
    :class:`DataError` naming the lines; high < low follows ``bad_range``.
    """
    table = _read_table(path)
    return _yahoo_table_frame(
        table, date_format=date_format, acknowledged=acknowledged, bad_range=bad_range
    )


def load_spx(path: str | os.PathLike[str], **kwargs: object) -> pd.DataFrame:
    """S&P 500 index (Yahoo ``^GSPC`` download): :func:`load_yahoo_ohlcv` (same options).

    Index points; ``adj_close`` equals ``close`` (an index has no splits or dividends).
    """
    return load_yahoo_ohlcv(path, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# ETNs and splits


def detect_splits(
    close: pd.Series,
    adj_close: pd.Series | None = None,
    *,
    tolerance: float | None = None,
) -> tuple[Split, ...]:
    """Split dates and ratios found in a close series (ascending dates, no NaN).

    With ``adj_close``: where ``adj_close / close`` jumps by a factor within ``tolerance``
    (default :data:`SPLIT_TOLERANCE_ADJ`) of a whole number n >= 2 or of 1/n. Without it: where
    the close itself jumps so (default :data:`SPLIT_TOLERANCE_RAW`); that is a heuristic, since a
    crash of the same size looks the same.
    """
    if adj_close is None:
        level = close.to_numpy(dtype=np.float64)
        step = level[:-1] / level[1:]  # price falls by the ratio on a forward split
        tol = SPLIT_TOLERANCE_RAW if tolerance is None else tolerance
    else:
        level = (adj_close / close).to_numpy(dtype=np.float64)
        step = level[1:] / level[:-1]  # adjustment factor rises by the ratio
        tol = SPLIT_TOLERANCE_ADJ if tolerance is None else tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(step >= 1, step, 1.0 / step)
        whole = np.rint(factor)
        hit = (whole >= _MIN_SPLIT_FACTOR) & (np.abs(factor / whole - 1.0) <= tol)
    found = []
    for i in np.flatnonzero(hit):
        ratio = float(whole[i]) if step[i] >= 1 else 1.0 / float(whole[i])
        found.append(Split(pd.Timestamp(close.index[i + 1]), ratio))
    return tuple(found)


def split_factor(index: pd.DatetimeIndex, splits: Sequence[Split]) -> np.ndarray:
    """Per-row divisor turning raw prices into prices on the latest share basis.

    ``adjusted_price = raw_price / factor``; ``adjusted_volume = raw_volume * factor``.
    """
    factor = np.ones(len(index))
    for split in splits:
        factor = np.where(index < split.date, factor * split.ratio, factor)
    return factor


def _normalise_splits(splits: Sequence[Split | tuple[object, float]]) -> tuple[Split, ...]:
    out = []
    for item in splits:
        if isinstance(item, Split):
            out.append(item)
            continue
        try:
            when, ratio = item
            ratio = float(ratio)
            date = pd.Timestamp(when).normalize()
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"splits: {item!r} is not a (date, ratio) pair; give e.g. [('2011-06-27', 10)] "
                "(ratio = new shares per old share: 0.25 for a 1-for-4 reverse split)"
            ) from exc
        if not math.isfinite(ratio) or ratio <= 0:
            raise ConfigError(f"splits: ratio {ratio!r} on {date:%Y-%m-%d} must be > 0")
        out.append(Split(date, ratio))
    return tuple(sorted(out, key=lambda s: s.date))


def _check_listed_splits(close: pd.Series, splits: Sequence[Split], label: str) -> None:
    """Each listed split must fall on a date of the file where the close jumps by ~ the ratio."""
    for split in splits:
        pos = close.index.searchsorted(split.date)
        if pos >= len(close) or close.index[pos] != split.date or pos == 0:
            raise DataError(
                f"{label}: split {split} is not on a date of the file after its first row "
                f"({close.index[0]:%Y-%m-%d} .. {close.index[-1]:%Y-%m-%d}); give the first "
                "trading day on the new basis"
            )
        before, after = close.iloc[pos - 1], close.iloc[pos]
        jump = math.log(before / after)
        if abs(jump - math.log(split.ratio)) > abs(jump):
            raise DataError(
                f"{label}: the close does not jump at the {split} ({before:g} -> {after:g}): "
                "the file already looks adjusted for it; pass splits=None (or 'infer')"
            )


def _value_column(table: _Table, column: str | None, date_col: str) -> str:
    names = [c for c in table.cells.columns if c != date_col and not c.startswith("unnamed_")]
    if column is not None:
        name = _normalise_name(column)
        if name not in names:
            raise DataError(
                f"{table.label}: no column {column!r}; columns are {', '.join(names)}; pass "
                "column= one of them"
            )
        return name
    candidates = [c for c in names if c != "source"]
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(
        f"{table.label}: several value columns ({', '.join(candidates)}); pass column= the "
        f"price series to load, e.g. column={candidates[0]!r}"
    )


def _segments(labels: pd.Series) -> tuple[tuple[str, pd.Timestamp, pd.Timestamp], ...]:
    """(label, first date, last date) of each run of equal labels."""
    if labels.empty:
        return ()
    change = labels.ne(labels.shift()).to_numpy()
    run = np.cumsum(change)
    grouped = pd.DataFrame({"label": labels.to_numpy(), "run": run, "date": labels.index})
    runs = grouped.groupby("run").agg(
        label=("label", "first"), first=("date", "min"), last=("date", "max")
    )
    return tuple((r.label, r.first, r.last) for r in runs.itertuples(index=False))


def _etn_splits(
    raw: pd.DataFrame, splits: SplitsArg, *, has_adj: bool, pre_adjusted: bool, label: str
) -> tuple[Split, ...]:
    """The splits to apply to ``raw`` under the ``splits`` argument of :func:`load_etn`."""
    if isinstance(splits, str) and splits != "infer":
        raise ConfigError(
            f"splits={splits!r}: valid values are 'infer', None or a list of (date, ratio) pairs"
        )
    if splits is not None and not isinstance(splits, str):
        found = _normalise_splits(splits)
        _check_listed_splits(raw["close"], found, label)
        return found
    if splits is None or pre_adjusted:
        return ()
    if has_adj:
        found = detect_splits(raw["close"], raw["adj_close"])
        if found:
            logger.info("%s: splits from Adj Close/Close: %s", label, ", ".join(map(str, found)))
        return found
    found = detect_splits(raw["close"])
    if found:
        _warn(
            f"{label}: inferred {len(found)} split(s) from jumps of the close alone: "
            f"{', '.join(map(str, found))}. A crash of the same size looks the same; confirm "
            "with splits=[(date, ratio), ...] or pass splits=None"
        )
    return found


def load_etn(
    path: str | os.PathLike[str],
    splits: SplitsArg = "infer",
    *,
    column: str | None = None,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
) -> pd.DataFrame:
    """Load an ETN/ETF price file as a split-adjusted, total-return series.

    Layouts (detected from the header): Yahoo OHLCV with ``Close`` and ``Adj Close`` (raw or
    already adjusted downloads), Yahoo OHLCV without ``Adj Close``, and close-only files
    (``Date,Adj Close``; ``date,close_split_adjusted,source``; ``,DATE,SVXY``; several series
    such as ``Date,xiv,vxx,...`` need ``column='xiv'``).

    ``splits``:

    * ``"infer"`` (default): with an Adj Close column, splits are where ``Adj Close / Close``
      jumps by a whole factor n or 1/n (:func:`detect_splits`); close-only columns whose name
      says they are adjusted (``adj_close``, ``close_split_adjusted``) are taken as they are;
      other close-only/no-Adj-Close files are searched for whole-factor jumps of the close
      itself, which is a guess (a crash can look like a split), so any hit is reported in a
      :class:`DataQualityWarning`: confirm it with an explicit list or pass ``None``.
    * a list of ``(date, ratio)`` or :class:`Split` (ratio = new shares per old share, 0.25 for a
      1-for-4 reverse split; date = first day on the new basis): the close must jump there
      (else :class:`DataError`: the file is already adjusted); the output close is the raw close
      adjusted for exactly these splits (price return), any ``Adj Close`` kept as ``adj_close``.
    * ``None``: no split handling; prices as in the file.

    Output: ``close`` = total-return close (``Adj Close`` when the file has it, else the
    split-adjusted close), ``open/high/low`` scaled by the same per-row factor (NaN for
    close-only files: ``attrs['has_open']`` is False), ``volume`` in post-split shares,
    ``raw_close`` = the close as written in the file (the traded price only for unadjusted
    downloads). ``attrs['splits']`` is a tuple of :class:`Split`; ``attrs['price_basis']`` is
    ``'adj_close'``, ``'split_list'``, ``'split_adjusted'`` or ``'as_in_file'``;
    ``attrs['segments']`` lists the per-row ``source`` runs of stitched files. Row policies as in
    the module docstring.
    """
    table = _read_table(path)
    cols = table.cells.columns
    ohlc_file = column is None and "close" in cols
    if ohlc_file:
        mapping = {c: (c if c in cols else None) for c in STANDARD_COLUMNS}
        has_adj = "adj_close" in cols
        if has_adj:
            mapping["adj_close"] = "adj_close"
        value_col = "close"
        text: tuple[str, ...] = ()
    else:
        date_col = _date_column(table)
        value_col = _value_column(table, column, date_col)
        mapping = {"close": value_col}
        has_adj = False
        text = ("source",) if "source" in cols and value_col != "source" else ()
    raw = _assemble(
        table,
        mapping,
        required=("close", "adj_close") if has_adj else ("close",),
        date_format=date_format,
        acknowledged=acknowledged,
        bad_range=bad_range,
        text_columns=text,
    )
    segments = _segments(raw["source"]) if text else ()
    pre_adjusted = not ohlc_file and "adj" in value_col

    explicit = splits is not None and not isinstance(splits, str)
    found = _etn_splits(raw, splits, has_adj=has_adj, pre_adjusted=pre_adjusted, label=table.label)
    factor = split_factor(raw.index, found)
    if has_adj and not explicit:
        scale = raw["adj_close"] / raw["close"]
        basis = "adj_close"
    else:
        scale = pd.Series(1.0 / factor, index=raw.index)
        basis = "split_list" if explicit else ("split_adjusted" if found else "as_in_file")
    out = pd.DataFrame(
        {
            "open": raw["open"] * scale,
            "high": raw["high"] * scale,
            "low": raw["low"] * scale,
            "close": raw["close"] * scale,
            "volume": raw["volume"] * factor,
            "raw_close": raw["close"],
        },
        index=raw.index,
    )
    if has_adj and explicit:
        out["adj_close"] = raw["adj_close"]
    out.attrs = {"splits": found, "price_basis": basis, "segments": segments}
    return finish_frame(out, table.path)


# --------------------------------------------------------------------------------------------
# VIX futures


def load_vix_futures_continuous(
    path: str | os.PathLike[str],
    *,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
) -> pd.DataFrame:
    """Continuous VIX futures settles ``VX1..VXn`` with spot ``VIX`` and ``SP500`` (quantintell).

    Returns columns ``vx1..vxn, vix, sp500`` (float64; the leading row-number column is
    dropped). ``vx1`` is the front monthly contract, ``vx2`` the second, and so on; weeklies are
    not included. The source rolls ON the final settlement day: on an expiry Wednesday ``vx1``
    already shows the next contract (the expiring contract's SOQ print is omitted), so ``vx1``
    jumps to the next contract one day earlier than a "front month until expiry" series would.
    Rows with any missing value are dropped with a warning; values must be positive.
    """
    table = _read_table(path)
    cols = table.cells.columns
    vx = sorted((c for c in cols if re.fullmatch(r"vx\d+", c)), key=lambda c: int(c[2:]))
    missing = [c for c in ("vix", "sp500") if c not in cols] + ([] if vx else ["VX1"])
    if missing:
        raise DataError(
            f"{table.label}: missing column(s) {', '.join(missing)}; expected a header like "
            "',DATE,VIX,VX1,...,VX8,SP500'"
        )
    names = [*vx, "vix", "sp500"]
    frame = _assemble(
        table,
        {c: c for c in names},
        required=names,
        date_format=date_format,
        acknowledged=acknowledged,
        price_columns=names,
    )
    frame.attrs["roll"] = "on the final settlement day (vx1 shows the next contract that day)"
    return frame


def load_chris_vx(
    path: str | os.PathLike[str],
    *,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "nan",
) -> pd.DataFrame:
    """Quandl CHRIS continuous VIX futures file (``CHRIS/CBOE_VX1``, ``VX2``).

    Columns ``Trade Date,Open,High,Low,Close,Settle,Change,Total Volume,EFP,Prev. Day Open
    Interest`` (newest first in the source) become ``open, high, low, close, volume, settle,
    change, efp, prev_day_open_interest``. Prices before 2007-03-26 are on CFE's old x10 scale
    and are divided by 10 (detected: only when their median exceeds 50 points;
    ``attrs['rescaled_rows']`` counts them). ``settle`` is the value to use (``close`` is the
    last trade). Rows without a settle are dropped with a warning; ``bad_range`` defaults to
    ``"nan"`` because a no-trade day can carry a crossed high/low next to a valid settle
    (2013-01-16 in ``CBOE_VX1``). The CHRIS roll happens at expiry.
    """
    table = _read_table(path)
    cols = table.cells.columns
    if "settle" not in cols:
        raise DataError(
            f"{table.label}: no Settle column (columns are "
            f"{', '.join(table.original.values())}); expected a Quandl CHRIS VX file"
        )
    mapping = {c: (c if c in cols else None) for c in ("open", "high", "low", "close")}
    mapping["volume"] = "total_volume" if "total_volume" in cols else None
    for extra in ("settle", "change", "efp", "prev_day_open_interest"):
        if extra in cols:
            mapping[extra] = extra
    frame = _assemble(
        table,
        mapping,
        required=("settle",),
        date_format=date_format,
        acknowledged=acknowledged,
        bad_range=bad_range,
    )
    old = np.asarray(frame.index < CFE_RESCALE_DATE)
    rescale = bool(old.any()) and float(frame["settle"][old].median()) > _X10_MEDIAN_THRESHOLD
    if rescale:
        scale = np.where(old, 1.0 / CFE_OLD_SCALE, 1.0)
        priced = [c for c in ("open", "high", "low", "close", "settle", "change") if c in frame]
        frame = frame.assign(**{c: frame[c] * scale for c in priced})
    frame.attrs["rescaled_rows"] = int(old.sum()) if rescale else 0
    return frame


# --------------------------------------------------------------------------------------------
# China 50ETF

_QFQ_NAMES = ("date", "open", "high", "low", "close", "volume", "amount")


def load_510050(
    path: str | os.PathLike[str],
    adjusted: bool = False,
    *,
    date_format: str | None = None,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
) -> pd.DataFrame:
    """Huaxia SSE 50 ETF (510050.SH) daily bars, CNY per share.

    ``adjusted=False``: the unadjusted TDX export with header
    ``datetime,open,high,low,close,volume,amount,pre_close`` (use it with option strikes;
    ``pre_close`` is NaN before 2018-10-08). ``adjusted=True``: the dividend-adjusted export
    without a header, ``YYYY/MM/DD,open,high,low,close,volume,amount``. The shared copy is
    labelled qfq (forward-adjusted) but its prices are the unadjusted ones plus the cash
    dividends paid since 2010 (an additive, backward adjustment: equal to the unadjusted price
    before the first ex-date 2010-11-16, +0.026 .. +0.054 CNY on each ex-date); its returns
    include dividends, its levels are not traded prices. A headerless file with
    ``adjusted=False`` is refused (it is the adjusted layout). ``attrs['adjusted']`` records
    the flag. Row policies as in the module docstring.
    """
    table = _read_table(path, names=_QFQ_NAMES)
    if not adjusted and not table.has_header:
        raise DataError(
            f"{table.label}: no header row, which is the layout of the forward-adjusted (qfq) "
            "export; pass adjusted=True if that is what it is"
        )
    frame = _yahoo_table_frame(
        table, date_format=date_format, acknowledged=acknowledged, bad_range=bad_range
    )
    frame.attrs["adjusted"] = bool(adjusted)
    return frame


# --------------------------------------------------------------------------------------------
# generic dated tables (the user's own files: data.datasets with format csv)

GENERIC_COLUMNS = (*STANDARD_COLUMNS, "adj_close")
"""What a generic file's ``columns`` map may name besides ``date``."""


def _source_column(table: _Table, wanted: str, key: str) -> str:
    name = _normalise_name(wanted)
    if name not in table.cells.columns:
        shown = ", ".join(v or k for k, v in table.original.items())
        raise DataError(
            f"{table.label}: columns: {key}: {wanted!r} is not a column of the file (its "
            f"header line holds {shown}); name one of those"
        )
    return name


def load_columns(
    path: str | os.PathLike[str],
    columns: Mapping[str, str] | None = None,
    *,
    sep: str = ",",
    decimal: str = ".",
    date_format: str | None = None,
    dayfirst: bool = False,
    acknowledged: Iterable[object] = (),
    bad_range: BadRange = "drop",
) -> pd.DataFrame:
    """A dated price table of any layout: ``columns`` maps the engine's names (``date``,
    ``open``, ``high``, ``low``, ``close``, ``volume``, ``adj_close``) to the file's column
    names (default: the same names; only ``close`` is required). ``sep`` is the field separator,
    ``decimal`` the decimal mark (``','`` for ``12,5``), ``date_format`` a strptime layout and
    ``dayfirst`` reads ambiguous D/M/YYYY dates day first. Every rule of the module docstring
    applies (preamble lines skipped, missing tokens, positive prices, unique sorted dates)."""
    columns = dict(columns or {})
    unknown = sorted(set(columns) - {"date", *GENERIC_COLUMNS})
    if unknown:
        raise ConfigError(
            f"columns: unknown name(s) {unknown}; valid: date, {', '.join(GENERIC_COLUMNS)}"
        )
    table = _read_table(path, sep=sep)
    mapping: dict[str, str | None] = {}
    for out in GENERIC_COLUMNS:
        if out in columns:
            mapping[out] = _source_column(table, columns[out], out)
        elif out in table.cells.columns:
            mapping[out] = out
    if "close" not in mapping:
        raise DataError(
            f"{table.label}: no close column (columns are "
            f"{', '.join(v or k for k, v in table.original.items())}); map one with columns: "
            "{close: <column name>}"
        )
    date_col = _source_column(table, columns["date"], "date") if "date" in columns else None
    if decimal != ".":
        cells = table.cells.copy()
        for src in {s for s in mapping.values() if s}:
            cells[src] = (
                cells[src].str.replace(".", "", regex=False).str.replace(decimal, ".", regex=False)
            )
        table = _Table(table.path, cells, table.lines, table.original, table.preamble, True)
    return _assemble(
        table,
        mapping,
        required=("close",),
        date_column=date_col,
        date_format=date_format,
        acknowledged=acknowledged,
        bad_range=bad_range,
        ambiguous="day_first" if dayfirst else "raise",
    )


def date_lines(
    path: str | os.PathLike[str],
    *,
    sep: str = ",",
    date_column: str | None = None,
    date_format: str | None = None,
    dayfirst: bool = False,
) -> dict[pd.Timestamp, int]:
    """Date -> 1-based line number in a dated table (what messages quote)."""
    table = _read_table(path, sep=sep)
    col = _date_column(table, date_column)
    dates = parse_dates(
        table.cells[col],
        date_format=date_format,
        source=table.label,
        lines=table.lines,
        ambiguous="day_first" if dayfirst else "month_first",
    )
    return dict(zip(dates, (int(n) for n in table.lines), strict=True))
