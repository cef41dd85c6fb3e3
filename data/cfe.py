"""Per-contract CFE VIX futures files (``CFE_<M><YY>_VX.csv``): loader, validation, settle matrix.

One file per monthly contract, as published by the CBOE Futures Exchange until 2017 (see
``../shared/data/vix_futures_cfe/PROVENANCE.md``). Columns ``Trade Date, Futures, Open, High,
Low, Close, Settle, Change, Total Volume, EFP, Open Interest``.

Policy (every point is reported, none is silently repaired):

* **Contract** from the file name (month code ``F G H J K M N Q U V X Z`` = Jan..Dec, two-digit
  year 20YY); the ``Futures`` column must name the same contract (``K (May 04)``), else
  :class:`DataError`.
* **Scale**: before 2007-03-26 CFE quoted VX ×10; those rows' prices are divided by 10.
* **Listing placeholders**: ``Settle = 0`` rows before a contract's first non-zero settle are
  dropped (CFE lists a contract a day before it trades); counted in the report.
* **Problems**, each naming the file, the line(s), the date and the fix:
  ``zero_settle`` (a zero settle after the contract started settling), ``gap`` (NYSE sessions
  with no row inside a contract's life), ``duplicate_date``, ``bad_settle`` (outside 5..150 VIX
  points, or a spike more than ``SPIKE_LOG`` away in log from both neighbours, which agree),
  ``off_calendar`` (a date that is not an NYSE session), ``unsorted``, ``early_expiry`` (the
  file stops before the rule's final settlement date although later files go on).
  Problems listed in ``known_issues`` (default :data:`KNOWN_ISSUES`, found in the shared 2017
  download and documented there) are logged at INFO; any other one raises :class:`DataError`
  (``on_problem="raise"``, default) or warns :class:`DataQualityWarning` (``"warn"``). Either
  way a bad row's settle becomes missing and a gap stays a gap: the curve shows NaN for that
  contract on those days and nothing is interpolated.
* **Expiry**: a contract whose file ends before the folder's last date settled on its last
  row (the exchange's own record, including the 2004 contracts that settled a week before the
  rule and the Good-Friday Tuesdays); one still trading on the folder's last date gets the CFE
  rule date (:func:`engine.calculators.futures.vix_futures_expiry`).

:func:`splice_continuous` extends the matrix with the continuous ``VX1..VX8`` file after the
per-contract files end, mapping ``VXk`` on date t to the k-th rule expiry after t.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions
from volbacktest.data.loaders import (
    CFE_OLD_SCALE,
    CFE_RESCALE_DATE,
    close_only_frame,
    load_vix_futures_continuous,
)
from volbacktest.engine.caches import CACHES
from volbacktest.engine.calculators.futures import vix_expiries
from volbacktest.engine.calculators.futures_curve import (
    SettleMatrix,
    futures_curve,
    futures_index,
    simulate_etn,
)
from volbacktest.engine.calculators.series_checks import gaps, spike_rows
from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError, DataQualityWarning

logger = logging.getLogger(__name__)

MONTH_CODES = "FGHJKMNQUVXZ"
"""CFE/CME futures month codes, January..December."""
CENTURY = 2000  # VX started trading in 2004: two-digit years are 20YY
CFE_COLUMNS = (
    "Trade Date",
    "Futures",
    "Open",
    "High",
    "Low",
    "Close",
    "Settle",
    "Change",
    "Total Volume",
    "EFP",
    "Open Interest",
)
_PRICE_FIELDS = ("Open", "High", "Low", "Close", "Settle", "Change")
_FILE_RE = re.compile(r"^CFE_([FGHJKMNQUVXZ])(\d{2})_VX\.csv$", re.IGNORECASE)
_LABEL_RE = re.compile(r"^\s*([FGHJKMNQUVXZ])\s*\(\s*([A-Za-z]{3})\s*(\d{2})\s*\)\s*$")
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_FORMAT = "%m/%d/%Y"  # CFE writes 3/26/2004 and 04/11/2012, both month first

# Plausibility of a VX settle in VIX points (after the x10 rescale): the shared files range
# 9.9..67.95 besides the errors below, the VIX itself never closed above 82.7.
SETTLE_MIN_POINTS = 5.0
SETTLE_MAX_POINTS = 150.0
# A settle farther than this (log) from both neighbouring settles of the same contract, while
# those two agree within half of it, is an error: the largest genuine one-day move in the
# shared files is 0.31 (N16 on 2016-06-24, Brexit); the errors found are 0.57..3.2.
SPIKE_LOG = 0.4

ProblemKind = Literal[
    "zero_settle", "gap", "duplicate_date", "bad_settle", "off_calendar", "unsorted", "early_expiry"
]
OnProblem = Literal["raise", "warn"]

_FIXES = {
    "zero_settle": "the contract did not settle that day: delete the line or put the exchange's "
    "settle in it",
    "gap": "restore the missing rows from the exchange's file; until then the contract has no "
    "price on those days (never interpolated)",
    "duplicate_date": "keep one of the lines for that date",
    "bad_settle": "correct the Settle from the exchange's record, or acknowledge it "
    "(known_issues) to drop the row",
    "off_calendar": "check the date (not an NYSE session) or acknowledge it",
    "unsorted": "sort the file by Trade Date",
    "early_expiry": "if the contract really settled on its last row, acknowledge it "
    "(known_issues); otherwise the file is truncated: download it again",
}


@dataclass(frozen=True)
class KnownIssue:
    """A documented problem of a shared file, acknowledged so that it is logged, not raised."""

    file: str
    kind: ProblemKind
    dates: tuple[str, ...]
    note: str


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "CFE_F09_VX.csv", "bad_settle", ("2008-04-21",), "Settle 1.00 on its first day (PROVENANCE)"
    ),
    KnownIssue(
        "CFE_G09_VX.csv", "bad_settle", ("2008-04-21",), "Settle 1.00 between 22.xx (PROVENANCE)"
    ),
    KnownIssue(
        "CFE_Q09_VX.csv", "bad_settle", ("2008-10-30",), "18.14 between 32.16 and 35.00 (no trade)"
    ),
    KnownIssue(
        "CFE_G14_VX.csv", "bad_settle", ("2013-05-28",), "listing-day 10.25, next day 20.00"
    ),
    KnownIssue(
        "CFE_M07_VX.csv", "gap", ("2006-11-21",), "no rows 2006-11-21..2006-12-26 after listing"
    ),
    KnownIssue(
        "CFE_N09_VX.csv",
        "zero_settle",
        ("2008-07-22", "2008-09-19"),
        "listed 2008-07-21, zero settles around a two-month gap, trading from 2008-09-22",
    ),
    KnownIssue("CFE_N09_VX.csv", "gap", ("2008-07-23",), "no rows 2008-07-23..2008-09-18"),
    KnownIssue("CFE_N04_VX.csv", "early_expiry", ("2004-07-14",), "settled a week before the rule"),
    KnownIssue("CFE_V04_VX.csv", "early_expiry", ("2004-10-13",), "settled a week before the rule"),
)
"""Problems of the shared 2017 download (``../shared/data/vix_futures_cfe``), each checked by
hand in the file. None touches a contract while it is among the first seven months except
M07's gap (the mid-term index's incoming 7th month in late 2006; see ``futures_index``)."""


@dataclass(frozen=True)
class CFEProblem:
    """One problem found in a contract file (``lines`` are 1-based physical lines)."""

    file: str
    kind: ProblemKind
    date: pd.Timestamp | None
    lines: tuple[int, ...]
    detail: str
    acknowledged: bool = False

    def __str__(self) -> str:
        where = f" line {', '.join(map(str, self.lines))}" if self.lines else ""
        when = f" ({self.date:%Y-%m-%d})" if self.date is not None else ""
        ack = " [known issue]" if self.acknowledged else ""
        return (
            f"{self.file}{where}{when}: {self.kind}: {self.detail}{ack}; fix: {_FIXES[self.kind]}"
        )


@dataclass(frozen=True)
class CFEContracts:
    """Validated contents of a folder of per-contract files.

    ``rows``: one row per (contract, trade date) line kept, with ``contract`` (``K04``),
    ``expiry``, ``trade_date``, prices in VIX points (``open, high, low, close, settle``; a
    bad row's settle is NaN), ``volume``, ``open_interest``, ``file`` and ``line``.
    ``contracts``: one row per contract (file, first/last dates, expiry and where it comes
    from, the rule date, row counts, final settle). ``problems``: everything reported.
    """

    folder: Path
    rows: pd.DataFrame
    contracts: pd.DataFrame
    problems: tuple[CFEProblem, ...]
    placeholders: int

    @property
    def last_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.rows["trade_date"].max())

    def report(self) -> str:
        """Human-readable summary of the files and every problem found."""
        known = sum(p.acknowledged for p in self.problems)
        head = (
            f"{len(self.contracts)} contract files, {len(self.rows)} rows, "
            f"{self.rows['trade_date'].min():%Y-%m-%d}..{self.last_date:%Y-%m-%d}; "
            f"{self.placeholders} listing placeholders (Settle 0 before trading) dropped; "
            f"{len(self.problems)} problems ({known} known issues)"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def matrix(self, price: Literal["settle", "close"] = "settle") -> SettleMatrix:
        """Dates x contract expiries. ``price="close"`` uses the last trade where the contract
        traded that day (Close > 0) and the settle otherwise (an analysis of settle vs close
        timing; the indices use settles)."""
        rows = self.rows
        values = rows["settle"].to_numpy()
        if price == "close":
            close = rows["close"].to_numpy()
            values = np.where(np.isfinite(values) & (close > 0), close, values)
        elif price != "settle":
            raise ConfigError(f"price must be 'settle' or 'close', got {price!r}")
        valid = np.isfinite(rows["settle"].to_numpy())
        dates = pd.DatetimeIndex(np.unique(rows["trade_date"].to_numpy()[valid]), name="date")
        expiries = pd.DatetimeIndex(np.sort(self.contracts["expiry"].to_numpy()), name="expiry")
        r = dates.get_indexer(rows["trade_date"])
        c = expiries.get_indexer(rows["expiry"])
        keep = (r >= 0) & valid  # a dropped duplicate never overwrites the row kept
        grid = np.full((len(dates), len(expiries)), np.nan)
        grid[r[keep], c[keep]] = values[keep]
        contracts = self.contracts.set_index("expiry").loc[expiries]
        first = dates.searchsorted(pd.DatetimeIndex(contracts["first_valid"]))
        last = dates.searchsorted(pd.DatetimeIndex(contracts["last_row"]), side="right")
        pos = np.arange(len(dates))[:, None]
        listed = (pos >= first[None, :]) & (pos < last[None, :])
        return SettleMatrix(
            settle=pd.DataFrame(grid, index=dates, columns=expiries),
            listed=pd.DataFrame(listed, index=dates, columns=expiries),
            source=pd.Series("cfe", index=dates, name="source", dtype=object),
            notes=tuple(str(p) for p in self.problems),
        )


# --------------------------------------------------------------------------- reading


def contract_of(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(code, year, month)`` from a file name: ``CFE_K04_VX.csv`` -> ``("K04", 2004, 5)``."""
    name = Path(path).name
    match = _FILE_RE.match(name)
    if not match:
        raise DataError(
            f"{name}: not a CFE per-contract file name; expected CFE_<month code><YY>_VX.csv "
            f"with a month code in {MONTH_CODES} (e.g. CFE_K04_VX.csv)"
        )
    code, yy = match[1].upper(), int(match[2])
    return f"{code}{yy:02d}", CENTURY + yy, MONTH_CODES.index(code) + 1


def _read_bodies(paths: Sequence[Path]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """All files' data lines read by one ``read_csv``: (cells, file number, line number)."""
    texts, file_ids, line_nos = [], [], []
    for i, path in enumerate(paths):
        text = path.read_bytes()
        try:
            if b"\x00" in text:
                raise UnicodeDecodeError("utf-8", text, text.index(b"\x00"), 0, "NUL byte")
            lines = text.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); the folder "
                "should hold only the CFE_<M><YY>_VX.csv text files: move this one out"
            ) from None
        header = tuple(c.strip() for c in lines[0].split(",")) if lines else ()
        if header[: len(CFE_COLUMNS)] != CFE_COLUMNS:
            raise DataError(
                f"{path.name} line 1: header {', '.join(header) or '(empty file)'} is not the CFE "
                f"layout ({', '.join(CFE_COLUMNS)}); pass only CFE_<M><YY>_VX.csv files"
            )
        body = [(n, line.rstrip().rstrip(",")) for n, line in enumerate(lines[1:], 2)]
        body = [(n, line) for n, line in body if line]
        texts.extend(line for _, line in body)
        line_nos.extend(n for n, _ in body)
        file_ids.extend([i] * len(body))
    if not texts:
        raise DataError("the CFE files hold no data lines")
    try:
        cells = pd.read_csv(
            io.StringIO("\n".join(texts)),
            header=None,
            names=list(CFE_COLUMNS),
            usecols=range(len(CFE_COLUMNS)),
            dtype={"Trade Date": str, "Futures": str},
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:  # e.g. a quote left open
        where = re.search(r"line (\d+)", str(exc))
        at = ""
        if where and 0 < int(where[1]) <= len(texts):
            j = int(where[1]) - 1
            at = f"{paths[file_ids[j]].name} line {line_nos[j]}: "
        raise DataError(
            f"{at}not a well-formed CSV line ({exc}); fix or delete that line"
        ) from None
    return cells, np.asarray(file_ids), np.asarray(line_nos)


def _numeric(cells: pd.DataFrame, paths, file_ids, line_nos) -> dict[str, np.ndarray]:
    out = {}
    for col in CFE_COLUMNS[2:]:
        raw = cells[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            j = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{paths[file_ids[j]].name} line {line_nos[j]}: column '{col}' holds "
                f"{raw.iloc[j]!r}, not a number; fix the cell (blank is allowed)"
            )
        out[col] = num.to_numpy(dtype=float)
    return out


def _dates(cells: pd.DataFrame, paths, file_ids, line_nos) -> np.ndarray:
    codes, uniques = pd.factorize(cells["Trade Date"].str.strip())
    parsed = pd.to_datetime(pd.Index(uniques), format=DATE_FORMAT, errors="coerce")
    bad = (codes < 0) | np.asarray(pd.isna(parsed))[np.maximum(codes, 0)]
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{paths[file_ids[j]].name} line {line_nos[j]}: Trade Date "
            f"{cells['Trade Date'].iloc[j]!r} is not M/D/YYYY; fix the date"
        )
    return parsed.to_numpy()[codes]


