"""Results on disk: one folder per run, and a comparison for several runs.

Per run: ``config.yaml`` (resolved), ``metrics.json``, ``returns.csv``, ``positions.csv``,
``transactions.csv``, ``weights.csv``, ``equity.png`` (equity and drawdown) and ``tearsheet.png``
(pyfolio-reloaded returns tear sheet). A comparison writes ``metrics.csv``, ``metrics.md`` and
``equity.png`` with the curves overlaid. Plotting is headless (Agg) and imported lazily.
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
from volbacktest.engine.run.futures_report import write_futures_outputs

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
    rows = {r.label: r.metrics for r in results}
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


def tearsheet_figure(result: BacktestResult):
    """pyfolio-reloaded's returns tear sheet as a matplotlib Figure, released from pyplot's
    figure manager (third-party deprecation noise and printed tables are contained here)."""
    require_extra("matplotlib", "dev")
    import matplotlib.pyplot as plt

    # pyfolio prints its tables through IPython.display (to stdout) and emits pandas/matplotlib
    # deprecation warnings of its own; both are contained here
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        pf = require_extra("pyfolio", "dev")
        fig = pf.create_returns_tear_sheet(result.returns, return_fig=True)
    fig.suptitle(_title(result), fontsize=10, y=1.0)
    plt.close(fig)  # the caller owns it: pyplot neither shows nor keeps it
    return fig


def plot_tearsheet(result: BacktestResult, path: Path) -> None:
    """pyfolio-reloaded's returns tear sheet written to ``path`` (headless)."""
    pyplot()
    tearsheet_figure(result).savefig(path, dpi=60, bbox_inches="tight")


def write_run(result: BacktestResult, out_dir: Path) -> Path:
    """Write one run's folder; returns its path."""
    out = Path(out_dir) / result.label
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(result.config), encoding="utf-8")
    meta = dict(result.metrics)
    meta["market_notes"] = list(result.market_notes)
    meta["problems"] = list(result.problems)
    (out / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    header = f"# {result.label}: fill {result.metrics['fill']}\n"
    for name, frame in (
        ("returns.csv", result.returns.to_frame()),
        ("positions.csv", result.positions),
        ("weights.csv", result.weights),
    ):
        with open(out / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(header)
            frame.to_csv(fh, index_label="date", float_format="%.10g")
    with open(out / "transactions.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write(header)
        result.transactions.to_csv(fh, index=False, float_format="%.10g")
    rep = result.config.report
    if rep.plots:
        plot_equity(result, out / "equity.png")
    if rep.tearsheet:
        plot_tearsheet(result, out / "tearsheet.png")
    if result.margin is not None:  # a futures run: contracts, trades, margin, margin plot
        write_futures_outputs(result, out, header, rep.plots)
    log.info("wrote %s", out)
    return out


def write_comparison(results: Sequence[BacktestResult], out_dir: Path) -> Path:
    """Metrics table (CSV, Markdown) and overlaid equity curves for several runs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    return out
