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
from .overfit import OverfitStats, sweep_statistics, write_statistics
from .records import STATUS_OK, MarketCache, calendar_ns, params_of_row
from .spec import SweepPlan
from .store import ResultsStore
from .walkforward import WalkForwardResult, run_walkforward

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOutcome:
    plan: SweepPlan
    folder: Path
    store_path: Path
    stats: tuple[ExecuteStats, ...]
    ranking: pd.DataFrame  # finished runs of the main segment, best first
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
        frame = store.frame(segment)
        rank = plan.spec.rank
        ranking = rank_frame(frame, rank.metric, rank.maximise)
        overfitting, ranking = sweep_statistics(plan, store, segment, ranking)
        write_statistics(overfitting, folder)
        frame = frame.join(ranking[["psr", "dsr"]], how="left")
        n_top = plan.spec.top if top is None else top
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
        if wf is not None:  # the ranking is the first window's in-sample one: say so
            first = wf.windows.iloc[0]
            ranking.insert(
                0,
                "ranked_on",
                f"in-sample of walk-forward window {first['window']} (1 of {len(wf.windows)}, "
                f"{first['train_start']:%Y-%m-%d}..{first['train_end']:%Y-%m-%d})",
            )
        if store.store_returns == "top":
            keep_top_returns(store, top_results)
        # each report file is replaced whole (a failure keeps the previous one)
        with atomic_file(folder / "ranking.csv") as tmp:
            ranking.to_csv(tmp, float_format="%.10g")
        with atomic_file(folder / "drift.csv") as tmp:
            drift.to_csv(tmp, index=False, float_format="%.6g")
        report_path = None
        if report:
            with atomic_dir(folder / "report", overwrite=True) as tmp:
                page = write_sweep_report(
                    plan,
                    frame,
                    [r for _, r in top_results],
                    tmp,
                    drift=drift,
                    walkforward=wf,
                    tearsheets=tearsheets,
                    overfitting=overfitting,
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