def _check_labels(cells, paths, file_ids, line_nos, contracts) -> None:
    labels = cells["Futures"].fillna("").str.strip()
    pairs = pd.DataFrame({"f": file_ids, "label": labels}).drop_duplicates()
    for f, label in zip(pairs["f"], pairs["label"], strict=True):
        code, year, month = contracts[f]
        match = _LABEL_RE.match(label)
        ok = bool(match) and (
            match[1].upper() == code[0]
            and match[2].title() == _MONTH_ABBR[month - 1]
            and CENTURY + int(match[3]) == year
        )
        if not ok:
            j = int(np.flatnonzero((file_ids == f) & (labels.to_numpy() == label))[0])
            raise DataError(
                f"{paths[f].name} line {line_nos[j]}: Futures {label!r} does not name the "
                f"file's contract {code} ({_MONTH_ABBR[month - 1]} {year}); the file is "
                "mislabelled or belongs to another contract"
            )


# --------------------------------------------------------------------------- checks


def _problem(kind, file, date, lines, detail) -> CFEProblem:
    return CFEProblem(
        file=file,
        kind=kind,
        date=None if date is None else pd.Timestamp(date),
        lines=tuple(int(n) for n in lines),
        detail=detail,
    )


def _spikes(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose settle is an isolated outlier against its own contract's neighbours (the
    shared rule of ``engine.calculators.series_checks``, per contract)."""
    return spike_rows(frame["settle"].where(frame["valid"]), SPIKE_LOG, groups=frame["file_id"])


def _validate(
    frame: pd.DataFrame, names: Sequence[str], sessions: pd.DatetimeIndex
) -> tuple[list[CFEProblem], np.ndarray, np.ndarray]:
    """Problems in ``frame`` (sorted by file, date) with the rows' validity and placeholders."""
    problems: list[CFEProblem] = []
    fid = frame["file_id"].to_numpy()
    file_of = np.asarray(names)[fid]
    dates = frame["trade_date"].to_numpy()
    lines = frame["line"].to_numpy()
    settle = frame["settle"].to_numpy()
    positive = settle > 0
    started = pd.Series(positive).groupby(fid).cummax().to_numpy()
    placeholder = ~started
    for j in np.flatnonzero(~positive & started):
        problems.append(
            _problem("zero_settle", file_of[j], dates[j], [lines[j]], "Settle is 0 (or blank)")
        )
    keys = frame[["file_id", "trade_date"]]
    dup = keys.duplicated(keep=False).to_numpy()
    for f, d in keys[dup].drop_duplicates().itertuples(index=False):
        same = np.flatnonzero(dup & (fid == f) & (dates == d))
        values = ", ".join(f"{v:g}" for v in np.unique(settle[same]))
        detail = f"{len(same)} rows for one date, settles {values}"
        problems.append(_problem("duplicate_date", names[f], d, lines[same], detail))
    conflicting = dup & (
        frame.groupby(["file_id", "trade_date"])["settle"].transform("nunique") > 1
    )
    repeated = frame.duplicated(["file_id", "trade_date", "settle"], keep="first").to_numpy()
    valid = positive & ~repeated & ~conflicting.to_numpy()
    out_of_range = valid & ((settle < SETTLE_MIN_POINTS) | (settle > SETTLE_MAX_POINTS))
    bad = out_of_range | _spikes(frame.assign(valid=valid))
    for j in np.flatnonzero(bad):
        problems.append(
            _problem(
                "bad_settle",
                file_of[j],
                dates[j],
                [lines[j]],
                f"Settle {settle[j]:g} (VIX points) is outside {SETTLE_MIN_POINTS:g}.."
                f"{SETTLE_MAX_POINTS:g} or an outlier against the contract's neighbouring settles",
            )
        )
    valid &= ~bad
    sess = sessions.to_numpy()
    pos = np.searchsorted(sess, dates)
    on_cal = (pos < len(sess)) & (sess[np.minimum(pos, len(sess) - 1)] == dates)
    for j in np.flatnonzero(~on_cal):
        problems.append(
            _problem("off_calendar", file_of[j], dates[j], [lines[j]], "not an NYSE session")
        )
    # gaps: sessions without any row between consecutive rows of a started contract
    sub = np.flatnonzero(started & on_cal)
    for i, k, _ in gaps(dates[sub], sessions, 0, groups=fid[sub]):
        a, b = sub[i], sub[k]
        missing = sess[pos[a] + 1 : pos[b]]
        detail = (
            f"no rows for {len(missing)} sessions {pd.Timestamp(missing[0]):%Y-%m-%d}.."
            f"{pd.Timestamp(missing[-1]):%Y-%m-%d} (between lines {lines[a]} and {lines[b]})"
        )
        problems.append(_problem("gap", file_of[a], missing[0], [lines[a], lines[b]], detail))
    return problems, valid, placeholder


