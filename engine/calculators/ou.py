r"""Optimal pairs trading on an Ornstein-Uhlenbeck spread (Mudchanatongsuk, Primbs & Wong 2008).

Pure numpy/scipy/pandas kernels: exact-discretisation maximum-likelihood estimation (single fit,
batch of paths, rolling/expanding point-in-time), the closed-form optimal control h*(t, x), the
myopic weight, a classic z-score threshold rule for comparison, an exact simulator of the model and
a pure array simulator of wealth. No backtrader import here (REFERENCES.md section 5).

Model
-----
B is the second leg, A the first, X = ln A - ln B the log spread::

    dB = mu B dt + sigma B dZ,    dX = k (theta - X) dt + eta dW,    dZ dW = rho dt.

Holding the fraction h of wealth V in A, -h in B and the rest (all of V) in cash at the
continuously compounded rate r, Ito's lemma on ln A = X + ln B gives
dA/A - dB/B = [k(theta - X) + eta^2/2 + rho sigma eta] dt + eta dW, hence::

    dV = V { [h m(X) + r] dt + h eta dW },    m(x) = k(theta - x) + eta^2/2 + rho sigma eta.

Utility: U(v) = v^gamma / gamma for gamma < 1, gamma != 0, and ln v for gamma = 0. For
0 < gamma < 1 this ranks outcomes exactly as the paper's v^gamma; dividing by gamma makes it
increasing also for gamma < 0 (the paper's v^gamma is not), and the optimal control is the same.
Horizon T, tau = T - t (years).

Derivation of the control (done here, not copied)
--------------------------------------------------
Value function J(t, v, x) = sup E[U(V_T)]. The HJB equation is::

    0 = max_h { J_t + J_v v [h m(x) + r] + 1/2 J_vv v^2 h^2 eta^2
                + J_x k(theta - x) + 1/2 J_xx eta^2 + J_vx v h eta^2 }.

(The dW shock drives both V and X, so d<V, X> = v h eta^2 dt: this is the corrected cross term.)
Ansatz J = U(v) exp(phi), phi = f(t) + beta(t) x + alpha(t) x^2, with f = alpha = beta = 0 at
t = T (gamma != 0; gamma = 0 is the log case, where the weight is myopic). With
p = beta + 2 alpha x: J_v v = gamma J, J_vv v^2 = gamma (gamma - 1) J, J_x = p J,
J_xx = (2 alpha + p^2) J, J_vx v = gamma p J. Dividing the HJB by gamma J = v^gamma e^phi > 0,
the h-dependent part is, with q = m(x)/eta^2 + p,::

    h eta^2 q - 1/2 (1 - gamma) eta^2 h^2,

a concave quadratic in h for gamma < 1, maximised at h* = q/(1 - gamma)::

    h* = 1/(1 - gamma) [ beta + 2 x alpha - k (x - theta)/eta^2 + rho sigma/eta + 1/2 ].

Substituting h* back, dividing by J and writing delta = gamma/(1 - gamma), q = c0 + c1 x with
c1 = 2 alpha - k/eta^2 and c0 = beta + c, c = k theta/eta^2 + 1/2 + rho sigma/eta::

    f' + beta' x + alpha' x^2 + gamma r + delta eta^2 q^2/2 + k (theta - x) p
        + eta^2 alpha + eta^2 p^2 / 2 = 0.

Collecting the x^2 terms: alpha' + delta eta^2 c1^2/2 - 2 k alpha + 2 eta^2 alpha^2 = 0, i.e. in
tau (d/dtau = -d/dt), using 1 + delta = 1/(1 - gamma)::

    dalpha/dtau = (2 eta^2 alpha^2 - 2 k alpha)/(1 - gamma) + gamma k^2 / (2 eta^2 (1 - gamma)),
    alpha(0) = 0.                                                                        (A)

Collecting the x terms: beta' + delta eta^2 c0 c1 + 2 k theta alpha - k beta + 2 eta^2 alpha beta
= 0, i.e.::

    dbeta/dtau = (2 eta^2 alpha - k)/(1 - gamma) * beta
                 + gamma/(1 - gamma) * c * (2 eta^2 alpha - k) + 2 k theta alpha,
    beta(0) = 0.                                                                         (B)

(The constant terms give f, which does not enter h*: f' + gamma r + delta eta^2 c0^2 / 2
+ k theta beta + eta^2 alpha + eta^2 beta^2 / 2 = 0.)

Solving (A): the Riccati substitution alpha = -(1 - gamma)/(2 eta^2) u'/u gives
u'' + 2k/(1-gamma) u' + gamma k^2/(1-gamma)^2 u = 0 with roots k(-1 +- g)/g^2,
g = sqrt(1 - gamma), and u(0) = 1, u'(0) = 0::

    u(tau)     = [(1 + g) e^{l1 tau} - (1 - g) e^{l2 tau}] / (2 g),   l1,2 = k(-1 +- g)/g^2,
    alpha(tau) = k gamma / (2 eta^2) * (1 - e^{-2 k tau/g}) / ((1 + g) - (1 - g) e^{-2 k tau/g}),

identical to REFERENCES section 5's alpha = k(1-g)/(2 eta^2) [1 + 2g/(1 - g - (1+g) e^{2k tau/g})]
(multiply through by e^{-2k tau/g}; 1 - g^2 = gamma) but free of overflow for large k tau and of
cancellation as gamma -> 0 (1 - g is computed as gamma / (1 + g)).

Solving (B): put beta_hat = beta + 2 theta alpha. Using (A), every theta term cancels and
dbeta_hat/dtau = (2 eta^2 alpha - k)/(1 - gamma) * (beta_hat + gamma c'), c' = 1/2 + rho sigma/eta.
So w = beta_hat + gamma c' solves w' = (2 eta^2 alpha - k)/(1 - gamma) w, w(0) = gamma c'. The
integrating factor is E(tau) = exp(int_0^tau (2 eta^2 alpha(s) - k)/(1 - gamma) ds), and since
2 eta^2 alpha/(1 - gamma) = -u'/u it is available in closed form: E = exp(-k tau/g^2)/u(tau)::

    E(tau)    = 2 g e^{-k tau/g} / ((1 + g) - (1 - g) e^{-2 k tau/g}),
    beta(tau) = -2 theta alpha(tau) + gamma (1/2 + rho sigma/eta) (E(tau) - 1).

E - 1 is evaluated as (2 g expm1(-k tau/g) + (1 - g) expm1(-2 k tau/g)) / denominator, so beta is
accurate to relative precision as tau -> 0 and k -> 0. The control then reads::

    h*(tau, x) = 1/(1 - gamma) [ (2 alpha - k/eta^2)(x - theta) + c' (1 - gamma + gamma E) ].

Limits: gamma = 0 gives alpha = beta = 0 and the myopic weight -k(x - theta)/eta^2 + c'; tau = 0
gives alpha = beta = 0 (E = 1). The widely transcribed "Eq. (25)" for beta does not solve (B);
tests/test_ou.py shows its ODE residual. For gamma < 1 and k > 0 the denominators are >= 2 min(g, 1)
> 0, so alpha, beta and h* are finite for every tau >= 0.

Estimation (REFERENCES section 5)
---------------------------------
Exact discretisation at step dt: x_i = a + b x_{i-1} + eps_i with b = e^{-k dt},
a = theta (1 - b), var eps = eta^2 (1 - b^2)/(2k); ds_i = ln B_i - ln B_{i-1} = m + u_i with
m = (mu - sigma^2/2) dt, var u = sigma^2 dt, cov(eps, u) = rho eta sigma (1 - b)/k.

* ``method="marginal"`` (default, the REFERENCES recipe): OLS of x_i on [1, x_{i-1}]; the maximum
  likelihood estimate of (k, theta, eta) from the spread alone and of (mu, sigma) from B alone;
  rho from the residual covariance.
* ``method="joint"``: the maximum likelihood estimate of all six parameters from the joint
  bivariate likelihood. Also closed form: factor p(ds_i) p(x_i | x_{i-1}, ds_i); the second
  factor is the OLS of x_i on [1, x_{i-1}, ds_i]. Its b is more precise than the marginal one by
  about a factor sqrt(1 - rho^2) in standard error (B's shock is a control variate for the
  spread's shock).

Both then use k = -ln b/dt, theta = a/(1 - b), eta^2 = 2k var(eps)/(1 - b^2),
mu = m/dt + sigma^2/2, sigma^2 = var(u)/dt, rho = k cov(eps, u)/(eta sigma (1 - b)), with the
residual (co)variances at their maximum-likelihood divisor n.

Standard errors are analytic (``se_method``): the asymptotic covariance of the reduced-form
estimates (a, b, m, var eps, cov, var u) - for "marginal" the OLS sandwich (sigma_eps^2 (X'X)^-1,
cov(a, m) = cov(eps, u)/n) and for "joint" the inverse Gaussian information
(sum_i Z_i' Sigma^-1 Z_i)^-1 - with the Gaussian (Wishart) covariance of the residual covariance
matrix, mapped to (k, theta, eta, mu, sigma, rho) by the delta method with an analytic Jacobian.
The log-likelihood is the conditional (on x_0, ln B_0) joint Gaussian log-likelihood of the n
transitions at the estimates; ``loglik_spread`` is that of the spread alone.

``b >= 1`` (k <= 0) means the spread is not mean-reverting: the fit carries
``mean_reverting=False`` and a :class:`~engine.errors.NotMeanRevertingWarning` is issued; the
half-life is then reported as +inf. ``b <= 0`` cannot come from an OU process sampled at dt
(k would be infinite): a single fit raises :class:`~engine.errors.DataError`, a rolling fit marks
the bar ``valid=False`` (parameters NaN, counted in the warning).

Point in time: in :func:`rolling_ou_fit` the row of bar t uses prices up to and including bar t
only, from cumulative sums that are prefix-stable (the row for bar t is bit-identical whether the
history ends at t or later).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError, NotMeanRevertingWarning

logger = logging.getLogger(__name__)

# Trading days per year: the time unit of dt for daily bars (dt_years = 1 / 252).
TRADING_DAYS_PER_YEAR = 252
LN2 = math.log(2.0)
# Structural parameters, in the order used by every covariance matrix in this module.
PARAM_NAMES: tuple[str, ...] = ("k", "theta", "eta", "mu", "sigma", "rho")
# Below this |1 - b| the ratio -ln(b)/(1 - b) and its derivative use their Taylor series.
_SERIES_CUTOFF = 1e-5
# Smallest number of transitions a fit accepts (intercept + two slopes + residual variances).
MIN_TRANSITIONS = 5
SE_METHOD = "analytic: Gaussian information matrix / OLS sandwich + delta method"

Method = Literal["marginal", "joint"]


# --------------------------------------------------------------------------------------------
# Result objects
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OUParams:
    """Model parameters (per year). Fields may be floats or broadcastable arrays."""

    k: float | np.ndarray
    theta: float | np.ndarray
    eta: float | np.ndarray
    mu: float | np.ndarray
    sigma: float | np.ndarray
    rho: float | np.ndarray

    def __post_init__(self) -> None:
        for name in ("eta", "sigma"):
            value = np.asarray(getattr(self, name), dtype=float)
            if not np.all(value > 0):
                raise ConfigError(f"OUParams.{name} must be > 0 (got {value!r}); pass a volatility")
        for name in ("k", "theta", "mu", "rho"):
            if not np.all(np.isfinite(np.asarray(getattr(self, name), dtype=float))):
                raise ConfigError(f"OUParams.{name} must be finite (got {getattr(self, name)!r})")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> OUParams:
        """Arrays from the columns of a :func:`rolling_ou_fit` frame (select valid rows first)."""
        return cls(**{name: frame[name].to_numpy(dtype=float) for name in PARAM_NAMES})


@dataclass(frozen=True)
class _Estimates:
    """The structural parameters and the half-life (per year / in years)."""

    k: float
    theta: float
    eta: float
    mu: float
    sigma: float
    rho: float
    half_life_years: float


@dataclass(frozen=True)
class OUStdErr(_Estimates):
    """Standard errors of the structural parameters (same units as the estimates)."""


@dataclass(frozen=True)
class OUFit(_Estimates):
    """One exact-discretisation ML fit of the pair model (see the module docstring).

    Fields k .. half_life_years are the estimates; ``stderr`` holds their standard errors.
    """

    a: float  # intercept of x_i on x_{i-1} (original x units)
    b: float  # slope of x_i on x_{i-1}; mean-reverting iff 0 < b < 1
    stderr: OUStdErr
    cov: np.ndarray  # 6x6 asymptotic covariance, order PARAM_NAMES
    loglik: float  # joint Gaussian log-likelihood of the n transitions, conditional on the first
    loglik_spread: float  # log-likelihood of the spread transitions alone
    n_obs: int  # number of transitions (bars - 1)
    dt_years: float
    mean_reverting: bool
    method: str
    se_method: str = SE_METHOD

    @property
    def params(self) -> OUParams:
        """The structural parameters as :class:`OUParams` (requires a mean-reverting fit)."""
        return OUParams(self.k, self.theta, self.eta, self.mu, self.sigma, self.rho)


@dataclass(frozen=True)
class OUFitBatch:
    """Fits of many independent paths at once (arrays of shape ``(n_paths,)``)."""

    k: np.ndarray
    theta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    rho: np.ndarray
    half_life_years: np.ndarray
    b: np.ndarray
    se: dict[str, np.ndarray]  # standard errors by PARAM_NAMES
    loglik: np.ndarray
    n_obs: int
    mean_reverting: np.ndarray
    method: str
    se_method: str = SE_METHOD


@dataclass(frozen=True)
class SimulatedPair:
    """Exact simulation of the model: prices of A and B and the log spread X = ln A - ln B.

    Arrays have shape ``(n_steps + 1,)`` or ``(n_paths, n_steps + 1)``; column 0 is the start.
    """

    price_a: np.ndarray
    price_b: np.ndarray
    log_spread: np.ndarray
    dt_years: float
    params: OUParams


@dataclass(frozen=True)
class WealthPaths:
    """Wealth under a weight path (fraction h in A, -h in B, all wealth in cash at r)."""

    wealth: np.ndarray  # same shape as the prices; wealth[..., 0] = v0
    ruined: np.ndarray  # bool per path: wealth hit 0 (stays 0 afterwards)

    @property
    def terminal(self) -> np.ndarray:
        return self.wealth[..., -1]


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------
def _check_dt(dt_years: float) -> float:
    dt = float(dt_years)
    if not (np.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt_years must be a positive number of years (got {dt_years!r})")
    return dt


def _check_gamma(gamma: float) -> float:
    g = float(gamma)
    if not (np.isfinite(g) and g < 1):
        raise ConfigError(f"gamma must be < 1 for power utility (got {gamma!r})")
    return g


def _log_prices(price_a, price_b) -> tuple[np.ndarray, np.ndarray, pd.Index | None]:
    """Validated log prices along the last axis, and the index if pandas Series were given."""
    index = None
    if isinstance(price_a, pd.Series) and isinstance(price_b, pd.Series):
        if not price_a.index.equals(price_b.index):
            raise DataError(
                "price_a and price_b have different indexes; align them first, e.g. "
                "pd.concat([a, b], axis=1, join='inner').dropna()"
            )
        index = price_a.index
    a = np.asarray(price_a, dtype=float)
    b = np.asarray(price_b, dtype=float)
    if a.shape != b.shape:
        raise DataError(f"price_a has shape {a.shape} but price_b has {b.shape}; align the legs")
    for name, arr in (("price_a", a), ("price_b", b)):
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            pos = np.argwhere(bad)[0]
            label = index[pos[-1]] if index is not None else tuple(int(p) for p in pos)
            raise DataError(
                f"{name} has {int(bad.sum())} non-positive or non-finite prices (first at "
                f"{label}: {arr[tuple(pos)]!r}); drop or fill those rows before fitting"
            )
    if a.shape[-1] < MIN_TRANSITIONS + 1:
        raise DataError(
            f"need at least {MIN_TRANSITIONS + 1} prices per leg to fit the model, "
            f"got {a.shape[-1]}; pass a longer history"
        )
    return np.log(a), np.log(b), index


# --------------------------------------------------------------------------------------------
# Estimation core: everything from centred moments, vectorised over any leading shape
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Moments:
    """Transition moments in x coordinates centred at x0 (sums of centred products, not means)."""

    n: np.ndarray
    x0: np.ndarray
    mean_l: np.ndarray
    mean_x: np.ndarray
    mean_s: np.ndarray
    cll: np.ndarray
    cxl: np.ndarray
    cxx: np.ndarray
    cls: np.ndarray
    cxs: np.ndarray
    css: np.ndarray


def _transitions(log_a: np.ndarray, log_b: np.ndarray):
    x = log_a - log_b
    x0 = x[..., 0]
    xc = x - x0[..., None]
    return x0, xc[..., :-1], xc[..., 1:], np.diff(log_b, axis=-1)


def _full_sample_moments(log_a: np.ndarray, log_b: np.ndarray) -> _Moments:
    x0, lag, cur, ds = _transitions(log_a, log_b)
    n = np.full(x0.shape, float(lag.shape[-1]))
    means = [v.mean(axis=-1) for v in (lag, cur, ds)]
    dl, dx, dss = (v - m[..., None] for v, m in zip((lag, cur, ds), means, strict=True))
    return _Moments(
        n,
        x0,
        *means,
        cll=(dl * dl).sum(-1),
        cxl=(dx * dl).sum(-1),
        cxx=(dx * dx).sum(-1),
        cls=(dl * dss).sum(-1),
        cxs=(dx * dss).sum(-1),
        css=(dss * dss).sum(-1),
    )


def _rolling_moments(log_a: np.ndarray, log_b: np.ndarray, window: int | None) -> _Moments:
    """Moments of the last ``window`` transitions (all of them if None) ending at every bar.

    Entry t (t = 0..N-1) covers transitions ending at bars <= t. Cumulative sums are
    prefix-stable, so entry t never depends on bars after t.
    """
    x0, lag, cur, ds = _transitions(log_a, log_b)
    zero = np.zeros((*lag.shape[:-1], 1))

    def csum(v: np.ndarray) -> np.ndarray:
        return np.concatenate([zero, np.cumsum(v, axis=-1)], axis=-1)  # index t = bars 1..t

    n_bars = lag.shape[-1] + 1
    t = np.arange(n_bars)
    start = np.zeros_like(t) if window is None else np.maximum(t - window, 0)

    def wsum(v: np.ndarray) -> np.ndarray:
        c = csum(v)
        return c[..., t] - c[..., start]

    n = (t - start).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_l, s_x, s_s = wsum(lag), wsum(cur), wsum(ds)
        mean_l, mean_x, mean_s = s_l / n, s_x / n, s_s / n
        return _Moments(
            np.broadcast_to(n, s_l.shape),
            np.broadcast_to(x0[..., None], s_l.shape),
            mean_l,
            mean_x,
            mean_s,
            cll=wsum(lag * lag) - s_l * mean_l,
            cxl=wsum(cur * lag) - s_x * mean_l,
            cxx=wsum(cur * cur) - s_x * mean_x,
            cls=wsum(lag * ds) - s_l * mean_s,
            cxs=wsum(cur * ds) - s_x * mean_s,
            css=wsum(ds * ds) - s_s * mean_s,
        )


def _neg_log_ratio(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r(d) = -ln(1 - d)/d and r'(d), stable at d -> 0 (d = 1 - b)."""
    small = np.abs(d) < _SERIES_CUTOFF
    d_safe = np.where(small | (d >= 1), 0.5, d)
    r = -np.log1p(-d_safe) / d_safe
    dr = (1.0 / (1.0 - d_safe) - r) / d_safe
    r = np.where(small, 1.0 + d / 2 + d * d / 3, r)
    dr = np.where(small, 0.5 + 2 * d / 3 + 0.75 * d * d, dr)
    return r, dr


