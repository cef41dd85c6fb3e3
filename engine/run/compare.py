"""Comparison reports: one self-contained HTML file, with PNG and CSV beside it.

``volbacktest compare A.yaml B.yaml ...`` runs each config and writes the report; every sweep
writes one too (:func:`write_sweep_report`). The HTML needs no network: inline CSS, no
JavaScript, every image embedded as a base64 PNG ``data:`` URI. Sections:

* metrics table (and fill mode; look-ahead runs are flagged);
* equity curves, drawdowns, rolling Sharpe (126 bars), monthly-returns heatmaps;
* a pyfolio-reloaded returns tear sheet per strategy (``engine.run.report.plot_tearsheet``);
* for sweeps: the ranking, the fast-path drift check, a parameter heatmap of the rank metric
  (two-dimensional grids; with more axes the two longest, averaged over the others) and a
  robustness view — each cell's metric averaged with its neighbours (3 x 3 in the grid, ±1 for
  one axis): a peak that stands alone is luck, a plateau is a robust choice;
* for walk-forward: in-sample and out-of-sample metrics side by side, the window table and the
  equity of both.

Every figure is also written as PNG and every table as CSV in the same folder.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.execution.metrics import SUMMARY_METRICS, rolling_sharpe
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.run.html import (
    MONTHS,
    REPORT_NAME,
    formatted,
    key_values,
    monthly_returns,
)
from volbacktest.engine.run.html import img as _img
from volbacktest.engine.run.html import page as _page
from volbacktest.engine.run.html import para as _p
from volbacktest.engine.run.html import section as _section
from volbacktest.engine.run.html import table as _table
from volbacktest.engine.run.report import plot_tearsheet, pyplot

log = logging.getLogger(__name__)

ROLLING_SHARPE_BARS = 126  # about six months of daily bars
MAX_MONTHLY_PANELS = 8


# --------------------------------------------------------------------------- figures
def _save(fig, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _label(r: BacktestResult) -> str:
    star = " *look-ahead*" if r.metrics.get("look_ahead") else ""
    return f"{r.label} ({str(r.metrics.get('fill', '')).split(' ')[0]}){star}"


def growth_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    return pd.DataFrame({r.label: r.equity / r.config.execution.initial_cash for r in results})


def drawdown_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    return pd.DataFrame({r.label: r.equity / r.equity.cummax() - 1.0 for r in results})


def rolling_sharpe_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    return pd.DataFrame({r.label: rolling_sharpe(r.returns, ROLLING_SHARPE_BARS) for r in results})


def _line_plot(frame: pd.DataFrame, path: Path, title: str, ylabel: str, log_y=False) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for col in frame.columns:
        ax.plot(frame.index, frame[col].to_numpy(), label=str(col), linewidth=1.1)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _monthly_plot(results: Sequence[BacktestResult], path: Path) -> Path:
    plt = pyplot()
    shown = list(results)[:MAX_MONTHLY_PANELS]
    tables = [monthly_returns(r.returns) for r in shown]
    height = sum(max(1.2, 0.32 * len(t) + 0.8) for t in tables)
    fig, axes = plt.subplots(len(shown), 1, figsize=(11, height), squeeze=False)
    for ax, r, t in zip(axes[:, 0], shown, tables, strict=True):
        vals = t.to_numpy(dtype=float) * 100.0
        lim = np.nanmax(np.abs(vals)) if np.isfinite(vals).any() else 1.0
        ax.imshow(vals, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(12), MONTHS, fontsize=7)
        ax.set_yticks(range(len(t)), [str(y) for y in t.index], fontsize=7)
        for (i, j), v in np.ndenumerate(vals):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"monthly returns (%) — {r.label}", fontsize=9)
    return _save(fig, path)


# --------------------------------------------------------------------------- parameters
def grid_pivot(frame: pd.DataFrame, axes: Sequence[str], metric: str) -> pd.DataFrame:
    """The metric over the grid's two longest axes (mean over any others); 1 axis: one row."""
    cols = [f"p.{a}" for a in axes if f"p.{a}" in frame.columns]
    ok = frame[frame[metric].notna()] if metric in frame else frame.iloc[0:0]
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(ok[c])] if len(ok) else []
    if not numeric:
        return pd.DataFrame()
    by_len = sorted(numeric, key=lambda c: ok[c].nunique(), reverse=True)
    if len(by_len) == 1:
        series = ok.groupby(by_len[0])[metric].mean()
        return series.to_frame().T.rename(index={metric: metric})
    rows, cols2 = by_len[0], by_len[1]
    return ok.pivot_table(index=rows, columns=cols2, values=metric, aggfunc="mean").sort_index()


