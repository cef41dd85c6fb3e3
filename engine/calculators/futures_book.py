"""Futures contract accounting: positions in listed contracts, daily variation margin, margin
requirements, fees and final settlement (VIX futures first, any cash-settled future alike).

Pure bookkeeping (no files, no backtrader); the executor in ``engine.execution.futures`` drives
it one trading day at a time. Conventions (CFE VX contract specification, Cboe CFE rule book
chapter 12 and the CFE fee schedule; see README "Trading VIX futures"):

* A position is a signed number of contracts (whole by default; fractional only when the terms
  say so, for research). Opening or changing a position costs no cash: futures trade at the
  day's settlement price and only the fee is paid.
* Every day each open position is marked to the day's settlement price: the variation margin
  ``contracts * multiplier * (settle_t - settle_{t-1})`` moves cash. Cash is therefore the
  account's equity (no open P&L is ever left unbooked).
* On its final settlement date a contract's position is marked to the final settlement price
  (the special opening quotation of VIX, which the CFE files carry as that day's settle) and
  closed without a trade fee. A target on a contract on or after its final settlement date is
  an error naming the contract.
* Margin (initial and maintenance) is a per-contract amount or a fraction of notional
  (``|contracts| * multiplier * settle``). It is held against open positions, not paid: the
  executor compares equity with the maintenance requirement and raises a margin call event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError

# CFE VX contract specification: contract multiplier 1,000 USD per index point, minimum tick
# 0.05 points (0.01 for spreads and TAS); month codes of futures contract symbols
VX_MULTIPLIER = 1000.0
VX_TICK = 0.05
MONTH_CODES = "FGHJKMNQUVXZ"
# CFE fee schedule (cboe.com/us/futures/membership/fee_schedule/cfe): VX monthly expiration,
# customer, 1.47 USD per contract side (1.40 to 1.51 over recent schedules), before brokerage
CFE_VX_CUSTOMER_FEE = 1.47
# Margin defaults (per contract, USD). CFE sets the customer maintenance margin equal to the
# OCC clearing-member requirement and the initial margin at 110 % of it; the levels changed
# many times (e.g. raised in June 2013 to 2,700..3,650 maintenance by term; broker quotes of
# 9,950 maintenance / 10,945 initial after 2018). 5,000 maintenance is a middle value.
DEFAULT_MAINTENANCE_MARGIN = 5000.0
INITIAL_OVER_MAINTENANCE = 1.10
DEFAULT_INITIAL_MARGIN = DEFAULT_MAINTENANCE_MARGIN * INITIAL_OVER_MAINTENANCE


@lru_cache(maxsize=4096)
def contract_name(expiry, root: str = "VX") -> str:
    """Exchange-style symbol of a monthly contract from its final settlement date, e.g.
    ``VXV08`` for the contract settling 2008-10-22 (VX settles inside its contract month)."""
    ts = pd.Timestamp(expiry)
    return f"{root}{MONTH_CODES[ts.month - 1]}{ts.year % 100:02d} ({ts:%Y-%m-%d})"


@dataclass(frozen=True)
class ContractTerms:
    """Contract and account terms shared by every contract of a book.

    ``margin_basis``: ``per_contract`` (``initial_margin``/``maintenance_margin`` are USD per
    contract) or ``notional`` (they are fractions of ``|contracts| * multiplier * settle``).
    """

    multiplier: float = VX_MULTIPLIER
    tick_size: float = VX_TICK
    fee_per_contract: float = CFE_VX_CUSTOMER_FEE
    initial_margin: float = DEFAULT_INITIAL_MARGIN
    maintenance_margin: float = DEFAULT_MAINTENANCE_MARGIN
    margin_basis: Literal["per_contract", "notional"] = "per_contract"
    fractional: bool = False

    def __post_init__(self) -> None:
        if not self.multiplier > 0:
            raise ConfigError(f"multiplier must be positive, got {self.multiplier}")
        if not self.tick_size > 0:
            raise ConfigError(f"tick_size must be positive, got {self.tick_size}")
        if self.fee_per_contract < 0:
            raise ConfigError(f"fee_per_contract must be >= 0, got {self.fee_per_contract}")
        if self.margin_basis not in ("per_contract", "notional"):
            raise ConfigError(
                f"margin basis must be 'per_contract' or 'notional', got {self.margin_basis!r}"
            )
        if not 0 <= self.maintenance_margin <= self.initial_margin:
            raise ConfigError(
                f"margin: need 0 <= maintenance ({self.maintenance_margin}) <= initial "
                f"({self.initial_margin})"
            )
        if self.margin_basis == "notional" and self.initial_margin > 1:
            raise ConfigError(
                f"margin basis 'notional' takes fractions of notional (0.3 for 30 %), got "
                f"initial {self.initial_margin}"
            )

    def requirement(self, contracts: np.ndarray, prices: np.ndarray, kind: str) -> float:
        """Initial or maintenance margin of positions ``contracts`` at ``prices``."""
        rate = self.initial_margin if kind == "initial" else self.maintenance_margin
        size = np.abs(np.asarray(contracts, dtype=float))
        if self.margin_basis == "per_contract":
            return float(rate * size.sum())
        return float(rate * (size * self.multiplier * np.asarray(prices, dtype=float)).sum())

    def round_contracts(self, contracts: float) -> float:
        """Whole contracts (nearest, ties away from zero) unless fractional sizing is allowed."""
        if self.fractional:
            return float(contracts)
        return float(math.copysign(math.floor(abs(contracts) + 0.5), contracts))


@dataclass
class ContractBook:
    """Open positions, cash and the ledgers of one futures account.

    ``positions`` maps a contract's final settlement date to its signed contracts;
    ``marks`` to the last settlement price it was marked at. ``trades`` and ``flows`` are lists
    of dicts (trades: date, contract, expiry, size, price, fee, reason; flows: date, contract,
    variation margin).
    """

    terms: ContractTerms
    cash: float
    positions: dict[pd.Timestamp, float] = field(default_factory=dict)
    marks: dict[pd.Timestamp, float] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)
    flows: list[dict] = field(default_factory=list)

    @property
    def equity(self) -> float:
        """Cash: every open position is marked daily, so nothing is left unbooked."""
        return self.cash

    def held(self) -> list[pd.Timestamp]:
        return sorted(e for e, n in self.positions.items() if n != 0)

    def mark(self, day: pd.Timestamp, settle: Mapping[pd.Timestamp, float]) -> float:
        """Variation margin of every open position to ``settle`` (expiry -> price) on ``day``;
        returns the day's total. A held contract without a settle that day is a DataError."""
        total = 0.0
        for expiry in self.held():
            price = settle.get(expiry, float("nan"))
            if not np.isfinite(price):
                raise DataError(
                    f"{contract_name(expiry)} is held on {day:%Y-%m-%d} but has no settlement "
                    "price that day; fix or complete that contract's file"
                )
            vm = self.positions[expiry] * self.terms.multiplier * (price - self.marks[expiry])
            self.marks[expiry] = price
            self.cash += vm
            total += vm
            self.flows.append(
                {"date": day, "contract": contract_name(expiry), "variation_margin": vm}
            )
        return total

    def settle_expired(self, day: pd.Timestamp) -> list[pd.Timestamp]:
        """Close every position whose contract's final settlement date is ``day`` at the price it
        was just marked to (the final settlement price); no fee. Returns the contracts closed.
        A position past its settlement date (never closed) is an error."""
        closed = []
        for expiry in self.held():
            if expiry > day:
                continue
            if expiry < day:
                raise DataError(
                    f"{contract_name(expiry)} is still held on {day:%Y-%m-%d}, after its final "
                    "settlement: the data has no row on its settlement date"
                )
            size = self.positions.pop(expiry)
            self.trades.append(
                {
                    "date": day,
                    "contract": contract_name(expiry),
                    "expiry": expiry,
                    "size": -size,
                    "price": self.marks.pop(expiry),
                    "fee": 0.0,
                    "reason": "final_settlement",
                }
            )
            closed.append(expiry)
        return closed

    def trade_to(
        self,
        day: pd.Timestamp,
        targets: Mapping[pd.Timestamp, float],
        settle: Mapping[pd.Timestamp, float],
        reasons: Mapping[pd.Timestamp, str] | None = None,
    ) -> float:
        """Trade every contract in ``targets`` (expiry -> contracts, rounded by the terms) and
        close held contracts absent from it, at the day's settle; returns the fees paid.

        A non-zero target on a contract on or after its final settlement date raises
        ConfigError naming the contract.
        """
        reasons = reasons or {}
        wanted = {e: self.terms.round_contracts(n) for e, n in targets.items()}
        for expiry, n in wanted.items():
            if n != 0 and expiry <= day:
                raise ConfigError(
                    f"target of {n:g} contracts on {contract_name(expiry)} on {day:%Y-%m-%d}: "
                    "that contract has passed its last trading day; target a listed contract "
                    "(a role such as F1 rolls by itself)"
                )
        for expiry in self.held():
            wanted.setdefault(expiry, 0.0)
        fees = 0.0
        for expiry in sorted(wanted):
            size = wanted[expiry] - self.positions.get(expiry, 0.0)
            if size == 0:
                continue
            price = settle.get(expiry, float("nan"))
            if not np.isfinite(price):
                raise DataError(
                    f"cannot trade {contract_name(expiry)} on {day:%Y-%m-%d}: no settlement "
                    "price that day"
                )
            fee = abs(size) * self.terms.fee_per_contract
            self.cash -= fee
            fees += fee
            new = self.positions.get(expiry, 0.0) + size
            if new == 0:
                self.positions.pop(expiry, None)
                self.marks.pop(expiry, None)
            else:
                self.positions[expiry] = new
                self.marks[expiry] = price
            self.trades.append(
                {
                    "date": day,
                    "contract": contract_name(expiry),
                    "expiry": expiry,
                    "size": size,
                    "price": price,
                    "fee": fee,
                    "reason": reasons.get(expiry, "trade"),
                }
            )
        return fees

    def requirement(self, kind: Literal["initial", "maintenance"]) -> float:
        """Margin held against the open positions at their last marks."""
        held = self.held()
        return self.terms.requirement(
            np.array([self.positions[e] for e in held]),
            np.array([self.marks[e] for e in held]),
            kind,
        )


