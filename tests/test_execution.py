"""The sizing rule: cash never goes negative after costs; without costs targets are hit."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from volbacktest.engine.execution.sizing import CostModel, order_sizes, rebalance_orders

price = st.floats(0.5, 500.0)
frac = st.floats(0.0, 1.0)


@given(
    w=st.lists(frac, min_size=1, max_size=4),
    held=st.lists(st.floats(0.0, 1000.0), min_size=4, max_size=4),
    prices=st.lists(price, min_size=4, max_size=4),
    cash=st.floats(0.0, 1e6),
    comm=st.floats(0.0, 0.01),
    slip=st.floats(0.0, 0.01),
    per_share=st.floats(0.0, 0.05),
    lot=st.sampled_from([None, 1, 100]),
)
@settings(max_examples=300, deadline=None)
def test_cash_never_negative(w, held, prices, cash, comm, slip, per_share, lot):
    k = len(w)
    w = np.array(w)
    if w.sum() > 1:
        w = w / w.sum()
    n = np.array(held[:k])
    p = np.array(prices[:k])
    costs = CostModel(comm, per_share, slip)
    d = order_sizes(w, n, cash, p, costs, integer_lot=lot)
    sells, buys = d < 0, d > 0
    after = cash + (-d[sells] * costs.sell_proceeds_per_share(p[sells])).sum()
    after -= (d[buys] * costs.buy_cost_per_share(p[buys])).sum()
    assert after >= -1e-9 * max(1.0, cash + n @ p)
    if lot:
        np.testing.assert_allclose(d / lot, np.round(d / lot), atol=1e-9)


@given(
    w=st.lists(frac, min_size=2, max_size=2),
    prices=st.lists(price, min_size=2, max_size=2),
    cash=st.floats(1.0, 1e6),
)
@settings(max_examples=200, deadline=None)
def test_targets_hit_without_costs(w, prices, cash):
    w = np.array(w) / max(1.0, sum(w))
    p = np.array(prices)
    d = order_sizes(w, np.zeros(2), cash, p, CostModel())
    np.testing.assert_allclose(d * p, w * cash, rtol=1e-9, atol=1e-12 * cash)


def test_full_switch_with_costs_is_cash_feasible():
    # hold 100 shares of A at 10, switch everything to B at 20 with 0.1% commission + slippage
    costs = CostModel(0.001, 0.0, 0.001)
    d = order_sizes(
        np.array([0.0, 1.0]), np.array([100.0, 0.0]), 0.0, np.array([10.0, 20.0]), costs
    )
    assert d[0] == -100.0
    proceeds = 100 * costs.sell_proceeds_per_share(np.array([10.0]))[0]
    assert d[1] * costs.buy_cost_per_share(np.array([20.0]))[0] <= proceeds
    assert d[1] > 0.995 * 1000 / 20


def test_leverage_cap_scales_weights():
    d = order_sizes(
        np.array([1.0, -1.0]),
        np.zeros(2),
        100.0,
        np.array([1.0, 1.0]),
        CostModel(),
        max_gross_leverage=1.0,
    )
    np.testing.assert_allclose(d, [50.0, -50.0])


def test_crossing_trade_is_sent_as_close_then_open():
    """Short -> long in one rebalance becomes an exact close and an open (backtrader would split
    one crossing order into parts whose float sum misses the size by ~1e-13 shares and fill the
    sliver a bar later). Sells go first."""
    legs = rebalance_orders(np.array([1442.0, -600.0, 0.0]), np.array([-400.0, 600.0, 5.0]))
    assert legs == [(1, -600.0), (0, 400.0), (0, 1042.0)]
    legs = rebalance_orders(np.array([-150.0]), np.array([100.0]))
    assert legs == [(0, -100.0), (0, -50.0)]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 4),
    st.sampled_from([None, 100]),
    st.floats(0.0, 0.01),
    st.integers(0, 2**32 - 1),
)
def test_one_row_or_many_rows_give_identical_orders(n_runs, k, lot, slip, seed):
    """The executors share ``order_sizes``: the vectorised one calls it on a stack of runs, the
    backtrader one on a single run. Every row of the stack equals the single-run call, bit for
    bit (so the executors cannot drift apart through the sizing rule)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.0, 1.0, (n_runs, k)) * rng.integers(0, 2, (n_runs, k))
    held = np.round(rng.uniform(-500, 500, (n_runs, k))) * rng.integers(0, 2, (n_runs, k))
    prices = rng.uniform(5.0, 200.0, (n_runs, k))
    cash = rng.uniform(0.0, 1e5, n_runs)
    costs = CostModel(0.001, 0.005, slip)
    stack = order_sizes(w, held, cash, prices, costs, integer_lot=lot, max_gross_leverage=1.5)
    for j in range(n_runs):
        one = order_sizes(
            w[j], held[j], cash[j], prices[j], costs, integer_lot=lot, max_gross_leverage=1.5
        )
        assert one.shape == (k,)
        np.testing.assert_array_equal(stack[j], one)


def test_dust_orders_are_not_sent():
    d = order_sizes(
        np.array([0.5]), np.array([500.0]), 50_000.0 + 1e-9, np.array([100.0]), CostModel()
    )
    assert d[0] == 0.0
