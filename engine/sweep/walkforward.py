"""Walk-forward and out-of-sample evaluation of a sweep (the ``split:`` block).

* ``in_sample_end: DATE`` — one window: in-sample from the data start to DATE, out-of-sample
  from the next bar to the data end (e.g. Cooper's publication date, 2013-02).
* ``rolling: {train, test, step, anchored}`` — windows of ``train`` in-sample bars followed by
  ``test`` out-of-sample bars, every ``step`` bars (default ``test``); ``anchored`` keeps every
  in-sample window starting at the first bar.

In each window the whole grid is run on the in-sample span (a normal sweep whose combinations
have ``data.start``/``data.end`` set to the window, stored with the segment label ``wfNN``) and
the best run by the rank metric is chosen. The chosen parameters' target weights are computed
point-in-time over the full history (so indicators are warm at the window start; every
decision uses only data up to its own bar) and applied on that window's out-of-sample bars
only. The out-of-sample rows of every window are stitched into one target-weights path and
simulated once from the first out-of-sample bar (starting in cash), so parameter changes at
window boundaries pay their trading costs. That simulation is the vectorised simulator, held
to ``run_backtest`` by the conformance tests.

The in-sample result beside it is what the optimiser saw: for a fixed split the chosen run on
the in-sample span (event-driven); for rolling windows, each window's chosen in-sample run
(metrics averaged over windows, and listed per window).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, EngineError
from volbacktest.engine.execution.metrics import performance_metrics
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.execution.vectorised import MarketArrays, result_from_weights
from volbacktest.engine.inputs.market import Market
from volbacktest.engine.run.runner import run_backtest

from .execute import ExecuteStats, ExecutorOptions, execute
from .metrics import METRIC_NAMES, SUMMARY_METRICS
from .records import MarketCache, params_of_row
from .spec import SplitSpec, SweepPlan
from .store import ResultsStore

log = logging.getLogger(__name__)

SIDE_BY_SIDE_METRICS = SUMMARY_METRICS


@dataclass(frozen=True)
class Window:
    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    @property
    def label(self) -> str:
        return f"wf{self.index:02d}"

    def overrides(self) -> dict:
        return {
            "data.start": self.train_start.date().isoformat(),
            "data.end": self.train_end.date().isoformat(),
        }


def make_windows(calendar: pd.DatetimeIndex, split: SplitSpec, where: str = "") -> list[Window]:
    """In-sample/out-of-sample windows on ``calendar`` (the base config's trading dates)."""
    n = len(calendar)
    span = f"{calendar[0]:%Y-%m-%d}..{calendar[-1]:%Y-%m-%d}"
    if split.in_sample_end is not None:
        end = pd.Timestamp(split.in_sample_end)
        k = int(calendar.searchsorted(end, side="right")) - 1  # last in-sample bar
        if k < 1:
            raise ConfigError(
                f"{where}split.in_sample_end {split.in_sample_end} leaves fewer than 2 in-sample "
                f"bars (data {span}); choose a later date"
            )
        if k >= n - 1:
            raise ConfigError(
                f"{where}split.in_sample_end {split.in_sample_end} leaves no out-of-sample bars "
                f"(data {span}); choose an earlier date"
            )
        return [Window(0, calendar[0], calendar[k], calendar[k + 1], calendar[-1])]
    r = split.rolling
    step = r.step or r.test
    out = []
    i = 0
    while True:
        train_end = i * step + r.train - 1
        test_start = train_end + 1
        if test_start > n - 1:
            break
        train_start = 0 if r.anchored else i * step
        test_end = min(test_start + r.test - 1, n - 1)
        out.append(
            Window(
                i,
                calendar[train_start],
                calendar[train_end],
                calendar[test_start],
                calendar[test_end],
            )
        )
        i += 1
    if not out:
        raise ConfigError(
            f"{where}split.rolling: train {r.train} bars leaves no out-of-sample bars in the "
            f"{n} bars of the data ({span}); shorten train"
        )
    return out


@dataclass(frozen=True)
class WalkForwardResult:
    windows: pd.DataFrame  # one row per window: spans, chosen run, its params and metrics
    in_sample: BacktestResult | None  # fixed split: the chosen run on the in-sample span
    out_of_sample: BacktestResult  # stitched out-of-sample path
    side_by_side: pd.DataFrame  # metrics (rows) x in-sample / out-of-sample (columns)
    rank: str  # e.g. "max sharpe"
    stats: tuple[ExecuteStats, ...]


def _best(store: ResultsStore, segment: str, metric: str, maximise: bool) -> pd.Series:
    (df,) = store.ranked(segment, metric, maximise, limit=1)
    if df.empty:
        raise EngineError(
            f"walk-forward window {segment}: no in-sample run finished with a {metric}; see the "
            f"errors in {store.path}"
        )
    return df.iloc[0]


def _slice_market(market: Market, start: pd.Timestamp, end: pd.Timestamp) -> Market:
    cal = market.calendar[(market.calendar >= start) & (market.calendar <= end)]
    frames = {k: v.loc[cal] for k, v in market.frames.items()}
    return Market(cal, frames, market.tradable, market.source, market.notes)


def run_walkforward(
    plan: SweepPlan,
    store: ResultsStore,
    opts: ExecutorOptions,
    *,
    markets: MarketCache | None = None,
) -> WalkForwardResult:
    """Run every window's in-sample sweep, choose, stitch the out-of-sample path."""
    if plan.split is None:
        raise ValueError("the plan has no split: block")
    markets = markets or MarketCache()
    where = f"{plan.source}: " if plan.source else ""
    full_market = markets.get(plan.base)
    windows = make_windows(full_market.calendar, plan.split, where)
    rank = plan.spec.rank
    stats = []
    rows = []
    chosen_cfgs = []
    for w in windows:
        stats.append(
            execute(plan, store, opts, overrides=w.overrides(), segment=w.label, markets=markets)
        )
        best = _best(store, w.label, rank.metric, rank.maximise)
        params = params_of_row(best)
        _, cfg_full = plan.config_for(params)
        chosen_cfgs.append(cfg_full)
        rows.append(
            {
                "window": w.label,
                "train_start": w.train_start,
                "train_end": w.train_end,
                "test_start": w.test_start,
                "test_end": w.test_end,
                "run_id": best.name,
                **{f"p.{k}": v for k, v in params.items()},
                **{f"is.{m}": best[m] for m in METRIC_NAMES},
            }
        )
    assets = {tuple(c.params.assets()) for c in chosen_cfgs}
    if len(assets) > 1:
        raise ConfigError(
            f"{where}walk-forward windows chose strategies trading different assets {assets}; "
            "out-of-sample segments can only be stitched when every combination trades the "
            "same assets"
        )
    oos = _stitch(plan, full_market, windows, chosen_cfgs)
    table = pd.DataFrame(rows)
    seg_metrics = _segment_metrics(oos, windows)
    for m in ("cagr", "sharpe", "max_drawdown"):
        table[f"oos.{m}"] = [seg[m] for seg in seg_metrics]

    in_sample = None
    if plan.split.in_sample_end is not None:
        _, cfg_is = plan.config_for(params_of_row(table.iloc[0]), windows[0].overrides())
        in_sample = run_backtest(cfg_is, market=markets.get(cfg_is))
        is_metrics = in_sample.metrics
        is_label = f"in-sample {windows[0].train_start:%Y-%m-%d}..{windows[0].train_end:%Y-%m-%d}"
    else:
        is_metrics = {m: table[f"is.{m}"].astype(float).mean() for m in SIDE_BY_SIDE_METRICS}
        is_label = f"in-sample (mean of {len(windows)} windows)"
    oos_label = f"out-of-sample {windows[0].test_start:%Y-%m-%d}..{windows[-1].test_end:%Y-%m-%d}"
    side = pd.DataFrame(
        {
            is_label: [is_metrics.get(m) for m in SIDE_BY_SIDE_METRICS],
            oos_label: [oos.metrics.get(m) for m in SIDE_BY_SIDE_METRICS],
        },
        index=list(SIDE_BY_SIDE_METRICS),
    )
    return WalkForwardResult(table, in_sample, oos, side, rank.describe(), tuple(stats))


def _stitch(plan, market: Market, windows: list[Window], cfgs) -> BacktestResult:
    """One out-of-sample path: window i's chosen weights on window i's test bars only."""
    cal = market.calendar
    arrays = MarketArrays.from_market(market, cfgs[0].plan)
    stitched = np.full((len(cal), len(arrays.assets)), np.nan)
    for w, cfg in zip(windows, cfgs, strict=True):
        weights = MarketArrays.from_market(market, cfg.plan).weights(cfg.plan)
        rows = (cal >= w.test_start) & (cal <= w.test_end)
        stitched[rows] = weights[rows]
    start, end = windows[0].test_start, windows[-1].test_end
    keep = (cal >= start) & (cal <= end)
    oos_market = _slice_market(market, start, end)
    cfg0 = cfgs[0].with_overrides(**{"name": f"{plan.name}-oos"})
    rule = "walk-forward: " + "; ".join(
        f"{w.label} {cfg.params.describe()}" for w, cfg in zip(windows, cfgs, strict=True)
    )
    return result_from_weights(cfg0, oos_market, stitched[keep], rule=rule)


def _segment_metrics(oos: BacktestResult, windows: list[Window]) -> list[dict]:
    """Sharpe, CAGR and max drawdown of the stitched path on each window's test bars."""
    out = []
    for w in windows:
        sl = slice(w.test_start, w.test_end)
        r = oos.returns.loc[sl]
        eq = oos.equity.loc[sl]
        pos = oos.positions.loc[sl]
        tx = oos.transactions[
            (oos.transactions["date"] >= w.test_start) & (oos.transactions["date"] <= w.test_end)
        ]
        out.append(performance_metrics(r, pos, tx, eq))
    return out
