"""Benchmark: a 10-year daily put-write on the embedded SPX-like chains (issue 13).

Target: under 10 s. The engine path is ``configs/options/put_write_spx.yaml`` (Cboe PUT rules,
2005-01-03 .. 2014-12-31, 2,518 sessions) through ``run_backtest``: the chain of every session
(``spx_options``: A.M. monthlies on a 5-point grid, priced by the Lewis integral on the embedded
market), leg choice from each day's rows, marks, settlement, Cboe margin, metrics. Timed cold
(the embedded market and chains generated in this process) and warm (chains cached in-process,
as a sweep or a second run sees them). Beside it, in the same run, the plain pandas reference
loop of tests/test_options_put_write.py on the same chain, and the largest difference of the
two equity paths.

    python bench/bench_options.py [--repeat 3]

Python/pandas/empyrical import time is excluded from every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from pathlib import Path

import empyrical  # noqa: F401 - imported here so its import time (about 1 s) is not timed
import numpy as np

from volbacktest.data.synthetic import generate_market
from volbacktest.data.synthetic_chains import spx_chains
from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.inputs.options_chains import SPX_OPTION_PARAMS
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "options" / "put_write_spx.yaml"


def _reference():
    path = REPO / "tests" / "test_options_put_write.py"
    spec = importlib.util.spec_from_file_location("put_write_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_put_write


def engine_run():
    cfg = load_config(CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # same_close is labelled look-ahead
        return run_backtest(cfg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    cfg = load_config(CONFIG)
    syn = cfg.data.synthetic
    t0 = time.perf_counter()
    result = engine_run()
    cold = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        engine_run()
        warm = min(warm, time.perf_counter() - t0)
    market = generate_market(None, syn.seed, str(syn.start), str(syn.end))
    chain = spx_chains(syn.seed, str(syn.start), str(syn.end), SPX_OPTION_PARAMS)
    spx = market.frames["spx"]
    t0 = time.perf_counter()
    ref = _reference()(
        chain, spx.index, spx["close"].to_numpy(), spx["open"].to_numpy(),
        cash=cfg.execution.initial_cash, rate=market.params.tbill_rate, multiplier=100.0,
        whole=False, sell_at="mid", am_settled=True,
    )  # fmt: skip
    naive = time.perf_counter() - t0
    n_days, n_rows = len(result.equity), len(chain)
    print(f"put-write, {syn.start}..{syn.end}: {n_days} sessions, {n_rows:,} chain rows")
    print(f"{'path':<58}{'seconds':>9}{'x reference':>13}")
    for label, t in (
        ("engine, cold (market and chains generated, then the run)", cold),
        (f"engine, warm (chains cached), best of {args.repeat}", warm),
        ("plain pandas reference loop (chain given)", naive),
    ):
        print(f"{label:<58}{t:>9.2f}{naive / t:>13.2f}")
    print(f"target: engine under 10 s -> {'met' if cold < 10.0 else 'NOT met'} cold, "
          f"{'met' if warm < 10.0 else 'NOT met'} warm")  # fmt: skip
    diff = np.max(np.abs(result.equity.to_numpy() / ref.to_numpy() - 1.0))
    print(f"max |engine / reference - 1| = {diff:.2e}; CAGR {result.metrics['cagr']:.2%}")


if __name__ == "__main__":
    main()
