"""Extra outputs of a VIX futures run (issue 12), written into its run folder by ``write_run``.

* ``contracts.csv``: signed contracts held per contract after each close (``positions.csv``
  has their notional value per contract plus cash, pyfolio's layout);
* ``trades.csv``: every contract trade with its reason (``signal``, ``rebalance``, ``roll``,
  ``margin_call``, ``final_settlement``), price (settle) and fee;
* ``margin.csv``: equity, initial and maintenance margin, notional and the margin cushion
  ``(equity − maintenance) / equity`` per day;
* ``equity.png``: equity with the initial and maintenance margin lines, and the cushion.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from volbacktest.engine.errors import require_extra
from volbacktest.engine.execution.result import BacktestResult


def margin_frame(result: BacktestResult) -> pd.DataFrame:
    daily = result.margin.copy()
    held = daily["maintenance_margin"] > 0
    daily["cushion"] = ((daily["equity"] - daily["maintenance_margin"]) / daily["equity"]).where(
        held
    )
    return daily


def futures_equity_figure(result: BacktestResult):
    """Equity and the margin held (log scale), and the margin cushion, as a Figure."""
    require_extra("matplotlib", "dev")
    from matplotlib.figure import Figure

    daily = margin_frame(result)
    fig = Figure(figsize=(10, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(daily.index, daily["equity"], label="equity")
    ax1.plot(daily.index, daily["initial_margin"], label="initial margin", lw=0.8)
    ax1.plot(daily.index, daily["maintenance_margin"], label="maintenance margin", lw=0.8)
    for event in result.metrics.get("margin_call_events", []):
        ax1.axvline(pd.Timestamp(event["date"]), color="tab:red", lw=0.6, alpha=0.6)
    ax1.set_yscale("log")
    ax1.set_ylabel("USD")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title(f"{result.label} — {result.metrics['rule']}", fontsize=9)
    ax2.plot(daily.index, daily["cushion"], color="tab:green", lw=0.8)
    ax2.axhline(0.0, color="tab:red", lw=0.6)
    ax2.set_ylabel("margin cushion")
    fig.tight_layout()
    return fig


def write_futures_tables(result: BacktestResult, out: Path) -> dict[str, str]:
    """``contracts.csv``, ``trades.csv`` and ``margin.csv`` as plain CSVs (header on line 1);
    returns file name -> what it holds (for run.json)."""
    written = {}
    for name, frame, index, what in (
        ("contracts.csv", result.holdings, True, "signed contracts held per contract"),
        ("trades.csv", result.transactions, False, "contract trades with their reason"),
        ("margin.csv", margin_frame(result), True, "equity, margin, notional and cushion"),
    ):
        frame.to_csv(
            out / name, index=index, index_label="date" if index else None, float_format="%.10g"
        )
        written[name] = what
    return written


def plot_futures_equity(result: BacktestResult, path: Path) -> None:
    futures_equity_figure(result).savefig(path, dpi=90)
