"""VIX futures curve, constant-maturity future, roll yield, VRP, futures indices and ETN simulation.

Pure numpy/pandas kernels (no backtrader), vectorised over dates; results are frozen dataclasses.
Builds on :mod:`engine.calculators.futures` (expiry rule, short-term roll schedule, index
recursion, ETN kernel) and adds what it lacks:

* a **daily curve table** ``F1..Fn`` from a settle matrix (contracts ordered by expiry, only
  contracts trading that day, ``Fk`` the k-th one with expiry strictly after the date, i.e. the
  curve rolls ON the final settlement day, as the continuous VX1..VX8 file and the seed do);
  expiry dates, business days (NYSE sessions after the date up to and including the expiry) and
  calendar days to expiry;
* the seed's **30-day constant-maturity future** ``VXF30 = w1 F1 + (1 - w1) F2`` with
  ``w1 = (TTM2 - 30) / (TTM2 - TTM1)`` in calendar days (REFERENCES §4), its **roll yields**
  ``(F1 - VIX) / VIX / TTM1`` and ``(F2 - F1) / F1 / 30`` (per day) and the **futures-market
  VRP** ``ln VXF30_t - ln VIX_{t+21}``;
* the S&P 500 VIX **Mid-Term** Futures Index (months 4..7) beside the short-term one, both
  through one listing-aware builder (:func:`futures_index`) with excess- and total-return levels;
* **ETNs** from those indices (:func:`simulate_etn`, on ``futures.etn_from_index``) with the
  T-bill interest earned on the collateral whatever the leverage;
* the **seed's analyses** (VIX vs SPX rolling correlation, VIX vs realised volatility, log VRP,
  maximum drawdown) and **tracking statistics** of a simulated note against the real one.

Methodology sources: S&P VIX Futures Indices methodology (short-term: months 1-2 rolled daily;
mid-term: months 4, 5, 6, 7, rolling continuously from the 4th into the 7th month while holding
the 5th and 6th, one third each, for a constant 5-month weighted maturity); CFE VX contract
specification; iPath/VelocityShares pricing supplements (see ``futures.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.futures import (
    ACCELERATION_DROP,
    ETNResult,
    _leverage_path,
    etn_from_index,
    index_returns_from_weights,
    short_term_roll,
    tbill_returns,
    vix_expiries,
)
from volbacktest.engine.errors import ConfigError, DataError

# Seed 001 / REFERENCES §4: 30 calendar days constant maturity (the VIX's own horizon)
CM_TARGET_DAYS = 30
# Seed: the roll yield between the 1st and 2nd contract uses a nominal 30-day spacing
ROLL_SPACING_DAYS = 30
# Seed: futures-market VRP compares VXF30 with the VIX 21 trading days (about 30 calendar) later
VRP_HORIZON_SESSIONS = 21
TRADING_DAYS_PER_YEAR = 252  # annualisation of daily volatilities and tracking errors
VOL_POINTS = 100.0  # VIX is quoted in volatility points (annualised percent)
# S&P VIX Futures Indices methodology: the mid-term index holds months 4..7, one third per leg,
# rolling from the 4th into the 7th month over each roll period
MID_TERM_FIRST_MONTH = 4
MID_TERM_LEG_WEIGHT = 1.0 / 3.0
# Fund/note fees (decimals per year), from the issuers' prospectuses
VXZ_ANNUAL_FEE = 0.0089  # iPath S&P 500 VIX Mid-Term Futures ETN
ZIV_ANNUAL_FEE = 0.0135  # VelocityShares Daily Inverse VIX Medium-Term ETN
SVXY_ANNUAL_FEE = 0.0095  # ProShares Short VIX Short-Term Futures ETF (expense ratio)
# ProShares: SVXY's target changed from -1x to -0.5x the index's daily return on 2018-02-27
SVXY_LEVERAGE_CHANGES = MappingProxyType({"2018-02-27": -0.5})

IndexKind = Literal["short_term", "mid_term"]
_INDEX_KINDS = ("short_term", "mid_term")


# --------------------------------------------------------------------------- settle matrix


@dataclass(frozen=True)
class SettleMatrix:
    """Daily settlement prices of every contract: the input of the curve and the indices.

    ``settle``: rows are trade dates (sorted ``DatetimeIndex`` named ``date``), columns the
    contracts' final settlement dates (sorted ``DatetimeIndex`` named ``expiry``), NaN where the
    contract has no valid settle that day. ``listed``: same shape, True while the contract
    trades (from its first valid settle to its last row), so a NaN inside a listed span is a
    known hole (a gap or a dropped bad row), never interpolated. ``source`` names where each
    date comes from (e.g. ``cfe`` / ``continuous``). ``notes`` carry the data-quality report.
    """

    settle: pd.DataFrame
    listed: pd.DataFrame
    source: pd.Series
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.settle.shape != self.listed.shape:
            raise DataError(
                f"settle {self.settle.shape} and listed {self.listed.shape} must have one shape"
            )
        idx, cols = self.settle.index, self.settle.columns
        if not isinstance(idx, pd.DatetimeIndex) or not isinstance(cols, pd.DatetimeIndex):
            raise DataError("settle needs a DatetimeIndex of dates and expiry-date columns")
        for name, axis in (("dates", idx), ("expiry columns", cols)):
            if not axis.is_monotonic_increasing or axis.has_duplicates:
                raise DataError(f"settle {name} must be sorted increasing without duplicates")
        if not (self.listed.index.equals(idx) and self.listed.columns.equals(cols)):
            raise DataError("listed must have the same dates and columns as settle")

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.settle.index)

    @property
    def expiries(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.settle.columns)

    def between(self, start=None, end=None) -> SettleMatrix:
        """The rows from ``start`` to ``end`` (inclusive)."""
        rows = slice(start, end)
        return SettleMatrix(
            self.settle.loc[rows], self.listed.loc[rows], self.source.loc[rows], self.notes
        )


def _day_numbers(values) -> np.ndarray:
    return pd.DatetimeIndex(values).to_numpy().astype("datetime64[D]").astype(np.int64)


def _sessions_days(sessions: pd.DatetimeIndex) -> np.ndarray:
    if not isinstance(sessions, pd.DatetimeIndex) or len(sessions) == 0:
        raise ConfigError(
            "sessions must be a non-empty DatetimeIndex (use "
            "volbacktest.data.calendars.nyse_sessions)"
        )
    return _day_numbers(sessions)


# --------------------------------------------------------------------------- curve


@dataclass(frozen=True)
class FuturesCurve:
    """Daily term structure: ``price`` F1..Fn, their ``expiry`` dates and days to expiry.

    All frames share the date index and columns ``1..n``; a contract that is listed but has no
    valid settle that day leaves NaN in ``price`` (its expiry is still shown).
    """

    price: pd.DataFrame
    expiry: pd.DataFrame
    business_days: pd.DataFrame
    calendar_days: pd.DataFrame

    @property
    def n(self) -> int:
        return self.price.shape[1]

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.price.index)

    def f(self, k: int) -> pd.Series:
        """Settle of the k-th contract (1 = front)."""
        return self.price[k].rename(f"f{k}")

    def to_frame(self) -> pd.DataFrame:
        """Wide table: ``f1..fn, expiry1..n, bdays_to_expiry1..n, cdays_to_expiry1..n``."""
        blocks = [
            self.price.set_axis([f"f{k}" for k in self.price.columns], axis=1),
            self.expiry.set_axis([f"expiry{k}" for k in self.price.columns], axis=1),
            self.business_days.set_axis(
                [f"bdays_to_expiry{k}" for k in self.price.columns], axis=1
            ),
            self.calendar_days.set_axis(
                [f"cdays_to_expiry{k}" for k in self.price.columns], axis=1
            ),
        ]
        return pd.concat(blocks, axis=1)

    def on(self, date) -> pd.DataFrame:
        """The term structure of one date: expiry, days to expiry and settle per contract."""
        day = pd.Timestamp(date).normalize()
        if day not in self.price.index:
            pos = self.price.index.searchsorted(day)
            near = self.price.index[max(0, pos - 1) : pos + 1]
            raise DataError(
                f"no curve on {day:%Y-%m-%d} (not a trade date of the data); nearest dates: "
                f"{', '.join(f'{d:%Y-%m-%d}' for d in near)}"
            )
        out = pd.DataFrame(
            {
                "expiry": self.expiry.loc[day],
                "bdays_to_expiry": self.business_days.loc[day],
                "cdays_to_expiry": self.calendar_days.loc[day],
                "settle": self.price.loc[day],
            }
        )
        out.index.name = "contract"
        return out.dropna(subset=["expiry"])


def futures_curve(matrix: SettleMatrix, sessions: pd.DatetimeIndex, n: int = 8) -> FuturesCurve:
    """``F1..Fn`` per date: the k-th listed contract whose expiry is strictly after the date.

    ``sessions`` (e.g. ``data.calendars.nyse_sessions``) count business days to expiry and must
    contain every date and expiry. Dates with fewer than ``n`` listed contracts leave the far
    columns empty.
    """
    if not 1 <= n <= 24:
        raise ConfigError(f"n (contracts in the curve) must be in 1..24, got {n}")
    sess = _sessions_days(sessions)
    dates = _day_numbers(matrix.dates)
    exp = _day_numbers(matrix.expiries)
    _require_sessions(sess, dates, "trade date")
    _require_sessions(sess, exp, "contract expiry")
    settle = matrix.settle.to_numpy(dtype=float)
    alive = matrix.listed.to_numpy(dtype=bool) & (exp[None, :] > dates[:, None])
    rank = np.cumsum(alive, axis=1)
    rows = np.arange(len(dates))
    price = np.full((len(dates), n), np.nan)
    expiry = np.full((len(dates), n), np.iinfo(np.int64).min)  # NaT
    for k in range(1, n + 1):  # at most n passes over the matrix, never per day
        hit = alive & (rank == k)
        has = hit.any(axis=1)
        col = hit.argmax(axis=1)
        price[:, k - 1] = np.where(has, settle[rows, col], np.nan)
        expiry[:, k - 1] = np.where(has, exp[col], expiry[:, k - 1])
    known = expiry != np.iinfo(np.int64).min
    pos_exp = np.searchsorted(sess, np.where(known, expiry, sess[0]))
    pos_day = np.searchsorted(sess, dates)[:, None]
    bdays = np.where(known, pos_exp - pos_day, np.nan)
    cdays = np.where(known, expiry - dates[:, None], np.nan)
    index = matrix.dates
    cols = pd.RangeIndex(1, n + 1, name="contract")
    expiry_ts = pd.DataFrame(
        np.where(known, expiry, np.iinfo(np.int64).min).astype("datetime64[D]"),
        index=index,
        columns=cols,
    ).astype("datetime64[ns]")
    return FuturesCurve(
        price=pd.DataFrame(price, index=index, columns=cols),
        expiry=expiry_ts,
        business_days=pd.DataFrame(bdays, index=index, columns=cols),
        calendar_days=pd.DataFrame(cdays, index=index, columns=cols),
    )


def _require_sessions(sess: np.ndarray, days: np.ndarray, what: str) -> None:
    pos = np.searchsorted(sess, days)
    ok = (pos < len(sess)) & (sess[np.minimum(pos, len(sess) - 1)] == days)
    if not ok.all():
        bad = np.datetime64(int(days[~ok][0]), "D")
        raise DataError(
            f"{what} {bad} is not a session of the trading calendar given "
            f"({np.datetime64(int(sess[0]), 'D')}..{np.datetime64(int(sess[-1]), 'D')}); pass "
            "volbacktest.data.calendars.nyse_sessions() covering every trade date and expiry"
        )


# --------------------------------------------------------------------------- seed measures


@dataclass(frozen=True)
class ConstantMaturity:
    """Constant-maturity future ``value = w1 F1 + (1 - w1) F2`` (seed 001).

    ``extrapolated`` marks dates where TTM1 > target (right after an expiry the front is up to
    ~35 days out), so w1 > 1: the seed's formula then extrapolates rather than interpolates.
    """

    value: pd.Series
    w1: pd.Series
    extrapolated: pd.Series
    target_days: int


def constant_maturity(curve: FuturesCurve, target_days: int = CM_TARGET_DAYS) -> ConstantMaturity:
    """``VXF30``: ``w1 = (TTM2 - 30) / (TTM2 - TTM1)`` with TTM in calendar days."""
    if target_days <= 0:
        raise ConfigError(f"target_days must be positive, got {target_days}")
    t1, t2 = curve.calendar_days[1], curve.calendar_days[2]
    w1 = (t2 - target_days) / (t2 - t1)
    value = w1 * curve.price[1] + (1.0 - w1) * curve.price[2]
    return ConstantMaturity(
        value=value.rename(f"vxf{target_days}"),
        w1=w1.rename("w1"),
        extrapolated=((w1 > 1.0) | (w1 < 0.0)).rename("extrapolated"),
        target_days=target_days,
    )


def _on_dates(series: pd.Series, dates: pd.DatetimeIndex, name: str) -> pd.Series:
    if not isinstance(series, pd.Series):
        raise ConfigError(f"{name} must be a pandas Series indexed by date")
    return series.reindex(dates).astype(float).rename(name)


@dataclass(frozen=True)
class RollYield:
    """Seed roll yields, per calendar day (decimals).

    ``front``: ``(F1 - VIX) / VIX / TTM1`` (positive in contango: what a short front future
    earns per day if the VIX stays put); ``second``: ``(F2 - F1) / F1 / 30``.
    """

    front: pd.Series
    second: pd.Series
    basis: pd.Series  # F1 / VIX - 1 (the roll-yield strategy's signal)

    def mean_front(self, since=None, until=None) -> float:
        """Mean of ``front`` over ``[since, until]`` (dates without a VIX value skipped)."""
        return float(self.front.loc[since:until].dropna().mean())


def roll_yield(curve: FuturesCurve, vix: pd.Series) -> RollYield:
    """Roll-yield measures of the seed from the curve and the spot VIX (aligned on the curve)."""
    spot = _on_dates(vix, curve.dates, "vix")
    f1, f2 = curve.price[1], curve.price[2]
    basis = f1 / spot - 1.0
    front = basis / curve.calendar_days[1]
    second = (f2 - f1) / f1 / ROLL_SPACING_DAYS
    return RollYield(front.rename("roll_yield_front"), second.rename("roll_yield_f2_f1"), basis)


def futures_vrp(vxf30: pd.Series, vix: pd.Series, horizon: int = VRP_HORIZON_SESSIONS) -> pd.Series:
    """Futures-market VRP ``ln VXF30_t - ln VIX_{t + horizon}`` (horizon in trading days).

    Ex post: the last ``horizon`` dates are NaN. The VIX is aligned on ``vxf30``'s dates first,
    so "21 trading days later" counts the curve's trade dates.
    """
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1 trading day, got {horizon}")
    spot = _on_dates(vix, pd.DatetimeIndex(vxf30.index), "vix")
    return (np.log(vxf30) - np.log(spot.shift(-horizon))).rename("futures_vrp")


# --------------------------------------------------------------------------- seed analyses


def _log_changes(series: pd.Series) -> pd.Series:
    clean = series.astype(float).dropna()
    if (clean <= 0).any():
        raise DataError(f"{series.name or 'series'} has non-positive values; log changes need > 0")
    return np.log(clean).diff()


@dataclass(frozen=True)
class RollingCorrelation:
    """Rolling correlation of daily VIX log changes with SPX log returns."""

    rolling: pd.Series
    full_sample: float
    mean_rolling: float
    share_negative: float
    window: int


def vix_spx_correlation(vix: pd.Series, spx: pd.Series, window: int = 63) -> RollingCorrelation:
    """Correlation of daily VIX and SPX log changes: full sample and over ``window`` days."""
    if window < 3:
        raise ConfigError(f"window must be >= 3 days, got {window}")
    both = pd.concat({"vix": vix, "spx": spx}, axis=1, join="inner").dropna()
    if len(both) <= window:
        raise DataError(f"VIX and SPX share only {len(both)} dates; need more than {window}")
    dv, ds = _log_changes(both["vix"]), _log_changes(both["spx"])
    rolling = dv.rolling(window).corr(ds).rename(f"corr{window}")
    return RollingCorrelation(
        rolling=rolling,
        full_sample=float(dv.corr(ds)),
        mean_rolling=float(rolling.mean()),
        share_negative=float((rolling.dropna() < 0).mean()),
        window=window,
    )


@dataclass(frozen=True)
class RealisedComparison:
    """VIX against the SPX's realised volatility (vol points, annualised).

    ``trailing``: the past ``window`` days' realised vol; ``forward``: the next ``window`` days'
    (what the VIX forecasts); ``log_vrp = ln VIX - ln forward`` (the log variance risk premium
    in volatility terms); summary numbers over the dates where each is defined.
    """

    vix: pd.Series
    trailing: pd.Series
    forward: pd.Series
    log_vrp: pd.Series
    mean_vix_minus_trailing: float
    mean_vix_minus_forward: float
    share_vix_above_forward: float
    corr_vix_trailing: float
    mean_log_vrp: float
    window: int


def vix_vs_realised(
    vix: pd.Series, spx: pd.Series, window: int = 21, ddof: int = 1
) -> RealisedComparison:
    """VIX vs the SPX's ``window``-day realised volatility (trailing and forward) and log VRP."""
    if window < 2:
        raise ConfigError(f"window must be >= 2 days, got {window}")
    both = pd.concat({"vix": vix, "spx": spx}, axis=1, join="inner").dropna()
    rets = _log_changes(both["spx"])
    scale = VOL_POINTS * np.sqrt(TRADING_DAYS_PER_YEAR)
    trailing = (rets.rolling(window).std(ddof=ddof) * scale).rename(f"rv{window}")
    forward = trailing.shift(-window).rename(f"rv{window}_forward")
    level = both["vix"]
    log_vrp = (np.log(level) - np.log(forward)).rename("log_vrp")
    has_fwd = forward.notna()
    return RealisedComparison(
        vix=level,
        trailing=trailing,
        forward=forward,
        log_vrp=log_vrp,
        mean_vix_minus_trailing=float((level - trailing).mean()),
        mean_vix_minus_forward=float((level - forward).mean()),
        share_vix_above_forward=float((level[has_fwd] > forward[has_fwd]).mean()),
        corr_vix_trailing=float(level.corr(trailing)),
        mean_log_vrp=float(log_vrp.mean()),
        window=window,
    )