def _fit_core(mom: _Moments, dt: float, method: Method) -> dict[str, np.ndarray]:
    """Structural estimates, covariance and log-likelihood from moments (any leading shape)."""
    n = mom.n
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "marginal":
            b = mom.cxl / mom.cll
        elif method == "joint":
            det = mom.cll * mom.css - mom.cls**2
            b = (mom.cxl * mom.css - mom.cxs * mom.cls) / det
        else:
            raise ConfigError(f"method must be 'marginal' or 'joint' (got {method!r})")
        a_c = mom.mean_x - b * mom.mean_l  # intercept in centred x coordinates
        m = mom.mean_s
        se2 = (mom.cxx - 2 * b * mom.cxl + b * b * mom.cll) / n
        cov_eu = (mom.cxs - b * mom.cls) / n
        su2 = mom.css / n

        valid = np.isfinite(b) & (b > 0) & (se2 > 0) & (su2 > 0)
        mean_reverting = valid & (b < 1)
        d = np.where(valid, 1.0 - b, 0.5)
        r, dr = _neg_log_ratio(d)  # -ln b = d r(d)
        k = d * r / dt
        q = 2 * r / (2 - d)  # -2 ln b / (1 - b^2)
        eta = np.sqrt(se2 * q / dt)
        theta_c = np.where(d != 0, a_c / d, np.inf * np.sign(a_c))
        sigma = np.sqrt(su2 / dt)
        mu = m / dt + su2 / (2 * dt)
        rho = cov_eu * r / (dt * eta * sigma)

        # Reduced-form covariance V of psi = (a_c, b, m, se2, cov, su2).
        shape = b.shape
        v = np.zeros((*shape, 6, 6))
        if method == "marginal":
            v[..., 0, 0] = se2 * (1 / n + mom.mean_l**2 / mom.cll)
            v[..., 0, 1] = v[..., 1, 0] = -se2 * mom.mean_l / mom.cll
            v[..., 1, 1] = se2 / mom.cll
            v[..., 0, 2] = v[..., 2, 0] = cov_eu / n
            v[..., 2, 2] = su2 / n
        else:
            det_s = se2 * su2 - cov_eu**2
            p11, p12, p22 = su2 / det_s, -cov_eu / det_s, se2 / det_s
            s_l = n * mom.mean_l
            s_ll = mom.cll + n * mom.mean_l**2
            info = np.zeros((*shape, 3, 3))
            info[..., 0, 0] = n * p11
            info[..., 0, 1] = info[..., 1, 0] = p11 * s_l
            info[..., 0, 2] = info[..., 2, 0] = n * p12
            info[..., 1, 1] = p11 * s_ll
            info[..., 1, 2] = info[..., 2, 1] = p12 * s_l
            info[..., 2, 2] = n * p22
            ok = valid & (det_s > 0)
            info[~ok] = np.eye(3)
            v[..., :3, :3] = np.linalg.inv(info)
        v[..., 3, 3] = 2 * se2**2 / n
        v[..., 3, 4] = v[..., 4, 3] = 2 * se2 * cov_eu / n
        v[..., 3, 5] = v[..., 5, 3] = 2 * cov_eu**2 / n
        v[..., 4, 4] = (se2 * su2 + cov_eu**2) / n
        v[..., 4, 5] = v[..., 5, 4] = 2 * cov_eu * su2 / n
        v[..., 5, 5] = 2 * su2**2 / n

        # Jacobian of (k, theta, eta, mu, sigma, rho) with respect to psi.
        dlnq_db = -dr / r - 1.0 / (2 - d)  # d ln q / db, with d ln q/dd = dr/r + 1/(1+b)
        jac = np.zeros((*shape, 6, 6))
        jac[..., 0, 1] = -1.0 / (np.where(valid, b, 1.0) * dt)
        jac[..., 1, 0] = 1.0 / d
        jac[..., 1, 1] = a_c / d**2
        jac[..., 2, 1] = 0.5 * eta * dlnq_db
        jac[..., 2, 3] = eta / (2 * se2)
        jac[..., 3, 2] = 1.0 / dt
        jac[..., 3, 5] = 1.0 / (2 * dt)
        jac[..., 4, 5] = sigma / (2 * su2)
        jac[..., 5, 1] = cov_eu / (dt * sigma * eta) * (-dr - 0.5 * r * dlnq_db)
        jac[..., 5, 3] = -rho / (2 * se2)
        jac[..., 5, 4] = r / (dt * eta * sigma)
        jac[..., 5, 5] = -rho / (2 * su2)
        cov = jac @ v @ np.swapaxes(jac, -1, -2)

        det_sigma = se2 * su2 - cov_eu**2
        loglik = -n * (math.log(2 * math.pi) + 1) - 0.5 * n * np.log(det_sigma)
        loglik_spread = -0.5 * n * (math.log(2 * math.pi) + 1 + np.log(se2))
        half_life = np.where(mean_reverting, LN2 / np.where(k > 0, k, 1.0), np.inf)
        se_k = np.sqrt(cov[..., 0, 0])
        se_hl = np.where(mean_reverting, LN2 / np.where(k > 0, k, 1.0) ** 2 * se_k, np.inf)

        nan = np.nan
        out = {
            "k": np.where(valid, k, nan),
            "theta": np.where(valid, theta_c + mom.x0, nan),
            "eta": np.where(valid, eta, nan),
            "mu": np.where(valid, mu, nan),
            "sigma": np.where(valid, sigma, nan),
            "rho": np.where(valid, rho, nan),
            "half_life_years": np.where(valid, half_life, nan),
            "a": a_c + mom.x0 * (1 - b),
            "b": b,
            "loglik": np.where(valid, loglik, nan),
            "loglik_spread": np.where(valid, loglik_spread, nan),
            "se_half_life_years": np.where(valid, se_hl, nan),
            "valid": valid,
            "mean_reverting": mean_reverting,
            "cov": np.where(valid[..., None, None], cov, nan),
        }
        for i, name in enumerate(PARAM_NAMES):
            out[f"se_{name}"] = np.sqrt(out["cov"][..., i, i])
    return out


