"""Strategies that hold VIX futures contracts (issue 12): run with a ``futures:`` config section.

Their columns are futures roles (``F1``, ``cm30``, ``st_index``; see
``engine.execution.futures``) and their weights notional exposures as fractions of equity.

* ``vx_inverse_replica``: −1x the S&P 500 VIX Short-Term Futures Index (``st_index``), i.e.
  the futures behind XIV, rebalanced daily like the index.
* ``vx_basis``: Simon and Campasano's VIX futures basis rule ("The VIX Futures Basis: Evidence
  and Trading Strategies", Journal of Derivatives 21(3), 2014): the front contract's daily roll
  is ``(F1 − VIX) / business days to its settlement``; short F1 when it is above ``threshold``
  (0.10 points a day), long when below ``−threshold``, flat otherwise.
* ``vx_roll_yield``: Cooper's roll-yield switch (``strategies.cooper.roll_yield_basis``:
  ``F1/VIX − 1`` against a band) on futures: short the short-term index exposure in contango,
  long it in backwardation, in place of XIV/VXX.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field

from volbacktest.engine.calculators.rolling import band_switch

from .base import Inputs, StrategyParams
from .cooper import RollYieldParams, roll_yield_basis

# the roles a futures strategy's columns name (resolved to contracts by the futures executor)
FUTURES_ROLE = re.compile(r"^(?:F(?P<k>[1-9])|cm(?P<d>[1-9][0-9]{0,2})|(?P<st>st_index))$")
ROLES_HELP = "F1..F9 (k-th listed contract), cm<days> (e.g. cm30), st_index (S&P short-term)"


def is_futures_role(name: str) -> bool:
    return FUTURES_ROLE.match(name) is not None


# Simon & Campasano (2014): trade when the daily roll exceeds 0.10 VIX points per business day
BASIS_THRESHOLD = 0.10


class InverseReplicaParams(StrategyParams):
    exposure: float = Field(-1.0, ge=-3.0, le=3.0, description="notional / equity on the index")
    role: str = Field("st_index", description="futures role held (st_index: S&P short-term)")

    def assets(self) -> tuple[str, ...]:
        return (self.role,)

    def inputs(self) -> tuple[str, ...]:
        return ("f1",)

    def describe(self) -> str:
        return f"{self.exposure:g}x notional of {self.role} (VIX futures, rolled like the index)"


def vx_inverse_replica(inputs: Inputs, p: InverseReplicaParams) -> np.ndarray:
    f1 = np.asarray(inputs["f1"], dtype=np.float64)
    w = np.full((len(f1), 1), p.exposure)
    w[np.isnan(f1)] = np.nan
    return w


class BasisParams(StrategyParams):
    threshold: float = Field(BASIS_THRESHOLD, ge=0.0, le=5.0, description="VIX points a day")
    exposure: float = Field(1.0, gt=0.0, le=3.0, description="|notional| / equity of F1")
    role: str = Field("F1", description="contract traded (F1 with the config's roll rule)")
    vix: str = "vix"

    def assets(self) -> tuple[str, ...]:
        return (self.role,)

    def inputs(self) -> tuple[str, ...]:
        return (self.vix, "f1", "bdays1")

    def describe(self) -> str:
        return (
            f"daily roll (F1 − VIX)/bdays > {self.threshold:g} → short {self.role}, "
            f"< −{self.threshold:g} → long, else flat ({self.exposure:g}x equity)"
        )


def daily_roll(inputs: Inputs, vix: str = "vix") -> np.ndarray:
    """``(F1 − VIX) / business days to F1's settlement`` (VIX points per day)."""
    f1 = np.asarray(inputs["f1"], dtype=np.float64)
    days = np.asarray(inputs["bdays1"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (f1 - np.asarray(inputs[vix], dtype=np.float64)) / days
    return np.where(days > 0, out, np.nan)


def vx_basis(inputs: Inputs, p: BasisParams) -> np.ndarray:
    roll = daily_roll(inputs, p.vix)
    side = np.where(roll > p.threshold, -1.0, np.where(roll < -p.threshold, 1.0, 0.0))
    side[np.isnan(roll)] = np.nan
    return (p.exposure * side)[:, None]


class FuturesRollYieldParams(StrategyParams):
    smoothing: int = Field(1, ge=1, le=1000, description="SMA length of the basis (1 = none)")
    band: float = Field(0.0, ge=0.0, lt=1.0, description="no-trade band on F1/VIX − 1")
    exposure: float = Field(1.0, gt=0.0, le=3.0, description="|notional| / equity")
    role: str = Field("st_index", description="futures role held (short in contango)")
    vix: str = "vix"

    def assets(self) -> tuple[str, ...]:
        return (self.role,)

    def inputs(self) -> tuple[str, ...]:
        return (self.vix, "f1")

    def describe(self) -> str:
        return (
            f"F1/VIX − 1 > {self.band:g} (contango) → short {self.role}, < −{self.band:g} → "
            f"long ({self.exposure:g}x equity; Cooper's roll-yield rule on futures)"
        )


def vx_roll_yield(inputs: Inputs, p: FuturesRollYieldParams) -> np.ndarray:
    etn_params = RollYieldParams(smoothing=p.smoothing, band=p.band, vix=p.vix, front="f1")
    state = band_switch(roll_yield_basis(inputs, etn_params), p.band, -p.band)
    side = np.where(np.isnan(state), np.nan, np.where(state > 0, -1.0, 1.0))
    return (p.exposure * side)[:, None]