@dataclass(frozen=True)
class Drawdown:
    """Largest peak-to-trough fall of a price series (``depth`` < 0, a decimal)."""

    depth: float
    peak: pd.Timestamp
    trough: pd.Timestamp
    recovery: pd.Timestamp | None
    series: pd.Series = field(repr=False)


def max_drawdown(prices: pd.Series) -> Drawdown:
    """Maximum drawdown of ``prices`` with its peak, trough and recovery dates."""
    clean = prices.astype(float).dropna()
    if len(clean) < 2 or (clean <= 0).any():
        raise DataError("max_drawdown needs at least 2 positive prices")
    peak_level = clean.cummax()
    dd = clean / peak_level - 1.0
    trough = dd.idxmin()
    peak = clean.loc[:trough].idxmax()
    after = clean.loc[trough:]
    recovered = after[after >= clean.loc[peak]]
    return Drawdown(
        depth=float(dd.loc[trough]),
        peak=pd.Timestamp(peak),
        trough=pd.Timestamp(trough),
        recovery=pd.Timestamp(recovered.index[0]) if len(recovered) else None,
        series=dd.rename("drawdown"),
    )


# --------------------------------------------------------------------------- indices


@dataclass(frozen=True)
class FuturesIndex:
    """A rolling VIX futures index (S&P short-term or mid-term methodology).

    ``legs`` holds the expiry of each contract held after each close and ``weights`` their
    weights (rows sum to 1). ``delayed_roll`` lists the dates where the incoming contract had no
    price yet (CFE listed some serial months a day or two after the previous expiry in
    2004-2006, and a far contract has a gap in 2006): its weight stayed on the outgoing contract
    that day. ``first_date`` is the first date of the index (see ``start``).
    """

    kind: str
    level_er: pd.Series
    level_tr: pd.Series
    return_er: pd.Series
    return_tr: pd.Series
    tbill_return: pd.Series
    legs: pd.DataFrame
    weights: pd.DataFrame
    delayed_roll: pd.DatetimeIndex
    notes: tuple[str, ...] = ()

    @property
    def first_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.level_er.index[0])