def _acknowledge(problems: Iterable[CFEProblem], known: Iterable[KnownIssue]) -> list[CFEProblem]:
    keys = {(k.file.upper(), k.kind, pd.Timestamp(d)) for k in known for d in k.dates}
    out = []
    for p in problems:
        hit = p.date is not None and (p.file.upper(), p.kind, p.date) in keys
        out.append(
            CFEProblem(p.file, p.kind, p.date, p.lines, p.detail, acknowledged=hit) if hit else p
        )
    return out


def _settle_report(problems: Sequence[CFEProblem], on_problem: OnProblem, folder: Path) -> None:
    for p in problems:
        if p.acknowledged:
            logger.info("%s", p)
    new = [p for p in problems if not p.acknowledged]
    if not new:
        return
    listing = "\n".join(f"  {p}" for p in new[:20])
    more = f"\n  ... and {len(new) - 20} more" if len(new) > 20 else ""
    message = (
        f"{len(new)} problem(s) in the CFE files of {folder}:\n{listing}{more}\n"
        "Bad rows are left out and gaps stay empty (nothing is interpolated). Fix the files, "
        "or pass on_problem='warn' to go on, or list them in known_issues."
    )
    if on_problem == "raise":
        raise DataError(message)
    warnings.warn(DataQualityWarning(message), stacklevel=3)


