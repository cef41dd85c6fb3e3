"""Event-driven sweeps: backtrader runs of every combination in a spawn-safe process pool.

* Spawn-safe: tasks and initializer arguments are plain picklable data and workers rely on no
  inherited state, so every start method works (the tests run ``spawn`` and the default). On
  Linux the default is ``fork`` from a single-threaded parent (the worker modules are imported
  first and shared copy-on-write: the fastest start and about half the memory of ``spawn``);
  elsewhere, or when the parent runs threads, ``forkserver`` (worker modules preloaded in the
  server) or ``spawn``.
* The parent prepares the market once and the pool initializer hands it to every worker
  (a pickled ``inputs.market.Market``, well under a megabyte for 4,000 bars x 7 series).
* Combinations travel in batches of :class:`Task` (run id, swept values, the resolved config as a
  dict). A worker runs a batch through one :class:`~engine.sweep.batch.BatchRunner` (feeds
  preloaded once per worker and market, one broker per strategy; results identical to
  ``run_backtest``) and sends back :class:`~engine.sweep.records.RunRecord` objects: metrics and
  daily returns only, never strategy or backtrader objects.
* At most two batches per worker are in flight and records are yielded as each batch finishes:
  the parent's memory does not grow with the number of runs.
* A combination that raises is recorded as failed (error line and traceback) and the sweep goes
  on: a batch that fails is re-run one combination at a time through ``run_backtest``. A worker
  process that dies breaks the pool: the pool is restarted and the batches in flight are retried,
  then split into single runs; a run in flight during three breakdowns is recorded as failed.

``run_batch`` is also what Dask workers execute (``engine.sweep.dask_executor``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import importlib
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from volbacktest.engine.caches import CACHES
from volbacktest.engine.execution.batch import BatchRunner
from volbacktest.engine.execution.eventdriven import run_key
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.run.runner import run_backtest

from .metrics import numeric_metrics
from .records import STATUS_FAILED, STATUS_OK, MarketCache, RunRecord, calendar_ns
from .spec import Combo

log = logging.getLogger(__name__)

EXECUTOR = "local"
IN_FLIGHT_PER_WORKER = 2
DEFAULT_BATCH = 5  # strategies per backtrader pass: most of the shared-feed saving, and each
# strategy in a batch holds about 4 MB per 4,000 bars in its worker until the batch ends
MAX_ATTEMPTS = 3  # pool breakdowns a run may be in flight for before it is recorded failed
MAX_RUNNERS = 4  # preloaded feed sets kept per worker
PRELOAD_MODULES = [
    "volbacktest.engine.execution.batch",
    "volbacktest.engine.sweep.pool",
    "volbacktest.engine.run.runner",
    "empyrical",
]

_MARKETS = MarketCache()  # a worker's markets (installed by init_worker)
_RUNNERS: dict = CACHES.mapping("sweep.pool.runners")  # a worker's preloaded feed sets
CACHES.register("sweep.pool.markets", _MARKETS.clear)


@dataclass(frozen=True)
class Task:
    """One combination to run, as plain data (cheap to pickle to any worker)."""

    run_id: str
    index: int
    params: dict
    resolved: dict  # the combination's resolved config mapping
    segment: str = ""
    attempts: int = 0

    @classmethod
    def of(cls, combo: Combo, segment: str = "") -> Task:
        raw = combo.config.resolved()
        raw["name"] = combo.config.name
        return cls(combo.run_id, combo.index, combo.params, raw, segment)

    def retried(self) -> Task:
        return Task(
            self.run_id, self.index, self.params, self.resolved, self.segment, self.attempts + 1
        )


def batches(combos: Iterable[Combo], size: int, segment: str = "") -> Iterator[list[Task]]:
    """Tasks in batches of combinations that share a market and execution settings."""
    open_batches: dict[str, list[Task]] = {}
    for combo in combos:
        key = run_key(combo.config)
        group = open_batches.setdefault(key, [])
        group.append(Task.of(combo, segment))
        if len(group) >= size:
            yield open_batches.pop(key)
    yield from open_batches.values()


# --------------------------------------------------------------------------- worker side
@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc keeps them after large temporaries, e.g. the
    synthetic market's generation or a batch's backtrader objects); a no-op elsewhere."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def init_worker(preload: list[tuple[dict, bytes | None]]) -> None:
    """Worker initializer: install the markets of ``preload`` — (resolved config, pickled
    Market or None to prepare it here) pairs."""

    cache = _MARKETS
    for raw, blob in preload:
        try:
            cfg = config_from_mapping(raw)
            if blob is None:
                cache.get(cfg)
            else:
                cache.put(cfg, pickle.loads(blob))  # bytes pickled by this sweep's parent
        except Exception:  # noqa: BLE001 - a market that fails here fails again in its runs
            log.debug("preloading a market failed; its runs will record the error", exc_info=True)
    release_free_memory()


def _runner(cfg):
    key = run_key(cfg)
    runner = _RUNNERS.get(key)
    if runner is None:
        if len(_RUNNERS) >= MAX_RUNNERS:
            _RUNNERS.pop(next(iter(_RUNNERS)))
        runner = BatchRunner(cfg, _MARKETS.get(cfg))
        _RUNNERS[key] = runner
    return runner


def _ok_record(task: Task, result, elapsed: float, executor: str) -> RunRecord:
    notes = list(result.problems)
    if result.metrics.get("look_ahead"):
        notes.append("same_close fills on the close the signal observed (look-ahead)")
    return RunRecord(
        run_id=task.run_id,
        index=task.index,
        params=task.params,
        status=STATUS_OK,
        metrics=numeric_metrics(result.metrics),
        returns=result.returns.to_numpy(dtype="float64"),
        calendar=calendar_ns(result.returns.index),
        detail="\n".join(notes),
        executor=executor,
        elapsed_s=elapsed,
        segment=task.segment,
    )


def failed_record(task: Task, error: str, detail: str, t0: float, executor: str = EXECUTOR):
    return RunRecord(
        run_id=task.run_id,
        index=task.index,
        params=task.params,
        status=STATUS_FAILED,
        error=error,
        detail=detail,
        executor=executor,
        elapsed_s=time.perf_counter() - t0,
        segment=task.segment,
    )


def run_task(task: Task, executor: str = EXECUTOR) -> RunRecord:
    """One combination through ``run_backtest``; never raises (failures become records)."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # problems are recorded in the result
            cfg = config_from_mapping(task.resolved)
            result = run_backtest(cfg, market=_MARKETS.get(cfg))
        return _ok_record(task, result, time.perf_counter() - t0, executor)
    except Exception as exc:  # noqa: BLE001 - a failing combination is recorded, the sweep goes on
        log.debug("run %s failed", task.run_id, exc_info=True)
        return failed_record(
            task, f"{type(exc).__name__}: {exc}", traceback.format_exc(), t0, executor
        )


