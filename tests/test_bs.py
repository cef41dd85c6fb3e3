"""Black-Scholes-Merton prices, greeks and implied volatility (engine.calculators.bs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import norm

from volbacktest.engine.calculators.bs import (
    DAYS_PER_YEAR,
    IVStatus,
    bs_greeks,
    bs_price,
    implied_vol,
    is_call_from_cp,
)
from volbacktest.engine.errors import ConvergenceWarning, DataError

GOLDEN = Path(__file__).parent / "golden"
EPS = np.finfo(float).eps


def _kwargs(frame: pd.DataFrame) -> dict:
    return {
        "rate_cc": frame["rate_cc"].to_numpy(),
        "div_yield_cc": frame["div_yield_cc"].to_numpy(),
        "is_call": frame["cp"].eq("C").to_numpy(),
    }


def _args(frame: pd.DataFrame) -> tuple:
    return tuple(frame[c].to_numpy() for c in ("spot", "strike", "tau_years", "sigma"))


def _plain_bs(spot, strike, tau, sigma, rate, div, is_call):
    """Textbook formula (Hull eq. 17.4/17.5): the obviously-correct slow reference."""
    d1 = (np.log(spot / strike) + (rate - div + 0.5 * sigma**2) * tau) / (sigma * np.sqrt(tau))
    d2 = d1 - sigma * np.sqrt(tau)
    call = spot * np.exp(-div * tau) * norm.cdf(d1) - strike * np.exp(-rate * tau) * norm.cdf(d2)
    put = strike * np.exp(-rate * tau) * norm.cdf(-d2) - spot * np.exp(-div * tau) * norm.cdf(-d1)
    return np.where(is_call, call, put)


def _naive_newton(price, spot, strike, tau, rate, div, is_call, sigma0, n_iter=100):
    """Plain Newton on the raw price from a fixed start, as in many blog posts."""
    sigma = np.full(np.shape(price), sigma0)
    with np.errstate(all="ignore"):
        for _ in range(n_iter):
            d1 = (np.log(spot / strike) + (rate - div + 0.5 * sigma**2) * tau) / (
                sigma * np.sqrt(tau)
            )
            vega = spot * np.exp(-div * tau) * norm.pdf(d1) * np.sqrt(tau)
            sigma = sigma - (_plain_bs(spot, strike, tau, sigma, rate, div, is_call) - price) / vega
    return sigma


# --- published values -------------------------------------------------------------------------


def test_haug_price_table():
    table = pd.read_csv(GOLDEN / "bs_haug" / "prices.csv")
    price = bs_price(*_args(table), **_kwargs(table))
    np.testing.assert_allclose(price, table["price"], atol=1e-4, rtol=0)


def test_haug_greeks():
    table = pd.read_csv(GOLDEN / "bs_haug" / "greeks.csv")
    greeks = bs_greeks(*_args(table), **_kwargs(table))
    calc = np.array([getattr(greeks, name)[i] for i, name in enumerate(table["greek"])])
    np.testing.assert_allclose(calc, table["value"], atol=1e-4, rtol=0)


def test_hull_examples():
    table = pd.read_csv(GOLDEN / "bs_hull" / "values.csv")
    greeks = bs_greeks(*_args(table), **_kwargs(table))
    calc = np.array([getattr(greeks, name)[i] for i, name in enumerate(table["quantity"])])
    assert np.all(np.abs(calc - table["value"]) <= table["abs_tol"]), calc


def test_implied_vol_of_published_prices():
    """Inverting the rounded textbook price gives back the book's volatility within rounding."""
    table = pd.read_csv(GOLDEN / "bs_haug" / "prices.csv")
    spot, strike, tau, sigma = _args(table)
    result = implied_vol(table["price"].to_numpy(), spot, strike, tau, **_kwargs(table))
    assert result.ok.all(), result.counts()
    vega = bs_greeks(spot, strike, tau, sigma, **_kwargs(table)).vega
    # The published price is within 1e-4 of the exact one, so sigma is within 1e-4 / vega.
    assert np.all(np.abs(result.iv - sigma) <= 1e-4 / vega + 1e-12)
    # ... and the exact prices give the volatility back to ~1e-12.
    exact = bs_price(spot, strike, tau, sigma, **_kwargs(table))
    again = implied_vol(exact, spot, strike, tau, **_kwargs(table))
    np.testing.assert_allclose(again.iv, sigma, rtol=1e-12)


