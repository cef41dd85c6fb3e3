"""Embedded option chains: a 50ETF-like underlying with SSE-style daily chains, and SPX-like
chains priced on the embedded US market's variance state.

Both are priced from affine stochastic-volatility models whose 30-day variance-swap level is
known in closed form, so the VIX/iVIX calculators can be checked against the truth.

**Pricing kernel (both chains).** ``X = ln(S_T / F)`` under Q has the characteristic function
``phi(u) = exp(A(tau) + sum_i B_i(tau) v_i)`` of a sum of independent Heston (CIR) variance
factors (Heston 1993; the "little trap" form of Albrecher, Mayer, Schoutens & Tistaert 2007),
optionally with compound-Poisson jumps ``J ~ Exp(mean mu)`` in the first factor that come with a
log-price jump ``-beta J`` (the embedded US market of :mod:`data.synthetic`)::

    a = kappa - i rho xi u,   d = sqrt(a^2 + xi^2 (i u + u^2)),   g = (a - d) / (a + d)
    B = (a - d) / xi^2 * (1 - e^{-d tau}) / (1 - g e^{-d tau})
    A = sum_i kappa theta / xi^2 [(a - d) tau - 2 log((1 - g e^{-d tau}) / (1 - g))]
        + lam int_0^tau [1 / (1 - mu (B_1(s) - i u beta)) - 1] ds - i u lam kappa_J tau

with ``kappa_J = E[e^{-beta J}] - 1`` (the jump integral by Gauss-Legendre in ``s``). Prices by
Lewis (2001): ``C = e^{-r tau} [F - sqrt(F K) / pi int_0^inf Re(e^{-i u k} phi(u - i/2)) /
(u^2 + 1/4) du]`` with ``k = ln(K / F)``, written as the Black-Scholes price with the same
expected total variance ``w`` plus the integral of ``phi - phi_BS`` (a control variate: the
difference is smooth on the scale 1/sqrt(w), where the raw integrand also has the 1/(u^2 + 1/4)
peak), one Gauss-Legendre rule per (date, expiry) on ``[0, U_MAX_SD / sqrt(w)]``, vectorised
over every contract; puts by parity. A test checks the quadrature against scipy's adaptive
``quad`` and the Black-Scholes limit.

**Variance-swap level.** For a CIR factor the expected average variance over ``tau`` is
``m + (v - m)(1 - e^{-kappa tau}) / (kappa tau)`` (``m`` the Q long-run mean). Without jumps
this is the fair variance of the log contract, i.e. what the VIX formula measures
(:func:`etf50_model_vix`); with the US market's price jumps the log contract adds
``2 lam E[e^j - 1 - j]`` and equals :func:`data.synthetic.model_vix`.

**50ETF-like underlying (``etf50``).** One Heston factor simulated exactly (non-central
chi-square CIR transitions, drift interpolation for the log price as in :mod:`data.synthetic`)
on the SSE sessions (exchange_calendars ``XSHG``) in *calendar* time, so the variance swap over
30 calendar days is the closed form above with ``tau = 30 / 365`` (the iVIX convention). Each
session is an overnight step (close to open) and an intraday step of ``INTRADAY_DAYS`` (the 4
trading hours). Parameters (:class:`EtfChainParams`) are set to broad 510050 figures, not fitted:
price about 2.5 CNY, realised volatility about 24 % (P long-run variance 0.06), a model 30-day
iVIX of about 24 on average (Q long-run variance 0.08: implied above realised), mean reversion
with a half-life of about 3 months, negative but milder skew than the S&P (rho -0.4). High/low
bracket open and close (not simulated); volume is a constant placeholder.

**50ETF-like chains (``etf50_chains``).** SSE contract rules: expiry on the 4th Wednesday of the
month, moved to the next XSHG session when that is a holiday; four listed months (the current
and next month and the next two quarterly months after them); strikes on the SSE grid (0.05 CNY
up to 3, 0.1 up to 5, 0.25 up to 10, 0.5 above). Deviation, on purpose: SSE lists 5 (later 9)
strikes and adds more as the price moves; here each day lists the grid strikes covering the
model's ``strike_sd_down`` / ``strike_sd_up`` standard deviations of ``ln(S_T / F)`` (horizon
capped at ``strike_horizon_days``), so the VIX recovery test measures the calculator rather than
a narrow listing. Quotes: bid/ask around the model price rounded outwards to the 0.0001 CNY
tick with a half spread of ``max(min_half_spread, rel_half_spread x price)`` (at least 1.5
ticks); bids below zero are 0, so the far wings have zero bids. ``close`` = the model price on
the tick (the shared 50ETF data has closes only). European, no dividends (so no adjusted "A"
contracts), constant rate ``rate_cc``, P.M. settlement, multiplier 10,000. Contracts are listed
from the day after the previous expiry; rows on an expiry day itself are not generated.
Measured (tests/test_options_integration.py): the SSE steps (2 % of spot) are coarse for 7-30
day terms, and the iVIX of these chains exceeds the model's variance-swap level by 0.2-0.5
points on average (strike discretisation); with ``strike_step_divisor=5`` the error is below
0.3 points.

**SPX-like chains (``spx_chains``).** Priced on the embedded US market (``data.synthetic``):
its SPX close, its two variance factors at the close and its Q parameters (with the price
jumps), rate ``tbill_rate``, no dividends, so the Cboe calculator should reproduce that
market's VIX. Expiries: P.M.-settled weeklies on every Wednesday and Friday up to
``weekly_days`` ahead and the A.M.-settled standard 3rd-Friday monthlies up to
``monthly_days`` (moved to the previous NYSE session on a holiday). Strike step chosen per
expiry from {5, 10, 25, 50, 100} to give about ``strikes_per_sd`` strikes per standard
deviation; time to expiry in minutes from 16:15 ET to 09:30 (A.M.) / 16:00 (P.M.) as the Cboe
method counts it. The SPX-like chain is generated for the window asked for (a year takes about
ten times a year of the 50ETF-like chain): it is not part of the default embedded market.

Generation is vectorised over every contract of the history (chunks of (date, expiry) groups);
random numbers come from their own ``SeedSequence`` spawn key (``ETF50_SPAWN_KEY``), independent
of the US market and the pair for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from volbacktest.data.calendars import nyse_sessions, sse_sessions
from volbacktest.data.synthetic import generate_market
from volbacktest.engine.caches import CACHES
from volbacktest.engine.errors import ConfigError

DAYS_PER_YEAR = 365.0  # calendar-day year of the VIX/iVIX methodology (REFERENCES.md sections 1-2)
MINUTES_PER_YEAR = 525_600.0  # Cboe VIX: T = minutes to settlement / 525,600
INTRADAY_DAYS = 4.0 / 24.0  # SSE continuous trading 09:30-11:30 and 13:00-15:00: 4 hours
VIX_POINTS = 100.0  # index points per unit of annualised volatility
ETF50_SPAWN_KEY = 0x45544635  # "ETF5": SeedSequence spawn key of the 50ETF-like streams
_STREAMS = {"variance": 0, "price": 1, "initial": 2}  # add names, never renumber
# Lewis quadrature: Gauss-Legendre nodes on [0, U_MAX_SD / sqrt(w)]; beyond that point the
# integrand of a diffusion is below exp(-U_MAX_SD^2 / 2) (tests compare with scipy quad).
LEWIS_NODES = 48
U_MAX_SD = 10.0
JUMP_NODES = 16  # Gauss-Legendre nodes of the jump integral over time to expiry
_CHUNK_GROUPS = 400  # (date, expiry) groups priced per vectorised chunk (bounds memory)
# SSE 50ETF strike grid (CNY): (upper bound, step) then the step above the last bound
SSE_STRIKE_GRID = ((3.0, 0.05), (5.0, 0.1), (10.0, 0.25))
SSE_STRIKE_STEP_ABOVE = 0.5
SSE_QUARTER_MONTHS = (3, 6, 9, 12)
SSE_TICK = 0.0001  # CNY per ETF unit
SSE_MULTIPLIER = 10_000.0
SPX_STRIKE_STEPS = (5.0, 10.0, 25.0, 50.0, 100.0)
SPX_MULTIPLIER = 100.0
# Cboe clock (ET): valuation at 16:15, A.M. settlement 09:30, P.M. 16:00 (REFERENCES.md s. 1)
_SPX_VALUATION_MIN, _SPX_AM_MIN, _SPX_PM_MIN = 16 * 60 + 15, 9 * 60 + 30, 16 * 60
CHAIN_KEY = ["trade_date", "expiry", "strike", "cp"]


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class EtfChainParams:
    """Parameters of the 50ETF-like underlying and its chains (years, decimals; v = vol^2).

    P (simulation) and Q (pricing) share ``xi`` and ``rho``; ``kappa * theta`` is the same under
    both (a market price of volatility risk proportional to v), so Q reverts more slowly to a
    higher mean: implied variance exceeds realised on average.
    """

    spot_start: float = 2.5
    drift: float = 0.06  # expected log-price drift under P (plus the -v/2 term)
    kappa_p: float = 3.0
    theta_p: float = 0.06
    kappa_q: float = 2.25
    theta_q: float = 0.08
    xi: float = 0.35
    rho: float = -0.4
    rate_cc: float = 0.03
    strike_sd_down: float = 5.0
    strike_sd_up: float = 4.0
    strike_horizon_days: float = 100.0
    strike_step_divisor: int = 1  # 1 = the SSE grid; n > 1 divides every SSE step by n
    min_half_spread: float = 0.00015
    rel_half_spread: float = 0.02
    volume: float = 5.0e8  # shares per session (placeholder)

    def __post_init__(self) -> None:
        for name in ("spot_start", "kappa_p", "theta_p", "kappa_q", "theta_q", "xi"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"EtfChainParams.{name} must be > 0, got {getattr(self, name)}")
        if not -1.0 < self.rho < 1.0:
            raise ConfigError(f"EtfChainParams.rho must be in (-1, 1), got {self.rho}")
        if abs(self.kappa_p * self.theta_p - self.kappa_q * self.theta_q) > 1e-12:
            raise ConfigError(
                "EtfChainParams: kappa_p * theta_p must equal kappa_q * theta_q (risk premium "
                f"proportional to v), got {self.kappa_p * self.theta_p} and "
                f"{self.kappa_q * self.theta_q}"
            )


@dataclass(frozen=True)
class SpxChainParams:
    """Listing and quoting rules of the SPX-like chains (prices come from data.synthetic)."""

    weekly_days: int = 45
    monthly_days: int = 100
    strike_sd_down: float = 5.0
    strike_sd_up: float = 3.5
    strikes_per_sd: float = 4.0
    tick_small: float = 0.05  # below 3.00 index points
    tick_large: float = 0.10
    min_half_spread: float = 0.05
    rel_half_spread: float = 0.02


@dataclass(frozen=True)
class Factor:
    """One CIR variance factor under Q: ``dv = kappa (theta - v) dt + xi sqrt(v) dW``,
    ``corr(dW, dZ_S) = rho``."""

    kappa: float
    theta: float
    xi: float
    rho: float


@dataclass(frozen=True)
class CoJumps:
    """Jumps ``J ~ Exp(mean)`` of the first factor at rate ``intensity`` (per year), with a
    log-price jump ``-beta J``."""

    intensity: float
    mean: float
    beta: float

    @property
    def price_compensator(self) -> float:
        """``kappa_J = E[e^{-beta J}] - 1``."""
        return 1.0 / (1.0 + self.beta * self.mean) - 1.0


# --------------------------------------------------------------------------- pricing kernel


def log_cf(
    u: np.ndarray,
    tau_years: np.ndarray,
    state: np.ndarray,
    factors: tuple[Factor, ...],
    jumps: CoJumps | None = None,
) -> np.ndarray:
    """``log E[exp(i u X)]`` of ``X = ln(S_T / F)`` (see the module docstring).

    ``u`` complex, broadcast against ``tau_years`` (> 0) and ``state`` (``state[..., i]`` the
    value of factor ``i``; leading shape broadcasts with ``u``).
    """
    u = np.asarray(u, dtype=complex)
    tau = np.asarray(tau_years, dtype=float)
    iu = 1j * u
    out = np.zeros(np.broadcast_shapes(u.shape, tau.shape), dtype=complex)
    b_first = None
    for i, f in enumerate(factors):
        a = f.kappa - f.rho * f.xi * iu
        d = np.sqrt(a * a + f.xi**2 * (iu + u * u))
        g = (a - d) / (a + d)
        e = np.exp(-d * tau)
        b = (a - d) / f.xi**2 * (1.0 - e) / (1.0 - g * e)
        c = f.kappa * f.theta / f.xi**2 * ((a - d) * tau - 2.0 * np.log((1.0 - g * e) / (1.0 - g)))
        out = out + c + b * np.asarray(state)[..., i]
        if i == 0:
            b_first = (a, d, g)
    if jumps is not None and jumps.intensity > 0.0:
        a, d, g = b_first
        f0 = factors[0]
        x, w = np.polynomial.legendre.leggauss(JUMP_NODES)
        integral = np.zeros_like(out)
        for xj, wj in zip(x, w, strict=True):
            s = 0.5 * tau * (xj + 1.0)
            e = np.exp(-d * s)
            b_s = (a - d) / f0.xi**2 * (1.0 - e) / (1.0 - g * e)
            integral = integral + 0.5 * tau * wj * (
                1.0 / (1.0 - jumps.mean * (b_s - iu * jumps.beta)) - 1.0
            )
        out = out + jumps.intensity * (integral - iu * jumps.price_compensator * tau)
    return out


def expected_variance(
    tau_years: np.ndarray, state: np.ndarray, factors: tuple[Factor, ...], jumps=None
) -> np.ndarray:
    """Q-expected average variance over ``tau_years`` (log-contract fair variance, annualised):
    ``sum_i m_i + (v_i - m_i)(1 - e^{-kappa_i tau}) / (kappa_i tau)`` plus, with jumps, the
    factor-1 jump mean and the log contract's ``2 lam E[e^j - 1 - j]``."""
    tau = np.asarray(tau_years, dtype=float)
    total = np.zeros(np.broadcast_shapes(tau.shape, np.asarray(state).shape[:-1]))
    for i, f in enumerate(factors):
        m = f.theta
        if i == 0 and jumps is not None:
            m = m + jumps.intensity * jumps.mean / f.kappa
        weight = -np.expm1(-f.kappa * tau) / (f.kappa * tau)
        total = total + m + (np.asarray(state)[..., i] - m) * weight
    if jumps is not None:
        bm = jumps.beta * jumps.mean
        total = total + 2.0 * jumps.intensity * (1.0 / (1.0 + bm) - 1.0 + bm)
    return total


