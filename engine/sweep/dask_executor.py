"""Sweeps on a Dask cluster: event-driven batches (``--executor dask``) and fast-path chunks
(``--executor vectorised --scheduler ADDRESS``).

Imported only for a Dask sweep (``engine.errors.require_extra`` names the ``dask`` extra when
``distributed`` is missing). ``--scheduler local`` starts a ``LocalCluster`` for the sweep
(``--workers`` single-threaded processes on loopback, any free port) and closes it at the end.

A worker plugin (the Dask counterpart of the pool initializer) installs what the sweep's tasks
need once in every worker process, including workers that join or are restarted later, and is
unregistered when the sweep ends. At most two tasks per worker thread are in flight and records
are yielded as each task finishes; when the sweep stops early (an error, Ctrl-C) the tasks still
in flight are cancelled.

* Event-driven: tasks are the same batches of :class:`~engine.sweep.pool.Task` that the local
  pool runs, executed by the same ``run_batch``, so a failing combination comes back as a failed
  record; a task lost with its worker (the scheduler reports ``KilledWorker`` after its retries)
  is recorded as failed for each of its combinations.
* Fast path: the plugin holds the pickled plan, the market and the ids already stored
  (:func:`~engine.sweep.fastpool.fast_state`); the parent only enumerates the grid
  (:func:`~engine.sweep.fastpool.assignments`) and submits chunks of ``(index, values)``, which
  workers turn into configs and run through ``run_fast`` (``fastpool.run_fast_chunk``): the
  records are the single-process fast path's. A chunk lost with its worker (after the
  scheduler's retries) or with the scheduler ends the sweep with an EngineError: the runs
  stored so far stay and ``--resume`` runs the rest.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import pickle
import signal
import threading
import time
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager

from volbacktest.engine.errors import EngineError, require_extra

from .fastpool import assignments, fast_state, run_fast_chunk
from .pool import (
    IN_FLIGHT_PER_WORKER,
    PRELOAD_MODULES,
    Task,
    failed_record,
    init_worker,
    run_batch,
)
from .records import RecordOptions, RunRecord
from .spec import SweepPlan

log = logging.getLogger(__name__)

EXECUTOR = "dask"
LOCAL = "local"  # --scheduler local: a LocalCluster started for the sweep
CONNECT_TIMEOUT_S = 20

_FAST: dict[str, dict] = {}  # a worker's fast-path sweeps by tag (installed by the plugin)


def _plugin(setup: Callable, *args, teardown: Callable | None = None):
    distributed = require_extra("distributed", "dask")

    class SweepPreload(distributed.WorkerPlugin):
        """Installs what a sweep's tasks need once in every worker process."""

        def setup(self, worker) -> None:
            setup(*args)

        def teardown(self, worker) -> None:
            if teardown is not None:
                teardown()

    return SweepPreload()


@contextmanager
def _installed(client, plugin, name: str) -> Iterator[None]:
    try:
        client.register_plugin(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - raised by a worker: reported with the fix
        log.debug("registering %s failed", name, exc_info=True)
        raise EngineError(
            f"the Dask workers could not set up the sweep ({type(exc).__name__}: {exc}); every "
            "worker needs volbacktest installed, in the version this sweep runs"
        ) from None
    try:
        yield
    finally:
        try:
            client.unregister_worker_plugin(name)
        except Exception:  # noqa: BLE001 - a lost cluster has nothing left to clean
            log.debug("could not unregister %s", name, exc_info=True)


def _install_fast(tag: str, *state_args) -> None:
    _FAST[tag] = fast_state(*state_args)


def _forget_fast(tag: str) -> None:
    _FAST.pop(tag, None)


def fast_chunk(tag: str, items: list[tuple[int, dict]]) -> list[RunRecord]:
    """A fast-path chunk on a Dask worker, with the state the sweep's plugin installed."""
    return run_fast_chunk(items, _FAST[tag])


def connect(scheduler: str):
    """A ``distributed.Client`` for ``scheduler``, or an EngineError naming the fix."""
    distributed = require_extra("distributed", "dask")
    try:
        return distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EngineError(
            f"could not reach the Dask scheduler at {scheduler!r} ({exc}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, use --scheduler local "
            "(a cluster on this machine), or --executor local"
        ) from None


@contextmanager
def local_cluster(workers: int | None) -> Iterator[str]:
    """The address of a LocalCluster of ``workers`` (default: the CPU count) single-threaded
    processes, started for the block and closed after it (loopback only, any free port for the
    scheduler and its dashboard; the sweep modules imported as each worker starts)."""
    distributed = require_extra("distributed", "dask")
    import dask  # installed with distributed

    n = workers or os.cpu_count() or 1
    chatty = logging.getLogger("distributed")  # its INFO lines reach the CLI's root handler
    level = chatty.level
    chatty.setLevel(max(level, logging.WARNING))
    with contextlib.ExitStack() as stack:
        stack.callback(chatty.setLevel, level)
        start = stack.enter_context(contextlib.ExitStack())
        # glibc keeps freed heap for reuse without MALLOC_TRIM_THRESHOLD_ (Dask sets 64 KiB),
        # which also fixes the mmap threshold: each chunk's large temporaries would be mapped
        # and faulted in afresh (about a fifth more worker CPU per run, measured)
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        start.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": environ}))
        if threading.current_thread() is threading.main_thread():
            # worker processes spawned now inherit SIG_IGN: Ctrl-C is this process's to handle
            # (cancel, close the cluster), not a traceback from every worker
            start.callback(
                signal.signal, signal.SIGINT, signal.signal(signal.SIGINT, signal.SIG_IGN)
            )
        cluster = stack.enter_context(
            distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address=None,
                preload=[*PRELOAD_MODULES, __name__],  # imported as workers start
            )
        )
        start.close()
        log.info("started a local Dask cluster of %d workers at %s", n, cluster.scheduler_address)
        yield cluster.scheduler_address


