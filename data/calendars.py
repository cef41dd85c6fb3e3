"""Exchange session calendars (exchange_calendars), tz-naive, inclusive and cached.

* :func:`nyse_sessions`: NYSE (``XNYS``) sessions, the calendar of the VIX futures expiry rule,
  of the CFE files and of the embedded US market (CFE follows the NYSE holidays);
* :func:`sse_sessions`: Shanghai Stock Exchange (``XSHG``) sessions, the calendar of the
  synthetic 50ETF chains (weekdays outside the years whose holidays exchange_calendars records).

The calculators (``engine.calculators.futures``, ``futures_curve``) take these sessions as an
argument and never build a calendar themselves. exchange_calendars is imported on first use.
"""

from __future__ import annotations

import warnings

import pandas as pd

from volbacktest.engine.caches import CACHES
from volbacktest.engine.calculators.futures import _as_day
from volbacktest.engine.errors import ConfigError

NYSE_CALENDAR = "XNYS"  # exchange_calendars code of the NYSE (CFE follows its holidays)
SSE_CALENDAR = "XSHG"  # exchange_calendars code of the Shanghai Stock Exchange


@CACHES.memo("data.calendars.nyse", maxsize=16)
def _nyse_sessions_cached(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars 4.x reads tz-aware Series.values, deprecated in pandas 3.1; the
        # values it builds are UTC-naive nanoseconds as intended, so the notice is not ours
        warnings.filterwarnings(
            "ignore", message="Series.values returning an ndarray", category=DeprecationWarning
        )
        calendar = xcals.get_calendar(NYSE_CALENDAR, start=start, end=end)
    sessions = pd.DatetimeIndex(calendar.sessions, name="date")
    return pd.DatetimeIndex(sessions.tz_localize(None).normalize().to_numpy(), name="date")


def nyse_sessions(start, end) -> pd.DatetimeIndex:
    """NYSE trading sessions from ``start`` to ``end`` (inclusive), tz-naive, named ``date``.

    Uses exchange_calendars' ``XNYS`` calendar, which includes Good Friday and the special
    closures (2004-06-11, 2007-01-02, 2012-10-29/30, 2018-12-05). Results are cached.
    """
    start_ts, end_ts = _as_day(start, "start"), _as_day(end, "end")
    if end_ts < start_ts:
        raise ConfigError(f"nyse_sessions: end {end_ts.date()} is before start {start_ts.date()}")
    return _nyse_sessions_cached(start_ts, end_ts)


@CACHES.memo("data.calendars.sse", maxsize=8)
def _sse_sessions_cached(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars 4.x reads tz-aware Series.values (deprecated in pandas 3.1) on
        # its own data; not ours to fix (same filter as _nyse_sessions_cached)
        warnings.filterwarnings(
            "ignore", message="Series.values returning an ndarray", category=DeprecationWarning
        )
        cls = type(xcals.get_calendar(SSE_CALENDAR))
        lo, hi = max(start, cls.bound_min()), min(end, cls.bound_max())
        known = pd.DatetimeIndex([])
        if lo <= hi:
            calendar = xcals.get_calendar(SSE_CALENDAR, start=lo, end=hi)
            known = pd.DatetimeIndex(calendar.sessions).tz_localize(None).normalize()
    # outside the recorded holiday years: weekdays (a model calendar, documented)
    before = pd.bdate_range(start, min(end, lo - pd.Timedelta(days=1))) if start < lo else None
    after = pd.bdate_range(max(start, hi + pd.Timedelta(days=1)), end) if end > hi else None
    parts = [p for p in (before, known, after) if p is not None and len(p)]
    sessions = parts[0].append(parts[1:]) if len(parts) > 1 else (parts[0] if parts else known)
    return pd.DatetimeIndex(sessions.to_numpy(dtype="datetime64[ns]"), name="date")


def sse_sessions(start, end) -> pd.DatetimeIndex:
    """Shanghai Stock Exchange sessions (exchange_calendars ``XSHG``), tz-naive, inclusive.

    Outside the years whose holidays exchange_calendars records (1990-12 .. 2026 in 4.x) the
    sessions are the weekdays."""
    s, e = _as_day(start, "start"), _as_day(end, "end")
    if e < s:
        raise ConfigError(f"sse_sessions: end {e.date()} is before start {s.date()}")
    return _sse_sessions_cached(s, e)
