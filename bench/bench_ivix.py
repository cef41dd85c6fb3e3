"""Benchmark: iVIX for the whole 50ETF option history, vectorised kernel vs a per-day pandas loop.

    python bench/bench_ivix.py [--data ../shared/data] [--baseline-days 150] [--repeat 5]

Times ``compute_vix(chain, "sse_ivix", shibor)`` over 2015-02-09..2024-05-21 (2,254 trade days,
288,756 raw rows) after loading, and a straightforward per-day loop in the style of the seed
notebook (filter the day, pick near/next, per-term pandas ops) measured in the same run on the
first ``--baseline-days`` days and extrapolated linearly to the full history. Both apply the
same rules; the table also prints how far apart their values are on the baseline days.

SHIBOR in the shared file ends 2018-07-13: later dates carry the last curve forward
(``rate_max_stale_days=None``; the StaleDataWarning is counted, not hidden). The rate moves the
index by ~0.05 points, so this does not change the timing comparison.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.chains import load_50etf_options
from volbacktest.data.rates import load_shibor
from volbacktest.engine.calculators.rates import shibor_curve_rate
from volbacktest.engine.calculators.vix import SSE_IVIX, compute_vix, interpolate_vix
from volbacktest.engine.errors import DataQualityWarning, StaleDataWarning

TARGET_SECONDS = 1.0


def _seed_style_term(opts: pd.DataFrame, tau: float, rate: float) -> float:
    """One term the way the seed does it: pandas pivots and filters, one term at a time."""
    call = opts[opts["cp"] == "C"].set_index("strike")["close"].sort_index()
    put = opts[opts["cp"] == "P"].set_index("strike")["close"].sort_index()
    diff = (call - put).dropna()
    k_star = diff.abs().idxmin()
    fwd = k_star + math.exp(rate * tau) * diff[k_star]
    strikes = sorted(set(call.index) | set(put.index))
    below = [k for k in strikes if k <= fwd]
    if not below:
        return float("nan")
    k0 = below[-1]
    if k0 not in call.index or k0 not in put.index:
        return float("nan")
    puts = put[put.index < k0]
    calls = call[call.index > k0]
    if puts.empty or calls.empty:
        return float("nan")
    q = pd.concat([puts, pd.Series([(call[k0] + put[k0]) / 2], index=[k0]), calls])
    k = q.index.to_series()
    dk = (k.shift(-1) - k.shift(1)) / 2
    dk.iloc[0] = k.iloc[1] - k.iloc[0]
    dk.iloc[-1] = k.iloc[-1] - k.iloc[-2]
    total = (dk / k**2 * q).sum() * math.exp(rate * tau)
    return 2 / tau * total - (fwd / k0 - 1) ** 2 / tau


def seed_style_loop(chain: pd.DataFrame, shibor: pd.DataFrame, days: pd.DatetimeIndex) -> pd.Series:
    """Per-day loop baseline (same rules as the sse_ivix preset, close prices)."""
    out = {}
    for day in days:
        opts = chain[chain["trade_date"] == day]
        expiries = sorted(opts["expiry"].unique())
        eligible = [e for e in expiries if (e - day).days >= SSE_IVIX.min_near_days]
        if len(eligible) < 2:
            out[day] = float("nan")
            continue
        near, nxt = eligible[0], expiries[expiries.index(eligible[0]) + 1]
        terms = []
        for e in (near, nxt):
            d = (e - day).days
            tau = d / 365.0
            rate = shibor_curve_rate(shibor, [day], [d], max_stale_days=None)[0]
            terms.append((tau, _seed_style_term(opts[opts["expiry"] == e], tau, rate)))
        (t1, s1), (t2, s2) = terms
        out[day] = float(interpolate_vix(t1, s1, t2, s2, 30, SSE_IVIX.extrapolation))
    return pd.Series(out)


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    ap.add_argument("--baseline-days", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    folder = args.data / "china_50etf"

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        chain = load_50etf_options(
            folder / "50etf_options_daily_joinquant__TanTzs.csv",
            folder / "510050_daily_unadjusted__zsh-a.csv",
        )
    shibor = load_shibor(folder / "shibor__Alexdachen.csv")
    load_s = time.perf_counter() - t0
    with open(folder / "50etf_options_daily_joinquant__TanTzs.csv", encoding="utf-8") as fh:
        raw_rows = sum(1 for _ in fh) - 1
    days = pd.DatetimeIndex(chain["trade_date"].unique())
    print(f"loaded {raw_rows:,} raw rows -> {len(chain):,} after the load policy, "
          f"{len(days):,} days, {days[0].date()}..{days[-1].date()} in {load_s:.2f} s")  # fmt: skip
    for w in caught:
        print(f"  load policy: {w.message}")

    timings = []
    n_stale_warn = 0
    for _ in range(args.repeat):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            res = compute_vix(chain, "sse_ivix", shibor, rate_max_stale_days=None)
            timings.append(time.perf_counter() - t)
        n_stale_warn = sum(isinstance(w.message, StaleDataWarning) for w in caught)
    vec_s = min(timings)

    base_days = days[: args.baseline_days]
    t = time.perf_counter()
    base = seed_style_loop(chain[chain["trade_date"].isin(base_days)], shibor, base_days)
    base_s = time.perf_counter() - t
    per_day = base_s / len(base_days)
    diff = (res.vix30.reindex(base_days) - base).abs()
    both = diff.notna()
    nan_agree = (res.vix30.reindex(base_days).isna() == base.isna()).mean()

    status = res.index["status"].value_counts()
    print(f"\niVIX history, preset sse_ivix ({n_stale_warn} StaleDataWarning: SHIBOR carried "
          "forward after 2018-07-13)")  # fmt: skip
    print(f"{'method':<44}{'days':>7}{'seconds':>10}{'ms/day':>9}{'full history s':>16}")
    label = f"vectorised compute_vix (best of {args.repeat})"
    print(f"{label:<44}{len(days):>7}"
          f"{vec_s:>10.3f}{1000 * vec_s / len(days):>9.3f}{vec_s:>16.3f}")  # fmt: skip
    print(f"{'per-day pandas loop (seed style)':<44}{len(base_days):>7}{base_s:>10.3f}"
          f"{1000 * per_day:>9.3f}{per_day * len(days):>16.1f}  (extrapolated)")  # fmt: skip
    print(f"\nspeed-up x{per_day * len(days) / vec_s:,.0f}; target < {TARGET_SECONDS:.1f} s: "
          f"{'met' if vec_s < TARGET_SECONDS else 'NOT met'}")  # fmt: skip
    print(f"baseline vs vectorised on {len(base_days)} days: max |diff| "
          f"{np.nanmax(diff.to_numpy()) if both.any() else float('nan'):.2e} on "
          f"{int(both.sum())} days with values; same NaN days: {nan_agree:.1%}")  # fmt: skip
    print("all runs (s): " + ", ".join(f"{x:.3f}" for x in timings))
    print("status counts: " + ", ".join(f"{k} {v}" for k, v in status.items()))


if __name__ == "__main__":
    main()
