"""Embedded default market: a deterministic, coherent synthetic US volatility complex.

One latent state drives everything: the instantaneous S&P 500 variance ``v = v_fast + v_slow``
(annualised, decimal squared), the sum of two independent CIR factors (the additive
two-factor Heston model of Christoffersen, Heston & Jacobs 2009): a fast factor (half-life of
weeks) with compound-Poisson upward jumps for stress spikes, and a slow factor (half-life of
about a year) for calm and crisis regimes. Both are simulated exactly (non-central chi-square
transitions) on a trading-time clock of ``SESSIONS_PER_YEAR`` sessions per year, each session
split into an overnight step (close to open, a share ``overnight_variance_share`` of the day's
variance) and an intraday step (open to close).

* **SPX**: ``d ln S = (mu - v/2 - compensator) dt + sum_i sqrt(v_i) dZ_i - beta J dN`` with
  ``corr(dZ_i, dW_i) = rho_i`` (leverage). Per step the variance increment of each factor
  recovers its Brownian integral and the integrated variance uses the trapezoid rule ("drift
  interpolation", Andersen 2008 / Broadie & Kaya 2006). Each variance jump ``J`` comes with a
  log price jump ``-price_jump_beta * J`` (crash day), compensated so the expected arithmetic
  return is ``equity_drift``. Open = after the overnight step, close = after the intraday
  step; high/low = the extremes of a Brownian bridge from open to close with the open's
  intraday volatility (exact marginal law of the maximum/minimum of a bridge).
* **VIX / VIX3M**: the model's risk-neutral expected quadratic variation over 30 / 93
  calendar days (``tau = days / 365``):
  ``VIX^2 / 100^2 = c_J + sum_i [m_i + (v_i - m_i) (1 - e^{-kQ_i tau}) / (kQ_i tau)]``
  with ``m_i`` each factor's Q long-run mean (the fast one including ``lamQ muQ / kQ``) and
  ``c_J = 2 lamQ E[e^j - 1 - j]`` the price-jump term of the log contract. The volatility
  risk premium (Q levels above the P levels, slower Q reversion) makes implied variance
  exceed realised variance on average.
* **VIX futures**: monthly contracts on the CFE expiry rule (``vix_expiries``), the
  ``listed_contracts`` nearest listed each day. Settle = ``E^Q[VIX_T]`` computed exactly (no
  convexity approximation) from the closed-form Laplace transform of ``VIX_T^2`` (product of
  the two factors' CIR-with-jumps transforms) through
  ``sqrt(x) = (4 pi)^{-1/2} int_0^inf (1 - e^{-s x}) s^{-3/2} ds``, integrated by
  Gauss-Legendre in ``log s`` with analytic tails. The tests check it against an independent
  adaptive quadrature over the non-central chi-square density and against Monte Carlo with
  jumps. Final settlement = the model VIX at the open of the settlement day (the special
  opening quotation), so futures converge to the VIX.
* **Short-term futures index, VXX and XIV**: built with ``engine.calculators.futures``
  (daily roll 1st -> 2nd month, ER and TR with a constant T-bill rate); VXX is the long ETN
  on the TR index (fee 0.89 %/yr), XIV the -1x daily inverse ETN on the ER index (1.35 %/yr)
  with the 80 % acceleration rule (if it triggers, the note's rows after the event day are
  NaN; the ``etns["xiv"]`` result carries the flag and date). ETN opens use the futures'
  model prices at the open with yesterday's weights; highs/lows a bridge with the note's
  local volatility.

Frames (``market_frames``): ``vix, vix3m, spx, vx1, vx2, xiv, vxx`` indexed by a
``DatetimeIndex`` named ``date`` with float64 ``open, high, low, close, volume``. Signal series
(``vix, vix3m, vx1, vx2``) have NaN volume; volumes of SPX and the ETNs are lognormal around a
median, rising with variance (shape only, not calibrated). ``vx1``/``vx2`` are the daily
settlements of the first/second monthly contract expiring strictly after the date (on a
settlement day the expiring contract is no longer the front, as in the continuous VX1/VX2
files); they are settlement prices only, so open = high = low = close.

Random numbers come from named child streams of ``numpy.random.SeedSequence(seed)``
(``_STREAMS``). A later addition (option chains priced on the same variance state, a
cointegrated ETF pair) takes a new stream name and a new builder called from ``_generate``,
and leaves every existing series unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions
from volbacktest.engine.caches import CACHES
from volbacktest.engine.calculators.futures import (
    VXX_ANNUAL_FEE,
    XIV_ANNUAL_FEE,
    ETNResult,
    FuturesIndexResult,
    etn_from_index,
    short_term_index,
    vix_expiries,
)
from volbacktest.engine.errors import ConfigError

SESSIONS_PER_YEAR = 252  # trading-time clock of the model: one session = 1/252 year
CALENDAR_DAYS_PER_YEAR = 365  # Cboe VIX methodology converts calendar days with 365
VIX_HORIZON_DAYS = 30  # VIX: 30 calendar days (Cboe VIX white paper)
VIX3M_HORIZON_DAYS = 93  # VIX3M: 93 calendar days (Cboe VIX3M methodology)
VIX_POINTS = 100.0  # index points per unit of annualised volatility
DEFAULT_START = "2005-01-03"
DEFAULT_END = "2019-12-31"
FRAME_KEYS = ("vix", "vix3m", "spx", "vx1", "vx2", "xiv", "vxx")
OHLCV = ("open", "high", "low", "close", "volume")
# calendar margins for the futures calendar around the simulated range
_EXPIRY_LOOKBACK_DAYS = 62  # the first date's roll period starts at the previous settlement
_CALENDAR_LOOKAHEAD_DAYS = 480  # listed contracts reach ~9 months past the last date
_STREAMS = {"variance": 0, "spx": 1, "ranges": 2, "volume": 3}  # add new names, never renumber
# Laplace-transform quadrature for E[sqrt(X)]: integrate log s over [ln S_MIN, ln(TAIL / a)]
_LAPLACE_S_MIN = 1e-4  # below: 1 - E e^{-sX} = s E[X] (error < E[X^2] S_MIN^1.5 / 3)
_LAPLACE_TAIL = 60.0  # above TAIL / a: E e^{-sX} <= e^{-s a} < e^{-60}, dropped
_DELTA_BUMP = 1e-4  # relative bump of a factor for the futures' local sensitivity
# Bands the default market (seed 7, 2005-2019) must fall in; see SyntheticParams' docstring
CALIBRATION_BANDS = MappingProxyType(
    {
        "vix_mean": (14.0, 22.0),
        "vix_std": (4.0, 12.0),
        "vix_daily_log_change_std": (0.055, 0.095),
        "vix_half_life_days": (10.0, 100.0),
        "vix3m_vix_median_ratio": (1.06, 1.22),
        "contango_share": (0.65, 0.9),
        "median_basis": (0.3, 1.3),
        "vxx_annual_return": (-0.8, -0.35),
        "xiv_calm_annual_log_drift": (0.1, 2.0),
        "backwardation_days": (100.0, 1500.0),
    }
)


@dataclass(frozen=True)
class CIRFactor:
    """One variance factor ``dv = kappa (theta - v) dt + xi sqrt(v) dW + J dN``.

    ``jump_intensity`` per year, ``jump_mean`` the mean of the exponential jump size.
    """

    kappa: float
    theta: float
    xi: float
    jump_intensity: float = 0.0
    jump_mean: float = 0.0

    @property
    def long_run_mean(self) -> float:
        """The level ``E[v_s]`` reverts to: ``theta + jump_intensity * jump_mean / kappa``."""
        return self.theta + self.jump_intensity * self.jump_mean / self.kappa


@dataclass(frozen=True)
class SyntheticParams:
    """All parameters of the synthetic market (units: years, decimals; variance = vol^2).

    Variance factors (``v = v_fast + v_slow``), each ``dv = kappa (theta - v) dt + xi sqrt(v) dW``;
    the fast one also jumps up by ``J ~ Exp(jump_mean)`` at rate ``jump_intensity`` per year:

    * ``fast_*`` / ``slow_*`` with suffix ``_p`` (real world) or ``_q`` (pricing): reversion speed
      ``kappa`` (1/yr), level ``theta`` (variance), jump rate and mean size; ``fast_xi`` /
      ``slow_xi`` (vol of variance) are shared by both measures (a change of measure cannot
      change a diffusion coefficient); ``fast_rho`` / ``slow_rho`` correlate each factor with
      the SPX shocks it drives (leverage).
    * ``price_jump_beta``: log SPX jump per unit variance jump; ``equity_drift``: expected
      arithmetic SPX return per year; ``spx_start``: SPX at the close before the first session;
      ``overnight_variance_share``: share of a day's variance between the previous close and
      the open (0.121 on ^GSPC 2014-2019, ``spx_index/GSPC_yahoo.csv``; earlier Yahoo opens are
      stale copies of the previous close).
    * ``listed_contracts``: monthly VX contracts listed each day; ``tbill_rate``: constant
      91-day T-bill discount rate of the TR index (not calibrated); ETN fees as the
      prospectuses (0.89 %, 1.35 % a year); volumes are shape only (not calibrated).

    Calibration. The variance parameters come from a (partial) Nelder-Mead search, then
    rounding, on a weighted distance between the real statistics below (and the unbanded
    ones listed after the table) and their averages over seeds 1-6, 8, 9 of
    2005-01-03..2019-12-31; the default seed 7 was not used in the fit. Real values measured
    here on the shared data: Cboe ``VIX_History.csv`` 2004-01-02..2019-12-31 (VIX);
    ``vix3mdailyprices.csv`` before 2009-09-18, then ``VIX3M_History.csv`` to 2019-12-31
    (VIX3M/VIX); the quantintell VX1 column against Cboe's VIX close 2007-04-02..2019-12-31
    (basis, 3,211 days); the split-adjusted VXX closes 2009-01-30..2018-01-31
    (``VXX_yahoo_adjusted__johnngo.csv``); the stitched XIV closes 2010-11-30..2017-12-05.
    "Seed 7" is the default market; "20 seeds" the mean (min..max) over seeds 1-20 other
    than 7. Bands (``CALIBRATION_BANDS``) are what the default market must satisfy
    (``tests/test_synthetic.py``); they are wide because one 15-year path of a model with
    year-long regimes varies a lot (the real 2010-2019 decade alone has VIX std 5.63 and
    half-life 16.4 days).

    ========================== ======= ======= ====================== ==============
    statistic                  real    seed 7  20 seeds mean (range)  band
    ========================== ======= ======= ====================== ==============
    vix_mean                   18.22   16.24   17.23 (15.30..20.29)   [14, 22]
    vix_std                    8.58    4.81    6.15 (4.47..11.12)     [4, 12]
    vix_daily_log_change_std   0.0727  0.0809  0.0804 (0.074..0.085)  [0.055, 0.095]
    vix_half_life_days (AR1)   34.0    16.7    29.5 (14.6..95.3)      [10, 100]
    vix3m_vix_median_ratio     1.115   1.170   1.158 (1.099..1.216)   [1.06, 1.22]
    contango_share (VX1>VIX)   0.779   0.746   0.764 (0.692..0.837)   [0.65, 0.9]
    median_basis (VX1-VIX)     0.745   0.710   0.714 (0.435..1.041)   [0.3, 1.3]
    vxx_annual_return (CAGR)   -0.597  -0.661  -0.647 (-0.73..-0.55)  [-0.8, -0.35]
    xiv_calm_annual_log_drift  0.269   0.786   0.545 (0.193..0.770)   [0.1, 2]
    backwardation_days         704     960     892 (617..1162)        [100, 1500]
    ========================== ======= ======= ====================== ==============

    ``xiv_calm_annual_log_drift`` is 252 x the mean daily XIV log return on days after a VIX
    close below its sample median; ``backwardation_days`` counts VX1 < VIX (the real count
    covers 12.7 years, the synthetic 15). Also measured, not banded: VIX median 15.60 real,
    15.23 seed 7; VIX > VIX3M on 11.8 % of real days, 16.0 % (seed 7) and 14.6 % (20 seeds);
    realised SPX variance 0.0326 real (2004-2019), 0.0297 (20 seeds); mean VIX^2/100^2 0.0406
    real, 0.0339 (20 seeds), so the model's variance risk premium (implied/realised 1.14) is
    smaller than the real one (1.25); corr(dlog VIX, dlog SPX) -0.74 real, -0.73 (20 seeds);
    excess kurtosis of dlog VIX 6.6 real, 3.8 (20 seeds): the model's VIX moves are
    thinner-tailed than the real ones. VIX3M/VIX is steeper than real (1.16 vs 1.115): one
    fast factor sets both the front contango and the 3-month slope.
    """

    # fast variance factor under P (spikes) with its jumps
    fast_kappa_p: float = 10.0
    fast_theta_p: float = 0.017
    fast_xi: float = 0.7
    fast_rho: float = -0.9
    jump_intensity_p: float = 2.0
    jump_mean_p: float = 0.017
    # slow variance factor under P (regimes)
    slow_kappa_p: float = 0.8
    slow_theta_p: float = 0.012
    slow_xi: float = 0.42
    slow_rho: float = -0.7
    # the same factors under Q (pricing): slower reversion, higher levels (the risk premium)
    fast_kappa_q: float = 6.4
    fast_theta_q: float = 0.035
    slow_kappa_q: float = 0.45
    slow_theta_q: float = 0.034
    jump_intensity_q: float = 2.0
    jump_mean_q: float = 0.015
    # SPX
    price_jump_beta: float = 1.0
    equity_drift: float = 0.07
    spx_start: float = 1200.0
    overnight_variance_share: float = 0.12
    # futures, index and ETNs
    listed_contracts: int = 9
    tbill_rate: float = 0.015
    vxx_annual_fee: float = VXX_ANNUAL_FEE
    xiv_annual_fee: float = XIV_ANNUAL_FEE
    etn_start: float = 100.0
    # volumes (shape only): median level, elasticity to variance, log dispersion
    spx_volume_median: float = 3.5e9
    etn_volume_median: float = 2.0e6
    volume_variance_elasticity: float = 0.5
    volume_log_sd: float = 0.3
    # numerics
    quadrature_nodes: int = 64

    def __post_init__(self) -> None:
        positive = (
            "fast_kappa_p fast_theta_p fast_xi slow_kappa_p slow_theta_p slow_xi fast_kappa_q "
            "fast_theta_q slow_kappa_q slow_theta_q spx_start etn_start spx_volume_median "
            "etn_volume_median"
        ).split()
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"SyntheticParams.{name} must be > 0, got {getattr(self, name)}")
        for name in "jump_intensity_p jump_mean_p jump_intensity_q jump_mean_q".split():
            if getattr(self, name) < 0:
                raise ConfigError(f"SyntheticParams.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("fast_rho", "slow_rho"):
            if not -1.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"SyntheticParams.{name} must be in (-1, 1)")
        if not 0.0 < self.overnight_variance_share < 1.0:
            raise ConfigError("SyntheticParams.overnight_variance_share must be in (0, 1)")
        if self.listed_contracts < 2:
            raise ConfigError("SyntheticParams.listed_contracts must be >= 2 (index holds two)")
        if self.quadrature_nodes < 16:
            raise ConfigError("SyntheticParams.quadrature_nodes must be >= 16")

    def factors(self, measure: str) -> tuple[CIRFactor, CIRFactor]:
        """(fast, slow) factors under ``measure`` ``"p"`` (real world) or ``"q"`` (pricing)."""
        if measure not in ("p", "q"):
            raise ConfigError(f"measure must be 'p' or 'q', got {measure!r}")
        value = lambda name: getattr(self, f"{name}_{measure}")  # noqa: E731
        fast = CIRFactor(
            value("fast_kappa"),
            value("fast_theta"),
            self.fast_xi,
            value("jump_intensity"),
            value("jump_mean"),
        )
        return fast, CIRFactor(value("slow_kappa"), value("slow_theta"), self.slow_xi)

    def factors_p(self) -> tuple[CIRFactor, CIRFactor]:
        """(fast, slow) factors under the real-world measure."""
        return self.factors("p")

    def factors_q(self) -> tuple[CIRFactor, CIRFactor]:
        """(fast, slow) factors under the pricing measure."""
        return self.factors("q")

    @property
    def long_run_variance_p(self) -> float:
        """Stationary mean of ``v`` under P."""
        return sum(f.long_run_mean for f in self.factors_p())


# --------------------------------------------------------------------------- pricing kernels


def _price_jump_qv(p: SyntheticParams) -> float:
    """Annual Q-rate of ``2 E[e^j - 1 - j]`` for log price jumps ``j = -beta J``."""
    bm = p.price_jump_beta * p.jump_mean_q
    return 2.0 * p.jump_intensity_q * (1.0 / (1.0 + bm) - 1.0 + bm)


def vix_coefficients(params: SyntheticParams, tau_years: float) -> tuple[float, np.ndarray]:
    """``(a, b)`` with ``VIX = 100 sqrt(a + b[0] v_fast + b[1] v_slow)`` over ``tau_years``."""
    a = _price_jump_qv(params)
    b = []
    for factor in params.factors_q():
        weight = -math.expm1(-factor.kappa * tau_years) / (factor.kappa * tau_years)
        a += factor.long_run_mean * (1.0 - weight)
        b.append(weight)
    return a, np.array(b)


def model_vix(v_fast, v_slow, params: SyntheticParams, horizon_days: int = VIX_HORIZON_DAYS):
    """Model volatility index (points) for the factor values over ``horizon_days`` days."""
    a, b = vix_coefficients(params, horizon_days / CALENDAR_DAYS_PER_YEAR)
    x = a + b[0] * np.asarray(v_fast, dtype=float) + b[1] * np.asarray(v_slow, dtype=float)
    return VIX_POINTS * np.sqrt(x)


def cir_laplace_exponent(u, v, dt_years, factor: CIRFactor) -> np.ndarray:
    """``log E[exp(-u v_T) | v_t = v]`` for ``T - t = dt_years`` (closed form, ``u >= 0``).

    Diffusion: ``-psi v - (2 k theta / xi^2) log(1 + c u (1 - x) / k)`` with ``x = e^{-k dt}``,
    ``c = xi^2 / 2``, ``psi = u k x / (k + c u (1 - x))``. Exponential jumps (intensity lam,
    mean mu): ``-lam mu u (1 - x) / (K + D x) * log1p(z) / z`` with ``K = k + c u``,
    ``D = u (mu k - c)`` and ``z = D (1 - x) / (K + D x)``.
    """
    k, theta, lam, mu = factor.kappa, factor.theta, factor.jump_intensity, factor.jump_mean
    c = 0.5 * factor.xi**2
    u = np.asarray(u, dtype=float)
    one_minus_x = -np.expm1(-k * np.asarray(dt_years, dtype=float))
    x = 1.0 - one_minus_x
    psi = u * k * x / (k + c * u * one_minus_x)
    out = -psi * np.asarray(v, dtype=float) - (k * theta / c) * np.log1p(c * u * one_minus_x / k)
    if lam > 0.0 and mu > 0.0:
        base = k + c * u + u * (mu * k - c) * x
        z = u * (mu * k - c) * one_minus_x / base
        small = np.abs(z) < 1e-10
        log_ratio = np.where(small, 1.0 - 0.5 * z, np.log1p(z) / np.where(small, 1.0, z))
        out = out - lam * mu * u * one_minus_x / base * log_ratio
    return out


@functools.lru_cache(maxsize=8)
def _log_nodes(n: int, log_lo: float, log_hi: float) -> tuple[np.ndarray, np.ndarray]:
    y, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (log_hi - log_lo)
    return log_lo + half * (y + 1.0), half * w


def vix_futures_price(v_fast, v_slow, dt_years, params: SyntheticParams) -> np.ndarray:
    """Model VIX future ``E^Q[VIX_T]`` in points, ``dt_years`` (> 0) to settlement.

    ``E sqrt(X) = (4 pi)^{-1/2} int (1 - E e^{-sX}) s^{-3/2} ds`` with ``X = VIX_T^2 / 100^2
    = a + b . v_T`` and the closed-form transforms of the two factors; Gauss-Legendre over
    ``log s`` on ``[1e-4, 60 / a]`` plus the analytic tails ``2 E[X] sqrt(1e-4)`` (small s) and
    ``2 / sqrt(60 / a)`` (large s). Broadcasts its array arguments.
    """
    a, b = vix_coefficients(params, VIX_HORIZON_DAYS / CALENDAR_DAYS_PER_YEAR)
    vf, vs, dt = np.broadcast_arrays(
        np.asarray(v_fast, dtype=float),
        np.asarray(v_slow, dtype=float),
        np.asarray(dt_years, dtype=float),
    )
    s_hi = _LAPLACE_TAIL / a
    log_s, w = _log_nodes(params.quadrature_nodes, math.log(_LAPLACE_S_MIN), math.log(s_hi))
    s = np.exp(log_s)
    fast, slow = params.factors_q()
    dt_q = dt[..., None]
    exponent = (
        -s * a
        + cir_laplace_exponent(s * b[0], vf[..., None], dt_q, fast)
        + cir_laplace_exponent(s * b[1], vs[..., None], dt_q, slow)
    )
    body = (-np.expm1(exponent) * s**-0.5 * w).sum(axis=-1)
    mean_x = a
    for weight, v, factor in ((b[0], vf, fast), (b[1], vs, slow)):
        m = factor.long_run_mean
        mean_x = mean_x + weight * (m + (v - m) * np.exp(-factor.kappa * dt))
    total = body + 2.0 * mean_x * math.sqrt(_LAPLACE_S_MIN) + 2.0 / math.sqrt(s_hi)
    return VIX_POINTS * total / (2.0 * math.sqrt(math.pi))


# --------------------------------------------------------------------------- simulation


def _stream(seed: int, name: str) -> np.random.Generator:
    """Independent generator for one named component (stable when components are added)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAMS[name],)))


