"""Time one backtest (4,000 daily bars, 2 ETNs + 2 signal feeds) end to end, without reporting,
beside a bare backtrader run of the same VRatio logic with ``PandasData`` feeds.

    python bench/bench_backtest.py [--repeat 5]

Target (issue 16): the engine's run at most 0.35x the bare backtrader run (issue 2 asked for
0.6x), with the engine's ledger rebuilt from the fills and cross-checked against the broker on
every run as always. The ratio is the engine's median wall time over the bare run's median wall
time, both measured in this run; the repeats alternate between the rows, so a change of load on
a shared machine falls on all of them, and the CPU seconds of this process are printed beside
(less sensitive to other processes than the wall clock). The bare run is written here the way a
backtrader user would: PandasData feeds, an SMA indicator on the VIX3M/VIX ratio, cheat-on-close
orders sized with order_target_percent (at 99% to avoid margin rejections).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import backtrader as bt

from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.inputs.market import Market, market_for
from volbacktest.engine.run.runner import run_backtest

N_BARS = 4000


def engine_config():
    return config_from_mapping(
        {
            "name": "bench",
            "strategy": {"name": "vratio"},
            "data": {"synthetic": {"seed": 7, "start": "2003-01-02", "end": "2019-12-31"}},
            "report": {"tearsheet": False, "plots": False},
        }
    )


def trimmed_market(cfg) -> Market:
    m = market_for(cfg)
    cal = m.calendar[-N_BARS:]
    frames = {k: v.loc[cal] for k, v in m.frames.items()}
    return Market(cal, frames, m.tradable, m.source, m.notes)


class BareVRatio(bt.Strategy):
    def __init__(self):
        self.xiv, self.vxx, self.vix, self.vix3m = self.datas
        self.ratio = bt.indicators.SMA(self.vix3m.close / self.vix.close, period=10)
        self.holding = None

    def next(self):
        want = self.xiv if self.ratio[0] > 1.0 else self.vxx
        if want is not self.holding:
            other = self.vxx if want is self.xiv else self.xiv
            self.order_target_percent(data=other, target=0.0)
            self.order_target_percent(data=want, target=0.99)
            self.holding = want


def bare_backtrader(market: Market) -> float:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.set_coc(True)
    for name in ("xiv", "vxx", "vix", "vix3m"):
        frame = market.frames[name].copy()
        frame["volume"] = frame["volume"].fillna(0.0)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=name)
    cerebro.addstrategy(BareVRatio)
    strat = cerebro.run()[0]
    return strat.broker.getvalue()


TARGET = 0.35


def timed_interleaved(fns, repeat: int) -> list[tuple[float, float, float]]:
    """(median wall s, min wall s, median CPU s) of each function, the repeats alternating
    between the functions."""
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(repeat):
        for j, fn in enumerate(fns):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[j].append(time.perf_counter() - t0)
            cpu[j].append(time.process_time() - c0)
    return [
        (statistics.median(w), min(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    cfg = engine_config()
    market = trimmed_market(cfg)
    assert len(market.calendar) == N_BARS
    run_backtest(cfg, market=market)  # warm imports and caches

    def engine_end_to_end():
        run_backtest(cfg, market=trimmed_market(cfg))

    runs = {
        "bare backtrader (PandasData)": lambda: bare_backtrader(market),
        "engine: run_backtest (aligned market given)": lambda: run_backtest(cfg, market=market),
        "engine: market assembly + run_backtest": engine_end_to_end,
    }
    load_before = os.getloadavg()
    times = timed_interleaved(list(runs.values()), args.repeat)
    load_after = os.getloadavg()
    base, base_cpu = times[0][0], times[0][2]
    print(
        f"{N_BARS} daily bars, feeds: xiv, vxx (traded) + vix, vix3m (signals); "
        f"median of {args.repeat} runs, alternating; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    print(f"{'run':<46} {'median s':>9} {'min s':>8} {'vs bare':>8} {'cpu s':>7} {'vs bare':>8}")
    for name, (med, mn, cpu) in zip(runs, times, strict=True):
        print(
            f"{name:<46} {med:9.3f} {mn:8.3f} {med / base:7.2f}x {cpu:7.3f} {cpu / base_cpu:7.2f}x"
        )
    ratio = times[1][0] / base
    print(
        f"target: engine run <= {TARGET:.2f}x bare backtrader (median wall time) -> "
        f"{'MET' if ratio <= TARGET else 'NOT MET'} ({ratio:.2f}x)"
    )


if __name__ == "__main__":
    main()
