"""Event-driven sweeps on an existing Dask cluster (``--executor dask --scheduler ADDRESS``).

Imported only for that executor (``engine.errors.require_extra`` names the ``dask`` extra when
``distributed`` is missing). A worker plugin (the Dask counterpart of the pool initializer)
installs the sweep's market in every worker process once; tasks are the same batches of
:class:`~engine.sweep.pool.Task` that the local pool runs, executed by the same ``run_batch``,
so a failing combination comes back as a failed record. A task lost with its worker (the
scheduler reports ``KilledWorker`` after its retries) is recorded as failed for each of its
combinations. At most two batches per worker thread are in flight; records are yielded as each
batch finishes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator

from volbacktest.engine.errors import EngineError, require_extra

from .pool import IN_FLIGHT_PER_WORKER, Task, failed_record, init_worker, run_batch
from .records import RunRecord

log = logging.getLogger(__name__)

EXECUTOR = "dask"
CONNECT_TIMEOUT_S = 20


def _plugin(preload: list):
    distributed = require_extra("distributed", "dask")

    class MarketPreload(distributed.WorkerPlugin):
        """Installs the sweep's market(s) once in every worker process."""

        def __init__(self, preload: list):
            self.preload = preload

        def setup(self, worker) -> None:
            init_worker(self.preload)

    return MarketPreload(preload)


def connect(scheduler: str):
    """A ``distributed.Client`` for ``scheduler``, or an EngineError naming the fix."""
    distributed = require_extra("distributed", "dask")
    try:
        return distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EngineError(
            f"could not reach the Dask scheduler at {scheduler!r} ({exc}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or use --executor local"
        ) from None


def run_dask(
    batches_in: Iterable[list[Task]], *, scheduler: str, preload: list | None = None
) -> Iterator[RunRecord]:
    """Run batches of tasks on the Dask cluster at ``scheduler``; yield records as they finish."""
    distributed = require_extra("distributed", "dask")
    client = connect(scheduler)
    sweep_tag = uuid.uuid4().hex[:8]
    try:
        client.register_plugin(_plugin(list(preload or [])), name=f"volbt-market-{sweep_tag}")
        threads = sum(client.nthreads().values()) or 1
        cap = threads * IN_FLIGHT_PER_WORKER
        source = iter(batches_in)
        owners: dict[str, list[Task]] = {}

        def submit(batch: list[Task]):
            key = f"volbt-batch-{sweep_tag}-{batch[0].run_id}"
            fut = client.submit(run_batch, batch, EXECUTOR, key=key, pure=False)
            owners[fut.key] = batch
            return fut

        first = []
        for batch in source:
            first.append(submit(batch))
            if len(first) >= cap:
                break
        if not first:
            return
        pending = distributed.as_completed(first, loop=client.loop)
        for fut in pending:
            batch = owners.pop(fut.key)
            t0 = time.perf_counter()
            try:
                records = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: recorded as failures
                log.debug("a batch failed on the cluster", exc_info=True)
                error = f"{type(exc).__name__}: {exc}"
                records = [
                    failed_record(t, error, "the Dask task failed", t0, EXECUTOR) for t in batch
                ]
            fut.release()
            yield from records
            nxt = next(source, None)
            if nxt is not None:
                pending.add(submit(nxt))
    finally:
        client.close()
