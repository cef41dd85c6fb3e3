"""Choosing an option leg from one day's chain: expiry rule, strike rule (moneyness, delta from
the Black-Scholes kernels, premium) and a status when nothing qualifies (issue 13).

Pure functions over the arrays of *one trade date's* chain rows: the executor passes only that
day's rows, so a leg can never be chosen from later data (the look-ahead test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.bs import bs_greeks, bs_price, implied_vol

# statuses of a leg that could not be chosen on a date (reported per date, never a crash)
NO_EXPIRY = "no_expiry"  # no listed expiry satisfies the expiry rule
NO_STRIKE = "no_strike"  # the expiry has no strike satisfying the strike rule
NO_BID = "no_bid"  # the chosen contract has no price to sell at


def is_third_friday(expiry) -> np.ndarray:
    """Third Friday of its month, or the Thursday before it (a Good Friday-style holiday moves
    an SPX monthly expiry to the previous session)."""
    d = pd.DatetimeIndex(np.atleast_1d(expiry))
    fri = (d.day_of_week == 4) & (d.day >= 15) & (d.day <= 21)
    thu = (d.day_of_week == 3) & (d.day >= 14) & (d.day <= 20)
    return np.asarray(fri | thu)


def is_fourth_wednesday(expiry) -> np.ndarray:
    """Fourth Wednesday of its month, or a later session up to a week on (SSE moves the expiry
    to the next session when the fourth Wednesday is a holiday)."""
    d = pd.DatetimeIndex(np.atleast_1d(expiry))
    wed = (d.day_of_week == 2) & (d.day >= 22) & (d.day <= 28)
    later = (d.day_of_week != 2) & (d.day >= 23) & (d.day_of_week <= 4)
    fourth_wed_day = 22 + (2 - pd.DatetimeIndex(d.to_period("M").to_timestamp()).day_of_week) % 7
    moved = later & (d.day > fourth_wed_day) & (d.day - fourth_wed_day <= 7)
    return np.asarray(wed | moved)


def choose_expiry(day: pd.Timestamp, expiries: np.ndarray, rule: str, min_days: int):
    """The nearest listed expiry (of the day's ``expiries``) at least ``min_days`` calendar days
    after ``day`` that the rule accepts: ``nearest`` any, ``third_friday``, ``fourth_wednesday``,
    ``monthly`` either of those. None when no expiry qualifies."""
    exp = np.unique(np.asarray(expiries, dtype="datetime64[ns]"))
    days = (exp - np.datetime64(day, "ns")).astype("timedelta64[D]").astype(int)
    ok = days >= max(min_days, 1)
    if rule == "third_friday":
        ok &= is_third_friday(exp)
    elif rule == "fourth_wednesday":
        ok &= is_fourth_wednesday(exp)
    elif rule == "monthly":
        ok &= is_third_friday(exp) | is_fourth_wednesday(exp)
    if not ok.any():
        return None
    return pd.Timestamp(exp[ok][0])


@dataclass(frozen=True)
class StrikeChoice:
    index: int  # position in the arrays passed, -1 when none
    status: str  # "ok" or a status constant
    delta: float = float("nan")


def choose_strike(
    cp: str,
    strikes: np.ndarray,
    marks: np.ndarray,
    spot: float,
    tau_years: float,
    rate_cc: float,
    by: str,
    value: float,
    pick: str = "nearest",
) -> StrikeChoice:
    """Row of the strike the rule picks among one expiry's contracts of type ``cp``.

    ``moneyness``: target ``value * spot``; ``pick`` ``below`` takes the highest strike at or
    below it (Cboe PUT), ``above`` the lowest at or above (Cboe BXM), ``nearest`` the closest.
    ``delta``: the contract whose Black-Scholes delta (implied volatility from its own mark that
    day) is closest to ``value`` (puts negative). ``premium``: the mark closest to ``value``
    (price units). Contracts without a positive mark are skipped."""
    strikes = np.asarray(strikes, float)
    marks = np.asarray(marks, float)
    usable = np.isfinite(marks) & (marks > 0) & np.isfinite(strikes)
    if not usable.any() or not np.isfinite(spot):
        return StrikeChoice(-1, NO_STRIKE)
    idx = np.flatnonzero(usable)
    k = strikes[idx]
    if by == "moneyness":
        target = value * spot
        if pick == "below":
            cand = np.flatnonzero(k <= target + 1e-12)
            return (
                StrikeChoice(int(idx[cand[np.argmax(k[cand])]]), "ok")
                if cand.size
                else (StrikeChoice(-1, NO_STRIKE))
            )
        if pick == "above":
            cand = np.flatnonzero(k >= target - 1e-12)
            return (
                StrikeChoice(int(idx[cand[np.argmin(k[cand])]]), "ok")
                if cand.size
                else (StrikeChoice(-1, NO_STRIKE))
            )
        return StrikeChoice(int(idx[np.argmin(np.abs(k - target))]), "ok")
    if by == "premium":
        return StrikeChoice(int(idx[np.argmin(np.abs(marks[idx] - value))]), "ok")
    call = cp == "C"
    iv = implied_vol(marks[idx], spot, k, tau_years, rate_cc=rate_cc, is_call=call)
    if not iv.ok.any():
        return StrikeChoice(-1, NO_STRIKE)
    good = np.flatnonzero(iv.ok)
    delta = bs_greeks(spot, k[good], tau_years, iv.iv[good], rate_cc=rate_cc, is_call=call).delta
    j = int(np.argmin(np.abs(delta - value)))
    return StrikeChoice(int(idx[good[j]]), "ok", float(delta[j]))


def deltas(cp, strikes, marks, spot: float, tau_years, rate_cc: float) -> np.ndarray:
    """Black-Scholes deltas of contracts from their own marks (NaN where the implied volatility
    cannot be solved; at or after expiry the delta is the exercise indicator)."""
    cp = np.asarray(cp)
    strikes = np.asarray(strikes, float)
    tau = np.asarray(tau_years, float) * np.ones_like(strikes)
    call = cp == "C"
    out = np.full(len(strikes), np.nan)
    live = tau > 0
    if live.any():
        iv = implied_vol(
            np.asarray(marks, float)[live], spot, strikes[live], tau[live], rate_cc=rate_cc,
            is_call=call[live],
        )  # fmt: skip
        d = np.full(live.sum(), np.nan)
        if iv.ok.any():
            d[iv.ok] = bs_greeks(
                spot, strikes[live][iv.ok], tau[live][iv.ok], iv.iv[iv.ok], rate_cc=rate_cc,
                is_call=call[live][iv.ok],
            ).delta  # fmt: skip
        out[live] = d
    dead = ~live
    itm_call = np.where(spot > strikes[dead], 1.0, 0.0)
    itm_put = np.where(spot < strikes[dead], -1.0, 0.0)
    out[dead] = np.where(call[dead], itm_call, itm_put)
    return out


def wing_mark(
    cp: str,
    strike: float,
    listed_strikes: np.ndarray,
    listed_marks: np.ndarray,
    spot: float,
    tau_years: float,
    rate_cc: float,
) -> float:
    """Model mark of a contract the day's chain does not list (its strike has left the listed
    range): Black-Scholes at the implied volatility of the nearest listed strike of the same
    expiry and type (the smile held flat beyond the listed wing). NaN when no listed strike's
    volatility can be solved."""
    k = np.asarray(listed_strikes, float)
    p = np.asarray(listed_marks, float)
    ok = np.isfinite(p) & (p > 0)
    if not ok.any() or not tau_years > 0:
        return float("nan")
    order = np.argsort(np.abs(k[ok] - strike))
    iv = implied_vol(p[ok][order[:3]], spot, k[ok][order[:3]], tau_years, rate_cc=rate_cc,
                     is_call=cp == "C")  # fmt: skip
    good = np.flatnonzero(iv.ok)
    if not good.size:
        return float("nan")
    sigma = float(iv.iv[good[0]])
    return float(bs_price(spot, strike, tau_years, sigma, rate_cc=rate_cc, is_call=cp == "C"))
