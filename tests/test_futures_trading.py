"""VIX futures as tradable instruments: the contract book (variation margin, margin, fees,
final settlement), roles and rolls, the futures executor and its strategies.

Expected numbers are worked by hand in the comments (first principles: a futures position's
daily cash flow is contracts x multiplier x change in settle; fees per contract side)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from volbacktest import strategies
from volbacktest.data.calendars import nyse_sessions
from volbacktest.engine.calculators.futures_book import (
    ContractBook,
    ContractTerms,
    basket_contracts,
    contract_name,
    margin_call_scale,
)
from volbacktest.engine.calculators.futures_curve import SettleMatrix, futures_curve
from volbacktest.engine.errors import ConfigError, DataError
from volbacktest.engine.execution.futures import (
    FuturesMarket,
    futures_market,
    role_legs,
    run_futures_backtest,
)
from volbacktest.engine.execution.vectorised import fast_backtest
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.strategies.base import StrategyParams, StrategySpec

A, B, C = (pd.Timestamp(d) for d in ("2020-01-22", "2020-02-19", "2020-03-18"))
D1, D2, D3 = (pd.Timestamp(d) for d in ("2020-01-17", "2020-01-21", "2020-01-22"))
TERMS = ContractTerms(fee_per_contract=2.0, initial_margin=5500.0, maintenance_margin=5000.0)


def test_contract_names_follow_the_month_codes():
    assert contract_name(A) == "VXF20 (2020-01-22)"
    assert contract_name("2008-10-22") == "VXV08 (2008-10-22)"


def test_long_and_short_through_a_roll_and_an_expiry_by_hand():
    book = ContractBook(TERMS, cash=100_000.0)
    # day 1: long 2 A at 15.00, short 3 B at 16.00; fees (2 + 3) x 2 = 10
    book.mark(D1, {A: 15.0, B: 16.0})
    assert book.trade_to(D1, {A: 2, B: -3}, {A: 15.0, B: 16.0}) == 10.0
    assert book.cash == 99_990.0
    assert book.requirement("initial") == 5 * 5500.0
    # day 2: A 15.50 (+2 x 1000 x 0.50 = +1000), B 16.20 (-3 x 1000 x 0.20 = -600)
    assert book.mark(D2, {A: 15.5, B: 16.2, C: 17.0}) == pytest.approx(400.0)
    # roll one A into C: sell 1 A, buy 1 C, fees 4
    book.trade_to(D2, {A: 1, B: -3, C: 1}, {A: 15.5, B: 16.2, C: 17.0}, {A: "roll", C: "roll"})
    assert book.cash == pytest.approx(99_990.0 + 400.0 - 4.0)
    # day 3 = A's final settlement date, 14.80: A -700, B -3 x 1000 x 0.30 = -900, C +300
    assert book.mark(D3, {A: 14.8, B: 16.5, C: 17.3}) == pytest.approx(-1300.0)
    assert book.settle_expired(D3) == [A]
    # whole history: A +1000 - 700, B -1500, C +300, fees 14
    assert book.equity == pytest.approx(100_000.0 + 1000 - 700 - 1500 + 300 - 14)
    assert book.positions == {B: -3.0, C: 1.0}
    assert book.requirement("maintenance") == 4 * 5000.0
    trades = pd.DataFrame(book.trades)
    assert trades["reason"].tolist() == ["trade", "trade", "roll", "roll", "final_settlement"]
    final = trades.iloc[-1]
    assert (final["size"], final["price"], final["fee"]) == (-1.0, 14.8, 0.0)


def test_a_target_on_an_expired_contract_names_it():
    book = ContractBook(TERMS, cash=100_000.0)
    with pytest.raises(ConfigError, match=r"VXF20 \(2020-01-22\).*last trading day"):
        book.trade_to(D3, {A: -1}, {A: 14.8})
    with pytest.raises(ConfigError, match="VXF20"):
        book.trade_to(pd.Timestamp("2020-01-23"), {A: 1}, {A: 14.8})


def test_a_held_contract_without_a_settle_is_a_data_error():
    book = ContractBook(TERMS, cash=1e5)
    book.trade_to(D1, {B: 1}, {B: 16.0})
    with pytest.raises(DataError, match=r"VXG20.*2020-01-21.*no settlement"):
        book.mark(D2, {B: float("nan")})


def test_whole_contracts_round_and_fractional_is_explicit():
    assert TERMS.round_contracts(2.5) == 3.0 and TERMS.round_contracts(-2.5) == -3.0
    assert TERMS.round_contracts(-0.49) == 0.0
    frac = ContractTerms(fractional=True)
    assert frac.round_contracts(-0.49) == -0.49


def test_notional_margin_and_margin_call_scale():
    terms = ContractTerms(margin_basis="notional", initial_margin=0.3, maintenance_margin=0.25)
    # 2 contracts at 20.00: notional 40,000; initial 12,000, maintenance 10,000
    assert terms.requirement(np.array([-2.0]), np.array([20.0]), "initial") == pytest.approx(12e3)
    assert terms.requirement(np.array([-2.0]), np.array([20.0]), "maint") == pytest.approx(1e4)
    assert margin_call_scale(6_000.0, 12_000.0) == 0.5
    assert margin_call_scale(-1.0, 12_000.0) == 0.0
    assert margin_call_scale(1.0, 0.0) == 1.0
    with pytest.raises(ConfigError, match="maintenance"):
        ContractTerms(initial_margin=1.0, maintenance_margin=2.0)


def test_basket_contracts_earn_exposure_times_the_basket_return():
    units, p0, p1 = np.array([0.4, 0.6]), np.array([15.0, 17.0]), np.array([16.0, 17.5])
    n = basket_contracts(-1.0, 1e6, units, p0, 1000.0)
    pnl = float(np.dot(n, p1 - p0)) * 1000.0
    basket_return = np.dot(units, p1) / np.dot(units, p0) - 1.0
    assert pnl == pytest.approx(-1e6 * basket_return, rel=1e-12)


# --------------------------------------------------------------------------- executor


class _HoldParams(StrategyParams):
    contracts: float = -10.0

    def assets(self):
        return ("F1",)

    def inputs(self):
        return ("f1",)


def _hold(inputs, p):
    return np.full((len(inputs["f1"]), 1), p.contracts)


HOLD = StrategySpec("hold_f1", _HoldParams, _hold, "hold a number of F1 contracts")


def _hand_market(rows: dict) -> FuturesMarket:
    """A settle matrix written by hand: {date: (A settle, B settle)}."""
    dates = pd.DatetimeIndex(list(rows), name="date")
    settle = pd.DataFrame(
        [rows[d] for d in rows], index=dates, columns=pd.DatetimeIndex([A, B], name="expiry")
    )
    matrix = SettleMatrix(settle, settle.notna(), pd.Series("hand", index=dates))
    sessions = nyse_sessions("2019-09-01", "2020-04-30")
    f1 = futures_curve(matrix, sessions, n=1).price[1].to_numpy()
    return FuturesMarket(matrix, sessions, {"f1": f1}, "hand")


def _hand_config(contracts: float, cash: float, on_call: str = "reduce", fill="same_close"):
    raw = {
        "name": "hand",
        "strategy": {"name": "hold_f1", "params": {"contracts": contracts}},
        "execution": {"fill": fill, "initial_cash": cash, "rebalance": "on_change"},
        "futures": {
            "size": "contracts",
            "fee_per_contract": 0.0,
            "margin": {"initial": 5500.0, "maintenance": 5000.0},
            "on_margin_call": on_call,
        },
    }
    return config_from_mapping(raw, strategy=HOLD)


def _run(cfg, market):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_futures_backtest(cfg, market)


MARGIN_DAYS = {
    pd.Timestamp("2020-01-02"): (15.0, 16.0),
    pd.Timestamp("2020-01-03"): (16.0, 16.5),
    pd.Timestamp("2020-01-06"): (17.0, 17.0),
    pd.Timestamp("2020-01-07"): (16.0, 16.5),
}


def test_a_margin_call_reduces_by_hand():
    res = _run(_hand_config(-10, 60_000.0), _hand_market(MARGIN_DAYS))
    # day 1: short 10 A at 15 (initial 55,000 <= 60,000); day 2: 16, -10,000 -> 50,000 =
    # maintenance 50,000 (no call); day 3: 17, -10,000 -> 40,000 < 50,000: margin call, keep
    # trunc(10 x 40,000/55,000) = 7, buy back 3 at 17; day 4: 16, +7,000 -> 47,000 (rebalance
    # on_change: the decision has not changed, the 7 are kept)
    assert res.equity.tolist() == [60_000.0, 50_000.0, 40_000.0, 47_000.0]
    assert res.holdings.iloc[:, 0].tolist() == [-10.0, -10.0, -7.0, -7.0]
    (event,) = res.metrics["margin_call_events"]
    assert (event["date"], event["equity"], event["maintenance_margin"], event["action"]) == (
        "2020-01-06",
        40_000.0,
        50_000.0,
        "reduce",
    )
    assert res.metrics["margin_calls"] == 1 and res.metrics["margin_limited_days"] == 0
    # rebalancing daily, the target of -10 (55,000 initial) is cut to what equity allows: day 2
    # trunc(10 x 50,000/55,000) = 9; day 3: -9,000 -> 41,000 < 45,000 maintenance: call, keep
    # trunc(9 x 41,000/49,500) = 7; day 4: +7,000 -> 48,000, trunc(10 x 48,000/55,000) = 8
    daily = _run(
        _hand_config(-10, 60_000.0).with_overrides(**{"execution.rebalance": "daily"}),
        _hand_market(MARGIN_DAYS),
    )
    assert daily.holdings.iloc[:, 0].tolist() == [-10.0, -9.0, -7.0, -8.0]
    assert daily.equity.tolist() == [60_000.0, 50_000.0, 41_000.0, 48_000.0]
    assert daily.metrics["margin_limited_days"] == 2
    # lowest cushion (equity - maintenance)/equity at a close: day 2, (50,000 - 50,000)/50,000
    assert res.metrics["margin_cushion_min"] == 0.0
    assert res.metrics["margin_cushion_min_date"] == "2020-01-03"
    assert (res.equity > 0).all()


def test_a_margin_call_can_stop_trading():
    res = _run(_hand_config(-10, 60_000.0, on_call="stop"), _hand_market(MARGIN_DAYS))
    assert res.equity.tolist() == [60_000.0, 50_000.0, 40_000.0, 40_000.0]
    assert res.holdings.iloc[:, 0].tolist() == [-10.0, -10.0, 0.0, 0.0]
    assert res.metrics["stopped"] is True
    assert res.transactions["reason"].tolist() == ["signal", "margin_call"]


def test_long_f1_through_its_expiry_settles_and_rolls_by_hand():
    days = {
        pd.Timestamp("2020-01-17"): (15.0, 16.0),
        pd.Timestamp("2020-01-21"): (15.5, 16.2),
        pd.Timestamp("2020-01-22"): (14.8, 16.5),  # A's final settlement 14.80
        pd.Timestamp("2020-01-23"): (np.nan, 16.0),
    }
    res = _run(_hand_config(2, 100_000.0), _hand_market(days))
    tx = res.transactions
    assert tx["reason"].tolist() == ["signal", "final_settlement", "roll"]
    assert tx["symbol"].tolist() == ["VXF20 (2020-01-22)"] * 2 + ["VXG20 (2020-02-19)"]
    # A: 2 x 1000 x (14.80 - 15.00) = -400; B bought at 16.50 on the 22nd, 16.00 on the 23rd
    assert res.equity.tolist() == [100_000.0, 101_000.0, 99_600.0, 98_600.0]


def test_roles_follow_the_roll_rule(shared_data):
    cfg = config_from_mapping(
        {"name": "r", "strategy": {"name": "vx_basis"}, "data": {"source": "shared"}, "futures": {}}
    )
    market = futures_market(cfg)
    curve = futures_curve(market.matrix, market.sessions, n=3)
    f1 = role_legs("F1", market, 0).expiry[:, 0]
    np.testing.assert_array_equal(f1, curve.expiry[1].to_numpy(dtype="datetime64[ns]"))
    early = role_legs("F1", market, 5).expiry[:, 0]
    near = curve.business_days[1].to_numpy() <= 5
    np.testing.assert_array_equal(early[near], curve.expiry[2].to_numpy("datetime64[ns]")[near])
    np.testing.assert_array_equal(early[~near], f1[~near])
    f2 = role_legs("F2", market, 0).expiry[:, 0]
    np.testing.assert_array_equal(f2, curve.expiry[2].to_numpy(dtype="datetime64[ns]"))
    cm = role_legs("cm30", market, 0)
    assert cm.units.shape[1] == 2 and np.allclose(cm.units.sum(axis=1), 1.0)


def _replica(contracts: str, fee: float = 0.0):
    raw = {
        "name": "replica",
        "strategy": {"name": "vx_inverse_replica"},
        "data": {"source": "shared"},
        "execution": {"fill": "same_close", "initial_cash": 1_000_000, "rebalance": "daily"},
        "futures": {
            "contracts": contracts,
            "fee_per_contract": fee,
            "margin": {"initial": 0, "maintenance": 0},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_futures_backtest(config_from_mapping(raw))


def test_inverse_replica_equals_the_etn_command_to_1e10(shared_data, tmp_path):
    out = tmp_path / "xiv0.csv"
    contracts = shared_data / "vix_futures_cfe" / "per_contract"
    cmd = [sys.executable, "-m", "volbacktest", "etn", "--contracts", str(contracts)]
    cmd += ["--kind", "inverse", "--fee", "0", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    etn = pd.read_csv(out, index_col="date", parse_dates=True)["etn_return"]
    res = _replica("fractional")
    assert res.returns.index[0] == pd.Timestamp("2004-03-26")
    assert res.returns.index[-1] == pd.Timestamp("2017-03-08")
    assert res.returns.index.equals(etn.index)
    assert np.max(np.abs(res.returns - etn)) < 1e-10
    whole = _replica("whole")
    te = float((whole.returns - etn).std() * np.sqrt(252))
    assert 0 < te < 0.01  # measured 0.32 %/yr on 1,000,000 USD
    assert whole.metrics["roll_trades"] > 6000


def test_the_fast_path_refuses_futures_clearly():
    cfg = _hand_config(-1, 1e5)
    with pytest.raises(ConfigError, match="event-driven pool"):
        fast_backtest(cfg)


# --------------------------------------------------------------------------- look-ahead, run modes
SHORT = {  # trading from March: January and February are warm-up history (issue 18)
    "source": "synthetic",
    "synthetic": {"seed": 11, "start": "2008-01-02", "end": "2010-12-31"},
    "start": "2008-03-03",
}


def _futures_cfg(name: str, fill: str = "next_close"):
    return config_from_mapping(
        {
            "name": f"t_{name}",
            "strategy": {"name": name},
            "data": SHORT,
            "execution": {"fill": fill, "initial_cash": 1_000_000},
            "futures": {"on_margin_call": "reduce"},
        }
    )


@pytest.fixture(scope="module")
def futures_markets():
    return {n: futures_market(_futures_cfg(n)) for n in strategies.futures_names()}


def _perturb_after(market: FuturesMarket, t: int, seed: int) -> FuturesMarket:
    rng = np.random.default_rng(seed)
    settle = market.matrix.settle.copy()
    settle.iloc[t + 1 :] *= rng.uniform(0.5, 1.5, size=(len(settle) - t - 1, 1))
    matrix = SettleMatrix(settle, market.matrix.listed, market.matrix.source)
    inputs = {}
    cut = market.n_warmup + t + 1  # the inputs start with the warm-up bars
    for k, v in market.inputs.items():
        w = v.copy()
        w[cut:] *= rng.uniform(0.5, 1.5, size=len(w) - cut)
        inputs[k] = w
    return dataclasses.replace(market, matrix=matrix, inputs=inputs)


def test_the_look_ahead_markets_have_warmup(futures_markets):
    for market in futures_markets.values():
        assert market.n_warmup == 41 and market.matrix.dates[0] == pd.Timestamp("2008-03-03")


def test_futures_strategies_are_registered_apart():
    assert strategies.futures_names() == ["vx_basis", "vx_inverse_replica", "vx_roll_yield"]
    assert not set(strategies.futures_names()) & set(strategies.share_names())
    with pytest.raises(ConfigError, match="add a futures: section"):
        config_from_mapping({"name": "x", "strategy": {"name": "vx_basis"}})
    with pytest.raises(ConfigError, match="not futures roles"):
        config_from_mapping({"name": "x", "strategy": {"name": "vratio"}, "futures": {}})


@pytest.mark.parametrize("name", strategies.futures_names())
@pytest.mark.parametrize(("t", "seed"), [(150, 1), (420, 2)])
def test_futures_strategies_do_not_look_ahead(futures_markets, name, t, seed):
    """Changing every settle and input after bar t leaves positions and equity up to t alone."""
    cfg = _futures_cfg(name)
    base = run_futures_backtest(cfg, futures_markets[name])
    other = run_futures_backtest(cfg, _perturb_after(futures_markets[name], t, seed))
    assert len(base.transactions) > 10
    cols = base.holdings.columns.intersection(other.holdings.columns)
    pd.testing.assert_frame_equal(
        base.holdings[cols].iloc[: t + 1], other.holdings[cols].iloc[: t + 1]
    )
    pd.testing.assert_series_equal(base.equity.iloc[: t + 1], other.equity.iloc[: t + 1])
    day = base.equity.index[t]
    before = base.transactions[base.transactions["date"] <= day].reset_index(drop=True)
    after = other.transactions[other.transactions["date"] <= day].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize("name", strategies.futures_names())
def test_futures_run_modes_identical(futures_markets, name):
    """Decisions evaluated once over the arrays (runonce) or bar by bar on prefixes (next)."""
    from volbacktest.engine.run.runner import run_backtest

    cfg = _futures_cfg(name)
    ref = run_backtest(cfg, market=futures_markets[name], runonce=True)
    other = run_backtest(cfg, market=futures_markets[name], runonce=False)
    np.testing.assert_array_equal(ref.weights.to_numpy(), other.weights.to_numpy())
    pd.testing.assert_series_equal(ref.equity, other.equity)
    pd.testing.assert_frame_equal(ref.transactions, other.transactions)


# --------------------------------------------------------------------------- strategies, outputs
def test_vx_basis_rule_by_hand():
    from volbacktest.strategies.vx import BasisParams, vx_basis

    # daily roll (F1 - VIX)/bdays: (20-18)/10 = 0.2 > 0.1 short; (15-16)/5 = -0.2 long;
    # (15.5-15)/10 = 0.05 flat; 0 business days: unknown (no decision)
    inputs = {
        "f1": np.array([20.0, 15.0, 15.5, 15.0]),
        "vix": np.array([18.0, 16.0, 15.0, 14.0]),
        "bdays1": np.array([10.0, 5.0, 10.0, 0.0]),
    }
    w = vx_basis(inputs, BasisParams(exposure=0.5))
    np.testing.assert_array_equal(w[:3, 0], [-0.5, 0.5, 0.0])
    assert np.isnan(w[3, 0])


def test_vx_roll_yield_is_coopers_rule_on_futures():
    from volbacktest.strategies.cooper import RollYieldParams, roll_yield
    from volbacktest.strategies.vx import FuturesRollYieldParams, vx_roll_yield

    rng = np.random.default_rng(3)
    vix = 15 + 5 * rng.random(200)
    f1 = vix * (1 + 0.1 * rng.standard_normal(200))
    fut = vx_roll_yield({"vix": vix, "f1": f1}, FuturesRollYieldParams(smoothing=5, band=0.02))
    etn = roll_yield({"vix": vix, "vx1": f1}, RollYieldParams(smoothing=5, band=0.02))
    # XIV (column 0) <-> short the index futures; VXX (column 1) <-> long
    known = ~np.isnan(etn[:, 0])
    np.testing.assert_array_equal(fut[known, 0], np.where(etn[known, 0] == 1.0, -1.0, 1.0))
    assert np.isnan(fut[~known, 0]).all()


def test_a_futures_run_writes_contracts_trades_and_margin(tmp_path):
    from volbacktest.engine.run.report import write_run

    res = _run(_hand_config(-10, 60_000.0), _hand_market(MARGIN_DAYS))
    out = write_run(res, tmp_path)
    contracts = pd.read_csv(out / "contracts.csv", index_col="date")
    assert contracts["VXF20 (2020-01-22)"].tolist() == [-10, -10, -7, -7]
    trades = pd.read_csv(out / "trades.csv")
    assert trades["reason"].tolist() == ["signal", "margin_call"]
    margin = pd.read_csv(out / "margin.csv", index_col="date")
    assert margin["maintenance_margin"].tolist() == [50_000, 50_000, 35_000, 35_000]
    assert margin["cushion"].min() == 0.0
    assert (out / "equity.png").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["margin_calls"] == 1 and metrics["margin_cushion_min"] == 0.0


def test_a_futures_sweep_runs_on_the_event_driven_pool(tmp_path):
    from volbacktest.engine.sweep.execute import ExecutorOptions
    from volbacktest.engine.sweep.run import run_sweep
    from volbacktest.engine.sweep.spec import plan_from_mapping

    raw = {
        "name": "vx_basis_grid",
        "strategy": {"name": "vx_basis"},
        "data": SHORT,
        "execution": {"fill": "next_close", "initial_cash": 1_000_000},
        "futures": {},
        "report": {"out_dir": str(tmp_path)},
        "sweep": {"grid": {"threshold": [0.05, 0.1]}, "rank": {"metric": "sharpe"}, "top": 1},
    }
    plan = plan_from_mapping(raw)
    opts = ExecutorOptions("local", workers=1, start_method="fork", progress=False)
    out = run_sweep(plan, opts=opts, report=False)
    assert out.stats[0].ran == 2 and out.stats[0].failed == 0
    assert out.drift.empty  # no fast path to compare a futures run with
    ref = run_futures_backtest(_futures_cfg("vx_basis"))
    row = out.ranking[out.ranking["p.threshold"] == 0.1].iloc[0]
    assert row["sharpe"] == pytest.approx(ref.metrics["sharpe"], rel=1e-9)
    fast = ExecutorOptions("vectorised", progress=False)
    refused = run_sweep(plan, opts=fast, out=tmp_path / "fast", report=False)
    assert refused.stats[0].failed == 2 and refused.ranking.empty


def test_the_python_api_runs_a_futures_config():
    import volbacktest as vb

    cfg = _futures_cfg("vx_inverse_replica").model_dump(mode="json", exclude={"source_file"})
    res = vb.run(cfg)
    assert res.metrics["instrument"] == "VIX futures contracts" and res.metrics["trades"] > 100
    with pytest.raises(ConfigError, match="data= is not supported"):
        vb.run(cfg, data={"vix": pd.Series([1.0], index=[pd.Timestamp("2008-01-02")])})
