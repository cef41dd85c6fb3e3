"""The compiled fast-path kernel (``engine.execution.numba_kernel``) against the numpy reference.

The numpy simulation (``vectorised.simulate(kernel="numpy")``) is the reference the conformance
tests hold to backtrader; the compiled one must give the same bits for every output (equity,
returns, exposure, every fill, the counts, holdings and ledger cash), whatever the weights,
costs, lots, leverage cap, fill mode and rebalance rule. Its metrics are empyrical's to 1e-12.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volbacktest.engine.errors import ConfigError, MissingExtraError
from volbacktest.engine.execution import vectorised
from volbacktest.engine.execution.metrics import performance_metrics
from volbacktest.engine.execution.vectorised import (
    GridSimulation,
    MarketArrays,
    kernel_for,
    simulate,
)
from volbacktest.engine.inputs.config import ExecutionConfig
from volbacktest.engine.sweep.metrics import METRIC_NAMES, grid_metrics

pytest.importorskip("numba", reason="the compiled kernel needs the 'fast' extra (numba)")

FIELDS = ("equity", "returns", "gross_exposure", "rebalances", "rejected", "unfilled_at_end")
FILL_FIELDS = ("run", "bar", "asset", "size", "price", "commission")
LEVELS = (np.nan, 0.0, 1.0, 0.5, -0.4, 0.3, 0.9, 2.0, 1e-13)


def arrays_of(prices_open, prices_close) -> MarketArrays:
    n, k = prices_close.shape
    cal = pd.bdate_range("2020-01-01", periods=n)
    names = tuple(f"a{j}" for j in range(k))
    return MarketArrays(cal, names, prices_open, prices_close, {})


def assert_same(a: GridSimulation, b: GridSimulation) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in FILL_FIELDS:
        np.testing.assert_array_equal(getattr(a.fills, f), getattr(b.fills, f), err_msg=f)
    if a.holdings is not None:
        np.testing.assert_array_equal(a.holdings, b.holdings)
        np.testing.assert_array_equal(a.cash, b.cash)


@st.composite
def grids(draw):
    n_runs = draw(st.integers(1, 3))
    n_bars = draw(st.integers(3, 60))
    k = draw(st.integers(1, 4))
    rows = []
    for _ in range(n_runs):
        run = []
        while len(run) < n_bars:
            target = [draw(st.sampled_from(LEVELS)) for _ in range(k)]
            if draw(st.booleans()):  # a whole row undecided (warm-up, no decision)
                target = [np.nan] * k
            run.extend([target] * draw(st.integers(1, 8)))
        rows.append(run[:n_bars])
    weights = np.array(rows, dtype=np.float64)
    steps = draw(st.lists(st.floats(-0.2, 0.2), min_size=n_bars * k, max_size=n_bars * k))
    scale = draw(st.sampled_from([0.37, 12.5, 3100.0]))
    close = scale * np.cumprod(1.0 + np.array(steps).reshape(n_bars, k), axis=0)
    gaps = draw(st.lists(st.floats(-0.05, 0.05), min_size=n_bars * k, max_size=n_bars * k))
    opens = close * (1.0 + np.array(gaps).reshape(n_bars, k))
    return weights, opens, close


@given(
    grid=grids(),
    fill=st.sampled_from(["next_close", "next_open", "same_close"]),
    lot=st.sampled_from([None, 1, 10, 100]),
    cap=st.sampled_from([1.0, 0.5, 2.0]),
    pct=st.sampled_from([0.0, 0.001]),
    per_share=st.sampled_from([0.0, 0.01]),
    slip=st.sampled_from([0.0, 0.002]),
    rebalance=st.sampled_from(["on_change", "daily"]),
    cash=st.sampled_from([100_000.0, 1_000.0, 7.0]),
    keep=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_compiled_kernel_equals_numpy_bit_for_bit(
    grid, fill, lot, cap, pct, per_share, slip, rebalance, cash, keep
):
    weights, opens, close = grid
    raw = {
        "fill": fill,
        "max_gross_leverage": cap,
        "rebalance": rebalance,
        "commission": {"percent": pct, "per_share": per_share},
        "slippage": {"percent": slip},
        "initial_cash": cash,
    }
    if lot:
        raw.update({"sizing": "integer", "lot_size": lot})
    ex = ExecutionConfig(**raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arrays = arrays_of(opens, close)
        ref = simulate(weights, arrays, ex, keep_holdings=keep, kernel="numpy")
        got = simulate(weights, arrays, ex, keep_holdings=keep, kernel="numba")
    assert (ref.kernel, got.kernel) == ("numpy", "numba")
    assert_same(ref, got)


def test_kernel_equal_on_a_long_grid_with_many_trades():
    """4,000 bars, 40 runs of two and three assets switching often, with costs and lots."""
    rng = np.random.default_rng(11)
    for k, lot in ((2, None), (3, 10)):
        n = 4000
        close = 40.0 * np.cumprod(1.0 + 0.02 * rng.standard_normal((n, k)), axis=0)
        opens = close * (1.0 + 0.005 * rng.standard_normal((n, k)))
        choice = np.repeat(rng.integers(-1, k, (40, n // 7 + 1)), 7, axis=1)[:, :n]
        weights = np.stack([(choice == j) * 0.9 + (choice == -1) * 0.2 for j in range(k)], -1)
        weights[:, :25] = np.nan
        raw = {"commission": {"percent": 0.001, "per_share": 0.005}, "slippage": {"percent": 5e-4}}
        if lot:
            raw.update({"sizing": "integer", "lot_size": lot})
        for fill in ("next_close", "next_open"):
            ex = ExecutionConfig(fill=fill, **raw)
            arrays = arrays_of(opens, close)
            ref = simulate(weights, arrays, ex, kernel="numpy")
            got = simulate(weights, arrays, ex, kernel="numba")
            assert len(got.fills.run) > 40 * 200
            assert_same(ref, got)


def test_compiled_metrics_equal_empyrical():
    """Each run's metrics from the compiled pass equal ``performance_metrics`` (empyrical) on
    the same ledger: switching runs, a flat run (zero volatility) and a run that never
    trades."""
    rng = np.random.default_rng(5)
    n, k = 700, 2
    close = 30.0 * np.cumprod(1.0 + 0.03 * rng.standard_normal((n, k)), axis=0)
    choice = np.repeat(rng.integers(-1, k, (6, n // 9 + 1)), 9, axis=1)[:, :n]
    weights = np.stack([(choice == j) * 1.0 for j in range(k)], -1)
    weights[4] = 0.0  # never invested: constant equity
    weights[5, :, 0] = 1.0  # buy and hold
    weights[5, :, 1] = 0.0
    arrays = arrays_of(close, close)
    ex = ExecutionConfig(commission={"percent": 0.001})
    sim = simulate(weights, arrays, ex, keep_holdings=True, kernel="numba")
    values = grid_metrics(sim)
    for j in range(weights.shape[0]):
        f = sim.fills.of_run(j)
        tx = pd.DataFrame({"size": f.size, "price": f.price})
        cal = arrays.calendar
        positions = pd.DataFrame(sim.holdings[:, j, :] * close, index=cal)
        positions["cash"] = sim.cash[:, j]
        ref = performance_metrics(
            pd.Series(sim.returns[:, j], cal), positions, tx, pd.Series(sim.equity[:, j], cal)
        )
        ref["rebalances"] = float(sim.rebalances[j])
        for m in METRIC_NAMES:
            if ref[m] is None:
                assert not np.isfinite(values[m][j]), (j, m)
            else:
                assert values[m][j] == pytest.approx(ref[m], rel=1e-12, abs=1e-15), (j, m)


def test_runs_with_non_finite_values_fall_back_to_empyrical():
    """A run whose equity hits NaN is left to the numpy metrics (empyrical's NaN rules)."""
    n = 50
    close = np.linspace(10.0, 20.0, n)[:, None]
    close_nan = close.copy()
    close_nan[30] = np.nan
    weights = np.ones((1, n, 1))
    ex = ExecutionConfig()
    sims = [
        simulate(weights, arrays_of(c, c), ex, kernel=k)
        for c in (close_nan,)
        for k in ("numba", "numpy")
    ]
    got, ref = grid_metrics(sims[0]), grid_metrics(sims[1])
    for m in METRIC_NAMES:
        np.testing.assert_array_equal(got[m], ref[m], err_msg=m)


def test_kernel_choice(monkeypatch):
    monkeypatch.delenv(vectorised.KERNEL_ENV, raising=False)
    assert kernel_for(2) == "numba"
    assert kernel_for(8) == "numpy"  # numpy sums 8 or more terms pairwise
    assert kernel_for(2, "numpy") == "numpy"
    monkeypatch.setenv(vectorised.KERNEL_ENV, "numpy")
    assert kernel_for(2) == "numpy"
    monkeypatch.setenv(vectorised.KERNEL_ENV, "fortran")
    with pytest.raises(ConfigError, match="VOLBT_KERNEL='fortran'"):
        kernel_for(2)
    monkeypatch.delenv(vectorised.KERNEL_ENV)
    monkeypatch.setitem(sys.modules, "numba", None)  # as if the extra were not installed
    assert kernel_for(2) == "numpy"
    with pytest.raises(MissingExtraError, match=r"\.\[fast\]"):
        kernel_for(2, "numba")


@pytest.mark.parametrize(
    ("held", "avg", "size", "cash"),
    [
        (0.0, 0.0, 500.0, 1_000.0),  # opening buy beyond the cash: rejected
        (-20.0, 9.0, 150.0, 100.0),  # reversal short → long whose opening leg is rejected
        (-20.0, 9.0, 60.0, 10_000.0),  # reversal accepted: close and open in one execution
        (30.0, 8.0, -10.0, 5.0),  # reduce
        (30.0, 8.0, -30.0, 5.0),  # close
        (30.0, 8.0, 12.5, 1e6),  # grow, new average price
    ],
)
def test_one_execution_equals_the_numpy_broker(held, avg, size, cash):
    """Broker arithmetic of one order, rejections included (the sizing rule keeps the
    simulations from sending orders the broker rejects, so the grids above never reach it)."""
    from volbacktest.engine.execution import numba_kernel

    ex = ExecutionConfig(
        commission={"percent": 0.001, "per_share": 0.01}, slippage={"percent": 0.002}
    )
    price = 10.0
    book = vectorised._Book(np.array([cash]), np.array([[held]]), np.array([[avg]]))
    log = vectorised._FillLog()
    rejected = vectorised._execute(
        book, np.array([0]), 0, np.array([size]), np.array([price]), np.array([3]), ex, log
    )
    fills = log.build()
    state = np.array([cash, held, avg])
    costs = (ex.slippage.percent, ex.commission.percent, ex.commission.per_share)
    es, fp, fc, refused = numba_kernel._execute(state, 0, size, price, costs)
    assert bool(refused) == bool(rejected[0])
    np.testing.assert_array_equal(state, [book.cash[0], book.shares[0, 0], book.avg_price[0, 0]])
    if len(fills.size):
        assert (es, fp, fc) == (fills.size[0], fills.price[0], fills.commission[0])
    else:
        assert es == 0.0
