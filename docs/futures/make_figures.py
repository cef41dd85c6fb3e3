"""Figures and numbers of docs/futures (VIX futures curve, ETN reconstruction, seed analyses).

    python docs/futures/make_figures.py [--data ../shared/data] [--results results/real_2004]

Writes the PNGs beside this file and ``numbers.md`` (every figure quoted in the README text).
``--results`` is the output folder of ``python run_backtest.py configs/real_2004/*.yaml``: its
per-run ``returns.csv`` give the stress-period table and the stress-period plot (skipped if the
folder is absent). The roll-yield strategy is also re-run on 2004-2013 with both fill modes to
compare with the secondary figure in REFERENCES §3.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.catalogue import load_dataset
from volbacktest.data.cfe import load_cfe_folder, load_vx_settles, matrix_sessions
from volbacktest.engine.calculators.futures import VXX_ANNUAL_FEE, XIV_ANNUAL_FEE
from volbacktest.engine.calculators.futures_curve import (
    SVXY_ANNUAL_FEE,
    SVXY_LEVERAGE_CHANGES,
    VXZ_ANNUAL_FEE,
    ZIV_ANNUAL_FEE,
    constant_maturity,
    futures_curve,
    futures_index,
    futures_vrp,
    max_drawdown,
    roll_yield,
    simulate_etn,
    tracking_stats,
    vix_spx_correlation,
    vix_vs_realised,
)
from volbacktest.engine.cli.futures import plot_term_structure, pyplot

HERE = Path(__file__).resolve().parent
CONTINUOUS = "vix_futures_continuous/vix_futures_VX1-VX8_with_VIX_SP500__quantintell.csv"
STRESS = {
    "2008 crisis (2008-09-01..2008-12-31)": ("2008-09-01", "2008-12-31"),
    "Aug 2015 (2015-08-17..2015-09-30)": ("2015-08-17", "2015-09-30"),
    "Feb 2018 (2018-02-01..2018-02-28)": ("2018-02-01", "2018-02-28"),
}


def _save(fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(HERE / name, dpi=90)
    pyplot().close(fig)


def reconstruction(index, actual: dict[str, pd.Series], lines: list[str]) -> None:
    plt = pyplot()
    notes = {
        "vxx": (
            simulate_etn(index, leverage=1.0, annual_fee=VXX_ANNUAL_FEE).value,
            "2009-01-30",
            None,
        ),
        "xiv": (
            simulate_etn(
                index, leverage=-1.0, annual_fee=XIV_ANNUAL_FEE, after_termination="flat"
            ).value,
            "2010-11-30",
            "2017-03-08",
        ),
    }
    lines += [
        "## Reconstruction against the real notes (daily close-to-close returns)",
        "",
        "| note | period | days | corr 1d | corr 5d | corr 21d | TE 1d %/yr | TE 5d | TE 21d "
        "| lag-1 autocorr of diff | timing share | TE without timing | growth diff %/yr "
        "| vol sim/act | corr lag -1/+1 |",
        "|" + "---|" * 15,
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for col, (name, (sim, start, end)) in enumerate(notes.items()):
        variants = [(start, end)] + ([(start, "2017-03-08")] if end is None else [(start, None)])
        for a, b in variants:
            s = tracking_stats(sim, actual[name], start=a, end=b)
            lines.append(
                f"| {name.upper()} | {s.start:%Y-%m-%d}..{s.end:%Y-%m-%d} | {s.n} "
                f"| {s.correlation:.4f} | {s.horizon_corr[5]:.4f} | {s.horizon_corr[21]:.4f} "
                f"| {s.tracking_error:.1%} | {s.horizon_te[5]:.1%} | {s.horizon_te[21]:.1%} "
                f"| {s.diff_autocorr:.3f} | {s.level_noise_share:.0%} | {s.te_independent:.1%} "
                f"| {s.growth_difference:+.2%} | {s.vol_ratio:.3f} "
                f"| {s.lag_correlation[-1]:+.3f}/{s.lag_correlation[1]:+.3f} |"
            )
        both = pd.concat({"simulated": sim, "actual": actual[name]}, axis=1, join="inner")
        both = both.loc[start:end].dropna()
        ax = axes[0, col]
        (both / both.iloc[0]).plot(ax=ax, logy=True)
        ax.set_title(f"{name.upper()}: simulated from VIX futures vs actual (growth of 1)")
        rets = both.pct_change()
        weekly = both.iloc[::5].pct_change()
        ax = axes[1, col]
        rets["simulated"].rolling(126).corr(rets["actual"]).plot(ax=ax, label="daily returns")
        weekly["simulated"].rolling(26).corr(weekly["actual"]).plot(ax=ax, label="weekly returns")
        ax.axhline(0.995, color="k", lw=0.8, ls="--", label="target 0.995")
        ax.set_ylim(0.6, 1.01)
        ax.set_title("rolling correlation (126 days / 26 weeks)")
        ax.legend(fontsize=8)
    _save(fig, "reconstruction_vxx_xiv.png")
    lines.append("")


def timing_evidence(index, actual, spx, vix, lines: list[str]) -> None:
    """Which clock each series follows: SPX closes at 16:00 ET, the VIX and VX settle at 16:15."""
    vxx = simulate_etn(index, leverage=1.0, annual_fee=VXX_ANNUAL_FEE).value
    frame = pd.concat(
        {"sim": vxx, "act": actual["vxx"], "spx": spx, "vix": vix}, axis=1, join="inner"
    ).loc["2009-01-30":"2017-03-08"]
    r = np.log(frame.dropna()).diff().dropna()
    lines += [
        "## Timing evidence (VXX, 2009-01-30..2017-03-08, daily log returns)",
        "",
        "| correlation with | simulated VXX (16:15 settles) | actual VXX (16:00 close) |",
        "|---|---|---|",
        f"| SPX close (16:00 ET) | {r['sim'].corr(r['spx']):.4f} | {r['act'].corr(r['spx']):.4f} |",
        f"| VIX close (16:15 ET) | {r['sim'].corr(r['vix']):.4f} | {r['act'].corr(r['vix']):.4f} |",
        "",
    ]


def variants(matrix, close_matrix, sessions, actual, lines: list[str]) -> None:
    """Roll timing and settle-vs-last-trade variants of the short-term index (2009..2017-03)."""
    lines += [
        "## Candidate sources of the gap, measured (2009-01-30 / 2010-11-30 .. 2017-03-08)",
        "",
        "| variant | VXX corr | VXX TE | XIV corr | XIV TE |",
        "|---|---|---|---|---|",
    ]
    cases = [("methodology (settles, roll as S&P)", matrix, 0)]
    cases += [(f"roll {-k} session(s) early", matrix, k) for k in (-1, -2)]
    cases += [("last trade (Close) instead of settle", close_matrix, 0)]
    for label, m, shift in cases:
        idx = futures_index(m, sessions, roll_shift=shift)
        out = []
        for name, lev, fee, start in (
            ("vxx", 1.0, VXX_ANNUAL_FEE, "2009-01-30"),
            ("xiv", -1.0, XIV_ANNUAL_FEE, "2010-11-30"),
        ):
            etn = simulate_etn(idx, leverage=lev, annual_fee=fee)
            out.append(tracking_stats(etn.value, actual[name], start=start, end="2017-03-08"))
        lines.append(
            f"| {label} | {out[0].correlation:.4f} | {out[0].tracking_error:.1%} "
            f"| {out[1].correlation:.4f} | {out[1].tracking_error:.1%} |"
        )
    fee_free = simulate_etn(futures_index(matrix, sessions), leverage=-1.0, annual_fee=0.0)
    s = tracking_stats(fee_free.value, actual["xiv"], start="2010-11-30", end="2017-03-08")
    lines += [
        f"| XIV without its 1.35 % fee | | | {s.correlation:.4f} | {s.tracking_error:.1%} "
        f"(growth diff {s.growth_difference:+.2%}/yr) |",
        "",
    ]


def other_notes(spliced, sessions, lines: list[str]) -> None:
    lines += [
        "## Other simulated notes against the real files",
        "",
        "| note | period | corr 1d | corr 21d | TE 1d | TE without timing | growth diff %/yr |",
        "|---|---|---|---|---|---|---|",
    ]
    short = futures_index(spliced, sessions)
    mid = futures_index(spliced, sessions, "mid_term", start="auto")
    sims = {
        "vxz": simulate_etn(mid, annual_fee=VXZ_ANNUAL_FEE),
        "ziv": simulate_etn(mid, leverage=-1.0, annual_fee=ZIV_ANNUAL_FEE),
        "svxy": simulate_etn(
            short, leverage=-1.0, annual_fee=SVXY_ANNUAL_FEE,
            leverage_changes=dict(SVXY_LEVERAGE_CHANGES), acceleration_drop=1.0,
        ),
    }  # fmt: skip
    for name, etn in sims.items():
        act = load_dataset(name)["close"]
        s = tracking_stats(etn.value, act)
        lines.append(
            f"| {name.upper()} | {s.start:%Y-%m-%d}..{s.end:%Y-%m-%d} | {s.correlation:.4f} "
            f"| {s.horizon_corr[21]:.4f} | {s.tracking_error:.1%} | {s.te_independent:.1%} "
            f"| {s.growth_difference:+.2%} |"
        )
    lines.append("")


def seed_analyses(curve, vix, spx, xiv, lines: list[str]) -> None:
    plt = pyplot()
    ry = roll_yield(curve, vix)
    cm = constant_maturity(curve)
    vrp = futures_vrp(cm.value, vix)
    corr = vix_spx_correlation(vix, spx, window=63)
    rv = vix_vs_realised(vix, spx, window=21)
    dd = max_drawdown(xiv)
    lines += [
        "## Seed analyses (functions in engine.calculators.futures_curve)",
        "",
        "| analysis | number on the shared data | seed |",
        "|---|---|---|",
        f"| F1 roll yield (F1 - VIX)/VIX/TTM1, mean since 2007-10-01 (to 2021-12-23) "
        f"| {ry.mean_front('2007-10-01'):.3%} per day | about 0.34 % |",
        f"| same, 2007-10-01..2017-03-08 (per-contract files) "
        f"| {ry.mean_front('2007-10-01', '2017-03-08'):.3%} per day | |",
        f"| F2-F1 roll yield (F2 - F1)/F1/30, mean since 2007-10-01 "
        f"| {ry.second.loc['2007-10-01':].mean():.3%} per day | |",
        f"| share of days in contango (F1 > VIX), 2004-03-26..2021-12-23 "
        f"| {(ry.basis.dropna() > 0).mean():.1%} | |",
        f"| XIV maximum drawdown (actual closes) | {dd.depth:.1%}, {dd.peak:%Y-%m-%d} to "
        f"{dd.trough:%Y-%m-%d}, recovered {dd.recovery:%Y-%m-%d} "
        "| -74.4 %, 2011-07-07 to 2011-11-25 |",
        f"| VIX vs SPX: correlation of daily log changes (full sample {corr.rolling.index[0]:%Y}.."
        f"{corr.rolling.index[-1]:%Y}) | {corr.full_sample:.3f}; 63-day rolling mean "
        f"{corr.mean_rolling:.3f}, negative on {corr.share_negative:.1%} of days | |",
        f"| VIX - realised 21-day SPX vol (trailing / next 21 days), vol points "
        f"| {rv.mean_vix_minus_trailing:.2f} / {rv.mean_vix_minus_forward:.2f}; VIX above the "
        f"next 21 days' realised vol on {rv.share_vix_above_forward:.1%} of days; corr(VIX, "
        f"trailing RV) {rv.corr_vix_trailing:.3f} | |",
        f"| log VRP ln VIX - ln RV(next 21 days), mean | {rv.mean_log_vrp:.3f} | |",
        f"| futures VRP ln VXF30 - ln VIX(t+21), mean 2004-2021 / since 2007-10 "
        f"| {vrp.mean():.3f} / {vrp.loc['2007-10-01':].mean():.3f} | |",
        f"| VXF30 extrapolated (TTM1 > 30 days, w1 > 1) | {cm.extrapolated.mean():.1%} of days | |",
        "",
    ]
    fig, axes = plt.subplots(3, 2, figsize=(13, 10))
    ax = axes[0, 0]
    corr.rolling.plot(ax=ax, lw=0.7)
    ax.axhline(corr.full_sample, color="k", ls="--", lw=0.8, label=f"full {corr.full_sample:.2f}")
    ax.set_title("VIX vs SPX: 63-day correlation of daily log changes")
    ax.legend()
    ax = axes[0, 1]
    rv.vix.loc["2004":].plot(ax=ax, lw=0.7, label="VIX")
    rv.trailing.loc["2004":].plot(ax=ax, lw=0.7, label="SPX realised vol, past 21 days")
    ax.set_title("VIX vs realised 21-day volatility (vol points)")
    ax.legend()
    ax = axes[1, 0]
    rv.log_vrp.plot(ax=ax, lw=0.5)
    ax.axhline(rv.mean_log_vrp, color="k", ls="--", lw=0.8, label=f"mean {rv.mean_log_vrp:.3f}")
    ax.set_title("log VRP: ln VIX - ln realised vol of the next 21 days")
    ax.legend()
    ax = axes[1, 1]
    ry.front.plot(ax=ax, lw=0.5)
    mean = ry.mean_front("2007-10-01")
    ax.axhline(mean, color="k", ls="--", lw=0.8, label=f"mean since 2007-10: {mean:.3%}/day")
    ax.set_ylim(-0.05, 0.05)
    ax.set_title("F1 roll yield (F1 - VIX) / VIX / TTM1 (per day)")
    ax.legend()
    ax = axes[2, 0]
    vrp.plot(ax=ax, lw=0.5)
    ax.axhline(vrp.mean(), color="k", ls="--", lw=0.8, label=f"mean {vrp.mean():.3f}")
    ax.set_title("futures VRP: ln VXF30 - ln VIX 21 sessions later")
    ax.legend()
    ax = axes[2, 1]
    dd.series.plot(ax=ax, lw=0.7)
    ax.axvspan(dd.peak, dd.trough, color="tab:red", alpha=0.2, label=f"max {dd.depth:.1%}")
    ax.set_title("XIV drawdown (actual closes)")
    ax.legend()
    _save(fig, "seed_analyses.png")


def stress(results: Path, lines: list[str]) -> None:
    runs = sorted(p for p in results.glob("*/returns.csv") if p.parent.name != "comparison")
    if not runs:
        lines += [f"(no backtest results in {results}: run configs/real_2004 first)", ""]
        return
    plt = pyplot()
    header = "| run | " + " | ".join(STRESS) + " | max drawdown (dates) |"
    lines += ["## Stress periods of the 2004 backtests (fill next_close)", "", header]
    lines.append("|" + "---|" * (len(STRESS) + 2))
    fig, ax = plt.subplots(figsize=(12, 5))
    for path in runs:
        rets = pd.read_csv(path, index_col=0, parse_dates=True, comment="#").iloc[:, 0]
        equity = (1 + rets).cumprod()
        cells = []
        for a, b in STRESS.values():
            part = rets.loc[a:b]
            cells.append(f"{(1 + part).prod() - 1:+.1%}" if len(part) else "—")
        dd = max_drawdown(equity)
        cells.append(f"{dd.depth:.1%} ({dd.peak:%Y-%m-%d}..{dd.trough:%Y-%m-%d})")
        lines.append(f"| {path.parent.name} | " + " | ".join(cells) + " |")
        if path.parent.name.endswith("to2021"):
            ax.plot(equity.index, equity.to_numpy(), lw=0.8, label=path.parent.name)
    for a, b in STRESS.values():
        ax.axvspan(pd.Timestamp(a), pd.Timestamp(b), color="tab:red", alpha=0.15)
    ax.set_yscale("log")
    ax.set_title("Cooper's strategies on simulated XIV/VXX, 2004-2021 (next_close); stress shaded")
    ax.legend(fontsize=8)
    _save(fig, "stress_periods.png")
    lines.append("")


def fill_modes(data: Path, lines: list[str]) -> None:
    from volbacktest.engine.inputs.config import load_config
    from volbacktest.engine.run.runner import run_backtest

    base = load_config(
        Path(__file__).resolve().parents[2] / "configs/real_2004/roll_yield_to2017.yaml"
    )
    lines += [
        "## Roll yield on 2004-03-26..2013-12-31 (REFERENCES §3 quotes CAGR 87.9 %, max DD 68.7 %)",
        "",
        "| fill | CAGR | max drawdown |",
        "|---|---|---|",
    ]
    for fill in ("next_close", "same_close"):
        cfg = base.with_overrides(
            **{"data.root": str(data), "data.end": "2013-12-31", "execution.fill": fill}
        )
        m = run_backtest(cfg).metrics
        lines.append(f"| {fill} | {m['cagr']:.1%} | {m['max_drawdown']:.1%} |")
    lines.append("")


def main(argv: list[str] | None = None) -> int:
    default = Path(os.environ.get("VOLBT_DATA_ROOT", HERE.parents[2] / "shared" / "data"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default)
    p.add_argument("--results", type=Path, default=HERE.parents[1] / "results" / "real_2004")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")  # loaders' documented data notes; counted in their attrs
    folder = args.data / "vix_futures_cfe" / "per_contract"
    spliced = load_vx_settles(folder, args.data / CONTINUOUS)
    sessions = matrix_sessions(spliced)
    curve = futures_curve(spliced, sessions, n=9)
    vix, spx = load_dataset("vix")["close"], load_dataset("spx")["close"]
    actual = {"vxx": load_dataset("vxx")["close"], "xiv": load_dataset("xiv")["close"]}
    plot_term_structure(curve, ["2017-02-23", "2008-10-03"], HERE / "term_structure.png", vix)
    index = futures_index(spliced, sessions)
    lines = ["# docs/futures: measured figures (written by make_figures.py)", ""]
    reconstruction(index, actual, lines)
    timing_evidence(index, actual, spx, vix, lines)
    cfe = load_cfe_folder(folder)
    variants(cfe.matrix(), cfe.matrix(price="close"), sessions, actual, lines)
    other_notes(spliced, sessions, lines)
    seed_analyses(curve, vix, spx, actual["xiv"], lines)
    stress(args.results, lines)
    fill_modes(args.data, lines)
    (HERE / "numbers.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
