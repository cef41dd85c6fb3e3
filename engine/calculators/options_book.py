"""Option contract accounting: premium, daily marks, expiry (cash settlement or exercise into the
underlying), fees and the exchanges' short-option margin rules (issue 13).

Pure bookkeeping (no files, no backtrader); the executor in ``engine.execution.options`` drives
it one trading day at a time. Conventions (README "Trading options"):

* A contract is ``OptionKey(expiry, cp, strike)``; a position is a signed number of contracts
  (whole by default, fractional for index replication such as Cboe PUT). One contract is
  ``multiplier`` units of the underlying (10,000 for SSE 50ETF options, 100 for SPX).
* Buying pays the premium ``contracts * multiplier * price`` from cash and selling receives it;
  a fee per contract is paid on every trade. Equity is cash plus the underlying units held at
  their price plus every option at its mark: ``cash + shares * S + sum n * multiplier * mark``.
* At expiry an option is worth its intrinsic value on the settlement price (the underlying's
  close for P.M. settlement, the opening print for A.M.; Cboe's SOQ). Cash settlement pays
  ``n * multiplier * intrinsic``; physical settlement (SSE 50ETF) exercises every in-the-money
  contract into the underlying at the strike (a short put is assigned: it buys
  ``|n| * multiplier`` units at the strike), and records the assignment.
* Margin for short options is the exchange's published rule (:func:`sse_short_margin`,
  :func:`cboe_short_margin`), held against the account: the executor compares equity with the
  maintenance requirement and raises a margin call event as the futures executor does
  (``futures_book.margin_call_scale`` answers a ``reduce``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError

MarginRule = Literal["sse", "cboe", "none"]
Settlement = Literal["cash", "physical"]
FillPrice = Literal["bid_ask", "mid", "close"]

# SSE 50ETF option margin (上海证券交易所股票期权试点风险控制管理办法, the exchange's margin
# formulas as quoted by GF Securities 2015; REFERENCES.md section 11 [S3a][S3b]):
#   call: [settle + max(12% * S - OTM, 7% * S)] * unit
#   put:  min[settle + max(12% * S - OTM, 7% * K), K] * unit
# opening margin on the previous day's settle and underlying close, maintenance on today's.
SSE_RATE, SSE_MIN_RATE = 0.12, 0.07
# Cboe Rule 10.3 (strategy-based customer margin, Cboe Margin Manual), short uncovered
# broad-based index option: 100% of the option value + 15% of the index value - OTM amount,
# at least the option value + 10% of the index (calls) or 10% of the strike (puts)
# (REFERENCES.md section 11 [S3h][S3i]).
CBOE_RATE, CBOE_MIN_RATE = 0.15, 0.10


class OptionKey(NamedTuple):
    expiry: pd.Timestamp
    cp: str  # "C" | "P"
    strike: float

    @property
    def theta(self) -> float:
        return 1.0 if self.cp == "C" else -1.0

    def name(self, root: str = "") -> str:
        head = f"{root} " if root else ""
        return f"{head}{self.expiry:%Y-%m-%d} {self.cp}{self.strike:g}"


def intrinsic(cp, strike, settle) -> np.ndarray:
    """Intrinsic value per unit: ``max(S - K, 0)`` for calls, ``max(K - S, 0)`` for puts."""
    theta = np.where(np.asarray(cp) == "C", 1.0, -1.0)
    return np.maximum(theta * (np.asarray(settle, float) - np.asarray(strike, float)), 0.0)


def out_of_the_money(cp, strike, underlying) -> np.ndarray:
    """OTM amount per unit: ``max(K - S, 0)`` for calls, ``max(S - K, 0)`` for puts."""
    theta = np.where(np.asarray(cp) == "C", 1.0, -1.0)
    return np.maximum(theta * (np.asarray(strike, float) - np.asarray(underlying, float)), 0.0)


def sse_short_margin(cp, strike, option_price, underlying) -> np.ndarray:
    """SSE margin per unit of a short 50ETF option (see :data:`SSE_RATE`); multiply by the
    contract unit. Pass the previous day's settle and close for the opening margin, today's for
    the maintenance margin."""
    cp = np.asarray(cp)
    k, s = np.asarray(strike, float), np.asarray(underlying, float)
    p = np.asarray(option_price, float)
    otm = out_of_the_money(cp, k, s)
    call = p + np.maximum(SSE_RATE * s - otm, SSE_MIN_RATE * s)
    put = np.minimum(p + np.maximum(SSE_RATE * s - otm, SSE_MIN_RATE * k), k)
    return np.where(cp == "C", call, put)


def cboe_short_margin(cp, strike, option_price, underlying) -> np.ndarray:
    """Cboe customer margin per unit of a short uncovered broad-based index option (Rule 10.3,
    see :data:`CBOE_RATE`); multiply by the multiplier (100 for SPX)."""
    cp = np.asarray(cp)
    k, s = np.asarray(strike, float), np.asarray(underlying, float)
    p = np.asarray(option_price, float)
    otm = out_of_the_money(cp, k, s)
    floor = np.where(cp == "C", CBOE_MIN_RATE * s, CBOE_MIN_RATE * k)
    return p + np.maximum(CBOE_RATE * s - otm, floor)


MARGIN_RULES = {"sse": sse_short_margin, "cboe": cboe_short_margin}


def mark_prices(bid, ask, close) -> tuple[np.ndarray, np.ndarray]:
    """Daily marks and their source: the mid where a two-sided quote exists (ask > 0, bid >= 0,
    bid <= ask), else the close. Returns (mark, source) with source ``"mid"`` or ``"close"``
    (NaN mark, source ``"none"``, when neither exists)."""
    bid, ask, close = (np.asarray(x, float) for x in (bid, ask, close))
    quoted = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (bid <= ask)
    mark = np.where(quoted, 0.5 * (bid + ask), close)
    source = np.where(quoted, "mid", np.where(np.isfinite(close), "close", "none"))
    return mark, source


def fill_price(
    side: float, bid, ask, close, how: FillPrice, spread_fraction: float, slippage: float
) -> tuple[float, str]:
    """Price of a trade of sign ``side`` (+1 buy, -1 sell) and its label.

    ``bid_ask``: sell at the bid, buy at the ask; ``mid``: the mid plus ``side *
    spread_fraction * (ask - bid)``; both fall back to the close plus ``side * slippage``
    (price units) when the row has no two-sided quote, as ``close`` always does. The close price
    is floored at zero."""
    quoted = (
        np.isfinite(bid) and np.isfinite(ask) and ask > 0 and 0 <= bid <= ask and how != "close"
    )
    if quoted:
        if how == "bid_ask":
            return (float(ask) if side > 0 else float(bid)), "bid_ask"
        mid = 0.5 * (bid + ask)
        return float(mid + side * spread_fraction * (ask - bid)), "mid"
    if not np.isfinite(close):
        return float("nan"), "none"
    return float(max(close + side * slippage, 0.0)), "close+slippage"


@dataclass(frozen=True)
class OptionTerms:
    """Contract and account terms of an option book."""

    multiplier: float
    fee_per_contract: float = 0.0
    margin_rule: MarginRule = "none"
    settlement: Settlement = "cash"
    fractional: bool = False
    share_fee_rate: float = 0.0  # fee on underlying trades, fraction of value

    def __post_init__(self) -> None:
        if not self.multiplier > 0:
            raise ConfigError(f"option multiplier must be positive, got {self.multiplier}")
        if self.fee_per_contract < 0 or self.share_fee_rate < 0:
            raise ConfigError("option fees must be >= 0")
        if self.margin_rule not in ("sse", "cboe", "none"):
            raise ConfigError(
                f"margin rule must be 'sse', 'cboe' or 'none', got {self.margin_rule!r}"
            )
        if self.settlement not in ("cash", "physical"):
            raise ConfigError(f"settlement must be 'cash' or 'physical', got {self.settlement!r}")

    def round_contracts(self, contracts: float) -> float:
        """Whole contracts toward zero (never more than the rule asked) unless fractional."""
        if self.fractional:
            return float(contracts)
        return float(math.trunc(contracts + 1e-9 * math.copysign(1.0, contracts)))


@dataclass
class OptionBook:
    """Cash, underlying units and option positions of one account, with its ledgers
    (trades: date, contract, expiry, cp, strike, size, price, fee, reason, price_source;
    assignments: date, contract, size, strike, settle, units)."""

    terms: OptionTerms
    cash: float
    shares: float = 0.0
    positions: dict[OptionKey, float] = field(default_factory=dict)
    marks: dict[OptionKey, float] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)
    assignments: list[dict] = field(default_factory=list)

    def held(self) -> list[OptionKey]:
        return sorted(k for k, n in self.positions.items() if n != 0)

    def option_value(self) -> float:
        m = self.terms.multiplier
        return float(sum(n * m * self.marks[k] for k, n in self.positions.items()))

    def equity(self, spot: float) -> float:
        return self.cash + self.shares * spot + self.option_value()

    def accrue(self, growth: float) -> float:
        """Interest on the cash balance (``growth`` = account factor - 1 over the period);
        only a positive balance earns. Returns the interest."""
        interest = self.cash * growth if self.cash > 0 else 0.0
        self.cash += interest
        return interest

    def mark(self, key: OptionKey, price: float) -> None:
        self.marks[key] = float(price)

    def trade(
        self,
        day: pd.Timestamp,
        key: OptionKey,
        size: float,
        price: float,
        reason: str,
        source: str = "",
    ) -> float:
        """Buy (``size`` > 0) or sell contracts of ``key`` at ``price``; returns the fee."""
        if size == 0:
            return 0.0
        if not np.isfinite(price):
            raise DataError(f"cannot trade {key.name()} on {day:%Y-%m-%d}: no price that day")
        if key.expiry <= day and reason not in ("expiry",):
            raise ConfigError(
                f"trade of {size:g} contracts of {key.name()} on {day:%Y-%m-%d}: the contract "
                "has expired; choose a listed contract"
            )
        fee = abs(size) * self.terms.fee_per_contract
        self.cash -= size * self.terms.multiplier * price + fee
        new = self.positions.get(key, 0.0) + size
        if abs(new) < 1e-12:
            self.positions.pop(key, None)
            self.marks.pop(key, None)
        else:
            self.positions[key] = new
            self.marks[key] = float(price)
        self.trades.append(self._row(day, key, size, price, fee, reason, source))
        return fee

    @staticmethod
    def _row(day, key, size, price, fee, reason, source) -> dict:
        return {
            "date": day,
            "contract": key.name(),
            "expiry": key.expiry,
            "cp": key.cp,
            "strike": key.strike,
            "size": size,
            "price": price,
            "fee": fee,
            "reason": reason,
            "price_source": source,
        }

    def trade_shares(self, day: pd.Timestamp, size: float, price: float, reason: str) -> float:
        """Buy or sell ``size`` units of the underlying at ``price``; returns the fee."""
        if size == 0:
            return 0.0
        fee = abs(size) * price * self.terms.share_fee_rate
        self.cash -= size * price + fee
        self.shares += size
        self.trades.append(
            {
                "date": day,
                "contract": "underlying",
                "expiry": pd.NaT,
                "cp": "",
                "strike": float("nan"),
                "size": size,
                "price": price,
                "fee": fee,
                "reason": reason,
                "price_source": "close",
            }
        )
        return fee

    def expire(
        self, day: pd.Timestamp, settle: float | Mapping[OptionKey, float]
    ) -> list[OptionKey]:
        """Settle every contract expiring on ``day`` on the settlement price ``settle`` (one
        price, or one per contract: A.M.- and P.M.-settled contracts differ).

        Cash settlement: ``n * multiplier * intrinsic`` is paid or received. Physical: each
        in-the-money contract is exercised (long) or assigned (short) into the underlying at
        the strike. An out-of-the-money contract expires worthless. A position past its expiry
        is a DataError (the data had no session on the expiry day)."""
        done = []
        m = self.terms.multiplier
        for key in self.held():
            if key.expiry > day:
                continue
            if key.expiry < day:
                raise DataError(
                    f"{key.name()} is still held on {day:%Y-%m-%d}, after its expiry: the "
                    "underlying has no session on the expiry day"
                )
            price = settle[key] if isinstance(settle, Mapping) else settle
            if not np.isfinite(price):
                raise DataError(
                    f"{key.name()} expires on {day:%Y-%m-%d} but the underlying has no "
                    "settlement price that day"
                )
            n = self.positions.pop(key)
            self.marks.pop(key, None)
            value = float(intrinsic(key.cp, key.strike, price))
            physical = self.terms.settlement == "physical" and value > 0
            if physical:
                units = n * m * key.theta  # long call receives units, short put receives units
                self.shares += units
                self.cash -= units * key.strike
                reason = "assignment" if n < 0 else "exercise"
                self.assignments.append(
                    {
                        "date": f"{day:%Y-%m-%d}",
                        "contract": key.name(),
                        "contracts": n,
                        "strike": key.strike,
                        "settle": price,
                        "units": units,
                    }
                )
            else:
                self.cash += n * m * value
                reason = "expired_worthless" if value == 0 else "cash_settlement"
            self.trades.append(self._row(day, key, -n, value, 0.0, reason, "settlement"))
            done.append(key)
        return done

    def requirement(self, spot: float, rate_multiple: float = 1.0) -> float:
        """Margin of the short options at their marks and the underlying at ``spot``: the
        exchange rule per uncovered contract; a short call covered by units held (covered call)
        needs none. ``rate_multiple`` scales it (a broker's add-on, or 1)."""
        rule = MARGIN_RULES.get(self.terms.margin_rule)
        if rule is None:
            return 0.0
        m = self.terms.multiplier
        cover = max(self.shares, 0.0) / m  # contracts of calls the units cover
        keys, uncovered = [], []
        for key in self.held():
            short = -self.positions[key]
            if short <= 0:
                continue
            if key.cp == "C" and cover > 0:
                covered = min(cover, short)
                cover -= covered
                short -= covered
            if short > 0:
                keys.append(key)
                uncovered.append(short)
        if not keys:
            return 0.0
        per_unit = rule(
            np.array([k.cp for k in keys]),
            np.array([k.strike for k in keys]),
            np.array([self.marks[k] for k in keys]),
            spot,
        )
        total = float(np.dot(uncovered, per_unit)) * m
        return total * rate_multiple
