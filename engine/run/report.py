"""Results on disk: one folder per run, and a comparison for several runs.

Per run: ``config.yaml`` (resolved), ``metrics.json``, ``run.json`` (provenance: see
``engine.run.provenance``), ``returns``, ``positions``, ``transactions`` and ``weights`` as plain
CSVs (header on line 1: ``pd.read_csv`` reads them without options) or Parquet files
(``report.format: parquet``), ``round_trips.csv`` (FIFO round trips, engine.run.trades),
``equity.png`` (equity and drawdown), ``tearsheet.png`` (pyfolio-reloaded tear sheet) and
``report.html`` (the run's self-contained page, engine.run.html); ``report.benchmark`` adds the
benchmark-relative metrics to metrics.json (engine.run.analysis). The folder is written whole
(engine.run.outputs). A comparison writes ``metrics.csv``, ``metrics.md`` and ``equity.png`` with
the curves overlaid. Plotting is headless (Agg) and imported lazily.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from volbacktest.engine.errors import require_extra
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import dump_config
from volbacktest.engine.run.analysis import analyse
from volbacktest.engine.run.futures_report import plot_futures_equity, write_futures_tables
from volbacktest.engine.run.html import write_run_page
from volbacktest.engine.run.outputs import atomic_dir
from volbacktest.engine.run.provenance import run_record

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    ("cagr", "CAGR", "{:.1%}"),
    ("annual_volatility", "Vol", "{:.1%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "MaxDD", "{:.1%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("turnover", "Turnover", "{:.1f}"),
    ("trades", "Trades", "{:d}"),
    ("exposure", "Exposure", "{:.0%}"),
]


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported only when plotting)."""
    mpl = require_extra("matplotlib", "dev")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metrics_table(results: Sequence[BacktestResult]) -> pd.DataFrame:
    # nested entries (metrics.json's warm-up detail) stay out of the flat table
    rows = {
        r.label: {k: v for k, v in r.metrics.items() if not isinstance(v, dict)} for r in results
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def format_table(results: Sequence[BacktestResult]) -> str:
    """A fixed-width summary table for the console."""
    header = ["run"] + [h for _, h, _ in SUMMARY_COLUMNS] + ["fill"]
    lines = []
    for r in results:
        row = [r.label]
        for key, _, fmt in SUMMARY_COLUMNS:
            v = r.metrics.get(key)
            row.append("n/a" if v is None else fmt.format(v))
        row.append(r.metrics["fill"].split(" ")[0] + ("*" if r.metrics["look_ahead"] else ""))
        lines.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]

    def fmt_row(cells) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        return "  ".join(
            [first] + [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        )

    out = [fmt_row(header)] + [fmt_row(row) for row in lines]
    if any(r.metrics["look_ahead"] for r in results):
        out.append("* same_close: filled on the close the signal observed (look-ahead)")
    return "\n".join(out)


def _markdown(df: pd.DataFrame) -> str:
    cols = ["run"] + list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = [str(idx)]
        for v in row:
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _title(r: BacktestResult) -> str:
    return f"{r.label} — {r.metrics['rule']} — fill: {r.metrics['fill']}"


def equity_figure(result: BacktestResult):
    """Equity (log scale) and drawdown as a matplotlib Figure, outside pyplot's figure manager
    (nothing is shown, written or switched: the caller saves or displays it)."""
    require_extra("matplotlib", "dev")
    from matplotlib.figure import Figure

    eq = result.equity
    dd = eq / eq.cummax() - 1.0
    fig = Figure(figsize=(10, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(eq.index, eq.to_numpy())
    ax1.set_yscale("log")
    ax1.set_ylabel("equity")
    ax1.set_title(_title(result), fontsize=9)
    ax2.fill_between(dd.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.5)
    ax2.set_ylabel("drawdown")
    fig.tight_layout()
    return fig


def plot_equity(result: BacktestResult, path: Path) -> None:
    """Equity and drawdown written to ``path`` (no pyplot involved)."""
    equity_figure(result).savefig(path, dpi=90)


def _pyfolio_inputs(result: BacktestResult):
    """positions (value per asset + cash) and transactions (amount, price, symbol on a date
    index) in pyfolio's layout."""
    tx = result.transactions
    txns = pd.DataFrame(
        {
            "amount": tx["size"].to_numpy(float),
            "price": tx["price"].to_numpy(float),
            "symbol": tx["symbol"].to_numpy(),
        },
        index=pd.DatetimeIndex(tx["date"], name="date"),
    )
    return result.positions, txns


def _fix_layout(fig, title: str) -> None:
    """pyfolio sizes its figures 6 inches per row and keeps matplotlib's default margins (12% of
    the height above the first chart: several inches of blank band); keep half an inch."""
    height = fig.get_figheight()
    fig.subplots_adjust(top=1.0 - 0.7 / height, bottom=0.4 / height)
    if title:
        fig.suptitle(title, fontsize=11, y=1.0 - 0.15 / height)


def _transactions_sheet(plt, returns, positions, txns):
    """pyfolio's transactions sheet without its time-of-day histogram (daily bars carry no time
    of day, and pyfolio's histogram needs tz-aware fills): turnover, daily volume, turnover
    histogram, drawn by pyfolio's own plotting functions."""
    from pyfolio import plotting

    fig = plt.figure(figsize=(14, 3 * 6))
    ax_turnover, ax_volume, ax_hist = fig.subplots(3, 1, gridspec_kw={"hspace": 0.5})
    plotting.plot_turnover(returns, txns, positions, ax=ax_turnover)
    plotting.plot_daily_volume(returns, txns, ax=ax_volume)
    plotting.plot_daily_turnover_hist(txns, positions, ax=ax_hist)
    return fig


def _readable_sheet(fig, has_benchmark: bool) -> None:
    """The returns sheet's monthly heatmap widened to two thirds of the page (the annual returns
    take the last third; the monthly distribution is dropped: the run page tabulates both), and
    no panel claims a benchmark the run does not have."""
    by_title = {ax.get_title(): ax for ax in fig.axes}
    heat = by_title.get("Monthly returns (%)")
    annual = by_title.get("Annual returns")
    dist = by_title.get("Distribution of monthly returns")
    if heat is not None and annual is not None and dist is not None:
        h, a = heat.get_position(), annual.get_position()
        annual.set_position(dist.get_position())
        heat.set_position([h.x0, h.y0, a.x1 - h.x0, h.height])
        fig.delaxes(dist)
    matched = by_title.get("Cumulative returns volatility matched to benchmark")
    if matched is not None and not has_benchmark:
        matched.set_title("Cumulative returns (no benchmark: set report.benchmark)")


def tearsheet_figures(
    result: BacktestResult,
    benchmark: pd.Series | None = None,
    live_start_date=None,
    *,
    full: bool = True,
) -> list:
    """pyfolio-reloaded's tear sheets as matplotlib Figures released from pyplot's figure
    manager: the returns sheet (with ``benchmark`` returns, positions, transactions and the
    out-of-sample start ``live_start_date`` when given) and, when ``full``, the positions and
    transactions sheets. Third-party deprecation noise and printed tables are contained here."""
    require_extra("matplotlib", "dev")
    import matplotlib.pyplot as plt

    returns = result.returns.astype(float)
    bench = None
    if benchmark is not None:
        bench = benchmark.reindex(returns.index).fillna(0.0).rename("benchmark")
    positions, txns = _pyfolio_inputs(result)
    has_trades = len(txns) > 0
    figs = []
    # pyfolio prints its tables through IPython.display (to stdout) and emits pandas/matplotlib
    # deprecation warnings of its own; both are contained here
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        pf = require_extra("pyfolio", "dev")
        figs.append(
            pf.create_returns_tear_sheet(
                returns,
                positions=positions if has_trades else None,
                transactions=txns if has_trades else None,
                benchmark_rets=bench,
                live_start_date=live_start_date,
                return_fig=True,
            )
        )
        if full and has_trades:
            figs.append(pf.create_position_tear_sheet(returns, positions, return_fig=True))
            figs.append(_transactions_sheet(plt, returns, positions, txns))
    for i, fig in enumerate(figs):
        _fix_layout(fig, _title(result) if i == 0 else "")
        if i == 0:
            _readable_sheet(fig, bench is not None)
        plt.close(fig)  # the caller owns it: pyplot neither shows nor keeps it
    return figs


def tearsheet_figure(result: BacktestResult, benchmark: pd.Series | None = None):
    """pyfolio-reloaded's returns tear sheet as a matplotlib Figure (see
    :func:`tearsheet_figures`)."""
    return tearsheet_figures(result, benchmark, full=False)[0]


def plot_tearsheet(
    result: BacktestResult,
    path: Path,
    benchmark: pd.Series | None = None,
    live_start_date=None,
    *,
    full: bool = True,
) -> None:
    """pyfolio-reloaded's full tear sheet (returns, positions, transactions; only the returns
    sheet unless ``full``) written to ``path`` as one PNG, the sheets stacked (headless)."""
    from PIL import Image

    pyplot()
    images = []
    for fig in tearsheet_figures(result, benchmark, live_start_date, full=full):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=60)
        buf.seek(0)
        images.append(Image.open(buf).convert("RGB"))
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    sheet.save(path, optimize=True)


def write_tables(
    result: BacktestResult, out: Path, round_trips: pd.DataFrame | None = None
) -> dict[str, str]:
    """returns, positions, weights, transactions (and the round trips when given) as plain
    tables (``report.format``: CSV with the header on line 1, or Parquet); the labels a comment
    line used to carry are in ``metrics.json`` and ``run.json``. Returns file name -> what it
    holds."""
    fmt = result.config.report.format
    tables = {
        "returns": (result.returns.rename("return").to_frame(), True, "daily returns"),
        "positions": (result.positions, True, "value per asset and cash"),
        "weights": (result.weights, True, "target weights decided per bar"),
        "transactions": (result.transactions, False, "every fill"),
    }
    if round_trips is not None:
        tables["round_trips"] = (round_trips, False, "FIFO round trips built from the fills")
    written = {}
    for name, (frame, dated, what) in tables.items():
        if fmt == "parquet":
            require_extra("pyarrow", "storage")
            path = out / f"{name}.parquet"
            table = frame.rename_axis("date") if dated else frame.reset_index(drop=True)
            table.to_parquet(path, index=dated)
        else:
            path = out / f"{name}.csv"
            if dated:
                frame.to_csv(path, index_label="date", float_format="%.10g")
            else:
                frame.to_csv(path, index=False, float_format="%.10g")
        written[path.name] = what
    return written


def write_run(result: BacktestResult, out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write one run's folder ``out_dir/<label>/``; returns its path.

    The folder is written whole in a temporary sibling and moved into place when complete
    (:func:`~volbacktest.engine.run.outputs.atomic_dir`): an existing folder is refused unless
    ``overwrite``, and then replaced whole (no file of the earlier run is left beside the new
    ones)."""
    final = Path(out_dir) / result.label
    with atomic_dir(final, overwrite=overwrite) as out:
        _write_run_files(result, out)
    log.info("wrote %s", final)
    return final


def _write_run_files(result: BacktestResult, out: Path) -> None:
    (out / "config.yaml").write_text(dump_config(result.config), encoding="utf-8")
    analysis = analyse(result)  # benchmark and round trips (issue 15)
    meta = {"run": result.label, **result.metrics} | analysis.metrics
    meta["market_notes"] = list(result.market_notes) + list(analysis.notes)
    meta["problems"] = list(result.problems)
    (out / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    outputs = write_tables(result, out, analysis.trips.trips)
    if result.margin is not None:  # a futures run: contracts, trades, margin (issue 12)
        outputs |= write_futures_tables(result, out)
    record = run_record(result, outputs)
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n", "utf-8")
    rep = result.config.report
    if rep.plots and result.margin is not None:  # equity with the margin lines
        plot_futures_equity(result, out / "equity.png")
    elif rep.plots:
        plot_equity(result, out / "equity.png")
    if rep.tearsheet:
        plot_tearsheet(result, out / "tearsheet.png", analysis.benchmark)
    if rep.html:
        write_run_page(result, analysis, out)


def write_comparison(
    results: Sequence[BacktestResult], out_dir: Path, *, overwrite: bool = False
) -> Path:
    """Metrics table (CSV, Markdown) and overlaid equity curves for several runs, written
    whole into ``out_dir`` (refused when it exists, unless ``overwrite``)."""
    with atomic_dir(out_dir, overwrite=overwrite) as out:
        _write_comparison_files(results, out)
    return Path(out_dir)


def _write_comparison_files(results: Sequence[BacktestResult], out: Path) -> None:
    table = metrics_table(results)
    table.to_csv(out / "metrics.csv", index_label="run", float_format="%.10g")
    (out / "metrics.md").write_text(_markdown(table), encoding="utf-8")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    for r in results:
        growth = r.equity / r.config.execution.initial_cash
        star = " *look-ahead*" if r.metrics["look_ahead"] else ""
        ax.plot(
            growth.index,
            growth.to_numpy(),
            label=f"{r.label} ({r.metrics['fill'].split()[0]}){star}",
        )
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1")
    ax.legend(fontsize=8)
    ax.set_title("equity curves")
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=90)
    plt.close(fig)
