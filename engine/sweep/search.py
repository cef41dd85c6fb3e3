"""Adaptive search (``sweep.search: {method: optuna, trials, sampler, seed}``), resumable
through the store.

Optuna (the ``search`` extra, imported only here) samples the sweep's own parameter space: a
grid list is a categorical choice, a grid range an integer (or stepped float) range, and
``random.params`` distributions map to ``suggest_int``/``suggest_float`` (log for
``log_uniform``)/``suggest_categorical``. A trial whose values break a constraint is told as
failed without running anything. Each new combination runs on the fast path and is committed
to the store before the sampler hears its value, so the store holds every finished trial.

Resuming needs no Optuna storage: the sampler is seeded, so asking again in the same order and
telling each trial the value already stored (no run) replays the study exactly; trials not yet
stored then run. A combination the sampler asks for again is told its stored value, and counts
as a trial.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

from volbacktest.engine.errors import require_extra

from .fast import run_fast
from .records import STATUS_OK, MarketCache, RunRecord
from .spec import Combo, RangeAxis, SweepPlan
from .store import ResultsStore

log = logging.getLogger(__name__)


def _suggesters(plan: SweepPlan) -> dict[str, Callable]:
    spec = plan.spec
    out: dict[str, Callable] = {}
    if spec.grid:
        for name, axis in spec.grid.items():
            if isinstance(axis, RangeAxis):
                values = axis.values()
                if all(isinstance(v, int) for v in values):
                    lo, hi, st = int(axis.start), int(values[-1]), int(axis.step)
                    out[name] = lambda t, n=name, lo=lo, hi=hi, st=st: t.suggest_int(
                        n, lo, hi, step=st
                    )
                else:
                    out[name] = lambda t, n=name, vs=tuple(values): t.suggest_categorical(n, vs)
            else:
                out[name] = lambda t, n=name, vs=tuple(axis): t.suggest_categorical(n, vs)
        return out
    for name, d in spec.random.params.items():
        if d.kind == "choice":
            out[name] = lambda t, n=name, vs=tuple(d.choices): t.suggest_categorical(n, vs)
        elif d.kind == "int":
            out[name] = lambda t, n=name, d=d: t.suggest_int(n, int(d.low), int(d.high))
        else:
            log_scale = d.kind == "log_uniform"
            out[name] = lambda t, n=name, d=d, lg=log_scale: t.suggest_float(
                n, d.low, d.high, log=lg
            )
    return out


def run_search(
    plan: SweepPlan,
    store: ResultsStore,
    *,
    markets: MarketCache,
    segment: str = "",
    overrides: Mapping | None = None,
    on_record: Callable[[RunRecord], None] | None = None,
) -> tuple[int, int, int]:
    """Run (or replay and continue) the search; returns (trials, runs made now, failed)."""
    optuna = require_extra("optuna", "search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = plan.spec.search
    rank = plan.spec.rank
    sampler = (
        optuna.samplers.TPESampler(seed=search.seed)
        if search.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=search.seed)
    )
    study = optuna.create_study(
        direction="maximize" if rank.maximise else "minimize", sampler=sampler
    )
    suggest = _suggesters(plan)
    stored = store.frame(segment)
    known = {
        rid: (row["status"], row[rank.metric]) for rid, row in stored.iterrows()
    }  # run id -> (status, value)
    index = int(stored["idx"].max()) + 1 if len(stored) else 0
    ran = failed = 0
    fail = optuna.trial.TrialState.FAIL
    for _ in range(search.trials):
        trial = study.ask()
        values = {name: f(trial) for name, f in suggest.items()}
        values = {k: (round(v, 12) if isinstance(v, float) else v) for k, v in values.items()}
        if not plan._keep(values):
            study.tell(trial, state=fail)
            continue
        rid, cfg = plan.config_for(values, overrides)
        if rid not in known:
            (rec,) = run_fast([Combo(index, rid, values, cfg)], markets=markets, segment=segment)
            index += 1
            store.add(rec)
            store.commit()  # durable before the sampler hears of it: a kill loses no trial
            ran += 1
            failed += not rec.ok
            known[rid] = (rec.status, rec.metrics.get(rank.metric))
            if on_record is not None:
                on_record(rec)
        status, value = known[rid]
        if status != STATUS_OK or value is None or not math.isfinite(float(value)):
            study.tell(trial, state=fail)
        else:
            study.tell(trial, float(value))
    return search.trials, ran, failed
