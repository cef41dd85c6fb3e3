"""Risk-neutral density by positive convolution (engine/calculators/rnd.py).

Truths come from closed forms nobody here wrote (Black-Scholes/lognormal via scipy.stats), from
slow obviously-correct quadratures, and from an independent second QP solver (Clarabel, an
interior-point method) for the optimum. The KKT test recovers the multipliers itself.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import ndtr
from scipy.stats import lognorm, norm

from volbacktest.engine.calculators.rnd import (
    RNDOptions,
    check_arbitrage,
    design_matrix,
    fit_rnd,
    fit_rnd_chain,
    interpolate_horizon,
    mixture_moments,
    parity_forward,
    rnd_horizon_moments,
    rnd_moments,
)
from volbacktest.engine.errors import ConfigError, DataError, DataQualityWarning

REPO = Path(__file__).resolve().parents[1]
U = np.linspace(0.0, 300.0, 30001)  # fine grid for L1 errors (spot 100)


# ------------------------------------------------------------------------------------------
# Black-Scholes truth (independent of the module under test)


def bs_prices(strike, forward, sigma, tau, rate=0.0):
    """Discounted Black (1976) call and put prices on a forward."""
    k = np.asarray(strike, dtype=float)
    sd = sigma * math.sqrt(tau)
    d1 = (np.log(forward / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    df = math.exp(-rate * tau)
    call = df * (forward * ndtr(d1) - k * ndtr(d2))
    put = df * (k * ndtr(-d2) - forward * ndtr(-d1))
    return call, put


def lognormal_pdf(u, forward, sigma, tau):
    sd = sigma * math.sqrt(tau)
    return lognorm.pdf(u, s=sd, scale=forward * math.exp(-0.5 * sd * sd))


def l1_error(res, truth):
    return float(np.trapezoid(np.abs(res.pdf(U) - truth), U))


SIGMA, TAU, STEP = 0.2, 0.25, 2.5
STRIKES = np.arange(50.0, 150.0 + 1e-9, STEP)


@pytest.fixture(scope="module")
def bs_fit():
    _, put = bs_prices(STRIKES, 100.0, SIGMA, TAU)
    res = fit_rnd(
        STRIKES,
        put,
        np.zeros(STRIKES.size, bool),
        tau_years=TAU,
        rate_cc=0.0,
        forward=100.0,
        spot=100.0,
        options=RNDOptions(bandwidth=STEP),
    )
    return res


# ------------------------------------------------------------------------------------------
# recovery with known truth


def test_black_scholes_puts_recovered_with_h_equal_strike_step(bs_fit):
    res = bs_fit
    assert res.bandwidth == pytest.approx(STEP)
    assert res.solver_status == "optimal"
    err = l1_error(res, lognormal_pdf(U, 100.0, SIGMA, TAU))
    assert err <= 1e-3, err
    # the default rule picks h = strike step here and gives the same density
    rule = fit_rnd(
        STRIKES,
        res.prices,
        res.is_call,
        tau_years=TAU,
        rate_cc=0.0,
        forward=100.0,
    )
    assert rule.bandwidth == pytest.approx(STEP)
    assert l1_error(rule, lognormal_pdf(U, 100.0, SIGMA, TAU)) <= 1e-3


def test_black_scholes_moments_quantiles_and_tail_probabilities(bs_fit):
    res = bs_fit
    sd = SIGMA * math.sqrt(TAU)
    dist = lognorm(s=sd, scale=100.0 * math.exp(-0.5 * sd * sd))
    assert res.mean == pytest.approx(100.0, abs=1e-9)
    assert res.std == pytest.approx(dist.std(), rel=2e-3)
    skew, kurt = (float(v) for v in dist.stats(moments="sk"))
    assert res.skewness == pytest.approx(skew, abs=0.01)
    assert res.excess_kurtosis == pytest.approx(kurt, abs=0.03)
    p = np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    np.testing.assert_allclose(res.quantiles(p), dist.ppf(p), atol=0.02)
    assert res.cdf_at(res.quantiles(p)) == pytest.approx(p, abs=1e-12)
    fr = np.array([0.8, 0.9, 0.95])
    np.testing.assert_allclose(res.prob_below(fr), dist.cdf(100.0 * fr), atol=2e-4)
    np.testing.assert_allclose(res.fitted_prices, res.prices, atol=2e-4)


def test_bandwidth_below_strike_step_fits_but_is_rough():
    """REFERENCES.md section 6: h below the strike step (centres about a strike step apart)
    prices well but gives a spiky density; the rule keeps h >= strike step and centre spacing."""
    _, put = bs_prices(STRIKES, 100.0, SIGMA, TAU)
    kw = {"tau_years": TAU, "rate_cc": 0.0, "forward": 100.0}
    calls = np.zeros(STRIKES.size, bool)
    truth = lognormal_pdf(U, 100.0, SIGMA, TAU)
    narrow = fit_rnd(STRIKES, put, calls, options=RNDOptions(bandwidth=0.5, n_kernels=60), **kw)
    rule = fit_rnd(STRIKES, put, calls, options=RNDOptions(n_kernels=60), **kw)
    assert narrow.diagnostics["centre_spacing"] > narrow.bandwidth
    assert rule.bandwidth >= max(STEP, rule.diagnostics["centre_spacing"])
    assert narrow.rmse < 1e-3

    def total_variation(r):
        return float(np.abs(np.diff(r.pdf(U))).sum())

    assert total_variation(narrow) > 5 * total_variation(rule)
    assert l1_error(narrow, truth) > 0.1 > 1e-3 > l1_error(rule, truth)
    with pytest.raises(ConfigError, match="bandwidth_factor"):
        RNDOptions(bandwidth_factor=0.5)


def mixture_truth(strikes):
    comps = [(0.6, 90.0, 0.12), (0.4, 125.0, 0.10)]
    calls_puts = [bs_prices(strikes, f, s, TAU) for _, f, s in comps]
    call = sum(w * c for (w, _, _), (c, _) in zip(comps, calls_puts, strict=True))
    put = sum(w * p for (w, _, _), (_, p) in zip(comps, calls_puts, strict=True))
    fwd = sum(w * f for w, f, _ in comps)
    pdf = sum(w * lognormal_pdf(U, f, s, TAU) for w, f, s in comps)
    return call, put, fwd, pdf


def test_bimodal_two_lognormal_mixture_from_both_wings():
    k = np.arange(40.0, 170.0 + 1e-9, STEP)
    call, put, fwd, pdf = mixture_truth(k)
    is_call = k >= fwd
    res = fit_rnd(k, np.where(is_call, call, put), is_call, tau_years=TAU, rate_cc=0.0, forward=fwd)
    assert l1_error(res, pdf) <= 0.02
    # both modes are found: two local maxima near 90 and 125
    d = res.pdf(U)
    peaks = U[1:-1][(d[1:-1] > d[:-2]) & (d[1:-1] > d[2:]) & (d[1:-1] > 0.005)]
    assert peaks.size == 2
    assert peaks == pytest.approx([89.0, 124.5], abs=2.5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_noisy_prices_with_cross_validated_bandwidth(seed):
    rng = np.random.default_rng(seed)
    _, put = bs_prices(STRIKES, 100.0, SIGMA, TAU)
    noisy = put + rng.uniform(-0.025, 0.025, STRIKES.size)
    res = fit_rnd(
        STRIKES,
        noisy,
        np.zeros(STRIKES.size, bool),
        tau_years=TAU,
        rate_cc=0.0,
        forward=100.0,
        options=RNDOptions(bandwidth="cv"),
    )
    assert l1_error(res, lognormal_pdf(U, 100.0, SIGMA, TAU)) <= 0.1
    scores = res.diagnostics["cv_scores"]
    assert set(scores) == set(RNDOptions().cv_factors)
    factor = res.diagnostics["cv_factor"]
    assert res.bandwidth == pytest.approx(factor * STEP)
    assert scores[factor] == min(scores.values())
    assert np.max(np.abs(res.residuals)) <= 0.05


# ------------------------------------------------------------------------------------------
# properties


@st.composite
def model_chains(draw):
    """A density inside the model class (so a_true is feasible), quotes and uniform noise."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    h = draw(st.floats(1.5, 6.0))
    n = draw(st.integers(8, 40))
    centres = np.linspace(60.0, 140.0, n)
    a = rng.dirichlet(np.full(n, draw(st.floats(0.2, 3.0))))
    m = draw(st.integers(8, 60))
    strikes = np.sort(rng.uniform(55.0, 145.0, m))
    noise = draw(st.floats(0.0, 0.05))
    rate = draw(st.floats(-0.01, 0.08))
    tau = draw(st.floats(0.02, 2.0))
    return seed, centres, a, h, strikes, noise, rate, tau


