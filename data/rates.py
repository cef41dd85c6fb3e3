"""SHIBOR loading: the rates CSV as a frame of decimal curves for the option calculators.

SHIBOR (Shanghai Interbank Offered Rate) is a simple money-market rate quoted in percent p.a.
on an act/360 basis for the tenors ON, 1W, 2W, 1M, 3M, 6M, 9M, 1Y (REFERENCES.md §2: "tenor in
days/360"). ``load_shibor`` returns decimals. The curve interpolation (``shibor_curve_rate``,
pure) lives in ``engine.calculators.rates``; it is imported here so that
``volbacktest.data.rates.shibor_curve_rate`` keeps working.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.rates import (
    SHIBOR_TENOR_DAYS,
    shibor_curve_rate,  # noqa: F401  (re-exported: data.rates.shibor_curve_rate)
)
from volbacktest.engine.errors import DataError, DataNotFoundError

_FILE_COLUMNS = {"1D": "ON", "O/N": "ON", "ON": "ON"}


def load_shibor(path: str | Path) -> pd.DataFrame:
    """Load a SHIBOR history (first column the date, newest first is fine; rates in percent).

    Returns decimals (2.48 % -> 0.0248) indexed by an increasing ``DatetimeIndex`` named
    ``date`` with columns ``ON, 1W, 2W, 1M, 3M, 6M, 9M, 1Y``; ``df.attrs['tenor_days']`` (and
    :data:`SHIBOR_TENOR_DAYS`) map each column to its tenor in days (act/360).
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"SHIBOR file {p} not found; pass the path to the rates CSV")
    raw = pd.read_csv(p)
    raw = raw.rename(columns={raw.columns[0]: "date", **_FILE_COLUMNS})
    missing = [c for c in SHIBOR_TENOR_DAYS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{p}: missing tenor column(s) {missing} (found {list(raw.columns)}); expected "
            "date,1D,1W,2W,1M,3M,6M,9M,1Y in percent"
        )
    dates = pd.to_datetime(raw["date"], errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{p}: row {i} has an unparseable date {raw['date'].iloc[i]!r}")
    values = raw[list(SHIBOR_TENOR_DAYS)].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        r, c = np.argwhere(values.isna().to_numpy())[0]
        raise DataError(
            f"{p}: row {r} column {values.columns[c]!r} is not a number; fill or drop that row"
        )
    out = pd.DataFrame(
        values.to_numpy(dtype=float) / 100.0,
        index=pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date"),
        columns=list(SHIBOR_TENOR_DAYS),
    )
    if out.index.has_duplicates:
        d = out.index[out.index.duplicated()][0]
        raise DataError(f"{p}: date {d.date()} appears twice; keep one row per date")
    out = out.sort_index()
    out.attrs["tenor_days"] = dict(SHIBOR_TENOR_DAYS)
    return out