@dataclass(frozen=True)
class VariancePath:
    """Simulated factors on the 2-steps-per-session grid (overnight, intraday).

    ``v`` is (2, 2n + 1): fast and slow factor at the close before the first session, then
    at the open and close of each session; ``v_pre_jump`` (2, 2n) the value at the end of
    each step before that step's jump; ``jump`` (2n,) the fast factor's jump per step;
    ``step_years`` each step's length.
    """

    v: np.ndarray
    v_pre_jump: np.ndarray
    jump: np.ndarray
    step_years: np.ndarray

    @property
    def at_open(self) -> np.ndarray:
        """(2, n) factor values at each session's open."""
        return self.v[:, 1::2]

    @property
    def at_close(self) -> np.ndarray:
        """(2, n) factor values at each session's close."""
        return self.v[:, 2::2]


def simulate_variance(
    params: SyntheticParams, n_sessions: int, rng: np.random.Generator
) -> VariancePath:
    """Exact CIR transitions under P; fast-factor jumps added at the end of their step.

    The jump times and sizes do not depend on the state, so they are drawn up front; the
    loop only draws the non-central chi-square transitions (2 per step, ~15,000 scalars).
    Each factor starts at its P long-run mean.
    """
    share = params.overnight_variance_share
    step = np.tile([share, 1.0 - share], n_sessions) / SESSIONS_PER_YEAR
    fast, slow = params.factors_p()
    counts = rng.poisson(fast.jump_intensity * step)
    jump = np.zeros_like(step)
    hit = counts > 0
    if fast.jump_mean > 0 and hit.any():
        jump[hit] = rng.gamma(counts[hit], fast.jump_mean)
    decay = np.exp(-np.outer([fast.kappa, slow.kappa], step))
    scale = np.array([[fast.xi**2 / (4 * fast.kappa)], [slow.xi**2 / (4 * slow.kappa)]]) * (
        1.0 - decay
    )
    dof = [4.0 * f.kappa * f.theta / f.xi**2 for f in (fast, slow)]
    v = np.empty((2, step.size + 1))
    v_pre = np.empty((2, step.size))
    v[:, 0] = [fast.long_run_mean, slow.long_run_mean]
    noncentral = rng.noncentral_chisquare
    vf, vs = v[:, 0]
    for i in range(step.size):  # the one unavoidable recursion
        pre_f = scale[0, i] * noncentral(dof[0], vf * decay[0, i] / scale[0, i])
        vs = scale[1, i] * noncentral(dof[1], vs * decay[1, i] / scale[1, i])
        vf = pre_f + jump[i]
        v_pre[0, i], v_pre[1, i] = pre_f, vs
        v[0, i + 1], v[1, i + 1] = vf, vs
    return VariancePath(v=v, v_pre_jump=v_pre, jump=jump, step_years=step)


