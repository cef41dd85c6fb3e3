"""The sizing rule that turns target weights into orders: pure, shared by every executor.

At a fill bar, with fill prices ``p`` (the bar's close, or its open for ``next_open``):

1. equity ``V = cash + Σ n_i p_i`` (holdings marked at the fill prices, before trading);
2. target shares ``n*_i = w_i V / p_i`` (weights scaled down if gross exposure exceeds the cap);
3. sells (and short increases) are executed first, at ``p (1 − slippage)``, paying commission;
4. buys are executed at ``p (1 + slippage)`` plus commission; if their total cost exceeds the
   cash available after the sells, every buy is scaled by the same factor so cash never goes
   negative (this is what keeps a 100 % target from being rejected for one ulp of margin);
5. integer sizing rounds every order toward zero to whole lots after that scaling.

Commission is ``|shares| × (price × percent + per_share)`` on the slipped price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CASH_SAFETY = 1.0 - 1e-12  # keeps float rounding from pushing cash below zero after buys


@dataclass(frozen=True)
class CostModel:
    commission_pct: float = 0.0
    commission_per_share: float = 0.0
    slippage_pct: float = 0.0

    def buy_cost_per_share(self, price: np.ndarray) -> np.ndarray:
        fill = price * (1.0 + self.slippage_pct)
        return fill * (1.0 + self.commission_pct) + self.commission_per_share

    def sell_proceeds_per_share(self, price: np.ndarray) -> np.ndarray:
        fill = price * (1.0 - self.slippage_pct)
        return fill * (1.0 - self.commission_pct) - self.commission_per_share


def order_sizes(
    weights: np.ndarray,
    holdings: np.ndarray,
    cash: float,
    prices: np.ndarray,
    costs: CostModel,
    *,
    integer_lot: int | None = None,
    max_gross_leverage: float = 1.0,
) -> np.ndarray:
    """Signed share quantities to trade so holdings move to the target weights.

    ``weights`` (NaN treated as 0), ``holdings`` and ``prices`` are 1-D arrays over the assets.
    Returns an array of the same shape: positive = buy, negative = sell.
    """
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64))
    n = np.asarray(holdings, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    gross = np.abs(w).sum()
    if gross > max_gross_leverage:
        w = w * (max_gross_leverage / gross)
    equity = cash + float(n @ p)
    target = w * equity / p
    delta = target - n
    if integer_lot:
        delta = np.trunc(delta / integer_lot) * integer_lot
    buys = delta > 0
    if buys.any():
        sells = ~buys
        cash_after_sells = cash + float(
            (-delta[sells] * costs.sell_proceeds_per_share(p[sells])).sum()
        )
        buy_cost = float((delta[buys] * costs.buy_cost_per_share(p[buys])).sum())
        if buy_cost > cash_after_sells * CASH_SAFETY:
            scale = max(cash_after_sells, 0.0) * CASH_SAFETY / buy_cost
            scaled = delta[buys] * scale
            if integer_lot:
                scaled = np.floor(scaled / integer_lot) * integer_lot
            delta = delta.copy()
            delta[buys] = scaled
    return delta
