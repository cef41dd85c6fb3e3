"""The ``futures:`` section of a config: VIX futures traded as contracts (issue 12).

A config with this section runs on the futures executor (``engine.execution.futures``): the
strategy's columns are roles (``F1``, ``F2``, ... the k-th listed contract after the roll rule;
``cm30`` the 30-day constant-maturity pair F1/F2; ``st_index`` the S&P 500 VIX Short-Term
Futures Index legs, rolled daily) and its weights are notional exposures as fractions of equity
(or contracts, with ``size: contracts``). Defaults and their sources are in
``engine.calculators.futures_book`` and README "Trading VIX futures".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from volbacktest.engine.calculators.futures_book import (
    CFE_VX_CUSTOMER_FEE,
    DEFAULT_INITIAL_MARGIN,
    DEFAULT_MAINTENANCE_MARGIN,
    VX_MULTIPLIER,
    VX_TICK,
    ContractTerms,
)
from volbacktest.engine.errors import ConfigError
from volbacktest.strategies.vx import ROLES_HELP, is_futures_role


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarginConfig(_Model):
    basis: Literal["per_contract", "notional"] = Field(
        "per_contract", description="USD per contract, or fractions of notional"
    )
    initial: float = Field(DEFAULT_INITIAL_MARGIN, ge=0.0)
    maintenance: float = Field(DEFAULT_MAINTENANCE_MARGIN, ge=0.0)

    @model_validator(mode="after")
    def _order(self):
        if self.maintenance > self.initial:
            raise ValueError(f"maintenance {self.maintenance} is above initial {self.initial}")
        if self.basis == "notional" and self.initial > 1:
            raise ValueError(f"basis notional takes fractions (0.3), got initial {self.initial}")
        return self


class RollConfig(_Model):
    days_before_expiry: int = Field(
        0,
        ge=0,
        le=15,
        description="F1 is the first contract with more than this many business days to its "
        "final settlement (0: hold it to the day before settlement)",
    )


class FuturesConfig(_Model):
    contracts: Literal["whole", "fractional"] = Field(
        "whole", description="whole contracts, or fractional (research only)"
    )
    size: Literal["notional", "contracts"] = Field(
        "notional",
        description="a weight is a notional exposure as a fraction of equity, or a number of "
        "contracts",
    )
    multiplier: float = Field(VX_MULTIPLIER, gt=0.0, description="USD per index point")
    tick_size: float = Field(VX_TICK, gt=0.0)
    fee_per_contract: float = Field(CFE_VX_CUSTOMER_FEE, ge=0.0, description="USD per side")
    margin: MarginConfig = MarginConfig()
    on_margin_call: Literal["reduce", "stop"] = Field(
        "reduce",
        description="equity below the maintenance margin: cut every position to the initial "
        "margin equity allows, or close everything and stop trading",
    )
    roll: RollConfig = RollConfig()
    continuous: bool = Field(
        False,
        description="shared data: extend the per-contract CFE files (to 2017-03-08) with the "
        "continuous VX1..VX8 file (to 2021-12); those dates carry F1..F8 only",
    )

    def terms(self) -> ContractTerms:
        return ContractTerms(
            multiplier=self.multiplier,
            tick_size=self.tick_size,
            fee_per_contract=self.fee_per_contract,
            initial_margin=self.margin.initial,
            maintenance_margin=self.margin.maintenance,
            margin_basis=self.margin.basis,
            fractional=self.contracts == "fractional",
        )


def check_instrument(assets, futures: FuturesConfig | None, where: str) -> None:
    """Futures roles need a ``futures:`` section and a ``futures:`` section needs roles."""
    roles = [a for a in assets if is_futures_role(a)]
    if roles and futures is None:
        raise ConfigError(
            f"{where}strategy trades the VIX futures role(s) {', '.join(roles)}: add a futures: "
            "section (see configs/futures/vx_inverse_replica.yaml)"
        )
    others = [a for a in assets if not is_futures_role(a)]
    if futures is not None and others:
        raise ConfigError(
            f"{where}futures: the strategy trades {', '.join(map(repr, others))}, not futures "
            f"roles; a futures: config trades {ROLES_HELP} (or remove the futures: section)"
        )
