"""Risk-neutral densities of the real chains: PNG plots and a moments table for docs/rnd/.

    python bench/rnd_real_chains.py [--data ../shared/data] [--out docs/rnd] [--no-50etf]

Chains (shared data, read through data.chains; nothing is copied into the repository):

* SPX CBOE delayed quote table, 2011-01-24 14:03 ET (bid/ask mids, spread weights);
* GS end-of-day vendor chain, 2016-01-05 (bid/ask mids, spread weights);
* the 50ETF option closes 2015-02-09 .. 2024-05-21 (close prices only, equal weights), as a
  daily 30-day constant-horizon series.

Rates are constants (continuously compounded decimals): the forward comes from put-call parity
on each expiry, so r only sets the discounting of prices (a few basis points of price here).
SPX 0.003 and GS 0.004 are the one-month USD LIBOR level of those weeks, rounded; 50ETF 0.035 is
the mean 1M SHIBOR over 2015-02-09 .. 2018-07-13 (the SHIBOR file ends there; a SHIBOR curve can
be passed as ``rate_cc=callable`` for the dates it covers).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.rnd import (
    RNDOptions,
    fit_rnd_chain,
    rnd_horizon_moments,
    rnd_moments,
)
from volbacktest.engine.errors import DataQualityWarning

REPO = Path(__file__).resolve().parents[1]
SPX_RATE_CC = 0.003
GS_RATE_CC = 0.004
ETF_RATE_CC = 0.035
TABLE_COLUMNS = {
    "expiry": "expiry",
    "days_to_expiry": "days",
    "forward": "F (parity)",
    "n_fitted": "OTM quotes",
    "bandwidth": "h",
    "std": "std",
    "rnd_vol": "RND vol",
    "skewness": "skew",
    "excess_kurtosis": "ex. kurt",
    "prob_below_0.9": "P(S_T<0.9 S)",
    "q0.05": "q5%",
    "q0.95": "q95%",
    "rmse": "RMSE",
}
ARB_COLUMNS = {
    "arb_n_calls": "calls",
    "arb_n_puts": "puts",
    "arb_monotonicity_violations": "monotone",
    "arb_monotonicity_beyond_spread": "beyond spread",
    "arb_worst_monotonicity": "worst",
    "arb_convexity_violations": "convex",
    "arb_convexity_beyond_spread": "beyond spread ",
    "arb_worst_convexity": "worst ",
    "arb_bound_violations": "bounds",
    "arb_bound_beyond_spread": "beyond spread  ",
    "arb_worst_bound": "worst  ",
}
# quotes are noisy: the bandwidth is cross-validated (REFERENCES.md section 6)
OPTIONS = RNDOptions(bandwidth="cv")


def _quiet(loader, *args, **kwargs):
    # the loaders report what their drop policy removed with a DataQualityWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return loader(*args, **kwargs)


def _md_table(df: pd.DataFrame, columns: dict[str, str], floatfmt: str = "{:.4g}") -> str:
    cols = [c for c in columns if c in df.columns]
    head = "| " + " | ".join(columns[c] for c in cols) + " |"
    rule = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, rule]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, pd.Timestamp):
                cells.append(str(v.date()))
            elif isinstance(v, float | np.floating):
                cells.append(floatfmt.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_chain(chain, table, title, rate, expiries, fit_expiry, path):
    import matplotlib.pyplot as plt

    fig, (ax_d, ax_p) = plt.subplots(1, 2, figsize=(12, 4.5))
    for e in expiries:
        res = fit_rnd_chain(chain, rate_cc=rate, expiry=e, options=OPTIONS)
        days = int(table.loc[table["expiry"] == pd.Timestamp(e), "days_to_expiry"].iloc[0])
        ax_d.plot(res.grid, res.density, label=f"{pd.Timestamp(e).date()} ({days} d)")
    spot = float(chain["underlying"].iloc[0])
    ax_d.axvline(spot, color="grey", lw=0.8, ls=":")
    ax_d.set_xlabel("underlying at expiry")
    ax_d.set_ylabel("risk-neutral density")
    ax_d.set_title(f"{title}: PCA densities (spot {spot:g})")
    ax_d.legend(fontsize=8)
    lo = min(float(table["q0.05"].min()), spot) * 0.85
    hi = max(float(table["q0.95"].max()), spot) * 1.1
    ax_d.set_xlim(lo, hi)

    res = fit_rnd_chain(chain, rate_cc=rate, expiry=fit_expiry, options=OPTIONS)
    sub = chain[chain["expiry"] == pd.Timestamp(fit_expiry)]
    for cp, colour in (("P", "tab:blue"), ("C", "tab:red")):
        side = sub[sub["cp"] == cp]
        ax_p.vlines(side["strike"], side["bid"], side["ask"], color=colour, lw=1.5, alpha=0.5,
                    label=f"{'put' if cp == 'P' else 'call'} bid-ask")  # fmt: skip
    order = np.argsort(res.strikes)
    ax_p.plot(res.strikes[order], res.fitted_prices[order], "k.", ms=3, label="PCA fit (OTM)")
    ax_p.set_yscale("log")
    ax_p.set_xlabel("strike")
    ax_p.set_ylabel("option price")
    ax_p.set_title(
        f"{pd.Timestamp(fit_expiry).date()}: fit vs quotes (h = {res.bandwidth:.3g}, "
        f"RMSE {res.rmse:.3g})"
    )
    ax_p.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_series(series: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    x = pd.to_datetime(series["trade_date"])
    axes[0].plot(x, series["rnd_vol"], lw=0.8)
    axes[0].set_ylabel("30-day RND vol")
    axes[1].plot(x, series["skewness"], lw=0.8, color="tab:orange")
    axes[1].axhline(0.0, color="grey", lw=0.6)
    axes[1].set_ylabel("skewness")
    axes[2].plot(x, series["prob_below_0.9"], lw=0.8, color="tab:red")
    axes[2].set_ylabel("P(S_30d < 0.9 S)")
    axes[0].set_title("50ETF options: daily 30-day risk-neutral moments (PCA, close prices)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _us_section(name, chain, rate, expiries, fit_expiry, out_dir):
    table = rnd_moments(chain, rate_cc=rate, options=OPTIONS)
    png = out_dir / f"rnd_{name.lower()}.png"
    _plot_chain(chain, table, name, rate, expiries, fit_expiry, png)
    spot = float(chain["underlying"].iloc[0])
    date = pd.Timestamp(chain["trade_date"].iloc[0]).date()
    worst = table.loc[table["arb_convexity_violations"].idxmax()]
    text = [
        f"## {name} {date} (spot {spot:g}, r = {rate:g})",
        "",
        f"![{name} densities]({png.name})",
        "",
        _md_table(table, TABLE_COLUMNS),
        "",
        "Static-arbitrage checks on the input mids (all quotes of each expiry, before the OTM "
        "selection): counts, counts still violated after moving each quote by half its "
        "bid-ask spread (i.e. tradeable at bid/ask), and the worst violation of the mids in "
        "price units:",
        "",
        _md_table(table[["expiry", *ARB_COLUMNS]], {"expiry": "expiry", **ARB_COLUMNS}),
        "",
        f"Most butterfly violations: {int(worst['arb_convexity_violations'])} on "
        f"{pd.Timestamp(worst['expiry']).date()} (worst {worst['arb_worst_convexity']:.3g}).",
        "",
    ]
    return [png], "\n".join(text)


def write_figures(data: Path, out_dir: Path, with_50etf: bool = True) -> list[Path]:
    """Write rnd_spx.png, rnd_gs.png, (rnd_50etf_30d.png) and moments.md into ``out_dir``."""
    from volbacktest.data.chains import load_50etf_options, load_gs_options, load_spx_quote_table

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections = [
        "# Risk-neutral densities of the real chains (Bondarenko PCA)",
        "",
        "Generated by `python bench/rnd_real_chains.py` (engine/calculators/rnd.py: OTM puts "
        "and calls around the parity forward, bid-ask mids weighted by 1/spread^2 (clipped "
        "to 1/16..16), <= 100 kernels, mean matched to the forward; the US chains use the "
        "cross-validated bandwidth (5-fold over strikes, h in {1, 1.5, 2, 3, 4, 6, 8} x the "
        "median strike step), the 50ETF series the default rule h = strike step). Moments "
        "are of the price at expiry; RND vol = std/F/sqrt(T); skew and kurtosis are "
        "standardised moments of S_T. Units: index points / USD / CNY.",
        "",
    ]
    us = data / "us_option_chains"
    spx = _quiet(load_spx_quote_table, us / "SPX-Options-24jan2011.csv")
    files, text = _us_section(
        "SPX", spx, SPX_RATE_CC, ["2011-01-28", "2011-02-18", "2011-03-18", "2011-06-17",
                                  "2011-12-16"], "2011-02-18", out_dir,
    )  # fmt: skip
    written += files
    sections.append(text)
    gs = _quiet(load_gs_options, us / "option_GS_df.csv")
    files, text = _us_section(
        "GS", gs, GS_RATE_CC, ["2016-01-15", "2016-02-19", "2016-04-15", "2016-07-15"],
        "2016-02-19", out_dir,
    )  # fmt: skip
    written += files
    sections.append(text)

    if with_50etf:
        folder = data / "china_50etf"
        etf = _quiet(
            load_50etf_options,
            folder / "50etf_options_daily_joinquant__TanTzs.csv",
            underlying_path=folder / "510050_daily_unadjusted__zsh-a.csv",
        )
        t0 = time.perf_counter()
        series = rnd_horizon_moments(etf, rate_cc=ETF_RATE_CC, target_days=30)
        elapsed = time.perf_counter() - t0
        png = out_dir / "rnd_50etf_30d.png"
        _plot_series(series, png)
        written.append(png)
        cols = ["rnd_vol", "skewness", "excess_kurtosis", "prob_below_0.9", "prob_below_0.8"]
        stats = series[cols].describe().T[["mean", "std", "min", "50%", "max"]]
        stats.insert(0, "series", stats.index)
        flags = series.assign(
            year=pd.to_datetime(series["trade_date"]).dt.year.astype(str),
            basis=series["forward"] / series["spot"] - 1.0,
            below_strikes=(series["lowest_strike_frac"] > 0.9).astype(float),
        )
        yearly = flags.groupby("year")[
            [*cols[:4], "basis", "below_strikes", "mass_outside_strikes"]
        ].mean()
        yearly = yearly.reset_index()
        i_worst = int(flags["basis"].idxmin())
        worst_basis = float(flags["basis"].iloc[i_worst])
        worst_day = pd.Timestamp(flags["trade_date"].iloc[i_worst])
        n_deep = int((flags["basis"] < -0.03).sum())
        deep_years = ", ".join(sorted(set(flags.loc[flags["basis"] < -0.03, "year"])))
        sections += [
            f"## 50ETF daily 30-day moments ({len(series)} trade dates, "
            f"{series['trade_date'].min().date()} .. {series['trade_date'].max().date()}, "
            f"r = {ETF_RATE_CC:g})",
            "",
            f"![50ETF 30-day moments]({png.name})",
            "",
            "Close prices only (no bid/ask, so equal weights; a close can be stale, which the "
            "fit cannot know). Per date the expiries bracketing 30 days (at least 7 days, at "
            "least 5 OTM quotes) are fitted and interpolated: total variance linear in time, "
            "skewness, kurtosis and probabilities linear in time; "
            f"{int(series['extrapolated'].sum())} dates had no expiry on one side and use the "
            "nearest expiry alone (flat annualised variance). "
            f"Computed in {elapsed:.1f} s on this machine.",
            "",
            _md_table(stats, {c: c for c in stats.columns}),
            "",
            "Yearly means. `basis` = 30-day parity forward / spot - 1: "
            f"{worst_basis:.1%} on {worst_day.date()} and below -3 % on {n_deep} days (years "
            f"{deep_years}). A forward that far below spot (plausibly the short-sale limits of "
            "the 2015 crash; not checked here) shifts the whole density left of spot and "
            "inflates P(S_T < 0.9 S). "
            "`below_strikes` = share of days on which 0.9 x spot lies below the lowest fitted "
            "strike (P(S_T < 0.9 S) is then shaped by the constraints, not by quotes); "
            "`mass_outside_strikes` = density mass beyond the fitted strike range.",
            "",
            _md_table(yearly, {c: c for c in yearly.columns}),
            "",
        ]
    md = out_dir / "moments.md"
    md.write_text("\n".join(sections), encoding="utf-8")
    written.append(md)
    return written


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "rnd")
    ap.add_argument("--no-50etf", action="store_true")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    for p in write_figures(args.data, args.out, with_50etf=not args.no_50etf):
        print(p)


if __name__ == "__main__":
    main()
