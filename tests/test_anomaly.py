"""Option-pricing anomaly features and Isolation Forest scores (engine.calculators.anomaly)."""

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

from volbacktest.engine.calculators.anomaly import (
    ARTICLE_CONFIG,
    ARTICLE_FEATURES,
    AnomalyConfig,
    BucketConfig,
    IsolationForestConfig,
    make_test_chain,
    option_features,
    score_cross_section,
    score_rolling,
    select_bucket_contracts,
)
from volbacktest.engine.calculators.bs import bs_greeks, bs_price
from volbacktest.engine.errors import ConfigError, DataQualityWarning

REPO = Path(__file__).resolve().parents[1]
GS_FILE = ("us_option_chains", "option_GS_df.csv")
KEYS = ["trade_date", "expiry", "strike", "cp"]
SMILE_FEATURES = ("log_moneyness", "days_to_expiry", "iv", "iv_residual")


def _load_gs(shared_data: Path) -> pd.DataFrame:
    from volbacktest.data.chains import load_gs_options

    return load_gs_options(shared_data.joinpath(*GS_FILE), policy=None)


# --- the article on GS 2016-01-05 --------------------------------------------------------------


@pytest.mark.shared_data
def test_gs_article_count_matches_contamination(shared_data):
    result = score_cross_section(_load_gs(shared_data), ARTICLE_CONFIG)
    n = len(result.contracts)
    flagged = int(result.contracts["is_anomaly"].sum())
    c = ARTICLE_CONFIG.forest.contamination
    assert n == 858
    # sklearn labels the scores strictly below the contamination quantile of the fitted rows:
    # ceil(0.025 * 858) = 22 when no scores tie at the quantile.
    assert math.floor(c * n) <= flagged <= math.ceil(c * n)
    assert flagged == 22
    day = result.daily.iloc[0]
    assert day["n_anomalies"] == flagged and day["anomaly_fraction"] == pytest.approx(22 / 858)
    assert day["n_train_rows"] == 858


@pytest.mark.shared_data
def test_gs_features_match_an_independent_reading_of_the_file(shared_data):
    """Cross-check: the article's code path on the raw CSV flags the same contracts."""
    from sklearn.ensemble import IsolationForest

    raw = pd.read_csv(shared_data.joinpath(*GS_FILE))
    x = pd.DataFrame(
        {
            "Strike": raw["Strike"],
            "Delta": raw["Delta"],
            "Gamma": raw["Gamma"],
            "date_diff": (
                pd.to_datetime(raw["Expiration"], format="%m/%d/%Y")
                - pd.to_datetime(raw[" DataDate"], format="%m/%d/%Y")
            ).dt.days,
            "s_k": (raw["UnderlyingPrice"] - raw["Strike"]).map(lambda v: int(round(v, 0))),
            "b_a_mean": ((raw["Bid"] + raw["Ask"]) / 2).map(lambda v: int(round(v, 0))),
        }
    )
    forest = IsolationForest(
        max_samples="auto",
        contamination=0.025,
        n_estimators=10,
        random_state=19117,
        max_features=6,
    ).fit(x)
    expected = set(raw.loc[forest.predict(x) == -1, "OptionSymbol"])
    result = score_cross_section(_load_gs(shared_data), ARTICLE_CONFIG)
    got = set(result.contracts.loc[result.contracts["is_anomaly"], "contract"])
    assert got == expected
    np.testing.assert_allclose(
        np.sort(result.contracts["score"].to_numpy()), np.sort(-forest.score_samples(x))
    )