@given(model_chains())
@settings(max_examples=40, deadline=None)
def test_properties_positive_normalised_mean_and_repricing(case):
    seed, centres, a, h, strikes, noise, rate, tau = case
    rng = np.random.default_rng(seed + 1)
    fwd = float(a @ centres)
    is_call = strikes >= fwd
    df = math.exp(-rate * tau)
    true_prices = df * design_matrix(strikes, is_call, centres, h) @ a
    eps = rng.uniform(-noise, noise, strikes.size)
    res = fit_rnd(
        strikes,
        true_prices + eps,
        is_call,
        tau_years=tau,
        rate_cc=rate,
        forward=fwd,
        centres=centres,
        options=RNDOptions(bandwidth=h, weighting="none"),
    )
    assert res.solver_status == "optimal"
    assert np.all(res.weights >= 0.0) and np.all(res.density >= 0.0)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.trapezoid(res.density, res.grid) == pytest.approx(1.0, abs=1e-6)
    assert res.mean == pytest.approx(fwd, rel=1e-9)
    assert np.all(np.diff(res.cdf) >= -1e-15)
    # least squares over a feasible set that holds the truth: the optimum reprices at least
    # as well as the truth does, i.e. within the noise.  With the (tiny) ridge term the
    # inequality carries rho (||a_true||^2 - ||a||^2), in price units x (F e^{-rT})^2.
    rho_price = res.solver.ridge * (fwd * df) ** 2
    slack = rho_price * (a @ a - res.weights @ res.weights)
    assert res.residuals @ res.residuals <= eps @ eps + slack + 1e-20 * fwd**2
    assert res.rmse <= noise + math.sqrt(max(slack, 0.0) / strikes.size) + 1e-9 * fwd


