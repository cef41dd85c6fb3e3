"""Tony Cooper's XIV/VXX switching family ("Easy Volatility Investing", 2013, SSRN 2255327).

The rules follow the publicly replicated definitions collected in REFERENCES §3; where
replications disagree (ratio orientation, sample vs population stdev, smoothing), the choice is a
parameter and is stated in every report through ``describe()``.

Each decision function returns target weights over ``assets()`` = (short-vol ETN, long-vol ETN)
for the switching rules, or the momentum universe.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from volbacktest.engine.calculators.rolling import (
    band_switch,
    log_returns,
    rolling_mean,
    rolling_std,
    trailing_return,
)

from .base import Inputs, StrategyParams, one_hot

TRADING_DAYS_PER_YEAR = 252  # annualisation of daily historical volatility (Cooper's HV)


class _SwitchParams(StrategyParams):
    short_vol: str = Field("xiv", description="dataset traded when the signal favours short vol")
    long_vol: str = Field("vxx", description="dataset traded when the signal favours long vol")

    def assets(self) -> tuple[str, ...]:
        return (self.short_vol, self.long_vol)


def _neg(band: float) -> str:
    return f"{-band:g}" if band else "0"


def _switch_weights(state: np.ndarray) -> np.ndarray:
    """+1 → short-vol ETN (column 0), -1 → long-vol ETN (column 1), NaN → no decision."""
    return one_hot((state <= 0) + state * 0.0, 2)  # NaN stays NaN


# --------------------------------------------------------------------------- buy and hold
class BuyHoldParams(StrategyParams):
    asset: str = Field("xiv", description="dataset held for the whole backtest")

    def assets(self) -> tuple[str, ...]:
        return (self.asset,)

    def inputs(self) -> tuple[str, ...]:
        return (self.asset,)

    def describe(self) -> str:
        return f"buy and hold {self.asset}"


def buy_and_hold(inputs: Inputs, p: BuyHoldParams) -> np.ndarray:
    price = np.asarray(inputs[p.asset], dtype=np.float64)
    w = np.ones((len(price), 1))
    w[np.isnan(price)] = np.nan
    return w


# --------------------------------------------------------------------------- VRatio
class VRatioParams(_SwitchParams):
    window: int = Field(10, ge=1, le=1000, description="SMA length of the VIX term-structure ratio")
    orientation: Literal["vix3m_over_vix", "vix_over_vix3m"] = Field(
        "vix3m_over_vix",
        description="ratio averaged: SMA(VIX3M/VIX) (the seed's form) or SMA(VIX/VIX3M) (Cooper's)",
    )
    band: float = Field(0.0, ge=0.0, lt=1.0, description="no-trade band around 1 (hysteresis)")
    vix: str = "vix"
    vix3m: str = "vix3m"

    def inputs(self) -> tuple[str, ...]:
        return (self.vix, self.vix3m)

    def describe(self) -> str:
        if self.orientation == "vix3m_over_vix":
            rule = f"SMA{self.window}(VIX3M/VIX) > {1 + self.band:g} → {self.short_vol}"
            rule += f", < {1 - self.band:g} → {self.long_vol}"
        else:
            rule = f"SMA{self.window}(VIX/VIX3M) < {1 - self.band:g} → {self.short_vol}"
            rule += f", > {1 + self.band:g} → {self.long_vol}"
        return rule + ("" if self.band == 0 else ", in band: hold")


def vratio_state(inputs: Inputs, p: VRatioParams) -> np.ndarray:
    """+1 when the term structure favours short vol (contango), -1 otherwise; NaN in warm-up."""
    vix = np.asarray(inputs[p.vix], dtype=np.float64)
    vix3m = np.asarray(inputs[p.vix3m], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if p.orientation == "vix3m_over_vix":
            score = rolling_mean(vix3m / vix, p.window)
            return band_switch(score, 1.0 + p.band, 1.0 - p.band)
        score = rolling_mean(vix / vix3m, p.window)
        return -band_switch(score, 1.0 + p.band, 1.0 - p.band)


def vratio(inputs: Inputs, p: VRatioParams) -> np.ndarray:
    return _switch_weights(vratio_state(inputs, p))


# --------------------------------------------------------------------------- VRP
class VRPParams(_SwitchParams):
    window: int = Field(5, ge=1, le=1000, description="SMA length of the premium")
    hv_window: int = Field(10, ge=2, le=1000, description="days of SPX log returns in HV")
    stdev: Literal["sample", "population"] = Field("sample", description="HV estimator (ddof 1/0)")
    band: float = Field(0.0, ge=0.0, description="no-trade band in vol points (hysteresis)")
    vix: str = "vix"
    spx: str = "spx"

    def inputs(self) -> tuple[str, ...]:
        return (self.vix, self.spx)

    def describe(self) -> str:
        return (
            f"SMA{self.window}(VIX − 100·HV{self.hv_window}[{self.stdev}]) > {self.band:g}"
            f" → {self.short_vol}, < {_neg(self.band)} → {self.long_vol}"
        )


def vrp_premium(inputs: Inputs, p: VRPParams) -> np.ndarray:
    """SMA of VIX minus SPX historical volatility (both in vol points)."""
    vix = np.asarray(inputs[p.vix], dtype=np.float64)
    ddof = 1 if p.stdev == "sample" else 0
    hv = rolling_std(log_returns(inputs[p.spx]), p.hv_window, ddof=ddof)
    hv_points = 100.0 * hv * np.sqrt(TRADING_DAYS_PER_YEAR)
    return rolling_mean(vix - hv_points, p.window)


def vrp(inputs: Inputs, p: VRPParams) -> np.ndarray:
    return _switch_weights(band_switch(vrp_premium(inputs, p), p.band, -p.band))


# --------------------------------------------------------------------------- roll yield
class RollYieldParams(_SwitchParams):
    smoothing: int = Field(1, ge=1, le=1000, description="SMA length of the basis (1 = none)")
    band: float = Field(0.0, ge=0.0, lt=1.0, description="no-trade band on F1/VIX − 1")
    vix: str = "vix"
    front: str = Field("vx1", description="front-month VIX future dataset")

    def inputs(self) -> tuple[str, ...]:
        return (self.vix, self.front)

    def describe(self) -> str:
        smooth = "" if self.smoothing == 1 else f"SMA{self.smoothing}"
        return (
            f"{smooth}(F1/VIX − 1) > {self.band:g} (contango) → {self.short_vol},"
            f" < {_neg(self.band)} (backwardation) → {self.long_vol}"
        )


def roll_yield_basis(inputs: Inputs, p: RollYieldParams) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        basis = np.asarray(inputs[p.front], dtype=np.float64) / np.asarray(inputs[p.vix]) - 1.0
    return rolling_mean(basis, p.smoothing)


def roll_yield(inputs: Inputs, p: RollYieldParams) -> np.ndarray:
    return _switch_weights(band_switch(roll_yield_basis(inputs, p), p.band, -p.band))


# --------------------------------------------------------------------------- momentum
class MomentumParams(StrategyParams):
    lookback: int = Field(83, ge=1, le=2000, description="trailing return window in bars")
    universe: tuple[str, ...] = Field(("xiv", "vxx"), min_length=1)

    def assets(self) -> tuple[str, ...]:
        return self.universe

    def inputs(self) -> tuple[str, ...]:
        return self.universe

    def describe(self) -> str:
        return f"best {self.lookback}-bar return among {', '.join(self.universe)} if > 0, else cash"


def momentum(inputs: Inputs, p: MomentumParams) -> np.ndarray:
    rets = np.column_stack([trailing_return(inputs[a], p.lookback) for a in p.universe])
    any_known = ~np.all(np.isnan(rets), axis=1)
    filled = np.where(np.isnan(rets), -np.inf, rets)
    best = np.argmax(filled, axis=1).astype(np.float64)
    best_ret = np.max(filled, axis=1)
    choice = np.where(best_ret > 0, best, -1.0)
    choice[~any_known] = np.nan
    return one_hot(choice, len(p.universe))


# --------------------------------------------------------------------------- stdlVIX filter
class StdLVixParams(VRatioParams):
    std_window: int = Field(
        10, ge=2, le=1000, description="window of the stdev of log VIX (not known from the paper)"
    )
    std_threshold: float = Field(0.14, gt=0.0, description="max stdev of log VIX to hold short vol")
    otherwise: Literal["cash", "long_vol"] = Field(
        "cash", description="what to hold when VRatio says short vol but VIX is too unstable"
    )

    def describe(self) -> str:
        return (
            f"{super().describe()}; short vol only if std{self.std_window}(ln VIX) <"
            f" {self.std_threshold:g}, else {self.otherwise}"
        )


def stdlvix(inputs: Inputs, p: StdLVixParams) -> np.ndarray:
    state = vratio_state(inputs, p)
    spread = rolling_std(np.log(np.asarray(inputs[p.vix], dtype=np.float64)), p.std_window)
    calm = spread < p.std_threshold
    w = _switch_weights(state)
    blocked = (state > 0) & ~calm
    w[blocked] = [0.0, 1.0] if p.otherwise == "long_vol" else [0.0, 0.0]
    w[(state > 0) & np.isnan(spread)] = np.nan
    return w