def _warn_not_mean_reverting(n_bad: int, n_invalid: int, n_total: int, what: str) -> None:
    msg = (
        f"{what}: {n_bad} of {n_total} fits have b >= 1 (k <= 0, the spread is not "
        "mean-reverting; half-life reported as inf)"
    )
    if n_invalid:
        msg += f" and {n_invalid} have b <= 0 or a degenerate variance (parameters NaN)"
    warnings.warn(
        NotMeanRevertingWarning(msg + "; see the mean_reverting column/flag"), stacklevel=3
    )


def fit_ou(price_a, price_b, dt_years: float, *, method: Method = "marginal") -> OUFit:
    """Exact-discretisation ML fit of the pair model on one history (prices of A and B).

    ``dt_years`` is the bar spacing in years (1/252 for daily bars). Issues
    :class:`NotMeanRevertingWarning` and sets ``mean_reverting=False`` when b >= 1; raises
    :class:`DataError` when b <= 0 or a residual variance is zero.
    """
    dt = _check_dt(dt_years)
    log_a, log_b, _ = _log_prices(price_a, price_b)
    if log_a.ndim != 1:
        raise DataError(
            f"fit_ou takes 1-D price series (got shape {log_a.shape}); use fit_ou_batch"
        )
    res = _fit_core(_full_sample_moments(log_a, log_b), dt, method)
    if not bool(res["valid"]):
        raise DataError(
            f"fit_ou: lag-1 slope b = {float(res['b']):.6g} <= 0 or a zero residual variance; "
            "the spread is not an OU sample at this dt (check dt_years and the data)"
        )
    mean_reverting = bool(res["mean_reverting"])
    if not mean_reverting:
        _warn_not_mean_reverting(1, 0, 1, "fit_ou")
    se = OUStdErr(
        **{name: float(res[f"se_{name}"]) for name in PARAM_NAMES},
        half_life_years=float(res["se_half_life_years"]),
    )
    return OUFit(
        **{name: float(res[name]) for name in PARAM_NAMES},
        half_life_years=float(res["half_life_years"]),
        a=float(res["a"]),
        b=float(res["b"]),
        stderr=se,
        cov=np.asarray(res["cov"]),
        loglik=float(res["loglik"]),
        loglik_spread=float(res["loglik_spread"]),
        n_obs=int(log_a.shape[-1] - 1),
        dt_years=dt,
        mean_reverting=mean_reverting,
        method=method,
    )