@given(st.floats(0.01, 1000.0), st.integers(0, 5))
@settings(max_examples=15, deadline=None)
def test_scale_invariance(scale, seed):
    """Pricing in cents instead of dollars scales the density and leaves the shape alone."""
    rng = np.random.default_rng(seed)
    _, put = bs_prices(STRIKES, 100.0, SIGMA, TAU)
    put = put + rng.uniform(0.0, 0.01, STRIKES.size)
    kw = {"tau_years": TAU, "rate_cc": 0.01, "options": RNDOptions(weighting="none")}
    calls = np.zeros(STRIKES.size, bool)
    base = fit_rnd(STRIKES, put, calls, forward=100.0, **kw)
    scaled = fit_rnd(STRIKES * scale, put * scale, calls, forward=100.0 * scale, **kw)
    assert scaled.std == pytest.approx(base.std * scale, rel=1e-9)
    assert scaled.skewness == pytest.approx(base.skewness, abs=1e-8)
    assert scaled.excess_kurtosis == pytest.approx(base.excess_kurtosis, abs=1e-7)


# ------------------------------------------------------------------------------------------
# optimality (KKT) with multipliers recovered independently, and a second solver


def qp_in_forward_units(res):
    f = res.forward
    k = res.strikes / f
    z = res.centres / f
    h = res.bandwidth / f
    y = res.prices * math.exp(res.rate_cc * res.tau_years) / f
    d = design_matrix(k, res.is_call, z, h)
    w = res.ls_weights
    q = d.T @ (w[:, None] * d) + res.solver.ridge * np.eye(z.size)
    c = -(d.T @ (w * y))
    a_eq = np.vstack([np.ones_like(z), z])
    return q, c, a_eq, np.array([1.0, 1.0])


