"""Black-Scholes-Merton prices, greeks and a robust vectorised implied-volatility solver.

Model: European option on an asset with continuous dividend yield ``div_yield_cc`` and
risk-free rate ``rate_cc`` (both continuously compounded decimals), time to expiry
``tau_years`` and volatility ``sigma`` (decimal, per sqrt(year)); Merton (1973), Hull
*Options, Futures, and Other Derivatives* ch. 17 (BSM with a dividend yield).

Every function broadcasts its array arguments against each other (numpy rules).

Implied volatility
------------------
The solver works on the *normalised out-of-the-money time value* of Jaeckel (2015, "Let's be
rational", Wilmott): with forward ``F = S exp((r - q) tau)``, ``x = -|ln(F/K)|`` and total
standard deviation ``s = sigma sqrt(tau)``, every option price maps (by put-call parity) to

    b(x, s) = exp(x/2) N(x/s + s/2) - exp(-x/2) N(x/s - s/2),   0 < b < exp(x/2),

which is strictly increasing in ``s``. Prices are compared on a log scale, ``ln b`` below the
mid point of the range and ``ln(exp(x/2) - b)`` above it, both evaluated through ``log_ndtr``
without cancellation, so a deep out-of-the-money price of 1e-200 is inverted as accurately as
an at-the-money one (naive Newton on the raw price stalls there because vega underflows).
Each element runs a safeguarded Newton iteration kept inside a bracket that shrinks every
step; a step that leaves the bracket is replaced by bisection (geometric when both ends are
positive). Starting points: Brenner-Subrahmanyam (1988) near the money, the small-``s``
asymptotic expansion of ``b`` in the wings, and the large-``s`` expansion near the upper bound.

Prices outside the no-arbitrage bounds never become a silent number: the result carries ``NaN``
and an :class:`IVStatus` code per element (``BELOW_INTRINSIC``, ``AT_INTRINSIC``,
``ABOVE_UPPER_BOUND``, ``INVALID_INPUT``, ``NOT_CONVERGED``).

py_vollib_vectorized 0.1.1 (2021) fails to compile its numba kernels on numpy 2.4 / numba 0.68,
and py_lets_be_rational is a scalar (per-element Python) implementation, hence this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from volbacktest.engine.errors import ConvergenceWarning, DataError

# Calendar days per year for theta per day (ACT/365; Hull ch. 19 quotes theta "per calendar
# day" as the annual theta / 365, Haug 2007 and QuantLib's thetaPerDay use the same divisor).
DAYS_PER_YEAR = 365.0

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_SQRT_2PI = np.sqrt(2.0 * np.pi)
_EPS = np.finfo(float).eps
# The solver stops when a Newton step changes s by less than this relative amount; the step
# is still applied, and Newton's quadratic convergence leaves an error of order 1e-24 (i.e. the
# evaluation noise of the price, a few ulps). Far below any quoted price's precision.
_STEP_RTOL = 1e-12
# ... or when the bracket around the root is a few ulps wide.
_BRACKET_RTOL = 4.0 * _EPS
# Ceiling for the total standard deviation sigma*sqrt(tau): b(x, 40) equals its upper bound
# exp(x/2) to double precision for any x, so larger values are not identifiable.
_S_MAX = 40.0


class IVStatus(IntEnum):
    """Per-element outcome of :func:`implied_vol` (stored as ``int8``)."""

    OK = 0
    BELOW_INTRINSIC = 1  # price < discounted intrinsic value: violates the lower bound
    AT_INTRINSIC = 2  # zero time value (or lost to rounding): volatility not identifiable
    ABOVE_UPPER_BOUND = 3  # call >= S exp(-q tau) or put >= K exp(-r tau)
    INVALID_INPUT = 4  # NaN price, non-positive spot/strike/tau, or negative price
    NOT_CONVERGED = 5  # iteration limit reached (should not happen; warns)


@dataclass(frozen=True)
class ImpliedVolResult:
    """Implied volatilities (decimal, per sqrt(year)) with one status code per element.

    ``iv`` is NaN exactly where ``status != IVStatus.OK``.
    """

    iv: np.ndarray
    status: np.ndarray
    iterations: int

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of elements solved successfully."""
        return self.status == IVStatus.OK

    def counts(self) -> dict[str, int]:
        """Number of elements per status name (only non-zero counts)."""
        values, counts = np.unique(self.status, return_counts=True)
        return {IVStatus(int(v)).name: int(c) for v, c in zip(values, counts, strict=True)}


