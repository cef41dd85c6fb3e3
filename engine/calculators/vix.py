"""VIX-style variance-swap index from option chains (Cboe VIX, SSE iVIX), vectorised over history.

Method (REFERENCES.md §1-2), per (trade date, expiry) "term":

* forward ``F = K* + exp(R T) (C(K*) - P(K*))`` at the strike ``K*`` with the smallest
  ``|C - P|`` among strikes priced on both sides;
* ``K0`` = the first listed strike equal to or below ``F`` (2009 rule: strictly below);
* strip: puts below ``K0``, calls above ``K0``, walking outward from ``K0``; when bids exist a
  zero-bid series is excluded and after two consecutive zero-bid strikes the wing stops;
* ``dK`` = half the distance between the neighbouring *surviving* strikes (ends: the distance to
  the single neighbour); ``Q(K0)`` = average of the call and the put at ``K0``;
* ``sigma^2 = (2/T) sum dK/K^2 exp(R T) Q(K) - (1/T) (F/K0 - 1)^2``;
* 30-day (and 60-day, from the 2nd/3rd terms as the seed reports) index by linear
  interpolation of total variance ``T sigma^2`` in time, annualised by ``365/target_days``
  (= ``N365/N30`` in minutes); outside the two terms either extrapolated on the same line
  (``extrapolation="linear"``) or held at the nearer term's variance (``"flat"``).

Every (date, expiry) group of a whole chain history goes through one kernel of array operations
over the chain sorted by (date, expiry, strike): segment boundaries, ``bincount`` sums and
``lexsort`` arg-minima replace per-day and per-term Python loops. :func:`compute_vix` returns a
per-date table (:class:`VixResult`); :func:`vix_term` runs the same kernel on a single term (the
white-paper goldens); :func:`interpolate_vix` is the interpolation step on its own. A history
stored as Parquet partitions goes through ``data.vix_history.compute_vix_partitioned``, which
reads one partition at a time and calls :func:`compute_vix` on it.

Presets (``VixMethod`` fields, each overridable): ``cboe`` (mid quotes, near/next terms with
more than 23 and less than 37 days, T in whole minutes to A.M. 9:30 / P.M. 16:00 ET
settlement, the fractional count rounded down), ``cboe_2009`` (K0
strictly below F, roll when the near term has fewer than 8 days, T in calendar days) and
``sse_ivix`` (SSE price rule, close when no quotes; 7-calendar-day roll; no extrapolation
beyond the near term (``extrapolation="flat"``: measured on every 2015 roll window against the
official series, tests/golden/vix_ivix2015/SOURCE.md); SHIBOR cubic-spline rate per expiry;
T = calendar days / 365; dividend-adjusted contracts: ``standard_grid``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.chain_rules import (
    ADJUSTED_MODES,
    AdjustedMode,
    adjusted_drop_mask,
    counts_by_period,
)
from volbacktest.engine.calculators.rates import shibor_curve_rate
from volbacktest.engine.errors import ConfigError, DataError, StaleDataWarning

logger = logging.getLogger(__name__)

# REFERENCES.md §1: T in years = minutes / N365, N365 = 525,600 minutes; N30 = 43,200.
MINUTES_PER_YEAR = 525_600.0
MINUTES_PER_DAY = 1_440.0
# Calendar-day year of the interpolation weights and of the iVIX T (= N365 / 1,440).
DAYS_PER_YEAR = 365.0
NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000

PriceRule = Literal["mid", "sse", "close"]
RatesLike = float | Mapping | pd.DataFrame | Callable[..., np.ndarray]

# status codes of a term (per (date, expiry) group)
_TERM_STATUS = np.array(
    ["ok", "expired", "no_forward", "no_k0", "missing_k0_leg", "empty_wing", "negative_variance"],
    dtype=object,
)
_OK, _EXPIRED, _NO_FWD, _NO_K0, _MISSING_K0, _EMPTY_WING, _NEG_VAR = range(7)


def _clock_minutes(text: str, what: str) -> int:
    try:
        hh, mm = (int(x) for x in text.split(":"))
    except (AttributeError, ValueError):
        raise ConfigError(f"{what}={text!r} is not a clock time like '09:30'") from None
    if not (0 <= hh < 24 and 0 <= mm < 60):
        raise ConfigError(f"{what}={text!r} is not a clock time like '09:30'")
    return hh * 60 + mm


@dataclass(frozen=True)
class VixMethod:
    """Every methodological choice of the calculator (frozen; see :data:`PRESETS`).

    * ``price_rule``: ``"mid"`` (bid/ask mid), ``"close"``, or ``"sse"`` (SSE scheme, REFERENCES
      §2: last inside the quotes else mid; one-sided quotes against last / previous settle;
      falls back to ``close`` where no quote, last or settle exists).
    * ``k0_rule``: ``"at_or_below"`` (current) or ``"below"`` (2009 text).
    * ``min_near_days``: the near term is the first expiry with at least this many calendar days
      (cboe 2014: more than 23 -> 24; SSE: fewer than 7 days rolls -> 7; Cboe 2009: 8).
    * ``max_next_days``: the next term must have at most this many days (cboe 2014: less than
      37 -> 36) or the date gets ``no_next_term``; ``None`` = no limit.
    * ``time_basis``: ``"minutes"`` (valuation time to settlement time, / 525,600) or
      ``"days"`` (calendar days / 365).
    * ``minute_clock`` (minute basis): ``"whole"`` counts whole minutes to settlement (the
      fractional count rounded down: Cboe's worked examples count whole minutes) or
      ``"fractional"`` (the exact interval in minutes).
    * ``am_settlement``/``pm_settlement``: settlement clock times in ``timezone`` by the chain's
      ``settlement`` column ('AM'/'PM', else ``default_settlement``);
      ``valuation_time_of_day`` is used when no valuation timestamp is passed.
    * ``zero_bid_rule``: where a series has a bid, a zero bid excludes it and two consecutive
      zero bids end the wing; ``exclude_zero_ask``: a zero ask also excludes (2025 rule).
    * ``adjusted``: dividend-adjusted contracts policy (see data.chains.ChainPolicy).
    * ``rate_compounding``: conversion of a SHIBOR frame (``"continuous"`` or ``"simple"``);
      ``rate_max_stale_days``: how old the last SHIBOR row may be (None: any, with a warning).
    * ``target_days``: the two horizons reported as ``vix30``/``vix60``; the second comes from
      the 2nd and 3rd terms (the seed's 60-day figure).
    * ``extrapolation``: when the target lies outside the two terms (both longer: the 50ETF
      roll windows, where the 7-day roll leaves a 34-41-day and a 90-day term; or both
      shorter), ``"linear"`` extends the total-variance line (the white-paper formula as
      written) and ``"flat"`` uses the nearer term's variance (no extrapolation). Inside the
      terms both are the same interpolation.
    * ``on_stale``: a date whose whole chain repeats the previous date's prices is flagged
      ``stale`` and its values set NaN (``"nan"``) or kept (``"keep"``).
    * ``require_both_wings``: a term whose strip has no put or no call beyond K0 gets
      ``empty_wing`` (True, default: a one-sided strip misses a whole tail; on the 2015 50ETF
      chains such values were 8-13 points below the official iVIX) or is computed from the one
      wing it has (False; the white-paper formula itself does not require both).
    * ``k0_fallback``: when F lies below every listed strike (after a crash) the term gets
      ``no_k0`` (``"none"``, the Cboe text) or K0 = the lowest strike (``"lowest_strike"``; the
      correction term (F/K0 - 1)^2 is the same second-order term for K0 above F).
    """

    name: str = "custom"
    price_rule: PriceRule = "mid"
    k0_rule: Literal["at_or_below", "below"] = "at_or_below"
    min_near_days: int = 24
    max_next_days: int | None = 36
    time_basis: Literal["minutes", "days"] = "minutes"
    minute_clock: Literal["whole", "fractional"] = "whole"
    timezone: str = "America/New_York"
    am_settlement: str = "09:30"
    pm_settlement: str = "16:00"
    default_settlement: Literal["AM", "PM"] = "PM"
    valuation_time_of_day: str = "16:15"
    zero_bid_rule: bool = True
    exclude_zero_ask: bool = False
    adjusted: AdjustedMode = "keep"
    rate_compounding: Literal["continuous", "simple"] = "continuous"
    rate_max_stale_days: int | None = 7
    target_days: tuple[int, int] = (30, 60)
    extrapolation: Literal["linear", "flat"] = "linear"
    on_stale: Literal["nan", "keep"] = "nan"
    require_both_wings: bool = True
    k0_fallback: Literal["none", "lowest_strike"] = "none"

    def __post_init__(self) -> None:
        choices = {
            "price_rule": ("mid", "sse", "close"),
            "k0_rule": ("at_or_below", "below"),
            "time_basis": ("minutes", "days"),
            "minute_clock": ("whole", "fractional"),
            "extrapolation": ("linear", "flat"),
            "default_settlement": ("AM", "PM"),
            "adjusted": ADJUSTED_MODES,
            "rate_compounding": ("continuous", "simple"),
            "on_stale": ("nan", "keep"),
            "k0_fallback": ("none", "lowest_strike"),
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ConfigError(
                    f"VixMethod.{name}={getattr(self, name)!r} is not valid; use one of {valid}"
                )
        if self.min_near_days < 0 or len(self.target_days) != 2 or min(self.target_days) <= 0:
            raise ConfigError(
                "VixMethod needs min_near_days >= 0 and two positive target_days, got "
                f"{self.min_near_days}, {self.target_days}"
            )
        for name in ("am_settlement", "pm_settlement", "valuation_time_of_day"):
            _clock_minutes(getattr(self, name), f"VixMethod.{name}")


CBOE = VixMethod(name="cboe")
CBOE_2009 = VixMethod(
    name="cboe_2009", k0_rule="below", min_near_days=8, max_next_days=None, time_basis="days"
)
SSE_IVIX = VixMethod(
    name="sse_ivix",
    price_rule="sse",
    min_near_days=7,
    max_next_days=None,
    time_basis="days",
    timezone="Asia/Shanghai",
    am_settlement="09:30",
    pm_settlement="15:00",
    valuation_time_of_day="15:00",
    adjusted="standard_grid",
    extrapolation="flat",
)
PRESETS: dict[str, VixMethod] = {m.name: m for m in (CBOE, CBOE_2009, SSE_IVIX)}


def get_method(method: str | VixMethod = "cboe", **overrides: object) -> VixMethod:
    """A preset by name (or a VixMethod) with field overrides, e.g. ``min_near_days=1``."""
    if isinstance(method, VixMethod):
        base = method
    else:
        try:
            base = PRESETS[method]
        except KeyError:
            raise ConfigError(
                f"unknown VIX method preset {method!r}; valid presets: {sorted(PRESETS)}"
            ) from None
    if not overrides:
        return base
    try:
        return replace(base, **overrides)
    except TypeError:
        bad = sorted(set(overrides) - set(VixMethod.__dataclass_fields__))
        raise ConfigError(
            f"unknown VixMethod option(s) {bad}; valid: {sorted(VixMethod.__dataclass_fields__)}"
        ) from None


# --------------------------------------------------------------------------------------------
# prices


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return df[name].to_numpy(dtype=float, na_value=np.nan)


def option_price(df: pd.DataFrame, rule: PriceRule) -> np.ndarray:
    """Price of every row of a chain by ``rule`` (vectorised; NaN where none can be formed).

    ``"sse"`` (REFERENCES §2): traded (a last price, and volume > 0 where volume is known) with
    both quotes -> last if bid <= last <= ask else the mid; bid only -> max(bid, last); ask only
    -> min(ask, last); no quotes -> last. Not traded: both quotes -> mid; bid only ->
    max(bid, prev_settle); ask only -> min(ask, prev_settle); nothing -> prev_settle. Where this
    gives no price (close-only data) the ``close`` is used.
    """
    bid, ask = _col(df, "bid"), _col(df, "ask")
    mid = 0.5 * (bid + ask)
    if rule == "mid":
        return mid
    close = _col(df, "close")
    if rule == "close":
        return close
    if rule != "sse":
        raise ConfigError(f"price_rule={rule!r}: use 'mid', 'sse' or 'close'")
    last, settle, volume = _col(df, "last"), _col(df, "prev_settle"), _col(df, "volume")
    has_bid = np.isfinite(bid) & (bid > 0)
    has_ask = np.isfinite(ask) & (ask > 0)
    traded = np.isfinite(last) & np.where(np.isfinite(volume), volume > 0, True)
    with np.errstate(invalid="ignore"):
        inside = (last >= bid) & (last <= ask)
        price = np.select(
            [
                traded & has_bid & has_ask,
                traded & has_bid,
                traded & has_ask,
                traded,
                has_bid & has_ask,
                has_bid,
                has_ask,
            ],
            [
                np.where(inside, last, mid),
                np.fmax(bid, last),
                np.fmin(ask, last),
                last,
                mid,
                np.fmax(bid, settle),
                np.fmin(ask, settle),
            ],
            default=settle,
        )
    return np.where(np.isfinite(price), price, close)


# --------------------------------------------------------------------------------------------
# preparation: long rows -> strike rows (call and put side by side) -> (date, expiry) groups


@dataclass(frozen=True)
class _Strikes:
    """Strike rows of all groups, sorted by (trade_date, expiry, strike); group boundaries."""

    td: np.ndarray  # int64 ns per strike row
    ex: np.ndarray
    strike: np.ndarray
    call: np.ndarray  # price (NaN: leg absent or unpriced)
    put: np.ndarray
    call_bid: np.ndarray
    put_bid: np.ndarray
    call_ask: np.ndarray
    put_ask: np.ndarray
    g: np.ndarray  # group id per strike row
    g_start: np.ndarray  # first strike row of each group
    g_td: np.ndarray
    g_ex: np.ndarray
    g_pm: np.ndarray  # bool: P.M. settlement
    fingerprint_td: np.ndarray  # distinct trade dates (int64 ns) ...
    fingerprint: np.ndarray  # ... and an order-free hash of each date's priced rows
    priced_rows_td: np.ndarray  # priced rows per distinct date
    dropped: Mapping[str, int]
    dropped_by_year: pd.DataFrame


def _changes(*arrays: np.ndarray) -> np.ndarray:
    """True where any array differs from its previous element (True at 0): segment starts."""
    n = len(arrays[0])
    out = np.ones(n, dtype=bool)
    if n > 1:
        out[1:] = np.logical_or.reduce([a[1:] != a[:-1] for a in arrays])
    return out


def _raise_on_rows(mask: np.ndarray, what: str, fix: str, keys: tuple[np.ndarray, ...]) -> None:
    """DataError naming how many rows match ``mask``, the first one, and the fix."""
    if not mask.any():
        return
    td, ex, strike, is_call = keys
    i = int(np.flatnonzero(mask)[0])
    first = (
        f"{pd.Timestamp(td[i]).date()} {'C' if is_call[i] else 'P'} "
        f"exp {pd.Timestamp(ex[i]).date()} K={strike[i]:g}"
    )
    raise DataError(f"chain has {int(mask.sum())} {what} (first: {first}); {fix}")


def _call_flags(chain: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ("trade_date", "expiry", "cp", "strike") if c not in chain.columns]
    if missing:
        raise DataError(
            f"chain is missing column(s) {missing}; load it with a data.chains loader "
            "(trade_date, expiry, cp, strike and prices)"
        )
    is_call = (chain["cp"] == "C").to_numpy(dtype=bool, na_value=False)
    bad_cp = ~(is_call | (chain["cp"] == "P").to_numpy(dtype=bool, na_value=False))
    if bad_cp.any():
        i = int(np.flatnonzero(bad_cp)[0])
        raise DataError(f"chain row {i}: cp={chain['cp'].iloc[i]!r}; cp must be 'C' or 'P'")
    return is_call


def _pm_flags(chain: pd.DataFrame, method: VixMethod) -> np.ndarray:
    default_pm = method.default_settlement == "PM"
    if "settlement" not in chain.columns:
        return np.full(len(chain), default_pm)
    st = chain["settlement"]
    return np.where(
        st.isna().to_numpy(), default_pm, (st == "PM").to_numpy(dtype=bool, na_value=False)
    )


def _date_fingerprints(td, ex, strike, is_call, price) -> tuple[np.ndarray, ...]:
    """Per distinct trade date: the date, an order-free hash of its (expiry, cp, strike, price)
    rows (stale detection) and the number of priced rows."""
    priced = np.isfinite(price)
    h = pd.util.hash_array(ex) ^ (pd.util.hash_array(strike) * np.uint64(31))
    h = h ^ (pd.util.hash_array(np.where(priced, price, -1.0)) * np.uint64(131))
    h = h ^ (is_call.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    d_start = np.flatnonzero(_changes(td))
    if not len(td):
        return td[:0], np.empty(0, np.uint64), np.empty(0, np.int64)
    fp = np.add.reduceat(pd.util.hash_array(h.astype(np.int64)), d_start)
    return td[d_start], fp, np.add.reduceat(priced.astype(np.int64), d_start)


def _prepare(chain: pd.DataFrame, method: VixMethod) -> _Strikes:
    """Long rows -> strike rows (call and put side by side) sorted by (date, expiry, strike),
    with group boundaries; raises on crossed quotes, duplicate keys, mixed AM/PM groups."""
    is_call = _call_flags(chain)
    dropped: dict[str, int] = {}
    adj = adjusted_drop_mask(chain, method.adjusted)
    by_year = pd.DataFrame()
    if "adjusted" in chain.columns and len(chain):
        flagged = chain["adjusted"].to_numpy(dtype=bool, na_value=False)
        masks = {f"dropped: adjusted ({method.adjusted})": adj, "kept: adjusted": flagged & ~adj}
        by_year = counts_by_period(chain["trade_date"].to_numpy(), masks, "Y")
    if adj.any():
        dropped[f"adjusted ({method.adjusted})"] = int(adj.sum())
        chain, is_call = chain.loc[~adj], is_call[~adj]
    td = chain["trade_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    ex = chain["expiry"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    strike = chain["strike"].to_numpy(dtype=float)
    bid, ask = _col(chain, "bid"), _col(chain, "ask")
    price = option_price(chain, method.price_rule)
    pm = _pm_flags(chain, method)
    _raise_on_rows(
        bid > ask,
        "rows with bid > ask",
        "drop them with data.chains.apply_policy(chain, drop_crossed=True) or fix the source",
        (td, ex, strike, is_call),
    )

    order = np.lexsort((is_call, strike, ex, td))
    td, ex, strike, is_call = td[order], ex[order], strike[order], is_call[order]
    price, bid, ask, pm = price[order], bid[order], ask[order], pm[order]
    new_strike = _changes(td, ex, strike)
    _raise_on_rows(
        ~new_strike & ~_changes(is_call),
        "duplicate (trade_date, cp, expiry, strike) keys",
        "resolve them with data.chains.apply_policy (duplicates='drop'|'first')",
        (td, ex, strike, is_call),
    )
    row = np.cumsum(new_strike) - 1  # strike row of each long row
    n_s = int(row[-1]) + 1 if len(row) else 0
    s_first = np.flatnonzero(new_strike)

    def side(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.full(n_s, np.nan)
        out[row[mask]] = values[mask]
        return out

    s_td, s_ex = td[s_first], ex[s_first]
    g_change = _changes(s_td, s_ex)
    g = np.cumsum(g_change) - 1
    g_start = np.flatnonzero(g_change)
    # one settlement convention per group (AM and PM series on one date = two roots)
    n_g = len(g_start)
    pm_sum = np.bincount(g[row], weights=pm.astype(float), minlength=n_g)
    mixed = (pm_sum > 0) & (pm_sum < np.bincount(g[row], minlength=n_g))
    if mixed.any():
        j = g_start[int(np.flatnonzero(mixed)[0])]
        raise DataError(
            f"{pd.Timestamp(s_td[j]).date()} expiry {pd.Timestamp(s_ex[j]).date()} mixes A.M.- "
            "and P.M.-settled series; filter the chain to one root (e.g. chain.root == 'SPXW')"
        )
    fp_td, fp, n_priced = _date_fingerprints(td, ex, strike, is_call, price)
    return _Strikes(
        td=s_td,
        ex=s_ex,
        strike=strike[s_first],
        call=side(price, is_call),
        put=side(price, ~is_call),
        call_bid=side(bid, is_call),
        put_bid=side(bid, ~is_call),
        call_ask=side(ask, is_call),
        put_ask=side(ask, ~is_call),
        g=g,
        g_start=g_start,
        g_td=s_td[g_start],
        g_ex=s_ex[g_start],
        g_pm=pm_sum > 0,
        fingerprint_td=fp_td,
        fingerprint=fp,
        priced_rows_td=n_priced,
        dropped=dropped,
        dropped_by_year=by_year,
    )


# --------------------------------------------------------------------------------------------
# the per-term kernel (all groups at once)


@dataclass(frozen=True)
class _Terms:
    status: np.ndarray  # int code per group
    k_star: np.ndarray
    forward: np.ndarray
    k0: np.ndarray
    strip_term: np.ndarray  # (2/T) sum dK/K^2 e^{RT} Q
    forward_term: np.ndarray  # (1/T) (F/K0 - 1)^2
    sigma2: np.ndarray
    n_strikes: np.ndarray
    n_puts: np.ndarray
    n_calls: np.ndarray
    k_low: np.ndarray
    k_high: np.ndarray
    strip_idx: np.ndarray  # strike rows used (sorted by group, strike)
    strip_q: np.ndarray
    strip_dk: np.ndarray
    strip_contrib: np.ndarray  # dK/K^2 e^{RT} Q


def _wing_cut(rows: np.ndarray, g: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Within each group's walk (``rows`` in walk order), True from the 2nd of two consecutive
    zero-bid series on (that series and everything after it in the wing)."""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    gw = g[rows]
    z = zero[rows]
    same = np.zeros(rows.size, dtype=bool)
    same[1:] = gw[1:] == gw[:-1]
    prev_zero = np.zeros(rows.size, dtype=bool)
    prev_zero[1:] = z[:-1]
    pair = z & prev_zero & same
    c = np.cumsum(pair)
    starts = np.flatnonzero(~same)
    seg = np.cumsum(~same) - 1
    base = (c - pair)[starts]
    return (c - base[seg]) > 0


def _term_kernel(s: _Strikes, tau: np.ndarray, rate: np.ndarray, method: VixMethod) -> _Terms:
    n_g = len(s.g_start)
    g = s.g
    n_s = len(g)
    growth = np.exp(rate * tau)  # e^{RT} per group
    status = np.full(n_g, _OK, dtype=np.int64)
    status[~(tau > 0)] = _EXPIRED

    # forward from the strike with the smallest |C - P| (both legs priced)
    both = np.isfinite(s.call) & np.isfinite(s.put)
    diff = np.where(both, np.abs(s.call - s.put), np.inf)
    first = np.lexsort((diff, g))[s.g_start] if n_s else np.empty(0, np.int64)
    has_fwd = np.isfinite(diff[first])
    status[(status == _OK) & ~has_fwd] = _NO_FWD
    k_star = np.where(has_fwd, s.strike[first], np.nan)
    forward = k_star + growth * (s.call[first] - s.put[first])

    # K0: the last strike of the group equal to / below F
    f_row = forward[g]
    below = s.strike < f_row if method.k0_rule == "below" else s.strike <= f_row
    n_below = np.bincount(g, weights=below, minlength=n_g).astype(np.int64)
    if method.k0_fallback == "lowest_strike":
        n_below = np.where(has_fwd, np.maximum(n_below, 1), n_below)
    status[(status == _OK) & (n_below == 0)] = _NO_K0
    k0_row = s.g_start + np.maximum(n_below, 1) - 1
    k0 = np.where(n_below > 0, s.strike[k0_row], np.nan)
    k0_legs = np.isfinite(s.call[k0_row]) & np.isfinite(s.put[k0_row])
    status[(status == _OK) & ~k0_legs] = _MISSING_K0
    valid = status == _OK

    # OTM wings with the zero-bid rules (walk outward from K0)
    pos = np.arange(n_s)
    k0_of_row = k0_row[g]
    in_valid = valid[g]
    put_wing = in_valid & (pos < k0_of_row)
    call_wing = in_valid & (pos > k0_of_row)

    def leg(price, bid, ask, wing):
        present = wing & (np.isfinite(price) | np.isfinite(bid))
        usable = np.isfinite(price) & (price > 0)
        zero = np.zeros(n_s, dtype=bool)
        if method.zero_bid_rule:
            zero = np.isfinite(bid) & (bid <= 0)
        excluded = ~usable | zero
        if method.exclude_zero_ask:
            excluded |= np.isfinite(ask) & (ask <= 0)
        return present, excluded, zero

    p_present, p_excl, p_zero = leg(s.put, s.put_bid, s.put_ask, put_wing)
    c_present, c_excl, c_zero = leg(s.call, s.call_bid, s.call_ask, call_wing)
    p_rows = np.flatnonzero(p_present)[::-1]  # descending strike, groups reversed: still segments
    c_rows = np.flatnonzero(c_present)
    p_cut = np.zeros(n_s, dtype=bool)
    p_cut[p_rows] = _wing_cut(p_rows, g, p_zero)
    c_cut = np.zeros(n_s, dtype=bool)
    c_cut[c_rows] = _wing_cut(c_rows, g, c_zero)
    keep_put = p_present & ~p_excl & ~p_cut
    keep_call = c_present & ~c_excl & ~c_cut
    at_k0 = in_valid & (pos == k0_of_row)

    strip = keep_put | keep_call | at_k0
    idx = np.flatnonzero(strip)
    q = np.where(keep_put, s.put, np.where(keep_call, s.call, 0.5 * (s.call + s.put)))[idx]
    sg = g[idx]
    sk = s.strike[idx]
    m = idx.size
    prev_same = np.zeros(m, dtype=bool)
    prev_same[1:] = sg[1:] == sg[:-1]
    next_same = np.zeros(m, dtype=bool)
    next_same[:-1] = prev_same[1:]
    k_prev = np.empty(m)
    k_prev[1:] = sk[:-1]
    k_prev[:1] = np.nan
    k_next = np.empty(m)
    k_next[:-1] = sk[1:]
    k_next[-1:] = np.nan
    dk = np.where(
        prev_same & next_same,
        0.5 * (k_next - k_prev),
        np.where(next_same, k_next - sk, np.where(prev_same, sk - k_prev, np.nan)),
    )
    contrib = dk / (sk * sk) * growth[sg] * q
    total = np.bincount(sg, weights=np.nan_to_num(contrib), minlength=n_g)
    n_strikes = np.bincount(sg, minlength=n_g)
    n_puts = np.bincount(g[keep_put], minlength=n_g)
    n_calls = np.bincount(g[keep_call], minlength=n_g)
    if method.require_both_wings:
        status[(status == _OK) & ((n_puts == 0) | (n_calls == 0))] = _EMPTY_WING
    else:
        status[(status == _OK) & (n_puts == 0) & (n_calls == 0)] = _EMPTY_WING
    with np.errstate(divide="ignore", invalid="ignore"):
        strip_term = 2.0 / tau * total
        forward_term = (forward / k0 - 1.0) ** 2 / tau
        sigma2 = strip_term - forward_term
    status[(status == _OK) & ~(sigma2 > 0)] = _NEG_VAR
    ok = status == _OK
    k_low = np.full(n_g, np.nan)
    k_high = np.full(n_g, np.nan)
    if m:
        seg_start = np.flatnonzero(~prev_same)
        k_low[sg[seg_start]] = sk[seg_start]
        seg_end = np.flatnonzero(~next_same)
        k_high[sg[seg_end]] = sk[seg_end]
    return _Terms(
        status=status,
        k_star=k_star,
        forward=forward,
        k0=k0,
        strip_term=np.where(ok, strip_term, np.nan),
        forward_term=np.where(ok, forward_term, np.nan),
        sigma2=np.where(ok, sigma2, np.nan),
        n_strikes=np.where(ok, n_strikes, 0),
        n_puts=np.where(ok, n_puts, 0),
        n_calls=np.where(ok, n_calls, 0),
        k_low=np.where(ok, k_low, np.nan),
        k_high=np.where(ok, k_high, np.nan),
        strip_idx=idx,
        strip_q=q,
        strip_dk=dk,
        strip_contrib=contrib,
    )


# --------------------------------------------------------------------------------------------
# time to expiry and rates per group


def _valuation_ns(g_td: np.ndarray, method: VixMethod, valuation_time: object) -> np.ndarray:
    """Valuation instant (UTC ns) for each group's trade date."""
    dates = pd.DatetimeIndex(g_td.astype("datetime64[ns]"))
    tz = method.timezone
    if valuation_time is None or isinstance(valuation_time, str):
        clock = method.valuation_time_of_day if valuation_time is None else valuation_time
        minutes = _clock_minutes(clock, "valuation_time")
        local = dates + pd.Timedelta(minutes=minutes)
        return local.tz_localize(tz).tz_convert("UTC").as_unit("ns").asi8
    if isinstance(valuation_time, pd.Timestamp):
        ts = valuation_time if valuation_time.tzinfo else valuation_time.tz_localize(tz)
        day = ts.tz_convert(tz).tz_localize(None).normalize()
        other = dates[dates != day]
        if len(other):
            raise DataError(
                f"valuation_time {ts} is on {day.date()} but the chain has trade date "
                f"{other[0].date()}; pass a clock time ('16:15') or a Series by trade date"
            )
        return np.full(len(dates), ts.tz_convert("UTC").as_unit("ns").value, dtype=np.int64)
    if isinstance(valuation_time, pd.Series):
        stamps = valuation_time.reindex(dates)
        if stamps.isna().any():
            d = dates[stamps.isna().to_numpy()][0]
            raise DataError(f"valuation_time has no timestamp for trade date {d.date()}")
        idx = pd.DatetimeIndex(stamps)
        if idx.tz is None:
            idx = idx.tz_localize(tz)
        return idx.tz_convert("UTC").as_unit("ns").asi8
    raise DataError(
        f"valuation_time must be None, 'HH:MM', a Timestamp or a Series by trade date, got "
        f"{type(valuation_time).__name__}"
    )


def _time_to_expiry(
    s: _Strikes, method: VixMethod, valuation_time: object
) -> tuple[np.ndarray, np.ndarray]:
    """(tau_years, calendar days) per group."""
    days = (s.g_ex - s.g_td) / NS_PER_DAY
    if method.time_basis == "days":
        return days / DAYS_PER_YEAR, days
    am = _clock_minutes(method.am_settlement, "am_settlement")
    pm = _clock_minutes(method.pm_settlement, "pm_settlement")
    clock = np.where(s.g_pm, pm, am).astype(np.int64) * NS_PER_MINUTE
    local = pd.DatetimeIndex((s.g_ex + clock).astype("datetime64[ns]"))
    settle_ns = local.tz_localize(method.timezone).tz_convert("UTC").as_unit("ns").asi8
    val_ns = _valuation_ns(s.g_td, method, valuation_time)
    minutes = (settle_ns - val_ns) / NS_PER_MINUTE
    if method.minute_clock == "whole":
        minutes = np.floor(minutes)
    return minutes / MINUTES_PER_YEAR, days


def _rates(rates: RatesLike, s: _Strikes, days: np.ndarray, method: VixMethod) -> np.ndarray:
    n_g = len(s.g_start)
    if isinstance(rates, bool) or rates is None:
        raise DataError(
            "rates must be a number, a Mapping expiry->rate, a SHIBOR frame or callable"
        )
    if isinstance(rates, (int, float, np.floating)):
        return np.full(n_g, float(rates))
    if isinstance(rates, pd.DataFrame):
        return shibor_curve_rate(
            rates,
            s.g_td.astype("datetime64[ns]"),
            days,
            compounding=method.rate_compounding,
            year_days=DAYS_PER_YEAR,
            max_stale_days=method.rate_max_stale_days,
        )
    if isinstance(rates, Mapping):
        table = {pd.Timestamp(k).as_unit("ns").value: float(v) for k, v in rates.items()}
        out = np.array([table.get(int(e), np.nan) for e in np.unique(s.g_ex)])
        if np.isnan(out).any():
            e = np.unique(s.g_ex)[np.isnan(out)][0]
            raise DataError(
                f"rates mapping has no rate for expiry {pd.Timestamp(e).date()}; give one per "
                "expiry (continuously compounded decimal)"
            )
        return out[np.searchsorted(np.unique(s.g_ex), s.g_ex)]
    if callable(rates):
        out = np.asarray(
            rates(s.g_td.astype("datetime64[ns]"), s.g_ex.astype("datetime64[ns]"), days),
            dtype=float,
        )
        if out.shape != (n_g,) or not np.isfinite(out).all():
            raise DataError("rates callable must return one finite decimal rate per term")
        return out
    raise DataError(
        f"rates of type {type(rates).__name__} not understood; pass a float, a Mapping "
        "expiry->rate, a SHIBOR frame (data.rates.load_shibor) or a callable"
    )


# --------------------------------------------------------------------------------------------
# interpolation and results


def interpolate_vix(
    tau1: np.ndarray | float,
    sigma2_1: np.ndarray | float,
    tau2: np.ndarray | float,
    sigma2_2: np.ndarray | float,
    target_days: float = 30.0,
    extrapolation: Literal["linear", "flat"] = "linear",
) -> np.ndarray:
    """Index level ``100 sqrt(annualised variance at target_days)`` (REFERENCES §1).

    ``[T1 s1 (T2 - Tt)/(T2 - T1) + T2 s2 (Tt - T1)/(T2 - T1)] * 365/target_days`` with times in
    years (identical to the white paper's minute form since N365/N30 = 365/30). Outside
    [T1, T2] ``"linear"`` extrapolates on the same line in total variance and ``"flat"``
    returns the nearer term's own ``100 sqrt(sigma^2)``; a negative result gives NaN.
    """
    t1, v1, t2, v2 = (np.asarray(x, dtype=float) for x in (tau1, sigma2_1, tau2, sigma2_2))
    tt = target_days / DAYS_PER_YEAR
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = (t2 - tt) / (t2 - t1)
        var = (t1 * v1 * w1 + t2 * v2 * (1.0 - w1)) * DAYS_PER_YEAR / target_days
        if extrapolation == "flat":  # a failed (NaN) term fails the date either way
            flat = np.where(tt < t1, v1, np.where(tt > t2, v2, var))
            var = np.where(np.isnan(v1) | np.isnan(v2), np.nan, flat)
        return np.where(var >= 0, 100.0 * np.sqrt(np.abs(var)), np.nan)


@dataclass(frozen=True)
class VixResult:
    """Output of :func:`compute_vix`.

    ``index``: one row per trade date with ``vix30``, ``vix60``, ``status`` / ``status60``
    ("ok" or why there is no value: ``empty_chain``, ``single_expiry``, ``no_near_term``,
    ``no_next_term``, ``no_third_term``, ``stale`` or the failing term's status such as
    ``missing_k0_leg``) and per-term diagnostics ``{near,next,third}_{expiry, days, tau_years,
    rate_cc, forward, k0, n_strikes, k_low, k_high, sigma2, status}``.
    ``terms``: one row per (trade date, expiry) with the same diagnostics for every expiry.
    ``dropped``: rows removed by the method's policies (e.g. adjusted contracts);
    ``dropped_by_year``: per year, the chain's rows, adjusted rows dropped and adjusted rows kept
    (empty when the chain has no ``adjusted`` column or came in partitions).
    """

    index: pd.DataFrame
    terms: pd.DataFrame
    method: VixMethod
    dropped: Mapping[str, int] = field(default_factory=dict)
    dropped_by_year: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def vix30(self) -> pd.Series:
        return self.index["vix30"]

    @property
    def vix60(self) -> pd.Series:
        return self.index["vix60"]


@dataclass(frozen=True)
class TermResult:
    """One term of :func:`vix_term`: forward, K0, sigma^2 and the strip actually used.

    ``strip`` columns: strike, side ('P', 'C' or 'P/C' at K0), price Q, dK, contribution
    (dK/K^2 e^{RT} Q). ``strip_term`` = (2/T) sum of contributions; ``forward_term`` =
    (1/T)(F/K0 - 1)^2; ``sigma2`` = strip_term - forward_term.
    """

    trade_date: pd.Timestamp
    expiry: pd.Timestamp
    tau_years: float
    rate_cc: float
    k_star: float
    forward: float
    k0: float
    strip_term: float
    forward_term: float
    sigma2: float
    status: str
    strip: pd.DataFrame


_DIAG = (
    "expiry",
    "days",
    "tau_years",
    "rate_cc",
    "forward",
    "k0",
    "n_strikes",
    "k_low",
    "k_high",
    "sigma2",
    "status",
)


def _terms_frame(s: _Strikes, t: _Terms, tau, days, rate) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_date": s.g_td.astype("datetime64[ns]"),
            "expiry": s.g_ex.astype("datetime64[ns]"),
            "days": days,
            "tau_years": tau,
            "rate_cc": rate,
            "settlement": np.where(s.g_pm, "PM", "AM"),
            "k_star": t.k_star,
            "forward": t.forward,
            "k0": t.k0,
            "n_strikes": t.n_strikes,
            "n_puts": t.n_puts,
            "n_calls": t.n_calls,
            "k_low": t.k_low,
            "k_high": t.k_high,
            "strip_term": t.strip_term,
            "forward_term": t.forward_term,
            "sigma2": t.sigma2,
            "status": _TERM_STATUS[t.status],
        }
    )


