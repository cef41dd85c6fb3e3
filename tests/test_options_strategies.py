"""covered_call and short_strangle on the embedded SPX-like chains, the look-ahead property of
option legs (a leg is chosen only from that day's chain), runonce/next identity and the fast
path's refusal (issue 13)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from volbacktest import strategies
from volbacktest.data.synthetic import generate_market
from volbacktest.engine.calculators.bs import bs_greeks, implied_vol
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.options import options_market, run_options_backtest
from volbacktest.engine.execution.vectorised import fast_backtest
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.strategies import options_names, share_names
from volbacktest.strategies.base import StrategySpec
from volbacktest.strategies.options_income import PutWriteParams

START, END = "2012-01-03", "2012-12-31"


def _config(strategy: str, data: dict | None = None, **params):
    window = {"source": "synthetic", "synthetic": {"seed": 7, "start": START, "end": END}}
    return config_from_mapping(
        {
            "name": strategy,
            "strategy": {"name": strategy, "params": {"underlying": "spx", **params}},
            "data": {**window, **(data or {})},
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
    """Legs, fills, marks and equity up to day t do not depend on anything after t."""
    _check_no_look_ahead(_config(strategy), markets[strategy], (40, 140))


def _check_no_look_ahead(cfg, m, days, base=None) -> None:
    """Rewrite every chain row after day t (quotes and strikes) and the underlying after t (its
    warm-up history before the first traded bar kept): nothing changes up to t."""
    base = base or _run(cfg, m)
    rng = np.random.default_rng(3)
    for t in days:
        cut = m.bounds[t + 1]
        chain = {k: v.copy() for k, v in m.chain.items()}
        for name in ("bid", "ask", "close", "mark"):
            chain[name][cut:] *= rng.uniform(0.5, 1.5, len(chain[name]) - cut)
        chain["strike"][cut:] += 5.0
        close = m.close.copy()
        close[t + 1 :] *= 1.1
        inputs = {"spx": np.concatenate((m.inputs["spx"][: m.n_warmup], close))}
        other = _run(cfg, dataclasses.replace(m, chain=chain, close=close, inputs=inputs))
        day = m.dates[t]
        np.testing.assert_array_equal(base.weights.loc[:day], other.weights.loc[:day])
        np.testing.assert_array_equal(base.equity.loc[:day], other.equity.loc[:day])
        a = base.transactions[base.transactions["date"] <= day].reset_index(drop=True)
        b = other.transactions[other.transactions["date"] <= day].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        assert not base.equity.equals(other.equity)  # the rewrite did change what follows


def test_runonce_and_next_agree(markets):
    cfg = _config("put_write")
    a = _run(cfg, markets["put_write"])
    b = _run(cfg, markets["put_write"], runonce=False)
    np.testing.assert_array_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)


def test_fast_path_refuses_options():
    with pytest.raises(ConfigError, match="does not trade options"):
        fast_backtest(_config("put_write"))


# --------------------------------------------------------------------------- warm-up (issue 18)
OPT_START, LOOKBACK = "2012-03-01", 20


class TrendPutWriteParams(PutWriteParams):
    lookback: int = LOOKBACK


def trend_put_write(inputs, p: TrendPutWriteParams) -> np.ndarray:
    """Sell the put only while the underlying closes above its SMA (a look-back gate)."""
    close = pd.Series(np.asarray(inputs[p.underlying], dtype=np.float64))
    sma = close.rolling(p.lookback).mean().to_numpy()
    gate = np.where(close.to_numpy() > sma, 1.0, 0.0)
    gate[np.isnan(sma)] = np.nan
    return gate[:, None]


@pytest.fixture(scope="module")
def warm_runs():
    """A look-back gate started on OPT_START, two months after the embedded chains begin, with
    ``warmup: auto`` and ``none`` (the strategy is registered while the fixture lives)."""
    spec = StrategySpec("trend_put_write", TrendPutWriteParams, trend_put_write, "test only")
    mp = pytest.MonkeyPatch()
    mp.setitem(strategies.REGISTRY, spec.name, spec)
    out = {}
    for w in ("auto", "none"):
        cfg = _config(spec.name, data={"start": OPT_START, "warmup": w})
        market = options_market(cfg)
        out[w] = (market, _run(cfg, market))
        out[w + "_cfg"] = cfg
    out["auto_next"] = _run(out["auto_cfg"], out["auto"][0], runonce=False)
    yield out
    mp.undo()


def test_options_decide_on_the_first_bar_with_warmup(warm_runs):
    """A plain recomputation (SMA20 of the embedded SPX over its whole history) gives every
    decision with ``auto``; ``none`` waits 20 traded bars and then agrees."""
    (m_auto, auto), (m_none, none) = warm_runs["auto"], warm_runs["none"]
    first = m_auto.dates[0]
    assert first == pd.Timestamp(OPT_START) == m_none.dates[0]
    spx = generate_market(None, 7, START, END).frames["spx"]["close"]
    sma = spx.rolling(LOOKBACK).mean()
    plain = pd.Series(np.where(spx > sma, 1.0, 0.0), index=spx.index).where(sma.notna())
    plain = plain.reindex(auto.weights.index).to_numpy()
    np.testing.assert_array_equal(auto.weights["spx"].to_numpy(), plain)
    assert auto.metrics["first_decision"] == OPT_START
    assert auto.metrics["warmup"]["signals"]["spx"] == {"bars": m_auto.n_warmup, "from": START}
    assert m_auto.n_warmup >= LOOKBACK  # January and February: enough for SMA20 on day one
    assert any(n.startswith(f"first decision {OPT_START}") for n in auto.market_notes)
    opened = auto.transactions[auto.transactions["reason"] == "roll"]
    # a put is sold on the first bar exactly when the gate is open there
    assert (opened["date"].min() == first) == (plain[0] == 1.0)
    w_none = none.weights["spx"].to_numpy()
    assert np.isnan(w_none[: LOOKBACK - 1]).all()
    np.testing.assert_array_equal(w_none[LOOKBACK - 1 :], plain[LOOKBACK - 1 :])
    assert none.metrics["first_decision"] == f"{m_none.dates[LOOKBACK - 1]:%Y-%m-%d}"
    assert none.metrics["warmup"]["bars"] == 0 and m_none.warmup is None
    assert none.transactions["date"].min() >= m_none.dates[LOOKBACK - 1]


def test_the_warm_gate_does_not_look_ahead(warm_runs):
    """Rewriting the chain rows and the underlying after day t (the look-back gate reads the
    pre-start history too) changes nothing up to t."""
    m, base = warm_runs["auto"]
    _check_no_look_ahead(warm_runs["auto_cfg"], m, (3, 60), base)


def test_options_runonce_and_next_agree_with_warmup(warm_runs):
    a, b = warm_runs["auto"][1], warm_runs["auto_next"]
    np.testing.assert_array_equal(a.weights.to_numpy(), b.weights.to_numpy())
    np.testing.assert_array_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