def _streamed(client, jobs: Iterator, submit: Callable, cap: int) -> Iterator[tuple]:
    """Submit ``jobs`` with at most ``cap`` in flight; yield ``(job, future)`` as each finishes;
    whatever is still in flight when the consumer stops (an error, Ctrl-C) is cancelled."""
    distributed = require_extra("distributed", "dask")
    owners: dict = {}

    def add(job):
        fut = submit(job)
        owners[fut.key] = (job, fut)
        return fut

    first = [add(job) for job in itertools.islice(jobs, cap)]
    if not first:
        return
    pending = distributed.as_completed(first, loop=client.loop)  # no default client
    try:
        for fut in pending:
            job, _ = owners.pop(fut.key)
            yield job, fut
            fut.release()
            nxt = next(jobs, None)
            if nxt is not None:
                pending.add(add(nxt))
    finally:
        if owners:
            client.cancel([fut for _, fut in owners.values()])


def _cap(client) -> int:
    threads = sum(client.nthreads().values())
    if not threads:
        log.warning("the Dask cluster has no workers yet: tasks wait until one joins")
    return (threads or 1) * IN_FLIGHT_PER_WORKER


def run_dask(
    batches_in: Iterable[list[Task]], *, scheduler: str, preload: list | None = None
) -> Iterator[RunRecord]:
    """Run batches of tasks on the Dask cluster at ``scheduler``; yield records as they finish."""
    client = connect(scheduler)
    tag = uuid.uuid4().hex[:8]

    def submit(batch: list[Task]):
        key = f"volbt-batch-{tag}-{batch[0].run_id}"
        return client.submit(run_batch, batch, EXECUTOR, key=key, pure=False)

    try:
        with _installed(client, _plugin(init_worker, list(preload or [])), f"volbt-market-{tag}"):
            for batch, fut in _streamed(client, iter(batches_in), submit, _cap(client)):
                t0 = time.perf_counter()
                try:
                    records = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: recorded as failures
                    log.debug("a batch failed on the cluster", exc_info=True)
                    error = f"{type(exc).__name__}: {exc}"
                    records = [
                        failed_record(t, error, "the Dask task failed", t0, EXECUTOR) for t in batch
                    ]
                yield from records
    finally:
        client.close()


def run_dask_fast(
    plan: SweepPlan,
    *,
    overrides: Mapping | None,
    segment: str,
    done: Container[str],
    chunk_size: int,
    scheduler: str,
    preload: list,
    summary: RecordOptions | None = None,
) -> Iterator[RunRecord]:
    """Yield the fast-path records of every combination not in ``done``, chunk by chunk, from
    the Dask cluster at ``scheduler`` (the counterpart of ``fastpool.run_fast_parallel``)."""
    distributed = require_extra("distributed", "dask")
    lost = (distributed.KilledWorker, distributed.CancelledError, distributed.comm.CommClosedError)
    client = connect(scheduler)
    tag = uuid.uuid4().hex[:8]
    # done: the store's RunIds (10 bytes a run), shipped once to every worker
    state = (preload, pickle.dumps(plan), dict(overrides or {}), segment, done, summary)
    plugin = _plugin(_install_fast, tag, *state, teardown=functools.partial(_forget_fast, tag))
    source = assignments(plan, overrides)
    chunks = iter(lambda: list(itertools.islice(source, chunk_size)), [])

    def submit(chunk: list[tuple[int, dict]]):
        key = f"volbt-chunk-{tag}-{chunk[0][0]}"
        return client.submit(fast_chunk, tag, chunk, key=key, pure=False)

    try:
        with _installed(client, plugin, f"volbt-fast-{tag}"):
            for chunk, fut in _streamed(client, chunks, submit, _cap(client)):
                try:
                    records = fut.result()
                except lost as exc:
                    raise EngineError(
                        f"the Dask cluster at {scheduler} lost the fast-path chunk of runs "
                        f"{chunk[0][0]}..{chunk[-1][0]} ({type(exc).__name__}: {exc}); the runs "
                        "stored so far are kept: rerun with --resume, or with a smaller "
                        "sweep.chunk_size (a worker out of memory?)"
                    ) from None
                yield from records
    finally:
        client.close()