def _select_terms(terms: pd.DataFrame, method: VixMethod, s: _Strikes) -> pd.DataFrame:
    """Near/next/third per date (array ops over date segments) and the interpolated indices."""
    n_g = len(terms)
    g_td = s.g_td
    d_change = np.ones(n_g, dtype=bool)
    d_change[1:] = g_td[1:] != g_td[:-1]
    d_start = np.flatnonzero(d_change)
    d_end = np.append(d_start[1:], n_g)
    n_exp = d_end - d_start
    days = terms["days"].to_numpy()
    big = np.iinfo(np.int64).max
    cand = np.where(days >= method.min_near_days, np.arange(n_g), big)
    near = np.minimum.reduceat(cand, d_start) if n_g else np.empty(0, np.int64)
    has_near = near != big
    nxt = np.where(has_near, near + 1, big)
    has_next = has_near & (nxt < d_end)
    if method.max_next_days is not None:
        has_next &= days[np.minimum(nxt, n_g - 1)] <= method.max_next_days
    third = np.where(has_next, near + 2, big)
    has_third = has_next & (third < d_end)

    out = pd.DataFrame(index=pd.DatetimeIndex(g_td[d_start].astype("datetime64[ns]")))
    out.index.name = "trade_date"
    status = np.full(len(d_start), "ok", dtype=object)
    status60 = np.full(len(d_start), "ok", dtype=object)
    tstat = terms["status"].to_numpy(dtype=object)
    sig = terms["sigma2"].to_numpy()
    tau = terms["tau_years"].to_numpy()
    picks = {"near": (near, has_near), "next": (nxt, has_next), "third": (third, has_third)}
    for name, (ix, has) in picks.items():
        safe = np.where(has, ix, 0)
        for col in _DIAG:
            v = terms[col].to_numpy()[safe] if n_g else np.empty(0)
            if col == "status":
                v = np.where(has, v, None)
            elif col == "expiry":
                v = np.where(has, v, np.datetime64("NaT"))
            else:
                v = np.where(has, v, np.nan)
            out[f"{name}_{col}"] = v
    # date status, most basic reason first
    s_near = np.where(has_near, tstat[np.where(has_near, near, 0)], "ok")
    s_next = np.where(has_next, tstat[np.where(has_next, nxt, 0)], "ok")
    s_third = np.where(has_third, tstat[np.where(has_third, third, 0)], "ok")
    status = np.where(s_next != "ok", s_next, status)
    status = np.where(s_near != "ok", s_near, status)
    status = np.where(~has_next, "no_next_term", status)
    status = np.where(~has_near, "no_near_term", status)
    status = np.where(n_exp == 1, "single_expiry", status)
    status60 = np.where(s_third != "ok", s_third, status60)
    status60 = np.where(s_next != "ok", s_next, status60)
    status60 = np.where(~has_third, "no_third_term", status60)
    status60 = np.where(~has_next, status, status60)
    t30, t60 = method.target_days
    i1, i2, i3 = (
        np.where(h, i, 0) for i, h in ((near, has_near), (nxt, has_next), (third, has_third))
    )
    ext = method.extrapolation
    vix30 = interpolate_vix(tau[i1], sig[i1], tau[i2], sig[i2], t30, ext) if n_g else np.empty(0)
    vix60 = interpolate_vix(tau[i2], sig[i2], tau[i3], sig[i3], t60, ext) if n_g else np.empty(0)
    ok30 = status == "ok"
    ok60 = status60 == "ok"
    status = np.where(ok30 & ~np.isfinite(vix30), "negative_variance", status)
    status60 = np.where(ok60 & ~np.isfinite(vix60), "negative_variance", status60)
    out.insert(0, "vix30", np.where(status == "ok", vix30, np.nan))
    out.insert(1, "vix60", np.where(status60 == "ok", vix60, np.nan))
    out.insert(2, "status", status.astype(str))
    out.insert(3, "status60", status60.astype(str))
    return out