@dataclass(frozen=True)
class Greeks:
    """BSM value and sensitivities, each an array broadcast from the inputs.

    Units: ``delta`` per 1 unit of spot; ``gamma`` per unit of spot squared; ``vega`` per
    1.00 (100 vol points) of volatility; ``theta_per_year`` per year of calendar time and
    ``theta_per_day`` = ``theta_per_year / days_per_year``; ``rho`` per 1.00 of ``rate_cc``.
    """

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta_per_year: np.ndarray
    theta_per_day: np.ndarray
    rho: np.ndarray


def is_call_from_cp(cp) -> np.ndarray:
    """Map an array of ``'C'``/``'P'`` codes (engine chain schema) to a boolean call mask."""
    codes = np.asarray(cp, dtype=object)
    is_call = codes == "C"
    bad = ~(is_call | (codes == "P"))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"cp has {int(bad.sum())} values other than 'C'/'P' (first at position {first}: "
            f"{codes.flat[first]!r}); map option types to 'C' or 'P' before pricing"
        )
    return is_call.astype(bool)


def _check_positive(name: str, values: np.ndarray, *, allow_zero: bool = False) -> None:
    """Raise DataError if any finite element is negative (or zero when not allowed)."""
    bad = values < 0 if allow_zero else values <= 0
    if np.any(bad):
        first = int(np.flatnonzero(bad.ravel())[0])
        bound = ">= 0" if allow_zero else "> 0"
        raise DataError(
            f"{name} must be {bound}: {int(np.sum(bad))} elements violate it (first at flat "
            f"position {first}: {values.ravel()[first]!r}); drop or fix those rows"
        )


def _broadcast(*arrays) -> list[np.ndarray]:
    return [np.array(a, dtype=float) for a in np.broadcast_arrays(*arrays)]


def _contract_terms(
    spot, strike, tau_years, sigma, rate_cc, div_yield_cc, is_call, *, at_expiry_ok: bool
):
    """Broadcast and validate pricing inputs; the last item is +1 for calls, -1 for puts."""
    spot, strike, tau_years, sigma, rate_cc, div_yield_cc, call = _broadcast(
        spot, strike, tau_years, sigma, rate_cc, div_yield_cc, is_call
    )
    _check_positive("spot", spot)
    _check_positive("strike", strike)
    _check_positive("tau_years", tau_years, allow_zero=at_expiry_ok)
    _check_positive("sigma", sigma, allow_zero=at_expiry_ok)
    return spot, strike, tau_years, sigma, rate_cc, div_yield_cc, np.where(call != 0, 1.0, -1.0)


def _forward_terms(spot, strike, tau_years, rate_cc, div_yield_cc):
    """Discount factor, forward and log-moneyness ln(F/K)."""
    discount = np.exp(-rate_cc * tau_years)
    forward = spot * np.exp((rate_cc - div_yield_cc) * tau_years)
    return discount, forward, np.log(forward / strike)


