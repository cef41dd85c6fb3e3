"""The vectorised executor: combinations in chunks through one array simulation each.

Combinations are grouped by everything except their strategy parameters (the market and the
execution settings the simulator takes once per pass); each group's chunk is one
``decision_stack`` + ``simulate`` + ``grid_metrics`` pass, and one record per run is yielded as
soon as its chunk is done. Memory is bounded by the chunk size, not by the number of runs.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterable, Iterator

import numpy as np

from volbacktest.engine.calculators.overfitting import unit_deviations
from volbacktest.engine.calculators.rolling import shared_windows
from volbacktest.engine.execution.eventdriven import run_key
from volbacktest.engine.execution.instruments import refuse_fast_path
from volbacktest.engine.execution.vectorised import MarketArrays, simulate

from .metrics import grid_metrics, metric_rows
from .records import (
    STATUS_FAILED,
    STATUS_OK,
    MarketCache,
    RecordOptions,
    RunRecord,
    calendar_ns,
)
from .spec import Combo
from .store import run_moments

log = logging.getLogger(__name__)

EXECUTOR = "vectorised"


def _failed(combo: Combo, exc: BaseException, elapsed: float = 0.0, segment: str = "") -> RunRecord:
    return RunRecord(
        run_id=combo.run_id,
        index=combo.index,
        params=combo.params,
        status=STATUS_FAILED,
        error=f"{type(exc).__name__}: {exc}",
        detail=traceback.format_exc(),
        executor=EXECUTOR,
        elapsed_s=elapsed,
        segment=segment,
    )


def _run_group(
    combos: list[Combo],
    markets: MarketCache,
    segment: str,
    arrays_by_key: dict,
    summary: RecordOptions | None = None,
) -> Iterator[RunRecord]:
    t0 = time.perf_counter()
    cfg0 = combos[0].config
    key = run_key(combos[0].config)
    try:
        refuse_fast_path(cfg0)  # futures and options run on the event-driven pool only
        arrays = arrays_by_key.get(key)
        if arrays is None:
            arrays = MarketArrays.from_market(markets.get(cfg0), cfg0.plan)
            arrays_by_key[key] = arrays
    except Exception as exc:  # noqa: BLE001 - every combination of the group is recorded failed
        log.debug("market for %s failed", cfg0.name, exc_info=True)
        for c in combos:
            yield _failed(c, exc, segment=segment)
        return
    good: list[Combo] = []
    stack = []
    failures = []
    with shared_windows():  # runs differing only in, e.g., a band share their moving averages
        for c in combos:
            try:
                stack.append(arrays.weights(c.config.plan))
                good.append(c)
            except Exception as exc:  # noqa: BLE001 - a failing combination is recorded
                log.debug("decision of %s failed", c.run_id, exc_info=True)
                failures.append(_failed(c, exc, segment=segment))
    yield from failures
    if not good:
        return
    weights = np.stack(stack)
    del stack
    sim = simulate(weights, arrays, cfg0.execution)
    del weights
    rows = metric_rows(grid_metrics(sim))
    cal = calendar_ns(arrays.calendar)
    stored = _store_fields(sim.returns, cal, summary)
    each = (time.perf_counter() - t0) / len(combos)
    for j, c in enumerate(good):
        detail = ""
        if sim.rejected[j]:
            detail = f"{int(sim.rejected[j])} opening orders rejected for lack of cash"
        yield RunRecord(
            run_id=c.run_id,
            index=c.index,
            params=c.params,
            status=STATUS_OK,
            metrics=rows[j],
            detail=detail,
            executor=EXECUTOR,
            elapsed_s=each,
            segment=segment,
            **stored[j],
        )


def _store_fields(returns: np.ndarray, cal: np.ndarray, summary: RecordOptions | None):
    """Per run, the record fields the store reads: its daily returns (no ``summary``, or
    ``keep_returns``), else its moments row, and on the pass's last record the (count, sum) of
    unit deviations of the runs that have moments (what the store would compute from each
    run's returns)."""
    n = returns.shape[1]
    out = []
    for j in range(n):
        f = {}
        if summary is None or summary.keep_returns:
            f.update(returns=np.ascontiguousarray(returns[:, j]), calendar=cal)
        if summary is not None:
            f.update(
                n_obs=len(cal),
                moments=run_moments(returns[:, j], summary.blocks),
                pass_end=j == n - 1,  # the last carries the unit sum: the pass is stored whole
            )
        out.append(f)
    kept = [j for j, f in enumerate(out) if f.get("moments") is not None]
    if kept:
        out[-1].update(unit_runs=len(kept), unit_sum=unit_deviations(returns[:, kept]).sum(axis=1))
    return out


def run_fast(
    combos: Iterable[Combo],
    *,
    chunk_size: int = 256,
    markets: MarketCache | None = None,
    segment: str = "",
    summary: RecordOptions | None = None,
) -> Iterator[RunRecord]:
    """Yield one :class:`RunRecord` per combination, chunk by chunk (``summary``: records
    carry the store's summaries instead of their returns, see :class:`RecordOptions`)."""
    markets = markets or MarketCache()
    arrays_by_key: dict = {}  # decision inputs and prices per market, computed once
    groups: dict[str, list[Combo]] = {}
    pending = 0
    for combo in combos:
        groups.setdefault(run_key(combo.config), []).append(combo)
        pending += 1
        if pending >= chunk_size:
            for key in list(groups):
                yield from _run_group(groups.pop(key), markets, segment, arrays_by_key, summary)
            pending = 0
    for key in list(groups):
        yield from _run_group(groups.pop(key), markets, segment, arrays_by_key, summary)
