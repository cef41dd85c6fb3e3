"""Self-contained HTML pages: the per-run page (``report.html`` in every run folder) and the
building blocks the comparison and sweep pages share (CSS, tables, embedded images, formatting).

Every page works offline: inline CSS, no JavaScript, every figure a base64 PNG ``data:`` URI
drawn with matplotlib (headless, outside pyplot). Numbers are formatted for reading: returns,
volatilities and drawdowns as percentages, ratios with two decimals, money with thousands
separators, dates as ISO dates; the CSV and JSON files beside a page keep the full precision.

The run page shows the headline metrics, equity (with the benchmark when ``report.benchmark``
names one) and the underwater plot, the worst drawdowns, monthly and annual returns tables,
rolling Sharpe and volatility, exposure and weights over time, the round trips (FIFO, from
:mod:`engine.run.trades`), the rule and fill mode, the data provenance (``run.json`` when the
run folder has one, else the run's data source) and the notes and problems of the run.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.errors import require_extra
from volbacktest.engine.execution.metrics import (
    BENCHMARK_METRICS,
    SUMMARY_METRICS,
    rolling_sharpe,
    rolling_volatility,
)
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import dump_config
from volbacktest.engine.run.trades import TRADE_METRICS

REPORT_NAME = "report.html"
ROLLING_BARS = 126  # about six months of daily bars
SHOWN_ROUND_TRIPS = 40
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #335; }
h3 { font-size: 1.05em; margin: .8em 0 .3em; color: #335; }
table { border-collapse: collapse; font-size: .85em; margin: .6em 0; }
th, td { border: 1px solid #ccd; padding: .25em .55em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
pre { background: #f6f6fa; padding: .6em; font-size: .8em; overflow-x: auto; }
.note { color: #555; font-size: .9em; } .warn { color: #a00; font-weight: bold; }
.ok { color: #070; font-weight: bold; }
.cards { display: flex; flex-wrap: wrap; gap: 1.2em; } .cards table { margin: 0; }
"""

# --------------------------------------------------------------------------- formatting
PERCENT = frozenset(
    {
        "cagr",
        "annual_volatility",
        "max_drawdown",
        "total_return",
        "exposure",
        "time_in_market",
        "alpha",
        "tracking_error",
        "benchmark_cagr",
        "hit_rate",
        "average_return",
        "return",
        "mae",
        "mfe",
        "depth",
    }
)
MONEY = frozenset(
    {
        "final_equity",
        "average_win",
        "average_loss",
        "expectancy",
        "realised_pnl",
        "unrealised_pnl",
        "pnl",
        "commission",
    }
)
COUNTS = frozenset({"trades", "bars", "rebalances", "round_trips"})
RATIOS = frozenset(
    {
        "sharpe",
        "sortino",
        "calmar",
        "turnover",
        "beta",
        "correlation",
        "information_ratio",
        "up_capture",
        "down_capture",
        "profit_factor",
    }
)
KNOWN = PERCENT | MONEY | COUNTS | RATIOS
LABELS = {
    "cagr": "CAGR",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "annual_volatility": "volatility",
    "max_drawdown": "max drawdown",
    "total_return": "total return",
    "time_in_market": "time in market",
    "final_equity": "final equity",
    "information_ratio": "information ratio",
    "tracking_error": "tracking error",
    "up_capture": "up capture",
    "down_capture": "down capture",
    "benchmark_cagr": "benchmark CAGR",
    "round_trips": "round trips",
    "hit_rate": "hit rate",
    "average_win": "average win",
    "average_loss": "average loss",
    "profit_factor": "profit factor",
    "average_return": "average return",
    "realised_pnl": "realised P&L",
    "unrealised_pnl": "open P&L",
}