def recover_multipliers(q, c, a_eq, x, tol_active):
    """Equality multipliers nu by least squares on the free coordinates' stationarity, then the
    bound multipliers lam = Qx + c + A'nu (KKT: lam >= 0, lam_j x_j = 0, lam_free = 0)."""
    grad = q @ x + c
    free = x > tol_active
    nu, *_ = np.linalg.lstsq(a_eq[:, free].T, -grad[free], rcond=None)
    lam = grad + a_eq.T @ nu
    return nu, lam, free


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_solution_satisfies_kkt_conditions(noise):
    rng = np.random.default_rng(7)
    k = np.arange(40.0, 170.0 + 1e-9, STEP)
    call, put, fwd, _ = mixture_truth(k)
    is_call = k >= fwd
    prices = np.where(is_call, call, put) + rng.uniform(-noise, noise, k.size)
    res = fit_rnd(k, prices, is_call, tau_years=TAU, rate_cc=0.0, forward=fwd)
    q, c, a_eq, b_eq = qp_in_forward_units(res)
    x = res.weights
    scale = max(np.abs(q).max(), np.abs(c).max())
    nu, lam, free = recover_multipliers(q, c, a_eq, x, tol_active=1e-10)
    assert (~free).sum() > 0 and free.sum() > 2  # a genuine active set
    # primal feasibility
    assert x.min() >= 0.0
    np.testing.assert_allclose(a_eq @ x, b_eq, atol=1e-12)
    # stationarity on the free weights, dual feasibility and complementary slackness
    assert np.abs(lam[free]).max() <= 1e-7 * scale
    assert lam[~free].min() >= -1e-7 * scale
    assert np.abs(lam * x).max() <= 1e-9 * scale
    # the solver's own multipliers agree ((Q + rho I) x + c + A'nu - lam = 0)
    np.testing.assert_allclose(res.solver.dual_eq, nu, atol=1e-9 * scale, rtol=1e-6)
    np.testing.assert_allclose(res.solver.dual_bounds, np.where(free, 0.0, lam), atol=1e-9 * scale)
    assert res.solver.kkt_violation <= 1e-8


def test_daqp_and_clarabel_reach_the_same_optimum():
    rng = np.random.default_rng(3)
    _, put = bs_prices(STRIKES, 100.0, SIGMA, TAU)
    noisy = put + rng.uniform(-0.025, 0.025, STRIKES.size)
    kw = {"tau_years": TAU, "rate_cc": 0.02, "forward": 100.0}
    calls = np.zeros(STRIKES.size, bool)
    exact = fit_rnd(STRIKES, noisy, calls, options=RNDOptions(solver="daqp"), **kw)
    ipm = fit_rnd(STRIKES, noisy, calls, options=RNDOptions(solver="clarabel"), **kw)
    assert exact.solver.objective <= ipm.solver.objective + 1e-10
    assert exact.solver.objective == pytest.approx(ipm.solver.objective, rel=1e-4, abs=1e-12)
    np.testing.assert_allclose(exact.fitted_prices, ipm.fitted_prices, atol=1e-4)


# ------------------------------------------------------------------------------------------
# closed forms against slow references


def test_design_matrix_matches_quadrature_and_parity():
    z = np.array([80.0, 100.0, 123.0])
    h = 3.7
    k = np.array([75.0, 99.0, 130.0])
    put = design_matrix(k, np.zeros(3, bool), z, h)
    call = design_matrix(k, np.ones(3, bool), z, h)
    for i, ki in enumerate(k):
        for j, zj in enumerate(z):
            ref_p = integrate.quad(lambda u, ki=ki, zj=zj: max(ki - u, 0.0) * norm.pdf(u, zj, h),
                                   zj - 12 * h, zj + 12 * h, points=[ki], limit=200)[0]  # fmt: skip
            ref_c = integrate.quad(lambda u, ki=ki, zj=zj: max(u - ki, 0.0) * norm.pdf(u, zj, h),
                                   zj - 12 * h, zj + 12 * h, points=[ki], limit=200)[0]  # fmt: skip
            assert put[i, j] == pytest.approx(ref_p, abs=1e-10)
            assert call[i, j] == pytest.approx(ref_c, abs=1e-10)
    # parity per kernel: C - P = z - K
    np.testing.assert_allclose(call - put, z[None, :] - k[:, None], atol=1e-12)


def test_mixture_moments_match_numerical_integration():
    rng = np.random.default_rng(0)
    z = np.linspace(50, 150, 30)
    a = rng.dirichlet(np.ones(30))
    h = 4.0
    mom = mixture_moments(z, a, h)
    mean, var, skew, kurt = mom.mean, mom.variance, mom.skewness, mom.excess_kurtosis
    u = np.linspace(0.0, 200.0, 200001)
    f = (a[None, :] * norm.pdf(u[:, None], z[None, :], h)).sum(axis=1)
    m = np.trapezoid(u * f, u)
    c2, c3, c4 = (np.trapezoid((u - m) ** p * f, u) for p in (2, 3, 4))
    assert mean == pytest.approx(m, rel=1e-12)
    assert var == pytest.approx(c2, rel=1e-9)
    assert skew == pytest.approx(c3 / c2**1.5, abs=1e-9)
    assert kurt == pytest.approx(c4 / c2**2 - 3.0, abs=1e-8)