# --------------------------------------------------------------------------- public loaders


def _contract_table(
    frame: pd.DataFrame, names: Sequence[str], contracts, sessions, folder_last: pd.Timestamp
) -> tuple[pd.DataFrame, list[CFEProblem]]:
    """One row per contract with its expiry (file's last row, or the rule while unexpired)."""
    code, year, month = (np.asarray(v) for v in zip(*contracts, strict=True))
    months = year * 12 + month - 1
    rule_all = vix_expiries(
        pd.Timestamp(int(year.min()), 1, 1), pd.Timestamp(int(year.max()), 12, 31), sessions
    )
    rule_by_month = pd.Series(rule_all, index=rule_all.year * 12 + rule_all.month - 1)
    rule = pd.DatetimeIndex(rule_by_month.reindex(months).to_numpy())
    by_file = frame.groupby("file_id")
    valid = frame[frame["valid"]]
    files = pd.RangeIndex(len(names))
    first_valid = valid.groupby("file_id")["trade_date"].min().reindex(files)
    if first_valid.isna().any():
        empty = names[int(np.flatnonzero(first_valid.isna())[0])]
        raise DataError(f"{empty}: no row with a valid settle; remove the file or restore its data")
    last_row = pd.DatetimeIndex(by_file["trade_date"].max().reindex(files))
    last_line = by_file["line"].max().reindex(files).to_numpy()
    final_row = valid.groupby("file_id")["trade_date"].idxmax().reindex(files)
    settled = last_row < folder_last
    still_trading_on_rule = ~settled & (last_row == rule)
    from_file = settled | still_trading_on_rule
    expiry = pd.DatetimeIndex(np.where(from_file, last_row, rule))
    problems = [
        _problem(
            "early_expiry" if last_row[f] < rule[f] else "bad_settle",
            names[f],
            last_row[f],
            [last_line[f]],
            f"last row {last_row[f]:%Y-%m-%d} but the CFE rule settles on {rule[f]:%Y-%m-%d}",
        )
        for f in np.flatnonzero(settled & (last_row != rule))
    ]
    final_settle = frame["settle"].reindex(final_row.to_numpy()).to_numpy()
    table = pd.DataFrame(
        {
            "contract": code,
            "file": list(names),
            "year": year,
            "month": month,
            "first_row": by_file["trade_date"].min().reindex(files).to_numpy(),
            "first_valid": first_valid.to_numpy(),
            "last_row": last_row,
            "rows": by_file.size().reindex(files).to_numpy(),
            "rows_valid": valid.groupby("file_id").size().reindex(files).to_numpy(),
            "expiry": expiry,
            "expiry_source": np.where(from_file, "file", "rule"),
            "rule_expiry": rule,
            "final_settle": np.where(from_file, final_settle, np.nan),
        }
    )
    if table["expiry"].duplicated().any():
        twice = table.loc[table["expiry"].duplicated(keep=False), "file"].tolist()
        raise DataError(f"files {twice} name the same contract; keep one of them")
    return table.sort_values("expiry", ignore_index=True), problems


