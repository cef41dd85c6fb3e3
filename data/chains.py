"""Option-chain loaders, validation and storage in the long chain schema.

Every loader returns one row per contract per trade date with the columns of the common chain
schema (``CHAIN_COLUMNS``): ``trade_date`` and ``expiry`` (``datetime64[ns]``, tz-naive,
normalised), ``cp`` ('C'/'P'), ``strike``, ``underlying`` and whichever price/greek columns the
source has (float64, NaN when absent), plus optional ``contract``, ``adjusted``, ``multiplier``
and ``settlement`` ('AM'/'PM').

Loading = parse -> :func:`validate_chain` (a frozen :class:`ChainReport` with counts and
examples of every problem) -> :func:`apply_policy` (the documented policy decides what is
dropped; every drop is announced with a :class:`~engine.errors.DataQualityWarning` giving the
counts) and records per year what it dropped and kept in ``chain.attrs["policy_report"]``
(:func:`policy_report`). Pass ``policy=None`` to a loader to get the raw parsed chain with
nothing dropped. Rows of different contracts are never averaged into one.

Sources (see the PROVENANCE.md beside each file):

* ``load_50etf_options``: JoinQuant 50ETF daily closes (Chinese headers) with the 510050
  unadjusted closes and the contract list;
* ``load_gs_options``: the GS end-of-day vendor file (header ``' DataDate'`` has a leading space);
* ``load_spx_quote_table``: the CBOE delayed quote table (3 header lines, call and put per row);
* ``load_whitepaper_2019`` / ``load_whitepaper_2009``: the Cboe white-paper worked examples.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.data.loaders import read_csv_checked
from volbacktest.engine.calculators.chain_rules import (
    ADJUSTED_MODES,
    PRICE_COLUMNS,
    AdjustedMode,
    adjusted_drop_mask,
    counts_by_period,
    sse_offgrid_strike,
)
from volbacktest.engine.errors import (
    DataError,
    DataNotFoundError,
    DataQualityWarning,
    require_extra,
)

logger = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = ("trade_date", "cp", "expiry", "strike")
# PRICE_COLUMNS ("bid", "ask", "last", "close", "settle", "prev_settle") lives with the pure
# chain rules in engine.calculators.chain_rules (the adjusted-contract rule needs it)
NUMERIC_COLUMNS: tuple[str, ...] = (
    "underlying",
    *PRICE_COLUMNS,
    "volume",
    "open_interest",
    "iv",
    "delta",
    "gamma",
    "theta",
    "vega",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("contract", "adjusted", "multiplier", "settlement")
CHAIN_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *NUMERIC_COLUMNS)

# 50ETF options: 10,000 ETF units per standard contract (SSE contract specification).
SSE_50ETF_MULTIPLIER = 10_000.0
# the SSE strike grid (sse_grid_step, sse_offgrid_strike) is in engine.calculators.chain_rules

_50ETF_COLUMNS = {
    "交易日期": "trade_date",
    "类型": "cp",
    "到期日期": "expiry",
    "执行价": "strike",
    "收盘价": "close",
}
_50ETF_CP = {"看涨": "C", "看跌": "P"}

_MAX_EXAMPLES = 5


# --------------------------------------------------------------------------------------------
# validation


@dataclass(frozen=True)
class IssueCount:
    """How many rows show one problem, with a few printable examples."""

    name: str
    count: int
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.name}: {self.count}"
        return head if not self.examples else f"{head} (e.g. {'; '.join(self.examples)})"


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`validate_chain`: sizes of the chain and every problem found.

    ``duplicates`` counts rows whose key (trade_date, cp, expiry, strike) occurs more than once;
    ``adjusted`` counts rows flagged as dividend-adjusted contracts (informational: whether
    they are used is a policy decision); ``nan_price`` counts rows with no usable price in any
    price column the chain has.
    """

    source: str
    n_rows: int
    n_dates: int
    n_expiries: int
    price_columns: tuple[str, ...]
    crossed: IssueCount
    negative: IssueCount
    expired: IssueCount
    duplicates: IssueCount
    adjusted: IssueCount
    nan_price: IssueCount
    extra: tuple[IssueCount, ...] = field(default=())

    @property
    def issues(self) -> tuple[IssueCount, ...]:
        return (
            self.crossed,
            self.negative,
            self.expired,
            self.duplicates,
            self.adjusted,
            self.nan_price,
            *self.extra,
        )

    @property
    def ok(self) -> bool:
        """True when nothing but (informational) adjusted contracts was found."""
        return all(i.count == 0 for i in self.issues if i.name != "adjusted")

    def summary(self) -> str:
        found = [str(i) for i in self.issues if i.count]
        body = "; ".join(found) if found else "no problems"
        return (
            f"{self.source}: {self.n_rows} rows, {self.n_dates} dates, {self.n_expiries} "
            f"expiries; {body}"
        )