def _apply_stale(out: pd.DataFrame, s: _Strikes, method: VixMethod) -> pd.DataFrame:
    fp = s.fingerprint
    stale = np.zeros(len(fp), dtype=bool)
    stale[1:] = (fp[1:] == fp[:-1]) & (s.priced_rows_td[1:] > 0)
    if not stale.any():
        return out
    dates = pd.DatetimeIndex(s.fingerprint_td[stale].astype("datetime64[ns]"))
    warnings.warn(
        StaleDataWarning(
            f"{len(dates)} trade date(s) repeat the previous date's whole chain (first: "
            f"{dates[0].date()}); flagged status='stale'"
            + (" and set NaN" if method.on_stale == "nan" else " (values kept)")
        ),
        stacklevel=3,
    )
    mask = out.index.isin(dates)
    out = out.copy()
    out.loc[mask, "status"] = "stale"
    out.loc[mask, "status60"] = "stale"
    if method.on_stale == "nan":
        out.loc[mask, ["vix30", "vix60"]] = np.nan
    return out


def compute_vix(
    chain: pd.DataFrame,
    method: str | VixMethod = "cboe",
    rates: RatesLike = 0.0,
    *,
    valuation_time: object = None,
    dates: pd.DatetimeIndex | None = None,
    **overrides: object,
) -> VixResult:
    """The index for every trade date of ``chain`` in one vectorised pass.

    ``chain``: long chain schema (data.chains); duplicate keys and crossed quotes raise
    :class:`DataError` naming the first one (clean with ``data.chains.apply_policy``).
    ``method``: preset name or :class:`VixMethod`; ``overrides`` replace fields.
    ``rates``: a constant continuously compounded decimal rate, a Mapping expiry -> rate, a
    SHIBOR frame (``data.rates.load_shibor``; cubic spline per expiry, see
    ``VixMethod.rate_compounding``) or ``callable(trade_dates, expiries, days) -> rates``.
    ``valuation_time`` (minute basis only): ``None`` (the method's clock time on each trade
    date), ``'HH:MM'``, a Timestamp (single-date chain) or a Series of timestamps by trade date.
    ``dates``: report exactly these trade dates; dates without rows get ``empty_chain``.
    A date repeating the previous date's whole chain is flagged ``stale`` (StaleDataWarning).
    """
    m = get_method(method, **overrides)
    s = _prepare(chain, m)
    if len(s.g_start) == 0:
        terms = pd.DataFrame(columns=["trade_date", "expiry", *_DIAG])
        index = _select_terms_empty(m)
    else:
        tau, days = _time_to_expiry(s, m, valuation_time)
        rate = _rates(rates, s, days, m)
        t = _term_kernel(s, tau, rate, m)
        terms = _terms_frame(s, t, tau, days, rate)
        index = _select_terms(terms, m, s)
        empty = s.priced_rows_td == 0
        if empty.any():
            mask = index.index.isin(s.fingerprint_td[empty].astype("datetime64[ns]"))
            index.loc[mask, ["vix30", "vix60"]] = np.nan
            index.loc[mask, ["status", "status60"]] = "empty_chain"
        index = _apply_stale(index, s, m)
    if dates is not None:
        want = pd.DatetimeIndex(dates).astype("datetime64[ns]").normalize()
        index = index.reindex(want)
        index.index.name = "trade_date"
        absent = index["status"].isna().to_numpy()
        index.loc[absent, ["status", "status60"]] = "empty_chain"
    if s.dropped:
        logger.info("compute_vix(%s): dropped %s", m.name, dict(s.dropped))
    return VixResult(
        index=index,
        terms=terms,
        method=m,
        dropped=dict(s.dropped),
        dropped_by_year=s.dropped_by_year,
    )


