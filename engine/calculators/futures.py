"""VIX futures calendar, the S&P 500 VIX Short-Term Futures Index and ETNs built on it.

Pure numpy/pandas kernels (no backtrader, no calendar lookups: the trading sessions are an
argument, built by ``data.calendars.nyse_sessions``). Everything is vectorised over dates;
results are frozen dataclasses.

Sources of the rules implemented here (see also ``REFERENCES.md`` section 4):

* CFE VX contract specification, "Final Settlement Date": the Wednesday 30 calendar days before
  the 3rd Friday of the calendar month following the contract month; if that Friday is a
  holiday, 30 days before the business day preceding it; if the Wednesday is a holiday, the
  business day preceding it.
* S&P VIX Futures Indices methodology, short-term index (ticker SPVXSP / SPVXSTR): the roll
  period starts on the business day before the monthly VIX futures settlement date (normally
  the Tuesday) and runs to the business day before the next settlement date. At the close of
  its first day all weight sits on the shorter contract (the one that becomes the 1st month
  once the old front settles); on each following business day ``w1 = dr / dt`` with ``dt`` the
  business days from the starting settlement date (inclusive) to the next one (exclusive) and
  ``dr`` those remaining after the current day. The excess-return index compounds
  ``sum_i w_{i,t-1} F_{i,t} / sum_i w_{i,t-1} F_{i,t-1} - 1`` (yesterday's weights, same
  contracts at both dates); the total-return index adds the 91-day T-bill return
  ``(1 / (1 - 91/360 * TBAR_{t-1}))**(days/91) - 1``.
* ETN pricing supplements (iPath VXX, VelocityShares XIV): indicative value times the daily
  index factor ``1 + L * r_t``, less an investor fee accrued per calendar day on the prior
  value; the inverse note is accelerated (terminated) when its indicative value falls by 80 %
  or more in a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError

# CFE VX specification: settlement is 30 calendar days before the next month's SPX expiry Friday
SETTLEMENT_DAYS_BEFORE_SPX_EXPIRY = 30
FRIDAY = 4  # numpy weekday numbering, Monday = 0
# S&P VIX Futures Indices methodology, total-return section: 91-day T-bill on a 360-day basis
TBILL_TERM_DAYS = 91
TBILL_DAY_BASIS = 360
# ETN pricing supplements: the investor fee accrues daily, fee_annual * calendar_days / 365
FEE_DAY_BASIS = 365
VXX_ANNUAL_FEE = 0.0089  # iPath S&P 500 VIX Short-Term Futures ETN, yearly fee 0.89 %
XIV_ANNUAL_FEE = 0.0135  # VelocityShares Daily Inverse VIX Short-Term ETN, yearly fee 1.35 %
# VelocityShares pricing supplement: acceleration event when the indicative value falls >= 80 %
ACCELERATION_DROP = 0.80
MAX_ANNUAL_FEE = 0.5  # sanity bound: a fee given in percent (0.89) instead of decimals fails

_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
# where the error messages send the caller for a calendar (the data layer builds it)
_NYSE_SESSIONS = "volbacktest.data.calendars.nyse_sessions"


# --------------------------------------------------------------------------- calendar


def _as_day(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}={value!r} is not a date; pass e.g. '2005-01-03'") from exc
    if ts.tz is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _session_days(sessions: pd.DatetimeIndex) -> np.ndarray:
    """Sessions as a sorted ``datetime64[D]`` array, validated."""
    if not isinstance(sessions, pd.DatetimeIndex):
        raise ConfigError(
            f"sessions must be a pandas DatetimeIndex of trading days, got "
            f"{type(sessions).__name__}; build one with {_NYSE_SESSIONS}(start, end)"
        )
    if len(sessions) == 0:
        raise ConfigError(f"sessions is empty; build it with {_NYSE_SESSIONS}(start, end)")
    days = sessions.tz_localize(None) if sessions.tz is not None else sessions
    arr = days.to_numpy().astype("datetime64[D]")
    if np.any(np.diff(arr) <= np.timedelta64(0, "D")):
        raise ConfigError("sessions must be strictly increasing trading days without duplicates")
    return arr


def _previous_session_if_closed(days: np.ndarray, sess: np.ndarray) -> np.ndarray:
    """Each day itself if it is a session, else the last session before it."""
    pos = np.searchsorted(sess, days, side="right") - 1
    return sess[pos]


def _settlement_dates(years: np.ndarray, months: np.ndarray, sessions: pd.DatetimeIndex):
    """Vectorised CFE final settlement date for contract months (years, months)."""
    sess = _session_days(sessions)
    years = np.asarray(years, dtype=np.int64)
    months = np.asarray(months, dtype=np.int64)
    if np.any((months < 1) | (months > 12)):
        raise ConfigError(f"contract months must be in 1..12, got {np.unique(months).tolist()}")
    month_index = (years - 1970) * 12 + (months - 1) + 1  # the following calendar month
    first_next = month_index.astype("datetime64[M]").astype("datetime64[D]")
    weekday = (first_next.astype(np.int64) + _EPOCH_WEEKDAY) % 7
    third_friday = first_next + ((FRIDAY - weekday) % 7 + 14).astype("timedelta64[D]")
    need_from = third_friday.min() - np.timedelta64(SETTLEMENT_DAYS_BEFORE_SPX_EXPIRY + 7, "D")
    if sess[0] > need_from or sess[-1] < third_friday.max():
        raise ConfigError(
            f"sessions cover {sess[0]}..{sess[-1]} but these expiries need the trading calendar "
            f"from {need_from} to {third_friday.max()}; pass {_NYSE_SESSIONS}() over that range"
        )
    # a holiday Friday moves the reference to the business day preceding it
    reference = _previous_session_if_closed(third_friday, sess)
    wednesday = reference - np.timedelta64(SETTLEMENT_DAYS_BEFORE_SPX_EXPIRY, "D")
    # a holiday Wednesday moves settlement to the business day preceding it
    return _previous_session_if_closed(wednesday, sess)


def vix_futures_expiry(year: int, month: int, sessions: pd.DatetimeIndex) -> pd.Timestamp:
    """Final settlement date of the monthly VX contract for ``(year, month)`` by the CFE rule.

    ``sessions`` is the trading calendar (e.g. ``data.calendars.nyse_sessions``) covering the
    settlement month and the 3rd Friday of the following month. Known exceptions in the
    exchange's own files: the July and October 2004 contracts (N04, V04) settled one week
    earlier than this rule (early contract terms).
    """
    day = _settlement_dates(np.array([year]), np.array([month]), sessions)[0]
    return pd.Timestamp(day)


def vix_expiries(start, end, sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Every monthly VX final settlement date in ``[start, end]`` (named ``expiry``).

    The settlement date of contract month m always falls in month m (13th..22nd), so the
    contract months scanned are those of ``start`` through ``end``.
    """
    start_ts, end_ts = _as_day(start, "start"), _as_day(end, "end")
    if end_ts < start_ts:
        raise ConfigError(f"vix_expiries: end {end_ts.date()} is before start {start_ts.date()}")
    first = start_ts.year * 12 + start_ts.month - 1
    last = end_ts.year * 12 + end_ts.month - 1
    month_numbers = np.arange(first, last + 1)
    days = _settlement_dates(month_numbers // 12, month_numbers % 12 + 1, sessions)
    out = pd.DatetimeIndex(days.astype("datetime64[ns]"), name="expiry")
    return out[(out >= start_ts) & (out <= end_ts)]


# --------------------------------------------------------------------------- roll schedule


@dataclass(frozen=True)
class RollSchedule:
    """Daily weights of the short-term index (S&P 500 VIX Short-Term Futures methodology).

    Attributes are aligned on ``dates`` (the close of each day): ``front_expiry`` and
    ``second_expiry`` identify the two contracts held after that close, ``w1``/``w2`` their
    weights (sum 1), ``days_in_period`` is ``dt`` and ``days_remaining`` is ``dr``.
    """

    dates: pd.DatetimeIndex
    front_expiry: pd.DatetimeIndex
    second_expiry: pd.DatetimeIndex
    w1: np.ndarray
    w2: np.ndarray
    days_in_period: np.ndarray
    days_remaining: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per date: front/second expiry, w1, w2, dt, dr."""
        return pd.DataFrame(
            {
                "front_expiry": self.front_expiry,
                "second_expiry": self.second_expiry,
                "w1": self.w1,
                "w2": self.w2,
                "days_in_period": self.days_in_period,
                "days_remaining": self.days_remaining,
            },
            index=self.dates,
        )


def _dates_index(dates, name: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(dates)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    if len(idx) == 0:
        raise ConfigError(f"{name} is empty")
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise DataError(f"{name} must be sorted increasing without duplicate dates")
    return idx


def short_term_roll(dates, expiries, sessions: pd.DatetimeIndex | None = None) -> RollSchedule:
    """Roll weights from the 1st to the 2nd month contract for every date in ``dates``.

    ``expiries`` is the monthly settlement calendar (e.g. ``vix_expiries``); it must contain
    the last settlement on or after the first date's roll start and the two following ones for
    the last date. ``sessions`` are the business days used to count ``dt`` and ``dr``
    (defaults to ``dates``); every date and expiry must be a session.
    """
    idx = _dates_index(dates, "dates")
    sess_index = idx if sessions is None else sessions
    sess = _session_days(sess_index)
    exp = _dates_index(expiries, "expiries").to_numpy().astype("datetime64[D]")
    days = idx.to_numpy().astype("datetime64[D]")

    pos_exp = np.searchsorted(sess, exp)
    in_sessions = (pos_exp < len(sess)) & (sess[np.minimum(pos_exp, len(sess) - 1)] == exp)
    if not in_sessions.all():
        bad = exp[~in_sessions][0]
        raise ConfigError(
            f"expiry {bad} is not a trading session of the calendar given "
            f"({sess[0]}..{sess[-1]}); pass sessions covering every expiry"
        )
    pos_day = np.searchsorted(sess, days)
    day_ok = (pos_day < len(sess)) & (sess[np.minimum(pos_day, len(sess) - 1)] == days)
    if not day_ok.all():
        raise ConfigError(f"date {days[~day_ok][0]} is not a session of the calendar given")
    if pos_exp[0] == 0:
        raise ConfigError(f"sessions must start before the first expiry {exp[0]}")
    roll_start = sess[pos_exp - 1]  # business day before each settlement (normally Tuesday)
    period = np.searchsorted(roll_start, days, side="right") - 1
    if period[0] < 0:
        raise ConfigError(
            f"expiries start at {exp[0]}: add the settlement before {days[0]} so its roll "
            "period is known (e.g. vix_expiries(start - 45 days, ...))"
        )
    if period[-1] + 2 >= len(exp):
        raise ConfigError(
            f"expiries end at {exp[-1]}: the roll on {days[-1]} needs the next two settlements; "
            "extend the expiry calendar by at least two months"
        )
    front_pos = pos_exp[period + 1]
    days_in_period = (front_pos - pos_exp[period]).astype(np.int64)
    days_remaining = (front_pos - pos_day - 1).astype(np.int64)
    w1 = days_remaining / days_in_period
    return RollSchedule(
        dates=idx,
        front_expiry=pd.DatetimeIndex(exp[period + 1].astype("datetime64[ns]"), name="expiry"),
        second_expiry=pd.DatetimeIndex(exp[period + 2].astype("datetime64[ns]"), name="expiry"),
        w1=w1,
        w2=1.0 - w1,
        days_in_period=days_in_period,
        days_remaining=days_remaining,
    )


# --------------------------------------------------------------------------- index


def index_returns_from_weights(
    settle: np.ndarray, legs: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Daily excess returns of a futures index with yesterday's weights on yesterday's legs.

    ``settle`` is (n_dates, n_contracts); ``legs`` (n_dates, n_legs) holds column positions of
    the contracts held after each close and ``weights`` their weights. Returns ``r`` with
    ``r[0] = 0`` and ``r[t] = sum w[t-1] F[t, legs[t-1]] / sum w[t-1] F[t-1, legs[t-1]] - 1``.
    Legs with zero weight may be NaN; a NaN in a weighted leg raises ``DataError``.
    """
    prev_legs, prev_w = legs[:-1], weights[:-1]
    rows = np.arange(1, settle.shape[0])[:, None]
    f_today = settle[rows, prev_legs]
    f_yesterday = settle[rows - 1, prev_legs]
    used = prev_w != 0
    bad = used & ~(np.isfinite(f_today) & np.isfinite(f_yesterday))
    if bad.any():
        t, leg = np.argwhere(bad)[0]
        raise DataError(
            f"settle matrix has no price for contract column {prev_legs[t, leg]} on row {t} or "
            f"{t + 1} while the index holds it; fill the curve (or drop those dates) first"
        )
    num = np.where(used, prev_w * f_today, 0.0).sum(axis=1)
    den = np.where(used, prev_w * f_yesterday, 0.0).sum(axis=1)
    return np.concatenate([[0.0], num / den - 1.0])


def tbill_returns(dates: pd.DatetimeIndex, tbill_rate) -> np.ndarray:
    """Daily T-bill return of the S&P VIX futures TR indices (first day 0).

    ``tbill_rate`` is the 91-day T-bill discount rate in decimals: a constant or a Series
    indexed by date (the value of the previous business day is used, forward-filled).
    """
    if isinstance(tbill_rate, pd.Series):
        rate = tbill_rate.sort_index().reindex(dates, method="ffill").to_numpy(dtype=float)
        if np.isnan(rate).any():
            first = dates[np.isnan(rate)][0]
            raise DataError(
                f"tbill_rate has no value on or before {first.date()}; extend the rate series "
                "back to the first index date"
            )
    else:
        rate = np.full(len(dates), float(tbill_rate))
    if np.any(np.abs(rate) > 1.0):
        raise ConfigError("tbill_rate must be in decimals (0.05 for 5 %), got values above 1")
    gap_days = np.diff(dates.to_numpy().astype("datetime64[D]")).astype(float)
    base = 1.0 / (1.0 - TBILL_TERM_DAYS / TBILL_DAY_BASIS * rate[:-1])
    return np.concatenate([[0.0], base ** (gap_days / TBILL_TERM_DAYS) - 1.0])


@dataclass(frozen=True)
class FuturesIndexResult:
    """Short-term VIX futures index: levels, daily returns and the roll behind them."""

    level_er: pd.Series
    level_tr: pd.Series
    return_er: pd.Series
    return_tr: pd.Series
    roll: RollSchedule

    @property
    def front_expiry(self) -> pd.DatetimeIndex:
        return self.roll.front_expiry

    @property
    def second_expiry(self) -> pd.DatetimeIndex:
        return self.roll.second_expiry

    @property
    def weights(self) -> pd.DataFrame:
        return pd.DataFrame({"w1": self.roll.w1, "w2": self.roll.w2}, index=self.roll.dates)


def short_term_index(
    settles: pd.DataFrame,
    expiries=None,
    sessions: pd.DatetimeIndex | None = None,
    tbill_rate=0.0,
    base_level: float = 100.0,
) -> FuturesIndexResult:
    """S&P 500 VIX Short-Term Futures Index (ER and TR) from a settle matrix.

    ``settles``: rows are trade dates (sorted DatetimeIndex), columns are contract final
    settlement dates (datetime-like), values are daily settlement prices (NaN where not
    listed). ``expiries``: the full monthly calendar used for the roll periods (defaults to the
    columns). ``tbill_rate``: 91-day T-bill discount rate, decimals (constant or Series).
    """
    if not isinstance(settles, pd.DataFrame):
        raise ConfigError("settles must be a DataFrame (dates x contract expiries)")
    dates = _dates_index(settles.index, "settles.index")
    try:
        columns = pd.DatetimeIndex(settles.columns)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            "settles columns must be the contracts' final settlement dates (datetime-like)"
        ) from exc
    calendar = columns if expiries is None else expiries
    roll = short_term_roll(dates, calendar, sessions)
    col_pos = pd.Index(columns)
    legs_exp = np.column_stack([roll.front_expiry, roll.second_expiry])
    legs = col_pos.get_indexer(legs_exp.ravel()).reshape(legs_exp.shape)
    if (legs < 0).any():
        missing = pd.Timestamp(legs_exp.ravel()[(legs < 0).ravel()][0])
        raise DataError(
            f"settles has no column for the contract expiring {missing.date()}, which the index "
            "holds; add that contract's settles"
        )
    weights = np.column_stack([roll.w1, roll.w2])
    values = settles.to_numpy(dtype=float)
    r_er = index_returns_from_weights(values, legs, weights)
    r_tr = r_er + tbill_returns(dates, tbill_rate)
    return FuturesIndexResult(
        level_er=pd.Series(base_level * np.cumprod(1.0 + r_er), index=dates, name="index_er"),
        level_tr=pd.Series(base_level * np.cumprod(1.0 + r_tr), index=dates, name="index_tr"),
        return_er=pd.Series(r_er, index=dates, name="return_er"),
        return_tr=pd.Series(r_tr, index=dates, name="return_tr"),
        roll=roll,
    )


