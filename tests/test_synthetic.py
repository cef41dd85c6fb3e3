"""Embedded synthetic market: determinism, calibration bands, coherence, pricing accuracy."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from volbacktest.data import synthetic
from volbacktest.data.synthetic import (
    CALIBRATION_BANDS,
    FRAME_KEYS,
    OHLCV,
    SyntheticParams,
    cir_laplace_exponent,
    generate_market,
    market_frames,
    model_vix,
    vix_coefficients,
    vix_futures_price,
)
from volbacktest.engine.calculators.futures import VXX_ANNUAL_FEE, XIV_ANNUAL_FEE
from volbacktest.engine.errors import ConfigError

SIGNALS = ("vix", "vix3m", "vx1", "vx2")
TRADABLES = ("spx", "xiv", "vxx")


@pytest.fixture(scope="module")
def market():
    return generate_market()


@pytest.fixture(scope="module")
def frames(market):
    return market.frames


# --------------------------------------------------------------------------- API and determinism


def test_frames_have_the_documented_layout(frames):
    assert tuple(frames) == FRAME_KEYS
    first = frames["vix"].index
    assert first[0] == pd.Timestamp("2005-01-03") and first[-1] == pd.Timestamp("2019-12-31")
    assert 3700 < len(first) < 3800  # about 15 years of NYSE sessions
    for name, frame in frames.items():
        assert list(frame.columns) == list(OHLCV), name
        assert (frame.dtypes == np.float64).all(), name
        assert frame.index.name == "date" and frame.index.equals(first), name
        prices = frame[["open", "high", "low", "close"]]
        assert np.isfinite(prices.to_numpy()).all() and (prices > 0).all().all(), name
        assert (frame["high"] >= prices.max(axis=1) - 1e-12).all(), name
        assert (frame["low"] <= prices.min(axis=1) + 1e-12).all(), name
    for name in SIGNALS:
        assert frames[name]["volume"].isna().all(), name
    for name in TRADABLES:
        assert (frames[name]["volume"] > 0).all(), name
    for name in ("vx1", "vx2"):
        flat = frames[name]
        assert (flat["open"] == flat["close"]).all() and (flat["high"] == flat["low"]).all()


def test_same_seed_same_market_other_seed_other_market():
    start, end = pd.Timestamp("2008-01-02"), pd.Timestamp("2011-12-30")
    one = synthetic._generate(SyntheticParams(), 3, start, end)  # bypass the cache
    two = synthetic._generate(SyntheticParams(), 3, start, end)
    other = synthetic._generate(SyntheticParams(), 4, start, end)
    for name in FRAME_KEYS:
        pd.testing.assert_frame_equal(one.frames[name], two.frames[name])
        assert not one.frames[name]["close"].equals(other.frames[name]["close"]), name
    pd.testing.assert_frame_equal(one.futures_settle, two.futures_settle)


def test_generate_market_is_cached_and_market_frames_are_copies():
    assert generate_market() is generate_market(None, 7, "2005-01-03", "2019-12-31")
    mine = market_frames()
    mine["vix"].loc[:, "close"] = -1.0
    assert (market_frames()["vix"]["close"] > 0).all()
    assert (generate_market().frames["vix"]["close"] > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"start": "2010-01-04", "end": "2009-01-02"}, "after start"),
        ({"start": "not a date"}, "dates like"),
        ({"params": {"xi": 1}}, "SyntheticParams"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_market(**kwargs)


def test_bad_parameters_are_rejected():
    with pytest.raises(ConfigError, match="fast_rho"):
        SyntheticParams(fast_rho=-1.2)
    with pytest.raises(ConfigError, match="slow_xi"):
        SyntheticParams(slow_xi=0.0)
    with pytest.raises(ConfigError, match="listed_contracts"):
        SyntheticParams(listed_contracts=1)


# --------------------------------------------------------------------------- calibration bands


def _half_life_days(series: pd.Series) -> float:
    x = series.to_numpy()
    slope = np.polyfit(x[:-1], x[1:], 1)[0]
    return float(np.log(0.5) / np.log(slope))


def _cagr(close: pd.Series) -> float:
    years = (close.index[-1] - close.index[0]).days / 365.25
    return float((close.iloc[-1] / close.iloc[0]) ** (1 / years) - 1)


def measured_statistics(frames) -> dict[str, float]:
    """The calibration statistics, computed the same way as on the real files."""
    vix = frames["vix"]["close"]
    basis = frames["vx1"]["close"] - vix
    xiv_log = np.log(frames["xiv"]["close"]).diff()
    calm = (vix < vix.median()).shift(1, fill_value=False)
    return {
        "vix_mean": vix.mean(),
        "vix_std": vix.std(),
        "vix_daily_log_change_std": np.log(vix).diff().std(),
        "vix_half_life_days": _half_life_days(vix),
        "vix3m_vix_median_ratio": (frames["vix3m"]["close"] / vix).median(),
        "contango_share": (basis > 0).mean(),
        "median_basis": basis.median(),
        "vxx_annual_return": _cagr(frames["vxx"]["close"]),
        "xiv_calm_annual_log_drift": xiv_log[calm].mean() * 252,
        "backwardation_days": float((basis < 0).sum()),
    }


def test_calibrated_statistics_fall_in_the_documented_bands(frames):
    measured = measured_statistics(frames)
    assert set(measured) == set(CALIBRATION_BANDS)
    outside = {
        name: (round(value, 4), CALIBRATION_BANDS[name])
        for name, value in measured.items()
        if not CALIBRATION_BANDS[name][0] <= value <= CALIBRATION_BANDS[name][1]
    }
    assert not outside, outside


def _docstring_table() -> dict[str, dict[str, str]]:
    """The calibration table of ``SyntheticParams.__doc__``: statistic -> column -> text."""
    lines = SyntheticParams.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("=====")]
    header, body = lines[rules[0] + 1], lines[rules[1] + 1 : rules[2]]
    columns = ["statistic", "real", "seed7", "seeds20", "band"]
    assert re.split(r"\s{2,}", header.strip())[:2] == ["statistic", "real"]
    table = {}
    for line in body:
        cells = dict(zip(columns, re.split(r"\s{2,}", line.strip()), strict=True))
        table[cells["statistic"].split()[0]] = cells
    return table


def _matches_printed(value: float, text: str) -> bool:
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(value - float(text)) <= 0.5 * 10.0**-decimals + 1e-12


def test_docstring_table_states_the_bands_and_the_default_market(frames):
    table = _docstring_table()
    assert set(table) == set(CALIBRATION_BANDS)
    measured = measured_statistics(frames)
    for name, (low, high) in CALIBRATION_BANDS.items():
        assert table[name]["band"] == f"[{low:g}, {high:g}]", name
        assert _matches_printed(measured[name], table[name]["seed7"]), (name, measured[name])


def _real_frames(root) -> dict[str, pd.Series]:
    """The real series behind the table, parsed as their PROVENANCE.md files describe."""
    cboe = root / "cboe_vix_index"
    vix = pd.read_csv(
        cboe / "VIX_History.csv", parse_dates=["DATE"], date_format="%m/%d/%Y"
    ).set_index("DATE")["CLOSE"]
    old = pd.read_csv(cboe / "vix3mdailyprices.csv", skiprows=2)
    old.index = pd.to_datetime(old.iloc[:, 0], format="mixed")
    new = pd.read_csv(
        cboe / "VIX3M_History.csv", parse_dates=["DATE"], date_format="%m/%d/%Y"
    ).set_index("DATE")["CLOSE"]
    vix3m = pd.concat([old["CLOSE"].astype(float)[:"2009-09-17"], new["2009-09-18":]])
    quant = pd.read_csv(
        root / "vix_futures_continuous" / "vix_futures_VX1-VX8_with_VIX_SP500__quantintell.csv",
        parse_dates=["DATE"],
    ).set_index("DATE")
    etns = root / "vix_etns"
    vxx = pd.read_csv(etns / "VXX_yahoo_adjusted__johnngo.csv", parse_dates=["Date"])
    xiv = pd.read_csv(etns / "XIV_close_stitched_DERIVED.csv", parse_dates=["date"])
    return {
        "vix": vix["2004":"2019"],
        "vix_all": vix,
        "vix3m": vix3m[:"2019"],
        "vx1": quant["VX1"][:"2019"],
        "vxx": vxx.set_index("Date")["Adj Close"].dropna()["2009-01-30":"2018-01-31"],
        "xiv": xiv.set_index("date")["close_split_adjusted"],
    }


@pytest.mark.shared_data
def test_real_column_of_the_docstring_table_is_measured_from_the_shared_data(shared_data):
    real = _real_frames(shared_data)
    vix, vix_all = real["vix"], real["vix_all"]
    vx1 = real["vx1"]
    basis = (vx1 - vix_all.reindex(vx1.index)).dropna()
    xiv = real["xiv"]
    vix_on_xiv = vix_all.reindex(xiv.index)
    calm = (vix_on_xiv < vix_on_xiv.median()).shift(1, fill_value=False)
    measured = {
        "vix_mean": vix.mean(),
        "vix_std": vix.std(),
        "vix_daily_log_change_std": np.log(vix).diff().std(),
        "vix_half_life_days": _half_life_days(vix),
        "vix3m_vix_median_ratio": (real["vix3m"] / vix_all).dropna()["2007-12":].median(),
        "contango_share": (basis > 0).mean(),
        "median_basis": basis.median(),
        "vxx_annual_return": _cagr(real["vxx"]),
        "xiv_calm_annual_log_drift": np.log(xiv).diff()[calm].mean() * 252,
        "backwardation_days": float((basis < 0).sum()),
    }
    table = _docstring_table()
    for name, value in measured.items():
        assert _matches_printed(value, table[name]["real"]), (name, value)
        low, high = CALIBRATION_BANDS[name]
        assert low <= value <= high, name  # the bands contain the real history too


# --------------------------------------------------------------------------- coherence


def test_volatility_risk_premium_implied_above_realised(frames):
    spx_log = np.log(frames["spx"]["close"]).diff().dropna()
    realised_var = float((spx_log**2).mean() * 252)
    implied_var = float((frames["vix"]["close"] ** 2).mean() / 1e4)
    assert implied_var > 1.05 * realised_var
    corr = np.corrcoef(np.log(frames["vix"]["close"]).diff().dropna(), spx_log)[0, 1]
    assert corr < -0.5  # leverage: VIX up when SPX down


def test_vx1_tracks_vix_and_stress_brings_backwardation(frames):
    vix, vx1, vx2 = frames["vix"]["close"], frames["vx1"]["close"], frames["vx2"]["close"]
    assert np.corrcoef(vix, vx1)[0, 1] > 0.95
    assert ((vx1 - vix).abs() / vix).median() < 0.1
    stress = vix > vix.quantile(0.9)
    calm = vix < vix.median()
    assert (vx1[stress] > vix[stress]).mean() < 0.3
    assert (vx1[calm] > vix[calm]).mean() > 0.9
    assert (vx2[stress] < vx1[stress]).mean() > 0.5  # the curve inverts beyond the front too


def test_futures_converge_to_the_vix_at_settlement(market, frames):
    settle = market.futures_settle
    vix = frames["vix"]
    expiring = [e for e in settle.columns if settle.index[0] <= e <= settle.index[-1]]
    assert len(expiring) == 180
    final = np.array([settle.loc[e, e] for e in expiring])
    np.testing.assert_allclose(final, vix.loc[expiring, "open"], rtol=1e-12)
    day_before = settle.index[settle.index.get_indexer(expiring) - 1]
    one_day = np.array([settle.loc[d, e] for d, e in zip(day_before, expiring, strict=True)])
    assert np.median(np.abs(one_day / vix.loc[day_before, "close"].to_numpy() - 1)) < 0.02
    listed = settle.notna().sum(axis=1)
    assert (listed == market.params.listed_contracts).all()


def test_etns_follow_the_index_with_their_fees(market, frames):
    er = market.index.return_er.to_numpy()[1:]
    tr = market.index.return_tr.to_numpy()[1:]
    days = np.diff(frames["xiv"].index.to_numpy().astype("datetime64[D]")).astype(float)
    xiv = frames["xiv"]["close"].pct_change().to_numpy()[1:]
    vxx = frames["vxx"]["close"].pct_change().to_numpy()[1:]
    np.testing.assert_allclose(1 + xiv, (1 - er) * (1 - XIV_ANNUAL_FEE * days / 365), rtol=1e-12)
    np.testing.assert_allclose(1 + vxx, (1 + tr) * (1 - VXX_ANNUAL_FEE * days / 365), rtol=1e-12)
    # XIV's daily return is minus VXX's, up to fees and T-bill interest (bps per day)
    assert np.max(np.abs(xiv + vxx)) < 2e-3
    assert not market.etns["xiv"].terminated


def test_index_rolls_from_first_to_second_month(market):
    roll = market.index.roll
    assert (roll.front_expiry > roll.dates).all()
    np.testing.assert_allclose(roll.w1 + roll.w2, 1.0)
    vx1 = market.frames["vx1"]["close"]
    front = market.futures_settle.to_numpy()[
        np.arange(len(roll.dates)), market.futures_settle.columns.get_indexer(roll.front_expiry)
    ]
    on_roll_start = roll.w1 == 1.0  # the day before settlement: VX1 is still the expiring one
    np.testing.assert_allclose(front[~on_roll_start], vx1.to_numpy()[~on_roll_start])


def test_etn_opens_and_ranges_are_consistent(frames):
    for name in ("xiv", "vxx"):
        frame = frames[name]
        overnight = np.log(frame["open"] / frame["close"].shift(1)).dropna()
        whole = np.log(frame["close"]).diff().dropna()
        assert 0.0 < overnight.std() < whole.std(), name
    vix_range = np.log(frames["vix"]["high"] / frames["vix"]["low"]).mean()
    spx_range = np.log(frames["spx"]["high"] / frames["spx"]["low"]).mean()
    assert 0.03 < vix_range < 0.2 and 0.004 < spx_range < 0.03


def test_an_acceleration_event_is_handled():
    violent = SyntheticParams(jump_intensity_p=6.0, jump_mean_p=0.6, jump_mean_q=0.05)
    market = synthetic._generate(violent, 1, pd.Timestamp("2010-01-04"), pd.Timestamp("2012-12-31"))
    xiv = market.etns["xiv"]
    assert xiv.terminated
    after = market.frames["xiv"].loc[market.frames["xiv"].index > xiv.termination_date]
    assert len(after) > 0 and after.isna().all().all()
    assert np.isfinite(market.frames["vxx"]["close"]).all()


def test_short_custom_range():
    market = generate_market(seed=11, start="2016-03-01", end="2016-06-30")
    assert market.frames["spx"].index[0] == pd.Timestamp("2016-03-01")
    assert len(market.frames["spx"]) == 86  # Mar 22 (Good Friday), Apr 21, May 21, Jun 22
    assert market.variance.shape == (86, 4)


# --------------------------------------------------------------------------- pricing kernels


def test_vix_formula_is_the_expected_integrated_variance():
    p = SyntheticParams()
    tau = 30 / 365
    v_fast, v_slow = 0.03, 0.01
    mean_q = []
    for factor, v in zip(p.factors_q(), (v_fast, v_slow), strict=True):
        m = factor.long_run_mean
        mean_q.append(
            integrate.quad(
                lambda s, f=factor, v=v, m=m: m + (v - m) * np.exp(-f.kappa * s), 0, tau
            )[0]
        )
    jump_term = synthetic._price_jump_qv(p)
    expected = 100 * np.sqrt(sum(mean_q) / tau + jump_term)
    np.testing.assert_allclose(model_vix(v_fast, v_slow, p), expected, rtol=1e-12)
    a, b = vix_coefficients(p, tau)
    assert 0 < b[0] < b[1] < 1 and a > 0


@pytest.mark.parametrize("dt", [0.01, 0.25, 1.0])
def test_laplace_exponent_matches_the_noncentral_chi_square(dt):
    factor = SyntheticParams().factors_q()[1]  # a CIR factor without jumps
    c = factor.xi**2 * (1 - np.exp(-factor.kappa * dt)) / (4 * factor.kappa)
    dof, v = 4 * factor.kappa * factor.theta / factor.xi**2, 0.02
    nonc = v * np.exp(-factor.kappa * dt) / c
    mean, sd = dof + nonc, np.sqrt(2 * (dof + 2 * nonc))
    lo, hi = max(0.0, mean - 30 * sd), mean + 60 * sd
    for u in (0.5, 20.0, 400.0):
        ref = integrate.quad(
            lambda y, u=u: np.exp(-u * c * y) * stats.ncx2.pdf(y, dof, nonc),
            lo,
            hi,
            points=[mean],
            limit=400,
            epsabs=0.0,
            epsrel=1e-11,
        )[0]
        np.testing.assert_allclose(np.exp(cir_laplace_exponent(u, v, dt, factor)), ref, rtol=1e-7)


def test_laplace_exponent_with_jumps_has_the_right_mean():
    factor = SyntheticParams().factors_q()[0]
    v, dt, h = 0.02, 0.3, 1e-6
    mean = -(cir_laplace_exponent(h, v, dt, factor) - cir_laplace_exponent(0.0, v, dt, factor)) / h
    m = factor.long_run_mean
    np.testing.assert_allclose(mean, m + (v - m) * np.exp(-factor.kappa * dt), rtol=1e-5)


@pytest.mark.parametrize(("v_fast", "dt"), [(0.01, 0.004), (0.05, 0.1), (0.002, 0.4), (0.3, 0.8)])
def test_futures_price_matches_adaptive_quadrature(v_fast, dt):
    """No jumps and a near-deterministic slow factor: E sqrt(X) by quad over the ncx2 density."""
    p = dataclasses.replace(SyntheticParams(), jump_intensity_q=0.0, slow_xi=1e-4)
    fast, slow = p.factors_q()
    v_slow = 0.015
    a, b = vix_coefficients(p, 30 / 365)
    slow_mean = slow.theta + (v_slow - slow.theta) * np.exp(-slow.kappa * dt)
    c = fast.xi**2 * (1 - np.exp(-fast.kappa * dt)) / (4 * fast.kappa)
    dof = 4 * fast.kappa * fast.theta / fast.xi**2
    nonc = v_fast * np.exp(-fast.kappa * dt) / c
    ref = integrate.quad(
        lambda y: np.sqrt(a + b[0] * c * y + b[1] * slow_mean) * stats.ncx2.pdf(y, dof, nonc),
        0,
        np.inf,
        limit=400,
        epsabs=1e-13,
        epsrel=1e-13,
    )[0]
    np.testing.assert_allclose(vix_futures_price(v_fast, v_slow, dt, p), 100 * ref, atol=1e-6)


def test_futures_price_with_jumps_matches_monte_carlo():
    p = SyntheticParams()
    dt, n_steps, n_paths = 0.25, 21, 200_000
    rng = np.random.default_rng(2024)
    h = dt / n_steps
    state = []
    for factor, v0 in zip(p.factors_q(), (0.02, 0.03), strict=True):
        v = np.full(n_paths, v0)
        scale = factor.xi**2 * (1 - np.exp(-factor.kappa * h)) / (4 * factor.kappa)
        dof = 4 * factor.kappa * factor.theta / factor.xi**2
        for _ in range(n_steps):
            v = scale * rng.noncentral_chisquare(dof, v * np.exp(-factor.kappa * h) / scale)
            if factor.jump_intensity > 0:  # jumps at a uniform time in the step, then decay
                n_jumps = rng.poisson(factor.jump_intensity * h, n_paths)
                hit = n_jumps > 0
                decay = np.exp(-factor.kappa * h * rng.uniform(size=hit.sum()))
                v[hit] += rng.gamma(n_jumps[hit], factor.jump_mean) * decay
        state.append(v)
    vix_t = model_vix(state[0], state[1], p)
    stderr = vix_t.std() / np.sqrt(n_paths)
    exact = vix_futures_price(0.02, 0.03, dt, p)
    assert abs(vix_t.mean() - exact) < 4 * stderr + 0.003  # 0.003: time-step bias allowance