def fit_ou_batch(price_a, price_b, dt_years: float, *, method: Method = "marginal") -> OUFitBatch:
    """Fit every row of ``(n_paths, n_bars)`` price arrays independently, in one vectorised pass.

    No warning is issued; ``mean_reverting`` flags each path (parameters of paths with b <= 0 are
    NaN).
    """
    dt = _check_dt(dt_years)
    log_a, log_b, _ = _log_prices(price_a, price_b)
    res = _fit_core(_full_sample_moments(np.atleast_2d(log_a), np.atleast_2d(log_b)), dt, method)
    return OUFitBatch(
        **{name: res[name] for name in PARAM_NAMES},
        half_life_years=res["half_life_years"],
        b=res["b"],
        se={name: res[f"se_{name}"] for name in PARAM_NAMES},
        loglik=res["loglik"],
        n_obs=int(log_a.shape[-1] - 1),
        mean_reverting=res["mean_reverting"],
        method=method,
    )


def _check_window(window: int | None, min_obs: int | None) -> int:
    """Validate the rolling window and return the effective min_obs."""
    if window is not None and (int(window) != window or window < MIN_TRANSITIONS):
        raise ConfigError(
            f"window must be an integer >= {MIN_TRANSITIONS} or None (got {window!r})"
        )
    if min_obs is None:
        min_obs = window if window is not None else 60
    if int(min_obs) != min_obs or min_obs < MIN_TRANSITIONS:
        raise ConfigError(f"min_obs must be an integer >= {MIN_TRANSITIONS} (got {min_obs!r})")
    if window is not None and min_obs > window:
        raise ConfigError(f"min_obs ({min_obs}) cannot exceed window ({window})")
    return int(min_obs)


