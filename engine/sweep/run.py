"""A whole sweep: store, executor, ranking, the event-driven drift check and the report.

After the runs, the ``top`` best runs (by the rank metric) are re-run both event-driven
(``run_backtest``) and through the vectorised simulator; any difference in equity beyond
``sweep.drift_tolerance`` (relative) or in trade dates is reported as drift: in
``drift.csv``, in the HTML report and as a logged warning. Whatever executor produced the
sweep, this keeps the fast path honest on the configurations that matter.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.execution.instruments import trades_contracts
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.execution.vectorised import fast_backtest
from volbacktest.engine.run.compare import write_sweep_report
from volbacktest.engine.run.outputs import atomic_dir, atomic_file
from volbacktest.engine.run.provenance import sweep_record
from volbacktest.engine.run.runner import run_backtest

from .execute import ExecuteStats, ExecutorOptions, check_executor, cluster_for, execute
from .overfit import OverfitStats, overfit_statistics, write_statistics
from .records import STATUS_FAILED, STATUS_OK, MarketCache, calendar_ns, params_of_row
from .spec import SweepPlan
from .store import ResultsStore
from .walkforward import WalkForwardResult, run_walkforward

log = logging.getLogger(__name__)

RANKING_KEPT = 10_000  # best runs kept in memory (SweepOutcome.ranking); ranking.csv has all
REPORT_ALL_RUNS = 100_000  # above this many runs the report reads the kept ranking, not all


@dataclass(frozen=True)
class SweepOutcome:
    plan: SweepPlan
    folder: Path
    store_path: Path
    stats: tuple[ExecuteStats, ...]
    ranking: pd.DataFrame  # finished runs of the main segment, best first (RANKING_KEPT at most)
    top: tuple[BacktestResult, ...]  # event-driven re-runs of the best runs
    drift: pd.DataFrame  # one row per top run
    walkforward: WalkForwardResult | None
    report: Path | None
    overfitting: OverfitStats | None = None  # PSR/DSR/PBO of the main segment

    @property
    def drifted(self) -> bool:
        return bool(len(self.drift)) and not bool(self.drift["agrees"].all())


def rank_frame(frame: pd.DataFrame, metric: str, maximise: bool) -> pd.DataFrame:
    """Finished runs with a value for ``metric``, best first (ties: sweep order)."""
    ok = frame[(frame["status"] == STATUS_OK) & frame[metric].notna()]
    return ok.sort_values([metric, "idx"], ascending=[not maximise, True], kind="stable")


def drift_check(
    results: list[tuple[str, BacktestResult]], markets: MarketCache, tolerance: float
) -> pd.DataFrame:
    """Event-driven results vs the vectorised simulator on the same configs."""
    rows = []
    for run_id, ev in results:
        cfg = ev.config
        if trades_contracts(cfg):  # futures and options have no fast path to compare with
            continue
        fast = fast_backtest(cfg, markets.get(cfg))
        a = ev.equity.to_numpy()
        b = fast.equity.to_numpy()
        rel = float(np.max(np.abs(a - b) / np.abs(a))) if len(a) == len(b) else float("inf")
        dates_ev = sorted(set(ev.transactions["date"]))
        dates_fast = sorted(set(fast.transactions["date"]))
        same_dates = dates_ev == dates_fast
        rows.append(
            {
                "run_id": run_id,
                "name": cfg.name,
                "rule": ev.metrics["rule"],
                "max_rel_equity_diff": rel,
                "trades_event_driven": len(ev.transactions),
                "trades_fast": len(fast.transactions),
                "same_trade_dates": same_dates,
                "agrees": bool(rel <= tolerance and same_dates),
            }
        )
        if not rows[-1]["agrees"]:
            log.warning(
                "DRIFT between the fast path and run_backtest for %s (%s): max relative equity "
                "difference %.3g, trade dates %s",
                run_id,
                cfg.name,
                rel,
                "identical" if same_dates else "differ",
            )
    return pd.DataFrame(rows)


def _record_provenance(plan: SweepPlan, store: ResultsStore, markets, folder: Path) -> None:
    """What produced the sweep, once: the store's ``provenance`` meta and ``run.json``."""
    record = sweep_record(plan.base, markets.get(plan.base), plan.spec.model_dump(mode="json"))
    text = json.dumps(record, indent=2, default=str)
    store.set_meta(provenance=text)
    with atomic_file(folder / "run.json") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def keep_top_returns(store: ResultsStore, results: list[tuple[str, BacktestResult]]) -> None:
    """``store_returns: top``: the daily returns of the best runs, from their event-driven
    re-runs (the reference engine; the drift check holds the fast path to them)."""
    have = store.returns_ids()
    for run_id, res in results:
        if run_id not in have:
            store.put_returns(run_id, res.returns.to_numpy(), calendar_ns(res.returns.index))
    store.commit()


def write_ranking(
    store: ResultsStore,
    segment: str,
    rank,
    deflation,
    folder: Path,
    keep: int,
    ranked_on: str | None = None,
) -> pd.DataFrame:
    """Write ``ranking.csv`` (every finished run of ``segment`` with a value for the rank
    metric, best first, with its PSR and DSR) chunk by chunk, and return its first ``keep``
    rows: memory is a chunk and the rows kept, whatever the number of runs."""
    kept: list[pd.DataFrame] = []
    n_kept = 0
    with atomic_file(folder / "ranking.csv") as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, chunk in enumerate(store.ranked(segment, rank.metric, rank.maximise)):
                chunk = deflation.apply(chunk)
                if ranked_on is not None:
                    chunk.insert(0, "ranked_on", ranked_on)
                chunk.to_csv(fh, header=i == 0, float_format="%.10g")
                if n_kept < keep or not kept:
                    kept.append(chunk.head(keep - n_kept))
                    n_kept += len(kept[-1])
    return pd.concat(kept) if len(kept) > 1 else kept[0]


