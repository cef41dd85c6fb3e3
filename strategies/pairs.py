"""Pairs trading on a log-price spread: the optimal OU control and a z-score comparison rule.

``ou_pairs`` (Mudchanatongsuk, Primbs & Wong 2008, REFERENCES.md section 5)
--------------------------------------------------------------------------
Each bar t, with closes A_t and B_t of the two legs:

1. x_t = ln A_t - ln B_t;
2. (k, theta, eta, mu, sigma, rho) by exact-discretisation maximum likelihood on the last
   ``window`` transitions ending at bar t (or on all transitions since the first bar when
   ``window`` is null), from :func:`engine.calculators.ou.rolling_ou_fit`: closes up to and
   including bar t, never later;
3. tau_t, the time left to the horizon: ``horizon_years`` on every bar (``horizon: rolling``), or
   ``horizon_years - t * dt_years`` (``horizon: fixed_end``: the horizon ends ``horizon_years``
   after the first bar of the run; flat after it). The decision function sees closes, not
   dates (the strategy contract), so a fixed end is expressed in years from the first bar;
4. h* = h*(tau_t, x_t) for power utility with exponent ``gamma``
   (:func:`engine.calculators.ou.optimal_weight` with each bar's own estimates), clipped to
   ``[-max_abs_weight, max_abs_weight]``;
5. target weights (h*, -h*) on (A, B): a dollar-neutral long/short pair sized as a fraction of
   equity. Bars whose fit is not mean-reverting (b >= 1, i.e. k <= 0) or invalid (b <= 0) are
   flat (weights 0); bars before ``min_obs`` transitions are "no decision yet" (NaN: cash).

Row t uses closes up to bar t only; with the default ``execution.fill: next_close`` it is filled
at bar t+1's close, so there is no look-ahead. The fits are cumulative-sum based; the sums
always start at the first bar and accumulate sequentially, so the row of bar t is bit-identical
whether the history ends at t or later (prefix-stable, as backtrader's runonce and next modes
require; tests/test_pairs.py checks every prefix length over a range).

Deviations from the paper's model (stated in every report through ``describe()``):

* **Cash earns nothing.** The paper invests all of the wealth V in cash at the risk-free rate r
  (the long and short legs net to zero cost) and h* does not depend on r. backtrader's broker
  pays no interest, so the backtest's return is the paper's minus r on the whole equity every
  day: terminal wealth is lower by about the factor exp(-sum r dt). On GLD/GDX from the first
  decision (2008-01-03) to 2019-07-12 that is 0.55 % a year at 3-month T-bill rates
  (bench/ou_cash_drag.py; the README section on this strategy reports it).
* **Discrete, lagged rebalancing.** The control is continuous; here it is applied once a bar,
  one bar late (next close), with the configured costs, and the gross exposure 2|h| is also
  capped by ``execution.max_gross_leverage`` (set it to ``2 * max_abs_weight``).
* **Estimated parameters.** h* is the control for known parameters; the strategy plugs in the
  rolling estimates (certainty equivalence). k is estimated with a large upward bias on short
  windows (roughly +4 / window_years for the marginal method: the AR(1) slope's bias).

``zscore_pairs``: the classic threshold rule on the same spread, for comparison:
z = (x - mean)/std over the last ``lookback`` bars; enter +weight (long A, short B) once
z <= -entry_z, -weight once z >= entry_z, exit once |z| <= exit_z
(:func:`engine.calculators.ou.zscore_rule_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from volbacktest.engine.calculators import ou

from .base import Inputs, StrategyParams

DEFAULT_WINDOW = 252  # one trading year of transitions per fit (ou.TRADING_DAYS_PER_YEAR)


def _leg_prices(inputs: Inputs, leg_a: str, leg_b: str) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.asarray(inputs[leg_a], dtype=np.float64),
        np.asarray(inputs[leg_b], dtype=np.float64),
    )


def _pair_weights(h: np.ndarray) -> np.ndarray:
    """(h, -h) per bar; a NaN h (no decision) gives a NaN row."""
    return np.column_stack([h, -h])


class _PairParams(StrategyParams):
    leg_a: str = Field("pair_a", description="dataset of leg A (long when the weight is > 0)")
    leg_b: str = Field("pair_b", description="dataset of leg B (short when the weight is > 0)")

    @model_validator(mode="after")
    def _distinct_legs(self):
        if self.leg_a == self.leg_b:
            raise ValueError(f"leg_a and leg_b are both {self.leg_a!r}; name two datasets")
        return self

    def assets(self) -> tuple[str, ...]:
        return (self.leg_a, self.leg_b)

    def inputs(self) -> tuple[str, ...]:
        return (self.leg_a, self.leg_b)


# --------------------------------------------------------------------------- ou_pairs
class OUPairsParams(_PairParams):
    gamma: float = Field(
        -1.0,
        lt=1.0,
        allow_inf_nan=False,
        description="power-utility exponent (U = V^gamma/gamma, < 1; 0 = log utility, myopic)",
    )
    window: int | None = Field(
        DEFAULT_WINDOW,
        ge=ou.MIN_TRANSITIONS,
        description="transitions (bars - 1) in each rolling fit; null = expanding window",
    )
    min_obs: int | None = Field(
        None,
        ge=ou.MIN_TRANSITIONS,
        description="transitions needed before the first decision (null: window, or "
        f"{DEFAULT_WINDOW} when expanding)",
    )
    method: Literal["marginal", "joint"] = Field(
        "marginal",
        description="marginal: OLS of the spread alone (REFERENCES recipe); joint: bivariate "
        "maximum likelihood with B's shock as a control variate",
    )
    dt_years: float = Field(
        1.0 / ou.TRADING_DAYS_PER_YEAR,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="years per bar (1/252 for daily bars)",
    )
    horizon: Literal["rolling", "fixed_end"] = Field(
        "rolling",
        description="rolling: tau = horizon_years on every bar; fixed_end: the horizon ends "
        "horizon_years after the first bar (tau shrinks; flat afterwards)",
    )
    horizon_years: float = Field(1.0, gt=0.0, le=100.0, allow_inf_nan=False)
    max_abs_weight: float = Field(
        1.0, gt=0.0, le=10.0, allow_inf_nan=False, description="cap on |h*| (gross 2|h|)"
    )
    when_not_mean_reverting: Literal["flat"] = Field(
        "flat", description="bars whose fit has k <= 0 (or b <= 0) hold no position"
    )

    @model_validator(mode="after")
    def _window_order(self):
        if self.window is not None and self.min_obs is not None and self.min_obs > self.window:
            raise ValueError(f"min_obs ({self.min_obs}) cannot exceed window ({self.window})")
        return self

    @property
    def effective_min_obs(self) -> int:
        if self.min_obs is not None:
            return self.min_obs
        return self.window if self.window is not None else DEFAULT_WINDOW

    def describe(self) -> str:
        win = f"{self.window}-bar" if self.window is not None else "expanding"
        if self.horizon == "rolling":
            hor = f"tau={self.horizon_years:g}y rolling"
        else:
            hor = f"end {self.horizon_years:g}y after bar 0"
        return (
            f"OU pairs h*: +{self.leg_a}/-{self.leg_b}, gamma={self.gamma:g}, {hor}, "
            f"{self.method} MLE {win} (min {self.effective_min_obs}), "
            f"|h|<={self.max_abs_weight:g}, flat if k<=0, cash at 0%"
        )


def tau_years(n_bars: int, p: OUPairsParams) -> np.ndarray:
    """Time to the horizon at each bar (negative after a fixed end: the strategy is flat)."""
    if p.horizon == "rolling":
        return np.full(n_bars, p.horizon_years)
    return p.horizon_years - np.arange(n_bars) * p.dt_years


@dataclass(frozen=True)
class OUPairsDecision:
    """Everything ``ou_pairs`` decides on, per bar (arrays of shape ``(n_bars,)``).

    ``fits`` is the :func:`engine.calculators.ou.rolling_ou_fit` frame (RangeIndex);
    ``h_star`` the uncapped control (NaN where inactive); ``weight`` the position in A
    (capped; 0 where inactive; NaN before the first decision); ``active`` marks bars with a
    mean-reverting fit inside the horizon; ``capped`` bars where the cap bound.
    """

    fits: pd.DataFrame
    log_spread: np.ndarray
    tau_years: np.ndarray
    h_star: np.ndarray
    weight: np.ndarray
    active: np.ndarray
    capped: np.ndarray

    def frame(self, index=None) -> pd.DataFrame:
        """The fits with the control's columns appended, and ``decided`` (False in the warm-up);
        ``index``: e.g. the bar dates."""
        out = self.fits.assign(
            x=self.log_spread,
            tau_years=self.tau_years,
            h_star=self.h_star,
            weight=self.weight,
            active=self.active,
            capped=self.capped,
            decided=~np.isnan(self.weight),
        )
        return out if index is None else out.set_axis(index)


def ou_pairs_decision(inputs: Inputs, p: OUPairsParams) -> OUPairsDecision:
    """The fits and the control at every bar (point-in-time, prefix-stable).

    The NotMeanRevertingWarning of the fit is not issued: such bars are flat by the policy
    ``when_not_mean_reverting`` and carry ``mean_reverting=False`` in ``fits``.
    """
    a, b = _leg_prices(inputs, p.leg_a, p.leg_b)
    min_obs = p.effective_min_obs
    fits = ou.rolling_ou_fit(
        a, b, p.dt_years, window=p.window, min_obs=min_obs, method=p.method, warn=False
    )
    x = np.log(a) - np.log(b)
    tau = tau_years(len(x), p)
    params = {name: fits[name].to_numpy() for name in ou.PARAM_NAMES}
    active = fits["mean_reverting"].to_numpy(dtype=bool) & (params["k"] > 0) & (tau >= 0)
    h_star = np.full(len(x), np.nan)
    if active.any():
        at = ou.OUParams(**{name: v[active] for name, v in params.items()})
        h_star[active] = ou.optimal_weight(x[active], tau[active], at, p.gamma)
    capped = active & (np.abs(h_star) > p.max_abs_weight)
    weight = np.where(active, np.clip(h_star, -p.max_abs_weight, p.max_abs_weight), 0.0)
    weight[fits["n_obs"].to_numpy() < min_obs] = np.nan  # warm-up: no decision yet
    return OUPairsDecision(fits, x, tau, h_star, weight, active, capped)


def ou_pairs(inputs: Inputs, p: OUPairsParams) -> np.ndarray:
    a, _ = _leg_prices(inputs, p.leg_a, p.leg_b)
    if len(a) <= p.effective_min_obs:  # not one fit yet (also avoids fitting < 6 prices)
        return np.full((len(a), 2), np.nan)
    return _pair_weights(ou_pairs_decision(inputs, p).weight)


# --------------------------------------------------------------------------- zscore_pairs
class ZScorePairsParams(_PairParams):
    lookback: int = Field(60, ge=3, le=5000, description="bars in the spread's mean and stdev")
    entry_z: float = Field(2.0, gt=0.0, allow_inf_nan=False, description="|z| that opens")
    exit_z: float = Field(0.5, ge=0.0, allow_inf_nan=False, description="|z| that closes")
    weight: float = Field(
        1.0, gt=0.0, le=10.0, allow_inf_nan=False, description="|weight| on each leg when in"
    )

    @model_validator(mode="after")
    def _band_order(self):
        if not self.exit_z < self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be below entry_z ({self.entry_z})")
        return self

    def describe(self) -> str:
        return (
            f"z-score pairs on ln {self.leg_a} - ln {self.leg_b}: z over {self.lookback} bars, "
            f"z <= -{self.entry_z:g} → long {self.leg_a}/short {self.leg_b} at weight "
            f"{self.weight:g}, z >= {self.entry_z:g} → the reverse, |z| <= {self.exit_z:g} → flat"
        )


def zscore_pairs(inputs: Inputs, p: ZScorePairsParams) -> np.ndarray:
    a, b = _leg_prices(inputs, p.leg_a, p.leg_b)
    z = ou.rolling_zscore(np.log(a) - np.log(b), p.lookback)
    h = ou.zscore_rule_weights(z, entry_z=p.entry_z, exit_z=p.exit_z, weight=p.weight)
    decided = np.arange(len(a)) >= p.lookback - 1
    return _pair_weights(np.where(decided, h, np.nan))
