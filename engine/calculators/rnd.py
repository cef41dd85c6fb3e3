"""Risk-neutral densities by Bondarenko's positive convolution approximation (PCA).

Method (REFERENCES.md section 6): the density of the underlying at expiry is a mixture of
Gaussian kernels of common width ``h`` centred on an equally spaced grid ``z_j``::

    f(u) = sum_j a_j phi_h(u - z_j),   a_j >= 0,  sum_j a_j = 1  (optionally sum_j a_j z_j = F)

so put prices are linear in the weights, in closed form::

    P(K) = exp(-r T) sum_j a_j [ (K - z_j) Phi((K - z_j)/h) + h phi((K - z_j)/h) ]

and calls follow by parity kernel by kernel: C_j(K) = P_j(K) + exp(-r T) (z_j - K).  The weights
solve the constrained least-squares problem

    min_a  1/2 || W^(1/2) (D a - y) ||^2 + 1/2 rho ||a||^2   s.t.  a >= 0,  1'a = 1,  [z'a = F]

which is the quadratic program  min 1/2 a'(Q + rho I)a + c'a  with the Gram matrix Q = D'WD and
linear term c = -D'Wy (D is built once per chain; cross-validation folds reuse Q and c minus
the held-out rows).  rho is tiny (1e-8 x mean diag Q by default): overlapping Gaussian kernels
make Q numerically singular, so without it the least-squares optimum is a whole face of weight
vectors; with it the QP is strictly convex and has one solution.  Solving (no penalty terms
stand in for the constraints):

1. DAQP (an exact dual active-set QP solver, through qpsolvers) on (Q + rho I, c) gives the
   active set in well under a millisecond;
2. a primal active-set method (Lawson-Hanson style, equality constraints by null-space
   elimination) finishes on the design matrix itself, i.e. least squares by QR/SVD on
   [W^(1/2) D; sqrt(rho) I] rather than on the normal equations, whose squared condition
   number limits a Gram-only solve to about sqrt(eps) in the residual; it stops at a KKT point
   (multipliers reported in :class:`SolverInfo`).  If DAQP fails (it can cycle on nearly
   singular Gram matrices) the same method starts cold from a feasible vertex.

Conventions (all documented here once):

* Everything is fitted in units of the forward: strikes k = K/F, undiscounted prices
  y = price * exp(r T) / F, centres and bandwidth divided by F.  Prices are then O(1), the
  Gram matrix is well scaled and the fit is invariant to the currency unit.
* Time to expiry is ACT/365 calendar days (``DAYS_PER_YEAR``), as in the VIX methodology
  (REFERENCES.md section 1) which counts calendar time.
* Moments are those of the price S_T (not of log returns), in closed form for the mixture.
* Horizon interpolation (``interpolate_horizon``): total variance (std/F)^2 linear in time to
  expiry, as the VIX interpolates variance between the near and next terms; skewness, excess
  kurtosis and tail probabilities linear in time, as the Cboe SKEW index interpolates skewness;
  the forward log-linearly in time (constant carry).

Nothing here imports backtrader: an indicator calls :func:`rnd_horizon_moments` (one call over
a whole chain history) or :func:`fit_rnd_chain` (one chain) and maps the columns to lines.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from volbacktest.engine.errors import (
    ConfigError,
    ConvergenceWarning,
    DataError,
    DataQualityWarning,
    require_extra,
)

logger = logging.getLogger(__name__)

# ACT/365 calendar-day year fraction (the VIX methodology, REFERENCES.md section 1, counts
# calendar time).
DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Spread weights: inverse variance with sd proportional to the spread; spreads are clipped to
# [1/SPREAD_CLIP, SPREAD_CLIP] x the chain's median spread so no quote takes all the weight.
SPREAD_CLIP = 4.0
# Weights below this (after the solve) are numerical zeros of the active set and are set to 0.
_WEIGHT_ZERO = 1e-12
# Active-set stopping rule: bound multipliers >= -_KKT_TOL x scale (scale = max|M| (|r| + |M|_F)).
_KKT_TOL = 1e-12
# A finish whose relative KKT violation exceeds this is reported 'inaccurate' (and warned).
_KKT_ACCEPT = 1e-8
_SOLVERS = ("daqp", "clarabel")
_PRICE_SOURCES = ("auto", "mid", "close", "last", "settle")
_FORWARD_METHODS = ("parity_min", "regression")


# --------------------------------------------------------------------------------------------
# settings and result objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RNDOptions:
    """Settings of the estimator (validated once, on construction).

    n_kernels: largest number of Gaussian kernels (grid points z_j).
    kernels_per_bandwidth: at most this many centres per bandwidth h (spacing >= h/2; a
        mixture of width h gains nothing from denser centres, the QP only gets larger).
    bandwidth: ``"rule"`` (h = bandwidth_factor x median strike step, and never below the
        spacing of the kernel centres), ``"cv"`` (K-fold cross-validation over strikes among
        ``cv_factors`` x strike step), or a number in price units.
    grid_pad: the centres extend ``grid_pad`` x h beyond the lowest/highest strike.
    match_forward: impose sum_j a_j z_j = F (the density's mean equals the forward).
    weighting: ``"spread"`` (inverse squared bid-ask spread, clipped to [1/4, 4] x the
        median spread) or ``"none"``.
    price: quote used by the chain functions: ``"auto"`` (bid/ask mid, else close, last,
        settle), or one of ``"mid"``, ``"close"``, ``"last"``, ``"settle"``.
    drop_zero_bid: drop quotes whose bid is 0 (no market) when a bid column exists.
    forward_method: ``"parity_min"`` (K + e^{rT}(C - P) at the strike with the smallest
        |C - P|) or ``"regression"`` (OLS of C - P on K over the ``parity_strikes`` strikes
        nearest that one; F = -intercept/slope).
    n_eval: points of the evaluation grid on which density and CDF are returned.
    solver: ``"daqp"`` (exact dual active set, default) or ``"clarabel"`` (interior point).
    primal_tol: DAQP primal feasibility tolerance (its default 1e-6 is loose for weights).
    ridge: Tikhonov weight of 1/2 rho ||a||^2 relative to the mean diagonal of the Gram
        matrix (rho = ridge x trace(Q)/n).  Gaussian kernels overlap, so Q is numerically
        singular and the least-squares optimum is a whole face of weight vectors; the tiny
        ridge picks the minimum-norm one, makes the QP strictly convex (unique solution,
        DAQP's Cholesky well posed) and moves prices by far less than any quote tick.
        0 gives the unregularised problem (the finish then returns one of its optima).
    """

    n_kernels: int = 100
    kernels_per_bandwidth: float = 2.0
    bandwidth: str | float = "rule"
    bandwidth_factor: float = 1.0
    cv_factors: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
    cv_folds: int = 5
    grid_pad: float = 4.0
    match_forward: bool = True
    weighting: str = "spread"
    price: str = "auto"
    drop_zero_bid: bool = True
    forward_method: str = "parity_min"
    parity_strikes: int = 6
    n_eval: int = 201
    solver: str = "daqp"
    primal_tol: float = 1e-10
    ridge: float = 1e-8

    def __post_init__(self) -> None:
        if self.n_kernels < 3:
            raise ConfigError(f"RNDOptions.n_kernels={self.n_kernels}: use at least 3 kernels")
        if not self.kernels_per_bandwidth > 0.0:
            raise ConfigError(
                f"RNDOptions.kernels_per_bandwidth={self.kernels_per_bandwidth}: must be > 0"
            )
        self._check_bandwidth()
        if self.cv_folds < 2:
            raise ConfigError(f"RNDOptions.cv_folds={self.cv_folds}: use at least 2 folds")
        if self.grid_pad < 0.0:
            raise ConfigError(f"RNDOptions.grid_pad={self.grid_pad}: must be >= 0")
        _check_choice("weighting", self.weighting, ("spread", "none"))
        _check_choice("price", self.price, _PRICE_SOURCES)
        _check_choice("forward_method", self.forward_method, _FORWARD_METHODS)
        _check_choice("solver", self.solver, _SOLVERS)
        if self.parity_strikes < 2:
            raise ConfigError(f"RNDOptions.parity_strikes={self.parity_strikes}: use >= 2")
        if not (self.ridge >= 0.0 and math.isfinite(self.ridge)):
            raise ConfigError(f"RNDOptions.ridge={self.ridge}: must be a finite number >= 0")
        if self.n_eval < 11:
            raise ConfigError(f"RNDOptions.n_eval={self.n_eval}: use at least 11 points")

    def _check_bandwidth(self) -> None:
        bw = self.bandwidth
        if isinstance(bw, str):
            _check_choice("bandwidth", bw, ("rule", "cv"))
        elif not (float(bw) > 0.0 and math.isfinite(float(bw))):
            raise ConfigError(f"RNDOptions.bandwidth={bw!r}: a numeric bandwidth must be > 0")
        if not self.bandwidth_factor >= 1.0:
            raise ConfigError(
                f"RNDOptions.bandwidth_factor={self.bandwidth_factor}: must be >= 1 (h below the "
                "strike step fits prices but gives a spiky density, REFERENCES.md section 6); "
                "pass a numeric bandwidth to override deliberately"
            )
        if not self.cv_factors or min(self.cv_factors) <= 0.0:
            raise ConfigError(f"RNDOptions.cv_factors={self.cv_factors}: give positive factors")


def _check_choice(name: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ConfigError(f"RNDOptions.{name}={value!r} is not valid; use one of {list(valid)}")


@dataclass(frozen=True)
class ArbitrageReport:
    """Static-arbitrage checks on input prices (counts, and worst violations in price units).

    monotonicity: calls non-increasing and puts non-decreasing in strike, with vertical-spread
        slopes at most the discount factor (|dC/dK|, dP/dK <= e^{-rT}).
    convexity: butterflies on consecutive strikes (non-uniform spacing) are non-negative.
    bounds: e^{-rT} max(F - K, 0) <= C <= e^{-rT} F and e^{-rT} max(K - F, 0) <= P <= e^{-rT} K
        (F the parity forward).
    ``*_beyond_spread``: the violations still present after allowing each price to move by
    half its bid-ask spread (the same positions traded at bid/ask); equal to the plain counts
    when no spreads are known (close prices).
    """

    n_calls: int
    n_puts: int
    monotonicity_violations: int
    worst_monotonicity: float
    convexity_violations: int
    worst_convexity: float
    bound_violations: int
    worst_bound: float
    monotonicity_beyond_spread: int = 0
    convexity_beyond_spread: int = 0
    bound_beyond_spread: int = 0

    @property
    def total_violations(self) -> int:
        return self.monotonicity_violations + self.convexity_violations + self.bound_violations

    @property
    def total_beyond_spread(self) -> int:
        return (
            self.monotonicity_beyond_spread
            + self.convexity_beyond_spread
            + self.bound_beyond_spread
        )

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class SolverInfo:
    """How the QP was solved (Q, c, multipliers in forward units, see the module doc).

    solver: the QP solver that supplied the starting active set (``daqp`` or ``clarabel``);
        ``start`` says whether its solution (``"solver"``) or a cold feasible start
        (``"cold"``, when the solver failed) seeded the active-set finish.
    status: ``"optimal"`` when the relative KKT violation is at most 1e-8, else
        ``"inaccurate"`` (a ConvergenceWarning is issued; the weights are still feasible).
    iterations: rounds of the active-set finish; n_active: weights held at 0.
    ridge: the Tikhonov weight rho of 1/2 rho ||a||^2 in the objective (forward units).
    dual_eq, dual_bounds: multipliers nu of A a = b and lam >= 0 of a >= 0, with
        stationarity (Q + rho I) a + c + A'nu - lam = 0 and lam_j a_j = 0.
    kkt_violation: largest of the relative stationarity, dual-feasibility and
        complementary-slackness residuals at the returned weights.
    """

    solver: str
    start: str
    status: str
    objective: float
    ridge: float
    solve_seconds: float
    iterations: int
    n_active: int
    dual_eq: np.ndarray
    dual_bounds: np.ndarray
    kkt_violation: float

    @property
    def found(self) -> bool:
        return self.status == "optimal"


@dataclass(frozen=True)
class RNDResult:
    """A fitted risk-neutral density (price units unless said otherwise).

    grid, density, cdf: evaluation grid of S_T and the closed-form density and CDF on it.
    centres, weights: kernel centres z_j and mixture weights a_j (>= 0, sum 1).
    bandwidth: kernel sd h; forward: F used (parity or given); spot: reference level of
        :meth:`prob_below` (the forward when no spot was given).
    mean, variance, std, skewness, excess_kurtosis: closed-form moments of the mixture.
    strikes, is_call, prices, fitted_prices, residuals: the quotes that were fitted (discounted
        prices, residual = fitted - market); ls_weights: their least-squares weights.
    solver: how the QP was solved (status, multipliers, KKT violation).
    arbitrage: static-arbitrage checks on the input prices.
    diagnostics: counts and choices (rows dropped by reason, strike step, centre spacing,
        cross-validation scores and factor, probability mass below zero, ...).
    """

    grid: np.ndarray
    density: np.ndarray
    cdf: np.ndarray
    centres: np.ndarray
    weights: np.ndarray
    bandwidth: float
    forward: float
    spot: float
    tau_years: float
    rate_cc: float
    mean: float
    variance: float
    std: float
    skewness: float
    excess_kurtosis: float
    strikes: np.ndarray
    is_call: np.ndarray
    prices: np.ndarray
    fitted_prices: np.ndarray
    residuals: np.ndarray
    ls_weights: np.ndarray
    solver: SolverInfo
    arbitrage: ArbitrageReport
    diagnostics: dict = field(default_factory=dict)

    @property
    def solver_status(self) -> str:
        return self.solver.status

    @property
    def rmse(self) -> float:
        """Root mean squared pricing residual (price units)."""
        return float(np.sqrt(np.mean(self.residuals**2)))

    def pdf(self, u: np.ndarray | float) -> np.ndarray:
        """Density at price(s) ``u`` (closed form)."""
        return _mixture_pdf(np.asarray(u, dtype=float), self.centres, self.weights, self.bandwidth)

    def cdf_at(self, u: np.ndarray | float) -> np.ndarray:
        """Risk-neutral probability that S_T <= u (closed form)."""
        return _mixture_cdf(np.asarray(u, dtype=float), self.centres, self.weights, self.bandwidth)

    def prob_below(self, fractions: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Risk-neutral probability that S_T falls below ``fraction`` x spot (e.g. 0.9)."""
        frac = np.asarray(fractions, dtype=float)
        if np.any(~np.isfinite(frac)) or np.any(frac <= 0.0):
            raise ConfigError(f"prob_below: fractions of spot must be > 0, got {fractions!r}")
        return self.cdf_at(frac * self.spot)

    def quantiles(self, p: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Quantiles of S_T at probabilities ``p`` in (0, 1): the tabulated CDF brackets each
        root, then safeguarded Newton steps on the closed-form CDF (bisection whenever a step
        would leave the bracket) converge to |F(q) - p| < 1e-13."""
        probs = np.atleast_1d(np.asarray(p, dtype=float))
        if np.any(~np.isfinite(probs)) or np.any(probs <= 0.0) or np.any(probs >= 1.0):
            raise ConfigError(f"quantiles: probabilities must lie in (0, 1), got {p!r}")
        idx = np.clip(np.searchsorted(self.cdf, probs), 1, self.grid.size - 1)
        lo = self.grid[idx - 1].copy()
        hi = self.grid[idx].copy()
        lo[self.cdf[idx - 1] >= probs] = self.grid[0] - 10.0 * self.bandwidth
        hi[self.cdf[idx] < probs] = self.grid[-1] + 10.0 * self.bandwidth
        c_lo, c_hi = self.cdf_at(lo), self.cdf_at(hi)
        x = lo + (hi - lo) * np.clip((probs - c_lo) / np.maximum(c_hi - c_lo, 1e-300), 0, 1)
        for _ in range(60):
            z = (x[:, None] - self.centres) / self.bandwidth
            err = ndtr(z) @ self.weights - probs
            if np.all(np.abs(err) < 1e-13):
                break
            dens = (np.exp(-0.5 * z * z) @ self.weights) * (_INV_SQRT_2PI / self.bandwidth)
            lo = np.where(err < 0.0, x, lo)
            hi = np.where(err < 0.0, hi, x)
            newton = x - err / np.where(dens > 0.0, dens, np.nan)
            inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
            x = np.where(inside, newton, 0.5 * (lo + hi))
        return x if np.ndim(p) else x.reshape(())


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def _mixture_pdf(u: np.ndarray, centres: np.ndarray, weights: np.ndarray, h: float) -> np.ndarray:
    x = (u[..., None] - centres) / h
    return (np.exp(-0.5 * x * x) @ weights) * (_INV_SQRT_2PI / h)


def _mixture_cdf(u: np.ndarray, centres: np.ndarray, weights: np.ndarray, h: float) -> np.ndarray:
    return ndtr((u[..., None] - centres) / h) @ weights


def design_matrix(
    strikes: np.ndarray, is_call: np.ndarray, centres: np.ndarray, bandwidth: float
) -> np.ndarray:
    """Undiscounted option prices of each unit kernel: D[i, j] = E_j[(K_i - X)^+] (puts)
    or E_j[(X - K_i)^+] = put + (z_j - K_i) (calls, parity per kernel), X ~ N(z_j, h^2).

    One exp and one erf per entry; the call rows reuse the put closed form.
    """
    k = np.asarray(strikes, dtype=float)[:, None]
    x = (k - centres[None, :]) / bandwidth
    put = bandwidth * (x * ndtr(x) + _INV_SQRT_2PI * np.exp(-0.5 * x * x))
    calls = np.asarray(is_call, dtype=bool)
    if calls.any():
        put[calls] += centres[None, :] - k[calls]
    return put


@dataclass(frozen=True)
class MixtureMoments:
    """Moments of a Gaussian mixture (price units; skewness and kurtosis standardised)."""

    mean: float
    variance: float
    skewness: float
    excess_kurtosis: float


def mixture_moments(centres: np.ndarray, weights: np.ndarray, bandwidth: float) -> MixtureMoments:
    """Mean, variance, skewness and excess kurtosis of sum_j a_j N(z_j, h^2), in closed form."""
    mean = float(weights @ centres)
    d = centres - mean
    h2 = bandwidth * bandwidth
    m2 = float(weights @ (d * d)) + h2
    m3 = float(weights @ (d**3 + 3.0 * d * h2))
    m4 = float(weights @ (d**4 + 6.0 * d * d * h2)) + 3.0 * h2 * h2
    return MixtureMoments(mean, m2, m3 / m2**1.5, m4 / (m2 * m2) - 3.0)


# --------------------------------------------------------------------------------------------
# the quadratic program
# --------------------------------------------------------------------------------------------


@functools.cache
def _qpsolvers():
    """qpsolvers, imported once on first use (optional extra 'qp')."""
    return require_extra("qpsolvers", "qp")


def _solve_qp(
    gram: np.ndarray,
    linear: np.ndarray,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    options: RNDOptions,
) -> np.ndarray | None:
    """min 1/2 a'Qa + c'a  s.t.  a >= 0, A a = b, by DAQP (or Clarabel) through qpsolvers.
    Returns the primal solution, or None when the solver reports failure."""
    qpsolvers = _qpsolvers()
    n = linear.size
    if options.solver == "daqp":
        problem = qpsolvers.Problem(P=gram, q=linear, A=a_eq, b=b_eq, lb=np.zeros(n))
        settings = {"primal_tol": options.primal_tol}
    else:  # interior point (cross-checks): it takes sparse matrices
        from scipy import sparse

        problem = qpsolvers.Problem(
            P=sparse.csc_matrix(gram), q=linear, A=sparse.csc_matrix(a_eq), b=b_eq, lb=np.zeros(n)
        )
        settings = {}
    solution = qpsolvers.solve_problem(problem, solver=options.solver, **settings)
    if not solution.found or solution.x is None or not np.isfinite(solution.x).all():
        logger.debug("%s failed on a %d-kernel RND QP; cold active-set start", options.solver, n)
        return None
    return np.asarray(solution.x, dtype=float)


def _cold_start(a_eq: np.ndarray, b_eq: np.ndarray) -> np.ndarray:
    """A feasible vertex: all mass on the kernel nearest the forward (sum only) or on the two
    centres bracketing it (sum and mean)."""
    z = a_eq[-1] if a_eq.shape[0] == 2 else None
    n = a_eq.shape[1]
    x = np.zeros(n)
    if z is None:
        x[n // 2] = 1.0
        return x
    target = b_eq[1] / b_eq[0]
    j = int(np.clip(np.searchsorted(z, target) - 1, 0, n - 2))
    x[j] = (z[j + 1] - target) / (z[j + 1] - z[j])
    x[j + 1] = 1.0 - x[j]
    return x * b_eq[0]


@dataclass(frozen=True)
class _ActiveSetResult:
    x: np.ndarray
    nu: np.ndarray
    lam: np.ndarray
    iterations: int
    kkt_violation: float


def _face_step(m, r, sq_rho, a_eq, b_eq, x, free):
    """Minimiser of 1/2||M x - r||^2 + 1/2 rho||x||^2 on the face {x_F free, A_F x_F = b} as a
    step from x: a min-norm equality correction plus the least-squares step in the null space
    of A_F, solved on the stacked design [M_F N; sqrt(rho) N] (QR/SVD, no normal equations)."""
    e_f = a_eq[:, free]
    p = e_f.shape[0]
    xf = x[free]
    fix, *_ = np.linalg.lstsq(e_f, b_eq - e_f @ xf, rcond=None)
    q_full, _ = np.linalg.qr(e_f.T, mode="complete")
    null = q_full[:, p:]
    if null.shape[1] == 0:
        return fix
    m_f = m[:, free]
    base = xf + fix
    lhs = np.vstack([m_f @ null, sq_rho * null])
    rhs = np.concatenate([r - m_f @ base, -sq_rho * base])
    delta, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return fix + null @ delta


def _active_set(
    m: np.ndarray,
    r: np.ndarray,
    rho: float,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    x0: np.ndarray,
    max_iter: int,
) -> _ActiveSetResult:
    """Primal active-set method (Lawson-Hanson style) for
    min 1/2||M a - r||^2 + 1/2 rho||a||^2  s.t.  a >= 0, A a = b,  working on M itself.

    From a feasible x0 (the QP solver's answer, or a cold vertex): solve the face problem on
    the free set F; if the step leaves the orthant, cut it at the boundary (the objective is
    convex along the segment, so it still decreases) and drop the blocking weights from F;
    at a face optimum compute the bound multipliers lam = g + A'nu from the gradient g and
    free the most negative one.  Terminates when lam >= -tol on every bound: an exact KKT
    point of the strictly convex (rho > 0) problem, hence its unique solution.
    """
    sq_rho = math.sqrt(rho)
    x = np.where(x0 > _WEIGHT_ZERO, x0, 0.0)
    free = x > 0.0
    # gradient scale: |M|_max (|r| + |M|_F) bounds |M'(M x - r)| for weights on the simplex
    scale = float(np.abs(m).max()) * (float(np.linalg.norm(r)) + float(np.linalg.norm(m)))
    tol = _KKT_TOL * scale
    nu = np.zeros(a_eq.shape[0])
    lam = np.zeros(x.size)
    just_freed = -1
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        step = _face_step(m, r, sq_rho, a_eq, b_eq, x, free)
        idx = np.flatnonzero(free)
        xf = x[idx]
        neg = (xf + step) < 0.0
        if neg.any():
            ratios = np.full(xf.size, np.inf)
            ratios[neg] = xf[neg] / -step[neg]
            i_block = int(np.argmin(ratios))
            if ratios[i_block] == 0.0 and idx[i_block] == just_freed:
                break  # degenerate: the freed weight cannot move; KKT violation is reported
            new = xf + ratios[i_block] * step
            new[i_block] = 0.0
            new[new < _WEIGHT_ZERO] = 0.0
            x[idx] = new
            free = x > 0.0
            continue
        x[idx] = xf + step
        grad = m.T @ (m @ x - r) + rho * x
        nu, *_ = np.linalg.lstsq(a_eq[:, free].T, -grad[free], rcond=None)
        lam = grad + a_eq.T @ nu
        blocked = np.where(free, np.inf, lam)
        just_freed = int(np.argmin(blocked))
        if blocked[just_freed] >= -tol:
            break
        free[just_freed] = True
    free = x > 0.0
    grad = m.T @ (m @ x - r) + rho * x
    nu, *_ = np.linalg.lstsq(a_eq[:, free].T, -grad[free], rcond=None)
    lam = grad + a_eq.T @ nu
    violation = (
        max(
            float(np.abs(lam[free]).max(initial=0.0)),
            float(-lam[~free].min(initial=0.0)),
            float(np.abs(lam * x).max()),
        )
        / scale
    )
    return _ActiveSetResult(x=x, nu=nu, lam=lam, iterations=iterations, kkt_violation=violation)


def _solve_weights(
    design: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    a_eq: np.ndarray,
    b_eq: np.ndarray,
    options: RNDOptions,
    gram: np.ndarray | None = None,
    linear: np.ndarray | None = None,
) -> tuple[np.ndarray, SolverInfo]:
    """Weights of the PCA fit: the QP solver (DAQP) on the Gram matrix supplies the active
    set, the active-set method on the design matrix finishes and certifies it (KKT)."""
    started = time.perf_counter()
    sw = np.sqrt(w)
    m = design * sw[:, None]
    r = sw * y
    if gram is None or linear is None:
        gram, linear = m.T @ m, -(m.T @ r)
    n = linear.size
    rho = options.ridge * float(np.trace(gram)) / n
    x0 = _solve_qp(gram + rho * np.eye(n), linear, a_eq, b_eq, options)
    start = "solver" if x0 is not None else "cold"
    if x0 is None:
        x0 = _cold_start(a_eq, b_eq)
    fin = _active_set(m, r, rho, a_eq, b_eq, x0, max_iter=4 * n + 20)
    ok = fin.kkt_violation <= _KKT_ACCEPT
    x = fin.x
    resid = m @ x - r
    info = SolverInfo(
        solver=options.solver,
        start=start,
        status="optimal" if ok else "inaccurate",
        objective=float(0.5 * resid @ resid + 0.5 * rho * x @ x),
        ridge=rho,
        solve_seconds=time.perf_counter() - started,
        iterations=fin.iterations,
        n_active=int(np.count_nonzero(x == 0.0)),
        dual_eq=fin.nu,
        dual_bounds=np.where(x == 0.0, fin.lam, 0.0),
        kkt_violation=fin.kkt_violation,
    )
    return x, info


def _centres(k_min: float, k_max: float, h: float, options: RNDOptions) -> np.ndarray:
    """Equally spaced centres from grid_pad x h below the lowest strike (not below 0) to
    grid_pad x h above the highest; at most n_kernels of them and at most
    kernels_per_bandwidth per h (denser centres add nothing to a mixture of width h)."""
    lo = max(k_min - options.grid_pad * h, 0.0)
    hi = k_max + options.grid_pad * h
    # (the 1e-9 keeps the count stable when the ratio is an integer up to rounding)
    n = min(options.n_kernels, int((hi - lo) / h * options.kernels_per_bandwidth + 1e-9) + 1)
    return np.linspace(lo, hi, max(n, 3))


def _equalities(centres: np.ndarray, match_forward: bool) -> tuple[np.ndarray, np.ndarray]:
    if match_forward:
        return np.vstack([np.ones_like(centres), centres]), np.array([1.0, 1.0])
    return np.ones((1, centres.size)), np.array([1.0])


def _qp_terms(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wd = design * w[:, None]
    return design.T @ wd, -(wd.T @ y)


def _fit_weights(
    k: np.ndarray,
    y: np.ndarray,
    is_call: np.ndarray,
    w: np.ndarray,
    h: float,
    centres: np.ndarray,
    options: RNDOptions,
) -> tuple[np.ndarray, SolverInfo, np.ndarray]:
    design = design_matrix(k, is_call, centres, h)
    a_eq, b_eq = _equalities(centres, options.match_forward)
    a, info = _solve_weights(design, y, w, a_eq, b_eq, options)
    return a, info, design


@dataclass(frozen=True)
class BandwidthCV:
    """Cross-validated bandwidth (forward units), the chosen multiple of the strike step and
    the out-of-sample score of every candidate multiple."""

    bandwidth: float
    factor: float
    scores: dict[float, float]


def cross_validate_bandwidth(
    k: np.ndarray,
    y: np.ndarray,
    is_call: np.ndarray,
    w: np.ndarray,
    step: float,
    options: RNDOptions,
) -> BandwidthCV:
    """K-fold cross-validation of h over ``options.cv_factors`` x strike step (forward units).

    Folds interleave the sorted strikes (fold = rank mod K) so each spans the whole range.
    Each candidate builds its design matrix once; a fold's training Gram matrix and linear
    term are the full ones minus that fold's contribution.  Score: weighted out-of-sample sum
    of squared pricing errors; the smallest score wins (ties: the larger, smoother h).
    """
    m = k.size
    folds = min(options.cv_folds, m)
    order = np.argsort(k, kind="stable")
    fold_of = np.empty(m, dtype=np.int64)
    fold_of[order] = np.arange(m) % folds
    scores: dict[float, float] = {}
    for factor in options.cv_factors:
        h = factor * step
        centres = _centres(min(k.min(), 1.0), max(k.max(), 1.0), h, options)
        h = max(h, centres[1] - centres[0])
        design = design_matrix(k, is_call, centres, h)
        gram, linear = _qp_terms(design, y, w)
        a_eq, b_eq = _equalities(centres, options.match_forward)
        total = 0.0
        for f in range(folds):
            test = fold_of == f
            train = ~test
            g_test, l_test = _qp_terms(design[test], y[test], w[test])
            a, _ = _solve_weights(
                design[train], y[train], w[train], a_eq, b_eq, options,
                gram=gram - g_test, linear=linear - l_test,
            )  # fmt: skip
            err = design[test] @ a - y[test]
            total += float(w[test] @ (err * err))
        scores[float(factor)] = total
    best = min(scores.values())
    if not math.isfinite(best):
        raise DataError("bandwidth cross-validation failed for every candidate; check quotes")
    chosen = max(f for f, s in scores.items() if s <= best * (1.0 + 1e-9))
    return BandwidthCV(bandwidth=chosen * step, factor=chosen, scores=scores)


# --------------------------------------------------------------------------------------------
# arbitrage checks and forward (vectorised over groups)
# --------------------------------------------------------------------------------------------


def _arbitrage_by_group(
    group: np.ndarray,
    is_call: np.ndarray,
    strike: np.ndarray,
    price: np.ndarray,
    forward: np.ndarray,
    discount: np.ndarray,
    n_groups: int,
    half_spread: np.ndarray | None = None,
) -> list[ArbitrageReport]:
    """Static-arbitrage checks for many groups at once.  Rows must be sorted by
    (group, is_call, strike); ``forward``/``discount``/``half_spread`` are per row."""
    hs = np.zeros(price.size) if half_spread is None else np.nan_to_num(half_spread)
    same = (group[1:] == group[:-1]) & (is_call[1:] == is_call[:-1])
    dk = strike[1:] - strike[:-1]
    dp = price[1:] - price[:-1]
    # monotone: calls fall, puts rise; vertical spreads cost at most e^{-rT} dK
    wrong_way = np.where(is_call[:-1], dp, -dp)
    too_steep = np.abs(dp) - discount[:-1] * dk
    mono = np.where(same, np.maximum(wrong_way, too_steep), -np.inf)
    mono_slack = hs[:-1] + hs[1:]
    # convexity on consecutive triples within the same (group, type)
    same3 = same[1:] & same[:-1]
    k0, k1, k2 = strike[:-2], strike[1:-1], strike[2:]
    w0, w2 = (k2 - k1) / (k2 - k0), (k1 - k0) / (k2 - k0)
    fly = w0 * price[:-2] - price[1:-1] + w2 * price[2:]
    conv = np.where(same3, -fly, -np.inf)
    conv_slack = w0 * hs[:-2] + hs[1:-1] + w2 * hs[2:]
    # level bounds
    intrinsic = np.where(is_call, forward - strike, strike - forward)
    lower = discount * np.maximum(intrinsic, 0.0)
    upper = discount * np.where(is_call, forward, strike)
    bound = np.maximum(lower - price, price - upper)

    tol = 1e-12 * np.maximum(forward, 1.0)

    def agg(values, gid, tol_rows, slack):
        bad = values > tol_rows
        counts = np.bincount(gid[bad], minlength=n_groups)
        beyond = np.bincount(gid[values > tol_rows + slack], minlength=n_groups)
        worst = np.zeros(n_groups)
        np.maximum.at(worst, gid[bad], values[bad])
        return counts, worst, beyond

    mono_n, mono_w, mono_b = agg(mono, group[:-1], tol[:-1], mono_slack)
    conv_n, conv_w, conv_b = agg(conv, group[1:-1], tol[1:-1], conv_slack)
    bound_n, bound_w, bound_b = agg(bound, group, tol, hs)
    n_calls = np.bincount(group[is_call], minlength=n_groups)
    n_puts = np.bincount(group[~is_call], minlength=n_groups)
    return [
        ArbitrageReport(
            n_calls=int(n_calls[g]),
            n_puts=int(n_puts[g]),
            monotonicity_violations=int(mono_n[g]),
            worst_monotonicity=float(mono_w[g]),
            convexity_violations=int(conv_n[g]),
            worst_convexity=float(conv_w[g]),
            bound_violations=int(bound_n[g]),
            worst_bound=float(bound_w[g]),
            monotonicity_beyond_spread=int(mono_b[g]),
            convexity_beyond_spread=int(conv_b[g]),
            bound_beyond_spread=int(bound_b[g]),
        )
        for g in range(n_groups)
    ]


def check_arbitrage(
    strikes: np.ndarray,
    prices: np.ndarray,
    is_call: np.ndarray,
    *,
    forward: float,
    tau_years: float,
    rate_cc: float,
    spreads: np.ndarray | None = None,
) -> ArbitrageReport:
    """Static-arbitrage diagnostics of one chain's (discounted) option prices; ``spreads``
    (bid-ask, optional) give the ``*_beyond_spread`` counts."""
    k = np.asarray(strikes, dtype=float)
    p = np.asarray(prices, dtype=float)
    c = np.asarray(is_call, dtype=bool)
    order = np.lexsort((k, c))
    n = k.size
    half = None if spreads is None else 0.5 * np.asarray(spreads, dtype=float)[order]
    return _arbitrage_by_group(
        np.zeros(n, dtype=np.int64),
        c[order],
        k[order],
        p[order],
        np.full(n, float(forward)),
        np.full(n, math.exp(-rate_cc * tau_years)),
        1,
        half,
    )[0]


def parity_forward(
    strikes: np.ndarray,
    calls: np.ndarray,
    puts: np.ndarray,
    *,
    tau_years: float,
    rate_cc: float,
    method: str = "parity_min",
    n_strikes: int = 6,
) -> float:
    """Forward from put-call parity C - P = e^{-rT}(F - K) on strikes quoted for both types."""
    _check_choice("forward_method", method, _FORWARD_METHODS)
    k = np.asarray(strikes, dtype=float)
    diff = np.asarray(calls, dtype=float) - np.asarray(puts, dtype=float)
    ok = np.isfinite(k) & np.isfinite(diff)
    if not ok.any():
        raise DataError(
            "no strike has both a call and a put price, so the forward cannot come from "
            "put-call parity; pass forward=... explicitly"
        )
    k, diff = k[ok], diff[ok]
    i_min = int(np.argmin(np.abs(diff)))
    if method == "parity_min" or k.size < 2:
        return float(k[i_min] + math.exp(rate_cc * tau_years) * diff[i_min])
    nearest = np.argsort(np.abs(k - k[i_min]), kind="stable")[: max(2, n_strikes)]
    slope, intercept = np.polyfit(k[nearest], diff[nearest], 1)
    if slope >= 0.0:
        raise DataError(
            f"parity regression slope {slope:.4g} >= 0 (C - P must fall with the strike); "
            "check the quotes or use forward_method='parity_min'"
        )
    return float(-intercept / slope)


def _forward_by_group(
    frame: pd.DataFrame, tau: np.ndarray, rate: np.ndarray, options: RNDOptions
) -> np.ndarray:
    """Parity forward for every group of ``frame`` (columns gid, cp, strike, price) at once."""
    calls = frame.loc[frame["is_call"], ["gid", "strike", "price"]]
    puts = frame.loc[~frame["is_call"], ["gid", "strike", "price"]]
    pairs = calls.merge(puts, on=["gid", "strike"], suffixes=("_c", "_p"))
    n_groups = tau.size
    out = np.full(n_groups, np.nan)
    if pairs.empty:
        return out
    gid = pairs["gid"].to_numpy()
    k = pairs["strike"].to_numpy()
    diff = pairs["price_c"].to_numpy() - pairs["price_p"].to_numpy()
    growth = np.exp(rate[gid] * tau[gid])
    pairs = pairs.assign(absdiff=np.abs(diff), fwd=k + growth * diff)
    best = pairs.loc[pairs.groupby("gid")["absdiff"].idxmin()]
    out[best["gid"].to_numpy()] = best["fwd"].to_numpy()
    if options.forward_method == "regression":
        # rank strikes by distance to each group's min-|C-P| strike; OLS on the nearest few
        k_star = pd.Series(best["strike"].to_numpy(), index=best["gid"].to_numpy())
        dist = np.abs(k - k_star.reindex(gid).to_numpy())
        pairs = pairs.assign(dist=dist, diff=diff).sort_values(["gid", "dist"], kind="stable")
        near = pairs[pairs.groupby("gid").cumcount() < options.parity_strikes]
        g = near.groupby("gid")
        n = g["strike"].count()
        mk, md = g["strike"].mean(), g["diff"].mean()
        near = near.assign(
            dk=near["strike"] - mk.reindex(near["gid"]).to_numpy(),
            dd=near["diff"] - md.reindex(near["gid"]).to_numpy(),
        )
        g = near.assign(kk=near["dk"] ** 2, kd=near["dk"] * near["dd"]).groupby("gid")
        slope = g["kd"].sum() / g["kk"].sum()
        ok = (n >= 2) & (slope < 0.0)
        fwd = (mk - md / slope)[ok]  # F = -intercept/slope, intercept = md - slope * mk
        out[fwd.index.to_numpy()] = fwd.to_numpy()
    return out


# --------------------------------------------------------------------------------------------
# one chain (arrays)
# --------------------------------------------------------------------------------------------


def _spread_weights(spreads: np.ndarray | None, m: int, options: RNDOptions) -> np.ndarray:
    """Inverse-variance weights with the quote's sd proportional to its bid-ask spread.

    Spreads are clipped to [1/4, 4] x the median spread (``SPREAD_CLIP``), so weights span at
    most 1/16..16 around the median quote: a one-tick far-OTM quote cannot swamp the
    at-the-money ones, nor a stale wide quote vanish.  Missing spreads get the median.
    """
    if options.weighting == "none" or spreads is None:
        return np.ones(m)
    s = np.asarray(spreads, dtype=float)
    good = np.isfinite(s) & (s > 0.0)
    if not good.any():
        return np.ones(m)
    med = float(np.median(s[good]))
    s_eff = np.clip(np.where(good, s, med), med / SPREAD_CLIP, med * SPREAD_CLIP)
    w = (med / s_eff) ** 2
    return w / w.mean()


def _strike_step(k: np.ndarray) -> float:
    uniq = np.unique(k)
    if uniq.size < 2:
        raise DataError("need at least two distinct strikes to set the bandwidth")
    return float(np.median(np.diff(uniq)))


def _choose_grid(k, y, calls, w, step, forward, centres, options, diag):
    """Kernel centres and bandwidth in forward units (explicit, rule or cross-validated)."""
    if centres is not None:
        if isinstance(options.bandwidth, str):
            raise ConfigError("explicit centres need a numeric RNDOptions.bandwidth (price units)")
        return np.asarray(centres, dtype=float) / forward, float(options.bandwidth) / forward
    if options.bandwidth == "cv":
        cv = cross_validate_bandwidth(k, y, calls, w, step, options)
        h = cv.bandwidth
        diag["cv_scores"] = cv.scores
        diag["cv_factor"] = cv.factor
    elif options.bandwidth == "rule":
        h = options.bandwidth_factor * step
    else:
        h = float(options.bandwidth) / forward
    z = _centres(min(k.min(), 1.0), max(k.max(), 1.0), h, options)
    if isinstance(options.bandwidth, str):
        h = max(h, z[1] - z[0])  # never narrower than the centre spacing (ripple)
    return z, h


def fit_rnd(
    strikes: np.ndarray | Sequence[float],
    prices: np.ndarray | Sequence[float],
    is_call: np.ndarray | Sequence[bool],
    *,
    tau_years: float,
    rate_cc: float,
    forward: float,
    spot: float | None = None,
    spreads: np.ndarray | None = None,
    options: RNDOptions | None = None,
    centres: np.ndarray | None = None,
    arbitrage: ArbitrageReport | None = None,
    diagnostics: dict | None = None,
) -> RNDResult:
    """Fit the PCA density to one chain's discounted option prices (all rows given are fitted).

    ``forward`` is the forward of the underlying at expiry (use :func:`parity_forward` or the
    chain functions, which also select the out-of-the-money wings).  ``centres`` (price units)
    overrides the kernel grid; it must be equally spaced and use a numeric bandwidth.
    ``spot`` is the reference for :meth:`RNDResult.prob_below` (defaults to the forward).
    """
    options = options or RNDOptions()
    k_abs = np.asarray(strikes, dtype=float)
    p_abs = np.asarray(prices, dtype=float)
    calls = np.asarray(is_call, dtype=bool)
    if not (k_abs.shape == p_abs.shape == calls.shape) or k_abs.ndim != 1:
        raise DataError(
            f"strikes {k_abs.shape}, prices {p_abs.shape} and is_call {calls.shape} must be "
            "1-d arrays of the same length"
        )
    bad = ~(np.isfinite(k_abs) & np.isfinite(p_abs)) | (k_abs <= 0.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{int(bad.sum())} quotes have a non-finite price or a strike <= 0 (first: row {i}, "
            f"strike {k_abs[i]}, price {p_abs[i]}); drop them before fitting"
        )
    if not (tau_years > 0.0 and math.isfinite(tau_years)):
        raise DataError(f"tau_years={tau_years}: the option must have time to expiry > 0")
    if not (forward > 0.0 and math.isfinite(forward)):
        raise DataError(f"forward={forward}: must be a positive finite price")
    if k_abs.size < 3:
        raise DataError(f"only {k_abs.size} quotes; the density needs at least 3")
    spot_ref = float(forward if spot is None else spot)
    growth = math.exp(rate_cc * tau_years)
    k = k_abs / forward
    y = p_abs * growth / forward
    w = _spread_weights(spreads, k.size, options)
    diag = dict(diagnostics or {})
    step = _strike_step(k)
    diag["strike_step"] = step * forward

    z, h = _choose_grid(k, y, calls, w, step, forward, centres, options, diag)
    diag["centre_spacing"] = float(z[1] - z[0]) * forward
    if options.match_forward and not (z[0] < 1.0 < z[-1]):
        raise DataError("the forward lies outside the kernel grid; widen the centres")
    a, info, design = _fit_weights(k, y, calls, w, h, z, options)
    if not info.found:
        warnings.warn(
            ConvergenceWarning(
                f"RND quadratic program ({k.size} quotes, {z.size} kernels) finished with "
                f"relative KKT violation {info.kkt_violation:.2g} > {_KKT_ACCEPT:g}; the result "
                "has status 'inaccurate' (try fewer kernels or a larger bandwidth)"
            ),
            stacklevel=2,
        )
    if arbitrage is None:
        arbitrage = check_arbitrage(
            k_abs, p_abs, calls, forward=forward, tau_years=tau_years, rate_cc=rate_cc,
            spreads=spreads,
        )  # fmt: skip
    return _build_result(
        a, info, design, z, h, k_abs, p_abs, calls, w, forward, spot_ref, tau_years, rate_cc,
        arbitrage, diag, options,
    )  # fmt: skip


def _build_result(
    a, info, design, z, h, k_abs, p_abs, calls, w, forward, spot, tau, rate, arbitrage, diag,
    options,
) -> RNDResult:  # fmt: skip
    discount = math.exp(-rate * tau)
    centres = z * forward
    h_abs = h * forward
    fitted = design @ a * forward * discount
    lo = centres[0] - 5.0 * h_abs
    hi = centres[-1] + 5.0 * h_abs
    grid = np.linspace(lo, hi, options.n_eval)
    density = _mixture_pdf(grid, centres, a, h_abs)
    cdf = _mixture_cdf(grid, centres, a, h_abs)
    mom = mixture_moments(centres, a, h_abs)
    mean, var, skew, kurt = mom.mean, mom.variance, mom.skewness, mom.excess_kurtosis
    edge = _mixture_cdf(np.array([0.0, k_abs.min(), k_abs.max()]), centres, a, h_abs)
    diag["mass_below_zero"] = float(edge[0])
    diag["mass_outside_strikes"] = float(edge[1] + 1.0 - edge[2])
    return RNDResult(
        grid=grid,
        density=density,
        cdf=cdf,
        centres=centres,
        weights=a,
        bandwidth=h_abs,
        forward=float(forward),
        spot=float(spot),
        tau_years=float(tau),
        rate_cc=float(rate),
        mean=mean,
        variance=var,
        std=math.sqrt(var),
        skewness=skew,
        excess_kurtosis=kurt,
        strikes=k_abs,
        is_call=calls,
        prices=p_abs,
        fitted_prices=fitted,
        residuals=fitted - p_abs,
        ls_weights=w,
        solver=info,
        arbitrage=arbitrage,
        diagnostics=diag,
    )


# --------------------------------------------------------------------------------------------
# chains (long-format frames, many dates/expiries)
# --------------------------------------------------------------------------------------------

_PRICE_FALLBACK = ("close", "last", "settle")


def _quote_prices(chain: pd.DataFrame, options: RNDOptions):
    """Per-row price (mid, else close/last/settle), spread and keep mask, with drop counts."""
    n = len(chain)
    counts: dict[str, int] = {"rows_in": n}
    price = np.full(n, np.nan)
    spread = np.full(n, np.nan)
    keep = np.ones(n, dtype=bool)
    source = options.price
    if "bid" in chain.columns and "ask" in chain.columns:
        bid = chain["bid"].to_numpy(float)
        ask = chain["ask"].to_numpy(float)
        crossed = bid > ask
        counts["dropped_crossed"] = int(crossed.sum())
        keep &= ~crossed
        if options.drop_zero_bid:
            zero_bid = ~(bid > 0.0) & np.isfinite(ask)
            counts["dropped_zero_bid"] = int((zero_bid & keep).sum())
            keep &= ~zero_bid
        if source in ("auto", "mid"):
            quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0.0)
            price = np.where(quoted, 0.5 * (bid + ask), np.nan)
            spread = np.where(quoted, ask - bid, np.nan)
    elif source == "mid":
        raise DataError("price='mid' needs 'bid' and 'ask' columns; use price='close' or 'auto'")
    if source not in ("auto", "mid") and source not in chain.columns:
        raise DataError(f"price={source!r} but the chain has no {source!r} column")
    fallbacks = {"auto": _PRICE_FALLBACK, "mid": ()}.get(source, (source,))
    for col in (c for c in fallbacks if c in chain.columns):
        price = np.where(np.isfinite(price), price, chain[col].to_numpy(float))
    if not np.isfinite(price).any():
        raise DataError(
            "no usable option price in the chain: need bid/ask, close, last or settle values"
        )
    no_price = ~(np.isfinite(price) & (price > 0.0))
    counts["dropped_no_price"] = int((no_price & keep).sum())
    return price, spread, keep & ~no_price, counts


def _prepare_quotes(chain: pd.DataFrame, options: RNDOptions) -> tuple[pd.DataFrame, dict]:
    """Validate the chain and return one row per (trade_date, expiry, type, strike) with a
    price, a spread (NaN without bid/ask) and the group id, plus counts of dropped rows."""
    required = ("trade_date", "expiry", "cp", "strike")
    missing = [c for c in required if c not in chain.columns]
    if missing:
        raise DataError(
            f"option chain lacks column(s) {missing}; the chain schema (data/chains.py) needs "
            f"{list(required)} plus a price column (bid/ask, close, last or settle)"
        )
    cp = chain["cp"]
    bad_cp = ~cp.isin(["C", "P"])
    if bad_cp.any():
        i = chain.index[bad_cp.to_numpy()][0]
        raise DataError(
            f"column 'cp' must be 'C' or 'P'; row {i} has {cp.loc[i]!r}; map the source's "
            "type codes in the loader"
        )
    price, spread, keep, counts = _quote_prices(chain, options)
    frame = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(chain["trade_date"]).to_numpy()[keep],
            "expiry": pd.to_datetime(chain["expiry"]).to_numpy()[keep],
            "is_call": (cp == "C").to_numpy()[keep],
            "strike": chain["strike"].to_numpy(float)[keep],
            "price": price[keep],
            "spread": spread[keep],
            "underlying": (
                chain["underlying"].to_numpy(float)[keep]
                if "underlying" in chain.columns
                else np.nan
            ),
        }
    )
    if "adjusted" in chain.columns:
        counts["adjusted_rows"] = int(chain["adjusted"].fillna(False).astype(bool)[keep].sum())
    keys = ["trade_date", "expiry", "is_call", "strike"]
    n_before = len(frame)
    frame = frame.groupby(keys, sort=True, as_index=False).agg(
        price=("price", "mean"), spread=("spread", "mean"), underlying=("underlying", "first")
    )
    counts["averaged_duplicates"] = n_before - len(frame)
    frame["gid"] = frame.groupby(["trade_date", "expiry"], sort=True).ngroup()
    return frame, counts


RateInput = float | pd.Series | Callable[[pd.DatetimeIndex, np.ndarray], np.ndarray]


def _rates_by_group(groups: pd.DataFrame, rate_cc: RateInput) -> np.ndarray:
    """Continuously compounded rate per (trade_date, expiry) group: a constant, a Series
    indexed by trade date, or a callable ``f(trade_dates, days_to_expiry) -> rates`` (e.g. a
    SHIBOR curve lookup such as ``data.rates.shibor_curve_rate`` bound to its rates frame)."""
    dates = pd.DatetimeIndex(groups["trade_date"].to_numpy())
    if callable(rate_cc):
        days = (groups["expiry"] - groups["trade_date"]).dt.days.to_numpy()
        rates = np.asarray(rate_cc(dates, days), dtype=float)
        if rates.shape != (len(groups),) or not np.isfinite(rates).all():
            raise DataError(
                f"rate_cc callable returned shape {rates.shape} with "
                f"{int((~np.isfinite(rates)).sum()) if rates.ndim else 1} non-finite value(s) "
                f"for {len(groups)} (trade_date, expiry) pairs; it must return one finite "
                "decimal rate per pair"
            )
        return rates
    if isinstance(rate_cc, pd.Series):
        rates = rate_cc.copy()
        rates.index = pd.to_datetime(rates.index).normalize()
        looked_up = rates.reindex(dates)
        if looked_up.isna().any():
            first = dates[looked_up.isna().to_numpy()][0]
            raise DataError(
                f"rate_cc has no value for trade date {first.date()} "
                f"({int(looked_up.isna().sum())} group(s) missing); forward-fill the rate series "
                "over the chain's trade dates or pass a constant"
            )
        return looked_up.to_numpy(float)
    rate = float(rate_cc)
    if not math.isfinite(rate):
        raise ConfigError(f"rate_cc={rate_cc!r} must be a finite decimal rate")
    return np.full(len(groups), rate)


@dataclass(frozen=True)
class _PreparedChain:
    quotes: pd.DataFrame  # sorted by (gid, is_call, strike): OTM flag, spreads, ...
    groups: pd.DataFrame  # one row per gid: trade_date, expiry, tau, rate, forward, spot
    arbitrage: list[ArbitrageReport]
    counts: dict
    quote_arrays: dict = field(default_factory=dict)  # the quotes' columns as numpy arrays
    group_arrays: dict = field(default_factory=dict)  # the groups' columns as numpy arrays
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))


def _prepare_chain(chain: pd.DataFrame, rate_cc: RateInput, options: RNDOptions) -> _PreparedChain:
    quotes, counts = _prepare_quotes(chain, options)
    groups = quotes.groupby("gid", sort=True).agg(
        trade_date=("trade_date", "first"),
        expiry=("expiry", "first"),
        spot=("underlying", "first"),
        n_quotes=("price", "size"),
    )
    days = (groups["expiry"] - groups["trade_date"]).dt.days.to_numpy()
    tau = days / DAYS_PER_YEAR
    rate = _rates_by_group(groups, rate_cc)
    forward = _forward_by_group(quotes, np.maximum(tau, 0.0), rate, options)
    groups = groups.assign(days_to_expiry=days, tau_years=tau, rate_cc=rate, forward=forward)
    gid = quotes["gid"].to_numpy()
    fwd_rows = forward[gid]
    discount_rows = np.exp(-rate[gid] * np.maximum(tau[gid], 0.0))
    arbitrage = _arbitrage_by_group(
        gid,
        quotes["is_call"].to_numpy(),
        quotes["strike"].to_numpy(),
        quotes["price"].to_numpy(),
        fwd_rows,
        discount_rows,
        len(groups),
        0.5 * quotes["spread"].to_numpy(),
    )
    is_call = quotes["is_call"].to_numpy()
    strike = quotes["strike"].to_numpy()
    otm = np.where(is_call, strike >= fwd_rows, strike < fwd_rows)
    quotes = quotes.assign(otm=otm)
    quote_arrays = {c: quotes[c].to_numpy() for c in ("gid", "strike", "price", "spread")}
    quote_arrays["is_call"] = is_call
    quote_arrays["otm"] = otm
    group_arrays = {c: groups[c].to_numpy() for c in groups.columns}
    starts = np.searchsorted(gid, np.arange(len(groups) + 1))
    return _PreparedChain(
        quotes, groups, arbitrage, counts, quote_arrays, group_arrays, starts
    )  # fmt: skip


def _fit_group(prep: _PreparedChain, g: int, options: RNDOptions) -> RNDResult:
    """Fit group ``g`` of a prepared chain on its OTM quotes (numpy slices, no pandas)."""
    grp = prep.group_arrays
    trade_date, expiry = pd.Timestamp(grp["trade_date"][g]), pd.Timestamp(grp["expiry"][g])
    if not grp["tau_years"][g] > 0.0:
        raise DataError(
            f"expiry {expiry.date()} is not after trade date {trade_date.date()}; drop expired "
            "series before fitting"
        )
    if not np.isfinite(grp["forward"][g]):
        raise DataError(
            f"{trade_date.date()} expiry {expiry.date()}: no strike has both a call and a put "
            "price, so put-call parity gives no forward"
        )
    q = prep.quote_arrays
    rows = slice(prep.starts[g], prep.starts[g + 1])
    otm = q["otm"][rows]
    spreads = q["spread"][rows][otm]
    spot = float(grp["spot"][g])
    return fit_rnd(
        q["strike"][rows][otm],
        q["price"][rows][otm],
        q["is_call"][rows][otm],
        tau_years=float(grp["tau_years"][g]),
        rate_cc=float(grp["rate_cc"][g]),
        forward=float(grp["forward"][g]),
        spot=spot if np.isfinite(spot) else None,
        spreads=spreads if np.isfinite(spreads).any() else None,
        options=options,
        arbitrage=prep.arbitrage[g],
        diagnostics={"n_otm_quotes": int(otm.sum()), **prep.counts},
    )


def fit_rnd_chain(
    chain: pd.DataFrame,
    *,
    rate_cc: RateInput,
    trade_date: str | pd.Timestamp | None = None,
    expiry: str | pd.Timestamp | None = None,
    options: RNDOptions | None = None,
) -> RNDResult:
    """Fit the density of one (trade_date, expiry) of a long-format chain (schema in
    data/chains.py): OTM puts below and OTM calls at/above the parity forward, mid quotes
    (or closes), spread weights, arbitrage checks on all input quotes of that expiry."""
    options = options or RNDOptions()
    sub = chain
    if trade_date is not None:
        sub = sub[pd.to_datetime(sub["trade_date"]) == pd.Timestamp(trade_date)]
    if expiry is not None:
        sub = sub[pd.to_datetime(sub["expiry"]) == pd.Timestamp(expiry)]
    if sub.empty:
        raise DataError(
            f"no chain rows for trade_date={trade_date} expiry={expiry}; list the available "
            "pairs with chain.groupby(['trade_date', 'expiry']).size()"
        )
    prep = _prepare_chain(sub, rate_cc, options)
    if len(prep.groups) != 1:
        raise DataError(
            f"the chain holds {len(prep.groups)} (trade_date, expiry) pairs; pass trade_date= "
            "and expiry= to pick one, or use rnd_moments() for all of them"
        )
    return _fit_group(prep, 0, options)


DEFAULT_FRACTIONS = (0.8, 0.9, 0.95)
DEFAULT_QUANTILES = (0.05, 0.5, 0.95)


def _moment_row(res: RNDResult, fractions, quantile_levels) -> dict:
    row = {
        "forward": res.forward,
        "spot": res.spot,
        "bandwidth": res.bandwidth,
        "n_fitted": int(res.strikes.size),
        "mean": res.mean,
        "std": res.std,
        "variance": res.variance,
        "skewness": res.skewness,
        "excess_kurtosis": res.excess_kurtosis,
        "rnd_vol": res.std / res.forward / math.sqrt(res.tau_years),
        "rmse": res.rmse,
        "max_abs_residual": float(np.max(np.abs(res.residuals))),
        "status": res.solver_status,
    }
    for frac, pr in zip(fractions, res.prob_below(fractions), strict=True):
        row[f"prob_below_{frac:g}"] = float(pr)
    if len(quantile_levels):
        for lev, q in zip(quantile_levels, res.quantiles(list(quantile_levels)), strict=True):
            row[f"q{lev:g}"] = float(q)
    # how much of the density lies beyond the quoted strikes (shaped by the constraints and
    # the kernels only, not by prices) and how far the strikes reach, as fractions of spot
    row["mass_outside_strikes"] = res.diagnostics["mass_outside_strikes"]
    row["lowest_strike_frac"] = float(res.strikes.min() / res.spot)
    row["highest_strike_frac"] = float(res.strikes.max() / res.spot)
    row.update({f"arb_{k}": v for k, v in res.arbitrage.as_dict().items()})
    return row


def rnd_moments(
    chain: pd.DataFrame,
    *,
    rate_cc: RateInput,
    options: RNDOptions | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    quantile_levels: Sequence[float] = DEFAULT_QUANTILES,
    min_quotes: int = 5,
    min_days: int = 1,
) -> pd.DataFrame:
    """Fit every (trade_date, expiry) of a chain history; one row of moments per pair.

    Columns: trade_date, expiry, days_to_expiry, tau_years, rate_cc, forward, spot, bandwidth,
    n_fitted, mean, std, variance, skewness, excess_kurtosis, rnd_vol (std/F/sqrt(T), annual),
    prob_below_<x> (P[S_T < x spot]), q<p> (quantiles), rmse, max_abs_residual, status,
    mass_outside_strikes (density mass below the lowest / above the highest fitted strike,
    where only the constraints shape it), lowest/highest_strike_frac (fitted strike range
    over spot: a prob_below_x with x below lowest_strike_frac is an extrapolation) and the
    arbitrage counts (arb_*).  Pairs with fewer than ``min_quotes`` OTM quotes, fewer than
    ``min_days`` days to expiry or no parity forward are kept with a ``status`` that says why
    (their moments are NaN), and one DataQualityWarning gives the count.
    """
    options = options or RNDOptions()
    prep = _prepare_chain(chain, rate_cc, options)
    return _moments_table(prep, np.arange(len(prep.groups)), options, fractions,
                          quantile_levels, min_quotes, min_days)  # fmt: skip


def _moments_table(
    prep: _PreparedChain,
    gids: np.ndarray,
    options: RNDOptions,
    fractions,
    quantile_levels,
    min_quotes: int,
    min_days: int,
) -> pd.DataFrame:
    grp = prep.group_arrays
    n_otm = np.bincount(
        prep.quote_arrays["gid"][prep.quote_arrays["otm"]], minlength=len(prep.groups)
    )
    rows = []
    skipped = 0
    for g in gids:
        days = int(grp["days_to_expiry"][g])
        base = {
            "trade_date": grp["trade_date"][g],
            "expiry": grp["expiry"][g],
            "days_to_expiry": days,
            "tau_years": float(grp["tau_years"][g]),
            "rate_cc": float(grp["rate_cc"][g]),
        }
        reason = None
        if days < min_days:
            reason = f"skipped: {days} days to expiry < min_days={min_days}"
        elif not np.isfinite(grp["forward"][g]):
            reason = "skipped: no strike with both call and put (no parity forward)"
        elif n_otm[g] < min_quotes:
            reason = f"skipped: {n_otm[g]} OTM quotes < min_quotes={min_quotes}"
        if reason is not None:
            skipped += 1
            rows.append({**base, "forward": float(grp["forward"][g]), "status": reason})
            continue
        res = _fit_group(prep, g, options)
        rows.append({**base, **_moment_row(res, fractions, quantile_levels)})
    table = pd.DataFrame(rows)
    if skipped:
        warnings.warn(
            DataQualityWarning(
                f"rnd_moments: {skipped} of {len(gids)} (trade_date, expiry) pairs skipped "
                "(see the 'status' column); lower min_quotes/min_days to keep them"
            ),
            stacklevel=3,
        )
    return table


def _bracket(days: pd.DataFrame, target_days: float) -> pd.DataFrame:
    """Per trade date: the near (largest days <= target) and next (smallest days > target)
    row labels of ``days``.  When one side is missing both point at the nearest available
    expiry (flagged ``extrapolated``)."""
    d = days.sort_values(["trade_date", "days_to_expiry"], kind="stable")
    below = d[d["days_to_expiry"] <= target_days]
    above = d[d["days_to_expiry"] > target_days]
    near = below.groupby("trade_date").tail(1)
    nxt = above.groupby("trade_date").head(1)
    out = pd.DataFrame(
        {
            "near": pd.Series(near.index, index=near["trade_date"].to_numpy()),
            "next": pd.Series(nxt.index, index=nxt["trade_date"].to_numpy()),
        }
    )
    extrapolated = out["near"].isna() | out["next"].isna()
    out["near"] = out["near"].fillna(out["next"])
    out["next"] = out["next"].fillna(out["near"])
    out["extrapolated"] = extrapolated
    return out.sort_index()


_LINEAR_IN_TIME = ("skewness", "excess_kurtosis")


def interpolate_horizon(table: pd.DataFrame, target_days: float = 30.0) -> pd.DataFrame:
    """Interpolate a moments table (from :func:`rnd_moments`) to a constant horizon.

    Per trade date the near (days <= target) and next (days > target) expiries are combined
    with weight w = (T_next - T)/(T_next - T_near) on the near term:

    * forward: log-linear in time (constant carry);
    * total variance v = (std/F)^2: linear in time (as the VIX interpolates variance,
      REFERENCES.md section 1); std = F_T sqrt(v_T), rnd_vol = sqrt(v_T / T);
    * skewness, excess kurtosis, prob_below_* and mass_outside_strikes: linear in time (as the
      Cboe SKEW index interpolates skewness);
    * lowest/highest_strike_frac: the strike range common to both terms.

    Rows with a non-'optimal' status are ignored.  No extrapolation: when every usable expiry
    lies on one side of the target, the nearest one is used alone (``extrapolated`` = True,
    weight_near = 1) with its annualised variance held flat (v_T = v_near T / T_near) and its
    skewness, kurtosis and probabilities unchanged.
    Returns one row per trade_date with near_expiry, next_expiry, weight_near and the columns.
    """
    if target_days <= 0:
        raise ConfigError(f"target_days={target_days}: must be > 0")
    needed = {"trade_date", "expiry", "days_to_expiry", "forward", "std", "status"}
    missing = needed - set(table.columns)
    if missing:
        raise DataError(f"moments table lacks {sorted(missing)}; build it with rnd_moments() first")
    ok = table[table["status"] == "optimal"]
    if ok.empty:
        return pd.DataFrame(columns=["trade_date", "near_expiry", "next_expiry"])
    br = _bracket(ok[["trade_date", "days_to_expiry"]], target_days).dropna(subset=["near", "next"])
    near = ok.loc[br["near"].to_numpy(np.int64)]
    nxt = ok.loc[br["next"].to_numpy(np.int64)]
    t1 = near["days_to_expiry"].to_numpy(float)
    t2 = nxt["days_to_expiry"].to_numpy(float)
    tt = float(target_days)
    same = t2 == t1
    w = np.where(same, 1.0, (t2 - tt) / np.where(same, 1.0, t2 - t1))

    def lin(col: str) -> np.ndarray:
        return w * near[col].to_numpy(float) + (1.0 - w) * nxt[col].to_numpy(float)

    f1, f2 = near["forward"].to_numpy(float), nxt["forward"].to_numpy(float)
    log_f = np.where(same, np.log(f1), w * np.log(f1) + (1.0 - w) * np.log(f2))
    fwd = np.exp(log_f)
    v1 = (near["std"].to_numpy(float) / f1) ** 2
    v2 = (nxt["std"].to_numpy(float) / f2) ** 2
    # total variance linear in T between the terms; flat annualised variance outside them
    v_t = np.where(same, v1 / t1 * tt, w * v1 + (1.0 - w) * v2)
    out = pd.DataFrame(
        {
            "trade_date": br.index.to_numpy(),
            "near_expiry": near["expiry"].to_numpy(),
            "next_expiry": nxt["expiry"].to_numpy(),
            "near_days": t1.astype(int),
            "next_days": t2.astype(int),
            "weight_near": w,
            "extrapolated": br["extrapolated"].to_numpy(bool),
            "target_days": tt,
            "forward": fwd,
            "std": fwd * np.sqrt(np.maximum(v_t, 0.0)),
            "rnd_vol": np.sqrt(np.maximum(v_t, 0.0) / (tt / DAYS_PER_YEAR)),
        }
    )
    cols = [c for c in _LINEAR_IN_TIME if c in ok.columns]
    cols += [c for c in ok.columns if c.startswith("prob_below_") or c == "mass_outside_strikes"]
    for c in cols:
        out[c] = lin(c)
    # strike coverage common to both terms
    if "lowest_strike_frac" in ok.columns:
        out["lowest_strike_frac"] = np.maximum(
            near["lowest_strike_frac"].to_numpy(float), nxt["lowest_strike_frac"].to_numpy(float)
        )
        out["highest_strike_frac"] = np.minimum(
            near["highest_strike_frac"].to_numpy(float), nxt["highest_strike_frac"].to_numpy(float)
        )
    if "spot" in ok.columns:
        out["spot"] = near["spot"].to_numpy(float)
    return out.reset_index(drop=True)


def rnd_horizon_moments(
    chain: pd.DataFrame,
    *,
    rate_cc: RateInput,
    target_days: float = 30.0,
    options: RNDOptions | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    min_quotes: int = 5,
    min_days: int = 7,
) -> pd.DataFrame:
    """Daily constant-horizon moments: fit only the expiries that bracket ``target_days`` on
    each trade date (those with at least ``min_days`` days and ``min_quotes`` OTM quotes),
    then :func:`interpolate_horizon`.  One row per trade date.  This is the series an RND
    indicator delivers as lines."""
    options = options or RNDOptions()
    prep = _prepare_chain(chain, rate_cc, options)
    groups = prep.groups
    counts = np.bincount(
        prep.quotes["gid"].to_numpy()[prep.quotes["otm"].to_numpy()], minlength=len(groups)
    )
    usable = groups[
        (groups["days_to_expiry"] >= min_days)
        & np.isfinite(groups["forward"])
        & (counts >= min_quotes)
    ]
    br = _bracket(usable[["trade_date", "days_to_expiry"]], target_days).dropna(
        subset=["near", "next"]
    )
    gids = np.unique(np.concatenate([br["near"].to_numpy(int), br["next"].to_numpy(int)]))
    table = _moments_table(prep, gids, options, fractions, (), min_quotes, min_days)
    return interpolate_horizon(table, target_days)