def load_cfe_folder(
    folder: str | os.PathLike[str],
    *,
    on_problem: OnProblem = "raise",
    known_issues: Iterable[KnownIssue] = KNOWN_ISSUES,
    pattern: str = "CFE_*_VX.csv",
) -> CFEContracts:
    """Read and validate every per-contract file in ``folder`` (see the module policy)."""
    if on_problem not in ("raise", "warn"):
        raise ConfigError(f"on_problem must be 'raise' or 'warn', got {on_problem!r}")
    root = Path(folder)
    if not root.is_dir():
        raise DataNotFoundError(
            f"CFE contract folder {root} does not exist; pass the folder holding "
            "CFE_<M><YY>_VX.csv files (e.g. ../shared/data/vix_futures_cfe/per_contract)"
        )
    paths = sorted(root.glob(pattern))
    if not paths:
        raise DataNotFoundError(f"no {pattern} files in {root}; is it the per_contract folder?")
    contracts = [contract_of(p) for p in paths]
    cells, file_ids, line_nos = _read_bodies(paths)
    nums = _numeric(cells, paths, file_ids, line_nos)
    dates = _dates(cells, paths, file_ids, line_nos)
    _check_labels(cells, paths, file_ids, line_nos, contracts)
    scale = np.where(dates < np.datetime64(CFE_RESCALE_DATE), 1.0 / CFE_OLD_SCALE, 1.0)
    frame = pd.DataFrame(
        {
            "file_id": file_ids,
            "line": line_nos,
            "trade_date": dates,
            **{c.lower(): nums[c] * scale for c in _PRICE_FIELDS},
            "volume": nums["Total Volume"],
            "open_interest": nums["Open Interest"],
        }
    )
    frame["settle"] = frame["settle"].fillna(0.0)
    names = [p.name for p in paths]
    problems: list[CFEProblem] = []
    order_ok = frame.groupby("file_id")["trade_date"].is_monotonic_increasing
    for f in order_ok.index[~order_ok.to_numpy()]:
        problems.append(_problem("unsorted", names[f], None, [], "rows are not in date order"))
    frame = frame.sort_values(["file_id", "trade_date", "line"], kind="stable", ignore_index=True)
    years = [y for _, y, _ in contracts]
    first_year = min(min(years), pd.Timestamp(frame["trade_date"].min()).year)
    sessions = sessions_for_years(first_year, max(years))
    found, valid, placeholder = _validate(frame, names, sessions)
    frame["valid"] = valid
    folder_last = pd.Timestamp(frame["trade_date"].max())
    table, expiry_problems = _contract_table(frame, names, contracts, sessions, folder_last)
    problems = _acknowledge(problems + found + expiry_problems, known_issues)
    problems.sort(key=lambda p: (p.file, p.date or pd.Timestamp.min))
    _settle_report(problems, on_problem, root)
    contract_of_file = np.asarray([c[0] for c in contracts])
    expiry_of_file = table.set_index("contract")["expiry"].reindex(contract_of_file).to_numpy()
    fid = frame["file_id"].to_numpy()
    rows = pd.DataFrame(
        {
            "contract": contract_of_file[fid],
            "expiry": expiry_of_file[fid],
            "trade_date": frame["trade_date"],
            "open": frame["open"],
            "high": frame["high"],
            "low": frame["low"],
            "close": frame["close"],
            "settle": frame["settle"].where(frame["valid"]),
            "volume": frame["volume"],
            "open_interest": frame["open_interest"],
            "file": np.asarray(names)[fid],
            "line": frame["line"],
        }
    )[~placeholder].reset_index(drop=True)
    placeholders = int(placeholder.sum())
    return CFEContracts(root, rows, table, tuple(problems), placeholders)


