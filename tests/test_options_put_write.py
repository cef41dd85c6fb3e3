"""put_write against references written here from first principles (issue 13).

The reference is a plain loop over the embedded chain frames (``data.synthetic_chains``), using
none of the engine's option code: on each roll day it takes the nearest expiry, the highest put
strike at or below the underlying's close, sells N puts, accrues interest on the cash, marks the
short puts to the day's mid (a put whose strike has left the listed range: Black-Scholes at the
nearest listed strike's implied volatility, solved here with brentq) and settles them at
expiry. Equity = initial cash + premium received
- fees + interest - N * multiplier * mark (or - the settlement value at expiry).

* 50ETF-like chains (SSE): whole contracts sized on the cash, sold at the bid, fee per
  contract, physical settlement on the close (an assigned put buys the ETF at the strike, sold
  at the close with a 0.03 % fee);
* SPX-like chains, the Cboe PUT methodology (README "Trading options"; REFERENCES.md section
  10): roll on the third-Friday expiry, strike the highest listed at or below the index, N puts
  so that the bills at expiry equal N * K (``N = A / (m (K / (1 + R) - P))``), collateral
  earning the rate, settlement on the A.M. print (the SOQ: the embedded SPX open). The index
  path is 100 * equity / initial equity.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from volbacktest.data.synthetic import generate_market
from volbacktest.data.synthetic_chains import EtfChainParams, etf50_chains, etf50_path
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.inputs.options_chains import SPX_OPTION_PARAMS
from volbacktest.engine.run.runner import run_backtest

SEED = 7


def _bs_put(spot, strike, tau, sigma, rate):
    d1 = (math.log(spot / strike) + (rate + 0.5 * sigma**2) * tau) / (sigma * math.sqrt(tau))
    d2 = d1 - sigma * math.sqrt(tau)
    return strike * math.exp(-rate * tau) * norm.cdf(-d2) - spot * norm.cdf(-d1)


def _unlisted_put_mark(puts: pd.DataFrame, strike, spot, tau, rate) -> float:
    """A held put the day's chain no longer lists: Black-Scholes at the implied volatility of
    the nearest listed put strike (solved here with brentq)."""
    listed = puts[puts["mid"] > 0].copy()
    listed["gap"] = (listed["strike"] - strike).abs()
    for row in listed.sort_values("gap").head(3).itertuples():
        try:
            sigma = brentq(lambda s, r=row: _bs_put(spot, r.strike, tau, s, rate) - r.mid,
                           1e-4, 5.0, xtol=1e-15, rtol=1e-15)  # fmt: skip
        except ValueError:
            continue
        return _bs_put(spot, strike, tau, sigma, rate)
    return float("nan")


def reference_put_write(
    chain: pd.DataFrame,
    dates: pd.DatetimeIndex,
    close: np.ndarray,
    open_: np.ndarray,
    *,
    cash: float,
    rate: float,
    multiplier: float,
    whole: bool,
    sell_at: str,
    fee: float = 0.0,
    share_fee: float = 0.0,
    physical: bool = False,
    am_settled: bool = False,
) -> pd.Series:
    """Equity of the put-write, day by day, from the chain rows of each day."""
    by_day = {d: g for d, g in chain.groupby("trade_date")}
    equity = []
    n = value = 0.0  # contracts sold (a positive number) and their last mid
    strike = expiry = None
    for t, day in enumerate(dates):
        if t > 0 and cash > 0:
            cash *= math.exp(rate * (day - dates[t - 1]).days / 365.0)
        if n and expiry == day:
            settle = open_[t] if am_settled else close[t]
            payoff = max(strike - settle, 0.0)
            if physical and payoff > 0:
                units = n * multiplier
                cash -= units * strike  # assigned: buys the units at the strike ...
                cash += units * close[t] - units * close[t] * share_fee  # ... sold at the close
            else:
                cash -= n * multiplier * payoff
            n = 0.0
        rows = by_day.get(day)
        mid = None
        if rows is not None:
            quoted = (rows["ask"] > 0) & (rows["bid"] >= 0) & (rows["bid"] <= rows["ask"])
            mid = np.where(quoted, (rows["bid"] + rows["ask"]) / 2, rows["close"])
            rows = rows.assign(mid=mid)
        if not n and rows is not None:
            later = rows[rows["expiry"] > day]
            expiry = later["expiry"].min()
            puts = later[(later["expiry"] == expiry) & (later["cp"] == "P") & (later["mid"] > 0)]
            below = puts[puts["strike"] <= close[t]]
            row = below.loc[below["strike"].idxmax()]
            strike = float(row["strike"])
            price = float(row["bid"] if sell_at == "bid" else row["mid"])
            growth = math.exp(rate * (expiry - day).days / 365.0)
            n = cash / (multiplier * (strike / growth - price))
            n = float(math.trunc(n)) if whole else n
            cash += n * multiplier * price - n * fee
        if not n:
            value = 0.0
        elif rows is not None:  # else: no rows that day, the last mid is carried
            today = rows[(rows["expiry"] == expiry) & (rows["cp"] == "P")]
            found = today.loc[np.isclose(today["strike"], strike), "mid"]
            if len(found):
                value = float(found.iloc[0])
            else:
                tau = (expiry - day).days / 365.0
                model = _unlisted_put_mark(today, strike, close[t], tau, rate)
                value = model if np.isfinite(model) else value
        equity.append(cash - n * multiplier * value)
    return pd.Series(equity, index=dates)


def _run(name: str, underlying: str, seed: int, start: str, end: str, options: dict):
    raw = {
        "name": name,
        "strategy": {"name": "put_write", "params": {"underlying": underlying}},
        "data": {"source": "synthetic", "synthetic": {"seed": seed, "start": start, "end": end}},
        "execution": {"fill": "same_close", "initial_cash": 1_000_000},
        "options": options,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # same_close is labelled look-ahead
        return run_backtest(config_from_mapping(raw))


def test_put_write_on_50etf_like_chains_equals_first_principles():
    start, end = "2014-01-02", "2015-12-31"
    result = _run(
        "pw_etf50",
        "etf50",
        SEED,
        start,
        end,
        {
            "chain": "etf50_options",
            "fill": {"price": "bid_ask"},
            "settlement": "physical",
            "fee_per_contract": 1.6,
            "underlying_fee": 0.0003,
            "margin": "sse",
            "collateral_rate": "chain",
        },
    )
    path = etf50_path(SEED, start, end)
    bars = path.frame
    ref = reference_put_write(
        etf50_chains(SEED, start, end),
        bars.index,
        bars["close"].to_numpy(),
        bars["open"].to_numpy(),
        cash=1_000_000.0,
        rate=EtfChainParams().rate_cc,
        multiplier=10_000.0,
        whole=True,
        sell_at="bid",
        fee=1.6,
        share_fee=0.0003,
        physical=True,
    )
    assert result.metrics["assignments"] > 0 and result.metrics["expired_worthless"] > 0
    assert result.metrics["margin_limited_days"] == 0
    np.testing.assert_allclose(result.equity.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=0)


def test_cboe_put_methodology_on_spx_like_chains():
    from volbacktest.data.synthetic_chains import spx_chains

    start, end = "2010-01-04", "2011-12-30"
    result = _run(
        "pw_spx",
        "spx",
        SEED,
        start,
        end,
        {
            "chain": "spx_options",
            "contracts": "fractional",
            "fill": {"price": "mid"},
            "settlement": "cash",
            "margin": "cboe",
            "collateral_rate": "chain",
        },
    )
    market = generate_market(None, SEED, start, end)
    spx = market.frames["spx"]
    chain = spx_chains(SEED, start, end, SPX_OPTION_PARAMS)
    # the reference's rolls: only third-Friday (A.M.) monthlies are listed
    assert set(chain["settlement"]) == {"AM"}
    assert (chain["expiry"].dt.day_of_week.isin([3, 4])).all()
    ref = reference_put_write(
        chain,
        spx.index,
        spx["close"].to_numpy(),
        spx["open"].to_numpy(),
        cash=1_000_000.0,
        rate=market.params.tbill_rate,
        multiplier=100.0,
        whole=False,
        sell_at="mid",
        am_settled=True,
    )
    index = 100.0 * result.equity / 1_000_000.0
    np.testing.assert_allclose(index.to_numpy(), 100.0 * ref.to_numpy() / 1e6, rtol=1e-9, atol=0)
    rolls = result.transactions[result.transactions["reason"] == "roll"]
    assert len(rolls) == 25  # the first sale, then one put at each of the 24 monthly expiries
    assert pd.DatetimeIndex(rolls["date"].iloc[1:]).day_of_week.isin([3, 4]).all()


@pytest.mark.parametrize("seed", [SEED])
def test_put_write_excess_return_against_the_model_variance_premium(seed):
    """The 50ETF-like model prices options under Q with a higher long-run variance than P
    (theta_q 0.08 > theta_p 0.06): a variance risk premium the put-writer earns. Over 15 years the
    mean monthly excess return of the put-write over the cash account, with its standard error,
    is compared with the model's premium: the mean 30-day implied variance less the expected
    realised one, in volatility points."""
    start, end = "2005-01-04", "2019-12-31"
    result = _run(
        "pw_vrp",
        "etf50",
        seed,
        start,
        end,
        {
            "chain": "etf50_options",
            "contracts": "fractional",
            "fill": {"price": "mid"},
            "settlement": "cash",
            "collateral_rate": 0.0,
        },
    )
    rolls = pd.DatetimeIndex(
        result.transactions.loc[result.transactions["reason"] == "roll", "date"].unique()
    )
    monthly = result.equity.reindex(rolls).pct_change().dropna()  # roll to roll, cash rate 0
    mean, se = monthly.mean(), monthly.std(ddof=1) / math.sqrt(len(monthly))
    p = EtfChainParams()
    path = etf50_path(seed, start, end)
    tau = 30.0 / 365.0
    v = path.v_close

    def expected(kappa, theta):
        return theta + (v - theta) * (1.0 - math.exp(-kappa * tau)) / (kappa * tau)

    vrp_var = float(np.mean(expected(p.kappa_q, p.theta_q) - expected(p.kappa_p, p.theta_p)))
    # a short at-the-money put earns about vega / (2 sigma) * (implied - realised variance):
    # per unit of notional, sqrt(tau) * phi(0) / (2 sigma) * VRP over tau
    sigma = math.sqrt(float(np.mean(v)))
    predicted = math.sqrt(tau) * 0.3989422804014327 / (2 * sigma) * vrp_var
    print(
        f"put-write mean monthly excess {mean:.4%} (SE {se:.4%}, {len(monthly)} months); model "
        f"premium {vrp_var:.4f} in variance, first-order {predicted:.4%} a month"
    )
    assert vrp_var > 0
    assert abs(mean - predicted) < 3 * se
