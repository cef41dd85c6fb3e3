"""Option-selling strategies (issue 13): run with an ``options:`` config section.

Each strategy's single column is the option chain's underlying (``spx`` for the SPX-like chain,
``etf50`` for the 50ETF chains); its weight is a gate that scales the legs opened at each roll
(1 = the full program, 0 = flat), so the iVIX and RND filters gate option strategies as they gate
share strategies. The legs themselves are declarative rules (``strategies.options_legs``):

* ``put_write``: sell the one-month at-the-money put at each roll, collateralised in cash: the
  Cboe PUT methodology (highest listed strike at or below the index, N puts so that the bills
  cover N * K at expiry, roll at the monthly expiry);
* ``covered_call``: hold the underlying and sell the one-month call at the lowest strike at or
  above it, one call per multiplier units held (Cboe BXM: "slightly out of the money");
* ``short_strangle``: sell a put and a call chosen by Black-Scholes delta (-0.16 / +0.16 by
  default), notional 1x each, optionally delta-hedged daily with the underlying.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from .base import Inputs, StrategyParams
from .options_legs import ExpiryRule, LegRule, QuantityRule, RollRule, StrikeRule

INSTRUMENT = "options"  # marks an options strategy (strategies.trades_options)


class OptionsParams(StrategyParams):
    instrument: ClassVar[str] = INSTRUMENT
    underlying: str = Field("spx", description="dataset of the chain's underlying")
    legs: tuple[LegRule, ...] = ()
    roll: RollRule = RollRule()
    hold_underlying: float = Field(0.0, ge=0.0, le=3.0, description="units held, x equity / S")
    delta_hedge: bool = Field(False, description="trade the underlying daily to zero delta")

    def assets(self) -> tuple[str, ...]:
        return (self.underlying,)

    def inputs(self) -> tuple[str, ...]:
        return (self.underlying,)

    def describe(self) -> str:
        text = "; ".join(leg.describe() for leg in self.legs)
        if self.hold_underlying:
            text = f"hold {self.hold_underlying:g}x {self.underlying}; " + text
        roll = "at expiry" if self.roll.at == "expiry" else f"{self.roll.days} sessions before"
        text += f"; roll {roll}"
        return text + ("; daily delta hedge" if self.delta_hedge else "")


_ONE_MONTH = ExpiryRule(rule="monthly", min_days=1)


class PutWriteParams(OptionsParams):
    legs: tuple[LegRule, ...] = (
        LegRule(
            cp="P",
            expiry=_ONE_MONTH,
            strike=StrikeRule(by="moneyness", value=1.0, pick="below"),
            quantity=QuantityRule(by="collateral", value=1.0),
        ),
    )


class CoveredCallParams(OptionsParams):
    hold_underlying: float = Field(1.0, ge=0.0, le=3.0, description="units held, x equity / S")
    legs: tuple[LegRule, ...] = (
        LegRule(
            cp="C",
            expiry=_ONE_MONTH,
            strike=StrikeRule(by="moneyness", value=1.0, pick="above"),
            quantity=QuantityRule(by="cover", value=1.0),
        ),
    )


class ShortStrangleParams(OptionsParams):
    legs: tuple[LegRule, ...] = (
        LegRule(cp="P", expiry=_ONE_MONTH, strike=StrikeRule(by="delta", value=-0.16)),
        LegRule(cp="C", expiry=_ONE_MONTH, strike=StrikeRule(by="delta", value=0.16)),
    )


def option_program(inputs: Inputs, p: OptionsParams) -> np.ndarray:
    """The gate: 1 wherever the underlying has a close (NaN before), as one column."""
    close = np.asarray(inputs[p.underlying], dtype=np.float64)
    w = np.ones((len(close), 1))
    w[~np.isfinite(close)] = np.nan
    return w