def simulate_spx_log_returns(
    params: SyntheticParams, path: VariancePath, rng: np.random.Generator
) -> np.ndarray:
    """SPX log return of every step given the variance path (drift interpolation)."""
    p = params
    h = path.step_years
    drift = np.zeros_like(h)
    residual_var = np.zeros_like(h)
    for i, (factor, rho) in enumerate(zip(p.factors_p(), (p.fast_rho, p.slow_rho), strict=True)):
        start, end = path.v[i, :-1], path.v_pre_jump[i]
        integrated = 0.5 * (start + end) * h
        brownian = (end - start - factor.kappa * (factor.theta * h - integrated)) / factor.xi
        drift += -0.5 * integrated + rho * brownian
        residual_var += (1.0 - rho**2) * integrated
    z = rng.standard_normal(h.size)
    compensator = p.jump_intensity_p * (1.0 / (1.0 + p.price_jump_beta * p.jump_mean_p) - 1.0)
    return (
        (p.equity_drift - compensator) * h
        + drift
        + np.sqrt(residual_var) * z
        - p.price_jump_beta * path.jump
    )


def _bridge_extremes(log_open, log_close, sigma, u_high, u_low) -> tuple[np.ndarray, np.ndarray]:
    """High/low of a Brownian bridge from log_open to log_close with total std ``sigma``.

    Exact marginal laws: ``max = (b + sqrt(b^2 - 2 sigma^2 ln U)) / 2`` above the open, with
    ``b`` the open-to-close move (and symmetrically for the minimum).
    """
    b = log_close - log_open
    spread_hi = np.sqrt(b**2 - 2.0 * sigma**2 * np.log(u_high))
    spread_lo = np.sqrt(b**2 - 2.0 * sigma**2 * np.log(u_low))
    return log_open + 0.5 * (b + spread_hi), log_open + 0.5 * (b - spread_lo)