ROLLING_COLUMNS: tuple[str, ...] = (
    *PARAM_NAMES,
    "half_life_years",
    "b",
    *(f"se_{name}" for name in PARAM_NAMES),
    "loglik",
    "n_obs",
    "valid",
    "mean_reverting",
)


def rolling_ou_fit(
    price_a,
    price_b,
    dt_years: float,
    *,
    window: int | None = TRADING_DAYS_PER_YEAR,
    min_obs: int | None = None,
    method: Method = "marginal",
    warn: bool = True,
) -> pd.DataFrame:
    """Point-in-time fits at every bar, in one vectorised pass (no per-window loop).

    The row of bar t uses the last ``window`` transitions ending at bar t (``window=None``:
    all transitions since the first bar, i.e. an expanding window) - prices up to and including
    bar t, never later. A decision taken on row t can trade at bar t's close at the earliest.
    Rows with fewer than ``min_obs`` transitions (default: ``window``, or 60 when expanding) are
    warm-up: parameters NaN, ``valid=False``. ``n_obs`` counts transitions in each row's window.

    Columns: ``ROLLING_COLUMNS`` (``se_*`` are analytic standard errors; ``valid`` is False in
    the warm-up and where b <= 0; ``mean_reverting`` is ``valid & (b < 1)``). Index: that of the
    price Series, else a RangeIndex. One :class:`NotMeanRevertingWarning` (counts in the text)
    is issued if any post-warm-up row is not mean-reverting, unless ``warn=False``.
    """
    dt = _check_dt(dt_years)
    log_a, log_b, index = _log_prices(price_a, price_b)
    if log_a.ndim != 1:
        raise DataError(f"rolling_ou_fit takes 1-D price series (got shape {log_a.shape})")
    min_obs = _check_window(window, min_obs)
    mom = _rolling_moments(log_a, log_b, None if window is None else int(window))
    ready = mom.n >= min_obs
    safe = _Moments(
        np.where(ready, mom.n, float(MIN_TRANSITIONS)),
        *(np.where(ready, getattr(mom, f.name), 1.0) for f in fields(_Moments)[1:]),
    )
    res = _fit_core(safe, dt, method)
    out = {}
    for col in ROLLING_COLUMNS:
        if col == "n_obs":
            out[col] = mom.n.astype(np.int64)
        elif col in ("valid", "mean_reverting"):
            out[col] = res[col] & ready
        else:
            out[col] = np.where(ready, res[col], np.nan)
    frame = pd.DataFrame(out, index=index)
    if warn:
        n_ready = int(ready.sum())
        n_invalid = int((ready & ~res["valid"]).sum())
        n_bad = int((ready & res["valid"] & ~res["mean_reverting"]).sum())
        if n_bad or n_invalid:
            _warn_not_mean_reverting(n_bad, n_invalid, n_ready, "rolling_ou_fit")
    return frame


