"""Option book and executor, hand-computed (issue 13): exchange margin rules, a short put expiring
worthless, assignment at expiry (physical) and cash settlement on the A.M. print, a margin call
answered by reduce and by stop, and a leg rule that finds no strike (a per-date status)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from volbacktest.engine.calculators.option_legs import choose_expiry, choose_strike
from volbacktest.engine.calculators.options_book import (
    OptionBook,
    OptionKey,
    OptionTerms,
    cboe_short_margin,
    fill_price,
    mark_prices,
    sse_short_margin,
)
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.options import OptionsMarket, run_options_backtest
from volbacktest.engine.inputs.config import config_from_mapping

D = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"])
EXPIRY = D[3]


def test_sse_margin_by_hand():
    # call K 2.5, ETF 2.4, settle 0.05: OTM 0.1; max(0.12*2.4 - 0.1, 0.07*2.4) = 0.188
    got = sse_short_margin(["C", "P", "P"], [2.5, 2.5, 0.3], [0.05, 0.15, 2.2], 2.4)
    # put K 2.5 in the money: 0.15 + max(0.288, 0.175) = 0.438; a put is capped at its strike
    np.testing.assert_allclose(got, [0.238, 0.438, 0.3], rtol=0, atol=1e-15)


def test_cboe_margin_by_hand():
    # put K 3000, SPX 3100, option 20: OTM 100; 15% * 3100 - 100 = 365 > 10% * 3000 = 300
    # call K 3300, SPX 3100, option 5: OTM 200; 465 - 200 = 265 < 10% * 3100 = 310
    got = cboe_short_margin(["P", "C"], [3000.0, 3300.0], [20.0, 5.0], 3100.0)
    np.testing.assert_allclose(got, [385.0, 315.0], rtol=0, atol=1e-12)


def test_covered_call_needs_no_margin_and_fills_are_labelled():
    book = OptionBook(OptionTerms(multiplier=100.0, margin_rule="cboe"), cash=0.0, shares=150.0)
    key = OptionKey(EXPIRY, "C", 100.0)
    book.trade(D[0], key, -2.0, 1.0, "roll")
    book.mark(key, 1.0)
    # 150 units cover 1.5 of the 2 calls: 0.5 uncovered * 100 * (1 + max(15 - 0, 10))
    assert book.requirement(100.0) == pytest.approx(0.5 * 100 * 16.0, abs=1e-12)
    assert fill_price(-1, 1.0, 1.2, 1.1, "bid_ask", 0.0, 0.0) == (1.0, "bid_ask")
    assert fill_price(1, 1.0, 1.2, 1.1, "mid", 0.25, 0.0) == (pytest.approx(1.15), "mid")
    assert fill_price(-1, np.nan, np.nan, 1.1, "bid_ask", 0.0, 0.05) == (1.05, "close+slippage")
    mark, source = mark_prices([1.0, np.nan], [1.2, np.nan], [9.0, 0.7])
    assert list(mark) == [1.1, 0.7] and list(source) == ["mid", "close"]


def _chain(rows):
    frame = pd.DataFrame(
        rows, columns=["trade_date", "expiry", "cp", "strike", "bid", "ask", "close"]
    )
    return frame.assign(settlement="PM")


def _market(close, open_=None, rows=None, settlement="PM") -> OptionsMarket:
    rows = rows if rows is not None else [
        (D[0], EXPIRY, "P", 100.0, 2.0, 2.2, 2.1),
        (D[0], EXPIRY, "P", 95.0, 0.5, 0.7, 0.6),
        (D[0], EXPIRY, "C", 100.0, 2.0, 2.2, 2.1),
        (D[1], EXPIRY, "P", 100.0, 1.5, 1.7, 1.6),
        (D[2], EXPIRY, "P", 100.0, 0.4, 0.6, 0.5),
    ]  # fmt: skip
    chain = _chain(rows)
    mark, _ = mark_prices(chain["bid"], chain["ask"], chain["close"])
    arrays = {
        "trade_date": chain["trade_date"].to_numpy(dtype="datetime64[ns]"),
        "expiry": chain["expiry"].to_numpy(dtype="datetime64[ns]"),
        "cp": chain["cp"].to_numpy().astype(str),
        "strike": chain["strike"].to_numpy(dtype=float),
        "bid": chain["bid"].to_numpy(dtype=float),
        "ask": chain["ask"].to_numpy(dtype=float),
        "close": chain["close"].to_numpy(dtype=float),
        "mark": mark,
        "settlement": np.full(len(chain), settlement),
    }
    bounds = np.searchsorted(arrays["trade_date"], D.to_numpy())
    bounds = np.append(bounds, len(chain))
    close = np.asarray(close, dtype=float)
    return OptionsMarket(
        dates=D,
        close=close,
        open=np.asarray(open_ if open_ is not None else close, dtype=float),
        chain=arrays,
        bounds=bounds,
        inputs={"spx": close},
        multiplier=100.0,
        rate=0.0,
        source="test",
        mark_source="mid",
    )


def _config(cash=10_000.0, moneyness=1.0, **options):
    leg = {
        "cp": "P",
        "expiry": {"rule": "nearest"},
        "strike": {"by": "moneyness", "value": moneyness, "pick": "below"},
        "quantity": {"by": "contracts", "value": 2},
    }
    opts = {"chain": "spx_options", "fill": {"price": "bid_ask"}, "fee_per_contract": 1.0}
    opts.update(options)
    return config_from_mapping(
        {
            "name": "hand",
            "strategy": {"name": "put_write", "params": {"underlying": "spx", "legs": [leg]}},
            "execution": {"fill": "same_close", "initial_cash": cash},
            "options": opts,
            "report": {"tearsheet": False, "plots": False},
        }
    )


def test_short_put_expiring_worthless():
    r = run_options_backtest(_config(), _market([100.0, 101.0, 102.0, 103.0]))
    # sold 2 puts K 100 at the bid 2.00 (fee 1 each): cash 10,000 + 400 - 2 = 10,398;
    # equity = cash - 2 * 100 * mid: 2.10, 1.60, 0.50, then expiry worthless at 103
    expected = [10_398 - 420, 10_398 - 320, 10_398 - 100, 10_398]
    np.testing.assert_allclose(r.equity.to_numpy(), expected, rtol=0, atol=1e-9)
    tx = r.transactions
    assert list(tx["reason"]) == ["roll", "expired_worthless"]
    assert tx["symbol"].iloc[0] == "2020-01-07 P100" and tx["price"].iloc[0] == 2.0
    assert r.metrics["expired_worthless"] == 1 and r.metrics["assignments"] == 0
    # on the expiry day nothing else is listed: a per-date status, not a crash
    assert r.metrics["leg_status_events"] == ["2020-01-07 leg 0: no_expiry"]


def test_assignment_at_expiry_is_physical_and_recorded():
    r = run_options_backtest(_config(settlement="physical"), _market([100.0, 101.0, 102.0, 97.0]))
    # assigned: buys 200 units at 100 (cash 10,398 - 20,000), then sells them at the close 97
    assert r.equity.iloc[-1] == pytest.approx(10_398 - 2 * 100 * 3.0, abs=1e-9)
    event = r.metrics["assignment_events"][0]
    assert event == {
        "date": "2020-01-07",
        "contract": "2020-01-07 P100",
        "contracts": -2.0,
        "strike": 100.0,
        "settle": 97.0,
        "units": 200.0,
    }
    tx = r.transactions
    assert list(tx["reason"]) == ["roll", "assignment", "underlying_target"]
    assert tx["size"].iloc[2] == -200.0 and tx["price"].iloc[2] == 97.0
    assert r.margin["underlying_value"].iloc[-1] == 0.0


def test_cash_settlement_on_the_am_print():
    market = _market([100.0, 101.0, 102.0, 97.0], open_=[100.0, 101.0, 102.0, 96.0],
                     settlement="AM")  # fmt: skip
    r = run_options_backtest(_config(settlement="cash"), market)
    # A.M. settlement on the open 96: pays 2 * 100 * (100 - 96)
    assert r.equity.iloc[-1] == pytest.approx(10_398 - 800.0, abs=1e-9)
    assert r.metrics["cash_settlements"] == 1


def _call_market():
    rows = [
        (D[0], EXPIRY, "P", 100.0, 2.0, 2.2, 2.1),
        (D[1], EXPIRY, "P", 100.0, 10.0, 10.2, 10.1),
        (D[2], EXPIRY, "P", 100.0, 9.0, 9.2, 9.1),
    ]
    return _market([100.0, 90.0, 91.0, 92.0], rows=rows)


@pytest.mark.parametrize("action", ["reduce", "stop"])
def test_margin_call(action):
    cfg = _config(cash=4_000.0, margin="cboe", on_margin_call=action)
    r = run_options_backtest(cfg, _call_market())
    # day 0: opening margin 2 * 100 * (2.00 + 15.00) = 3,400 fits in 4,000; cash 4,398
    # day 1: equity 4,398 - 2 * 100 * 10.10 = 2,378 < maintenance 200 * (10.10 + 13.50) = 4,720
    # reduce keeps 2,378 / 4,720 = 0.504 of the 2 puts: 1 contract (1 bought back at the ask);
    # stop buys both back
    events = r.metrics["margin_call_events"]
    assert len(events) == 1
    ev = events[0]
    assert ev["date"] == "2020-01-03" and ev["action"] == action
    assert ev["equity"] == pytest.approx(2_378.0, abs=1e-9)
    assert ev["maintenance_margin"] == pytest.approx(4_720.0, abs=1e-9)
    assert ev["contracts_before"] == {"2020-01-07 P100": -2.0}
    left = -1.0 if action == "reduce" else 0.0
    assert ev["contracts_after"] == {"2020-01-07 P100": left}
    bought = 2.0 + left
    cash = 4_398 - bought * (100 * 10.2 + 1.0)
    assert r.equity.iloc[1] == pytest.approx(cash + left * 100 * 10.1, abs=1e-9)
    assert r.metrics["stopped"] is (action == "stop")
    # reduce holds the one left to expiry (in the money at 92: cash-settled); stop trades no more
    reasons = list(r.transactions["reason"])
    assert reasons == ["roll", "margin_call"] + (["cash_settlement"] if left else [])
    assert r.equity.iloc[-1] == pytest.approx(cash + left * 100 * 8.0, abs=1e-9)


def test_a_leg_that_finds_no_strike_is_a_status_per_date():
    r = run_options_backtest(_config(moneyness=0.5), _market([100.0, 101.0, 102.0, 103.0]))
    assert r.transactions.empty
    np.testing.assert_allclose(r.equity.to_numpy(), 10_000.0, rtol=0, atol=0)
    assert r.metrics["leg_status_events"] == [
        "2020-01-02 leg 0: no_strike",
        "2020-01-03 leg 0: no_strike",
        "2020-01-06 leg 0: no_strike",
        "2020-01-07 leg 0: no_expiry",
    ]


def test_choosing_rules():
    day = pd.Timestamp("2020-01-02")
    exp = pd.to_datetime(["2020-01-03", "2020-01-17", "2020-01-22", "2020-02-21"]).to_numpy()
    assert choose_expiry(day, exp, "nearest", 1) == pd.Timestamp("2020-01-03")
    assert choose_expiry(day, exp, "third_friday", 1) == pd.Timestamp("2020-01-17")
    assert choose_expiry(day, exp, "fourth_wednesday", 1) == pd.Timestamp("2020-01-22")
    assert choose_expiry(day, exp, "monthly", 20) == pd.Timestamp("2020-01-22")
    assert choose_expiry(day, exp, "monthly", 60) is None
    strikes, marks = np.array([95.0, 100.0, 105.0]), np.array([1.0, 3.0, 6.0])
    assert choose_strike("P", strikes, marks, 102.0, 0.1, 0.0, "moneyness", 1.0, "below").index == 1
    assert choose_strike("C", strikes, marks, 102.0, 0.1, 0.0, "moneyness", 1.0, "above").index == 2
    assert choose_strike("P", strikes, marks, 102.0, 0.1, 0.0, "premium", 5.0).index == 2
    # delta: Black-Scholes on the day's own mark
    from volbacktest.engine.calculators.bs import bs_price

    k = np.array([80.0, 90.0, 100.0, 110.0])
    # tau 0.25, vol 0.3: deltas about -0.06 (K 80), -0.21 (K 90), -0.47 (K 100)
    prices = bs_price(100.0, k, 0.25, 0.3, rate_cc=0.01, is_call=False)
    pick = choose_strike("P", k, prices, 100.0, 0.25, 0.01, "delta", -0.16)
    assert pick.index == 1 and -0.25 < pick.delta < -0.15


def test_options_strategy_needs_an_options_section():
    with pytest.raises(ConfigError, match="options: section"):
        config_from_mapping({"name": "x", "strategy": {"name": "put_write"}})
    with pytest.raises(ConfigError, match="does not trade options"):
        config_from_mapping(
            {"name": "x", "strategy": {"name": "vratio"}, "options": {"chain": "spx_options"}}
        )