def test_hull_call_implied_vol():
    result = implied_vol(4.76, 42.0, 40.0, 0.5, rate_cc=0.10)
    assert result.status == IVStatus.OK
    assert result.iv == pytest.approx(0.2, abs=0.005 / 5.0)  # price rounded to 0.005, vega ~ 5


# --- round trips across moneyness and maturity -----------------------------------------------

MONEYNESS = np.geomspace(0.3, 3.0, 37)  # K / S
TAUS = np.array([1.0, 2.0, 7.0, 30.0, 91.0, 365.0, 2.0 * 365.0, 5.0 * 365.0]) / DAYS_PER_YEAR
SIGMAS = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.5])


def _grid(is_call: bool):
    spot = 100.0
    strike, tau, sigma = np.meshgrid(spot * MONEYNESS, TAUS, SIGMAS, indexing="ij")
    kwargs = {"rate_cc": 0.03, "div_yield_cc": 0.01, "is_call": is_call}
    price = bs_price(spot, strike, tau, sigma, **kwargs)
    forward = spot * np.exp(0.02 * tau)
    itm = (forward > strike) if is_call else (forward < strike)
    return spot, strike, tau, sigma, kwargs, price, itm


@pytest.mark.parametrize("is_call", [True, False])
def test_round_trip_out_of_the_money(is_call):
    """OTM prices (time value only) invert to the volatility to 1e-10, even at 1e-250."""
    spot, strike, tau, sigma, kwargs, price, itm = _grid(is_call)
    result = implied_vol(price, spot, strike, tau, **kwargs)
    otm = ~itm
    normal = otm & (price >= np.finfo(float).tiny)  # representable without subnormal loss
    assert result.ok[normal].all(), result.counts()
    np.testing.assert_allclose(result.iv[normal], sigma[normal], rtol=1e-10)
    # Prices that underflow to exactly 0 have no time value left: flagged, never a number.
    zero = otm & (price == 0)
    assert np.all(result.status[zero] == IVStatus.AT_INTRINSIC)
    assert np.isnan(result.iv[zero]).all()
    # The deep wings are really exercised: prices spanning hundreds of orders of magnitude.
    assert price[normal].min() < 1e-200 and normal.sum() > 0.6 * otm.sum()


@pytest.mark.parametrize("is_call", [True, False])
def test_round_trip_in_the_money(is_call):
    """ITM: price -> IV -> price to 1e-12; IV as accurate as the time value allows."""
    spot, strike, tau, sigma, kwargs, price, itm = _grid(is_call)
    result = implied_vol(price, spot, strike, tau, **kwargs)
    ok = result.ok & itm
    # The time value of an ITM option is the price of its OTM parity twin; where it exceeds
    # a few dozen ulps of the price it survives the subtraction of intrinsic value: solved.
    time_value = bs_price(spot, strike, tau, sigma, **{**kwargs, "is_call": not is_call})
    resolvable = itm & (time_value > 64.0 * EPS * price)
    assert result.ok[resolvable].all(), result.counts()
    assert np.all(result.status[itm & ~ok] == IVStatus.AT_INTRINSIC)
    assert resolvable.sum() > 0.5 * itm.sum()
    again = bs_price(spot, strike, tau, np.where(ok, result.iv, 0.2), **kwargs)
    np.testing.assert_allclose(again[ok], price[ok], rtol=1e-12)
    vega = bs_greeks(spot, strike, tau, sigma, **kwargs).vega
    # A price known to a few ulps pins sigma to a few ulps of price / vega.
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        bound = 1e-10 * sigma + 16.0 * EPS * price / vega
    assert np.all(np.abs(result.iv - sigma)[ok] <= bound[ok])