def lewis_calls(
    group: np.ndarray,
    strike: np.ndarray,
    forward: np.ndarray,
    tau_years: np.ndarray,
    rate_cc: np.ndarray,
    state: np.ndarray,
    factors: tuple[Factor, ...],
    jumps: CoJumps | None = None,
) -> np.ndarray:
    """European call prices of many strikes: row ``j`` belongs to group ``group[j]`` whose
    forward, tau, rate and factor state (``state[g]``, one column per factor) are given per
    group. Rows must be sorted by group. Puts follow by parity (:func:`put_from_call`).

    One Gauss-Legendre rule per group (``LEWIS_NODES`` nodes on ``[0, U_MAX_SD / sqrt(w)]``),
    evaluated in chunks of ``_CHUNK_GROUPS`` groups.
    """
    group = np.asarray(group, dtype=np.int64)
    n_groups = len(forward)
    x, w = np.polynomial.legendre.leggauss(LEWIS_NODES)
    total_var = expected_variance(tau_years, state, factors, jumps) * tau_years
    u_max = U_MAX_SD / np.sqrt(total_var)
    bounds = np.searchsorted(group, np.arange(0, n_groups + _CHUNK_GROUPS, _CHUNK_GROUPS))
    call = np.empty(len(group))
    for c0 in range(0, n_groups, _CHUNK_GROUPS):
        gs = slice(c0, min(c0 + _CHUNK_GROUPS, n_groups))
        u = (0.5 * (x + 1.0))[None, :] * u_max[gs, None]  # (groups, nodes)
        weights = (0.5 * w)[None, :] * u_max[gs, None]
        phi = np.exp(log_cf(u - 0.5j, tau_years[gs, None], state[gs, None, :], factors, jumps))
        # control variate: Black-Scholes with the same total variance, phi_BS(u - i/2) =
        # exp(-w (u^2 + 1/4) / 2) (real); only the difference is integrated numerically
        phi_bs = np.exp(-0.5 * total_var[gs, None] * (u * u + 0.25))
        kernel = weights / (u * u + 0.25)
        re, im = (phi.real - phi_bs) * kernel, phi.imag * kernel  # (groups, nodes)
        rows = slice(bounds[c0 // _CHUNK_GROUPS], bounds[c0 // _CHUNK_GROUPS + 1])
        g = group[rows] - c0
        fwd = forward[gs][g]
        k_strike = strike[rows]
        k = np.log(k_strike / fwd)
        uk = u[g] * k[:, None]
        integral = (np.cos(uk) * re[g] + np.sin(uk) * im[g]).sum(axis=1)
        disc = np.exp(-rate_cc[gs][g] * tau_years[gs][g])
        sd = np.sqrt(total_var[gs][g])
        d1 = -k / sd + 0.5 * sd
        bs_call = disc * (fwd * ndtr(d1) - k_strike * ndtr(d1 - sd))
        call[rows] = bs_call - disc * np.sqrt(fwd * k_strike) / math.pi * integral
    return call


def put_from_call(call, strike, forward, tau_years, rate_cc) -> np.ndarray:
    """Put-call parity: ``P = C - e^{-r tau} (F - K)``."""
    return call - np.exp(-rate_cc * tau_years) * (forward - strike)


def _quotes(price, tick, min_half, rel_half) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bid, ask, close) on the tick: outward-rounded spread around the model price, bid >= 0."""
    tick = np.asarray(tick, dtype=float)
    half = np.maximum(min_half, rel_half * price)
    bid = np.maximum(np.floor((price - half) / tick + 1e-9) * tick, 0.0)
    ask = np.maximum(np.ceil((price + half) / tick - 1e-9) * tick, tick)
    close = np.maximum(np.round(price / tick) * tick, 0.0)
    return bid, ask, close


# --------------------------------------------------------------------------- calendars


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(ETF50_SPAWN_KEY, _STREAMS[name]))
    )


def _day(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}={value!r} is not a date; pass e.g. '2005-01-04'") from exc
    return ts.tz_localize(None).normalize() if ts.tz is not None else ts.normalize()


def sse_expiries(start, end, sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """SSE 50ETF option expiry of every month from ``start``'s month to ``end``'s: the 4th
    Wednesday, moved to the next session of ``sessions`` when it is not one (holiday)."""
    s, e = _day(start, "start"), _day(end, "end")
    months = pd.period_range(s.to_period("M"), e.to_period("M"), freq="M")
    first = months.to_timestamp(how="start")
    # 4th Wednesday = first Wednesday + 21 days; Wednesday is dayofweek 2
    first_wed = first + pd.to_timedelta((2 - first.day_of_week) % 7, unit="D")
    fourth = first_wed + pd.Timedelta(days=21)
    sess = sessions.to_numpy()
    pos = np.searchsorted(sess, fourth.to_numpy(), side="left")
    if (pos >= len(sess)).any():
        raise ConfigError(
            f"sse_expiries: the session calendar ends {sessions[-1].date()}, before the expiry "
            f"of {months[int(np.argmax(pos >= len(sess)))]}; pass a longer calendar"
        )
    return pd.DatetimeIndex(sess[pos], name="expiry")


def sse_strike_grid(upper: float = 40.0, divisor: int = 1) -> np.ndarray:
    """Every SSE 50ETF grid strike up to ``upper`` CNY, ascending (rounded to 0.1 milli-CNY);
    ``divisor`` > 1 divides each step (a finer grid, for measuring discretisation error)."""
    if int(divisor) != divisor or divisor < 1:
        raise ConfigError(f"strike grid divisor must be a positive integer, got {divisor!r}")
    parts, low = [], 0.0
    for bound, step in (*SSE_STRIKE_GRID, (upper, SSE_STRIKE_STEP_ABOVE)):
        step = step / divisor
        parts.append(np.arange(low + step, bound + step / 2, step))
        low = bound
    return np.round(np.concatenate(parts), 4)


def _listed_sse(dates: pd.DatetimeIndex, expiries: pd.DatetimeIndex) -> np.ndarray:
    """(n_dates, 4) indices into ``expiries``: the current and next month and the next two
    quarterly months after those, for each date (current = first expiry after the date)."""
    first = np.searchsorted(expiries.to_numpy(), dates.to_numpy(), side="right")
    quarterly = np.isin(expiries.month, SSE_QUARTER_MONTHS)
    n = len(expiries)
    # next_q[j] = smallest quarterly index >= j (n if none)
    idx = np.where(quarterly, np.arange(n), n)
    next_q = np.minimum.accumulate(np.append(idx, n)[::-1])[::-1]
    q1 = next_q[np.minimum(first + 2, n)]
    q2 = next_q[np.minimum(q1 + 1, n)]
    listed = np.column_stack([first, first + 1, q1, q2])
    if (listed >= n).any():
        raise ConfigError("expiry calendar too short for the listed months; extend it")
    return listed


# --------------------------------------------------------------------------- 50ETF-like path


@dataclass(frozen=True)
class EtfPath:
    """The simulated 50ETF-like underlying: bars and the variance at each open and close."""

    frame: pd.DataFrame  # date-indexed open, high, low, close, volume (float64)
    v_open: np.ndarray
    v_close: np.ndarray
    params: EtfChainParams
    seed: int


def _simulate_etf(params: EtfChainParams, seed: int, dates: pd.DatetimeIndex) -> EtfPath:
    p = params
    n = len(dates)
    gap = np.diff(dates.to_numpy()).astype("timedelta64[D]").astype(float)
    gap = np.concatenate([[1.0], gap])  # the first open follows one calendar day of variance
    steps = np.empty(2 * n)
    steps[0::2] = (gap - INTRADAY_DAYS) / DAYS_PER_YEAR  # overnight (close to open)
    steps[1::2] = INTRADAY_DAYS / DAYS_PER_YEAR  # intraday (open to close)
    # exact CIR transitions under P from the stationary law
    shape = 2.0 * p.kappa_p * p.theta_p / p.xi**2
    v0 = _rng(seed, "initial").gamma(shape, p.xi**2 / (2.0 * p.kappa_p))
    decay = np.exp(-p.kappa_p * steps)
    scale = p.xi**2 * (1.0 - decay) / (4.0 * p.kappa_p)
    dof = 4.0 * p.kappa_p * p.theta_p / p.xi**2
    rng = _rng(seed, "variance")
    v = np.empty(2 * n + 1)
    v[0] = v0
    for i in range(2 * n):  # the one unavoidable recursion
        v[i + 1] = scale[i] * rng.noncentral_chisquare(dof, v[i] * decay[i] / scale[i])
    start, end = v[:-1], v[1:]
    integrated = 0.5 * (start + end) * steps
    brownian = (end - start - p.kappa_p * (p.theta_p * steps - integrated)) / p.xi
    z = _rng(seed, "price").standard_normal(2 * n)
    dlog = (
        p.drift * steps
        - 0.5 * integrated
        + p.rho * brownian
        + np.sqrt((1.0 - p.rho**2) * integrated) * z
    )
    log_s = math.log(p.spot_start) + np.cumsum(dlog)
    open_, close = np.exp(log_s[0::2]), np.exp(log_s[1::2])
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": np.full(n, p.volume),
        },
        index=pd.DatetimeIndex(dates, name="date"),
    )
    return EtfPath(frame=frame, v_open=v[1::2], v_close=v[2::2], params=p, seed=seed)


@CACHES.memo("data.synthetic_chains.etf_paths", maxsize=8)
def _etf_path_cached(params: EtfChainParams, seed: int, start, end) -> EtfPath:
    dates = sse_sessions(start, end)
    if len(dates) < 2:
        raise ConfigError(f"the 50ETF-like market needs at least 2 SSE sessions in {start}..{end}")
    return _simulate_etf(params, seed, dates)


def etf50_path(
    seed: int = 7, start="2005-01-04", end="2019-12-31", params: EtfChainParams | None = None
) -> EtfPath:
    """The 50ETF-like underlying for ``seed`` on the SSE sessions in ``start..end`` (cached)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    s, e = _day(start, "start"), _day(end, "end")
    if e <= s:
        raise ConfigError(f"end {e.date()} must be after start {s.date()}")
    return _etf_path_cached(params or EtfChainParams(), int(seed), s, e)


def etf50_frames(seed: int = 7, start="2005-01-04", end="2019-12-31") -> dict[str, pd.DataFrame]:
    """``{"etf50": bars}`` for the embedded market (a fresh copy; the path is cached)."""
    return {"etf50": etf50_path(seed, start, end).frame.copy()}


def _etf_factors(p: EtfChainParams) -> tuple[Factor, ...]:
    return (Factor(p.kappa_q, p.theta_q, p.xi, p.rho),)


def etf50_model_vix(
    seed: int = 7, start="2005-01-04", end="2019-12-31", horizon_days: float = 30.0
) -> pd.Series:
    """The model's variance-swap level over ``horizon_days`` calendar days at each close, in
    volatility points (what the iVIX should recover from the chains)."""
    path = etf50_path(seed, start, end)
    tau = horizon_days / DAYS_PER_YEAR
    var = expected_variance(np.full(len(path.v_close), tau), path.v_close[:, None],
                            _etf_factors(path.params))  # fmt: skip
    return pd.Series(VIX_POINTS * np.sqrt(var), index=path.frame.index, name="model_vix")


def _strike_rows(k_lo: np.ndarray, k_hi: np.ndarray, grid: np.ndarray):
    """Group id and strike of every grid strike in ``[k_lo[g], k_hi[g]]`` for every group."""
    lo = np.searchsorted(grid, k_lo, side="left")
    hi = np.searchsorted(grid, k_hi, side="right")
    counts = np.maximum(hi - lo, 0)
    group = np.repeat(np.arange(len(k_lo)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, grid[lo[group] + offset]


def _long_chain(groups: pd.DataFrame, group, strike, call, put, quote) -> pd.DataFrame:
    """Call and put rows of every (group, strike), quoted by ``quote(price) -> (bid, ask,
    close)``, sorted by (trade_date, expiry, strike, cp) (the strike rows are already sorted by
    group and strike, the groups by date and expiry)."""
    g = np.repeat(group, 2)
    is_call = np.tile([True, False], len(group))
    price = np.maximum(np.column_stack([call, put]).ravel(), 0.0)
    bid, ask, close = quote(price)
    out = pd.DataFrame(
        {
            "trade_date": groups["trade_date"].to_numpy(dtype="datetime64[ns]")[g],
            "expiry": groups["expiry"].to_numpy(dtype="datetime64[ns]")[g],
            "cp": np.where(is_call, "C", "P"),
            "strike": np.repeat(strike, 2),
            "underlying": groups["spot"].to_numpy()[g],
            "bid": bid,
            "ask": ask,
            "close": close,
            "model_price": price,
        }
    )
    return out


def etf50_chains(
    seed: int = 7, start="2005-01-04", end="2019-12-31", params: EtfChainParams | None = None
) -> pd.DataFrame:
    """Daily 50ETF-like option chains in the engine's chain schema (see the module docstring).

    Columns: trade_date, expiry, cp, strike, underlying, bid, ask, close, model_price (the
    exact model price before quoting), settlement ('PM'), multiplier, adjusted (False).
    """
    p = params or EtfChainParams()
    path = etf50_path(seed, start, end, p)
    dates = path.frame.index
    wide = sse_sessions(dates[0] - pd.Timedelta(days=40), dates[-1] + pd.Timedelta(days=400))
    expiries = sse_expiries(dates[0] - pd.Timedelta(days=40), dates[-1] + pd.Timedelta(days=330),
                            wide)  # fmt: skip
    listed = _listed_sse(dates, expiries)
    n = len(dates)
    d_idx = np.repeat(np.arange(n), listed.shape[1])
    expiry = expiries.to_numpy()[listed.ravel()]
    days = (expiry - dates.to_numpy()[d_idx]).astype("timedelta64[D]").astype(float)
    tau = days / DAYS_PER_YEAR
    spot = path.frame["close"].to_numpy()[d_idx]
    forward = spot * np.exp(p.rate_cc * tau)
    state = path.v_close[d_idx][:, None]
    factors = _etf_factors(p)
    tau_cover = np.minimum(days, p.strike_horizon_days) / DAYS_PER_YEAR
    sd = np.sqrt(expected_variance(tau_cover, state, factors) * tau_cover)
    groups = pd.DataFrame({"trade_date": dates.to_numpy()[d_idx], "expiry": expiry, "spot": spot})
    grid = sse_strike_grid(divisor=p.strike_step_divisor)
    group, strike = _strike_rows(
        forward * np.exp(-p.strike_sd_down * sd), forward * np.exp(p.strike_sd_up * sd), grid
    )
    rate = np.full(len(tau), p.rate_cc)
    call = lewis_calls(group, strike, forward, tau, rate, state, factors)
    put = put_from_call(call, strike, forward[group], tau[group], rate[group])
    chain = _long_chain(
        groups, group, strike, call, put,
        lambda price: _quotes(price, SSE_TICK, p.min_half_spread, p.rel_half_spread),
    )  # fmt: skip
    return chain.assign(settlement="PM", multiplier=SSE_MULTIPLIER, adjusted=False)


# --------------------------------------------------------------------------- SPX-like chains


def _spx_model(market) -> tuple[tuple[Factor, ...], CoJumps]:
    p = market.params
    fast, slow = p.factors_q()
    factors = (
        Factor(fast.kappa, fast.theta, fast.xi, p.fast_rho),
        Factor(slow.kappa, slow.theta, slow.xi, p.slow_rho),
    )
    return factors, CoJumps(fast.jump_intensity, fast.jump_mean, p.price_jump_beta)


def spx_expiries(start, end, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """SPX-like expiries in ``start..end``: every Wednesday and Friday (P.M. weeklies) and the
    3rd Friday of each month (A.M. standard, replacing that Friday's weekly); a date that is not
    a session moves to the previous session. Columns ``expiry``, ``settlement``, ``monthly``."""
    s, e = _day(start, "start"), _day(end, "end")
    days = pd.date_range(s, e, freq="D")
    wed_fri = days[(days.day_of_week == 2) | (days.day_of_week == 4)]
    third_friday = (wed_fri.day_of_week == 4) & (wed_fri.day >= 15) & (wed_fri.day <= 21)
    sess = sessions.to_numpy()
    pos = np.searchsorted(sess, wed_fri.to_numpy(), side="right") - 1
    frame = pd.DataFrame(
        {
            "expiry": sess[np.maximum(pos, 0)],
            "settlement": np.where(third_friday, "AM", "PM"),
            "monthly": third_friday,
        }
    )
    frame = frame.loc[pos >= 0].drop_duplicates("expiry", keep="last")
    return frame.reset_index(drop=True)


def spx_chains(
    seed: int = 7, start="2005-01-03", end="2019-12-31", params: SpxChainParams | None = None
) -> pd.DataFrame:
    """Daily SPX-like chains on the embedded US market of ``data.synthetic`` for ``seed`` over
    the NYSE sessions ``start..end`` (see the module docstring). Same columns as
    :func:`etf50_chains`, with ``settlement`` 'AM'/'PM' and multiplier 100."""
    sp = params or SpxChainParams()
    market = generate_market(None, seed, start, end)
    spx = market.frames["spx"]
    dates = spx.index
    wide = nyse_sessions(dates[0], dates[-1] + pd.Timedelta(days=sp.monthly_days + 10))
    exp = spx_expiries(dates[0], dates[-1] + pd.Timedelta(days=sp.monthly_days + 7), wide)
    ex_days = exp["expiry"].to_numpy()
    lag = (ex_days[None, :] - dates.to_numpy()[:, None]).astype("timedelta64[D]").astype(float)
    limit = np.where(exp["monthly"].to_numpy(), sp.monthly_days, sp.weekly_days)[None, :]
    d_idx, e_idx = np.nonzero((lag > 0) & (lag <= limit))
    days = lag[d_idx, e_idx]
    am = (exp["settlement"].to_numpy() == "AM")[e_idx]
    minutes = days * 1440.0 + np.where(am, _SPX_AM_MIN, _SPX_PM_MIN) - _SPX_VALUATION_MIN
    tau = minutes / MINUTES_PER_YEAR
    rate = market.params.tbill_rate
    spot = spx["close"].to_numpy()[d_idx]
    forward = spot * np.exp(rate * tau)
    var = market.variance
    state = np.column_stack([var["fast_close"].to_numpy(), var["slow_close"].to_numpy()])[d_idx]
    factors, jumps = _spx_model(market)
    sd = np.sqrt(expected_variance(tau, state, factors, jumps) * tau)
    raw_step = sd * forward / sp.strikes_per_sd
    steps = np.asarray(SPX_STRIKE_STEPS)
    step = steps[np.clip(np.searchsorted(steps, raw_step), 0, len(steps) - 1)]
    lo = np.floor(forward * np.exp(-sp.strike_sd_down * sd) / step)
    hi = np.ceil(forward * np.exp(sp.strike_sd_up * sd) / step)
    counts = (hi - lo + 1).astype(np.int64)
    group = np.repeat(np.arange(len(lo)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    strike = (lo[group] + offset) * step[group]
    keep = strike > 0
    group, strike = group[keep], strike[keep]
    groups = pd.DataFrame(
        {"trade_date": dates.to_numpy()[d_idx], "expiry": ex_days[e_idx], "spot": spot}
    )
    rates = np.full(len(tau), rate)
    call = lewis_calls(group, strike, forward, tau, rates, state, factors, jumps)
    put = put_from_call(call, strike, forward[group], tau[group], rates[group])

    def quote(price):
        tick = np.where(price < 3.0, sp.tick_small, sp.tick_large)
        return _quotes(price, tick, sp.min_half_spread, sp.rel_half_spread)

    chain = _long_chain(groups, group, strike, call, put, quote)
    settlement = np.where(am[np.repeat(group, 2)], "AM", "PM")
    return chain.assign(settlement=settlement, multiplier=SPX_MULTIPLIER, adjusted=False)