def run_batch(tasks: list[Task], executor: str = EXECUTOR) -> list[RunRecord]:
    """A batch of combinations in one backtrader pass per market; never raises."""
    t0 = time.perf_counter()
    out: list[RunRecord] = []
    groups: dict[str, list] = {}
    for task in tasks:
        try:
            cfg = config_from_mapping(task.resolved)
        except Exception as exc:  # noqa: BLE001 - recorded as this combination's failure
            out.append(failed_record(task, f"{type(exc).__name__}: {exc}", "", t0, executor))
            continue
        groups.setdefault(run_key(cfg), []).append((task, cfg))
    for items in groups.values():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # problems are recorded in each result
                results = _runner(items[0][1]).run([cfg for _, cfg in items])
        except Exception:  # noqa: BLE001 - isolate the failing combination: one run each
            log.debug("batch failed; running its combinations one by one", exc_info=True)
            out.extend(run_task(task, executor) for task, _ in items)
            continue
        each = (time.perf_counter() - t0) / len(items)
        out.extend(
            _ok_record(task, res, each, executor)
            for (task, _), res in zip(items, results, strict=True)
        )
        del results
    release_free_memory()  # the batch's backtrader objects are garbage now: keep workers flat
    return out


# --------------------------------------------------------------------------- parent side
def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def default_start_method() -> str:
    """``fork`` on Linux (workers share the parent's imported modules: the fastest start and
    the smallest footprint, see bench/bench_sweep.py), else ``forkserver``, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _safe_start_method(method: str) -> str:
    """``fork`` only from a single-threaded parent (a thread holding a lock at fork time can
    deadlock the child); otherwise the fork server."""
    if method == "fork" and threading.active_count() > 1:
        fallback = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        log.info(
            "%d threads are running: starting workers with %s, not fork",
            threading.active_count(),
            fallback,
        )
        return fallback
    return method


class _LocalPool:
    """The process pool plus the bookkeeping to refill it and to survive a dead worker."""

    def __init__(self, batches_in, workers: int, preload: list, start_method: str):
        self.workers = workers
        self.preload = preload
        self.start_method = start_method
        self.source = iter(batches_in)
        self.exhausted = False
        self.retry: list[list[Task]] = []
        self.in_flight: dict[Future, list[Task]] = {}
        self.frozen = False
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        method = _safe_start_method(self.start_method)
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD_MODULES)
        elif method == "fork":
            for name in PRELOAD_MODULES:  # imported once here, shared by every forked worker
                importlib.import_module(name)
            gc.freeze()  # parent objects leave the collector: fewer copy-on-write pages
            self.frozen = True
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=init_worker,
            initargs=(self.preload,),
        )

    def _next_batch(self) -> list[Task] | None:
        if self.retry:
            return self.retry.pop()
        if not self.exhausted:
            batch = next(self.source, None)
            if batch is not None:
                return batch
            self.exhausted = True
        return None

    def fill(self) -> None:
        while len(self.in_flight) < self.workers * IN_FLIGHT_PER_WORKER:
            batch = self._next_batch()
            if batch is None:
                return
            self.in_flight[self.pool.submit(run_batch, batch)] = batch

    def collect(self) -> Iterator[RunRecord]:
        done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
        broken = False
        for fut in done:
            try:
                records = fut.result()
            except BrokenProcessPool:
                broken = True
                continue
            del self.in_flight[fut]
            yield from records
        if broken:
            yield from self._recover()

    def _recover(self) -> Iterator[RunRecord]:
        lost = list(self.in_flight.values())
        self.in_flight.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)  # a broken pool's threads end at once
        log.warning("a worker process died; restarting the pool (%d batches retried)", len(lost))
        for batch in lost:
            tasks = [t.retried() for t in batch]
            for t in tasks:
                if t.attempts >= MAX_ATTEMPTS:
                    yield failed_record(
                        t,
                        "WorkerDied: the worker process died while running this combination",
                        f"in flight during {t.attempts} pool breakdowns",
                        time.perf_counter(),
                    )
            alive = [t for t in tasks if t.attempts < MAX_ATTEMPTS]
            if len(alive) > 1 and alive[0].attempts >= 2:  # second breakdown: one by one
                self.retry.extend([t] for t in alive)
            elif alive:
                self.retry.append(alive)
        self.pool = self._new_pool()


def run_local(
    batches_in: Iterable[list[Task]],
    *,
    workers: int | None = None,
    preload: list | None = None,
    start_method: str | None = None,
) -> Iterator[RunRecord]:
    """Run batches of tasks in a process pool; yield each record as its batch finishes.

    ``preload``: (resolved config, pickled Market or None) pairs installed in every worker."""
    state = _LocalPool(
        batches_in,
        workers or default_workers(),
        list(preload or []),
        start_method or default_start_method(),
    )
    finished = False
    try:
        while True:
            state.fill()
            if not state.in_flight:
                finished = True
                return
            yield from state.collect()
    finally:
        state.pool.shutdown(wait=finished, cancel_futures=not finished)
        if state.frozen:
            gc.unfreeze()