# --------------------------------------------------------------------------- continuous splice


def splice_continuous(
    base: SettleMatrix,
    continuous: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    *,
    tolerance: float = 0.005,
) -> SettleMatrix:
    """Extend ``base`` (per-contract settles) with a continuous ``vx1..vxn`` frame after its end.

    ``continuous`` is :func:`data.loaders.load_vix_futures_continuous`'s frame: ``vxk`` on date
    t is mapped to the k-th CFE rule expiry strictly after t (the file rolls on the settlement
    day and lists consecutive monthly contracts). On the dates both cover, ``vxk`` is compared
    with the base curve's ``Fk``; the counts go into ``notes`` and a mismatch in the last year
    before the splice (where the mapping is used) raises :class:`DataError`.
    """
    vx = sorted(
        (c for c in continuous.columns if re.fullmatch(r"vx\d+", c)), key=lambda c: int(c[2:])
    )
    if not vx:
        raise DataError("the continuous frame has no vx1..vxn columns")
    n = len(vx)
    cont = continuous[vx].astype(float)
    base_end = base.dates[-1]
    overlap = cont.loc[base.dates[0] : base_end]
    notes = list(base.notes)
    if len(overlap):
        curve = futures_curve(base.between(overlap.index[0], base_end), sessions, n=n)
        cmp_dates = overlap.index.intersection(curve.dates)
        a = overlap.loc[cmp_dates].to_numpy()
        b = curve.price.loc[cmp_dates].to_numpy()
        both = np.isfinite(a) & np.isfinite(b)
        wrong = both & (np.abs(a - b) > tolerance)
        notes.append(
            f"continuous file vs per-contract curve on {len(cmp_dates)} common dates: "
            f"{int(wrong.sum())} of {int(both.sum())} settles differ by more than {tolerance}"
        )
        recent = cmp_dates >= base_end - pd.Timedelta(days=365)
        if wrong[recent].any():
            t, k = np.argwhere(wrong & recent[:, None])[0]
            raise DataError(
                f"continuous vx{k + 1} on {cmp_dates[t]:%Y-%m-%d} is {a[t, k]:g} but the "
                f"per-contract F{k + 1} is {b[t, k]:g}: the splice would mix contracts; check "
                "that the continuous file lists consecutive monthly contracts"
            )
    new = cont.loc[cont.index > base_end]
    if new.empty:
        return SettleMatrix(base.settle, base.listed, base.source, tuple(notes))
    horizon = new.index[-1] + pd.DateOffset(months=n + 2)
    calendar = vix_expiries(new.index[0], horizon, sessions)
    days = new.index.to_numpy()
    pos = calendar.searchsorted(days, side="right")[:, None] + np.arange(n)[None, :]
    mapped = calendar.to_numpy()[pos]
    expiries = pd.DatetimeIndex(
        np.union1d(base.expiries.to_numpy(), np.unique(mapped)), name="expiry"
    )
    new_grid = np.full((len(new), len(expiries)), np.nan)
    cols = expiries.get_indexer(mapped.ravel()).reshape(mapped.shape)
    rows = np.repeat(np.arange(len(new))[:, None], n, axis=1)
    new_grid[rows, cols] = new.to_numpy()
    new_listed = np.zeros_like(new_grid, dtype=bool)
    new_listed[rows, cols] = True
    idx = base.dates.append(pd.DatetimeIndex(new.index)).rename("date")
    settle = pd.concat(
        [
            base.settle.reindex(columns=expiries),
            pd.DataFrame(new_grid, index=new.index, columns=expiries),
        ]
    )
    listed = pd.concat(
        [
            base.listed.reindex(columns=expiries, fill_value=False),
            pd.DataFrame(new_listed, index=new.index, columns=expiries),
        ]
    )
    source = pd.concat([base.source, pd.Series("continuous", index=new.index, dtype=object)])
    notes.append(
        f"{len(new)} dates {new.index[0]:%Y-%m-%d}..{new.index[-1]:%Y-%m-%d} from the continuous "
        f"file (vx1..vx{n} mapped to CFE rule expiries; not verified against exchange files)"
    )
    return SettleMatrix(
        settle.set_axis(idx, axis=0),
        listed.set_axis(idx, axis=0),
        source.set_axis(idx).rename("source"),
        tuple(notes),
    )


