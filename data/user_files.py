"""The user's own files as datasets (``data.datasets`` in a config): formats, detection, checks.

One entry names a file (or a folder, for ``cfe``) and its ``format``:

* ``cboe``: a Cboe index history (``DATE,OPEN,HIGH,LOW,CLOSE``, or the old ``*dailyprices.csv``
  layout with disclaimer lines) -> :func:`data.loaders.load_cboe_index`;
* ``yahoo``: a Yahoo ``Date,Open,High,Low,Close[,Adj Close],Volume`` download ->
  :func:`data.loaders.load_yahoo_ohlcv` (``adjust: total_return`` uses ``Adj Close``);
* ``csv``: any dated table, with a ``columns`` map (``{date: Day, close: Settle}``), ``sep``,
  ``decimal``, ``date_format`` and ``dayfirst`` -> :func:`data.loaders.load_columns`;
* ``parquet``: a Parquet file (a date column or index, ``columns`` map as for csv; needs
  pyarrow, the ``storage`` extra);
* ``cfe``: a folder of CFE per-contract VIX futures files -> the ``month``-th monthly contract's
  daily settle (1 = front month), validated by :mod:`data.cfe`;
* option chains: ``chain`` (a generic long chain: one row per trade date, expiry, call/put and
  strike, with a ``columns`` map), ``50etf``, ``gs``, ``spx_quotes`` (the layouts of
  :mod:`data.chains`): loaded into the chain schema and checked (crossed quotes, expiry before
  the trade date, text strikes);
* ``auto``: detected from the content (a folder of CFE files, a Parquet file, a chain's columns,
  Cboe's upper-case header, Yahoo's columns, else ``csv``); the detection is reported.

Every file goes through its loader's checks (dates parse, unique and sorted after reading a
newest-first file, numbers numeric, prices positive; each error names the file, line, column
and the fix). What a loader repairs under its documented policy (a dropped ``null`` row, a
chain's crossed quote) is a problem here: ``on_problem: stop`` (default) raises a
:class:`DataError` naming the dataset's config key, ``warn`` keeps the repaired data and returns
the messages as the run's notes. The spike/stale/gap checks (:mod:`data.quality`) follow, in
``engine.inputs.market``, for every price series alike.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from volbacktest.data import chains, loaders
from volbacktest.data.frames import user_frame
from volbacktest.engine.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    DataQualityWarning,
    require_extra,
)

PRICE_FORMATS = ("cboe", "yahoo", "csv", "parquet", "cfe")
CHAIN_FORMATS = ("chain", "50etf", "gs", "spx_quotes")
FORMATS = ("auto", *PRICE_FORMATS, *CHAIN_FORMATS)
# the vendor chain layouts of data.chains apply their documented ChainPolicy (drops and merges
# announced with counts): those repairs are the loader's policy, reported as notes, not stops
_POLICY_CHAINS = ("50etf", "gs", "spx_quotes")
CHAIN_KEYS = ("trade_date", "expiry", "cp", "strike")
CHAIN_VALUES = ("bid", "ask", "close", "settle", "underlying")
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class FileEntry:
    """One ``data.datasets`` entry, as the loaders need it (the config's model has the same
    fields; see ``engine.inputs.config.DatasetFile``)."""

    path: Path
    format: str = "auto"
    kind: str | None = None
    adjust: str = "none"
    columns: Mapping[str, str] = field(default_factory=dict)
    date_format: str | None = None
    dayfirst: bool = False
    sep: str = ","
    decimal: str = "."
    month: int = 1
    acknowledge: tuple = ()

    @classmethod
    def of(cls, entry) -> FileEntry:
        """A FileEntry from any object with these attributes (the config's model)."""
        if isinstance(entry, FileEntry):
            return entry
        names = cls.__dataclass_fields__
        return cls(**{n: getattr(entry, n) for n in names if hasattr(entry, n)})


@dataclass(frozen=True)
class Loaded:
    """A loaded user dataset: ``frame`` (prices, or a long chain), its format (``detected``
    says why, for ``auto``) and the loader's repairs (``repairs``, under ``on_problem: warn``)."""

    name: str
    frame: pd.DataFrame
    format: str
    detected: str = ""
    repairs: tuple[str, ...] = ()

    @property
    def is_chain(self) -> bool:
        return self.format in CHAIN_FORMATS


def _where(name: str, path: Path) -> str:
    return f"data.datasets.{name} ({path})"


def _first_lines(path: Path, n: int = 5) -> list[str]:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise DataError(
            f"{path.name}: a binary file, not a text table (give format: parquet for a Parquet "
            "file, or export the data as CSV)"
        )
    text = head.decode("utf-8-sig", errors="replace")
    return [line for line in text.splitlines() if line.strip()][:n]


def _check_text(path: Path) -> None:
    """An empty, header-only or binary text file is refused before any loader reads it."""
    lines = _first_lines(path, 2)
    if not lines:
        raise DataError(
            f"{path.name}: the file is empty; it needs a header line (e.g. Date,Close) and one "
            "data row per date"
        )
    if len(lines) == 1:
        raise DataError(
            f"{path.name}: only line 1 ({lines[0][:60]!r}) and no data rows; add one row per "
            "date below the header"
        )


def _detect_binary(path: Path) -> tuple[str, str] | None:
    """A CFE folder or a Parquet file, else None (a text file to sniff)."""
    if path.is_dir():
        if any(path.glob("CFE_*_VX.csv")):
            return "cfe", "a folder of CFE_<M><YY>_VX.csv files"
        raise DataError(
            f"{path}: a folder without CFE_<M><YY>_VX.csv files; give a file, or the folder "
            "of CFE per-contract files with format: cfe"
        )
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet", f"the {path.suffix} extension"
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet", "the Parquet magic bytes"
    return None


def _detect_chain(lines: list[str], names: set[str]) -> tuple[str, str] | None:
    """One of the option-chain layouts, from the first lines, else None."""
    if {"datadate", "optionsymbol", "expiration", "strike"} <= names:
        return "gs", "the GS vendor columns DataDate, OptionSymbol, Expiration, Strike"
    if lines[0].startswith("交易日期"):
        return "50etf", "the JoinQuant 50ETF option columns (交易日期, ...)"
    if len(lines) > 2 and "@" in lines[1] and lines[2].lower().startswith("calls"):
        return "spx_quotes", "a Cboe delayed quote table (spot, quote time, Calls/Puts header)"
    if {"trade_date", "expiry", "strike"} <= names:
        return "chain", "columns trade_date, expiry, strike"
    return None


def detect_format(path: Path) -> tuple[str, str]:
    """(format, the reason) for ``format: auto``."""
    found = _detect_binary(path)
    if found:
        return found
    _check_text(path)
    lines = _first_lines(path, 3)
    header = lines[0]
    if header.count(";") > header.count(","):
        raise DataError(
            f"{path.name}: line 1 is separated by ';' ({header[:60]!r}); give format: csv "
            "with sep: ';' (and decimal: ',' if numbers are written like 12,5)"
        )
    names = {loaders._normalise_name(tok) for tok in next(csv.reader([header]))}
    found = _detect_chain(lines, names)
    if found:
        return found
    if "cboe" in header.lower() or header.startswith("DATE,OPEN,HIGH,LOW,CLOSE"):
        return "cboe", "Cboe's header or disclaimer line"
    if {"date", "open", "high", "low", "close"} <= names:
        return "yahoo", "columns Date, Open, High, Low, Close"
    return "csv", "no known layout: generic dated table"


def _resolve(name: str, entry: FileEntry) -> tuple[str, str]:
    path = Path(entry.path)
    if not path.exists():
        raise DataNotFoundError(
            f"{_where(name, path)}: no such file or folder; fix data.datasets.{name}.path (a "
            "relative path is read from the config file's folder)"
        )
    if entry.format == "auto":  # detection checks a text file's content itself
        fmt, why = detect_format(path)
        return fmt, f"{name}: format auto -> {fmt} ({why})"
    fmt = entry.format
    if path.is_file() and fmt not in ("parquet", "cfe"):
        _check_text(path)
    return fmt, ""


def _parquet_frame(path: Path, columns: Mapping[str, str]) -> pd.DataFrame:
    pa = require_extra("pyarrow", "storage")
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({exc})") from None
    rename = {src: out for out, src in columns.items()}
    missing = [src for src in rename if src not in raw.columns]
    if missing:
        raise DataError(
            f"{path.name}: columns: {', '.join(repr(m) for m in missing)} not in the Parquet "
            f"schema (columns: {', '.join(map(str, raw.columns))}); name existing columns"
        )
    frame = raw.rename(columns=rename)
    if "close" not in frame.columns:
        raise DataError(
            f"{path.name}: the Parquet schema has no 'close' column (columns: "
            f"{', '.join(map(str, raw.columns))}); map one with columns: {{close: <column>}}"
        )
    keep = [c for c in frame.columns if c in (*loaders.STANDARD_COLUMNS, "date")]
    return frame[keep]


def _cfe_frame(path: Path, month: int) -> pd.DataFrame:
    from volbacktest.data import cfe
    from volbacktest.engine.calculators.futures_curve import futures_curve

    matrix = cfe.load_vx_settles(path, None)
    curve = futures_curve(matrix, cfe.matrix_sessions(matrix), n=month)
    frame = loaders.close_only_frame(curve.f(month).dropna())
    frame.attrs["source"] = str(path)
    return frame


def _chain_frame(path: Path, entry: FileEntry, name: str) -> pd.DataFrame:
    """A generic long chain with the checks the chain loaders' policy would repair."""
    table = loaders._read_table(path, sep=entry.sep)
    cols = {k: loaders._normalise_name(entry.columns.get(k, k)) for k in (*CHAIN_KEYS, "bid")}
    cols.update({k: loaders._normalise_name(entry.columns.get(k, k)) for k in CHAIN_VALUES})
    absent = [k for k in CHAIN_KEYS if cols[k] not in table.cells.columns]
    if absent:
        raise DataError(
            f"{table.label}: no column for {', '.join(absent)} (columns are "
            f"{', '.join(table.cells.columns)}); map them with columns: {{trade_date: ..., "
            "expiry: ..., cp: ..., strike: ...}"
        )

    def dates(key: str) -> pd.DatetimeIndex:
        return loaders.parse_dates(
            table.cells[cols[key]],
            date_format=entry.date_format,
            source=table.label,
            lines=table.lines,
            column=cols[key],
            ambiguous="day_first" if entry.dayfirst else "raise",
        )

    out = pd.DataFrame({"trade_date": dates("trade_date"), "expiry": dates("expiry")})
    cp = table.cells[cols["cp"]].str.strip().str.upper().str[:1]
    bad_cp = ~cp.isin(["C", "P"]).to_numpy()
    if bad_cp.any():
        raise DataError(
            f"{table.label}: column {cols['cp']!r} must say call/put (C, P, call, put): "
            f"{loaders._line_list(table.lines[bad_cp], table.cells[cols['cp']][bad_cp])}"
        )
    out["cp"] = cp.to_numpy()
    out["strike"] = loaders._numeric(table, cols["strike"])
    for key in CHAIN_VALUES:
        if cols[key] in table.cells.columns:
            out[key] = loaders._numeric(table, cols[key])
    lines = table.lines
    checks = [
        ("strike <= 0", ~(out["strike"] > 0).to_numpy(), "a strike must be a positive number"),
        (
            "expiry before the trade date",
            (out["expiry"] < out["trade_date"]).to_numpy(),
            "check the two date columns (swapped?) or delete the rows",
        ),
    ]
    if {"bid", "ask"} <= set(out.columns):
        crossed = (out["bid"] > out["ask"]).to_numpy()
        checks.append(("crossed quotes (bid > ask)", crossed, "fix the quotes or delete the rows"))
    for what, mask, fix in checks:
        if mask.any():
            raise DataError(
                f"{table.label}: {int(mask.sum())} row(s) with {what}: "
                f"{loaders._line_list(lines[mask])}; {fix}"
            )
    return chains._finish(out)


def _adjusted(frame: pd.DataFrame, entry: FileEntry) -> pd.DataFrame:
    return loaders.adjust_to_total_return(frame) if entry.adjust == "total_return" else frame


def _cboe(name: str, e: FileEntry) -> pd.DataFrame:
    return loaders.load_cboe_index(e.path, date_format=e.date_format, acknowledged=e.acknowledge)


def _yahoo(name: str, e: FileEntry) -> pd.DataFrame:
    frame = loaders.load_yahoo_ohlcv(e.path, date_format=e.date_format, acknowledged=e.acknowledge)
    return _adjusted(frame, e)


def _csv(name: str, e: FileEntry) -> pd.DataFrame:
    frame = loaders.load_columns(
        e.path,
        e.columns,
        sep=e.sep,
        decimal=e.decimal,
        date_format=e.date_format,
        dayfirst=e.dayfirst,
        acknowledged=e.acknowledge,
    )
    return _adjusted(frame, e)


def _parquet(name: str, e: FileEntry) -> pd.DataFrame:
    kind = "tradable" if e.kind == "tradable" else "signal"
    frame = user_frame(_parquet_frame(Path(e.path), e.columns), name, kind=kind)
    frame.attrs["source"] = str(e.path)
    return frame


_LOADERS = {
    "cboe": _cboe,
    "yahoo": _yahoo,
    "csv": _csv,
    "parquet": _parquet,
    "cfe": lambda name, e: _cfe_frame(Path(e.path), e.month),
    "chain": lambda name, e: _chain_frame(Path(e.path), e, name),
    "50etf": lambda name, e: chains.load_50etf_options(e.path),
    "gs": lambda name, e: chains.load_gs_options(e.path),
    "spx_quotes": lambda name, e: chains.load_spx_quote_table(e.path),
}


def _load_format(name: str, fmt: str, entry: FileEntry) -> pd.DataFrame:
    if fmt not in _LOADERS:
        raise ConfigError(
            f"data.datasets.{name}.format: {fmt!r} is not one of {', '.join(FORMATS)}"
        )
    return _LOADERS[fmt](name, entry)


def load_user_file(name: str, entry, on_problem: str = "stop") -> Loaded:
    """Load one ``data.datasets`` entry (see the module docstring). Errors are DataError /
    DataNotFoundError naming ``data.datasets.<name>``, the file and the fix."""
    entry = FileEntry.of(entry)
    path = Path(entry.path)
    fmt = entry.format
    try:
        fmt, detected = _resolve(name, entry)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataQualityWarning)
            frame = _load_format(name, fmt, entry)
    except DataNotFoundError:
        raise
    except (DataError, ConfigError) as exc:
        text = str(exc).replace("pass date_format=", f"set data.datasets.{name}.date_format: ")
        text = text.replace("or date_format=", "or date_format: ")
        raise type(exc)(f"{_where(name, path)}, format {fmt}: {text}") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{_where(name, path)}: not UTF-8 text (a binary or differently encoded file); "
            "export it as UTF-8 CSV or give format: parquet"
        ) from None
    repairs = []
    for w in caught:
        if issubclass(w.category, DataQualityWarning):
            repairs.append(f"{name}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if repairs and on_problem == "stop" and fmt not in _POLICY_CHAINS:
        raise DataError(
            f"{_where(name, path)}: "
            + "; ".join(r.removeprefix(f"{name}: ") for r in repairs)
            + f". Fix the file, or list the dates in data.datasets.{name}.acknowledge, or set "
            "data.on_problem: warn to go on (the repairs are then in the run's notes)"
        )
    if frame.empty:
        raise DataError(f"{_where(name, path)}: no data rows after reading; check the file")
    frame.attrs["format"] = fmt
    return Loaded(name, frame, fmt, detected, tuple(repairs))


def files_of(path: str | Path) -> list[Path]:
    """The file itself, or every file below a folder (a CFE folder), sorted."""
    path = Path(path)
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def files_signature(path: str | Path) -> tuple:
    """(path, mtime, size) of :func:`files_of` ``path``: a cache key that changes with the files."""
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files_of(path))


def file_digest(path: str | Path) -> dict:
    """Size and sha256 of a file, or of every file in a folder (sorted, hashed in order)."""
    files = files_of(path)
    digest = hashlib.sha256()
    size = 0
    for f in files:
        size += f.stat().st_size
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return {"path": str(path), "bytes": size, "sha256": digest.hexdigest(), "files": len(files)}


def date_range(frame: pd.DataFrame) -> tuple[str, str]:
    """First and last date of a price frame or a chain (``trade_date``)."""
    if "trade_date" in frame.columns:
        values = frame["trade_date"]
        return f"{values.min():%Y-%m-%d}", f"{values.max():%Y-%m-%d}"
    idx = frame.index
    return (f"{idx[0]:%Y-%m-%d}", f"{idx[-1]:%Y-%m-%d}") if len(idx) else ("", "")


__all__ = [
    "CHAIN_FORMATS",
    "FORMATS",
    "PRICE_FORMATS",
    "FileEntry",
    "Loaded",
    "date_range",
    "detect_format",
    "file_digest",
    "load_user_file",
]
