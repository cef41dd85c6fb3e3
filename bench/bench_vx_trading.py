"""Time a 13-year VIX futures backtest (contracts, variation margin, daily roll) beside an ETN
backtest of the same length, both on the real files of ../shared/data, 2004-03-26..2017-03-08.

    python bench/bench_vx_trading.py [--data PATH_TO_SHARED_DATA] [--repeat 3]

* futures: configs/futures/vx_inverse_replica_cfe.yaml (-1x the short-term index as whole VX
  contracts, rebalanced daily: about 6,300 contract trades, 3,260 marks);
* ETN: configs/real_2004/buy_and_hold_to2017.yaml (the simulated XIV held on backtrader), the
  same economic exposure as one share-based instrument.

Both are timed end to end without reporting, after one warm-up run each (the CFE files, the
NYSE calendar and the simulated ETN are cached in-process, so the repeats time the backtest,
not the file reading; the first run's time is printed too). No timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "futures: vx_inverse_replica_cfe (contracts)": "configs/futures/vx_inverse_replica_cfe.yaml",
    "ETN: buy_and_hold simulated XIV (backtrader)": "configs/real_2004/buy_and_hold_to2017.yaml",
}


def _timed(cfg) -> tuple[float, object]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_backtest(cfg)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ["VOLBT_DATA_ROOT"] = args.data
    rows = []
    for label, path in CASES.items():
        cfg = load_config(REPO / path).with_overrides(
            **{"report.plots": False, "report.tearsheet": False}
        )
        first, res = _timed(cfg)
        times = [_timed(cfg)[0] for _ in range(args.repeat)]
        rows.append(
            (label, len(res.equity), len(res.transactions), first, statistics.median(times))
        )
    base = rows[1][4]
    print(
        f"{'backtest, 2004-03-26..2017-03-08':<52}{'bars':>6}{'trades':>8}{'first s':>9}"
        f"{'median s':>10}{'x ETN':>7}"
    )
    for label, bars, trades, first, med in rows:
        print(f"{label:<52}{bars:>6}{trades:>8}{first:>9.2f}{med:>10.2f}{med / base:>7.2f}")
    print(
        f"(median of {args.repeat} after the first run; the machine may be shared: compare "
        "the ratio, not the seconds)"
    )


if __name__ == "__main__":
    main()