def sessions_for_years(first_year: int, last_year: int) -> pd.DatetimeIndex:
    """NYSE sessions from October before ``first_year`` to March after ``last_year``: what the
    expiry rule and the roll need for contracts and dates in those years (one cached calendar
    build, the slow part of a load)."""
    return nyse_sessions(pd.Timestamp(first_year - 1, 10, 1), pd.Timestamp(last_year + 1, 3, 31))


def matrix_sessions(matrix: SettleMatrix) -> pd.DatetimeIndex:
    """NYSE sessions covering the matrix's dates and expiries, with the margins the roll needs."""
    first = min(matrix.dates[0], matrix.expiries[0]).year
    last = max(matrix.dates[-1], matrix.expiries[-1]).year
    return sessions_for_years(first, last)


def _signature(paths: Iterable[Path]) -> tuple:
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


@CACHES.memo("data.cfe.settles", maxsize=4)
def _cached_settles(folder: str, continuous: str | None, signature: tuple) -> SettleMatrix:
    base = load_cfe_folder(folder).matrix()
    if continuous is None:
        return base
    cont = load_vix_futures_continuous(continuous)
    sessions = sessions_for_years(base.dates[0].year, cont.index[-1].year + 1)
    return splice_continuous(base, cont, sessions)


def load_vx_settles(
    cfe_folder: str | os.PathLike[str], continuous_path: str | os.PathLike[str] | None = None
) -> SettleMatrix:
    """Settle matrix from the per-contract folder, spliced with the continuous file if given.

    Validated with the default policy (known issues logged, anything else raises). Cached by
    the files' paths, sizes and modification times.
    """
    folder = Path(cfe_folder)
    files = sorted(folder.glob("CFE_*_VX.csv")) if folder.is_dir() else []
    cont = None if continuous_path is None else Path(continuous_path)
    signature = _signature(files + ([cont] if cont is not None and cont.is_file() else []))
    return _cached_settles(str(folder), None if cont is None else str(cont), signature)


