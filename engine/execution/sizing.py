"""The sizing rule that turns target weights into orders: pure, and the only copy.

Both executors call it: the backtrader executor (``execution.bt.TargetWeightStrategy``) for one
run at a fill bar, the vectorised executor (``execution.vectorised``) for every run of a grid at
once. It works on rows (one row per run) with the same floating-point operations in the same
order whatever the number of rows, so the two executors agree bit for bit (the conformance tests
in ``tests/test_sweep_conformance.py`` check it).

At a fill bar, with fill prices ``p`` (the bar's close, or its open for ``next_open``):

1. equity ``V = cash + Σ n_i p_i`` (holdings marked at the fill prices, before trading);
2. target shares ``n*_i = w_i V / p_i`` (weights scaled down if gross exposure exceeds the cap);
3. sells (and short increases) are executed first, at ``p (1 − slippage)``, paying commission;
4. buys are executed at ``p (1 + slippage)`` plus commission; if their total cost exceeds the
   cash available after the sells, every buy is scaled by the same factor so cash never goes
   negative (this is what keeps a 100 % target from being rejected for one ulp of margin);
5. integer sizing rounds every order toward zero to whole lots after that scaling;
6. an order smaller than :data:`DUST_FRACTION` of the largest holding (or of one share) is not
   sent.

Commission is ``|shares| × (price × percent + per_share)`` on the slipped price. The orders of a
rebalance go out sells first, then buys, each in asset order; a trade that crosses zero is sent
as an exact close and an open (:func:`order_legs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volbacktest.engine.inputs.config import ExecutionConfig

CASH_SAFETY = 1.0 - 1e-12  # keeps float rounding from pushing cash below zero after buys
DUST_FRACTION = 1e-12  # orders below this fraction of max(1, largest holding) are not sent


@dataclass(frozen=True)
class CostModel:
    commission_pct: float = 0.0
    commission_per_share: float = 0.0
    slippage_pct: float = 0.0

    @classmethod
    def of(cls, ex: ExecutionConfig) -> CostModel:
        return cls(ex.commission.percent, ex.commission.per_share, ex.slippage.percent)

    def buy_cost_per_share(self, price: np.ndarray) -> np.ndarray:
        fill = price * (1.0 + self.slippage_pct)
        return fill * (1.0 + self.commission_pct) + self.commission_per_share

    def sell_proceeds_per_share(self, price: np.ndarray) -> np.ndarray:
        fill = price * (1.0 - self.slippage_pct)
        return fill * (1.0 - self.commission_pct) - self.commission_per_share


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``float(a[j] @ b[j])`` for every row, bit for bit (BLAS may fuse multiply-adds, so rows
    with more than one non-zero product go through ``np.dot`` itself)."""
    prod = a * b
    out = prod.sum(axis=1)
    for j in np.flatnonzero(np.count_nonzero(prod, axis=1) > 1):
        out[j] = float(a[j] @ b[j])
    return out


def _subset_sum(terms: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``terms[j][mask[j]].sum()`` for every row with numpy's own association order (masked
    zeros are exact while at most two terms are summed; longer rows are summed as numpy does)."""
    out = np.where(mask, terms, 0.0).sum(axis=1)
    for j in np.flatnonzero(mask.sum(axis=1) > 2):
        out[j] = terms[j][mask[j]].sum()
    return out


def order_sizes(
    weights: np.ndarray,
    holdings: np.ndarray,
    cash: np.ndarray | float,
    prices: np.ndarray,
    costs: CostModel,
    *,
    integer_lot: int | None = None,
    max_gross_leverage: float = 1.0,
) -> np.ndarray:
    """Signed share quantities to trade so holdings move to the target weights.

    ``weights`` (NaN read as 0), ``holdings`` and ``prices`` are ``(n_runs, n_assets)`` (or 1-D
    for one run, with a scalar ``cash``); ``cash`` is ``(n_runs,)``. Returns the orders in the
    shape of ``weights``: positive = buy, negative = sell, exactly 0.0 = no order (dust
    included, see the module docstring).
    """
    w = np.asarray(weights, dtype=np.float64)
    n = np.asarray(holdings, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    cash = np.asarray(cash, dtype=np.float64)
    one = w.ndim == 1
    if one:
        w, n, p, cash = w[None], n[None], p[None], cash.reshape(1)
    nan = np.isnan(w)
    if nan.any():
        w = np.where(nan, 0.0, w)
    gross = np.abs(w).sum(axis=1)
    over = gross > max_gross_leverage
    if over.any():
        w = np.where(
            over[:, None], w * (max_gross_leverage / np.where(over, gross, 1.0))[:, None], w
        )
    equity = cash + _row_dot(n, p)
    delta = w * equity[:, None] / p - n
    if integer_lot:
        delta = np.trunc(delta / integer_lot) * integer_lot
    buys = delta > 0
    any_buy = buys.any(axis=1)
    if any_buy.any():
        cash_after_sells = cash + _subset_sum(-delta * costs.sell_proceeds_per_share(p), ~buys)
        buy_cost = _subset_sum(delta * costs.buy_cost_per_share(p), buys)
        squeeze = any_buy & (buy_cost > cash_after_sells * CASH_SAFETY)
        if squeeze.any():
            with np.errstate(divide="ignore", invalid="ignore"):  # rows without a squeeze
                scale = np.maximum(cash_after_sells, 0.0) * CASH_SAFETY / buy_cost
                scaled = delta * scale[:, None]
                if integer_lot:
                    scaled = np.floor(scaled / integer_lot) * integer_lot
            delta = np.where(squeeze[:, None] & buys, scaled, delta)
    tiny = DUST_FRACTION * np.maximum(1.0, np.abs(n).max(axis=1, initial=0.0))
    delta = np.where(np.abs(delta) > tiny[:, None], delta, 0.0)
    return delta[0] if one else delta


def order_legs(held: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The legs of orders ``delta`` on positions ``held`` (arrays of any one shape): a trade
    that crosses zero (short to long, long to short) is an exact close ``-held`` then an open
    ``held + delta``; any other trade is one leg (the second is 0.0).

    backtrader splits a crossing order into close + open whose sizes need not add up to the
    order's size in floating point, and the last sliver (~1e-13 shares) would otherwise fill a
    bar later."""
    after = held + delta
    cross = (held != 0.0) & (after != 0.0) & ((held > 0) != (after > 0))
    return np.where(cross, -held, delta), np.where(cross, after, 0.0)


def rebalance_orders(delta: np.ndarray, held: np.ndarray) -> list[tuple[int, float]]:
    """One run's orders as (asset index, signed size) in sending order: sells first, then
    buys, each in asset order, crossing trades as two legs (:func:`order_legs`)."""
    first, second = order_legs(np.asarray(held, dtype=np.float64), np.asarray(delta, np.float64))
    out: list[tuple[int, float]] = []
    for buy_phase in (False, True):
        for j, d in enumerate(delta):
            if d == 0.0 or (d > 0) != buy_phase:
                continue
            out.append((j, float(first[j])))
            if second[j] != 0.0:
                out.append((j, float(second[j])))
    return out
