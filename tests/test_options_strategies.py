"""covered_call and short_strangle on the embedded SPX-like chains, the look-ahead property of
option legs (a leg is chosen only from that day's chain), runonce/next identity and the fast
path's refusal (issue 13)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from volbacktest.engine.calculators.bs import bs_greeks, implied_vol
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.options import options_market, run_options_backtest
from volbacktest.engine.execution.vectorised import fast_backtest
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.strategies import options_names, share_names

START, END = "2012-01-03", "2012-12-31"


def _config(strategy: str, **params):
    return config_from_mapping(
        {
            "name": strategy,
            "strategy": {"name": strategy, "params": {"underlying": "spx", **params}},
            "data": {"source": "synthetic", "synthetic": {"seed": 7, "start": START, "end": END}},
            "execution": {"fill": "same_close", "initial_cash": 1_000_000},
            "options": {
                "chain": "spx_options",
                "contracts": "fractional",
                "fill": {"price": "bid_ask"},
                "margin": "cboe",
                "collateral_rate": "chain",
            },
        }
    )


def _run(cfg, market=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_options_backtest(cfg, market or options_market(cfg), **kw)


@pytest.fixture(scope="module")
def markets():
    return {s: options_market(_config(s)) for s in options_names()}


def test_options_strategies_are_registered_apart_from_share_strategies():
    assert options_names() == ["covered_call", "put_write", "short_strangle"]
    assert not set(options_names()) & set(share_names())


def test_covered_call_sells_one_call_per_multiplier_units_at_or_above_the_index(markets):
    cfg = _config("covered_call")
    r = _run(cfg, markets["covered_call"])
    tx = r.transactions
    calls = tx[(tx["reason"] == "roll") & (tx["cp"] == "C")]
    assert len(calls) == 13 and (calls["size"] < 0).all()
    m = markets["covered_call"]
    close = pd.Series(m.close, index=m.dates)
    assert (calls["strike"].to_numpy() >= close.reindex(calls["date"]).to_numpy()).all()
    units = r.margin["underlying_value"] / close
    # one call per 100 index units held, every day; covered: no margin
    np.testing.assert_allclose(r.margin["short_contracts"], units / 100.0, rtol=1e-12)
    assert (r.margin["maintenance_margin"] == 0).all()
    parts = r.margin[["cash", "underlying_value", "options_value"]].sum(axis=1)
    np.testing.assert_allclose(r.equity, parts, rtol=1e-12)


def _net_delta(r, market) -> np.ndarray:
    """Units of underlying plus options' Black-Scholes delta, recomputed here from the day's mid."""
    c = market.chain
    out = []
    held = {}
    for row in r.transactions.itertuples():
        if row.symbol != "underlying":
            held.setdefault(row.date, []).append(row)
    positions: dict = {}
    for t, day in enumerate(market.dates):
        for row in held.get(day, []):
            key = (row.expiry, row.cp, row.strike)
            positions[key] = positions.get(key, 0.0) + row.size
            if abs(positions[key]) < 1e-12:
                del positions[key]
        lo, hi = market.bounds[t], market.bounds[t + 1]
        delta = r.holdings["spx"].iloc[t]
        for (expiry, cp, strike), n in positions.items():
            j = np.flatnonzero(
                (c["expiry"][lo:hi] == np.datetime64(expiry))
                & (c["cp"][lo:hi] == cp)
                & (c["strike"][lo:hi] == strike)
            )
            if not j.size:  # not listed that day (model mark): no check
                delta = np.nan
                continue
            tau = (expiry - day).days / 365.0
            mid = c["mark"][lo + j[0]]
            iv = implied_vol(mid, market.close[t], strike, tau, rate_cc=market.rate,
                             is_call=cp == "C").iv  # fmt: skip
            d = bs_greeks(market.close[t], strike, tau, iv, rate_cc=market.rate,
                          is_call=cp == "C").delta  # fmt: skip
            delta += n * 100.0 * float(d)
        out.append(delta)
    return np.asarray(out)


def test_short_strangle_delta_legs_and_daily_hedge(markets):
    m = markets["short_strangle"]
    plain = _run(_config("short_strangle"), m)
    hedged = _run(_config("short_strangle", delta_hedge=True), m)
    tx = plain.transactions
    legs = tx[tx["reason"] == "roll"]
    assert set(legs["cp"]) == {"C", "P"} and (legs["size"] < 0).all()
    puts, calls = legs[legs["cp"] == "P"], legs[legs["cp"] == "C"]
    close = pd.Series(m.close, index=m.dates)
    assert (puts["strike"].to_numpy() < close.reindex(puts["date"]).to_numpy()).all()
    assert (calls["strike"].to_numpy() > close.reindex(calls["date"]).to_numpy()).all()
    assert (hedged.transactions["reason"] == "delta_hedge").sum() > 200
    # hedged at every close: the book's net delta, recomputed independently, is zero
    held_days = hedged.margin["short_contracts"] > 0
    net = _net_delta(hedged, m)[held_days.to_numpy()]
    assert np.isfinite(net).sum() > 140
    np.testing.assert_allclose(net[np.isfinite(net)], 0.0, atol=1e-6)


@pytest.mark.parametrize("strategy", ["put_write", "short_strangle", "covered_call"])
def test_legs_use_only_that_days_chain(strategy, markets):
    """Rewriting every chain row after day t (quotes and strikes) and the underlying after t
    changes nothing up to t: legs, fills, marks and equity."""
    m = markets[strategy]
    cfg = _config(strategy)
    base = _run(cfg, m)
    rng = np.random.default_rng(3)
    for t in (40, 140):
        cut = m.bounds[t + 1]
        chain = {k: v.copy() for k, v in m.chain.items()}
        for name in ("bid", "ask", "close", "mark"):
            chain[name][cut:] *= rng.uniform(0.5, 1.5, len(chain[name]) - cut)
        chain["strike"][cut:] += 5.0
        close = m.close.copy()
        close[t + 1 :] *= 1.1
        changed = dataclasses.replace(m, chain=chain, close=close, inputs={"spx": close})
        other = _run(cfg, changed)
        day = m.dates[t]
        np.testing.assert_array_equal(base.equity.loc[:day], other.equity.loc[:day])
        a = base.transactions[base.transactions["date"] <= day].reset_index(drop=True)
        b = other.transactions[other.transactions["date"] <= day].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_runonce_and_next_agree(markets):
    cfg = _config("put_write")
    a = _run(cfg, markets["put_write"])
    b = _run(cfg, markets["put_write"], runonce=False)
    np.testing.assert_array_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)


def test_fast_path_refuses_options():
    with pytest.raises(ConfigError, match="does not trade options"):
        fast_backtest(_config("put_write"))