# --------------------------------------------------------------------------- catalogue frames


def simulated_etn_frame(
    cfe_folder: str | os.PathLike[str],
    continuous_path: str | os.PathLike[str] | None,
    *,
    index: Literal["short_term", "mid_term"] = "short_term",
    leverage: float = 1.0,
    annual_fee: float = 0.0089,
    leverage_changes: dict | None = None,
    acceleration_drop: float = 0.8,
    after_termination: str = "nan",
    tbill_rate=0.0,
) -> pd.DataFrame:
    """A close-only frame of a note simulated from the futures (the catalogue's ``*_sim``)."""
    matrix = load_vx_settles(cfe_folder, continuous_path)
    sessions = matrix_sessions(matrix)
    idx = futures_index(
        matrix,
        sessions,
        index,
        tbill_rate=tbill_rate,
        start="auto" if index == "mid_term" else None,
    )
    etn = simulate_etn(
        idx,
        leverage=leverage,
        annual_fee=annual_fee,
        leverage_changes=leverage_changes,
        acceleration_drop=acceleration_drop,
        after_termination=after_termination,
    )
    frame = close_only_frame(etn.value.dropna())
    frame.attrs.update(
        {
            "simulated": True,
            "index": index,
            "leverage": leverage,
            "annual_fee": annual_fee,
            "terminated": etn.terminated,
            "termination_date": etn.termination_date,
            "notes": tuple(matrix.notes) + tuple(idx.notes),
        }
    )
    return frame


def front_future_frame(
    cfe_folder: str | os.PathLike[str], continuous_path: str | os.PathLike[str] | None
) -> pd.DataFrame:
    """Close-only frame of F1 (front monthly contract, rolling on the settlement day)."""
    matrix = load_vx_settles(cfe_folder, continuous_path)
    curve = futures_curve(matrix, matrix_sessions(matrix), n=1)
    frame = close_only_frame(curve.f(1).dropna())
    frame.attrs["roll"] = "on the final settlement day (F1 = first contract expiring after t)"
    return frame