@pytest.mark.shared_data
def test_gs_docs_render(shared_data, tmp_path):
    """The README's GS table and scatter plot are produced by docs/anomaly/gs_example.py."""
    spec = importlib.util.spec_from_file_location(
        "gs_example", REPO / "docs" / "anomaly" / "gs_example.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.gs_result(shared_data.joinpath(*GS_FILE))
    module.write_markdown(result, tmp_path / "gs.md")
    module.plot_scatter(result, tmp_path / "gs.png")
    text = (tmp_path / "gs.md").read_text(encoding="utf-8")
    assert "22 of 858 contracts flagged" in text and text.count("| GS1") == 22
    assert (tmp_path / "gs.png").stat().st_size > 10_000


# --- features ----------------------------------------------------------------------------------


def test_features_computed_from_prices_match_bsm():
    chain = make_test_chain(rate_cc=0.02)
    config = AnomalyConfig(features=ARTICLE_FEATURES + ("iv", "spread"), rate_cc=0.02)
    frame = option_features(chain, config).frame
    truth = chain.sort_values(KEYS, kind="stable").reset_index(drop=True)
    # deep ITM rows carry sigma in a time value ~1e-8 of the price: 1e-7 relative
    np.testing.assert_allclose(frame["iv"], truth["true_vol"], rtol=1e-7)
    tau = frame["days_to_expiry"].to_numpy() / 365.0
    greeks = bs_greeks(
        truth["underlying"],
        truth["strike"],
        tau,
        truth["true_vol"],
        rate_cc=0.02,
        is_call=truth["cp"].eq("C").to_numpy(),
    )
    np.testing.assert_allclose(frame["delta"], greeks.delta, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(frame["gamma"], greeks.gamma, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(frame["spread"], truth["ask"] - truth["bid"])
    np.testing.assert_allclose(
        frame["underlying_minus_strike"], truth["underlying"] - truth["strike"]
    )
    assert frame["usable"].all() and (frame["iv_status"] == 0).all()
    # a smooth smile leaves residuals tiny against the 1e-2 scale of an injected error
    assert frame["iv_residual"].abs().max() < 2e-3


def test_chain_greeks_are_kept_and_rounding_is_half_to_even():
    chain = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(["2016-01-05"] * 2),
            "expiry": pd.to_datetime(["2016-01-08"] * 2),
            "cp": ["C", "P"],
            "strike": [172.5, 173.5],
            "underlying": [174.0, 174.0],
            "bid": [2.0, 0.0],
            "ask": [3.0, 1.0],
            "iv": [0.3, 0.3],
            "delta": [0.61, -0.4],
            "gamma": [0.07, 0.08],
        }
    )
    features = option_features(chain, ARTICLE_CONFIG)
    assert features.frame["delta"].tolist() == [0.61, -0.4]  # vendor greeks kept
    x = features.matrix()
    # S - K = 1.5 and 0.5, mean 2.5 and 0.5: Python's round(x, 0) gives 2, 0, 2, 0
    assert x[:, 4].tolist() == [2.0, 0.0] and x[:, 5].tolist() == [2.0, 0.0]
    assert x[:, 3].tolist() == [3.0, 3.0]


def test_unsolvable_rows_are_announced_and_unscored():
    chain = make_test_chain(rate_cc=0.02)
    bad = chain.index[:3]
    chain.loc[bad, ["bid", "ask"]] = 0.0  # price 0 for ITM calls: below intrinsic
    config = AnomalyConfig(features=SMILE_FEATURES, rate_cc=0.02)
    with pytest.warns(DataQualityWarning, match="3 of 306 rows lack a feature"):
        result = score_cross_section(chain, config)
    c = result.contracts
    assert (~c["scored"]).sum() == 3 and c.loc[~c["scored"], "score"].isna().all()
    assert not c.loc[~c["scored"], "is_anomaly"].any()
    assert result.daily["n_scored"].iloc[0] == 303


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="valid features"):
        AnomalyConfig(features=("strike", "vega"))
    with pytest.raises(ConfigError, match="choose one"):
        AnomalyConfig(article_rounding=True, normalise_by_underlying=True)
    with pytest.raises(ConfigError, match="contamination"):
        IsolationForestConfig(contamination=0.7)
    with pytest.raises(ConfigError, match="random_state"):
        IsolationForestConfig(random_state=None)
    close_only = make_test_chain().assign(close=lambda d: 0.5 * (d["bid"] + d["ask"]))
    close_only = close_only.drop(columns=["bid", "ask"])
    with pytest.raises(ConfigError, match="spread"):
        option_features(close_only, AnomalyConfig(features=("strike", "spread"), rate_cc=0.02))
    too_many = AnomalyConfig(
        features=("strike", "iv"), forest=IsolationForestConfig(max_features=6), rate_cc=0.02
    )
    with pytest.raises(ConfigError, match="max_features"):
        score_cross_section(make_test_chain(), too_many)


