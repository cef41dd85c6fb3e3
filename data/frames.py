"""A user's own DataFrame or Series as a dataset, checked as the file loaders check files.

``volbacktest.run(config, data={"vix": frame, ...})`` and ``Market.from_frames`` take pandas
objects instead of files. Each goes through :func:`user_frame`: dates (a ``DatetimeIndex`` or a
``date`` column) parse, are unique and oldest first (a newest-first frame is reversed), prices are
numbers, finite, and positive for a tradable instrument. Every problem raises a
:class:`~volbacktest.engine.errors.DataError` naming the dataset, the column, the first bad rows
and the fix. The result has the loaders' columns (``open, high, low, close, volume``, float64,
NaN where the user gave none) on a ``date`` index.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.data.loaders import STANDARD_COLUMNS, finish_frame
from volbacktest.engine.errors import DataError

Kind = Literal["tradable", "signal"]
PRICE_COLUMNS = ("open", "high", "low", "close")
_SHOWN = 3  # bad rows named in a message


def _rows(index: pd.Index, mask: np.ndarray) -> str:
    where = np.flatnonzero(mask)
    shown = ", ".join(f"row {i} ({_label(index[i])})" for i in where[:_SHOWN])
    more = f" and {len(where) - _SHOWN} more" if len(where) > _SHOWN else ""
    return shown + more


def _label(value) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, pd.Timestamp) else str(value)


def _date_index(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` on a DatetimeIndex: its own, its ``date`` column, or its index parsed."""
    if not isinstance(frame.index, pd.DatetimeIndex) and "date" in frame.columns:
        frame = frame.set_index("date")
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame
    try:
        if pd.api.types.is_numeric_dtype(frame.index):  # e.g. a RangeIndex after reset_index()
            raise TypeError
        return frame.set_axis(pd.to_datetime(frame.index, errors="raise", format="ISO8601"))
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: the index is not dates (got {type(frame.index).__name__}, first "
            f"value {_label(frame.index[0]) if len(frame) else 'none'}); give a "
            "DatetimeIndex or a 'date' column of YYYY-MM-DD dates"
        ) from None


def _dates(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    frame = _date_index(frame, where)
    index = frame.index
    if index.tz is not None:
        raise DataError(
            f"{where}: dates carry a time zone ({index.tz}); daily bars are dated by session: "
            "pass frame.tz_localize(None)"
        )
    if index.isna().any():
        raise DataError(f"{where}: {_rows(index, index.isna())} have no date; drop those rows")
    frame = frame.set_axis(index.normalize().as_unit("ns"))
    if frame.index.is_monotonic_decreasing and len(frame) > 1:
        frame = frame.iloc[::-1]
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        days = sorted({f"{d:%Y-%m-%d}" for d in frame.index[dup]})
        raise DataError(
            f"{where}: {len(days)} duplicate date(s): {', '.join(days[:_SHOWN])}"
            f"{' ...' if len(days) > _SHOWN else ''}; keep one row per date "
            "(frame[~frame.index.duplicated()])"
        )
    if not frame.index.is_monotonic_increasing:
        back = np.flatnonzero(np.diff(frame.index.asi8) < 0)[0]
        raise DataError(
            f"{where}: dates are out of order ({_label(frame.index[back])} is followed by "
            f"{_label(frame.index[back + 1])}); sort them with frame.sort_index()"
        )
    return frame


def _column(frame: pd.DataFrame, col: str, where: str, kind: Kind) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce")
    text = values.isna().to_numpy() & frame[col].notna().to_numpy()
    if text.any():
        raise DataError(
            f"{where}: column {col!r} has values that are not numbers at "
            f"{_rows(frame.index, text)}; fix or drop those rows"
        )
    v = values.to_numpy(dtype=np.float64)
    if np.isinf(v).any():
        raise DataError(f"{where}: column {col!r} is infinite at {_rows(frame.index, np.isinf(v))}")
    if kind == "tradable" and col in PRICE_COLUMNS:
        bad = v <= 0
        if bad.any():
            raise DataError(
                f"{where}: column {col!r} has {int(bad.sum())} price(s) <= 0 at "
                f"{_rows(frame.index, bad)}; a traded price must be positive"
            )
    return v


def user_frame(obj: pd.DataFrame | pd.Series, name: str, *, kind: Kind) -> pd.DataFrame:
    """``obj`` (a frame with a ``close`` column, or a Series of closes) as a checked dataset."""
    where = f"data[{name!r}]"
    if isinstance(obj, pd.Series):
        obj = obj.rename("close").to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise DataError(
            f"{where}: expected a pandas DataFrame with a 'close' column or a Series of closes, "
            f"got {type(obj).__name__}"
        )
    frame = obj.rename(columns=lambda c: str(c).strip().lower())
    if "close" not in frame.columns:
        raise DataError(
            f"{where}: no 'close' column (columns: {', '.join(map(str, frame.columns))}); name "
            "the price column 'close' or pass that column as a Series"
        )
    if frame.empty:
        raise DataError(f"{where}: the frame has no rows")
    frame = _dates(frame, where)
    out = pd.DataFrame(index=frame.index)
    for col in STANDARD_COLUMNS:
        out[col] = _column(frame, col, where, kind) if col in frame.columns else np.nan
    if kind == "tradable" and not np.isfinite(out["close"].to_numpy()).any():
        raise DataError(f"{where}: the 'close' column has no value")
    return finish_frame(out, f"user frame {name!r}")
