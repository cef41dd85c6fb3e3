"""Size of the "cash earns nothing" deviation on the real ou_pairs backtest (GLD/GDX).

In Mudchanatongsuk, Primbs & Wong's model the whole wealth V sits in cash at the rate r (the
long A / short B legs are self-financing) and h* does not depend on r. backtrader's broker pays no
interest, so each day the backtest's return R_t lacks the paper's r_t dt. This script runs the
real config and compounds the daily returns with and without a T-bill rate:

    V_paper(T) / V0 = prod_t (1 + R_t + r_t dt),    V_engine(T) / V0 = prod_t (1 + R_t).

r_t: annual averages of the 3-month US Treasury bill secondary-market rate (Federal Reserve H.15,
FRED series TB3MS), good to about 0.2 percentage point, held constant within each calendar year
(``TBILL_3M_ANNUAL_AVG_PCT``). A real broker would also pay less than the full rate on short-sale
proceeds; the paper's model pays r on all of V.

    python bench/ou_cash_drag.py [--config PATH] [--data ROOT]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from volbacktest.engine.calculators.ou import TRADING_DAYS_PER_YEAR
from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[1]
# Annual averages of the 3-month T-bill rate, percent (H.15 / FRED TB3MS, rounded).
TBILL_3M_ANNUAL_AVG_PCT = {
    2007: 4.4, 2008: 1.4, 2009: 0.15, 2010: 0.14, 2011: 0.05, 2012: 0.09, 2013: 0.06,
    2014: 0.03, 2015: 0.05, 2016: 0.32, 2017: 0.93, 2018: 1.94, 2019: 2.1,
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs/real/ou_pairs_gld_gdx.yaml")
    ap.add_argument("--data", type=Path, default=None, help="data root (default: searched)")
    args = ap.parse_args()
    cfg = load_config(args.config).with_overrides(**{"report.tearsheet": False})
    if args.data is not None:
        cfg = cfg.with_overrides(**{"data.root": str(args.data)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_backtest(cfg)
    r = result.returns.to_numpy(dtype=float)
    years = result.returns.index.year
    missing = sorted(set(years) - set(TBILL_3M_ANNUAL_AVG_PCT))
    if missing:
        raise SystemExit(f"no T-bill rate for {missing}; extend TBILL_3M_ANNUAL_AVG_PCT")
    rate = np.array([TBILL_3M_ANNUAL_AVG_PCT[y] for y in years]) / 100.0
    daily_cash = np.expm1(rate / TRADING_DAYS_PER_YEAR)
    n_years = len(r) / TRADING_DAYS_PER_YEAR
    engine = float(np.prod(1.0 + r))
    paper = float(np.prod(1.0 + r + daily_cash))
    decided = result.weights.notna().any(axis=1).to_numpy()
    first = int(np.argmax(decided))
    after = float(np.prod(1.0 + r[first:] + daily_cash[first:]) / np.prod(1.0 + r[first:]))
    print(f"{cfg.name}: {result.returns.index[0]:%Y-%m-%d}..{result.returns.index[-1]:%Y-%m-%d}")
    print("| cash account | terminal wealth / V0 | CAGR |")
    print("|---|---|---|")
    print(f"| none (backtrader) | {engine:.4f} | {engine ** (1 / n_years) - 1:+.2%} |")
    print(f"| 3M T-bill (paper) | {paper:.4f} | {paper ** (1 / n_years) - 1:+.2%} |")
    print(f"\nratio paper/engine: {paper / engine:.4f} over {n_years:.1f} years")
    print(
        f"from the first decision ({result.returns.index[first]:%Y-%m-%d}): ratio {after:.4f}, "
        f"{after ** (TRADING_DAYS_PER_YEAR / (len(r) - first)) - 1:.2%} a year"
    )


if __name__ == "__main__":
    main()