def _report_runs(plan, store, segment, ranking, deflation):
    """The runs the HTML report reads: every run (with PSR and DSR) up to REPORT_ALL_RUNS;
    above, the kept ranking and at most RANKING_KEPT failed runs, the parameter views from the
    metric averaged per cell of the grid in SQLite, and the whole sweep's counts."""
    n = store.count(segment=segment)
    if n <= REPORT_ALL_RUNS:
        return deflation.apply(store.frame(segment)), None, None
    failed = store.frame(segment, status=STATUS_FAILED, limit=RANKING_KEPT)
    frame = pd.concat([ranking.drop(columns=["ranked_on"], errors="ignore"), failed])
    counts = (store.count(STATUS_OK, segment), store.count(STATUS_FAILED, segment))
    numeric = [
        k
        for k, v in plan.axes.items()
        if all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    ]
    longest = sorted(numeric, key=lambda k: len(plan.axes[k]), reverse=True)[:2]
    return frame, store.grid_means(segment, plan.spec.rank.metric, longest), counts


def run_sweep(
    plan: SweepPlan,
    *,
    opts: ExecutorOptions | None = None,
    out: Path | None = None,
    resume: bool = False,
    top: int | None = None,
    report: bool = True,
    tearsheets: bool = True,
    markets: MarketCache | None = None,
) -> SweepOutcome:
    """Run (or resume) ``plan`` and write its results folder ``out/<name>/``."""
    opts = opts or ExecutorOptions(
        kind=plan.spec.executor,
        workers=plan.spec.workers,
        chunk_size=plan.spec.chunk_size,
        batch_size=plan.spec.batch_size,
        start_method=plan.spec.start_method,
    )
    check_executor(plan, opts.kind, opts.workers, opts.scheduler)  # before the store is made
    markets = markets or MarketCache()
    folder = Path(out if out is not None else plan.base.report.out_dir) / plan.name
    store = ResultsStore.open(
        folder,
        fingerprint=plan.fingerprint(),
        name=plan.name,
        resume=resume,
        spec=plan.spec.model_dump(mode="json"),
        store_returns=plan.spec.store_returns,
        runs=plan.spec.search.trials if plan.spec.search is not None else plan.count(),
    )
    try:
        _record_provenance(plan, store, markets, folder)
        wf = None
        with cluster_for(opts) as opts:  # --scheduler local: one cluster for all windows
            if plan.split is not None:
                wf = run_walkforward(plan, store, opts, markets=markets)
                stats = wf.stats
                segment = wf.windows["window"].iloc[0]
            else:
                stats = (execute(plan, store, opts, markets=markets),)
                segment = ""
        rank = plan.spec.rank
        n_top = plan.spec.top if top is None else top
        (first,) = store.ranked(segment, rank.metric, rank.maximise, limit=1)
        best = first.iloc[0] if len(first) else None
        overfitting, deflation = overfit_statistics(plan, store, segment, best)
        write_statistics(overfitting, folder)
        ranked_on = None
        if wf is not None:  # the ranking is the first window's in-sample one: say so
            w0 = wf.windows.iloc[0]
            ranked_on = (
                f"in-sample of walk-forward window {w0['window']} (1 of {len(wf.windows)}, "
                f"{w0['train_start']:%Y-%m-%d}..{w0['train_end']:%Y-%m-%d})"
            )
        ranking = write_ranking(
            store, segment, rank, deflation, folder, max(n_top, RANKING_KEPT), ranked_on
        )
        top_results = []
        overrides = wf.windows.iloc[0] if wf is not None else None
        for run_id, row in ranking.head(n_top).iterrows():
            values = params_of_row(row)
            ovr = None
            if overrides is not None:
                ovr = {
                    "data.start": overrides["train_start"].date().isoformat(),
                    "data.end": overrides["train_end"].date().isoformat(),
                }
            _, cfg = plan.config_for(values, ovr)
            cfg = cfg.with_overrides(name=plan.label_for(values))
            top_results.append((run_id, run_backtest(cfg, market=markets.get(cfg))))
        drift = drift_check(top_results, markets, plan.spec.drift_tolerance)
        if store.store_returns == "top":
            keep_top_returns(store, top_results)
        with atomic_file(folder / "drift.csv") as tmp:  # replaced whole, as ranking.csv
            drift.to_csv(tmp, index=False, float_format="%.6g")
        report_path = None
        if report:
            with atomic_dir(folder / "report", overwrite=True) as tmp:
                frame, grid, counts = _report_runs(plan, store, segment, ranking, deflation)
                page = write_sweep_report(
                    plan,
                    frame,
                    [r for _, r in top_results],
                    tmp,
                    drift=drift,
                    walkforward=wf,
                    tearsheets=tearsheets,
                    overfitting=overfitting,
                    grid=grid,
                    counts=counts,
                )
            report_path = folder / "report" / page.relative_to(tmp)
    finally:
        store.close()
    return SweepOutcome(
        plan,
        folder,
        store.path,
        tuple(stats),
        ranking,
        tuple(r for _, r in top_results),
        drift,
        wf,
        report_path,
        overfitting,
    )
