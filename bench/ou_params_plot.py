"""Estimated OU pair parameters over time on GLD/GDX, as the ou_pairs backtest sees them.

Reads the real config (default ``configs/real/ou_pairs_gld_gdx.yaml``), builds its market (the
same adjusted closes and calendar as the backtest) and evaluates the strategy's own per-bar
decision (``strategies.pairs.ou_pairs_decision``) for both estimation methods. Writes a PNG of
k, theta, eta and the half-life over time (marginal and joint, with +-2 standard-error bands for
the marginal k) and prints percentile tables and the share of bars that are not mean-reverting
or where the |h*| cap binds.

    python bench/ou_params_plot.py [--config PATH] [--data ROOT] [--out docs/ou/params.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.ou import TRADING_DAYS_PER_YEAR
from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.inputs.market import market_for
from volbacktest.strategies.pairs import OUPairsParams, ou_pairs_decision

REPO = Path(__file__).resolve().parents[1]
PERCENTILES = (5, 25, 50, 75, 95)
METHODS = ("marginal", "joint")
COLUMNS = ("k", "theta", "eta", "mu", "sigma", "rho", "half_life_days")


def decisions(config: Path, data_root: Path | None) -> tuple[dict[str, pd.DataFrame], str]:
    """Per-bar decision frames (dates index) for each method, and a label for the data."""
    cfg = load_config(config)
    if data_root is not None:
        cfg = cfg.with_overrides(**{"data.root": str(data_root)})
    params = cfg.params
    if not isinstance(params, OUPairsParams):
        raise SystemExit(f"{config}: strategy {cfg.strategy.name!r} is not ou_pairs")
    market = market_for(cfg)
    # the closes the backtest's decision reads: warm-up history (data.warmup) then the calendar
    closes = market.decision_inputs(params.inputs())
    dates = market.calendar
    if market.n_warmup:
        dates = market.warmup.index.append(market.calendar)
    out = {}
    for method in METHODS:
        p = params.model_copy(update={"method": method})
        frame = ou_pairs_decision(closes, p).frame(dates).iloc[market.n_warmup :]
        out[method] = frame.assign(
            half_life_days=frame["half_life_years"] * TRADING_DAYS_PER_YEAR,
            k_lo=frame["k"] - 2 * frame["se_k"],
            k_hi=frame["k"] + 2 * frame["se_k"],
        )
    label = (
        f"ln {params.leg_a.upper()} - ln {params.leg_b.upper()}, {params.window}-bar rolling "
        f"window, {market.calendar[0]:%Y-%m-%d}..{market.calendar[-1]:%Y-%m-%d}"
    )
    return out, label


def percentile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Percentiles of the parameters over the mean-reverting decided bars."""
    ok = frame[frame["decided"] & frame["mean_reverting"]]
    table = {
        f"p{q}": [float(np.percentile(ok[c].to_numpy(), q)) for c in COLUMNS] for q in PERCENTILES
    }
    return pd.DataFrame(table, index=list(COLUMNS))


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table with 3 significant digits (no tabulate dependency)."""
    head = ["", *map(str, table.columns)]
    rows = [
        [str(i), *(f"{v:.3g}" for v in r)]
        for i, r in zip(table.index, table.to_numpy(), strict=True)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary(frame: pd.DataFrame) -> dict[str, float]:
    decided = frame[frame["decided"]]
    return {
        "decided bars": float(len(decided)),
        "not mean-reverting (share)": float((~decided["mean_reverting"]).mean()),
        "|h*| cap binds (share)": float(decided["capped"].mean()),
        "median |h*| (active bars)": float(decided["h_star"].abs().median()),
    }


def plot(frames: dict[str, pd.DataFrame], label: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    colours = {"marginal": "tab:blue", "joint": "tab:orange"}
    for method, frame in frames.items():
        f = frame[frame["decided"]]
        mr = f["mean_reverting"].to_numpy()
        c = colours[method]
        axes[0].plot(f.index, f["k"], color=c, lw=0.9, label=f"{method} k")
        if method == "marginal":
            axes[0].fill_between(f.index, f["k_lo"], f["k_hi"], color=c, alpha=0.15, lw=0)
        axes[1].plot(f.index, f["theta"].where(mr), color=c, lw=0.9, label=method)
        axes[2].plot(f.index, f["eta"], color=c, lw=0.9, label=method)
        axes[3].plot(f.index, f["half_life_days"].where(mr), color=c, lw=0.9, label=method)
    axes[0].axhline(0.0, color="k", lw=0.5)
    axes[0].set_ylabel("k (1/year)")
    axes[0].legend(loc="upper left", fontsize=8, title="band: marginal k +- 2 s.e.")
    axes[1].set_ylabel("theta")
    spread = frames["marginal"]["x"]
    axes[1].plot(spread.index, spread, color="0.5", lw=0.6, label="x = log spread")
    axes[1].legend(loc="upper left", fontsize=8)
    lo, hi = np.nanpercentile(np.r_[spread.to_numpy(), frames["joint"]["theta"]], [1, 99])
    axes[1].set_ylim(lo - 0.3, hi + 0.3)
    axes[2].set_ylabel("eta (1/sqrt(year))")
    axes[3].set_ylabel("half-life (trading days)")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("bar date (fit on closes up to that date; not mean-reverting: gap)")
    fig.suptitle(f"OU pair estimates over time: {label}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs/real/ou_pairs_gld_gdx.yaml")
    ap.add_argument("--data", type=Path, default=None, help="data root (default: searched)")
    ap.add_argument("--out", type=Path, default=REPO / "docs/ou/params.png")
    args = ap.parse_args()
    frames, label = decisions(args.config, args.data)
    print(f"# {label}\n")
    for method, frame in frames.items():
        print(f"## {method}: percentiles over mean-reverting decided bars\n")
        print(markdown(percentile_table(frame)))
        print()
        for key, value in summary(frame).items():
            print(f"- {key}: {value:.3g}")
        print()
    plot(frames, label, args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