DEEP_WINGS = [
    # (is_call, K/S, tau_years, sigma): wings, short-dated and high-vol cases where plain Newton
    # on the raw price from a fixed 20 % start diverges (vega underflows or a step overshoots).
    (True, 2.0, 30.0 / 365.0, 0.25),  # price 2.6e-22
    (True, 1.3, 2.0 / 365.0, 0.3),  # price 3.7e-33
    (False, 0.5, 30.0 / 365.0, 0.3),  # price 2.4e-16
    (False, 0.3, 7.0 / 365.0, 0.8),  # price 4.4e-28
    (True, 1.1, 2.0 / 365.0, 0.6),
    (True, 1.5, 0.25, 1.0),
    (True, 2.0, 1.0, 1.2),
    (True, 5.0, 1.0, 0.5),
]


@pytest.mark.parametrize(("is_call", "moneyness", "tau", "sigma"), DEEP_WINGS)
def test_deep_wings_where_naive_newton_fails(is_call, moneyness, tau, sigma):
    spot, strike = 100.0, 100.0 * moneyness
    price = bs_price(spot, strike, tau, sigma, rate_cc=0.02, is_call=is_call)
    naive = _naive_newton(price, spot, strike, tau, 0.02, 0.0, is_call, sigma0=0.2)
    assert not abs(naive - sigma) < 1e-6 * sigma  # the textbook iteration ends NaN or elsewhere
    result = implied_vol(price, spot, strike, tau, rate_cc=0.02, is_call=is_call)
    assert result.status == IVStatus.OK
    assert result.iv == pytest.approx(sigma, rel=1e-10)


def test_matches_slow_brentq_reference():
    """Cross-check against scipy brentq on the textbook formula, per element (moderate cases)."""
    rng = np.random.default_rng(7)
    n = 60
    spot = 50.0
    strike = spot * rng.uniform(0.7, 1.4, n)
    tau = rng.uniform(0.05, 2.0, n)
    sigma = rng.uniform(0.1, 0.8, n)
    is_call = rng.random(n) < 0.5
    price = _plain_bs(spot, strike, tau, sigma, 0.04, 0.02, is_call)
    ref = np.array(
        [
            brentq(
                lambda v, i=i: (
                    _plain_bs(spot, strike[i], tau[i], v, 0.04, 0.02, is_call[i]) - price[i]
                ),
                1e-4,
                5.0,
                xtol=1e-14,
            )
            for i in range(n)
        ]
    )
    result = implied_vol(price, spot, strike, tau, rate_cc=0.04, div_yield_cc=0.02, is_call=is_call)
    np.testing.assert_allclose(result.iv, ref, rtol=1e-9)


# --- no-arbitrage bounds and status codes ----------------------------------------------------


def test_status_codes_outside_bounds():
    spot, strike, tau, rate = 100.0, 90.0, 0.5, 0.05
    discount = np.exp(-rate * tau)
    intrinsic = spot - strike * discount  # call lower bound (no dividends)
    prices = np.array(
        [
            intrinsic - 0.01,  # below intrinsic
            intrinsic,  # exactly intrinsic: no time value
            spot,  # at the upper bound S
            spot + 1.0,  # above it
            np.nan,  # missing price
            -1.0,  # negative price
            15.0,  # a fine price
        ]
    )
    result = implied_vol(prices, spot, strike, tau, rate_cc=rate)
    expected = [
        IVStatus.BELOW_INTRINSIC,
        IVStatus.AT_INTRINSIC,
        IVStatus.ABOVE_UPPER_BOUND,
        IVStatus.ABOVE_UPPER_BOUND,
        IVStatus.INVALID_INPUT,
        IVStatus.INVALID_INPUT,
        IVStatus.OK,
    ]
    assert result.status.tolist() == [int(e) for e in expected]
    assert np.isnan(result.iv[:-1]).all() and np.isfinite(result.iv[-1])
    assert result.counts() == {
        "OK": 1,
        "BELOW_INTRINSIC": 1,
        "AT_INTRINSIC": 1,
        "ABOVE_UPPER_BOUND": 2,
        "INVALID_INPUT": 2,
    }


def test_put_bounds_and_invalid_contract_terms():
    # A put is worth at most K exp(-r tau).
    upper = 90.0 * np.exp(-0.05 * 0.5)
    result = implied_vol(upper * 1.001, 100.0, 90.0, 0.5, rate_cc=0.05, is_call=False)
    assert result.status == IVStatus.ABOVE_UPPER_BOUND
    terms = implied_vol(
        np.array([1.0, 1.0, 1.0]),
        np.array([100.0, 0.0, 100.0]),
        np.array([100.0, 100.0, 100.0]),
        np.array([0.0, 0.5, 0.5]),
    )
    assert terms.status.tolist() == [IVStatus.INVALID_INPUT, IVStatus.INVALID_INPUT, IVStatus.OK]


