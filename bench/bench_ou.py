"""Benchmark: rolling OU estimation over GLD/GDX (2007-2019) and h* for every bar.

Target (issue 5): under 1 s. Printed beside a naive baseline measured in the same run: a Python
loop over windows with a per-window numpy OLS (np.linalg.lstsq) and a per-bar h* call. Also prints
the estimated parameters over time (percentiles) for the report.

    python bench/bench_ou.py [--data PATH_TO_SHARED_DATA] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.loaders import load_yahoo_ohlcv
from volbacktest.engine.calculators import ou
from volbacktest.engine.errors import NotMeanRevertingWarning

DT = 1.0 / ou.TRADING_DAYS_PER_YEAR
WINDOW = 252  # one trading year of transitions
GAMMA = -1.0
TAU_YEARS = 1.0  # rolling horizon of fixed length
LEGS = (("A", "GLD"), ("B", "GDX"))  # X = ln GLD - ln GDX


def load_pair(folder: Path) -> pd.DataFrame:
    """GLD (A) and GDX (B) adjusted closes, inner-joined, 2007-2019."""
    legs = {leg: load_yahoo_ohlcv(folder / f"{name}.csv")["adj_close"] for leg, name in LEGS}
    return pd.concat(legs, axis=1, join="inner").loc["2007":"2019"]


def fast(prices: pd.DataFrame, window: int | None, method: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotMeanRevertingWarning)
        fits = ou.rolling_ou_fit(prices["A"], prices["B"], DT, window=window, method=method)
    x = np.log(prices["A"] / prices["B"]).to_numpy()
    weights = ou.rolling_optimal_weights(fits, x, TAU_YEARS, GAMMA)
    return fits.assign(weight=weights["weight"])


def naive(prices: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per-window numpy OLS in a Python loop (marginal method), h* per bar."""
    log_a = np.log(prices["A"].to_numpy())
    log_b = np.log(prices["B"].to_numpy())
    x = log_a - log_b
    n_bars = x.size
    k_out = np.full(n_bars, np.nan)
    w_out = np.zeros(n_bars)
    for t in range(window, n_bars):
        lag, cur = x[t - window : t], x[t - window + 1 : t + 1]
        ds = np.diff(log_b[t - window : t + 1])
        design = np.column_stack([np.ones(window), lag])
        (a, b), *_ = np.linalg.lstsq(design, cur, rcond=None)
        eps = cur - a - b * lag
        u = ds - ds.mean()
        if not 0 < b < 1:
            continue
        k = -math.log(b) / DT
        theta = a / (1 - b)
        eta = math.sqrt(2 * k * eps.var() / (1 - b * b))
        sigma = math.sqrt(u.var() / DT)
        rho = k * np.mean(eps * u) / (eta * sigma * (1 - b))
        mu = ds.mean() / DT + sigma**2 / 2
        params = ou.OUParams(k, theta, eta, mu, sigma, rho)
        k_out[t] = k
        w_out[t] = float(ou.optimal_weight(x[t], TAU_YEARS, params, GAMMA))
    return pd.DataFrame({"k": k_out, "weight": w_out}, index=prices.index)


def best_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def summary(fits: pd.DataFrame) -> pd.DataFrame:
    ok = fits[fits["mean_reverting"]]
    table = ok[["k", "theta", "eta", "half_life_years", "rho", "sigma"]].quantile(
        [0.05, 0.25, 0.5, 0.75, 0.95]
    )
    table.index = [f"p{int(q * 100)}" for q in table.index]
    return table


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    default = Path(os.environ.get("VOLBT_DATA_ROOT", repo.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default, help="the shared/data folder")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    prices = load_pair(args.data / "pairs_gld_gdx")
    print(f"GLD/GDX {prices.index[0].date()}..{prices.index[-1].date()}: {len(prices)} bars")

    t_naive, ref = best_time(lambda: naive(prices, WINDOW), max(1, args.repeat // 2))
    rows = []
    for label, window, method in (
        (f"rolling {WINDOW}, marginal", WINDOW, "marginal"),
        (f"rolling {WINDOW}, joint", WINDOW, "joint"),
        ("expanding, marginal", None, "marginal"),
    ):
        elapsed, out = best_time(lambda w=window, m=method: fast(prices, w, m), args.repeat)
        if window == WINDOW and method == "marginal":
            both = out["k"].notna() & ref["k"].notna()
            diff_k = float(np.max(np.abs(out.loc[both, "k"] - ref.loc[both, "k"])))
            diff_w = float(np.max(np.abs(out["weight"] - ref["weight"])))
            check = f"max|dk|={diff_k:.1e} max|dh|={diff_w:.1e}"
        else:
            check = ""
        rows.append((label, elapsed, t_naive / elapsed, check))
        if window == WINDOW and method == "marginal":
            fits_main = out

    print(f"\n{'variant (fit + h* every bar)':32s} {'time':>10s} {'vs naive':>9s}  check")
    print(f"{'naive per-window lstsq loop':32s} {t_naive * 1e3:8.1f}ms {1.0:8.1f}x")
    for label, elapsed, speedup, check in rows:
        flag = "" if elapsed < 1.0 else "  (over the 1 s target)"
        print(f"{label:32s} {elapsed * 1e3:8.1f}ms {speedup:8.1f}x  {check}{flag}")

    valid = fits_main[fits_main["valid"]]
    share = 1 - valid["mean_reverting"].mean()
    print(
        f"\nrolling {WINDOW}-bar marginal fits: {len(valid)} bars, not mean-reverting {share:.1%}"
    )
    print(summary(fits_main).round(3).to_string())
    by_year = valid.groupby(valid.index.year)
    yearly = by_year[["k", "eta", "half_life_years"]].median()
    yearly["share_mean_reverting"] = by_year["mean_reverting"].mean()
    print("\nby year: medians (k per year, eta per sqrt(year), half-life in years) and share MR:")
    print(yearly.round(3).to_string())


if __name__ == "__main__":
    main()