# --------------------------------------------------------------------------------------------
# The control
# --------------------------------------------------------------------------------------------
def _control_terms(tau_years, k, gamma: float):
    """g, e2 = exp(-2k tau/g), 1 - g, denominator (1+g) - (1-g) e2, and E - 1."""
    g = math.sqrt(1.0 - gamma)
    one_minus_g = gamma / (1.0 + g)
    tau = np.asarray(tau_years, dtype=float)
    if np.any(tau < 0):
        raise ConfigError("tau_years must be >= 0 (time to the horizon)")
    u = np.asarray(k, dtype=float) * tau / g
    em1 = np.expm1(-u)
    em2 = np.expm1(-2 * u)
    denom = (1 + g) - one_minus_g * (1 + em2)
    e_minus_1 = (2 * g * em1 + one_minus_g * em2) / denom
    return g, em2, denom, e_minus_1


def alpha_tau(tau_years, k, eta, gamma: float) -> np.ndarray:
    """alpha(tau), the x^2 coefficient of the log value function (closed form of ODE (A))."""
    gamma = _check_gamma(gamma)
    _, em2, denom, _ = _control_terms(tau_years, k, gamma)
    k = np.asarray(k, dtype=float)
    return k * gamma / (2 * np.asarray(eta, dtype=float) ** 2) * (-em2) / denom


def beta_tau(tau_years, k, theta, eta, sigma, rho, gamma: float) -> np.ndarray:
    """beta(tau), the x coefficient, derived from its linear ODE (B) (see module docstring)."""
    gamma = _check_gamma(gamma)
    alpha = alpha_tau(tau_years, k, eta, gamma)
    _, _, _, e_minus_1 = _control_terms(tau_years, k, gamma)
    c_prime = 0.5 + np.asarray(rho) * np.asarray(sigma) / np.asarray(eta)
    return -2 * np.asarray(theta) * alpha + gamma * c_prime * e_minus_1