def test_not_converged_is_flagged_and_warned():
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = implied_vol(1e-30, 100.0, 300.0, 1.0, max_iter=1)
    assert result.status == IVStatus.NOT_CONVERGED and np.isnan(result.iv)


def test_bad_terms_raise_clear_errors():
    with pytest.raises(DataError, match="spot must be > 0"):
        bs_price(np.array([100.0, -1.0]), 100.0, 1.0, 0.2)
    with pytest.raises(DataError, match="tau_years must be > 0"):
        bs_greeks(100.0, 100.0, 0.0, 0.2)
    with pytest.raises(DataError, match="'X'"):
        is_call_from_cp(["C", "P", "X"])
    assert is_call_from_cp(np.array(["C", "P"])).tolist() == [True, False]


def test_expiry_and_zero_vol_prices_are_discounted_intrinsic():
    price = bs_price(
        100.0, np.array([90.0, 110.0]), np.array([0.0, 1.0]), np.array([0.3, 0.0]), rate_cc=0.05
    )
    np.testing.assert_allclose(price, [10.0, 0.0], atol=1e-14)
    put = bs_price(100.0, 110.0, 1.0, 0.0, rate_cc=0.0, is_call=False)
    assert put == pytest.approx(10.0)


def test_nan_volatility_propagates_to_greeks():
    greeks = bs_greeks(100.0, np.array([100.0, 110.0]), 0.5, np.array([0.2, np.nan]))
    assert np.isfinite(greeks.delta[0]) and np.isnan(greeks.delta[1]) and np.isnan(greeks.price[1])


# --- properties (Hypothesis) -----------------------------------------------------------------

positive_spot = st.floats(1.0, 1000.0)
moneyness = st.floats(0.3, 3.0)
tau_years = st.floats(1.0 / 365.0, 5.0)
vols = st.floats(0.02, 2.0)
rates = st.floats(-0.02, 0.15)
yields = st.floats(0.0, 0.08)


@settings(max_examples=200, deadline=None)
@given(positive_spot, moneyness, tau_years, vols, rates, yields)
def test_put_call_parity(spot, m, tau, sigma, rate, div):
    strike = spot * m
    call = bs_price(spot, strike, tau, sigma, rate_cc=rate, div_yield_cc=div, is_call=True)
    put = bs_price(spot, strike, tau, sigma, rate_cc=rate, div_yield_cc=div, is_call=False)
    parity = spot * np.exp(-div * tau) - strike * np.exp(-rate * tau)
    assert call - put == pytest.approx(parity, abs=1e-12 * max(spot, strike))
    assert call >= max(parity, 0.0) - 1e-12 * spot and put >= max(-parity, 0.0) - 1e-12 * spot


@settings(max_examples=200, deadline=None)
@given(positive_spot, moneyness, tau_years, vols, rates, yields)
def test_call_and_put_at_parity_have_one_implied_vol(spot, m, tau, sigma, rate, div):
    """Prices that satisfy parity invert to the same volatility from either side."""
    strike = spot * m
    kwargs = {"rate_cc": rate, "div_yield_cc": div}
    call = bs_price(spot, strike, tau, sigma, is_call=True, **kwargs)
    put = call - spot * np.exp(-div * tau) + strike * np.exp(-rate * tau)
    iv = implied_vol(
        np.array([call, put]), spot, strike, tau, is_call=np.array([True, False]), **kwargs
    )
    otm_value = min(call, put)
    if otm_value > 1e-9 * max(spot, strike):  # time value resolvable in both prices
        assert iv.ok.all()
        assert iv.iv[0] == pytest.approx(iv.iv[1], rel=1e-6)
        assert iv.iv[0] == pytest.approx(sigma, rel=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.floats(-30.0, 0.0), st.floats(1e-3, 20.0))