def _ohlc_frame(index, open_, close, sigma, u_high, u_low, volume) -> pd.DataFrame:
    """OHLCV frame; where open or close is not positive (a terminated note) high/low bracket."""
    open_, close = np.asarray(open_, dtype=float), np.asarray(close, dtype=float)
    ok = (open_ > 0) & (close > 0)
    safe_o, safe_c = np.where(ok, open_, 1.0), np.where(ok, close, 1.0)
    hi, lo = _bridge_extremes(np.log(safe_o), np.log(safe_c), sigma, u_high, u_low)
    high = np.where(ok, np.exp(hi), np.fmax(open_, close))
    low = np.where(ok, np.exp(lo), np.fmin(open_, close))
    data = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in data.items()}, index=index)


def _settle_frame(index, settle) -> pd.DataFrame:
    settle = np.asarray(settle, dtype=np.float64)
    data = dict.fromkeys(("open", "high", "low", "close"), settle)
    return pd.DataFrame({**data, "volume": np.full(len(index), np.nan)}, index=index)


@dataclass(frozen=True)
class SyntheticMarket:
    """A generated market. Treat it as read-only: it is cached and shared within a process.

    ``frames``: the OHLCV frames by name; ``futures_settle``: dates x contract expiries (NaN
    where a contract is not listed); ``expiries``: its columns; ``index``: the short-term
    futures index result; ``etns``: the VXX/XIV ``ETNResult`` (termination flags);
    ``variance``: the latent factors at each open and close (for later option-chain and pair
    generators that must share the same state).
    """

    frames: Mapping[str, pd.DataFrame]
    futures_settle: pd.DataFrame
    expiries: pd.DatetimeIndex
    index: FuturesIndexResult
    etns: Mapping[str, ETNResult]
    variance: pd.DataFrame
    params: SyntheticParams
    seed: int

    def frames_copy(self) -> dict[str, pd.DataFrame]:
        """Independent copies of the frames (cheap under pandas copy-on-write)."""
        return {name: frame.copy() for name, frame in self.frames.items()}


