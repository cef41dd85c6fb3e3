"""Declarative option leg rules (issue 13): what a strategy sells or buys at each roll.

A leg is ``cp`` (``C``/``P``), ``side`` (``short``/``long``), an expiry rule, a strike rule and a
quantity rule; ``roll`` says when the legs are replaced. The options executor
(``engine.execution.options``) applies them to each day's chain only (the choosing functions are
``engine.calculators.option_legs``). In YAML::

    legs:
      - cp: P
        side: short
        expiry: {rule: monthly, min_days: 1}   # nearest | third_friday | fourth_wednesday
        strike: {by: moneyness, value: 1.0, pick: below}   # {by: delta, value: -0.25}
        quantity: {by: collateral, value: 1.0}  # notional | contracts | cover
    roll: {at: expiry}                         # or {at: days_before, days: 5}

Quantities: ``notional`` = ``value * equity / (S * multiplier)`` contracts; ``contracts`` =
``value``; ``collateral`` = the Cboe PUT rule, ``value`` times the contracts whose strike the
cash account (with interest to expiry and the premium) covers exactly at expiry; ``cover`` =
``value`` times the underlying units held divided by the multiplier (a covered call).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpiryRule(_Rule):
    rule: Literal["monthly", "nearest", "third_friday", "fourth_wednesday"] = "monthly"
    min_days: int = Field(1, ge=1, le=400, description="calendar days to expiry at least")


class StrikeRule(_Rule):
    by: Literal["moneyness", "delta", "premium"] = "moneyness"
    value: float = Field(1.0, description="K/S, a Black-Scholes delta (puts < 0) or a premium")
    pick: Literal["nearest", "below", "above"] = Field(
        "nearest", description="moneyness only: strike at or below / at or above the target"
    )

    @model_validator(mode="after")
    def _range(self):
        if self.by == "moneyness" and not 0 < self.value < 5:
            raise ValueError(f"moneyness {self.value} must be in (0, 5) (1.0 = at the money)")
        if self.by == "delta" and not -1 < self.value < 1:
            raise ValueError(f"delta {self.value} must be in (-1, 1) (puts negative)")
        if self.by == "premium" and not self.value > 0:
            raise ValueError(f"premium {self.value} must be positive (price units)")
        return self


class QuantityRule(_Rule):
    by: Literal["notional", "contracts", "collateral", "cover"] = "notional"
    value: float = Field(1.0, gt=0.0, le=100.0)


class LegRule(_Rule):
    cp: Literal["C", "P"]
    side: Literal["short", "long"] = "short"
    expiry: ExpiryRule = ExpiryRule()
    strike: StrikeRule = StrikeRule()
    quantity: QuantityRule = QuantityRule()

    @model_validator(mode="after")
    def _delta_sign(self):
        if self.strike.by == "delta" and (self.strike.value < 0) != (self.cp == "P"):
            raise ValueError(
                f"a {self.cp} leg's delta must be {'negative' if self.cp == 'P' else 'positive'}"
                f", got {self.strike.value}"
            )
        return self

    def describe(self) -> str:
        s = self.strike
        how = {"moneyness": f"K/S {s.value:g} ({s.pick})", "delta": f"delta {s.value:g}",
               "premium": f"premium {s.value:g}"}[s.by]  # fmt: skip
        q = self.quantity
        return f"{self.side} {self.expiry.rule} {self.cp} at {how}, {q.by} {q.value:g}"


class RollRule(_Rule):
    at: Literal["expiry", "days_before"] = "expiry"
    days: int = Field(0, ge=0, le=30, description="sessions before expiry (days_before)")
