"""Measure the VIX futures strategies of configs/futures on the real CFE files (README section
"Trading VIX futures"): whole period and stress periods, from one run per config.

    python docs/futures/vx_trading.py [--data-root ../shared/data]   # writes vx_trading.md
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [
    "vx_inverse_replica_cfe",
    "vx_basis_cfe",
    "vx_roll_yield_cfe",
    "vx_inverse_replica_2021",
]
STRESS = {
    "2008 Q4": ("2008-10-01", "2008-12-31"),
    "2015-08": ("2015-08-01", "2015-08-31"),
    "2017 to 2017-03-08": ("2017-01-01", "2017-03-08"),
    "2018-02 (continuous file)": ("2018-02-01", "2018-02-28"),
}


LINES: list[str] = []


def emit(*parts) -> None:
    LINES.append(" ".join(str(p) for p in parts))


def _period(res, start, end) -> tuple[float, float, int] | None:
    eq = res.equity
    inside = eq.loc[start:end]
    if inside.empty:
        return None
    before = eq.loc[: pd.Timestamp(start) - pd.Timedelta(days=1)]
    base = before.iloc[-1] if len(before) else res.config.execution.initial_cash
    path = pd.concat([pd.Series([base]), inside.reset_index(drop=True)])
    dd = float((path / path.cummax() - 1).min())
    calls = sum(start <= e["date"] <= end for e in res.metrics["margin_call_events"])
    return float(inside.iloc[-1] / base - 1), dd, calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    os.environ["VOLBT_DATA_ROOT"] = args.data_root
    results = {}
    for name in CONFIGS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[name] = run_backtest(load_config(REPO / "configs" / "futures" / f"{name}.yaml"))
    emit(
        "| config | period | CAGR | vol | Sharpe | max DD | fees paid | trades (roll) | "
        "margin used mean/max | lowest cushion | margin calls |"
    )
    emit("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m = r.metrics
        emit(
            f"| {name} | {m['start']}..{m['end']} | {m['cagr']:.1%} | {m['annual_volatility']:.1%} "
            f"| {m['sharpe']:.2f} | {m['max_drawdown']:.1%} | {m['fees_paid']:,.0f} | "
            f"{m['trades']} ({m['roll_trades']}) | {m['margin_used_mean']:.1%} / "
            f"{m['margin_used_max']:.1%} | {m['margin_cushion_min']:.1%} "
            f"({m['margin_cushion_min_date']}) | {m['margin_calls']} |"
        )
    emit()
    emit("| config | " + " | ".join(STRESS) + " |")
    emit("|---|" + "---|" * len(STRESS))
    for name, r in results.items():
        cells = []
        for start, end in STRESS.values():
            got = _period(r, start, end)
            cells.append("—" if got is None else f"{got[0]:+.1%} (DD {got[1]:.1%}, {got[2]} calls)")
        emit(f"| {name} | " + " | ".join(cells) + " |")
    for name, r in results.items():
        for e in r.metrics["margin_call_events"][:5]:
            emit(
                name,
                e["date"],
                f"equity {e['equity']:,.0f}",
                f"maint {e['maintenance_margin']:,.0f}",
                e["action"],
            )
    rep = results["vx_inverse_replica_cfe"]
    emit(
        "replica 2004-2017 whole contracts, final equity",
        f"{rep.equity.iloc[-1]:,.0f}",
        "max |contracts|",
        int(np.abs(rep.holdings.to_numpy()).max()),
    )


if __name__ == "__main__":
    main()
    text = "\n".join(LINES) + "\n"
    (Path(__file__).with_name("vx_trading.md")).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