def _session_positions(sessions: pd.DatetimeIndex, days) -> np.ndarray:
    return np.searchsorted(sessions.to_numpy(), pd.DatetimeIndex(days).to_numpy())


def _futures_matrix(p, dates, state_close, state_open, sessions, expiries) -> pd.DataFrame:
    """Settle matrix (dates x expiries) of the ``listed_contracts`` nearest contracts."""
    pos_day = _session_positions(sessions, dates)
    pos_exp = _session_positions(sessions, expiries)
    first = np.searchsorted(expiries.to_numpy(), dates.to_numpy(), side="left")
    cols = first[:, None] + np.arange(p.listed_contracts)[None, :]
    sessions_left = pos_exp[cols] - pos_day[:, None]  # 0 on the settlement day itself
    alive = sessions_left > 0
    dt_years = (sessions_left - 1.0 + p.overnight_variance_share) / SESSIONS_PER_YEAR
    prices = vix_futures_price(
        state_close[0][:, None], state_close[1][:, None], np.where(alive, dt_years, 1.0), p
    )
    final = model_vix(state_open[0], state_open[1], p)[:, None]  # the SOQ: VIX at the open
    matrix = np.full((len(dates), len(expiries)), np.nan)
    matrix[np.arange(len(dates))[:, None], cols] = np.where(alive, prices, final)
    used = np.unique(cols)
    return pd.DataFrame(
        matrix[:, used], index=dates, columns=pd.DatetimeIndex(expiries[used], name="expiry")
    )