# ------------------------------------------------------------------------------------------
# forward and arbitrage diagnostics


@pytest.mark.parametrize("method", ["parity_min", "regression"])
def test_parity_forward_recovers_the_forward(method):
    k = np.arange(80.0, 121.0, 5.0)
    call, put = bs_prices(k, 103.7, 0.3, 0.5, rate=0.04)
    fwd = parity_forward(k, call, put, tau_years=0.5, rate_cc=0.04, method=method)
    assert fwd == pytest.approx(103.7, rel=1e-12)
    with pytest.raises(DataError, match="forward="):
        parity_forward(k, np.full(k.size, np.nan), put, tau_years=0.5, rate_cc=0.04)


def test_arbitrage_checks_count_and_size_injected_violations():
    k = np.arange(80.0, 121.0, 5.0)
    call, put = bs_prices(k, 100.0, 0.25, 0.5, rate=0.03)
    kw = {"forward": 100.0, "tau_years": 0.5, "rate_cc": 0.03}
    both = np.r_[np.ones(k.size, bool), np.zeros(k.size, bool)]
    clean = check_arbitrage(np.r_[k, k], np.r_[call, put], both, **kw)
    assert clean.total_violations == 0 and (clean.n_calls, clean.n_puts) == (9, 9)
    bad_call = call.copy()
    bad_call[6] = bad_call[5] + 0.3  # rises with the strike (and breaks two butterflies)
    bad_put = put.copy()
    bad_put[0] = -0.2  # below the lower bound 0
    rep = check_arbitrage(np.r_[k, k], np.r_[bad_call, bad_put], both, **kw)
    assert rep.monotonicity_violations >= 1
    assert rep.worst_monotonicity == pytest.approx(0.3, abs=1e-12)
    assert rep.convexity_violations >= 1
    assert rep.worst_convexity > 0.15
    assert rep.bound_violations == 1 and rep.worst_bound == pytest.approx(0.2, abs=1e-12)
    assert rep.total_beyond_spread == rep.total_violations  # no spreads given: all count
    # with bid-ask spreads of 1.0 the 0.3 and 0.2 violations are not tradeable
    wide = check_arbitrage(
        np.r_[k, k], np.r_[bad_call, bad_put], both, spreads=np.full(2 * k.size, 1.0), **kw
    )
    assert wide.total_violations == rep.total_violations
    assert wide.monotonicity_beyond_spread == 0 and wide.bound_beyond_spread == 0
    narrow = check_arbitrage(
        np.r_[k, k], np.r_[bad_call, bad_put], both, spreads=np.full(2 * k.size, 0.1), **kw
    )
    assert narrow.monotonicity_beyond_spread >= 1 and narrow.bound_beyond_spread == 1
    # a vertical spread dearer than its discounted width
    steep = put.copy()
    steep[-1] = steep[-2] + 5.0 * math.exp(-0.03 * 0.5) + 0.1
    rep = check_arbitrage(k, steep, np.zeros(k.size, bool), **kw)
    assert rep.worst_monotonicity == pytest.approx(0.1, abs=1e-9)


# ------------------------------------------------------------------------------------------
# chains: long format, many dates and expiries


