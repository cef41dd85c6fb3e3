"""Reproduce the seed article's Isolation Forest on GS options of 2016-01-05.

Writes ``gs_2016-01-05.md`` (flagged contracts) and ``gs_scatter.png`` (the article's scatter
of underlying - strike against the bid/ask mean, anomalies highlighted) beside this file:

    python docs/anomaly/gs_example.py [path/to/option_GS_df.csv]

The default data path is ``../shared/data/us_option_chains/option_GS_df.csv`` relative to the
repository (or ``$VOLBT_DATA_ROOT/us_option_chains/option_GS_df.csv``).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from volbacktest.engine.calculators.anomaly import (
    ARTICLE_CONFIG,
    AnomalyResult,
    score_cross_section,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def gs_result(path: str | Path) -> AnomalyResult:
    """Article settings on the GS file (loaded with data.chains.load_gs_options, no drops)."""
    from volbacktest.data.chains import load_gs_options

    chain = load_gs_options(path, policy=None)  # the article used all 858 rows
    return score_cross_section(chain, ARTICLE_CONFIG)


def flagged_table(result: AnomalyResult) -> pd.DataFrame:
    """Flagged contracts with the article's six features (rounded as the article) and score."""
    c = result.contracts
    flagged = c.loc[c["is_anomaly"]].sort_values("score", ascending=False)
    return pd.DataFrame(
        {
            "contract": flagged["contract"],
            "type": flagged["cp"],
            "expiry": flagged["expiry"].dt.strftime("%Y-%m-%d"),
            "strike": flagged["strike"],
            "delta": flagged["delta"],
            "gamma": flagged["gamma"],
            "days": flagged["days_to_expiry"].astype(int),
            "S-K (rounded)": flagged["underlying_minus_strike"].round().astype(int),
            "bid": flagged["bid"],
            "ask": flagged["ask"],
            "mean (rounded)": flagged["mid"].round().astype(int),
            "score": flagged["score"].round(4),
        }
    )


def write_markdown(result: AnomalyResult, out: Path) -> None:
    table = flagged_table(result)
    n = len(result.contracts)
    c = ARTICLE_CONFIG.forest.contamination
    lines = [
        "# GS options 2016-01-05: contracts flagged by the article's Isolation Forest",
        "",
        f"{len(table)} of {n} contracts flagged (contamination {c} x {n} = {c * n:.2f}, "
        f"i.e. at most ceil = {math.ceil(c * n)} below the 2.5 % score quantile). Settings: "
        "`n_estimators=10, contamination=0.025, random_state=19117, max_features=6`, features "
        "strike, delta, gamma, days to expiry, underlying - strike (rounded), bid/ask mean "
        "(rounded), rows in the file's order. Score: Liu et al.'s anomaly score (higher = more "
        "anomalous). Regenerate with `python docs/anomaly/gs_example.py`.",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![scatter](gs_scatter.png)", ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def plot_scatter(result: AnomalyResult, out: Path) -> None:
    """The article's chart: S - K (rounded) vs bid/ask mean (rounded), by type and label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.contracts
    x = c["underlying_minus_strike"].round()
    y = c["mid"].round()
    fig, ax = plt.subplots(figsize=(10, 6))
    styles = [
        (
            "P",
            False,
            {"label": "Normal put", "c": "#3498db", "s": 25, "alpha": 0.55, "marker": "x"},
        ),
        ("C", False, {"label": "Normal call", "c": "#9b59b6", "s": 25, "alpha": 0.55}),
        ("C", True, {"label": "Anomaly call", "c": "red", "s": 120, "edgecolor": "black"}),
        (
            "P",
            True,
            {"label": "Anomaly put", "c": "orange", "s": 120, "marker": "X", "edgecolor": "black"},
        ),
    ]
    for cp, flagged, kw in styles:
        mask = (c["cp"] == cp) & (c["is_anomaly"] == flagged)
        ax.scatter(x[mask], y[mask], **kw)
    ax.set_xlabel("Underlying minus strike (USD, rounded)")
    ax.set_ylabel("Average of bid and ask (USD, rounded)")
    ax.set_title("GS options 2016-01-05: Isolation Forest anomalies (article settings)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    root = Path(os.environ.get("VOLBT_DATA_ROOT", REPO.parent / "shared" / "data"))
    path = Path(argv[1]) if len(argv) > 1 else root / "us_option_chains" / "option_GS_df.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = gs_result(path)
    write_markdown(result, HERE / "gs_2016-01-05.md")
    plot_scatter(result, HERE / "gs_scatter.png")
    sys.stdout.write(flagged_table(result).to_string(index=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