def fmt(key: str, value) -> str:
    """``value`` of metric ``key`` for reading (percent, ratio, money, count, date or text)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, pd.Timestamp | dt.date):
        return f"{value:%Y-%m-%d}"
    if key in COUNTS:
        return f"{int(value):,d}"
    if key in PERCENT:
        text = f"{100.0 * value:.1f}%" if abs(value) < 100 else f"{100.0 * value:,.0f}%"
        return "0.0%" if text == "-0.0%" else text
    if key in MONEY:
        return f"{value:,.0f}"
    if isinstance(value, int | np.integer):
        return f"{int(value):,d}"
    return f"{value:.2f}" if abs(value) < 1e4 else f"{value:,.0f}"


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with the cells of each metric column formatted for reading (see
    :func:`fmt`); dates as ISO dates; other columns (parameters, labels) kept as they are."""
    out = frame.astype(object).copy()
    for col in frame.columns:
        values = frame[col].tolist()
        if str(col) in KNOWN or pd.api.types.is_datetime64_any_dtype(frame[col]):
            out[col] = [fmt(str(col), v) for v in values]
    return out


# --------------------------------------------------------------------------- html parts
def img_data(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def img(path: Path, alt: str) -> str:
    """A PNG file embedded as a data URI."""
    return img_data(Path(path).read_bytes(), alt)


def figure_img(fig, alt: str, dpi: int = 80) -> str:
    """A matplotlib Figure embedded as a PNG data URI (nothing written to disk)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return img_data(buf.getvalue(), alt)


def table(df: pd.DataFrame, index: bool = True) -> str:
    return df.to_html(
        index=index, escape=True, border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"
    )


def section(title: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n" + "\n".join(parts)


def para(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def page(title: str, sections: Sequence[str]) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"{para(f'written {stamp}; self-contained (no network): images are embedded')}\n"
        f"{body}\n</body>\n</html>\n"
    )


def key_values(pairs: Mapping[str, object], caption: str = "") -> str:
    """A two-column table of formatted metrics (or provenance fields)."""
    rows = "".join(
        f"<tr><td>{html.escape(LABELS.get(k, k.replace('_', ' ')))}</td>"
        f"<td>{html.escape(fmt(k, v))}</td></tr>"
        for k, v in pairs.items()
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tbody>{rows}</tbody></table>"


def _heat_colour(v: float, lim: float) -> str:
    """A red (loss) to green (gain) cell background, white at zero."""
    if not math.isfinite(v) or lim <= 0:
        return ""
    t = max(-1.0, min(1.0, v / lim))
    fade = int(255 - 130 * abs(t))
    rgb = (255, fade, fade) if t < 0 else (fade, 255, fade)
    return f' style="background: rgb{rgb}"'


def returns_grid(table_: pd.DataFrame, columns: Sequence[str]) -> str:
    """A table of returns (fractions) printed as percentages on a red-green scale."""
    vals = table_.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 0.0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
    body = []
    for label, row in zip(table_.index, vals, strict=True):
        cells = "".join(f"<td{_heat_colour(v, lim)}>{fmt('return', float(v))}</td>" for v in row)
        body.append(f"<tr><td>{html.escape(str(label))}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------- run figures
def monthly_returns(returns: pd.Series) -> pd.DataFrame:
    """Compounded returns per calendar month: years (rows) x months 1..12 (columns)."""
    r = returns.astype(float)
    growth = (1.0 + r).groupby([r.index.year, r.index.month]).prod() - 1.0
    long = pd.DataFrame(
        {
            "year": growth.index.get_level_values(0),
            "month": growth.index.get_level_values(1),
            "ret": growth.to_numpy(),
        }
    )
    table_ = long.pivot_table(index="year", columns="month", values="ret", aggfunc="first")
    return table_.reindex(columns=range(1, 13))


def annual_returns(returns: pd.Series) -> pd.Series:
    """Compounded return per calendar year."""
    r = returns.astype(float).dropna()
    return (1.0 + r).groupby(r.index.year).prod() - 1.0


def drawdown_table(equity: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, trough, recovery (or open), depth and length."""
    eq = equity.astype(float)
    peak = eq.cummax()
    dd = eq / peak - 1.0
    rows = []
    under = dd < 0
    start = None
    for i, (d, u) in enumerate(zip(dd.index, under.to_numpy(), strict=True)):
        if u and start is None:
            start = i - 1 if i > 0 else 0
        if start is not None and (not u or i == len(dd) - 1):
            stop = i if not u else None
            seg = dd.iloc[start : (i + 1)]
            rows.append(
                {
                    "peak": dd.index[start],
                    "trough": seg.idxmin(),
                    "recovery": d if stop is not None else None,
                    "depth": float(seg.min()),
                    "bars": (stop if stop is not None else i) - start,
                }
            )
            start = None
    frame = pd.DataFrame(rows, columns=["peak", "trough", "recovery", "depth", "bars"])
    return frame.sort_values("depth").head(top).reset_index(drop=True)


def _figure(height: float, rows: int, ratios=None):
    require_extra("matplotlib", "dev")
    from matplotlib.figure import Figure

    # fixed margins: a constrained layout draws every figure twice (measured: twice as slow)
    fig = Figure(figsize=(11, height))
    fig.subplots_adjust(left=0.07, right=0.99, top=0.98, bottom=0.35 / height, hspace=0.08)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    return fig, axes


def _equity_figure(result: BacktestResult, bench: pd.Series | None):
    fig, (ax1, ax2) = _figure(6.0, 2, [3, 1.3])
    growth = result.equity / result.config.execution.initial_cash
    ax1.plot(growth.index, growth.to_numpy(), label=result.label, linewidth=1.2)
    dd = result.equity / result.equity.cummax() - 1.0
    ax2.fill_between(dd.index, 100 * dd.to_numpy(), 0.0, color="tab:red", alpha=0.45)
    if bench is not None:
        bg = (1.0 + bench.fillna(0.0)).cumprod()
        ax1.plot(bg.index, bg.to_numpy(), label=f"benchmark: {bench.name}", color="grey")
        bdd = bg / bg.cummax() - 1.0
        ax2.plot(bdd.index, 100 * bdd.to_numpy(), color="grey", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_ylabel("growth of 1 (log)")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("underwater (%)")
    ax2.grid(alpha=0.3)
    return fig


def _rolling_figure(result: BacktestResult, bench: pd.Series | None):
    fig, (ax1, ax2) = _figure(4.8, 2)
    for series, label, colour in (
        (result.returns, result.label, "tab:blue"),
        (bench, f"benchmark: {bench.name}" if bench is not None else "", "grey"),
    ):
        if series is None:
            continue
        rs = rolling_sharpe(series.astype(float), ROLLING_BARS)
        rv = rolling_volatility(series.astype(float), ROLLING_BARS)
        ax1.plot(rs.index, rs.to_numpy(), label=label, color=colour, linewidth=1.0)
        ax2.plot(rv.index, 100 * rv.to_numpy(), label=label, color=colour, linewidth=1.0)
    ax1.axhline(0.0, color="black", linewidth=0.6)
    ax1.set_ylabel(f"Sharpe ({ROLLING_BARS} bars)")
    ax2.set_ylabel("volatility (%)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")
    return fig


def _exposure_figure(result: BacktestResult):
    fig, (ax1, ax2) = _figure(4.8, 2)
    values = result.positions.drop(columns="cash")
    weight = values.div(result.equity, axis=0)
    for col in weight.columns:
        ax1.plot(weight.index, 100 * weight[col].to_numpy(), label=str(col), linewidth=0.9)
    gross = weight.abs().sum(axis=1)
    net = weight.sum(axis=1)
    ax2.plot(gross.index, 100 * gross.to_numpy(), label="gross", color="black", linewidth=0.9)
    ax2.plot(net.index, 100 * net.to_numpy(), label="net", color="tab:purple", linewidth=0.9)
    ax1.set_ylabel("weight held (% of equity)")
    ax2.set_ylabel("exposure (%)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", ncol=4)
    return fig


# --------------------------------------------------------------------------- run page
HEADLINE = ("total_return", *SUMMARY_METRICS[:6])  # total return, CAGR .. Calmar
TRADING = ("final_equity", "turnover", "trades", "rebalances", "exposure", "time_in_market")


def _provenance(out: Path, result: BacktestResult) -> list[str]:
    run_json = out / "run.json"
    parts = []
    if run_json.is_file():
        try:
            record = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parts.append(para(f"run.json could not be read: {exc}", "warn"))
        else:
            parts.append(para("from run.json in this folder"))
            parts.append(f"<pre>{html.escape(json.dumps(record, indent=2, default=str))}</pre>")
    parts.append(
        key_values(
            {
                "data source": result.metrics.get("data_source"),
                "first bar": result.metrics.get("start"),
                "last bar": result.metrics.get("end"),
                "bars": result.metrics.get("bars"),
            }
        )
    )
    return parts


def _trips_section(analysis) -> str:
    trips = analysis.trips.trips
    stats = {k: analysis.metrics.get(k) for k in TRADE_METRICS}
    parts = [
        para(
            "FIFO round trips from the fills (transactions.csv); P&L is net of the commission "
            "of the entry and exit fills, slippage is inside the fill prices. All of them are in "
            "round_trips.csv; the latest are shown."
        ),
        key_values(stats),
    ]
    if len(trips):
        shown = trips.tail(SHOWN_ROUND_TRIPS).iloc[::-1]
        parts.append(table(formatted(shown.set_index("symbol"))))
    return section(f"Round trips ({len(trips)})", *parts)


def run_page(result: BacktestResult, analysis, out: Path) -> str:
    """The run page's HTML (see the module docstring); ``out`` is the run folder."""
    m = dict(result.metrics)
    m.update(analysis.metrics)
    bench = analysis.benchmark
    cards = [
        key_values({k: m.get(k) for k in HEADLINE}, "returns and risk"),
        key_values({k: m.get(k) for k in TRADING}, "trading"),
    ]
    if bench is not None:
        cards.append(key_values({k: m.get(k) for k in BENCHMARK_METRICS}, f"against {bench.name}"))
    lead = [
        para(
            f"rule: {m.get('rule')}; fill: {m.get('fill')}; {m.get('start')} .. {m.get('end')} "
            f"({m.get('bars')} bars); data: {m.get('data_source')}"
            + (f"; benchmark: {bench.name}" if bench is not None else "")
        )
    ]
    if m.get("look_ahead"):
        lead.append(para("same_close fills on the close the signal observed (look-ahead).", "warn"))
    sections = [*lead, section("Headline metrics", f'<div class="cards">{"".join(cards)}</div>')]
    sections.append(
        section(
            "Equity and underwater",
            figure_img(_equity_figure(result, bench), "equity and underwater"),
            "<h3>worst drawdowns</h3>",
            table(formatted(drawdown_table(result.equity)), index=False),
        )
    )
    monthly = monthly_returns(result.returns)
    years = annual_returns(result.returns).rename(result.label).to_frame()
    if bench is not None:
        years[f"benchmark: {bench.name}"] = annual_returns(bench)
        years["difference"] = years.iloc[:, 0] - years.iloc[:, 1]
    monthly["year"] = years.iloc[:, 0]
    sections.append(
        section(
            "Monthly returns",
            returns_grid(monthly, [*MONTHS, "year"]),
        )
    )
    sections.append(section("Annual returns", returns_grid(years, list(years.columns))))
    sections.append(
        section(
            f"Rolling Sharpe and volatility ({ROLLING_BARS} bars)",
            figure_img(_rolling_figure(result, bench), "rolling Sharpe and volatility"),
        )
    )
    sections.append(
        section("Exposure and positions", figure_img(_exposure_figure(result), "exposure"))
    )
    sections.append(_trips_section(analysis))
    ex = result.config.execution
    sections.append(
        section(
            "Rule and fill",
            key_values(
                {
                    "strategy": m.get("strategy"),
                    "rule": m.get("rule"),
                    "fill": m.get("fill"),
                    "initial cash": f"{ex.initial_cash:,.0f}",
                    "commission": f"{ex.commission.percent:.4%} + {ex.commission.per_share} "
                    "per share",
                    "slippage": f"{ex.slippage.percent:.4%}",
                }
            ),
            f"<h3>config.yaml</h3><pre>{html.escape(dump_config(result.config))}</pre>",
        )
    )
    sections.append(section("Data provenance", *_provenance(out, result)))
    notes = [*result.market_notes, *analysis.notes]
    problem_parts = [para(p, "warn") for p in result.problems] or [para("no problems", "ok")]
    sections.append(
        section(
            "Notes and problems",
            *(para(n) for n in notes),
            *problem_parts,
        )
    )
    return page(f"{result.label}", sections)


def write_run_page(result: BacktestResult, analysis, out: Path) -> Path:
    """Write ``out/report.html`` for one run (``analysis``: :func:`engine.run.analysis.analyse`)."""
    path = Path(out) / REPORT_NAME
    path.write_text(run_page(result, analysis, Path(out)), encoding="utf-8")
    return path
