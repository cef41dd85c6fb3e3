"""The fast path on several cores: chunks of a grid through ``run_fast`` in a process pool.

The parent only enumerates the grid (assignments kept by the constraints, with their sweep
index) and sends chunks of ``(index, values)``; each worker holds the pickled plan and the
market (installed once by the pool initializer, as for the event-driven pool), builds the
chunk's configs itself, skips runs already stored (the resume set is handed over once), and
sends back the chunk's :class:`~engine.sweep.records.RunRecord` objects, which the parent
streams into the store as each chunk finishes. At most two chunks per worker are in flight, so
memory does not grow with the grid. Records are the ones the single-process fast path makes
(``tests/test_sweep.py`` compares the two stores).

Building a validated config per combination (copy, hash, pydantic) costs about as much as
simulating it on the fast path, so it is done in the workers, not in the parent. Plans that
de-duplicate random draws by run id (``sweep.random.params``) are enumerated in the parent.

A worker that dies ends the sweep with an :class:`~engine.errors.EngineError`; every chunk
stored before stays, and ``--resume`` runs the rest.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from collections.abc import Container, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from volbacktest.engine.errors import EngineError

from .fast import run_fast
from .pool import _MARKETS as WORKER_MARKETS
from .pool import IN_FLIGHT_PER_WORKER, _safe_start_method, default_start_method, init_worker
from .records import RecordOptions, RunRecord
from .spec import Combo, SweepPlan

_STATE: dict = {}  # a worker's plan, overrides, segment and the ids already stored


def fast_state(
    preload: list, plan_blob: bytes, overrides, segment: str, done, summary=None
) -> dict:
    """What a worker holds for one chunked sweep (its markets go to the worker's cache)."""
    init_worker(preload)
    return dict(
        plan=pickle.loads(plan_blob),  # bytes pickled by this sweep's parent
        overrides=overrides,
        segment=segment,
        done=done,  # a RunIds (10 bytes a run) or any container of run ids
        summary=summary,  # RecordOptions: runs summarised here, not their returns sent back
    )


def init_fast_worker(
    preload: list, plan_blob: bytes, overrides, segment: str, done, summary=None
) -> None:
    _STATE.update(fast_state(preload, plan_blob, overrides, segment, done, summary))


def run_fast_chunk(items: list[tuple[int, dict]], state: dict | None = None) -> list[RunRecord]:
    """One chunk in a worker: configs built here, then one fast-path pass (``state``: a
    :func:`fast_state`, by default the one the pool initializer installed)."""
    state = _STATE if state is None else state
    plan: SweepPlan = state["plan"]
    done = state["done"]
    combos = []
    for index, values in items:
        rid, cfg = plan.config_for(values, state["overrides"])
        if rid not in done:
            combos.append(Combo(index, rid, dict(values), cfg))
    return list(
        run_fast(
            combos,
            chunk_size=len(items) or 1,
            markets=WORKER_MARKETS,
            segment=state["segment"],
            summary=state.get("summary"),
        )
    )


def assignments(plan: SweepPlan, overrides) -> Iterator[tuple[int, dict]]:
    if plan.spec.random is not None and plan.spec.random.params:  # de-duplicated by run id
        for c in plan.iter_combos(overrides):
            yield c.index, c.params
        return
    index = 0
    for values in plan._assignments():
        if plan._keep(values):
            yield index, values
            index += 1


def run_fast_parallel(
    plan: SweepPlan,
    *,
    overrides: Mapping | None,
    segment: str,
    done: Container[str],
    workers: int,
    chunk_size: int,
    preload: list,
    start_method: str | None = None,
    summary: RecordOptions | None = None,
) -> Iterator[RunRecord]:
    """Yield the records of every combination not in ``done``, chunk by chunk."""
    method = _safe_start_method(start_method or default_start_method())
    ctx = multiprocessing.get_context(method)
    blob = pickle.dumps(plan)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=init_fast_worker,
        initargs=(preload, blob, dict(overrides or {}), segment, done, summary),
    )
    source = assignments(plan, overrides)
    in_flight = set()
    finished = False
    try:
        while True:
            while len(in_flight) < workers * IN_FLIGHT_PER_WORKER:
                chunk = list(itertools.islice(source, chunk_size))
                if not chunk:
                    break
                in_flight.add(pool.submit(run_fast_chunk, chunk))
            if not in_flight:
                finished = True
                return
            ready, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in ready:
                try:
                    records = fut.result()
                except BrokenProcessPool:
                    raise EngineError(
                        "a fast-path worker process died (out of memory?); the runs stored so "
                        "far are kept: rerun with --resume, or with fewer --workers or a "
                        "smaller sweep.chunk_size"
                    ) from None
                yield from records
    finally:
        pool.shutdown(wait=finished, cancel_futures=not finished)
