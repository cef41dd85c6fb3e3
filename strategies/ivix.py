"""iVIX moving-average timing on the 50ETF (the seed's ``ivix_timing``).

Rule (defaults as the seed: short window 1, long window 3, threshold 0.1): with ``s`` and ``l``
the short and long simple moving averages of the iVIX computed from the option chain,

* buy (target weight 1, bought in lots by the executor) when ``s < l (1 - threshold)``: the
  iVIX has fallen below its average by the threshold;
* sell everything (weight 0) when ``s > l (1 + threshold)``;
* hold the previous decision in between (and while the iVIX is missing).

``threshold_kind: absolute`` compares ``s - l`` with +-threshold index points instead. Before
the first signal the strategy holds cash. The decision on bar t uses the iVIX of day t; with the
engine's default ``next_close`` fill it trades at the close of day t+1, i.e. on the previous
day's iVIX as the seed describes (``same_close`` would trade on the close that computed it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from volbacktest.engine.calculators.rolling import band_switch, rolling_mean

from .base import Inputs, StrategyParams


class IVIXTimingParams(StrategyParams):
    asset: str = Field("etf50", description="dataset traded (the option chain's underlying)")
    chain: str = Field("etf50_options", description="option-chain dataset the iVIX comes from")
    horizon: Literal["ivix30", "ivix60"] = Field("ivix30", description="iVIX series used")
    short_window: int = Field(1, ge=1, le=250, description="short SMA length (bars)")
    long_window: int = Field(3, ge=1, le=250, description="long SMA length (bars)")
    threshold: float = Field(0.1, ge=0.0, lt=1.0, description="band around the long average")
    threshold_kind: Literal["relative", "absolute"] = Field(
        "relative", description="band as a fraction of the long average, or in index points"
    )

    @model_validator(mode="after")
    def _windows(self):
        if self.short_window > self.long_window:
            raise ValueError(
                f"short_window {self.short_window} is longer than long_window {self.long_window}"
            )
        return self  # the chain and its underlying are checked with the config (chain inputs)

    def ivix_input(self) -> str:
        return f"{self.horizon}@{self.chain}"

    def assets(self) -> tuple[str, ...]:
        return (self.asset,)

    def inputs(self) -> tuple[str, ...]:
        return (self.ivix_input(),)

    def describe(self) -> str:
        band = (
            f"{self.threshold:.0%} of the long average"
            if self.threshold_kind == "relative"
            else f"{self.threshold:g} points"
        )
        return (
            f"{self.asset} long when SMA{self.short_window}({self.horizon}) < "
            f"SMA{self.long_window} by {band}, flat when above by it, else hold "
            f"(iVIX from {self.chain})"
        )


def ivix_timing(inputs: Inputs, p: IVIXTimingParams) -> np.ndarray:
    ivix = np.asarray(inputs[p.ivix_input()], dtype=np.float64)
    short = rolling_mean(ivix, p.short_window)
    long = rolling_mean(ivix, p.long_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = short / long - 1.0 if p.threshold_kind == "relative" else short - long
    # +1: iVIX above its average by the band (sell), -1: below it (buy), held in between
    state = band_switch(gap, upper=p.threshold, lower=-p.threshold)
    w = np.where(state < 0, 1.0, 0.0)
    w[np.isnan(state)] = np.nan
    return w[:, None]
