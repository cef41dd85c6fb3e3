"""SHIBOR curve interpolation for the option calculators (pure: frames in, arrays out).

SHIBOR (Shanghai Interbank Offered Rate) is a simple money-market rate quoted on an act/360
basis for the tenors ON, 1W, 2W, 1M, 3M, 6M, 9M, 1Y (REFERENCES.md §2: "tenor in days/360").
``shibor_curve_rate`` interpolates each day's curve (a frame as returned by
``data.rates.load_shibor``: decimals, one row per date, one column per tenor) with a cubic
spline (not-a-knot, as ``scipy.interpolate.interp1d(kind='cubic')`` in the seed) to any number
of (date, days-to-expiry) pairs in one vectorised pass, clamping outside the tenor range, and
converts to a continuously compounded rate by default.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline

from volbacktest.engine.errors import DataError, StaleDataWarning

# SHIBOR tenors in days on the act/360 money-market basis (REFERENCES.md §2): a month is 30
# days, a year 360.
SHIBOR_TENOR_DAYS: dict[str, int] = {
    "ON": 1,
    "1W": 7,
    "2W": 14,
    "1M": 30,
    "3M": 90,
    "6M": 180,
    "9M": 270,
    "1Y": 360,
}
# money-market day count of the quoted SHIBOR rate (simple interest, act/360)
SHIBOR_DAY_COUNT = 360.0
# default year basis of the option calculator's T (iVIX: calendar days / 365, REFERENCES §2)
CALCULATOR_YEAR_DAYS = 365.0


def _tenor_days(rates: pd.DataFrame) -> np.ndarray:
    mapping = rates.attrs.get("tenor_days", SHIBOR_TENOR_DAYS)
    try:
        return np.array([float(mapping[c]) for c in rates.columns])
    except KeyError as exc:
        raise DataError(
            f"rates column {exc} has no tenor in days; name columns {list(SHIBOR_TENOR_DAYS)} "
            "or set rates.attrs['tenor_days']"
        ) from None


def shibor_curve_rate(
    rates: pd.DataFrame,
    dates: pd.DatetimeIndex | np.ndarray | pd.Series,
    days_to_expiry: np.ndarray | pd.Series | float,
    *,
    compounding: Literal["continuous", "simple"] = "continuous",
    year_days: float = CALCULATOR_YEAR_DAYS,
    max_stale_days: int | None = 7,
) -> np.ndarray:
    """Rate for each (date, days_to_expiry) pair from that day's SHIBOR curve (vectorised).

    For every distinct date the curve of the latest row on or before it (as-of: no look-ahead)
    is interpolated with a not-a-knot cubic spline in tenor days; ``days_to_expiry`` outside
    [ON, 1Y] is clamped to the end tenors (no extrapolation). All pairs are evaluated in one
    pass over the spline coefficients.

    ``compounding="simple"`` returns the interpolated act/360 simple rate (what the seed fed into
    ``exp(R*T)``). ``"continuous"`` (default) converts it so that discounting is consistent with
    the calculator's ``T = days / year_days``: ``exp(R_cc * d / year_days) = 1 + r * d / 360``,
    i.e. ``R_cc = ln(1 + r d / 360) * year_days / d`` (limit ``r * year_days / 360`` at d = 0).

    A date more than ``max_stale_days`` calendar days after the last SHIBOR row on or before it
    raises :class:`DataError` (``None`` allows any gap but warns with StaleDataWarning).
    """
    if compounding not in ("continuous", "simple"):
        raise DataError(f"compounding={compounding!r}: use 'continuous' or 'simple'")
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates))).astype("datetime64[ns]")
    days = np.broadcast_to(np.asarray(days_to_expiry, dtype=float), (len(d),))
    if len(d) == 0:
        return np.empty(0)
    idx = rates.index.astype("datetime64[ns]")
    if not idx.is_monotonic_increasing:
        raise DataError("rates index must be increasing dates; use load_shibor")
    tenors = _tenor_days(rates)
    uniq, inv = np.unique(d.to_numpy(), return_inverse=True)
    row = np.searchsorted(idx.to_numpy(), uniq, side="right") - 1
    if (row < 0).any():
        first = pd.Timestamp(uniq[row < 0][0]).date()
        raise DataError(
            f"no SHIBOR on or before {first} (rates start {idx[0].date()}); pass a longer rate "
            "history or a constant rate"
        )
    gap_days = (uniq - idx.to_numpy()[row]) / np.timedelta64(1, "D")
    if max_stale_days is not None and (gap_days > max_stale_days).any():
        j = int(np.argmax(gap_days))
        raise DataError(
            f"SHIBOR is {gap_days[j]:.0f} days stale on {pd.Timestamp(uniq[j]).date()} (last "
            f"row {idx[row[j]].date()}, limit max_stale_days={max_stale_days}); pass a longer "
            "rate history, a constant rate, or max_stale_days=None to carry the last curve"
        )
    if max_stale_days is None and (gap_days > 7).any():
        warnings.warn(
            StaleDataWarning(
                f"SHIBOR carried forward for {int((gap_days > 7).sum())} dates more than 7 days "
                f"past its last row (up to {gap_days.max():.0f} days, last row {idx[-1].date()})"
            ),
            stacklevel=2,
        )
    curves = rates.to_numpy(dtype=float)[row]  # (n_dates, n_tenors)
    spline = CubicSpline(tenors, curves.T, axis=0, bc_type="not-a-knot")
    x = np.clip(days, tenors[0], tenors[-1])
    seg = np.clip(np.searchsorted(tenors, x, side="right") - 1, 0, len(tenors) - 2)
    dx = x - tenors[seg]
    c = spline.c  # (4, n_tenors - 1, n_dates): c[0] dx^3 + c[1] dx^2 + c[2] dx + c[3]
    simple = ((c[0, seg, inv] * dx + c[1, seg, inv]) * dx + c[2, seg, inv]) * dx + c[3, seg, inv]
    if compounding == "simple":
        return simple
    growth = simple * days / SHIBOR_DAY_COUNT
    safe = np.where(days > 0, days, 1.0)
    return np.where(
        days > 0,
        np.log1p(growth) * year_days / safe,
        simple * year_days / SHIBOR_DAY_COUNT,
    )