def control_ode_rhs(alpha, beta, params: OUParams, gamma: float) -> np.ndarray:
    """Right-hand sides (dalpha/dtau, dbeta/dtau) of the ODEs (A), (B) the HJB implies."""
    gamma = _check_gamma(gamma)
    k, theta, eta = params.k, params.theta, params.eta
    c = k * theta / eta**2 + 0.5 + params.rho * params.sigma / eta
    lin = (2 * eta**2 * alpha - k) / (1 - gamma)
    d_alpha = (2 * eta**2 * alpha**2 - 2 * k * alpha) / (1 - gamma) + gamma * k**2 / (
        2 * eta**2 * (1 - gamma)
    )
    d_beta = lin * beta + gamma * c * lin + 2 * k * theta * alpha
    return np.stack(np.broadcast_arrays(d_alpha, d_beta))


def myopic_weight(log_spread, params: OUParams, gamma: float = 0.0) -> np.ndarray:
    """1/(1-gamma) [-k(x - theta)/eta^2 + rho sigma/eta + 1/2]: h* without hedging demand.

    ``gamma = 0`` (the default) is the growth-optimal (log-utility) weight, which is also h* at
    gamma = 0 for every horizon.
    """
    gamma = _check_gamma(gamma)
    x = np.asarray(log_spread, dtype=float)
    p = params
    return (-p.k * (x - p.theta) / p.eta**2 + p.rho * p.sigma / p.eta + 0.5) / (1 - gamma)


def optimal_weight(log_spread, tau_years, params: OUParams, gamma: float) -> np.ndarray:
    """h*(tau, x): the optimal fraction of wealth long A (and short B), broadcast over inputs.

    ``tau_years`` is the time to the horizon; ``params`` may hold arrays (one set per bar).
    """
    gamma = _check_gamma(gamma)
    x = np.asarray(log_spread, dtype=float)
    p = params
    alpha = alpha_tau(tau_years, p.k, p.eta, gamma)
    _, _, _, e_minus_1 = _control_terms(tau_years, p.k, gamma)
    c_prime = 0.5 + p.rho * p.sigma / p.eta
    slope = 2 * alpha - p.k / p.eta**2
    return (slope * (x - p.theta) + c_prime * (1 + gamma * e_minus_1)) / (1 - gamma)


def rolling_optimal_weights(
    fits: pd.DataFrame,
    log_spread,
    tau_years,
    gamma: float,
    *,
    max_abs_weight: float | None = None,
) -> pd.DataFrame:
    """h* at every bar from a :func:`rolling_ou_fit` frame (point-in-time if the fits are).

    ``tau_years``: time to the horizon per bar (a scalar for a rolling horizon of fixed length,
    or T - t per bar for a fixed end date). Bars whose fit is not mean-reverting (or warm-up)
    hold weight 0 with ``active=False``. ``max_abs_weight`` clips |h| (``capped`` marks it).
    Columns: weight, h_star (uncapped, NaN where inactive), myopic (gamma = 0 weight, NaN where
    inactive), active, capped.
    """
    gamma = _check_gamma(gamma)
    x = np.asarray(log_spread, dtype=float)
    if x.shape != (len(fits),):
        raise DataError(f"log_spread has shape {x.shape}, expected ({len(fits)},) like the fits")
    active = fits["mean_reverting"].to_numpy(dtype=bool) & (fits["k"].to_numpy() > 0)
    tau = np.broadcast_to(np.asarray(tau_years, dtype=float), x.shape)
    h = np.full(x.shape, np.nan)
    myo = np.full(x.shape, np.nan)
    if active.any():
        params = OUParams.from_frame(fits.loc[active])
        h[active] = optimal_weight(x[active], tau[active], params, gamma)
        myo[active] = myopic_weight(x[active], params, 0.0)
    weight = np.where(active, h, 0.0)
    capped = np.zeros(x.shape, dtype=bool)
    if max_abs_weight is not None:
        if not max_abs_weight > 0:
            raise ConfigError(f"max_abs_weight must be > 0 (got {max_abs_weight!r})")
        capped = np.abs(weight) > max_abs_weight
        weight = np.clip(weight, -max_abs_weight, max_abs_weight)
    return pd.DataFrame(
        {"weight": weight, "h_star": h, "myopic": myo, "active": active, "capped": capped},
        index=fits.index,
    )