def synthetic_chain(vols_by_days, dates, spot=100.0, rate=0.02, step=2.5, spread=0.02):
    """Black-Scholes quotes with bid/ask = price -/+ spread/2 (exact mids); like a real chain,
    options worth less than the spread are not quoted (no bid)."""
    rows = []
    for d in pd.to_datetime(dates):
        for days, vol in vols_by_days.items():
            tau = days / 365.0
            fwd = spot * math.exp(rate * tau)
            k = np.arange(60.0, 140.0 + 1e-9, step)
            call, put = bs_prices(k, fwd, vol, tau, rate)
            for cp, px in (("C", call), ("P", put)):
                quoted = px > spread
                rows.append(
                    pd.DataFrame(
                        {
                            "trade_date": d,
                            "expiry": d + pd.Timedelta(days=days),
                            "cp": cp,
                            "strike": k[quoted],
                            "underlying": spot,
                            "bid": px[quoted] - spread / 2,
                            "ask": px[quoted] + spread / 2,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


VOLS = {14: 0.15, 42: 0.25, 70: 0.25}


@pytest.fixture(scope="module")
def chain():
    return synthetic_chain(VOLS, ["2020-01-06", "2020-01-07"])


def test_moments_table_one_row_per_date_expiry(chain):
    tab = rnd_moments(chain, rate_cc=0.02, options=RNDOptions())
    assert len(tab) == 6 and (tab["status"] == "optimal").all()
    assert list(tab["days_to_expiry"]) == [14, 42, 70] * 2
    expect_vol = tab["days_to_expiry"].map(VOLS)
    np.testing.assert_allclose(tab["rnd_vol"], expect_vol, rtol=0.03)
    np.testing.assert_allclose(tab["mean"], 100.0 * np.exp(0.02 * tab["tau_years"]), rtol=1e-4)
    assert (tab["arb_monotonicity_violations"] == 0).all()
    assert {"prob_below_0.9", "q0.05", "q0.95", "arb_convexity_violations"} <= set(tab.columns)


@pytest.mark.parametrize("method", ["parity_min", "regression"])
def test_grouped_parity_forward_matches_the_true_forward(chain, method):
    tab = rnd_moments(chain, rate_cc=0.02, options=RNDOptions(forward_method=method))
    np.testing.assert_allclose(tab["forward"], 100.0 * np.exp(0.02 * tab["tau_years"]), rtol=1e-9)


def test_single_chain_matches_the_history_row(chain):
    opts = RNDOptions()
    one = fit_rnd_chain(
        chain, rate_cc=0.02, trade_date="2020-01-07", expiry="2020-02-18", options=opts
    )
    tab = rnd_moments(chain, rate_cc=0.02, options=opts)
    row = tab[(tab["trade_date"] == "2020-01-07") & (tab["days_to_expiry"] == 42)].iloc[0]
    assert one.std == pytest.approx(row["std"], rel=1e-12)
    assert one.prob_below(0.9) == pytest.approx(row["prob_below_0.9"], rel=1e-12)
    # both wings were used: OTM puts below the forward, OTM calls above
    assert one.is_call.any() and (~one.is_call).any()
    assert np.all(one.strikes[one.is_call] >= one.forward)
    with pytest.raises(DataError, match="pass trade_date"):
        fit_rnd_chain(chain, rate_cc=0.02)


def test_horizon_interpolation_total_variance_linear_in_time(chain):
    opts = RNDOptions()
    tab = rnd_moments(chain, rate_cc=0.02, options=opts)
    out = interpolate_horizon(tab, target_days=30)
    assert len(out) == 2 and not out["extrapolated"].any()
    first = tab[tab["trade_date"] == "2020-01-06"].set_index("days_to_expiry")
    v14 = (first.loc[14, "std"] / first.loc[14, "forward"]) ** 2
    v42 = (first.loc[42, "std"] / first.loc[42, "forward"]) ** 2
    w = (42 - 30) / (42 - 14)
    row = out.iloc[0]
    assert row["weight_near"] == pytest.approx(w)
    assert (row["std"] / row["forward"]) ** 2 == pytest.approx(w * v14 + (1 - w) * v42)
    sk = w * first.loc[14, "skewness"] + (1 - w) * first.loc[42, "skewness"]
    assert row["skewness"] == pytest.approx(sk)
    # the one-call version fits only the bracketing expiries and gives the same numbers
    direct = rnd_horizon_moments(chain, rate_cc=0.02, target_days=30, options=opts)
    pd.testing.assert_frame_equal(direct, out)
    # beyond the last expiry: flat annualised variance from the nearest term, flagged
    far = interpolate_horizon(tab, target_days=100)
    assert far["extrapolated"].all() and (far["near_days"] == 70).all()
    last = tab[tab["days_to_expiry"] == 70]
    np.testing.assert_allclose(far["rnd_vol"], last["rnd_vol"], rtol=1e-12)


def test_rates_as_series_or_callable(chain):
    opts = RNDOptions()
    const = rnd_moments(chain, rate_cc=0.02, options=opts)
    series = pd.Series(0.02, index=pd.to_datetime(["2020-01-06", "2020-01-07"]))
    by_series = rnd_moments(chain, rate_cc=series, options=opts)
    by_curve = rnd_moments(chain, rate_cc=lambda d, n: np.full(len(d), 0.02), options=opts)
    for other in (by_series, by_curve):
        np.testing.assert_allclose(other["std"], const["std"], rtol=1e-12)
    with pytest.raises(DataError, match="2020-01-07"):
        rnd_moments(chain, rate_cc=series.iloc[:1], options=opts)


def test_groups_too_thin_are_kept_with_a_status_and_one_warning(chain):
    near = chain["expiry"] == pd.Timestamp("2020-01-20")
    thin = chain[~near | chain["strike"].between(97.0, 103.0)]  # 3 strikes left there
    with pytest.warns(DataQualityWarning, match="1 of 6"):
        tab = rnd_moments(thin, rate_cc=0.02, options=RNDOptions())
    bad = tab[tab["status"] != "optimal"]
    assert len(bad) == 1 and "min_quotes" in bad["status"].iloc[0]


def test_bad_input_names_the_problem(chain):
    with pytest.raises(DataError, match="strike"):
        rnd_moments(chain.drop(columns="strike"), rate_cc=0.02)
    with pytest.raises(DataError, match="'cp'"):
        rnd_moments(chain.assign(cp="X"), rate_cc=0.02)
    with pytest.raises(ConfigError, match="weighting"):
        RNDOptions(weighting="vega")
    with pytest.raises(ConfigError, match="bandwidth"):
        RNDOptions(bandwidth=-1.0)
    with pytest.raises(DataError, match="non-finite"):
        fit_rnd([90, 100, np.nan], [1, 2, 3], [False] * 3, tau_years=1, rate_cc=0, forward=100)


# ------------------------------------------------------------------------------------------
# real chains (shared data)


def _quiet(loader, *args, **kwargs):
    # the loaders warn (DataQualityWarning) with the counts their drop policy removed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return loader(*args, **kwargs)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("loader", "file", "rate"),
    [
        ("load_spx_quote_table", "SPX-Options-24jan2011.csv", 0.003),
        ("load_gs_options", "option_GS_df.csv", 0.004),
    ],
)
def test_real_us_chains_give_densities(shared_data, loader, file, rate):
    from volbacktest.data import chains

    ch = _quiet(getattr(chains, loader), shared_data / "us_option_chains" / file)
    tab = rnd_moments(ch, rate_cc=rate)
    assert (tab["status"] == "optimal").all()
    spot = float(ch["underlying"].iloc[0])
    assert np.all(np.abs(tab["forward"] / spot - 1.0) < 0.05)
    np.testing.assert_allclose(tab["mean"], tab["forward"], rtol=1e-9)
    assert tab["rnd_vol"].between(0.08, 0.6).all()
    probs = tab[[c for c in tab.columns if c.startswith("prob_below")]].to_numpy()
    assert np.all((probs >= 0.0) & (probs <= 1.0))
    # the quotes do carry static-arbitrage violations (delayed/vendor mids): they are reported
    assert (tab["arb_convexity_violations"] > 0).any()
    # equity index: left-skewed risk-neutral density at every maturity
    if loader == "load_spx_quote_table":
        assert (tab["skewness"] < 0).all()


@pytest.mark.shared_data
def test_50etf_history_slice_gives_daily_30_day_moments(shared_data):
    from volbacktest.data.chains import load_50etf_options

    folder = shared_data / "china_50etf"
    ch = _quiet(
        load_50etf_options,
        folder / "50etf_options_daily_joinquant__TanTzs.csv",
        underlying_path=folder / "510050_daily_unadjusted__zsh-a.csv",
    )
    part = ch[(ch["trade_date"] >= "2016-01-01") & (ch["trade_date"] < "2016-03-01")]
    out = rnd_horizon_moments(part, rate_cc=0.03, target_days=30)
    assert len(out) == part["trade_date"].nunique()
    assert out["trade_date"].is_monotonic_increasing
    assert out[["rnd_vol", "skewness", "excess_kurtosis"]].notna().all().all()
    assert out["rnd_vol"].between(0.1, 0.8).all()
    probs = out[[c for c in out.columns if c.startswith("prob_below")]].to_numpy()
    assert np.all((probs >= 0.0) & (probs <= 1.0))


@pytest.mark.shared_data
def test_real_chain_figures_script_writes_plots_and_table(shared_data, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "rnd_real_chains", REPO / "bench" / "rnd_real_chains.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    written = mod.write_figures(shared_data, tmp_path, with_50etf=False)
    assert {p.suffix for p in written} == {".png", ".md"}
    text = (tmp_path / "moments.md").read_text(encoding="utf-8")
    assert "SPX" in text and "GS" in text and "arbitrage" in text.lower()
