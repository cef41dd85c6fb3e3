"""Trade-level analysis: round trips matched first-in first-out from a run's fills.

Each fill of ``transactions.csv`` either opens a lot or closes (part of) the oldest open lots of
the same symbol on the other side (FIFO). Every (lot, closing fill) match is one round trip with
its entry and exit dates and prices, size, holding period, P&L, return and the maximum adverse
and favourable excursions (MAE/MFE) of the closes in between.

Costs are booked as the ledger books them, so that the round trips reconcile with the equity:

* slippage is already inside the fill prices (the broker fills at ``p (1 ± slippage)``);
* commission is charged per share of the fill that paid it: a round trip carries its share of
  the entry fill's commission and of the exit fill's commission, and an open lot carries its
  share of the entry commission in its cost.

Hence ``sum(round-trip P&L) + unrealised P&L of the open lots = final equity − initial cash``
(:func:`reconcile`). pyfolio's ``round_trips`` is not used: it expands every position share by
share and fails on fractional or very large positions (MemoryError on the embedded VRatio run).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.engine.execution.metrics import finite_or_none
from volbacktest.engine.execution.result import BacktestResult

ROUND_TRIP_COLUMNS = (
    "symbol",
    "side",
    "entry_date",
    "exit_date",
    "entry_price",
    "exit_price",
    "size",
    "bars_held",
    "days_held",
    "commission",
    "pnl",
    "return",
    "mae",
    "mfe",
)
# The trade statistics of a run, in metrics.json order.
TRADE_METRICS = (
    "round_trips",
    "hit_rate",
    "average_win",
    "average_loss",
    "profit_factor",
    "expectancy",
    "average_return",
    "realised_pnl",
    "unrealised_pnl",
)
_DUST = 1e-9  # a lot (or fill remainder) below this fraction of its fill's size is closed


@dataclass
class _Lot:
    bar: int
    size: float  # signed: > 0 long, < 0 short
    price: float
    commission_per_share: float


@dataclass(frozen=True)
class RoundTrips:
    """The matched round trips, the lots still open at the end and their unrealised P&L."""

    trips: pd.DataFrame
    open_lots: pd.DataFrame
    unrealised_pnl: float


def _prices(result: BacktestResult) -> pd.DataFrame:
    """Each asset's close on the bars it is held (value / shares), NaN when flat."""
    held = result.holdings.reindex(columns=result.positions.columns.drop("cash"))
    with np.errstate(divide="ignore", invalid="ignore"):
        px = result.positions.drop(columns="cash") / held.where(held != 0)
    return px


def _excursions(path: np.ndarray, entry: float, exit_: float, side: float) -> tuple[float, float]:
    moves = side * (np.append(path[np.isfinite(path)], exit_) / entry - 1.0)
    return float(min(moves.min(), 0.0)), float(max(moves.max(), 0.0))


def no_round_trips() -> RoundTrips:
    """An empty table (the runs whose trades are contracts: their ``trades.csv`` lists each)."""
    return RoundTrips(pd.DataFrame(columns=list(ROUND_TRIP_COLUMNS)), pd.DataFrame(), 0.0)


def round_trips(result: BacktestResult) -> RoundTrips:
    """FIFO round trips of ``result``'s fills (see the module docstring for the cost booking)."""
    cal = result.equity.index
    px = _prices(result)
    tx = result.transactions
    rows: list[dict] = []
    open_rows: list[dict] = []
    unrealised = 0.0
    for symbol, fills in tx.groupby("symbol", sort=True):
        path = px[symbol].to_numpy(dtype=float)
        lots: deque[_Lot] = deque()
        bars = cal.get_indexer(pd.DatetimeIndex(fills["date"]))
        for bar, size, price, commission in zip(
            bars,
            fills["size"].to_numpy(float),
            fills["price"].to_numpy(float),
            fills["commission"].to_numpy(float),
            strict=True,
        ):
            if size == 0:
                continue
            per_share = commission / abs(size)
            qty = size
            while lots and abs(qty) > _DUST * abs(size) and np.sign(lots[0].size) != np.sign(qty):
                lot = lots[0]
                side = float(np.sign(lot.size))
                m = min(abs(qty), abs(lot.size))
                if abs(lot.size) - m <= _DUST * abs(lot.size):
                    m = abs(lot.size)
                cost = m * (lot.price + lot.commission_per_share)
                pnl = side * m * (price - lot.price) - m * (lot.commission_per_share + per_share)
                mae, mfe = _excursions(path[lot.bar : bar + 1], lot.price, price, side)
                rows.append(
                    {
                        "symbol": symbol,
                        "side": "long" if side > 0 else "short",
                        "entry_date": cal[lot.bar],
                        "exit_date": cal[bar],
                        "entry_price": lot.price,
                        "exit_price": price,
                        "size": m,
                        "bars_held": int(bar - lot.bar),
                        "days_held": int((cal[bar] - cal[lot.bar]).days),
                        "commission": m * (lot.commission_per_share + per_share),
                        "pnl": pnl,
                        "return": pnl / cost if cost else np.nan,
                        "mae": mae,
                        "mfe": mfe,
                    }
                )
                lot.size -= side * m
                qty += side * m
                if lot.size == 0 or abs(lot.size) <= _DUST * m:
                    lots.popleft()
            if abs(qty) > _DUST * abs(size):
                lots.append(_Lot(int(bar), float(qty), float(price), per_share))
        last = float(path[-1]) if np.isfinite(path[-1]) else np.nan
        for lot in lots:
            pnl = lot.size * (last - lot.price) - abs(lot.size) * lot.commission_per_share
            unrealised += pnl
            open_rows.append(
                {
                    "symbol": symbol,
                    "entry_date": cal[lot.bar],
                    "entry_price": lot.price,
                    "size": lot.size,
                    "last_price": last,
                    "unrealised_pnl": pnl,
                }
            )
    trips = pd.DataFrame(rows, columns=list(ROUND_TRIP_COLUMNS))
    trips = trips.sort_values(["exit_date", "entry_date", "symbol"], kind="stable")
    return RoundTrips(trips.reset_index(drop=True), pd.DataFrame(open_rows), unrealised)


def trade_metrics(rt: RoundTrips) -> dict:
    """Hit rate, average win and loss, profit factor, expectancy (mean P&L per round trip), the
    mean round-trip return, realised and unrealised P&L (in the account currency)."""
    pnl = rt.trips["pnl"].to_numpy(dtype=float)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n = len(pnl)
    return {
        "round_trips": n,
        "hit_rate": finite_or_none(len(wins) / n) if n else None,
        "average_win": finite_or_none(wins.mean()) if len(wins) else None,
        "average_loss": finite_or_none(losses.mean()) if len(losses) else None,
        "profit_factor": finite_or_none(wins.sum() / -losses.sum()) if len(losses) else None,
        "expectancy": finite_or_none(pnl.mean()) if n else None,
        "average_return": finite_or_none(rt.trips["return"].mean()) if n else None,
        "realised_pnl": finite_or_none(pnl.sum()),
        "unrealised_pnl": finite_or_none(rt.unrealised_pnl),
    }


def reconcile(result: BacktestResult, rt: RoundTrips) -> float:
    """realised + unrealised − (final equity − initial cash): zero up to rounding."""
    total = float(result.equity.iloc[-1]) - result.config.execution.initial_cash
    return float(rt.trips["pnl"].sum()) + rt.unrealised_pnl - total