# --- injected anomalies -------------------------------------------------------------------------


def _inject(chain, rng, k):
    """Shift k interior contracts' bid and ask by the BSM price change of +-5..10 vol points."""
    interior = (chain["strike"] > chain["strike"].min()) & (chain["strike"] < chain["strike"].max())
    # one contract per (expiry, type) so that no two injected errors are neighbours
    candidates = chain.loc[interior].groupby(["expiry", "cp"]).sample(1, random_state=rng)
    picked = candidates.sample(k, random_state=rng).index.to_numpy()
    bump = rng.uniform(0.05, 0.10, k) * rng.choice([-1.0, 1.0], k)
    c = chain.loc[picked]
    tau = (c["expiry"] - c["trade_date"]).dt.days.to_numpy() / 365.0
    args = (c["underlying"].to_numpy(), c["strike"].to_numpy(), tau)
    kw = {"rate_cc": 0.02, "is_call": c["cp"].eq("C").to_numpy()}
    shift = bs_price(*args, c["true_vol"].to_numpy() + bump, **kw) - bs_price(
        *args, c["true_vol"].to_numpy(), **kw
    )
    out = chain.copy()
    out.loc[picked, "bid"] = out.loc[picked, "bid"] + shift
    out.loc[picked, "ask"] = out.loc[picked, "ask"] + shift
    out["injected"] = False
    out.loc[picked, "injected"] = True
    return out


def _precision_recall(chain, config, k):
    result = score_cross_section(chain, config)
    c = result.contracts.merge(chain[[*KEYS, "injected"]], on=KEYS, validate="1:1")
    truth = c["injected"].to_numpy()
    top = np.argsort(-c["score"].to_numpy(), kind="stable")[:k]
    precision_at_k = truth[top].mean()
    labelled = c["is_anomaly"].to_numpy()
    precision = (labelled & truth).sum() / max(labelled.sum(), 1)
    recall = (labelled & truth).sum() / truth.sum()
    return precision_at_k, precision, recall


def test_injected_anomalies_rank_at_the_top():
    """Known mispricings (+-5..10 vol points on 8 of 306 contracts) top the score ranking."""
    base = make_test_chain(rate_cc=0.02)
    k = 8
    forest = IsolationForestConfig(n_estimators=200, contamination=k / len(base), random_state=7)
    smile = AnomalyConfig(features=SMILE_FEATURES, forest=forest, rate_cc=0.02)
    article = AnomalyConfig(features=ARTICLE_FEATURES, forest=forest, rate_cc=0.02)
    rows = {"smile": [], "article": []}
    for seed in range(6):
        chain = _inject(base, np.random.default_rng(seed), k)
        rows["smile"].append(_precision_recall(chain, smile, k))
        rows["article"].append(_precision_recall(chain, article, k))
    for name, values in rows.items():
        p_at_k, p, r = np.mean(values, axis=0)
        print(
            f"injected anomalies, {name} features: precision@{k} {p_at_k:.2f}, "
            f"precision {p:.2f}, recall {r:.2f} (mean of 6 draws)"
        )
    smile_scores = np.array(rows["smile"])
    assert smile_scores[:, 0].mean() >= 0.75 and smile_scores[:, 0].min() >= 0.5
    assert smile_scores[:, 2].mean() >= 0.7
    # the article's six price-level features do not see a mispricing on a smooth chain
    assert np.array(rows["article"])[:, 0].mean() < smile_scores[:, 0].mean()


# --- rolling mode: point in time ---------------------------------------------------------------

ROLL_CONFIG = AnomalyConfig(
    features=SMILE_FEATURES,
    forest=IsolationForestConfig(n_estimators=20, contamination=0.02, random_state=3),
    rate_cc=0.02,
    normalise_by_underlying=True,
)


def _multi_day_chain(n_days: int = 14) -> pd.DataFrame:
    dates = pd.bdate_range("2021-03-01", periods=n_days)
    return make_test_chain(
        trade_dates=dates,
        expiry_days=(30, 60, 90, 120),
        rate_cc=0.02,
        rng=np.random.default_rng(11),
    )