def _front_second(settle: pd.DataFrame, dates) -> tuple[np.ndarray, np.ndarray]:
    """Settles of the 1st and 2nd contracts expiring strictly after each date."""
    first = np.searchsorted(settle.columns.to_numpy(), dates.to_numpy(), side="right")
    values = settle.to_numpy()
    rows = np.arange(len(dates))
    return values[rows, first], values[rows, first + 1]


def _index_open(p, index, settle, state_open, sessions, dates):
    """ER index return from yesterday's close to today's open, and its local log-vol.

    Yesterday's legs are priced at today's open with the model; the local log-vol is
    ``sqrt(sum_i (sum_legs w dF/dv_i)^2 xi_i^2 v_i) / sum_legs w F`` with ``dF/dv_i`` by a
    relative bump of each factor.
    """
    roll = index.roll
    legs = np.column_stack([roll.front_expiry, roll.second_expiry])[:-1]
    w = np.column_stack([roll.w1, roll.w2])[:-1]
    pos_leg = _session_positions(sessions, legs.ravel()).reshape(legs.shape)
    dt_open = (pos_leg - _session_positions(sessions, dates)[1:, None]) / SESSIONS_PER_YEAR
    vf, vs = state_open[0][1:, None], state_open[1][1:, None]
    f_open = vix_futures_price(vf, vs, dt_open, p)
    value_open = (w * f_open).sum(axis=1)
    variance_rate = np.zeros(len(dates) - 1)
    for i, factor in enumerate(p.factors_p()):
        level = (vf, vs)[i]
        bump = _DELTA_BUMP * level
        bumped = (vf + bump, vs) if i == 0 else (vf, vs + bump)
        slope = (w * (vix_futures_price(*bumped, dt_open, p) - f_open) / bump).sum(axis=1)
        variance_rate += slope**2 * factor.xi**2 * level[:, 0]
    cols = settle.columns.get_indexer(pd.DatetimeIndex(legs.ravel())).reshape(legs.shape)
    settle_prev = settle.to_numpy()[np.arange(len(dates) - 1)[:, None], cols]
    r_open = value_open / (w * settle_prev).sum(axis=1) - 1.0
    log_vol = np.sqrt(variance_rate) / value_open
    return np.concatenate([[0.0], r_open]), np.concatenate([[log_vol[0]], log_vol])