# --------------------------------------------------------------------------------------------
# Comparison rule: classic z-score thresholds
# --------------------------------------------------------------------------------------------
def rolling_zscore(log_spread, lookback: int) -> np.ndarray:
    """(x_t - mean)/std over the last ``lookback`` values up to and including t (ddof=1).

    Works along the last axis; NaN for the first ``lookback - 1`` bars (warm-up).
    """
    if int(lookback) != lookback or lookback < 3:
        raise ConfigError(f"lookback must be an integer >= 3 (got {lookback!r})")
    x = np.asarray(log_spread, dtype=float)
    out = np.full(x.shape, np.nan)
    if x.shape[-1] >= lookback:
        win = np.lib.stride_tricks.sliding_window_view(x, lookback, axis=-1)
        mean = win.mean(axis=-1)
        std = win.std(axis=-1, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[..., lookback - 1 :] = np.where(std > 0, (x[..., lookback - 1 :] - mean) / std, 0)
    return out


def zscore_rule_weights(zscore, *, entry_z: float, exit_z: float, weight: float) -> np.ndarray:
    """Fixed-weight threshold rule: +weight (long A, short B) once z <= -entry_z, -weight once
    z >= entry_z, flat once |z| <= exit_z, otherwise hold. NaN z (warm-up) is flat.

    Vectorised along the last axis (event array + forward fill); point-in-time in z.
    """
    if not (0 <= exit_z < entry_z):
        raise ConfigError(f"need 0 <= exit_z < entry_z (got exit_z={exit_z}, entry_z={entry_z})")
    z = np.asarray(zscore, dtype=float)
    event = np.full(z.shape, np.nan)
    with np.errstate(invalid="ignore"):
        event[np.abs(z) <= exit_z] = 0.0
        event[z >= entry_z] = -1.0
        event[z <= -entry_z] = 1.0
    event[..., 0] = np.where(np.isnan(event[..., 0]), 0.0, event[..., 0])
    pos = np.arange(z.shape[-1]) * np.ones(z.shape, dtype=np.int64)
    last = np.maximum.accumulate(np.where(np.isnan(event), 0, pos), axis=-1)
    return weight * np.take_along_axis(event, last, axis=-1)


# --------------------------------------------------------------------------------------------
# Simulation of the model and of wealth
# --------------------------------------------------------------------------------------------
def simulate_pair(
    params: OUParams,
    n_steps: int,
    dt_years: float,
    rng: np.random.Generator | int,
    *,
    x0: float | None = None,
    b0: float = 1.0,
    n_paths: int | None = None,
) -> SimulatedPair:
    """Exact simulation of (A, B) from the model (no Euler error at any dt).

    ``x0``: initial log spread (None: drawn from the stationary law N(theta, eta^2/(2k)), which
    needs k > 0); ``b0``: initial price of B. ``rng``: a Generator or an integer seed. With
    ``n_paths`` the arrays are ``(n_paths, n_steps + 1)``, else ``(n_steps + 1,)``.
    """
    dt = _check_dt(dt_years)
    if int(n_steps) != n_steps or n_steps < 1:
        raise ConfigError(f"n_steps must be a positive integer (got {n_steps!r})")
    if not b0 > 0:
        raise ConfigError(f"b0 must be a positive price (got {b0!r})")
    p = params
    for name in PARAM_NAMES:
        if np.ndim(getattr(p, name)) != 0:
            raise ConfigError(
                f"simulate_pair needs scalar parameters (OUParams.{name} is an array)"
            )
    if abs(p.rho) > 1:
        raise ConfigError(f"|rho| must be <= 1 to simulate (got {p.rho})")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shape = (1 if n_paths is None else int(n_paths), int(n_steps))

    kdt = p.k * dt
    b = math.exp(-kdt)
    phi1 = -math.expm1(-kdt) / kdt if kdt != 0 else 1.0  # (1 - e^{-k dt})/(k dt)
    phi2 = -math.expm1(-2 * kdt) / (2 * kdt) if kdt != 0 else 1.0
    s_eps = p.eta * math.sqrt(dt * phi2)
    s_u = p.sigma * math.sqrt(dt)
    corr = p.rho * p.eta * p.sigma * dt * phi1 / (s_eps * s_u)
    z = gen.standard_normal((2, *shape))
    eps = s_eps * z[0]
    u = s_u * (corr * z[0] + math.sqrt(max(1 - corr * corr, 0.0)) * z[1])

    if x0 is None:
        if p.k <= 0:
            raise ConfigError("x0=None draws from the stationary law, which needs k > 0")
        start = p.theta + p.eta / math.sqrt(2 * p.k) * gen.standard_normal(shape[0])
    else:
        start = np.full(shape[0], float(x0))
    drive = p.theta * kdt * phi1 + eps  # a + eps, a = theta (1 - b)
    # scipy.signal costs about 50 MB and 0.3 s to import: only the simulator needs it, and
    # every spawned sweep worker imports this module
    from scipy.signal import lfilter

    x_next = lfilter([1.0], [1.0, -b], drive, axis=-1, zi=(b * start)[:, None])[0]
    x = np.concatenate([start[:, None], x_next], axis=-1)
    ds = (p.mu - 0.5 * p.sigma**2) * dt + u
    log_b = math.log(b0) + np.concatenate([np.zeros((shape[0], 1)), np.cumsum(ds, -1)], -1)
    price_a, price_b = np.exp(x + log_b), np.exp(log_b)
    if n_paths is None:
        price_a, price_b, x = price_a[0], price_b[0], x[0]
    return SimulatedPair(price_a, price_b, x, dt, p)


def simulate_wealth(
    price_a, price_b, weights, *, dt_years: float, rate_cc: float = 0.0, v0: float = 1.0
) -> WealthPaths:
    """Wealth with weight h_i (set at bar i's close) held over (i, i+1], rebalanced each bar.

    V_{i+1} = V_i [1 + h_i (A_{i+1}/A_i - B_{i+1}/B_i) + (e^{r dt} - 1)]; cash earns the
    continuously compounded ``rate_cc`` (decimal per year). A path whose factor reaches <= 0 is
    ruined: wealth 0 from then on. The last bar's weight is not used. Vectorised along the last
    axis (cumulative product).
    """
    dt = _check_dt(dt_years)
    a = np.asarray(price_a, dtype=float)
    b = np.asarray(price_b, dtype=float)
    h = np.asarray(weights, dtype=float)
    if not (a.shape == b.shape == h.shape):
        raise DataError(f"price_a {a.shape}, price_b {b.shape}, weights {h.shape} must match")
    if not np.all(np.isfinite(h)):
        raise DataError("weights contain NaN/inf; set warm-up weights to 0 explicitly")
    excess = a[..., 1:] / a[..., :-1] - b[..., 1:] / b[..., :-1]
    factor = 1.0 + h[..., :-1] * excess + math.expm1(rate_cc * dt)
    factor = np.maximum(factor, 0.0)
    wealth = v0 * np.concatenate([np.ones((*a.shape[:-1], 1)), np.cumprod(factor, -1)], -1)
    return WealthPaths(wealth, wealth[..., -1] <= 0)


def power_utility(wealth, gamma: float) -> np.ndarray:
    """U(v) = v^gamma/gamma (gamma != 0), ln v (gamma = 0); U(0) = -inf for gamma <= 0."""
    gamma = _check_gamma(gamma)
    v = np.asarray(wealth, dtype=float)
    if np.any(v < 0):
        raise DataError("wealth must be >= 0 for power utility")
    out = np.full(v.shape, -np.inf if gamma <= 0 else 0.0)
    pos = v > 0
    out[pos] = np.log(v[pos]) if gamma == 0 else v[pos] ** gamma / gamma
    return out
