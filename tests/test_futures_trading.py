"""VIX futures as tradable instruments: the contract book (variation margin, margin, fees,
final settlement), roles and rolls, the futures executor and its strategies.

Expected numbers are worked by hand in the comments (first principles: a futures position's
daily cash flow is contracts x multiplier x change in settle; fees per contract side)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from volbacktest.engine.calculators.futures_book import (
    ContractBook,
    ContractTerms,
    basket_contracts,
    contract_name,
    margin_call_scale,
)
from volbacktest.engine.errors import ConfigError, DataError

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