def neighbour_mean(pivot: pd.DataFrame) -> pd.DataFrame:
    """Each cell's value averaged with its grid neighbours (3 x 3; NaN cells ignored)."""
    v = pivot.to_numpy(dtype=float)
    finite = np.isfinite(v)
    vz = np.pad(np.where(finite, v, 0.0), 1)
    cz = np.pad(finite.astype(float), 1)
    total = np.zeros_like(v)
    count = np.zeros_like(v)
    n_rows, n_cols = v.shape
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            total += vz[di : di + n_rows, dj : dj + n_cols]
            count += cz[di : di + n_rows, dj : dj + n_cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return pd.DataFrame(mean, index=pivot.index, columns=pivot.columns)


MAX_FIGURE_INCHES = 16.0


def _heatmap(pivot: pd.DataFrame, path: Path, title: str, metric: str) -> Path:
    plt = pyplot()
    vals = pivot.to_numpy(dtype=float)
    # the figure grows with the grid up to a page (a 200 x 100 grid drew 7,440 x 2,560 px)
    width = min(MAX_FIGURE_INCHES, max(5.0, 0.9 * vals.shape[1] + 3))
    fig, ax = plt.subplots(figsize=(width, min(MAX_FIGURE_INCHES, max(3.0, 0.16 * len(vals)))))
    im = ax.imshow(vals, cmap="viridis", aspect="auto", origin="lower")
    x_step = max(1, vals.shape[1] // 20)
    ax.set_xticks(
        range(0, vals.shape[1], x_step),
        [f"{c:g}" if isinstance(c, float) else str(c) for c in pivot.columns[::x_step]],
        fontsize=7,
    )
    step = max(1, len(pivot.index) // 20)
    ax.set_yticks(
        range(0, len(pivot.index), step), [str(i) for i in pivot.index[::step]], fontsize=7
    )
    ax.set_xlabel(str(pivot.columns.name or "").removeprefix("p."))
    ax.set_ylabel(str(pivot.index.name or "").removeprefix("p."))
    best = np.unravel_index(np.nanargmax(vals), vals.shape) if np.isfinite(vals).any() else None
    if best is not None:
        ax.plot(best[1], best[0], marker="*", color="red", markersize=12)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _line_1d(pivot: pd.DataFrame, robust: pd.DataFrame, path: Path, metric: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    x = [str(c) for c in pivot.columns]
    ax.plot(x, pivot.iloc[0].to_numpy(dtype=float), marker="o", label=metric)
    ax.plot(x, robust.iloc[0].to_numpy(dtype=float), label=f"{metric}, neighbour mean")
    ax.set_xlabel(str(pivot.columns.name or "").removeprefix("p."))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------- html
def metrics_frame(results: Sequence[BacktestResult]) -> pd.DataFrame:
    keep = [*SUMMARY_METRICS, "start", "end", "fill", "rule"]
    rows = {r.label: {k: r.metrics.get(k) for k in keep} for r in results}
    return pd.DataFrame.from_dict(rows, orient="index")


def _strategy_sections(results: Sequence[BacktestResult], out: Path, tearsheets: bool) -> list:
    """Metrics, curves, drawdowns, rolling Sharpe, monthly heatmaps, tear sheets."""
    table = metrics_frame(results)
    table.to_csv(out / "metrics.csv", index_label="run", float_format="%.10g")
    growth = growth_frame(results)
    dd = drawdown_frame(results)
    rs = rolling_sharpe_frame(results)
    growth.to_csv(out / "equity.csv", index_label="date", float_format="%.10g")
    dd.to_csv(out / "drawdowns.csv", index_label="date", float_format="%.10g")
    rs.to_csv(out / "rolling_sharpe.csv", index_label="date", float_format="%.10g")
    monthly = pd.concat(
        {r.label: monthly_returns(r.returns) for r in results}, names=["run", "year"]
    )
    monthly.to_csv(out / "monthly_returns.csv", float_format="%.10g")
    sections = [_section("Metrics", _table(formatted(table)))]
    if any(r.metrics.get("look_ahead") for r in results):
        sections.append(
            _p("* same_close fills on the close the signal observed (look-ahead).", "warn")
        )
    sections += [
        _section(
            "Equity curves",
            _img(_line_plot(growth, out / "equity.png", "growth of 1", "growth", True), "equity"),
        ),
        _section(
            "Drawdowns",
            _img(_line_plot(dd, out / "drawdowns.png", "drawdown", "drawdown"), "drawdowns"),
        ),
        _section(
            f"Rolling Sharpe ({ROLLING_SHARPE_BARS} bars)",
            _img(
                _line_plot(rs, out / "rolling_sharpe.png", "rolling Sharpe", "Sharpe"),
                "rolling Sharpe",
            ),
        ),
        _section(
            "Monthly returns",
            _img(_monthly_plot(results, out / "monthly_returns.png"), "monthly returns"),
        ),
    ]
    if tearsheets:
        imgs = []
        for i, r in enumerate(results):
            path = out / f"tearsheet_{i:02d}_{r.label}.png"
            plot_tearsheet(r, path, full=False)  # the run folders hold the full sheets
            imgs.append(f"<h3>{html.escape(_label(r))}</h3>\n{_img(path, 'tear sheet')}")
        sections.append(_section("pyfolio tear sheets", *imgs))
    return sections


def write_report(
    results: Sequence[BacktestResult],
    out_dir: Path,
    *,
    title: str = "Strategy comparison",
    tearsheets: bool = True,
    extra_sections: Sequence[str] = (),
    lead_sections: Sequence[str] = (),
) -> Path:
    """Write ``out_dir/report.html`` (self-contained) with PNG and CSV files beside it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = list(lead_sections)
    if results:
        sections += _strategy_sections(results, out, tearsheets)
    sections += list(extra_sections)
    path = out / REPORT_NAME
    path.write_text(_page(title, sections), encoding="utf-8")
    log.info("wrote %s", path)
    return path


# --------------------------------------------------------------------------- sweeps
def _parameter_sections(plan, frame: pd.DataFrame, out: Path) -> list[str]:
    metric = plan.spec.rank.metric
    maximise = plan.spec.rank.maximise
    if not plan.is_grid:
        return [_section("Parameter heatmap", _p("not drawn: the sweep samples at random"))]
    pivot = grid_pivot(frame, list(plan.axes), metric)
    if pivot.empty:
        return [_section("Parameter heatmap", _p("no finished runs with numeric parameters"))]
    sign = 1.0 if maximise else -1.0
    robust = neighbour_mean(pivot)
    pivot.to_csv(out / "heatmap.csv", float_format="%.10g")
    robust.to_csv(out / "robustness.csv", float_format="%.10g")

    def best_of(p: pd.DataFrame) -> str:
        v = sign * p.to_numpy(dtype=float)
        if not np.isfinite(v).any():
            return "n/a"
        i, j = np.unravel_index(np.nanargmax(v), v.shape)
        rname = str(p.index.name or "").removeprefix("p.")
        cname = str(p.columns.name or "").removeprefix("p.")
        where = (
            f"{cname}={p.columns[j]}"
            if len(p) == 1
            else (f"{rname}={p.index[i]}, {cname}={p.columns[j]}")
        )
        return f"{where} ({metric} {sign * v[i, j]:.4g})"

    text = _p(
        f"best single run: {best_of(pivot)}; best neighbourhood (robust choice): "
        f"{best_of(robust)}. The robustness view averages each cell with its neighbours."
    )
    if len(pivot) == 1:
        img = _img(_line_1d(pivot, robust, out / "heatmap.png", metric), "parameter line")
        return [_section(f"Parameter sensitivity ({metric})", img, text)]
    shown = pivot if maximise else -pivot
    flipped = "" if maximise else ", sign flipped: higher is better"
    heat = _heatmap(shown, out / "heatmap.png", f"{metric} over the grid", metric)
    return [
        _section(f"Parameter heatmap ({metric}{flipped})", _img(heat, "heatmap")),
        _section(
            "Robustness (neighbour mean)",
            _img(
                _heatmap(
                    robust if maximise else -robust,
                    out / "robustness.png",
                    f"{metric} averaged over neighbouring parameters",
                    metric,
                ),
                "robustness",
            ),
            text,
        ),
    ]


def _walkforward_tearsheet(wf, out: Path) -> str:
    """pyfolio's returns tear sheet of the in-sample run followed by the stitched out-of-sample
    path, with ``live_start_date`` at the out-of-sample start (pyfolio then splits its statistics
    and shades the out-of-sample period); a rolling walk-forward has no single in-sample run."""
    oos = wf.out_of_sample
    live = oos.returns.index[0]
    if wf.in_sample is None:
        return _p(
            "no in-sample/out-of-sample tear sheet: a rolling walk-forward re-chooses the "
            "parameters in every window (see the windows table)"
        )
    before = wf.in_sample.returns[wf.in_sample.returns.index < live]
    path_ = replace(
        oos,
        config=oos.config.with_overrides(name=f"{oos.label}_walkforward"),
        returns=pd.concat([before, oos.returns]),
        transactions=oos.transactions.iloc[0:0],
    )
    png = out / "walkforward_tearsheet.png"
    plot_tearsheet(path_, png, live_start_date=live, full=False)
    return _img(png, "walk-forward tear sheet") + _p(
        f"out-of-sample from {live:%Y-%m-%d} (pyfolio's live_start_date)"
    )


def _walkforward_sections(wf, out: Path, tearsheets: bool = False) -> list[str]:
    wf.side_by_side.to_csv(out / "walkforward_side_by_side.csv", float_format="%.10g")
    wf.windows.to_csv(out / "walkforward_windows.csv", index=False, float_format="%.10g")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    start = 1.0
    if wf.in_sample is not None:
        g = wf.in_sample.equity / wf.in_sample.config.execution.initial_cash
        ax.plot(g.index, g.to_numpy(), color="tab:blue", label="in-sample (chosen run)")
        start = float(g.iloc[-1])
    o = wf.out_of_sample.equity / wf.out_of_sample.config.execution.initial_cash * start
    ax.plot(o.index, o.to_numpy(), color="tab:orange", label="out-of-sample (stitched)")
    for _, row in wf.windows.iterrows():
        ax.axvline(row["test_start"], color="grey", alpha=0.3, linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title("walk-forward: in-sample then out-of-sample")
    img = _img(_save(fig, out / "walkforward.png"), "walk-forward equity")
    shown = wf.windows.copy()
    for c in ("train_start", "train_end", "test_start", "test_end"):
        shown[c] = pd.to_datetime(shown[c]).dt.strftime("%Y-%m-%d")
    return [
        _section(
            "Walk-forward: in-sample vs out-of-sample",
            _p(f"parameters chosen in-sample by {wf.rank}; out-of-sample segments stitched"),
            _table(formatted(wf.side_by_side.T).T),
            img,
        ),
        _section("Walk-forward windows", _table(shown, index=False)),
        *(
            [_section("Walk-forward tear sheet", _walkforward_tearsheet(wf, out))]
            if tearsheets
            else []
        ),
    ]


def _overfitting_section(stats) -> str:
    """The sweep's selection-bias statistics: an ``OverfitStats`` (``engine.sweep.overfit``:
    verdict, grid-edge warnings, PSR/DSR/PBO rows), or a plain mapping or table of them."""
    if isinstance(stats, pd.DataFrame):
        return _section("Overfitting statistics", _table(formatted(stats)))
    if isinstance(stats, Mapping):
        return _section("Overfitting statistics", key_values(dict(stats)))
    parts = [_p(stats.verdict(), "ok" if stats.significant else "warn")]
    parts += [_p(f"best run on the edge of the grid: {w}", "warn") for w in stats.boundary]
    table = pd.DataFrame(stats.rows(), columns=["statistic", "value"])
    parts.append(_table(table, index=False))
    return _section("Selection bias: PSR, DSR and PBO", *parts)


def write_sweep_report(
    plan,
    frame: pd.DataFrame,
    top: Sequence[BacktestResult],
    out_dir: Path,
    *,
    drift: pd.DataFrame | None = None,
    walkforward=None,
    tearsheets: bool = True,
    overfitting=None,
    grid: pd.DataFrame | None = None,
    counts: tuple[int, int] | None = None,
) -> Path:
    """The sweep's report: ranking, drift check, parameter views, walk-forward, top runs.

    A sweep too large to read whole passes ``frame`` as its best runs (and some failed ones),
    ``grid`` as the rank metric averaged per cell of its two longest axes (columns ``p.<axis>``
    and the metric) for the parameter views, and ``counts`` (finished, failed) of all its runs.

    ``overfitting`` (else the walk-forward result's ``overfitting`` attribute): an object with
    ``rows()`` ((label, value) pairs), ``verdict()`` and ``boundary`` (warnings), as
    ``engine.sweep.overfit.OverfitStats``, or a mapping / table of statistics; shown as its own
    section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metric = plan.spec.rank.metric
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    frame.to_csv(out / "sweep_results.csv", float_format="%.10g")
    n_ok, n_failed = counts if counts is not None else (len(ok), len(failed))
    shown = (
        f" (this report shows the best {len(ok)} and {len(failed)} failed; ranking.csv and "
        "sweep.sqlite have every run)"
        if counts is not None
        else ""
    )
    lead = [
        _p(
            f"{n_ok + n_failed} runs: {n_ok} finished, {n_failed} failed{shown}; ranked by "
            f"{plan.spec.rank.describe()}; base rule: {plan.base.params.describe()}; fill: "
            f"{plan.base.execution.fill_label()}"
        )
    ]
    if walkforward is not None:
        lead += _walkforward_sections(walkforward, out, tearsheets)
    if overfitting is None and walkforward is not None:
        overfitting = getattr(walkforward, "overfitting", None)
    if overfitting is not None:
        lead.append(_overfitting_section(overfitting))
    if len(ok):
        asc = not plan.spec.rank.maximise
        best = ok.sort_values([metric, "idx"], ascending=[asc, True]).head(20)
        cols = [c for c in best.columns if c.startswith("p.")] + [
            m
            for m in ("sharpe", "psr", "dsr", "cagr", "max_drawdown", "calmar", "trades")
            if m in best
        ]
        if metric not in cols:
            cols.append(metric)
        lead.append(_section("Best runs", _table(formatted(best[cols]))))
    if len(failed):
        lead.append(
            _section(
                "Failed runs",
                _table(failed[[c for c in failed.columns if c.startswith("p.")] + ["error"]]),
            )
        )
    if drift is not None and len(drift):
        verdict = (
            _p("the fast path agrees with the event-driven runs", "ok")
            if bool(drift["agrees"].all())
            else _p("DRIFT: the fast path differs from the event-driven runs", "warn")
        )
        lead.append(
            _section(
                f"Event-driven re-run of the top {len(drift)} (drift vs fast path)",
                verdict,
                _table(drift, index=False),
            )
        )
    lead += _parameter_sections(plan, ok if grid is None else grid, out)
    return write_report(
        list(top),
        out,
        title=f"Sweep {plan.name}",
        tearsheets=tearsheets,
        lead_sections=lead,
    )