def _roll_calendar(matrix: SettleMatrix, sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Listed expiries, plus the rule settlement before the first date if the first roll period
    would otherwise be unknown (the first CFE contract expired in May 2004)."""
    calendar = matrix.expiries
    first = matrix.dates[0]
    sess = pd.DatetimeIndex(sessions)
    pos = sess.searchsorted(calendar[0])
    roll_start = sess[pos - 1] if pos > 0 else calendar[0]
    if roll_start <= first:
        return calendar
    rule = vix_expiries(first - pd.Timedelta(days=62), first, sessions)
    if len(rule) == 0:
        raise ConfigError(f"no monthly settlement found before {first:%Y-%m-%d}")
    return pd.DatetimeIndex(calendar.insert(0, rule[-1]), name="expiry")


def _shift_rows(values: np.ndarray, periods: int) -> np.ndarray:
    """Rows shifted down by ``periods`` (rows before the shift repeat the first row)."""
    if periods == 0:
        return values
    out = np.empty_like(values)
    if periods > 0:
        out[periods:] = values[:-periods]
        out[:periods] = values[0]
    else:
        out[:periods] = values[-periods:]
        out[periods:] = values[-1]
    return out


def index_weights(
    matrix: SettleMatrix,
    sessions: pd.DatetimeIndex,
    kind: IndexKind = "short_term",
    roll_shift: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Legs (expiries) and weights held after each close, before any listing adjustment.

    Short-term: ``[1st, 2nd]`` with ``[dr/dt, 1 - dr/dt]``; mid-term: ``[4th..7th]`` with
    ``[dr/dt, 1, 1, 1 - dr/dt] / 3``, ``dr``/``dt`` from the S&P roll period
    (:func:`engine.calculators.futures.short_term_roll`). Months count the *listed* contracts
    (2004-2005 had unlisted serial months). ``roll_shift`` > 0 rolls that many sessions late
    (< 0 early): an analysis knob for the reconstruction, 0 is the methodology.
    """
    if kind not in _INDEX_KINDS:
        raise ConfigError(f"index kind must be one of {', '.join(_INDEX_KINDS)}, got {kind!r}")
    calendar = _roll_calendar(matrix, sessions)
    roll = short_term_roll(matrix.dates, calendar, sessions)
    p1 = calendar.searchsorted(roll.front_expiry)
    share_front = roll.w1
    if kind == "short_term":
        offsets = np.array([0, 1])
        w = np.column_stack([share_front, 1.0 - share_front])
    else:
        offsets = np.arange(MID_TERM_FIRST_MONTH - 1, MID_TERM_FIRST_MONTH + 3)
        w = MID_TERM_LEG_WEIGHT * np.column_stack(
            [share_front, np.ones_like(share_front), np.ones_like(share_front), 1 - share_front]
        )
    pos = p1[:, None] + offsets[None, :]
    if pos.max() >= len(calendar):
        last_ok = matrix.dates[np.flatnonzero(pos.max(axis=1) < len(calendar))]
        raise DataError(
            f"the {kind} index needs contracts beyond the last expiry in the data "
            f"({calendar[-1]:%Y-%m-%d}) after {last_ok[-1] if len(last_ok) else 'the start'}; "
            "end the index earlier or add the later contracts"
        )
    legs = calendar.to_numpy()[pos]
    legs, w = _shift_rows(legs, roll_shift), _shift_rows(w, roll_shift)
    names = [f"leg{m}" for m in (offsets + 1)]
    return (
        pd.DataFrame(legs, index=matrix.dates, columns=names),
        pd.DataFrame(w, index=matrix.dates, columns=names),
    )


def _priced(values: np.ndarray, legs: np.ndarray) -> np.ndarray:
    """True where each held leg has a price at t and t+1 (the last row: at t only)."""
    rows = np.arange(values.shape[0])[:, None]
    safe = np.where(legs < 0, 0, legs)
    today = np.isfinite(values[rows, safe]) & (legs >= 0)
    tomorrow = np.ones_like(today)
    tomorrow[:-1] = np.isfinite(values[rows[1:], safe[:-1]]) & (legs[:-1] >= 0)
    return today & tomorrow


def futures_index(
    matrix: SettleMatrix,
    sessions: pd.DatetimeIndex,
    kind: IndexKind = "short_term",
    *,
    tbill_rate=0.0,
    base_level: float = 100.0,
    start=None,
    roll_shift: int = 0,
) -> FuturesIndex:
    """S&P 500 VIX Short-Term or Mid-Term Futures Index (ER and TR) from a settle matrix.

    ``tbill_rate``: 91-day T-bill discount rate in decimals, a constant or a dated Series
    (TR = ER + T-bill return, S&P methodology). ``start``: first date (default: the matrix's
    first date); ``"auto"`` starts after the last date on which a held contract has no price
    (the mid-term index in 2004-2006, when CFE listed fewer than seven months), otherwise such
    a date raises :class:`DataError` naming it. If only the incoming contract lacks a price
    (listed late), its weight stays on the outgoing one that day (``delayed_roll``).
    """
    legs_frame, weights_frame = index_weights(matrix, sessions, kind, roll_shift)
    columns = pd.Index(matrix.expiries)
    legs = columns.get_indexer(legs_frame.to_numpy().ravel()).reshape(legs_frame.shape)
    w = weights_frame.to_numpy(dtype=float).copy()
    values = matrix.settle.to_numpy(dtype=float)
    priced = _priced(values, legs)
    incoming, outgoing = legs.shape[1] - 1, 0
    delay = (w[:, incoming] > 0) & ~priced[:, incoming] & priced[:, outgoing]
    w[delay, outgoing] += w[delay, incoming]
    w[delay, incoming] = 0.0
    missing = ((w > 0) & ~priced).any(axis=1)
    missing[-1] = False  # the last row's weights are never applied
    dates = matrix.dates
    notes: list[str] = []
    if start == "auto":
        first = int(np.flatnonzero(missing)[-1]) + 1 if missing.any() else 0
        if first >= len(dates) - 1:
            raise DataError(f"the {kind} index has no stretch with every held contract priced")
        if first:
            notes.append(
                f"{kind} index starts {dates[first]:%Y-%m-%d}: a held contract had no price on "
                f"{int(missing.sum())} earlier dates (last {dates[first - 1]:%Y-%m-%d})"
            )
    else:
        first = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start)))
        bad = np.flatnonzero(missing[first:])
        if bad.size:
            t = first + bad[0]
            leg = int(np.flatnonzero((w[t] > 0) & ~priced[t])[0])
            raise DataError(
                f"the {kind} index holds the contract expiring "
                f"{legs_frame.iloc[t, leg]:%Y-%m-%d} after {dates[t]:%Y-%m-%d} but it has no "
                f"settle on that date or the next ({int(missing[first:].sum())} such dates); "
                "pass start='auto' or a later start, or fix the contract's file"
            )
    if first >= len(dates) - 1:
        raise DataError(f"start {start} leaves fewer than 2 dates for the {kind} index")
    sl = slice(first, None)
    r_er = index_returns_from_weights(values[sl], legs[sl], w[sl])
    idx = dates[sl]
    r_tb = tbill_returns(idx, tbill_rate)
    r_tr = r_er + r_tb
    delayed = dates[delay & (np.arange(len(dates)) >= first)]
    if len(delayed):
        notes.append(
            f"{kind} index: on {len(delayed)} dates the incoming contract had no settle yet and "
            f"its weight stayed on the outgoing one (first {delayed[0]:%Y-%m-%d})"
        )
    return FuturesIndex(
        kind=kind,
        level_er=pd.Series(base_level * np.cumprod(1 + r_er), index=idx, name=f"{kind}_er"),
        level_tr=pd.Series(base_level * np.cumprod(1 + r_tr), index=idx, name=f"{kind}_tr"),
        return_er=pd.Series(r_er, index=idx, name="return_er"),
        return_tr=pd.Series(r_tr, index=idx, name="return_tr"),
        tbill_return=pd.Series(r_tb, index=idx, name="tbill_return"),
        legs=legs_frame.iloc[sl],
        weights=pd.DataFrame(w[sl], index=idx, columns=weights_frame.columns),
        delayed_roll=pd.DatetimeIndex(delayed, name="date"),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- ETNs


def simulate_etn(
    index: FuturesIndex,
    *,
    leverage: float = 1.0,
    annual_fee: float = 0.0089,
    leverage_changes: Mapping | None = None,
    acceleration_drop: float = ACCELERATION_DROP,
    after_termination: str = "nan",
    initial_value: float = 100.0,
) -> ETNResult:
    """An exchange-traded note/fund on ``index``: ``1 + L_t r_er + r_tbill`` less the fee.

    The note earns ``L_t`` times the index's excess return plus the T-bill return on its
    collateral (for L = 1 that is the TR index, as VXX; for L = -1 it is the inverse daily TR
    index, as XIV). Built on :func:`engine.calculators.futures.etn_from_index` (fee accrual
    per calendar day, acceleration when the value falls by ``acceleration_drop`` in a day:
    pass 1.0 for a fund such as SVXY that has no such clause).
    """
    dates = pd.DatetimeIndex(index.level_er.index)
    r_er = index.return_er.to_numpy(dtype=float)
    r_tb = index.tbill_return.to_numpy(dtype=float)
    if np.any(r_tb != 0):
        lev = _leverage_path(dates, leverage, leverage_changes)
        if np.any(lev == 0):
            raise ConfigError("leverage 0 has no index exposure; use cash instead")
        # etn_from_index applies L_t to the index return: feed r_er + r_tb / L_t so that
        # L_t * r = L_t r_er + r_tb (collateral interest is not levered)
        pseudo = index.level_er.iloc[0] * np.cumprod(1.0 + r_er + r_tb / lev)
        level = pd.Series(pseudo, index=dates, name="index")
    else:
        level = index.level_er
    return etn_from_index(
        level,
        leverage=leverage,
        annual_fee=annual_fee,
        leverage_changes=leverage_changes,
        initial_value=initial_value,
        acceleration_drop=acceleration_drop,
        after_termination=after_termination,
    )


# --------------------------------------------------------------------------- reconstruction


@dataclass(frozen=True)
class TrackingStats:
    """Simulated vs actual daily returns on their common dates.

    ``correlation`` and ``tracking_error`` (annualised stdev of the daily return difference,
    x sqrt(252)); ``growth_difference``: annualised difference of log growth (simulated -
    actual over the whole span: fees, rates, roll drift); ``vol_ratio``: simulated / actual
    volatility; ``beta`` of actual on simulated returns.

    Where the gap comes from: with prices observed at different times of day (futures settle at
    16:15 ET, the note's close at 16:00) the difference is noise in *levels* that reverses the
    next day: ``d_t = u_t + e_t - e_{t-1}``. Then ``diff_autocorr`` (lag-1 autocorrelation of
    ``d``) is ``-var(e) / var(d)``, so ``level_noise_share = -2 diff_autocorr`` of the daily
    variance is timing noise and ``te_independent = tracking_error * sqrt(1 + 2 diff_autocorr)``
    is what remains (fees, roll, independent errors). ``horizon_te`` / ``horizon_corr``: the
    same on non-overlapping h-day returns (TE annualised by sqrt(252 / h)): flat in h for
    independent errors, falling for level noise. ``lag_correlation``: corr(actual_t,
    simulated_{t-k}), to rule out a date shift.
    """

    n: int
    start: pd.Timestamp
    end: pd.Timestamp
    correlation: float
    tracking_error: float
    growth_difference: float
    vol_ratio: float
    beta: float
    diff_autocorr: float
    level_noise_share: float
    te_independent: float
    horizon_te: dict[int, float]
    horizon_corr: dict[int, float]
    lag_correlation: dict[int, float]


def tracking_stats(
    simulated: pd.Series,
    actual: pd.Series,
    *,
    start=None,
    end=None,
    horizons: Sequence[int] = (1, 5, 21),
    lags: Sequence[int] = (-1, 0, 1),
) -> TrackingStats:
    """Compare two price (or value) series by their returns between common dates."""
    both = pd.concat({"sim": simulated, "act": actual}, axis=1, join="inner")
    both = both.loc[start:end].dropna()
    if len(both) < 30:
        raise DataError(
            f"simulated and actual share only {len(both)} priced dates in [{start}, {end}]"
        )
    if (both <= 0).to_numpy().any():
        raise DataError("prices must be positive to compare returns")
    rets = both.pct_change().iloc[1:]
    diff = rets["sim"] - rets["act"]
    horizon_te, horizon_corr = {}, {}
    for h in horizons:
        hr = both.iloc[::h].pct_change().iloc[1:]
        horizon_te[int(h)] = float(
            (hr["sim"] - hr["act"]).std() * np.sqrt(TRADING_DAYS_PER_YEAR / h)
        )
        horizon_corr[int(h)] = float(hr["sim"].corr(hr["act"]))
    lag_corr = {int(k): float(rets["act"].corr(rets["sim"].shift(k))) for k in lags}
    var_sim = float(rets["sim"].var())
    te = float(diff.std() * np.sqrt(TRADING_DAYS_PER_YEAR))
    rho1 = float(diff.autocorr(1))
    years = (both.index[-1] - both.index[0]).days / 365.25
    growth = np.log(both.iloc[-1] / both.iloc[0])
    return TrackingStats(
        n=len(rets),
        start=pd.Timestamp(rets.index[0]),
        end=pd.Timestamp(rets.index[-1]),
        correlation=float(rets["sim"].corr(rets["act"])),
        tracking_error=te,
        growth_difference=float((growth["sim"] - growth["act"]) / years),
        vol_ratio=float(rets["sim"].std() / rets["act"].std()),
        beta=float(rets["sim"].cov(rets["act"]) / var_sim) if var_sim > 0 else float("nan"),
        diff_autocorr=rho1,
        level_noise_share=float(np.clip(-2.0 * rho1, 0.0, 1.0)),
        te_independent=float(te * np.sqrt(max(0.0, 1.0 + 2.0 * rho1))),
        horizon_te=horizon_te,
        horizon_corr=horizon_corr,
        lag_correlation=lag_corr,
    )
