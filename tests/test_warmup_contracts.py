"""Warm-up for the futures executor (issue 18; options: tests/test_options_strategies.py): a
futures strategy whose inputs look back decides on its first traded bar when the history before
``data.start`` allows, with the same ``warmup`` metrics and notes as a share run; ``warmup:
none`` restores the trading-calendar-only behaviour. The decisions are checked against a plain
recomputation from the embedded market's own frames (a pandas rolling mean over the whole
history, the front contract picked from the settle matrix by hand), not the engine's code."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from volbacktest.data.synthetic import generate_market
from volbacktest.engine.execution.futures import futures_market, run_futures_backtest
from volbacktest.engine.inputs.config import config_from_mapping

# --------------------------------------------------------------------------- futures
FUT_SEED, FUT_FROM, FUT_TO, FUT_START = 11, "2008-01-02", "2009-06-30", "2008-03-03"
SMOOTHING = 5


def _futures_cfg(warmup):
    return config_from_mapping(
        {
            "name": "vx_roll_yield_warm",
            "strategy": {"name": "vx_roll_yield", "params": {"smoothing": SMOOTHING}},
            "data": {
                "source": "synthetic",
                "synthetic": {"seed": FUT_SEED, "start": FUT_FROM, "end": FUT_TO},
                "start": FUT_START,
                "warmup": warmup,
            },
            "execution": {"fill": "next_close", "initial_cash": 1_000_000},
            "futures": {"on_margin_call": "reduce"},
        }
    )


def _plain_roll_yield_side() -> pd.Series:
    """Cooper's rule by hand over the whole embedded history: F1 = the first listed contract
    expiring after the day, SMA5(F1/VIX - 1) > 0 -> short (-1), < 0 -> long (+1)."""
    gen = generate_market(None, FUT_SEED, FUT_FROM, FUT_TO)
    settle = gen.futures_settle
    expiries = pd.DatetimeIndex(settle.columns)
    f1 = pd.Series(
        [row[(expiries > day) & row.notna().to_numpy()].iloc[0] for day, row in settle.iterrows()],
        index=settle.index,
    )
    vix = gen.frames["vix"]["close"].reindex(settle.index)
    basis = (f1 / vix - 1.0).rolling(SMOOTHING).mean()
    return pd.Series(np.where(basis > 0, -1.0, 1.0), index=basis.index).where(basis.notna())


@pytest.fixture(scope="module")
def futures_runs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {w: run_futures_backtest(_futures_cfg(w)) for w in ("auto", "none")}


def test_futures_decide_on_the_first_bar_with_warmup(futures_runs):
    auto, none = futures_runs["auto"], futures_runs["none"]
    first = pd.Timestamp(FUT_START)
    assert auto.equity.index[0] == first == none.equity.index[0]
    plain = _plain_roll_yield_side().reindex(auto.weights.index)
    # auto: every traded bar decided, equal to the recomputation over the whole history
    np.testing.assert_array_equal(auto.weights["st_index"].to_numpy(), plain.to_numpy())
    assert auto.metrics["first_decision"] == FUT_START
    warm = auto.metrics["warmup"]
    assert warm["setting"] == "auto" and warm["from"] == FUT_FROM
    # every embedded session before the start (NYSE: less Martin Luther King and Presidents' Day)
    assert warm["bars"] == len(pd.bdate_range(FUT_FROM, "2008-02-29")) - 2 == 41
    assert set(warm["signals"]) == {"vix", "f1"}
    assert any(
        n.startswith("first decision 2008-03-03 (traded bar 1 of") for n in auto.market_notes
    )
    # next_close: the first decision is filled on the second bar
    assert auto.transactions["date"].min() == auto.equity.index[1]
    # none: the SMA5 needs 5 traded bars; afterwards the decisions are the same
    assert none.metrics["warmup"] == {"setting": "none", "bars": 0, "from": None, "signals": {}}
    assert none.metrics["first_decision"] == f"{none.equity.index[SMOOTHING - 1]:%Y-%m-%d}"
    w_none = none.weights["st_index"].to_numpy()
    assert np.isnan(w_none[: SMOOTHING - 1]).all()
    np.testing.assert_array_equal(w_none[SMOOTHING - 1 :], plain.to_numpy()[SMOOTHING - 1 :])
    assert none.transactions["date"].min() == none.equity.index[SMOOTHING]


def test_futures_warmup_of_n_bars_and_the_market_arrays():
    market = futures_market(_futures_cfg(3))
    assert market.n_warmup == 3 and market.warmup.index[-1] == pd.Timestamp("2008-02-29")
    n = len(market.matrix.dates)
    assert all(len(v) == n + 3 for v in market.inputs.values())
    # three bars of history: SMA5 still lacks one bar on the first traded day, not on the second
    w = run_futures_backtest(_futures_cfg(3), market).weights["st_index"].to_numpy()
    assert np.isnan(w[0]) and np.isfinite(w[1:]).all()
