"""Time the RND estimator beside the seed's approach, measured in the same run on the same chain.

    python bench/bench_rnd.py [--data ../shared/data] [--repeat 50] [--seed-chains 3]

Targets (issue 4): one chain of about 100 strikes with 100 kernels fitted in under 10 ms, and
the whole 50ETF history's daily 30-day moments in under 60 s.

The seed (a forum thread) builds model prices in a Python loop over strikes and kernels and
hands an L1 pricing objective to scipy's SLSQP (finite-difference gradients, sum-to-one
equality, a >= 0 bounds).  It is re-implemented here as described, on the same quotes, the same
kernel centres and the same bandwidth as the engine's fit, so only the method differs.  On the
synthetic chain the true density is known and the L1 density error of both is printed.  The
history row of the seed is an extrapolation (its time per chain on ``--seed-chains`` 50ETF
chains x the number of chains the engine fitted): running it in full would take hours.

BLAS threads are pinned to 1 before numpy loads: the matrices are ~100 x 100, where threading
only adds contention (this box has 2 cores shared with other jobs); both methods run under the
same setting.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import ndtr  # noqa: E402
from scipy.stats import lognorm  # noqa: E402

from volbacktest.engine.calculators.rnd import (  # noqa: E402
    RNDOptions,
    fit_rnd,
    fit_rnd_chain,
    rnd_horizon_moments,
)
from volbacktest.engine.errors import DataQualityWarning  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ETF_RATE_CC = 0.03  # constant, as in docs/rnd (SHIBOR stops 2018-07-13; see docs/rnd/README.md)


# ------------------------------------------------------------------------------------------
# the seed's approach


def seed_fit(strikes, prices, is_call, centres, h, tau, rate, maxiter=100):
    """Python loops build the PCA prices; SLSQP minimises the L1 pricing error."""
    disc = math.exp(-rate * tau)
    kk = [float(k) for k in strikes]
    zz = [float(z) for z in centres]
    calls = [bool(c) for c in is_call]
    market = [float(p) for p in prices]

    def model_prices(a):
        out = []
        for k, c in zip(kk, calls, strict=True):
            total = 0.0
            for aj, zj in zip(a, zz, strict=True):
                x = (k - zj) / h
                put = (k - zj) * 0.5 * math.erfc(-x / math.sqrt(2)) + h * math.exp(
                    -0.5 * x * x
                ) / math.sqrt(2 * math.pi)
                total += aj * (put + (zj - k) if c else put)
            out.append(disc * total)
        return out

    def l1(a):
        return sum(abs(m - p) for m, p in zip(model_prices(a), market, strict=True))

    n = len(zz)
    res = minimize(
        l1,
        np.full(n, 1.0 / n),
        method="SLSQP",
        bounds=[(0.0, None)] * n,
        constraints=[{"type": "eq", "fun": lambda a: float(np.sum(a)) - 1.0}],
        options={"maxiter": maxiter},
    )
    return np.maximum(res.x, 0.0), res


def mixture_pdf(u, centres, weights, h):
    x = (u[:, None] - centres[None, :]) / h
    return np.exp(-0.5 * x * x) @ weights / (h * math.sqrt(2 * math.pi))


# ------------------------------------------------------------------------------------------
# chains


def synthetic_chain(n_strikes=100, fwd=100.0, tau=0.25, rate=0.02, seed=0):
    """A skewed (two-lognormal) truth, 100 OTM quotes, half-tick noise, 0.05-0.5 spreads."""
    rng = np.random.default_rng(seed)
    k = np.linspace(55.0, 150.0, n_strikes)
    comps = [(0.8, 1.02 * fwd, 0.18), (0.2, 0.92 * fwd, 0.35)]
    scale = fwd / sum(w * f for w, f, _ in comps)
    comps = [(w, f * scale, s) for w, f, s in comps]
    disc = math.exp(-rate * tau)
    call = np.zeros_like(k)
    put = np.zeros_like(k)
    for w, f, s in comps:
        sd = s * math.sqrt(tau)
        d1 = (np.log(f / k) + 0.5 * sd * sd) / sd
        call += w * disc * (f * ndtr(d1) - k * ndtr(d1 - sd))
        put += w * disc * (k * ndtr(sd - d1) - f * ndtr(-d1))
    is_call = k >= fwd
    mid = np.where(is_call, call, put)
    spread = np.clip(0.05 + 0.02 * mid, 0.05, 0.5)
    mid = np.maximum(mid + rng.uniform(-0.25, 0.25, k.size) * spread, 0.005)

    def truth(u):
        return sum(
            w * lognorm.pdf(u, s=s * math.sqrt(tau), scale=f * math.exp(-0.5 * s * s * tau))
            for w, f, s in comps
        )

    return k, mid, is_call, spread, fwd, tau, rate, truth


def timed(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def load_etf(data: Path):
    from volbacktest.data.chains import load_50etf_options

    folder = data / "china_50etf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return load_50etf_options(
            folder / "50etf_options_daily_joinquant__TanTzs.csv",
            underlying_path=folder / "510050_daily_unadjusted__zsh-a.csv",
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--seed-chains", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []

    # 1. one synthetic chain, 100 strikes, 100 kernels
    k, px, is_call, spread, fwd, tau, rate, truth = synthetic_chain()
    opts = RNDOptions(n_kernels=100, kernels_per_bandwidth=100.0)

    def ours():
        return fit_rnd(
            k, px, is_call, tau_years=tau, rate_cc=rate, forward=fwd, spreads=spread, options=opts
        )

    fit_rnd(k, px, is_call, tau_years=tau, rate_cc=rate, forward=fwd, spreads=spread)  # warm-up
    res, t_ours = timed(ours, args.repeat)
    u = np.linspace(0.0, 250.0, 25001)
    l1_ours = float(np.trapezoid(np.abs(res.pdf(u) - truth(u)), u))
    (a_seed, sres), t_seed = timed(
        lambda: seed_fit(k, px, is_call, res.centres, res.bandwidth, tau, rate), 1
    )
    l1_seed = float(np.trapezoid(np.abs(mixture_pdf(u, res.centres, a_seed, res.bandwidth)
                                        - truth(u)), u))  # fmt: skip
    rows.append(
        (
            f"synthetic chain: {k.size} strikes x {res.centres.size} kernels",
            statistics.median(t_ours),
            t_seed[0],
            f"L1 {l1_ours:.4f} vs {l1_seed:.4f}; seed: {sres.nit} it, success={sres.success}",
        )
    )

    cv_opts = RNDOptions(n_kernels=100, kernels_per_bandwidth=100.0, bandwidth="cv")
    res_cv, t_cv = timed(
        lambda: fit_rnd(k, px, is_call, tau_years=tau, rate_cc=rate, forward=fwd,
                        spreads=spread, options=cv_opts), max(3, args.repeat // 10),
    )  # fmt: skip
    l1_cv = float(np.trapezoid(np.abs(res_cv.pdf(u) - truth(u)), u))
    rows.append(
        (
            f"same chain, cross-validated h ({len(cv_opts.cv_factors)} candidates x "
            f"{cv_opts.cv_folds} folds + final fit)",
            statistics.median(t_cv),
            t_seed[0],
            f"L1 {l1_cv:.4f} (h = {res_cv.bandwidth:.2f}) vs seed {l1_seed:.4f}",
        )
    )

    # 2. a real chain of about 100 quotes (SPX 2011-02-18, 120 OTM mids)
    spx_path = args.data / "us_option_chains" / "SPX-Options-24jan2011.csv"
    if spx_path.is_file():
        from volbacktest.data.chains import load_spx_quote_table

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            spx = load_spx_quote_table(spx_path)

        def spx_fit():
            return fit_rnd_chain(spx, rate_cc=0.003, expiry="2011-02-18")

        spx_fit()
        r_spx, t_spx = timed(spx_fit, max(5, args.repeat // 5))
        (_, s_spx), t_sspx = timed(
            lambda: seed_fit(r_spx.strikes, r_spx.prices, r_spx.is_call, r_spx.centres,
                             r_spx.bandwidth, r_spx.tau_years, r_spx.rate_cc), 1,
        )  # fmt: skip
        rows.append(
            (
                f"SPX 2011-02-18 chain: {r_spx.strikes.size} quotes x {r_spx.centres.size} "
                "kernels (incl. parsing the chain)",
                statistics.median(t_spx),
                t_sspx[0],
                f"rmse {r_spx.rmse:.3f}; seed: {s_spx.nit} it, success={s_spx.success}",
            )
        )

    # 3. the whole 50ETF history, daily 30-day moments
    etf_folder = args.data / "china_50etf"
    if etf_folder.is_dir():
        t0 = time.perf_counter()
        chain = load_etf(args.data)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        series = rnd_horizon_moments(chain, rate_cc=ETF_RATE_CC, target_days=30)
        t_hist = time.perf_counter() - t0
        pairs = set(zip(series["trade_date"], series["near_expiry"], strict=True)) | set(
            zip(series["trade_date"], series["next_expiry"], strict=True)
        )
        n_fits = len(pairs)
        # seed per chain on a few of the same chains (evenly spread over the history)
        picks = sorted(pairs)[:: max(1, len(pairs) // args.seed_chains)][: args.seed_chains]
        seed_times, ours_times = [], []
        for d, e in picks:
            sub = chain[(chain["trade_date"] == d) & (chain["expiry"] == e)]
            r_e = fit_rnd_chain(sub, rate_cc=ETF_RATE_CC)  # selects the OTM closes

            def again(r_e=r_e):
                return fit_rnd(r_e.strikes, r_e.prices, r_e.is_call, tau_years=r_e.tau_years,
                               rate_cc=r_e.rate_cc, forward=r_e.forward, spot=r_e.spot)  # fmt: skip

            _, t_e = timed(again, 20)
            ours_times.append(statistics.median(t_e))
            _, t_s = timed(
                lambda r_e=r_e: seed_fit(r_e.strikes, r_e.prices, r_e.is_call, r_e.centres,
                                         r_e.bandwidth, r_e.tau_years, r_e.rate_cc), 1,
            )  # fmt: skip
            seed_times.append(t_s[0])
        rows.append(
            (
                f"50ETF: one chain (median of {len(picks)} chains, ~{r_e.strikes.size} OTM "
                f"closes x {r_e.centres.size} kernels)",
                statistics.median(ours_times),
                statistics.median(seed_times),
                "same chains, same kernels",
            )
        )
        rows.append(
            (
                f"50ETF history: {len(series)} days, {n_fits} fits, 30-day moments "
                f"(+{t_load:.1f} s loading)",
                t_hist,
                statistics.mean(seed_times) * n_fits,
                "seed column extrapolated: mean seed time per chain x fits",
            )
        )

    print(f"\nRND bench (BLAS threads = {os.environ['OPENBLAS_NUM_THREADS']})\n")
    print("| case | engine | seed (loop + SLSQP, L1) | speed-up | note |")
    print("|---|---:|---:|---:|---|")
    for name, ours_t, seed_t, note in rows:
        print(f"| {name} | {_fmt(ours_t)} | {_fmt(seed_t)} | {seed_t / ours_t:,.0f}x | {note} |")
    print(
        "\ntargets: one ~100x100 chain < 10 ms; whole 50ETF history < 60 s. Engine times are "
        f"medians of {args.repeat} runs (history: one run); seed times one run."
    )


def _fmt(seconds: float) -> str:
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 600:
        return f"{seconds:.1f} s"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
