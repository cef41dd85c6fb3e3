"""The ``options:`` section of a config: options traded as listed contracts (issue 13).

A config with this section runs on the options executor (``engine.execution.options``). The
strategy (``put_write``, ``covered_call``, ``short_strangle``; ``strategies.options_income``)
says which legs to hold; this section says where they come from and how they trade:

* ``chain``: a registered chain dataset (``spx_options``: embedded SPX-like monthlies;
  ``etf50_options``: embedded 50ETF-like or the real SSE 50ETF closes 2015-2024), whose
  underlying must be the strategy's column;
* ``fill``: ``bid_ask`` (sell at the bid, buy at the ask), ``mid`` (mid +/- ``spread_fraction``
  of the spread) or ``close``; rows without a two-sided quote fill at the close +/- ``slippage``
  (price units), and the trade ledger labels each fill;
* ``settlement``: ``cash`` at intrinsic value on the settlement price, or ``physical``
  (exercise into the underlying, assignment recorded: the SSE 50ETF rule);
* ``margin``: ``sse`` / ``cboe`` / ``none`` (rules and citations in
  ``engine.calculators.options_book``) times ``broker_multiple`` for the opening requirement;
  ``on_margin_call`` ``reduce`` | ``stop`` as for futures;
* ``collateral_rate``: interest on the cash account (decimal per year, continuously
  compounded over calendar days), or ``chain`` for the chain's own constant rate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from volbacktest.engine.calculators.options_book import OptionTerms
from volbacktest.engine.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptionFillConfig(_Model):
    price: Literal["bid_ask", "mid", "close"] = "bid_ask"
    spread_fraction: float = Field(0.0, ge=0.0, le=0.5, description="mid fills: +/- of spread")
    slippage: float = Field(0.0, ge=0.0, description="close fills: price units against you")


class OptionsConfig(_Model):
    chain: str = Field(..., description="chain dataset, e.g. spx_options or etf50_options")
    contracts: Literal["whole", "fractional"] = "whole"
    fill: OptionFillConfig = OptionFillConfig()
    settlement: Literal["cash", "physical"] = "cash"
    fee_per_contract: float = Field(0.0, ge=0.0, description="per contract per side")
    underlying_fee: float = Field(0.0, ge=0.0, le=0.05, description="fraction of value traded")
    margin: Literal["sse", "cboe", "none"] = "none"
    broker_multiple: float = Field(1.0, ge=1.0, le=5.0, description="opening margin x rule")
    on_margin_call: Literal["reduce", "stop"] = "reduce"
    collateral_rate: float | Literal["chain"] = Field(
        0.0, description="interest on cash, decimal per year, or 'chain' (its constant rate)"
    )

    def terms(self, multiplier: float) -> OptionTerms:
        return OptionTerms(
            multiplier=multiplier,
            fee_per_contract=self.fee_per_contract,
            margin_rule=self.margin,
            settlement=self.settlement,
            fractional=self.contracts == "fractional",
            share_fee_rate=self.underlying_fee,
        )


def check_options_instrument(params, options: OptionsConfig | None, where: str) -> None:
    """An options strategy needs an ``options:`` section and the section needs one."""
    is_options = getattr(type(params), "instrument", None) == "options"
    if is_options and options is None:
        raise ConfigError(
            f"{where}the strategy trades options: add an options: section naming the chain "
            "(see configs/options/put_write_spx.yaml)"
        )
    if options is not None and not is_options:
        raise ConfigError(
            f"{where}options: the strategy does not trade options; use put_write, covered_call "
            "or short_strangle (or remove the options: section)"
        )