def _select_terms_empty(method: VixMethod) -> pd.DataFrame:
    cols = ["vix30", "vix60", "status", "status60"] + [
        f"{t}_{c}" for t in ("near", "next", "third") for c in _DIAG
    ]
    out = pd.DataFrame(columns=cols, index=pd.DatetimeIndex([], name="trade_date"))
    return out.astype({"vix30": float, "vix60": float})


def vix_term(
    chain: pd.DataFrame,
    tau_years: float,
    rate_cc: float,
    method: str | VixMethod = "cboe",
    **overrides: object,
) -> TermResult:
    """sigma^2 of a single term (one trade date, one expiry) with a given T and rate.

    Runs the same kernel as :func:`compute_vix`; the white-paper goldens use it with the
    paper's T and R. Raises DataError if the chain holds more than one (date, expiry).
    """
    m = get_method(method, **overrides)
    s = _prepare(chain, m)
    if len(s.g_start) != 1:
        raise DataError(
            f"vix_term needs a chain of exactly one (trade_date, expiry), got {len(s.g_start)}; "
            "filter it or use compute_vix"
        )
    tau = np.array([float(tau_years)])
    t = _term_kernel(s, tau, np.array([float(rate_cc)]), m)
    idx = t.strip_idx
    k0 = t.k0[0]
    side = np.where(s.strike[idx] < k0, "P", np.where(s.strike[idx] > k0, "C", "P/C"))
    strip = pd.DataFrame(
        {
            "strike": s.strike[idx],
            "side": side,
            "price": t.strip_q,
            "dk": t.strip_dk,
            "contribution": t.strip_contrib,
        }
    )
    return TermResult(
        trade_date=pd.Timestamp(s.g_td[0]),
        expiry=pd.Timestamp(s.g_ex[0]),
        tau_years=float(tau_years),
        rate_cc=float(rate_cc),
        k_star=float(t.k_star[0]),
        forward=float(t.forward[0]),
        k0=float(k0),
        strip_term=float(t.strip_term[0]),
        forward_term=float(t.forward_term[0]),
        sigma2=float(t.sigma2[0]),
        status=str(_TERM_STATUS[t.status[0]]),
        strip=strip,
    )