def _log_b(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ln b(x, s) for x <= 0, s > 0 (normalised OTM time value), without cancellation."""
    d1 = x / s + 0.5 * s
    log_a = 0.5 * x + log_ndtr(d1)
    log_c = -0.5 * x + log_ndtr(d1 - s)
    # log_c < log_a always; far in the wings (b ~ 1e-1e8) rounding can tie them: b is then 0.
    return log_a + np.log(-np.expm1(np.minimum(log_c - log_a, 0.0)))


def _log_b_complement(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ln(exp(x/2) - b(x, s)) for x <= 0, s > 0: a sum of two positive terms."""
    d1 = x / s + 0.5 * s
    return np.logaddexp(0.5 * x + log_ndtr(-d1), -0.5 * x + log_ndtr(d1 - s))


def _log_vega_normalised(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ln(db/ds) = x/2 + ln phi(x/s + s/2)."""
    d1 = x / s + 0.5 * s
    return 0.5 * x - 0.5 * d1 * d1 - _LOG_SQRT_2PI


def bs_price(
    spot,
    strike,
    tau_years,
    sigma,
    *,
    rate_cc=0.0,
    div_yield_cc=0.0,
    is_call=True,
) -> np.ndarray:
    """BSM price of European options (same currency units as ``spot`` and ``strike``).

    Computed as discounted forward intrinsic value plus the normalised out-of-the-money time
    value, so deep out-of-the-money prices keep full relative precision (down to ~1e-300).
    ``tau_years == 0`` or ``sigma == 0`` give the discounted forward intrinsic value. NaN
    inputs propagate; negative or zero spot/strike and negative tau/sigma raise DataError.
    """
    spot, strike, tau_years, sigma, rate_cc, div_yield_cc, theta = _contract_terms(
        spot, strike, tau_years, sigma, rate_cc, div_yield_cc, is_call, at_expiry_ok=True
    )
    discount, forward, log_moneyness = _forward_terms(
        spot, strike, tau_years, rate_cc, div_yield_cc
    )
    intrinsic_fwd = np.maximum(theta * (forward - strike), 0.0)
    s = sigma * np.sqrt(tau_years)
    with np.errstate(divide="ignore", invalid="ignore"):
        time_value = np.sqrt(forward * strike) * np.exp(_log_b(-np.abs(log_moneyness), s))
    time_value = np.where(s > 0, time_value, np.where(np.isnan(s), np.nan, 0.0))
    return discount * (intrinsic_fwd + time_value)


def bs_greeks(
    spot,
    strike,
    tau_years,
    sigma,
    *,
    rate_cc=0.0,
    div_yield_cc=0.0,
    is_call=True,
    days_per_year: float = DAYS_PER_YEAR,
) -> Greeks:
    """BSM value, delta, gamma, vega, theta and rho (Hull ch. 19; Haug 2007 ch. 2).

    ``tau_years`` and ``sigma`` must be > 0 where finite (greeks at expiry are not defined);
    NaN inputs (e.g. an implied volatility that could not be solved) propagate as NaN.
    """
    spot, strike, tau_years, sigma, rate_cc, div_yield_cc, theta_sign = _contract_terms(
        spot, strike, tau_years, sigma, rate_cc, div_yield_cc, is_call, at_expiry_ok=False
    )
    price = bs_price(
        spot,
        strike,
        tau_years,
        sigma,
        rate_cc=rate_cc,
        div_yield_cc=div_yield_cc,
        is_call=theta_sign > 0,
    )
    sqrt_tau = np.sqrt(tau_years)
    s = sigma * sqrt_tau
    d1 = (np.log(spot / strike) + (rate_cc - div_yield_cc) * tau_years) / s + 0.5 * s
    d2 = d1 - s
    div_discount = np.exp(-div_yield_cc * tau_years)
    discount = np.exp(-rate_cc * tau_years)
    pdf_d1 = np.exp(-0.5 * d1 * d1) / _SQRT_2PI
    n_d1 = ndtr(theta_sign * d1)
    n_d2 = ndtr(theta_sign * d2)
    delta = theta_sign * div_discount * n_d1
    gamma = div_discount * pdf_d1 / (spot * s)
    vega = spot * div_discount * pdf_d1 * sqrt_tau
    theta_year = (
        -spot * div_discount * pdf_d1 * sigma / (2.0 * sqrt_tau)
        - theta_sign * rate_cc * strike * discount * n_d2
        + theta_sign * div_yield_cc * spot * div_discount * n_d1
    )
    rho = theta_sign * strike * tau_years * discount * n_d2
    return Greeks(
        price=price,
        delta=delta,
        gamma=gamma,
        vega=vega,
        theta_per_year=theta_year,
        theta_per_day=theta_year / days_per_year,
        rho=rho,
    )


def _initial_guess(x: np.ndarray, b: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Starting s for the normalised problem (x <= 0, 0 < b < e^{x/2}); an underestimate below."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Brenner-Subrahmanyam (1988) at the money: b ~ s / sqrt(2 pi), an upper bound on b.
        s_atm = _SQRT_2PI * b
        # Wing: ln b ~ -x^2 / (2 s^2) + (terms < 0 for s < 1): another underestimate of s.
        s_wing = -x / np.sqrt(-2.0 * np.log(b))
        # Near the upper bound: exp(x/2) - b ~ (exp(x/2) + exp(-x/2)) N(-s/2), exact at x = 0.
        remainder = np.exp(0.5 * x) - b
        s_high = -2.0 * ndtri(remainder / (np.exp(0.5 * x) + np.exp(-0.5 * x)))
    guess = np.where(upper, s_high, np.fmax(s_atm, s_wing))
    good = np.isfinite(guess) & (guess > 0)
    return np.clip(np.where(good, guess, 1.0), 1e-300, _S_MAX)


def _objective(x, s, upper, target):
    """Transformed objective h(s) - h*, increasing and nearly linear in s, and its slope.

    Lower branch: h = (-ln b)^(-1/2), linear in s where ln b ~ -x^2/(2 s^2) (the wings).
    Upper branch: h = (-ln(e^{x/2} - b))^(1/2), linear in s where ln(e^{x/2} - b) ~ -s^2/8.
    Both logs are < -ln 2 on their branch, so the roots are well defined.
    """
    log_value = np.where(upper, _log_b_complement(x, s), _log_b(x, s))
    log_vega = _log_vega_normalised(x, s)
    neg_log = -log_value
    h = np.where(upper, np.sqrt(neg_log), 1.0 / np.sqrt(neg_log))
    # d(-ln u)/ds = vega/u on the upper branch; d(-ln b)/ds = -vega/b on the lower branch.
    rate = np.exp(log_vega - log_value)
    slope = np.where(upper, 0.5 * rate / np.sqrt(neg_log), 0.5 * rate * neg_log**-1.5)
    return h - target, slope


def _safeguarded_step(s, f, step, lo, hi):
    """One Newton step kept inside the bracket [lo, hi] (updated from the sign of f).

    A step leaving the bracket (or NaN) is replaced by bisection: geometric when both ends
    are positive, a factor 4 towards the open end otherwise. Returns (s, lo, hi, done).
    """
    lo = np.where(f < 0, s, lo)
    hi = np.where(f > 0, s, hi)
    done = (f == 0) | (np.abs(step) <= _STEP_RTOL * s)
    s_new = s - step
    outside = ~((s_new > lo) & (s_new < hi))
    bisect = np.where(
        np.isinf(hi),
        np.minimum(4.0 * s, _S_MAX),
        np.where(lo > 0, np.sqrt(lo * hi), 0.25 * hi),
    )
    s_new = np.where(outside & ~done, bisect, s_new)
    done |= np.isfinite(hi) & ((hi - lo) <= _BRACKET_RTOL * hi)
    return s_new, lo, hi, done


def _solve_normalised(
    x: np.ndarray, b: np.ndarray, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Solve b(x, s) = b for s elementwise; returns (s, converged mask, iterations used)."""
    upper = b > 0.5 * np.exp(0.5 * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_log_target = -np.where(upper, np.log(np.exp(0.5 * x) - b), np.log(b))
        target = np.where(upper, np.sqrt(neg_log_target), 1.0 / np.sqrt(neg_log_target))
    s = _initial_guess(x, b, upper)
    lo = np.zeros_like(s)
    hi = np.full_like(s, np.inf)
    converged = np.zeros(s.shape, dtype=bool)
    active = np.arange(s.size)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - count reported to the caller
        sa = s[active]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            f, slope = _objective(x[active], sa, upper[active], target[active])
            s_new, lo_a, hi_a, done = _safeguarded_step(sa, f, f / slope, lo[active], hi[active])
        s[active], lo[active], hi[active] = s_new, lo_a, hi_a
        converged[active[done]] = True
        active = active[~done]
        if active.size == 0:
            break
    return s, converged, iterations


def implied_vol(
    price,
    spot,
    strike,
    tau_years,
    *,
    rate_cc=0.0,
    div_yield_cc=0.0,
    is_call=True,
    max_iter: int = 100,
) -> ImpliedVolResult:
    """Vectorised BSM implied volatility with a status code per element.

    Bounds (undiscounted in forward terms): a call must satisfy
    ``max(F - K, 0) < price / DF < F`` and a put ``max(K - F, 0) < price / DF < K``; outside,
    the element is NaN with ``BELOW_INTRINSIC`` / ``AT_INTRINSIC`` / ``ABOVE_UPPER_BOUND``.
    A time value within a few ulps of zero relative to the price counts as ``AT_INTRINSIC``:
    the volatility is then not identifiable in double precision.
    """
    price, spot, strike, tau_years, rate_cc, div_yield_cc, call = _broadcast(
        price, spot, strike, tau_years, rate_cc, div_yield_cc, is_call
    )
    shape = price.shape
    status = np.full(shape, IVStatus.OK, dtype=np.int8)
    valid = (
        np.isfinite(price)
        & (price >= 0)
        & (spot > 0)
        & (strike > 0)
        & (tau_years > 0)
        & np.isfinite(rate_cc)
        & np.isfinite(div_yield_cc)
    )
    status[~valid] = IVStatus.INVALID_INPUT
    with np.errstate(divide="ignore", invalid="ignore"):
        discount, forward, log_moneyness = _forward_terms(
            spot, strike, tau_years, rate_cc, div_yield_cc
        )
        theta = np.where(call != 0, 1.0, -1.0)
        undiscounted = price / discount
        intrinsic_fwd = np.maximum(theta * (forward - strike), 0.0)
        time_value = undiscounted - intrinsic_fwd
        scale = np.sqrt(forward * strike)
        x = -np.abs(log_moneyness)
        b = time_value / scale
        ceiling = np.exp(0.5 * x)
    rounding = 4.0 * _EPS * (undiscounted + intrinsic_fwd)
    status[valid & (time_value < -rounding)] = IVStatus.BELOW_INTRINSIC
    status[valid & (np.abs(time_value) <= rounding)] = IVStatus.AT_INTRINSIC
    status[valid & (time_value > rounding) & (b >= ceiling * (1.0 - 4.0 * _EPS))] = (
        IVStatus.ABOVE_UPPER_BOUND
    )
    solve = status == IVStatus.OK
    iv = np.full(shape, np.nan)
    iterations = 0
    if solve.any():
        s, converged, iterations = _solve_normalised(x[solve], b[solve], max_iter)
        solved_iv = np.where(converged, s / np.sqrt(tau_years[solve]), np.nan)
        iv[solve] = solved_iv
        if not converged.all():
            idx = np.flatnonzero(solve)[~converged]
            status.flat[idx] = IVStatus.NOT_CONVERGED
            warnings.warn(
                ConvergenceWarning(
                    f"implied_vol: {idx.size} elements did not converge in {max_iter} "
                    "iterations (status NOT_CONVERGED, iv NaN); raise max_iter"
                ),
                stacklevel=2,
            )
    return ImpliedVolResult(iv=iv, status=status, iterations=iterations)
