"""What every executor sends back for one combination, and the per-process market cache.

A :class:`RunRecord` carries only numbers (metrics and the daily returns) and text (params,
error), never strategy or backtrader objects, so it pickles cheaply from pool and Dask workers
and lands in the results store as it is.
"""

from __future__ import annotations

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
    # what the store keeps of ``returns``, computed where the run finished (RecordOptions):
    n_obs: int | None = None  # returns summarised (None: the store summarises ``returns``)
    moments: bytes | None = None  # the store's moments row (``store.run_moments``), or None
    unit_sum: np.ndarray | None = None  # Σ unit deviations of ``unit_runs`` runs of a pass,
    unit_runs: int = 0  # carried by the pass's last record (the mean correlation adds them)
    pass_end: bool = True  # False: more records of this pass follow (store them together)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def summarised(self) -> bool:
        """The run was summarised where it finished (the store reads no ``returns``)."""
        return self.n_obs is not None


@dataclass(frozen=True)
class RecordOptions:
    """How runs are summarised where they finish (a worker, or the sweep's own process), so
    that a record carries a few hundred bytes instead of its daily returns: the moments row of
    ``blocks`` blocks and one sum of unit deviations per pass. ``keep_returns``: the returns are
    sent too (``store_returns: all``)."""

    blocks: int
    keep_returns: bool = False


class RunIds:
    """A set of run ids (20 hex digits) in 10 bytes each: sorted arrays of the first 16 digits
    and of the last 4, searched by bisection. What a resumed sweep skips, handed to every
    worker: 10 MB for a million runs, where a Python set of strings takes about 100 MB."""

    def __init__(self, hi: np.ndarray | None = None, lo: np.ndarray | None = None):
        hi = np.zeros(0, np.uint64) if hi is None else np.asarray(hi, np.uint64)
        lo = np.zeros(0, np.uint16) if lo is None else np.asarray(lo, np.uint16)
        order = np.lexsort((lo, hi))
        self._hi, self._lo = hi[order], lo[order]

    @classmethod
    def from_bytes(cls, blobs: bytes) -> RunIds:
        """From concatenated 10-byte ids (the store's ``run_id`` column)."""
        a = np.frombuffer(blobs, dtype=[("hi", ">u8"), ("lo", ">u2")])
        return cls(a["hi"].astype(np.uint64), a["lo"].astype(np.uint16))

    @classmethod
    def concat(cls, parts: list[RunIds]) -> RunIds:
        if not parts:
            return cls()
        return cls(np.concatenate([p._hi for p in parts]), np.concatenate([p._lo for p in parts]))

    def __contains__(self, run_id: object) -> bool:
        if not isinstance(run_id, str) or len(run_id) != 20:
            return False
        hi, lo = np.uint64(int(run_id[:16], 16)), np.uint16(int(run_id[16:], 16))
        a, b = np.searchsorted(self._hi, hi, "left"), np.searchsorted(self._hi, hi, "right")
        return bool((self._lo[a:b] == lo).any())

    def __len__(self) -> int:
        return len(self._hi)

    def __iter__(self):
        for hi, lo in zip(self._hi.tolist(), self._lo.tolist(), strict=True):
            yield f"{hi:016x}{lo:04x}"


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
