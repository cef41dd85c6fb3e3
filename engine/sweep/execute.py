"""Feed a sweep's combinations to one executor and stream the records into the store."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import pickle
import sys
import time
from collections.abc import Container, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

from volbacktest.engine.errors import ConfigError, MissingExtraError, require_extra

from .dask_executor import LOCAL, local_cluster, run_dask, run_dask_fast
from .fast import run_fast
from .fastpool import run_fast_parallel
from .pool import DEFAULT_BATCH, batches, run_local
from .records import MarketCache, RecordOptions, RunRecord
from .spec import SweepPlan
from .store import ResultsStore

log = logging.getLogger(__name__)

ExecutorName = Literal["vectorised", "local", "dask"]
COMMIT_EVERY_S = 1.0  # at most this long between commits of finished runs


@dataclass(frozen=True)
class ExecutorOptions:
    kind: ExecutorName = "vectorised"
    workers: int | None = None
    scheduler: str | None = None
    chunk_size: int = 256  # runs per vectorised pass
    batch_size: int = DEFAULT_BATCH  # runs per event-driven backtrader pass (pool and Dask)
    start_method: str | None = None  # pool: forkserver (POSIX) / spawn by default, or fork
    progress: bool = True

    def __post_init__(self):
        kinds = get_args(ExecutorName)
        if self.kind not in kinds:
            close = difflib.get_close_matches(str(self.kind), kinds, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"executor: invalid value {self.kind!r}{hint}; valid choices: {kinds}"
            )
        if self.kind == "dask" and not self.scheduler:
            raise ConfigError(
                "--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786) or "
                f"--scheduler {LOCAL} (a cluster of --workers processes started for the sweep)"
            )


@contextmanager
def cluster_for(opts: ExecutorOptions) -> Iterator[ExecutorOptions]:
    """``opts``, or for a Dask sweep with ``--scheduler local`` the same options pointing at a
    LocalCluster of ``opts.workers`` processes started for the block."""
    if opts.scheduler != LOCAL or opts.kind == "local":
        yield opts
        return
    with local_cluster(opts.workers) as address:
        yield dataclasses.replace(opts, scheduler=address)


def check_executor(
    plan: SweepPlan, kind: str, workers: int | None = None, scheduler: str | None = None
) -> None:
    """The pool and Dask workers rebuild each combination's config from its resolved mapping,
    where only registered strategies exist: a user's strategy (``strategy=``) runs in-process
    on the vectorised executor only (one process: ``workers`` 1 or unset, no scheduler). An
    adaptive search runs in this process."""
    if scheduler and plan.spec.search is not None:
        raise ConfigError(
            "sweep.search runs its trials one after another in this process, not on a Dask "
            "cluster: drop --scheduler"
        )
    user = plan.base.user_strategy
    if user is None or (kind == "vectorised" and (workers or 1) == 1 and not scheduler):
        return
    what = f"{kind!r}"
    if kind == "vectorised":
        where = f"on the Dask cluster {scheduler}" if scheduler else f"with {workers} workers"
        what = f"'vectorised' {where}"
    raise ConfigError(
        f"sweep.executor: {what} rebuilds every combination in worker processes, which know "
        f"only registered strategies, not {user.name!r} given with strategy=; use "
        "executor: vectorised without workers (it runs in this process), or register the "
        "strategy (volbacktest.strategies.register) in a module the workers import"
    )


@dataclass(frozen=True)
class ExecuteStats:
    total: int  # combinations in this (segment of the) sweep
    skipped: int  # already in the store (resume)
    ran: int
    failed: int
    elapsed_s: float

    @property
    def runs_per_s(self) -> float:
        return self.ran / self.elapsed_s if self.elapsed_s > 0 else float("nan")


class _Progress:
    """tqdm progress bar with ETA on stderr (a no-op when disabled)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self._bar = None
        if enabled:
            try:
                tqdm = require_extra("tqdm", "dask")
            except MissingExtraError as exc:
                log.info("no progress bar: %s", exc)
                return
            tqdm.tqdm.monitor_interval = 0  # no monitor thread: pool workers may be forked later
            self._bar = tqdm.tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="run",
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def update(self, failed: int) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if failed:
                self._bar.set_postfix(failed=failed, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _records(
    plan: SweepPlan,
    opts: ExecutorOptions,
    done: Container[str],
    overrides: Mapping | None,
    segment: str,
    markets: MarketCache,
    summary: RecordOptions | None = None,
) -> Iterator[RunRecord]:
    todo = (c for c in plan.iter_combos(overrides) if c.run_id not in done)
    chunked = opts.scheduler or (opts.workers or 1) > 1
    if opts.kind == "vectorised" and not chunked:
        return run_fast(
            todo, chunk_size=opts.chunk_size, markets=markets, segment=segment, summary=summary
        )
    market = markets.get(plan.config_for({}, overrides)[1])  # prepared once, sent to workers
    preload = [(plan.resolved_for({}, overrides), pickle.dumps(market))]
    if opts.kind == "vectorised":  # chunks of (index, values); configs built by the workers
        chunks = dict(
            overrides=overrides,
            segment=segment,
            done=done,
            chunk_size=opts.chunk_size,
            preload=preload,
            summary=summary,
        )
        if opts.scheduler:
            return run_dask_fast(plan, scheduler=opts.scheduler, **chunks)
        return run_fast_parallel(
            plan, workers=opts.workers, start_method=opts.start_method, **chunks
        )
    work = batches(todo, opts.batch_size, segment)
    if opts.kind == "local":
        return run_local(
            work, workers=opts.workers, preload=preload, start_method=opts.start_method
        )
    return run_dask(work, scheduler=opts.scheduler, preload=preload)


def _execute_search(plan, store, opts, overrides, segment, markets) -> ExecuteStats:
    from .search import run_search  # Optuna only for a search

    if segment or overrides:
        raise ConfigError("sweep.search: not with split: (walk-forward windows); use sweep.grid")
    before = store.count(segment=segment)
    bar = _Progress(plan.spec.search.trials, 0, f"{plan.name} [optuna]", opts.progress)
    failures = [0]

    def tick(rec):
        failures[0] += not rec.ok
        bar.update(failures[0])

    t0 = time.perf_counter()
    try:
        trials, ran, failed = run_search(
            plan, store, markets=markets, segment=segment, overrides=overrides, on_record=tick
        )
    finally:
        bar.close()
    return ExecuteStats(trials, before, ran, failed, time.perf_counter() - t0)


def execute(
    plan: SweepPlan,
    store: ResultsStore,
    opts: ExecutorOptions,
    *,
    overrides: Mapping | None = None,
    segment: str = "",
    markets: MarketCache | None = None,
) -> ExecuteStats:
    """Run every combination of ``plan`` not yet in ``store`` (``overrides``: dotted paths set
    on every combination, e.g. a walk-forward window's dates; ``segment`` labels the rows)."""
    check_executor(plan, opts.kind, opts.workers, opts.scheduler)
    if opts.scheduler == LOCAL and opts.kind != "local":  # a cluster for this call only
        with cluster_for(opts) as opts:
            return execute(plan, store, opts, overrides=overrides, segment=segment, markets=markets)
    markets = markets or MarketCache()
    markets.get(plan.config_for({}, overrides)[1])  # before the clock; errors surface here
    if plan.spec.search is not None:
        return _execute_search(plan, store, opts, overrides, segment, markets)
    total = plan.count()
    done = store.done_ids(segment)
    skipped = len(done)
    if skipped:
        log.info("resuming %s: %d of %d runs already stored", segment or plan.name, skipped, total)
    desc = f"{plan.name}{' ' + segment if segment else ''} [{opts.kind}]"
    bar = _Progress(total, min(skipped, total), desc, opts.progress)
    ran = failed = 0
    t0 = time.perf_counter()
    last_commit = t0
    batch = opts.chunk_size if opts.kind == "vectorised" else 1
    # runs summarised where they finish: records carry moments, not daily returns
    records = _records(plan, opts, done, overrides, segment, markets, store.record_options())
    passed: list[RunRecord] = []  # a fast-path pass's records, staged when its last arrives
    try:
        for rec in records:
            passed.append(rec)
            ran += 1
            failed += not rec.ok
            bar.update(failed)
            if not rec.pass_end:  # its unit sum comes with the last: commit passes whole
                continue
            store.add_pass(passed)
            passed.clear()
            now = time.perf_counter()
            if store.uncommitted >= batch or now - last_commit > COMMIT_EVERY_S:
                store.commit()
                last_commit = now
    finally:
        getattr(records, "close", lambda: None)()  # cancels work in flight (Ctrl-C, an error)
        store.commit()
        bar.close()
    elapsed = time.perf_counter() - t0
    if failed:
        log.warning("%d of %d runs failed; their errors are in %s", failed, ran, store.path)
    return ExecuteStats(total, skipped, ran, failed, elapsed)