def _generate(params: SyntheticParams, seed: int, start: pd.Timestamp, end: pd.Timestamp):
    p = params
    dates = nyse_sessions(start, end)
    n = len(dates)
    if n < 2:
        raise ConfigError(f"synthetic market needs at least 2 sessions in {start}..{end}")
    wide = nyse_sessions(
        start - pd.Timedelta(days=2 * _EXPIRY_LOOKBACK_DAYS),
        end + pd.Timedelta(days=_CALENDAR_LOOKAHEAD_DAYS + 40),
    )
    expiries = vix_expiries(
        start - pd.Timedelta(days=_EXPIRY_LOOKBACK_DAYS),
        end + pd.Timedelta(days=_CALENDAR_LOOKAHEAD_DAYS - 90),
        wide,
    )

    path = simulate_variance(p, n, _stream(seed, "variance"))
    log_spx = math.log(p.spx_start) + np.cumsum(
        simulate_spx_log_returns(p, path, _stream(seed, "spx"))
    )
    spx_open, spx_close = np.exp(log_spx[0::2]), np.exp(log_spx[1::2])
    state_open, state_close = path.at_open, path.at_close
    v_open = state_open.sum(axis=0)

    u_up, u_down = _stream(seed, "ranges").uniform(size=(2, n))  # VIX highs with SPX lows
    intraday = math.sqrt((1.0 - p.overnight_variance_share) / SESSIONS_PER_YEAR)
    activity = (state_close.sum(axis=0) / p.long_run_variance_p) ** p.volume_variance_elasticity
    noise = np.exp(p.volume_log_sd * _stream(seed, "volume").standard_normal((2, n)))
    no_volume = np.full(n, np.nan)

    frames: dict[str, pd.DataFrame] = {}
    frames["spx"] = _ohlc_frame(
        dates,
        spx_open,
        spx_close,
        np.sqrt(v_open) * intraday,
        u_up,
        u_down,
        np.round(p.spx_volume_median * activity * noise[0]),
    )
    xi = np.array([[f.xi] for f in p.factors_p()])
    for name, days in (("vix", VIX_HORIZON_DAYS), ("vix3m", VIX3M_HORIZON_DAYS)):
        a, b = vix_coefficients(p, days / CALENDAR_DAYS_PER_YEAR)
        x_open = a + b @ state_open
        log_vol = np.sqrt(((b[:, None] * xi) ** 2 * state_open).sum(axis=0)) / (2.0 * x_open)
        frames[name] = _ohlc_frame(
            dates,
            VIX_POINTS * np.sqrt(x_open),
            model_vix(state_close[0], state_close[1], p, days),
            log_vol * intraday,
            u_down,
            u_up,
            no_volume,
        )

    settle = _futures_matrix(p, dates, state_close, state_open, wide, expiries)
    vx1, vx2 = _front_second(settle, dates)
    frames["vx1"] = _settle_frame(dates, vx1)
    frames["vx2"] = _settle_frame(dates, vx2)

    index = short_term_index(settle, expiries=expiries, sessions=wide, tbill_rate=p.tbill_rate)
    r_open, index_vol = _index_open(p, index, settle, state_open, wide, dates)
    etns = {
        "vxx": etn_from_index(
            index.level_tr, leverage=1.0, annual_fee=p.vxx_annual_fee, initial_value=p.etn_start
        ),
        "xiv": etn_from_index(
            index.level_er, leverage=-1.0, annual_fee=p.xiv_annual_fee, initial_value=p.etn_start
        ),
    }
    etn_volume = np.round(p.etn_volume_median * activity * noise[1])
    for name, lev, (u_hi, u_lo) in (("vxx", 1.0, (u_down, u_up)), ("xiv", -1.0, (u_up, u_down))):
        etn = etns[name]
        close = etn.value.to_numpy()
        prev = np.concatenate([[p.etn_start], close[:-1]])
        open_ = prev * np.maximum(1.0 + lev * r_open, 0.0)
        frame = _ohlc_frame(
            dates, open_, close, abs(lev) * index_vol * intraday, u_hi, u_lo, etn_volume
        )
        frames[name] = frame.where(etn.active, axis=0)  # rows after an acceleration are NaN

    variance = pd.DataFrame(
        {
            "fast_open": state_open[0],
            "slow_open": state_open[1],
            "fast_close": state_close[0],
            "slow_close": state_close[1],
        },
        index=dates,
    )
    return SyntheticMarket(
        frames=MappingProxyType({k: frames[k] for k in FRAME_KEYS}),
        futures_settle=settle,
        expiries=pd.DatetimeIndex(settle.columns, name="expiry"),
        index=index,
        etns=MappingProxyType(etns),
        variance=variance,
        params=p,
        seed=seed,
    )