def _row_label(df: pd.DataFrame, idx: np.ndarray, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    out = []
    for i in idx[:_MAX_EXAMPLES]:
        row = df.iloc[int(i)]
        parts = [
            f"row {int(i)}",
            f"{pd.Timestamp(row['trade_date']).date()}",
            f"{row['cp']}",
            f"exp {pd.Timestamp(row['expiry']).date()}",
            f"K={row['strike']:g}",
        ]
        parts += [f"{c}={row[c]:g}" for c in extra if c in df.columns and pd.notna(row[c])]
        out.append(" ".join(parts))
    return tuple(out)


def _issue(name: str, df: pd.DataFrame, mask: np.ndarray, extra: tuple[str, ...] = ()):
    idx = np.flatnonzero(mask)
    return IssueCount(name, int(idx.size), _row_label(df, idx, extra))


def _price_columns(df: pd.DataFrame) -> tuple[str, ...]:
    return tuple(c for c in PRICE_COLUMNS if c in df.columns)


def _masks(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean row masks for every validated problem (vectorised)."""
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"chain is missing key column(s) {missing}; a chain needs {list(KEY_COLUMNS)} "
            "(use a loader in data.chains or rename the columns)"
        )
    n = len(df)
    prices = _price_columns(df)
    if "bid" in df.columns and "ask" in df.columns:
        crossed = (df["bid"] > df["ask"]).to_numpy(dtype=bool, na_value=False)
    else:
        crossed = np.zeros(n, dtype=bool)
    negative = np.zeros(n, dtype=bool)
    usable = np.zeros(n, dtype=bool)
    for c in prices:
        v = df[c].to_numpy(dtype=float, na_value=np.nan)
        negative |= v < 0
        usable |= np.isfinite(v)
    # a two-sided quote with both sides NaN but a last/close is still priced; no price column
    # at all means every row is unpriced
    nan_price = ~usable
    expired = (df["expiry"] < df["trade_date"]).to_numpy(dtype=bool, na_value=False)
    duplicates = df.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
    if "adjusted" in df.columns:
        adjusted = df["adjusted"].to_numpy(dtype=bool, na_value=False)
    else:
        adjusted = np.zeros(n, dtype=bool)
    return {
        "crossed": crossed,
        "negative": negative,
        "expired": expired,
        "duplicates": duplicates,
        "adjusted": adjusted,
        "nan_price": nan_price,
    }


def validate_chain(df: pd.DataFrame, source: str = "chain") -> ChainReport:
    """Check a long-format chain; returns a :class:`ChainReport` (counts + examples).

    Checks (all vectorised): crossed quotes (bid > ask), negative prices in any price column,
    expiry before trade date, duplicate keys (trade_date, cp, expiry, strike), dividend-adjusted
    contracts (``adjusted`` column) and rows without any usable price. Nothing is changed.
    """
    m = _masks(df)
    report = ChainReport(
        source=source,
        n_rows=len(df),
        n_dates=int(df["trade_date"].nunique()),
        n_expiries=int(df["expiry"].nunique()),
        price_columns=_price_columns(df),
        crossed=_issue("crossed (bid > ask)", df, m["crossed"], ("bid", "ask")),
        negative=_issue("negative price", df, m["negative"], _price_columns(df)),
        expired=_issue("expiry before trade date", df, m["expired"]),
        duplicates=_issue("duplicate key", df, m["duplicates"], _price_columns(df)),
        adjusted=_issue("adjusted", df, m["adjusted"]),
        nan_price=_issue("no usable price", df, m["nan_price"]),
    )
    logger.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------------------------
# policy

DuplicateMode = Literal["keep_standard", "drop", "first", "error"]
DUPLICATE_MODES: tuple[str, ...] = ("keep_standard", "drop", "first", "error")
BadQuotes = Literal["stop", "drop", "warn"]
BAD_QUOTE_PROBLEMS: tuple[str, ...] = ("crossed", "negative", "expired")
BAD_QUOTES_FIX = (
    "command line: --bad-quotes drop (or warn); config: data.bad_quotes: drop; Python: "
    "policy=ChainPolicy(bad_quotes='drop')"
)


@dataclass(frozen=True)
class ChainPolicy:
    """What :func:`apply_policy` drops. Defaults are the house policy:

    * ``bad_quotes``: what happens to rows with a crossed quote, a negative price or an expiry
      before the trade date (errors in the file, not features of the market): ``"stop"`` (the
      default) raises a :class:`DataError` naming the file, the counts, the first rows and the
      fix; ``"drop"`` drops them as the ``drop_*`` flags below say, with a warning; ``"warn"``
      keeps them with a warning;
    * ``drop_crossed``: rows with bid > ask are dropped (no mid can be trusted);
    * ``drop_negative``: rows with a negative price are dropped;
    * ``drop_expired``: rows with expiry before the trade date are dropped;
    * ``drop_nan_price``: rows with no usable price are dropped (an unpriced series cannot
      enter a strip; for close-only data this is "not traded that day");
    * ``duplicates``: rows sharing a key (trade_date, cp, expiry, strike) are different
      contracts (the 50ETF file's 1,988 such keys, 2016-12 .. 2019-06, are a standard and a
      dividend-adjusted contract with the same rounded strike; the loader tells them apart by
      listing order, see :func:`load_50etf_options`). ``"keep_standard"`` (default) keeps the
      one standard row of a key whose other rows are flagged adjusted and drops every row of a
      key it cannot resolve (no price can be attributed to a contract); ``"drop"`` drops all
      rows of a duplicated key, ``"first"`` keeps the first, ``"error"`` raises. Prices of
      different contracts are never averaged;
    * ``adjusted``: dividend-adjusted contracts are kept (``"keep"``), dropped (``"drop"``),
      ``"standard_grid"`` (the ``sse_ivix`` rule): dropped for a (trade_date, expiry) that has
      at least three priced standard strikes, kept where it has fewer (the adjusted series are
      then the only strip), or ``"prefer_standard"``: dropped where a priced standard contract
      of the same (trade_date, expiry, cp) lies within half a strike step of the adjusted
      strike, kept where it fills a gap or extends the strike range.
    """

    drop_crossed: bool = True
    drop_negative: bool = True
    drop_expired: bool = True
    drop_nan_price: bool = True
    duplicates: DuplicateMode = "keep_standard"
    adjusted: AdjustedMode = "keep"
    bad_quotes: BadQuotes = "stop"

    def __post_init__(self) -> None:
        if self.bad_quotes not in ("stop", "drop", "warn"):
            raise DataError(
                f"bad_quotes={self.bad_quotes!r} is not a policy; use 'stop', 'drop' or 'warn'"
            )
        if self.duplicates not in DUPLICATE_MODES:
            hint = " (averaging different contracts is not a policy)" * (self.duplicates == "mean")
            raise DataError(
                f"duplicates={self.duplicates!r} is not a policy{hint}; use one of "
                f"{DUPLICATE_MODES}"
            )
        if self.adjusted not in ADJUSTED_MODES:
            raise DataError(
                f"adjusted={self.adjusted!r} is not a policy; use one of {ADJUSTED_MODES}"
            )


def _duplicate_drop_mask(df: pd.DataFrame, mode: DuplicateMode) -> np.ndarray:
    """Rows the duplicate-key policy removes (never merges: each row is one contract)."""
    dup = df.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
    if not dup.any() or mode == "drop":
        return dup
    if mode == "error":
        ex = _row_label(df, np.flatnonzero(dup))
        raise DataError(
            f"chain has {int(dup.sum())} rows with a duplicate key {list(KEY_COLUMNS)} (first: "
            f"{ex[0]}); pass duplicates='keep_standard'|'drop'|'first' or fix the file"
        )
    if mode == "first":
        return df.duplicated(list(KEY_COLUMNS), keep="first").to_numpy()
    # keep_standard: a key resolves when exactly one of its rows is a standard contract
    if "adjusted" in df.columns:
        standard = ~df["adjusted"].to_numpy(dtype=bool, na_value=False)
    else:
        standard = np.ones(len(df), dtype=bool)
    key = df.groupby(list(KEY_COLUMNS), sort=False).ngroup().to_numpy()
    n_standard = np.bincount(key, weights=standard.astype(float))[key]
    return dup & ~(standard & (n_standard == 1))


def policy_report(chain: pd.DataFrame) -> pd.DataFrame:
    """Per year, what the policy dropped and kept (``chain.attrs["policy_report"]``).

    Columns: ``first``/``last`` trade date and ``rows`` of the raw chain in that year, one
    ``dropped: <reason>`` column per rule that removed rows, ``kept: adjusted`` (adjusted
    contracts left in the chain) and ``kept`` (rows returned). Empty when the chain was not
    loaded through :func:`apply_policy`.
    """
    rows = chain.attrs.get("policy_report", [])
    return pd.DataFrame.from_records(rows, index="period") if rows else pd.DataFrame()


def apply_policy(
    df: pd.DataFrame,
    report: ChainReport | None = None,
    *,
    policy: ChainPolicy | None = None,
    **overrides: object,
) -> pd.DataFrame:
    """Drop what the policy says (see :class:`ChainPolicy`), warning with the counts.

    ``policy`` (default :class:`ChainPolicy`) may be overridden field by field, e.g.
    ``apply_policy(df, report, drop_crossed=False, adjusted="prefer_standard")``. ``report``
    (from :func:`validate_chain` on the same frame) only serves to check the frame matches; the
    masks are recomputed. A :class:`~engine.errors.DataQualityWarning` lists every count of
    dropped or merged rows; the returned chain is sorted by (trade_date, expiry, strike, cp).
    """
    base = policy if policy is not None else ChainPolicy()
    try:
        pol = ChainPolicy(**{**base.__dict__, **overrides})
    except TypeError as exc:
        raise DataError(
            f"apply_policy got an unknown option ({exc}); valid options: "
            f"{sorted(ChainPolicy.__dataclass_fields__)}"
        ) from None
    if report is not None and report.n_rows != len(df):
        raise DataError(
            f"report from {report.source!r} describes {report.n_rows} rows but the chain has "
            f"{len(df)}; call validate_chain on this frame first"
        )
    m = _masks(df)
    source = report.source if report is not None else "chain"
    kept = _bad_quotes(df, m, pol.bad_quotes, source)
    drop = np.zeros(len(df), dtype=bool)
    masks: dict[str, np.ndarray] = {}
    for name, flag in (
        ("crossed", pol.drop_crossed and not kept),
        ("negative", pol.drop_negative and not kept),
        ("expired", pol.drop_expired and not kept),
        ("nan_price", pol.drop_nan_price),
    ):
        if flag and m[name].any():
            masks[name] = m[name] & ~drop
            drop |= m[name]
    # ambiguous keys first: an adjusted row hidden behind a standard key is not a strike
    # the adjusted rule could judge
    dup = np.zeros(len(df), dtype=bool)
    dup[~drop] = _duplicate_drop_mask(df.loc[~drop], pol.duplicates)
    if dup.any():
        masks[f"duplicate key ({pol.duplicates})"] = dup
        drop |= dup
    adj = adjusted_drop_mask(df, pol.adjusted) & ~drop
    if adj.any():
        masks[f"adjusted ({pol.adjusted})"] = adj
        drop |= adj
    counts = {k: int(v.sum()) for k, v in masks.items()}
    out = df.loc[~drop]
    kept_adj = m["adjusted"] & ~drop
    report_masks = {f"dropped: {k}": v for k, v in masks.items()}
    report_masks |= {"kept: adjusted": kept_adj, "kept": ~drop}
    by_year = counts_by_period(df["trade_date"].to_numpy(), report_masks, "Y")
    note = None
    if counts:
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        note = f"{source}: policy removed {len(df) - len(out)} of {len(df)} rows ({detail})"
        warnings.warn(
            DataQualityWarning(
                f"{note}; pass policy=None to the loader (or other ChainPolicy options) to "
                "change this"
            ),
            stacklevel=2,
        )
    out = _finish(out)
    out.attrs["policy_note"] = note  # the run's notes count every dropped row
    # plain records, not a frame: pandas compares attrs when concatenating
    out.attrs["policy_report"] = by_year.reset_index().to_dict("records")
    return out


def _bad_quotes(df: pd.DataFrame, masks: dict, mode: BadQuotes, source: str) -> bool:
    """Apply the ``bad_quotes`` policy: raise (``stop``), warn and keep (``warn``, returns
    True) or leave the rows to the ``drop_*`` flags (``drop``, returns False)."""
    bad = {k: masks[k] for k in BAD_QUOTE_PROBLEMS if masks[k].any()}
    if not bad or mode == "drop":
        return False
    extra = {"crossed": ("bid", "ask"), "negative": _price_columns(df), "expired": ()}
    names = {
        "crossed": "crossed quotes (bid > ask)",
        "negative": "negative prices",
        "expired": "expiry before the trade date",
    }
    parts = []
    for k, mask in bad.items():
        ex = _row_label(df, np.flatnonzero(mask), extra[k])
        parts.append(f"{int(mask.sum())} rows with {names[k]} (first: {ex[0]})")
    text = f"{source}: {'; '.join(parts)}"
    if mode == "stop":
        raise DataError(f"{text}; fix the file, or drop those rows ({BAD_QUOTES_FIX})")
    warnings.warn(DataQualityWarning(f"{text}; kept (bad_quotes='warn')"), stacklevel=3)
    return True


# --------------------------------------------------------------------------------------------
# helpers shared by the loaders


def _check_file(path: str | Path, what: str = "chain file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{what} {p} not found; pass the path to an existing file")
    return p


def numeric_column(
    values: pd.Series, path: Path, column: str, lines: np.ndarray | None = None
) -> np.ndarray:
    """A column as float64: empty cells are NaN, text such as ``'1,075'`` or ``'abc'`` is a
    :class:`DataError` naming the file, the line, the column and the value (never a silent
    NaN, never a bare ``could not convert string to float``). ``lines`` are the file's line
    numbers of the values (default: a header on line 1, one row a line)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    text = values.astype("string").str.strip()
    empty = text.isna() | text.eq("")
    parsed = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = (parsed.isna() & ~empty).to_numpy(dtype=bool)
    if bad.any():
        i = np.flatnonzero(bad)
        at = np.arange(len(values)) + 2 if lines is None else np.asarray(lines)
        shown = ", ".join(f"line {int(at[j])} {values.iloc[j]!r}" for j in i[:3])
        raise DataError(
            f"{path}: column {column!r} has {i.size} non-numeric value(s) ({shown}); write "
            "plain numbers (no thousands separators or text) or delete those rows"
        )
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Schema dtypes, column order (schema first) and a stable sort."""
    out = df.copy()
    for c in ("trade_date", "expiry"):
        out[c] = pd.to_datetime(out[c]).dt.normalize().astype("datetime64[ns]")
    out["strike"] = out["strike"].astype("float64")
    for c in NUMERIC_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
        out[c] = out[c].astype("float64")
    if "adjusted" in out.columns:
        out["adjusted"] = out["adjusted"].astype(bool)
    first = [c for c in CHAIN_COLUMNS]
    rest = [c for c in out.columns if c not in first]
    out = out[first + rest]
    return out.sort_values(["trade_date", "expiry", "strike", "cp"], kind="stable").reset_index(
        drop=True
    )


def _load(
    df: pd.DataFrame, source: str, policy: ChainPolicy | None, stacklevel: int = 3
) -> pd.DataFrame:
    df = _finish(df)
    report = validate_chain(df, source=source)
    if policy is None:
        return df
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = apply_policy(df, report, policy=policy)
    for w in caught:
        warnings.warn(w.message, stacklevel=stacklevel)
    return out


def _parse_dates(s: pd.Series, fmt: str | None, path: Path, column: str) -> pd.Series:
    out = pd.to_datetime(s, format=fmt, errors="coerce")
    bad = out.isna() & s.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: column {column!r} row {i} has an unparseable date {s.iloc[i]!r} "
            f"(expected {fmt or 'a date'}); fix the file"
        )
    return out


# --------------------------------------------------------------------------------------------
# 50ETF


def load_underlying_close(path: str | Path) -> pd.Series:
    """Daily close of the 510050 unadjusted file (``datetime,...,close,...``) by trade date."""
    p = _check_file(path, "underlying file")
    raw = read_csv_checked(p)
    for c in ("datetime", "close"):
        if c not in raw.columns:
            raise DataError(
                f"{p}: no column {c!r} (found {list(raw.columns)}); expected the 510050 "
                "unadjusted daily file with header datetime,open,high,low,close,..."
            )
    dates = _parse_dates(raw["datetime"], "%Y-%m-%d", p, "datetime")
    s = pd.Series(
        numeric_column(raw["close"], p, "close"),
        index=pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="trade_date"),
        name="underlying",
    )
    if s.index.has_duplicates:
        raise DataError(f"{p}: duplicate dates, e.g. {s.index[s.index.duplicated()][0].date()}")
    return s.sort_index()


def load_50etf_contracts(path: str | Path) -> pd.DataFrame:
    """The zhenfelix contract list: contract, cp, expiry, strike, adjusted, list_date.

    ``display_name`` like ``50ETF购3月2200`` (购 = call, 沽 = put; strike in thousandths of CNY;
    a trailing ``A`` marks a dividend-adjusted contract); ``end_date`` is the expiry.
    """
    p = _check_file(path, "contract list")
    raw = read_csv_checked(p)
    raw = raw.rename(columns={raw.columns[0]: "contract"})
    for c in ("display_name", "start_date", "end_date"):
        if c not in raw.columns:
            raise DataError(f"{p}: no column {c!r}; expected the 50ETF contract list layout")
    parts = raw["display_name"].str.extract(r"^50ETF(购|沽)(\d{1,2})月(\d+)(A?)$")
    bad = parts[0].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{p}: row {i} display_name {raw['display_name'].iloc[i]!r} is not like "
            "'50ETF购3月2200[A]'; fix the file"
        )
    out = pd.DataFrame(
        {
            "contract": raw["contract"].astype(str),
            "cp": parts[0].map({"购": "C", "沽": "P"}),
            "expiry": _parse_dates(raw["end_date"], "%Y-%m-%d", p, "end_date"),
            "strike": parts[2].astype(int) / 1000.0,
            "adjusted": parts[3].eq("A").to_numpy(),
            "list_date": _parse_dates(raw["start_date"], "%Y-%m-%d", p, "start_date"),
        }
    )
    for c in ("expiry", "list_date"):
        out[c] = out[c].astype("datetime64[ns]")
    return out


def _join_contracts(df: pd.DataFrame, contracts: pd.DataFrame) -> pd.DataFrame:
    """Attach ``contract`` and refine ``adjusted`` from the list, by (cp, expiry, strike).

    A key listed both as a standard and as an adjusted contract keeps the flag it has (from
    the strike and the file's listing order, :func:`_listing_order_twins`) and no contract code.
    """
    c = contracts.assign(strike_milli=np.rint(contracts["strike"] * 1000).astype(np.int64))
    g = c.groupby(["cp", "expiry", "strike_milli"], sort=False)
    info = g.agg(n=("contract", "size"), any_adj=("adjusted", "any"), all_adj=("adjusted", "all"))
    info["code"] = g["contract"].first()
    info = info.reset_index()
    left = df.assign(strike_milli=np.rint(df["strike"] * 1000).astype(np.int64))
    merged = left.merge(info, on=["cp", "expiry", "strike_milli"], how="left", validate="m:1")
    listed = merged["n"].notna().to_numpy()
    unique = listed & (merged["n"].to_numpy(dtype=float, na_value=0.0) == 1)
    all_adj = merged["all_adj"].to_numpy(dtype=bool, na_value=False)
    any_adj = merged["any_adj"].to_numpy(dtype=bool, na_value=False)
    ambiguous = listed & any_adj & ~all_adj
    adjusted = np.where(listed & ~ambiguous, all_adj, df["adjusted"].to_numpy(dtype=bool))
    out = df.copy()
    out["adjusted"] = adjusted
    out["contract"] = pd.Series(
        np.where(unique, merged["code"].to_numpy(dtype=object), None), index=df.index, dtype="str"
    )
    n_unlisted = int((~listed).sum())
    if n_unlisted:
        logger.info("50ETF: %d rows not in the contract list (flag from the strike)", n_unlisted)
    return out


def _listing_order_twins(df: pd.DataFrame) -> np.ndarray:
    """Rows of a repeated (trade_date, cp, expiry, strike) key other than its last in file
    order: the earlier-listed contracts, i.e. the dividend-adjusted twins.

    The JoinQuant file lists each date's contracts in contract-code (= listing) order (checked
    against the zhenfelix contract list: no violation in 4,508 (date, call/put) groups). A
    standard contract whose rounded strike equals an adjusted one's must have been listed
    after the ex-dividend date (one listed before would have been adjusted too), so the last
    row of a repeated key is the standard contract and the earlier rows are adjusted ones
    (1,988 of 1,988 keys agree with the list's "A" flags: tests/test_chains.py).
    """
    return df.duplicated(list(KEY_COLUMNS), keep="last").to_numpy()


def load_50etf_options(
    path: str | Path,
    underlying_path: str | Path | None = None,
    contracts_path: str | Path | None = None,
    policy: ChainPolicy | None = ChainPolicy(),  # noqa: B008 - frozen, immutable default
) -> pd.DataFrame:
    """Load the JoinQuant 50ETF daily option closes into the chain schema.

    Columns ``交易日期, 类型, 到期日期, 执行价, 收盘价`` -> trade_date, cp (看涨 = 'C',
    看跌 = 'P'), expiry, strike (CNY), close (CNY per ETF unit). ``underlying`` is the 510050
    unadjusted close from ``underlying_path`` (NaN with a warning when not given or missing a
    date). ``adjusted`` is True for strikes off the SSE grid (3 decimals such as 2.006, or
    2-decimal ones such as 2.46), for the earlier rows of a repeated key (the adjusted twin of
    a standard contract with the same rounded strike, told apart by the file's listing order:
    :func:`_listing_order_twins`) and, when ``contracts_path`` is given, for keys the contract
    list only knows as "A" contracts (that also sets ``contract``). ``multiplier`` is 10,000 for
    standard contracts and NaN for adjusted ones (their unit is not in this source).
    ``policy`` (see :class:`ChainPolicy`) decides what is dropped; ``None`` returns the raw rows.
    """
    p = _check_file(path)
    raw = read_csv_checked(p)
    missing = [c for c in _50ETF_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{p}: missing column(s) {missing} (found {list(raw.columns)}); expected the "
            "JoinQuant 50ETF layout 交易日期,类型,到期日期,执行价,收盘价"
        )
    df = raw[list(_50ETF_COLUMNS)].rename(columns=_50ETF_COLUMNS)
    cp = df["cp"].map(_50ETF_CP)
    if cp.isna().any():
        i = int(np.flatnonzero(cp.isna().to_numpy())[0])
        raise DataError(
            f"{p}: row {i} column '类型' is {df['cp'].iloc[i]!r}, expected 看涨 or 看跌"
        )
    df = df.assign(
        cp=cp,
        trade_date=_parse_dates(df["trade_date"], "%Y-%m-%d", p, "交易日期"),
        expiry=_parse_dates(df["expiry"], "%Y-%m-%d", p, "到期日期"),
        strike=numeric_column(df["strike"], p, "执行价"),
        close=numeric_column(df["close"], p, "收盘价"),
    )
    df["trade_date"] = df["trade_date"].astype("datetime64[ns]")
    df["expiry"] = df["expiry"].astype("datetime64[ns]")
    df["adjusted"] = sse_offgrid_strike(df["strike"]) | _listing_order_twins(df)
    if contracts_path is not None:
        df = _join_contracts(df, load_50etf_contracts(contracts_path))
    df["multiplier"] = np.where(df["adjusted"], np.nan, SSE_50ETF_MULTIPLIER)
    df["settlement"] = "PM"
    if underlying_path is not None:
        close = load_underlying_close(underlying_path)
        df["underlying"] = close.reindex(pd.DatetimeIndex(df["trade_date"])).to_numpy()
        n_missing = int(df["underlying"].isna().sum())
        if n_missing:
            dates = df.loc[df["underlying"].isna(), "trade_date"].dt.date.unique()[:3]
            warnings.warn(
                DataQualityWarning(
                    f"{underlying_path}: no close for {n_missing} option rows (dates "
                    f"{list(map(str, dates))}); underlying left NaN there"
                ),
                stacklevel=2,
            )
    return _load(df, f"50ETF options {p.name}", policy)


# --------------------------------------------------------------------------------------------
# US chains

_GS_COLUMNS = {
    "UnderlyingPrice": "underlying",
    "OptionSymbol": "contract",
    "Type": "cp",
    "Expiration": "expiry",
    "DataDate": "trade_date",
    "Strike": "strike",
    "Last": "last",
    "Bid": "bid",
    "Ask": "ask",
    "Volume": "volume",
    "OpenInterest": "open_interest",
    "T1OpenInterest": "open_interest_next",
    "IVMean": "iv",
    "IVBid": "iv_bid",
    "IVAsk": "iv_ask",
    "Delta": "delta",
    "Gamma": "gamma",
    "Theta": "theta",
    "Vega": "vega",
}


def load_gs_options(
    path: str | Path,
    policy: ChainPolicy | None = ChainPolicy(),  # noqa: B008 - frozen, immutable default
) -> pd.DataFrame:
    """Load the GS end-of-day vendor file (historicaloptiondata-style layout).

    Header names are stripped (the file has ``' DataDate'`` with a leading space); dates are
    MM/DD/YYYY; ``Type`` call/put -> 'C'/'P'; IVs are decimals already (``iv`` = IVMean, plus
    ``iv_bid``/``iv_ask``); ``T1OpenInterest`` -> ``open_interest_next``. US equity options are
    PM-settled (``settlement='PM'``), multiplier 100.
    """
    p = _check_file(path)
    raw = read_csv_checked(p)
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in _GS_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{p}: missing column(s) {missing} (found {list(raw.columns)})")
    df = raw[list(_GS_COLUMNS)].rename(columns=_GS_COLUMNS)
    cp = df["cp"].str.strip().str.lower().map({"call": "C", "put": "P"})
    if cp.isna().any():
        i = int(np.flatnonzero(cp.isna().to_numpy())[0])
        raise DataError(f"{p}: row {i} column 'Type' is {df['cp'].iloc[i]!r}, expected call/put")
    df = df.assign(
        cp=cp,
        trade_date=_parse_dates(df["trade_date"], "%m/%d/%Y", p, " DataDate"),
        expiry=_parse_dates(df["expiry"], "%m/%d/%Y", p, "Expiration"),
        contract=df["contract"].astype(str),
        settlement="PM",
        multiplier=100.0,
    )
    for c in ("underlying", "strike", "last", "bid", "ask", "volume", "open_interest"):
        df[c] = numeric_column(df[c], p, {v: k for k, v in _GS_COLUMNS.items()}[c])
    df["open_interest_next"] = numeric_column(df["open_interest_next"], p, "T1OpenInterest")
    return _load(df, f"GS options {p.name}", policy)


# CBOE option symbol: root, 2-digit year, 2-digit day, month letter, strike, e.g. SPXW1128A1075.
# Month letters A-L are January-December calls, M-X January-December puts (OCC/CBOE OSI-era
# root symbology used on the delayed quote pages).
_CBOE_SYMBOL = re.compile(r"^(?P<root>[A-Z]+?)(?P<yy>\d{2})(?P<dd>\d{2})(?P<m>[A-X])(?P<k>[\d.]+)")
_DESC = re.compile(
    r"^\s*(?P<yy>\d{2}) (?P<mon>[A-Z][a-z]{2}) (?P<strike>[\d.]+) \((?P<sym>[^)]+)\)"
)
# AM-settled standard SPX: the code carries the Saturday after the last trading day; the
# options stop trading and settle (SOQ, 9:30 ET) on the Friday before.
_AM_ROOTS = frozenset({"SPX"})


def decode_cboe_symbol(symbol: str) -> tuple[str, pd.Timestamp, str, float, str]:
    """Decode e.g. ``SPXW1128A1075-E`` -> (root, expiry, cp, strike, settlement).

    Standard ``SPX`` roots are A.M.-settled and their code holds the Saturday date: the expiry
    is the preceding Friday. ``SPXW``/``SPXPM`` (and other roots) are P.M.-settled on the coded
    date.
    """
    m = _CBOE_SYMBOL.match(symbol.strip())
    if m is None:
        raise DataError(f"option symbol {symbol!r} is not ROOT+YY+DD+month letter+strike")
    letter = ord(m["m"]) - ord("A")
    cp = "C" if letter < 12 else "P"
    month = letter % 12 + 1
    try:
        coded = pd.Timestamp(year=2000 + int(m["yy"]), month=month, day=int(m["dd"]))
    except ValueError as exc:
        raise DataError(f"option symbol {symbol!r} encodes an invalid date ({exc})") from None
    root = m["root"]
    if root in _AM_ROOTS:
        settlement = "AM"
        expiry = coded - pd.Timedelta(days=1) if coded.day_of_week == 5 else coded
    else:
        settlement = "PM"
        expiry = coded
    return root, expiry, cp, float(m["k"]), settlement


def load_spx_quote_table(
    path: str | Path,
    policy: ChainPolicy | None = ChainPolicy(),  # noqa: B008 - frozen, immutable default
) -> pd.DataFrame:
    """Load a CBOE delayed quote table (SPX, 3 header lines; a call and a put per row).

    Line 1 holds the spot (``underlying``), line 2 the quote time (``Jan 24 2011 @ 14:03 ET``,
    kept as ``df.attrs['quote_time']``, tz-aware America/New_York), line 3 the header. Each
    description such as ``11 Jan 1075.00 (SPXW1128A1075-E)`` gives the strike and a symbol
    decoded by :func:`decode_cboe_symbol` (root, expiry, call/put, AM/PM settlement); the
    call/put letter is checked against the side of the table.
    """
    p = _check_file(path)
    try:
        with p.open(encoding="utf-8") as fh:
            line1, line2 = fh.readline(), fh.readline()
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not a UTF-8 text file ({exc.reason}); check the file") from None
    try:
        spot = float(line1.split(",")[1])
        when = line2.split(",")[0].replace(" ET", "").strip()
        quote_time = pd.to_datetime(when, format="%b %d %Y @ %H:%M").tz_localize("America/New_York")
    except (IndexError, ValueError) as exc:
        raise DataError(
            f"{p}: lines 1-2 should be 'ROOT (NAME),spot,change,' and 'Mon DD YYYY @ HH:MM ET' "
            f"({exc})"
        ) from None
    raw = read_csv_checked(p, skiprows=2, header=None, dtype=str, skip_blank_lines=True)
    if raw.shape[1] < 14:
        raise DataError(f"{p}: expected 14 columns (call + put block), found {raw.shape[1]}")
    sides = []
    names = ["desc", "last", "net_change", "bid", "ask", "volume", "open_interest"]
    body = raw.iloc[1:]  # row 0 is the 'Calls,Last Sale,...' header
    for offset, side in ((0, "C"), (7, "P")):
        part = body.iloc[:, offset : offset + 7].copy()
        part.columns = names
        sides.append(part.assign(side=side, line=np.arange(4, 4 + len(part))))
    long = pd.concat(sides, ignore_index=True)
    desc = long["desc"].str.extract(_DESC)
    bad = desc["sym"].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{p}: line {long['line'].iloc[i]} description {long['desc'].iloc[i]!r} is not like "
            "'11 Jan 1075.00 (SPXW1128A1075-E)'"
        )
    decoded = [decode_cboe_symbol(s) for s in desc["sym"]]
    root, expiry, cp, _k, settlement = (list(x) for x in zip(*decoded, strict=True))
    mismatch = np.asarray(cp) != long["side"].to_numpy()
    if mismatch.any():
        i = int(np.flatnonzero(mismatch)[0])
        raise DataError(
            f"{p}: line {long['line'].iloc[i]} symbol {desc['sym'].iloc[i]} is a "
            f"{'call' if cp[i] == 'C' else 'put'} but stands in the "
            f"{'call' if long['side'].iloc[i] == 'C' else 'put'} block"
        )
    df = pd.DataFrame(
        {
            "trade_date": quote_time.tz_localize(None).normalize(),
            "cp": cp,
            "expiry": pd.DatetimeIndex(expiry),
            "strike": desc["strike"].astype(float).to_numpy(),
            "underlying": spot,
            "root": root,
            "contract": desc["sym"].to_numpy(),
            "settlement": settlement,
            "multiplier": 100.0,
        }
    )
    for c in ("last", "net_change", "bid", "ask", "volume", "open_interest"):
        df[c] = numeric_column(long[c], p, c, lines=long["line"].to_numpy())
    out = _load(df, f"SPX quote table {p.name}", policy)
    out.attrs["quote_time"] = quote_time
    return out


# --------------------------------------------------------------------------------------------
# Cboe white-paper examples


@dataclass(frozen=True)
class WhitePaperExample:
    """A white-paper worked example: the two-term chain and the paper's parameters.

    ``chain`` is in the chain schema with a hypothetical ``trade_date`` (the papers give days
    to expiry, not dates); ``rates_cc`` maps expiry -> continuously compounded decimal rate;
    ``valuation_time`` is tz-aware America/New_York; ``params`` holds the paper's published
    values (for goldens) as parsed from the source.
    """

    chain: pd.DataFrame
    rates_cc: Mapping[pd.Timestamp, float]
    valuation_time: pd.Timestamp
    params: Mapping[str, object]


def _wide_to_long(wide: pd.DataFrame, trade_date, expiry, settlement: str) -> pd.DataFrame:
    """Strike rows with call_bid/call_ask/put_bid/put_ask -> long chain rows."""
    parts = []
    for cp, pre in (("C", "call"), ("P", "put")):
        parts.append(
            pd.DataFrame(
                {
                    "trade_date": trade_date,
                    "cp": cp,
                    "expiry": expiry,
                    "strike": wide["strike"].to_numpy(dtype=float),
                    "bid": wide[f"{pre}_bid"].to_numpy(dtype=float),
                    "ask": wide[f"{pre}_ask"].to_numpy(dtype=float),
                    "settlement": settlement,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# The 2019 paper's example is hypothetical and gives minutes, not dates: it is computed at
# 9:46 a.m. Chicago time (854 minutes to midnight; settlement 8:30 a.m. CT = 9:30 ET for the
# A.M.-settled near term (510 minutes), 3:00 p.m. CT = 4:00 p.m. ET for the P.M.-settled weeklys
# (900 minutes)). We place it on a January date (no DST change in the window) at 10:46 ET.
WHITEPAPER_2019_TRADE_DATE = pd.Timestamp("2018-01-02")
WHITEPAPER_2019_VALUATION = pd.Timestamp("2018-01-02 10:46", tz="America/New_York")


def _read_csv_checked(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DataNotFoundError(f"{path} not found; pass the vix_whitepaper_example folder")
    raw = pd.read_csv(path)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (found {list(raw.columns)})")
    return raw


def load_whitepaper_2019(folder: str | Path) -> WhitePaperExample:
    """The 2019 Cboe white paper example (Appendix 1 tables + parameters JSON).

    Near term: standard SPX, A.M.-settled, 25 days; next term: SPX Weeklys, P.M.-settled,
    32 days; rates R1 = 0.000305, R2 = 0.000286 (decimals, continuously compounded).
    """
    folder = Path(folder)
    cols = ("strike", "call_bid", "call_ask", "put_bid", "put_ask")
    near = _read_csv_checked(folder / "whitepaper2019_appendix1_near_term.csv", cols)
    nxt = _read_csv_checked(folder / "whitepaper2019_appendix1_next_term.csv", cols)
    pfile = folder / "whitepaper2019_parameters.json"
    if not pfile.is_file():
        raise DataNotFoundError(f"{pfile} not found; pass the vix_whitepaper_example folder")
    params = json.loads(pfile.read_text(encoding="utf-8"))
    td = WHITEPAPER_2019_TRADE_DATE
    try:
        d1 = int(params["near_term"]["days_to_expiration"])
        d2 = int(params["next_term"]["days_to_expiration"])
        r1 = float(params["near_term"]["R"])
        r2 = float(params["next_term"]["R"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{pfile}: missing near_term/next_term days or R ({exc})") from None
    e1, e2 = td + pd.Timedelta(days=d1), td + pd.Timedelta(days=d2)
    chain = pd.concat(
        [_wide_to_long(near, td, e1, "AM"), _wide_to_long(nxt, td, e2, "PM")], ignore_index=True
    )
    return WhitePaperExample(
        chain=_load(chain, "white paper 2019", None),
        rates_cc={e1: r1, e2: r2},
        valuation_time=WHITEPAPER_2019_VALUATION,
        params=params,
    )


# The 2009 paper's example (transcribed by khrapovs/vix): near 9 days (expiry code 20090110,
# the Saturday after the last trading day), next 37 days; one yield 0.38 % for both. Days are
# given, so T = days / 365 and the trade date is placed 9 days before the near expiration date.
def load_whitepaper_2009(folder: str | Path) -> WhitePaperExample:
    """The 2009 Cboe white paper example (khrapovs/vix transcription of Appendix 1).

    ``Expiration`` (YYYYMMDD), ``Days`` (9 / 37), strike and call/put bid/ask; yields in percent
    (converted to decimals here). ``trade_date`` = expiration date - days of the near term;
    ``valuation_time`` is midnight of that date so that minutes = days x 1440.
    """
    folder = Path(folder)
    opts = _read_csv_checked(
        folder / "whitepaper2009_options__khrapovs.csv",
        ("Expiration", "Days", "Strike", "Call Bid", "Call Ask", "Put Bid", "Put Ask"),
    )
    ylds = _read_csv_checked(
        folder / "whitepaper2009_yields__khrapovs.csv", ("Date", "Days", "Rate")
    )
    opts = opts.rename(
        columns={
            "Strike": "strike",
            "Call Bid": "call_bid",
            "Call Ask": "call_ask",
            "Put Bid": "put_bid",
            "Put Ask": "put_ask",
        }
    )
    exp = pd.to_datetime(opts["Expiration"].astype(str), format="%Y%m%d")
    td = (exp - pd.to_timedelta(opts["Days"], unit="D")).unique()
    if len(td) != 1:
        raise DataError(f"{folder}: Expiration - Days gives several trade dates {list(td)}")
    trade_date = pd.Timestamp(td[0])
    parts = []
    rates: dict[pd.Timestamp, float] = {}
    rate_by_days = dict(
        zip(ylds["Days"].astype(int), ylds["Rate"].astype(float) / 100.0, strict=True)
    )
    for e, g in opts.groupby(exp, sort=True):
        e = pd.Timestamp(e)
        days = int((e - trade_date).days)
        if days not in rate_by_days:
            raise DataError(f"{folder}: no yield for {days} days (yields file has {rate_by_days})")
        rates[e] = rate_by_days[days]
        parts.append(_wide_to_long(g, trade_date, e, "AM"))
    params = {
        "days": sorted(int(d) for d in opts["Days"].unique()),
        "rate_percent": ylds["Rate"].astype(float).tolist(),
        "yields_date": str(ylds["Date"].iloc[0]),
    }
    return WhitePaperExample(
        chain=_load(pd.concat(parts, ignore_index=True), "white paper 2009", None),
        rates_cc=rates,
        valuation_time=trade_date.tz_localize("America/New_York"),
        params=params,
    )


# --------------------------------------------------------------------------------------------
# partitioned storage

PartitionBy = Literal["month", "date"]


def write_partitioned(df: pd.DataFrame, root: str | Path, by: PartitionBy = "month") -> Path:
    """Write a chain as Parquet partitioned by trade year-month (``ym=YYYY-MM``) or date.

    Appends/overwrites partitions under ``root`` (existing partitions for the same keys are
    replaced). Needs the ``storage`` extra (pyarrow).
    """
    pa = require_extra("pyarrow", "storage")
    pq = require_extra("pyarrow.parquet", "storage")
    if by not in ("month", "date"):
        raise DataError(f"by={by!r}: partition by 'month' or 'date'")
    root = Path(root)
    key = "ym" if by == "month" else "td"
    fmt = "%Y-%m" if by == "month" else "%Y-%m-%d"
    part = df.assign(**{key: df["trade_date"].dt.strftime(fmt)})
    table = pa.Table.from_pandas(part, preserve_index=False)
    pq.write_to_dataset(
        table,
        root_path=str(root),
        partition_cols=[key],
        existing_data_behavior="delete_matching",
    )
    return root


def read_partitioned(
    root: str | Path,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Read the trade dates ``start..end`` (inclusive) of a chain written by write_partitioned.

    Only the partitions that can hold those dates are opened (partition pruning on the
    ``ym``/``td`` key, then a row filter on ``trade_date``).
    """
    require_extra("pyarrow", "storage")
    ds = require_extra("pyarrow.dataset", "storage")
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"partitioned chain {root} not found; write it first")
    key = "ym" if any(p.name.startswith("ym=") for p in root.iterdir()) else "td"
    fmt = "%Y-%m" if key == "ym" else "%Y-%m-%d"
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    filt = None
    lo = pd.Timestamp(start) if start is not None else None
    hi = pd.Timestamp(end) if end is not None else None
    if lo is not None:
        filt = ds.field(key) >= lo.strftime(fmt)
    if hi is not None:
        f2 = ds.field(key) <= hi.strftime(fmt)
        filt = f2 if filt is None else filt & f2
    table = dataset.to_table(filter=filt, columns=None if columns is None else [*columns, key])
    out = table.to_pandas().drop(columns=[key])
    for c in ("trade_date", "expiry"):
        if c in out.columns:
            out[c] = out[c].astype("datetime64[ns]")
    if lo is not None:
        out = out.loc[out["trade_date"] >= lo]
    if hi is not None:
        out = out.loc[out["trade_date"] <= hi]
    sort = [c for c in ("trade_date", "expiry", "strike", "cp") if c in out.columns]
    return out.sort_values(sort, kind="stable").reset_index(drop=True)