# --------------------------------------------------------------------------- ETNs


@dataclass(frozen=True)
class ETNResult:
    """Indicative value of an exchange-traded note built on an index.

    ``value`` starts at the initial value; after an acceleration event (``terminated``) the
    event day's value is kept and later days are NaN (``after_termination="nan"``) or held
    flat at the event value (``"flat"``). ``active`` is False after the event day.
    """

    value: pd.Series
    daily_return: pd.Series
    leverage: pd.Series
    active: pd.Series
    terminated: bool
    termination_date: pd.Timestamp | None


def _leverage_path(dates: pd.DatetimeIndex, leverage: float, changes) -> np.ndarray:
    lev = np.full(len(dates), float(leverage))
    if changes:
        if not isinstance(changes, Mapping):
            raise ConfigError("leverage_changes must map a date to the new leverage")
        for when, new in sorted(
            (_as_day(k, "leverage change date"), v) for k, v in changes.items()
        ):
            lev[dates >= when] = float(new)
    return lev


def etn_from_index(
    index_level: pd.Series,
    *,
    leverage: float = 1.0,
    annual_fee: float = VXX_ANNUAL_FEE,
    leverage_changes: Mapping | None = None,
    initial_value: float = 100.0,
    acceleration_drop: float = ACCELERATION_DROP,
    after_termination: str = "nan",
) -> ETNResult:
    """Daily ETN indicative value: ``IV_t = IV_{t-1} (1 + L_t r_t)(1 - fee * days_t / 365)``.

    ``r_t`` is the index's daily return, ``L_t`` the leverage in force on day t (``leverage``,
    replaced from each date in ``leverage_changes`` onward, e.g. ``{"2018-02-27": -0.5}``),
    ``days_t`` the calendar days since the previous row, ``fee`` the annual investor fee in
    decimals. If the value falls by ``acceleration_drop`` (80 %) or more in one day the note is
    accelerated: flagged, and NaN (or flat) afterwards. Close-to-close only: an intraday
    breach that recovers by the close is not seen. Split-free by construction.
    """
    if after_termination not in ("nan", "flat"):
        raise ConfigError(f"after_termination must be 'nan' or 'flat', got {after_termination!r}")
    if not 0.0 < acceleration_drop <= 1.0:
        raise ConfigError(f"acceleration_drop must be in (0, 1], got {acceleration_drop}")
    if not 0.0 <= annual_fee < MAX_ANNUAL_FEE:
        raise ConfigError(f"annual_fee is a decimal per year (0.0089 for 0.89 %), got {annual_fee}")
    if not isinstance(index_level, pd.Series):
        raise ConfigError("index_level must be a pandas Series indexed by date")
    dates = _dates_index(index_level.index, "index_level.index")
    level = index_level.to_numpy(dtype=float)
    if not np.all(np.isfinite(level)) or np.any(level <= 0):
        first = dates[~(np.isfinite(level) & (level > 0))][0]
        raise DataError(f"index level is missing or non-positive on {first.date()}")
    lev = _leverage_path(dates, leverage, leverage_changes)
    r = np.concatenate([[0.0], level[1:] / level[:-1] - 1.0])
    gap_days = np.concatenate(
        [[0.0], np.diff(dates.to_numpy().astype("datetime64[D]")).astype(float)]
    )
    factor = (1.0 + lev * r) * (1.0 - annual_fee * gap_days / FEE_DAY_BASIS)
    factor = np.maximum(factor, 0.0)  # an inverse note cannot go below zero
    hit = np.flatnonzero(factor <= 1.0 - acceleration_drop)
    terminated = hit.size > 0
    active = np.ones(len(dates), dtype=bool)
    if terminated:
        stop = hit[0]
        factor[stop + 1 :] = 1.0
        active[stop + 1 :] = False
    value = initial_value * np.cumprod(factor)
    daily = factor - 1.0
    if terminated and after_termination == "nan":
        value[~active] = np.nan
        daily[~active] = np.nan
    return ETNResult(
        value=pd.Series(value, index=dates, name="etn"),
        daily_return=pd.Series(daily, index=dates, name="etn_return"),
        leverage=pd.Series(lev, index=dates, name="leverage"),
        active=pd.Series(active, index=dates, name="active"),
        terminated=terminated,
        termination_date=pd.Timestamp(dates[hit[0]]) if terminated else None,
    )


def long_etn(
    index_level: pd.Series, annual_fee: float = VXX_ANNUAL_FEE, initial_value: float = 100.0
) -> ETNResult:
    """VXX-like long note: the index's daily return less ``annual_fee`` accrued daily."""
    return etn_from_index(
        index_level, leverage=1.0, annual_fee=annual_fee, initial_value=initial_value
    )


def inverse_etn(
    index_level: pd.Series,
    annual_fee: float = XIV_ANNUAL_FEE,
    leverage: float = -1.0,
    leverage_changes: Mapping | None = None,
    initial_value: float = 100.0,
    after_termination: str = "nan",
) -> ETNResult:
    """XIV-like daily inverse note (-1x the index's daily return less ``annual_fee``).

    ``leverage_changes`` models changes such as SVXY's -1x to -0.5x on 2018-02-27.
    """
    return etn_from_index(
        index_level,
        leverage=leverage,
        annual_fee=annual_fee,
        leverage_changes=leverage_changes,
        initial_value=initial_value,
        after_termination=after_termination,
    )
