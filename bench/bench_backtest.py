"""Time one backtest (4,000 daily bars, 2 ETNs + 2 signal feeds) end to end, without reporting,
beside a bare backtrader run of the same VRatio logic with ``PandasData`` feeds.

    python bench/bench_backtest.py [--repeat 5]

Target (issue 2): the engine's run at most 0.6x the bare backtrader run. The bare run is written
here the way a backtrader user would: PandasData feeds, an SMA indicator on the VIX3M/VIX ratio,
cheat-on-close orders sized with order_target_percent (at 99% to avoid margin rejections).
"""

from __future__ import annotations

import argparse
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


def timed(fn, repeat: int):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), min(out)


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

    rows = [
        ("bare backtrader (PandasData)", *timed(lambda: bare_backtrader(market), args.repeat)),
        (
            "engine: run_backtest (aligned market given)",
            *timed(lambda: run_backtest(cfg, market=market), args.repeat),
        ),
        ("engine: market assembly + run_backtest", *timed(engine_end_to_end, args.repeat)),
    ]
    base = rows[0][1]
    print(
        f"{N_BARS} daily bars, feeds: xiv, vxx (traded) + vix, vix3m (signals); "
        f"median of {args.repeat} runs"
    )
    print(f"{'run':<46} {'median s':>9} {'min s':>8} {'vs bare':>8}")
    for name, med, mn in rows:
        print(f"{name:<46} {med:9.3f} {mn:8.3f} {med / base:7.2f}x")
    ratio = rows[1][1] / base
    print(
        f"target: engine run <= 0.60x bare backtrader -> {'MET' if ratio <= 0.6 else 'NOT MET'}"
        f" ({ratio:.2f}x)"
    )


if __name__ == "__main__":
    main()