def _scores_up_to(result, day) -> pd.Series:
    c = result.contracts
    c = c.loc[c["trade_date"] <= day]
    return c.set_index(KEYS)["score"]


@settings(max_examples=4, deadline=None)
@given(st.integers(4, 11), st.integers(0, 2**31 - 1))
def test_rolling_scores_do_not_look_ahead(t_index, seed):
    chain = _multi_day_chain()
    days = np.sort(chain["trade_date"].unique())
    t = days[t_index]
    kwargs = {"window_days": 3, "min_train_rows": 50}
    before = score_rolling(chain, ROLL_CONFIG, **kwargs)
    # rewrite the future: reprice, drop rows, move the underlying
    rng = np.random.default_rng(seed)
    future = chain["trade_date"] > t
    changed = chain.copy()
    noise = rng.uniform(0.5, 1.5, future.sum())
    changed.loc[future, "bid"] = changed.loc[future, "bid"] * noise
    changed.loc[future, "ask"] = changed.loc[future, "ask"] * noise
    changed.loc[future, "underlying"] = changed.loc[future, "underlying"] * 1.1
    changed = changed.drop(index=changed.index[future.to_numpy()][::7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # some future prices now < intrinsic
        after = score_rolling(changed, ROLL_CONFIG, **kwargs)
    pd.testing.assert_series_equal(_scores_up_to(before, t), _scores_up_to(after, t))
    pd.testing.assert_frame_equal(before.daily.loc[:t], after.daily.loc[:t])


def test_rolling_fits_on_previous_days_only():
    """Day t's scores equal those of a forest fitted by hand on days t-3..t-1."""
    chain = _multi_day_chain()
    result = score_rolling(chain, ROLL_CONFIG, window_days=3, min_train_rows=50)
    features = option_features(chain, ROLL_CONFIG)
    x = features.matrix()
    days = np.sort(chain["trade_date"].unique())
    frame_days = features.frame["trade_date"].to_numpy()
    t = days[8]
    train = np.isin(frame_days, days[5:8])
    model = ROLL_CONFIG.forest.make(x.shape[1]).fit(x[train])
    today = frame_days == t
    np.testing.assert_allclose(
        result.contracts["score"].to_numpy()[today], -model.score_samples(x[today])
    )
    assert result.daily.loc[t, "n_train_rows"] == train.sum()
    # the first day has no history: not scored, and says so
    assert result.daily["n_train_rows"].iloc[0] == 0
    assert result.contracts.loc[frame_days == days[0], "score"].isna().all()
    # changing the day before t does change day t (the test above can fail)
    changed = chain.copy()
    prev = changed["trade_date"] == days[7]
    changed.loc[prev, "ask"] = changed.loc[prev, "ask"] * 1.3
    other = score_rolling(changed, ROLL_CONFIG, window_days=3, min_train_rows=50)
    assert not np.allclose(
        other.contracts["score"].to_numpy()[today], result.contracts["score"].to_numpy()[today]
    )


def test_refit_every_reuses_an_earlier_model():
    chain = _multi_day_chain()
    every = score_rolling(chain, ROLL_CONFIG, window_days=3, min_train_rows=50, refit_every=1)
    sparse = score_rolling(chain, ROLL_CONFIG, window_days=3, min_train_rows=50, refit_every=4)
    days = np.sort(chain["trade_date"].unique())
    # refits happen on the same days for both up to the first skipped refit
    first = chain["trade_date"] <= days[1]
    np.testing.assert_allclose(
        every.contracts.loc[first.to_numpy(), "score"],
        sparse.contracts.loc[first.to_numpy(), "score"],
    )
    assert sparse.daily["n_train_rows"].iloc[1:].gt(0).all()
    assert (sparse.contracts["score"] != every.contracts["score"]).any()


def test_cross_section_is_per_day_and_deterministic():
    chain = _multi_day_chain(4)
    config = AnomalyConfig(
        features=SMILE_FEATURES,
        forest=IsolationForestConfig(n_estimators=30, contamination=0.05, random_state=5),
        rate_cc=0.02,
    )
    together = score_cross_section(chain, config)
    again = score_cross_section(chain, config)
    pd.testing.assert_frame_equal(together.contracts, again.contracts)
    day = chain["trade_date"].max()
    alone = score_cross_section(chain.loc[chain["trade_date"] == day], config)
    np.testing.assert_allclose(
        together.contracts.loc[together.contracts["trade_date"] == day, "score"],
        alone.contracts["score"],
    )
    expected = math.ceil(0.05 * together.daily["n_scored"].iloc[0])
    assert (together.daily["n_anomalies"] <= expected).all()
    assert together.daily["anomaly_fraction"].between(0, 0.05 + 1e-9).all()


# --- buckets -----------------------------------------------------------------------------------


def _bucket_chain() -> pd.DataFrame:
    day = pd.Timestamp("2022-01-03")
    rows = []
    for days_out in (30, 52, 68, 95):  # 52 and 68 are both 8 days from 60: tie -> 52
        for strike in (90.0, 94.0, 96.0, 100.0, 104.0, 106.0, 110.0, 130.0):
            rows.append((day, day + pd.Timedelta(days=days_out), "C", strike, days_out))
    frame = pd.DataFrame(rows, columns=["trade_date", "expiry", "cp", "strike", "days_to_expiry"])
    return frame.assign(
        underlying=100.0,
        score=np.linspace(0.3, 0.7, len(frame)),
        is_anomaly=frame["strike"].eq(106.0),
        scored=True,
    )


def test_bucket_picks_nearest_expiry_then_nearest_strike():
    picked = select_bucket_contracts(_bucket_chain(), BucketConfig()).set_index("bucket")
    # 60-day bucket: 52 and 68 days tie, the earlier expiry wins
    assert picked.loc["c60_atm", "days_to_expiry"] == 52
    assert picked.loc["c90_atm", "days_to_expiry"] == 95
    # ATM+5 %: 104 and 106 both 1 away from 105: the lower strike wins
    assert picked.loc["c60_p05", "strike"] == 104.0
    assert picked.loc["c60_m05", "strike"] == 94.0  # 94 and 96 tie around 95: lower
    assert picked.loc["c60_p10", "strike"] == 110.0
    # ATM+20 % = 120: nearest listed strikes 110 / 130 are 10 % away: bucket left empty
    assert "c60_p20" not in picked.index and "c60_m20" not in picked.index


def test_daily_bucket_flags():
    chain = _bucket_chain()
    from volbacktest.engine.calculators.anomaly import daily_aggregates

    daily = daily_aggregates(chain, BucketConfig(moneyness=(0.0, 0.05, 0.20)))
    row = daily.iloc[0]
    assert row["anomaly_c60_p05"] == 0.0  # 104 is picked, only 106 is flagged
    assert np.isnan(row["anomaly_c60_p20"]) and np.isnan(row["score_c60_p20"])
    assert row["n_anomalies"] == 4 and row["anomaly_fraction"] == pytest.approx(4 / 32)


@pytest.mark.shared_data
def test_50etf_rolling_smoke(shared_data):
    """Close-only 50ETF data: IV and greeks computed, rolling scores on the first 40 days."""
    from volbacktest.data.chains import load_50etf_options

    folder = shared_data / "china_50etf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        chain = load_50etf_options(
            folder / "50etf_options_daily_joinquant__TanTzs.csv",
            underlying_path=folder / "510050_daily_unadjusted__zsh-a.csv",
        )
    first = np.sort(chain["trade_date"].unique())[:40]
    chain = chain.loc[chain["trade_date"].isin(first)]
    config = AnomalyConfig(
        features=("log_moneyness", "days_to_expiry", "delta", "gamma", "mid", "iv", "iv_residual"),
        forest=IsolationForestConfig(n_estimators=25, contamination=0.02),
        normalise_by_underlying=True,
        rate_cc=0.03,
        dividend_source="parity",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # a few stale closes below intrinsic
        result = score_rolling(chain, config, window_days=10, min_train_rows=200)
    scored = result.contracts["scored"]
    assert scored.mean() > 0.7
    assert result.contracts.loc[scored, "iv"].between(0.05, 3.0).mean() > 0.99
    daily = result.daily.loc[result.daily["n_train_rows"] > 0]
    assert len(daily) > 30 and daily["anomaly_fraction"].between(0, 1).all()