def test_normalised_round_trip(log_moneyness, total_sd):
    """Any representable OTM price (F = 100, x in [-30, 0], s in [1e-3, 20]) inverts exactly."""
    forward = 100.0
    strike = forward * np.exp(-log_moneyness)  # OTM call: K >= F
    price = bs_price(forward, strike, 1.0, total_sd, is_call=True)
    result = implied_vol(price, forward, strike, 1.0, is_call=True)
    if np.finfo(float).tiny < price < forward * (1.0 - 1e-6):
        assert result.status == IVStatus.OK
        assert result.iv == pytest.approx(total_sd, rel=1e-9)
    elif price >= forward * (1.0 - 1e-6):
        # Within 1e-6 of the bound F only the remainder F - price carries sigma: either flagged,
        # or solved consistently with the price.
        if result.status == IVStatus.OK:
            again = bs_price(forward, strike, 1.0, result.iv, is_call=True)
            assert again == pytest.approx(price, rel=1e-14)
        else:
            assert result.status == IVStatus.ABOVE_UPPER_BOUND and np.isnan(result.iv)
    else:
        assert result.status == IVStatus.AT_INTRINSIC and np.isnan(result.iv)


@settings(max_examples=100, deadline=None)
@given(
    positive_spot,
    moneyness,
    st.floats(0.05, 3.0),
    st.floats(0.05, 1.0),
    rates,
    yields,
    st.booleans(),
)
def test_greeks_match_bump_and_revalue(spot, m, tau, sigma, rate, div, is_call):
    strike = spot * m
    kw = {"rate_cc": rate, "div_yield_cc": div, "is_call": is_call}
    greeks = bs_greeks(spot, strike, tau, sigma, **kw)
    h = 1e-3 * spot * sigma * np.sqrt(tau)  # bump small against the spot's standard deviation
    up, down = (bs_price(spot + d, strike, tau, sigma, **kw) for d in (h, -h))
    scale = spot
    assert greeks.delta == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)
    assert greeks.gamma == pytest.approx(
        (up - 2 * greeks.price + down) / h**2, rel=1e-4, abs=64.0 * EPS * (up + scale) / h**2
    )
    dv = 1e-5
    vega = (
        bs_price(spot, strike, tau, sigma + dv, **kw)
        - bs_price(spot, strike, tau, sigma - dv, **kw)
    ) / (2 * dv)
    assert greeks.vega == pytest.approx(vega, rel=1e-5, abs=1e-7 * scale)
    dt = 1e-5
    theta = -(
        bs_price(spot, strike, tau + dt, sigma, **kw)
        - bs_price(spot, strike, tau - dt, sigma, **kw)
    ) / (2 * dt)
    assert greeks.theta_per_year == pytest.approx(theta, rel=1e-5, abs=1e-6 * scale)
    assert greeks.theta_per_day == pytest.approx(greeks.theta_per_year / DAYS_PER_YEAR)
    dr = 1e-6
    rho = (
        bs_price(spot, strike, tau, sigma, rate_cc=rate + dr, div_yield_cc=div, is_call=is_call)
        - bs_price(spot, strike, tau, sigma, rate_cc=rate - dr, div_yield_cc=div, is_call=is_call)
    ) / (2 * dr)
    assert greeks.rho == pytest.approx(rho, rel=1e-5, abs=1e-6 * scale)


@settings(max_examples=100, deadline=None)
@given(positive_spot, moneyness, tau_years, rates, yields, st.booleans())
def test_price_increases_with_volatility(spot, m, tau, rate, div, is_call):
    sigmas = np.linspace(0.05, 1.5, 30)
    price = bs_price(spot, spot * m, tau, sigmas, rate_cc=rate, div_yield_cc=div, is_call=is_call)
    assert np.all(np.diff(price) >= -1e-12 * spot)


def test_broadcasting_and_shapes():
    strikes = np.array([[90.0], [100.0], [110.0]])
    taus = np.array([0.25, 0.5, 1.0, 2.0])
    price = bs_price(100.0, strikes, taus, 0.2)
    assert price.shape == (3, 4)
    result = implied_vol(price, 100.0, strikes, taus)
    assert result.iv.shape == (3, 4) and result.status.shape == (3, 4)
    np.testing.assert_allclose(result.iv, 0.2, rtol=1e-12)
    assert bs_greeks(100.0, strikes, taus, 0.2).gamma.shape == (3, 4)