@CACHES.memo("data.synthetic.markets", maxsize=8)
def _generate_cached(params, seed, start, end) -> SyntheticMarket:
    return _generate(params, seed, start, end)


def generate_market(
    params: SyntheticParams | None = None,
    seed: int = 7,
    start=DEFAULT_START,
    end=DEFAULT_END,
) -> SyntheticMarket:
    """Generate (or fetch from the in-process cache) the synthetic market.

    Deterministic in ``(params, seed, start, end)``; ``start``/``end`` are dates (strings or
    Timestamps) and the rows are the NYSE sessions between them. The result is shared: use
    ``market.frames_copy()`` or ``market_frames`` for frames you intend to modify.
    """
    if params is None:
        params = SyntheticParams()
    if not isinstance(params, SyntheticParams):
        raise ConfigError(f"params must be SyntheticParams or None, got {type(params).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"start/end must be dates like '2005-01-03', got {start!r}, {end!r}"
        ) from exc
    if end_ts <= start_ts:
        raise ConfigError(f"end {end_ts.date()} must be after start {start_ts.date()}")
    return _generate_cached(params, int(seed), start_ts, end_ts)


def market_frames(seed: int = 7, start=DEFAULT_START, end=DEFAULT_END) -> dict[str, pd.DataFrame]:
    """The default market's frames ``vix, vix3m, spx, vx1, vx2, xiv, vxx`` (fresh copies)."""
    return generate_market(None, seed, start, end).frames_copy()


def param_names() -> list[str]:
    """Names of all ``SyntheticParams`` fields (for configuration validation)."""
    return [f.name for f in fields(SyntheticParams)]