def margin_call_scale(equity: float, initial_requirement: float) -> float:
    """Fraction of every position kept after a margin call answered by reducing: the largest
    ``s`` in [0, 1] with ``s * initial_requirement <= equity`` (0 when equity is gone)."""
    if initial_requirement <= 0:
        return 1.0
    return float(min(1.0, max(0.0, equity / initial_requirement)))


def margin_call_action(
    equity: float, maintenance: float, initial: float, on_call: str
) -> tuple[str, float] | None:
    """The answer to a maintenance check, shared by the futures and options executors: None
    when equity covers the maintenance margin (and is positive); else the action (``stop``
    when asked for or when equity is gone, else ``reduce``) and the fraction of every position
    kept (:func:`margin_call_scale` of the initial requirement; 0 for ``stop``)."""
    if equity >= maintenance and equity > 0:
        return None
    action = "stop" if on_call == "stop" or equity <= 0 else "reduce"
    return action, (margin_call_scale(equity, initial) if action == "reduce" else 0.0)


def margin_call_event(
    day, equity: float, maintenance: float, action: str, before: dict, after: dict
) -> dict:
    """The record of one margin call in ``metrics.json`` (positions by contract name)."""
    return {
        "date": f"{day:%Y-%m-%d}",
        "equity": equity,
        "maintenance_margin": maintenance,
        "action": action,
        "contracts_before": before,
        "contracts_after": after,
    }


def basket_contracts(
    exposure: float, equity: float, units: np.ndarray, prices: np.ndarray, multiplier: float
) -> np.ndarray:
    """Contracts per leg of a basket held at ``exposure`` times ``equity`` in notional.

    ``units`` are the basket's weights in contracts (an index's w1, w2: the basket's value is
    ``sum units * prices``). ``n_i = exposure * equity * units_i / (multiplier * sum units *
    prices)``, so the basket's daily P&L is ``exposure * equity`` times its return.
    """
    value = float(np.dot(units, prices))
    if not value > 0:
        raise DataError(f"basket value {value} is not positive; check the settle prices {prices}")
    return exposure * equity * np.asarray(units, dtype=float) / (multiplier * value)
