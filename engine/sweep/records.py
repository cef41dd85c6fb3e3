"""What every executor sends back for one combination, and the per-process market cache.

A :class:`RunRecord` carries only numbers (metrics and the daily returns) and text (params,
error), never strategy or backtrader objects, so it pickles cheaply from pool and Dask workers
and lands in the results store as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from volbacktest.engine.execution.eventdriven import run_key
from volbacktest.engine.execution.instruments import trades_contracts
from volbacktest.engine.inputs.config import BacktestConfig
from volbacktest.engine.inputs.market import Market, market_for

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    index: int  # position of the combination in the sweep
    params: dict  # swept values of this combination (axis name -> value)
    status: str  # STATUS_OK or STATUS_FAILED
    metrics: dict = field(default_factory=dict)  # METRIC_NAMES -> float | None
    returns: np.ndarray | None = None  # daily returns on ``calendar``
    calendar: np.ndarray | None = None  # int64 ns dates of ``returns``
    error: str = ""  # one line: exception type and message
    detail: str = ""  # traceback or notes (warnings raised during the run)
    executor: str = ""
    elapsed_s: float = 0.0
    segment: str = ""  # walk-forward window label, "" for a plain sweep

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def params_json(self) -> str:
        return json.dumps(self.params, default=str)  # in the order of the sweep axes


def params_of_row(row) -> dict:
    """The swept values of a store row (columns ``p.<name>``) as plain Python values."""
    return {
        k[2:]: (v.item() if isinstance(v, np.generic) else v)
        for k, v in row.items()
        if k.startswith("p.")
    }


def calendar_ns(index) -> np.ndarray:
    """A DatetimeIndex as int64 nanoseconds (what the store keeps)."""
    return np.asarray(index.asi8, dtype=np.int64)


class MarketCache:
    """Markets prepared in this process, keyed by ``run_key(cfg, broker=False)`` (a sweep
    usually needs one; walk-forward windows and swept data settings need a few)."""

    def __init__(self, max_items: int = 16):
        self._items: dict[str, Market] = {}
        self._max = max_items

    def get(self, cfg: BacktestConfig) -> Market | None:
        if trades_contracts(cfg):
            return None  # the futures and options executors read their own markets
        key = run_key(cfg, broker=False)
        market = self._items.get(key)
        if market is None:
            if len(self._items) >= self._max:
                self._items.pop(next(iter(self._items)))
            log.debug("preparing market for %s", key)
            market = market_for(cfg)
            self._items[key] = market
        return market

    def clear(self) -> None:
        self._items.clear()

    def put(self, cfg: BacktestConfig, market: Market) -> None:
        self._items[run_key(cfg, broker=False)] = market

    def __len__(self) -> int:
        return len(self._items)
