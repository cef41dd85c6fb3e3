"""Warm-up (issue 18): decisions read the history each input has before the first traded bar.

* Real data: ``configs/real/vratio.yaml`` and ``vrp.yaml`` decide on their first traded bar
  (2010-11-30), and their first weeks of decisions equal an independent recomputation in plain
  pandas on the raw shared files; ``data.warmup: none`` brings back the old cash weeks.
* Embedded market: bars before ``data.start`` are warm-up; a decision does not depend on where
  ``data.start`` is (a Hypothesis property), ``warmup: N`` limits the history, the warm-up is
  really read (changing it changes the first decisions), both executors agree on it, and
  ``metrics.json`` and the notes say what was used.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volbacktest import strategies
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.vectorised import MarketArrays, fast_backtest
from volbacktest.engine.inputs.config import config_from_mapping, load_config
from volbacktest.engine.inputs.market import Market, market_for
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest

EMBEDDED = {"seed": 11, "start": "2008-01-02", "end": "2009-12-31"}
START = "2008-07-01"  # half a year of the embedded market before it is warm-up


def embedded_cfg(name: str, fill: str = "next_close", start=START, **data):
    return config_from_mapping(
        {
            "name": f"w_{name}_{fill}",
            "strategy": {"name": name},
            "data": {"synthetic": EMBEDDED, "start": start, **data},
            "execution": {"fill": fill, "commission": {"percent": 0.001}},
            "report": {"tearsheet": False, "plots": False},
        }
    )


def decisions(cfg) -> pd.DataFrame:
    """Target weights on the calendar (the vectorised path; equal to backtrader's, below)."""
    market = market_for(cfg)
    w = MarketArrays.from_market(market, cfg.plan).weights(cfg.plan)
    return pd.DataFrame(w, index=market.calendar, columns=cfg.plan.assets())


# --------------------------------------------------------------------------- real data
def _cboe(path) -> pd.Series:
    frame = pd.read_csv(path)
    return pd.Series(
        frame["CLOSE"].to_numpy(float), index=pd.to_datetime(frame["DATE"], format="%m/%d/%Y")
    )


def _real(shared_data, monkeypatch, name: str, warmup="auto"):
    monkeypatch.setenv("VOLBT_DATA_ROOT", str(shared_data))
    cfg = load_config(REPO / "configs" / "real" / f"{name}.yaml")
    cfg = cfg.with_overrides(**{"data.warmup": warmup})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real files' data-quality notes
        return run_backtest(cfg)


def _independent_vratio(shared_data) -> pd.Series:
    """+1 (XIV) / -1 (VXX) from SMA10(VIX3M/VIX) > 1 on the indices' own common dates."""
    vix = _cboe(shared_data / "cboe_vix_index" / "VIX_History.csv")
    vix3m = _cboe(shared_data / "cboe_vix_index" / "VIX3M_History.csv")
    ratio = (vix3m / vix).dropna()
    return np.sign(ratio.rolling(10).mean() - 1.0).dropna()


def _independent_vrp(shared_data) -> pd.Series:
    """+1 / -1 from SMA5(VIX - 100 sqrt(252) std10(ln SPX returns, ddof 1)) > 0."""
    vix = _cboe(shared_data / "cboe_vix_index" / "VIX_History.csv")
    spx_file = pd.read_csv(shared_data / "spx_index" / "GSPC_yahoo.csv", parse_dates=["Date"])
    spx = spx_file.set_index("Date")["Close"]
    hv = np.log(spx).diff().rolling(10).std(ddof=1) * np.sqrt(252) * 100.0
    premium = (vix - hv).dropna()
    return np.sign(premium.rolling(5).mean()).dropna()


INDEPENDENT = {"vratio": (_independent_vratio, 10), "vrp": (_independent_vrp, 15)}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_real_cooper_configs_decide_on_their_first_bar(shared_data, monkeypatch, name):
    """The first traded bar 2010-11-30 has a decision, and the first 40 bars' decisions equal
    the independent recomputation (the signal on its own dates, read as of each traded day)."""
    res = _real(shared_data, monkeypatch, name)
    cal = res.weights.index
    assert cal[0] == pd.Timestamp("2010-11-30")
    assert res.metrics["first_decision"] == "2010-11-30"
    assert res.weights.iloc[0].notna().all()
    state = INDEPENDENT[name][0](shared_data)
    expected = state.reindex(state.index.union(cal)).ffill().reindex(cal[:40])
    engine = np.where(res.weights["xiv"].iloc[:40] == 1.0, 1.0, -1.0)
    np.testing.assert_array_equal(engine, expected.to_numpy())
    # the trade follows at the next close (next_close), on 2010-12-01
    assert res.transactions["date"].iloc[0] == pd.Timestamp("2010-12-01")
    warm = res.metrics["warmup"]
    assert warm["setting"] == "auto" and warm["bars"] > 500
    assert set(warm["signals"]) == set(res.config.plan.inputs())


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(INDEPENDENT))
def test_real_warmup_none_restores_the_cash_weeks(shared_data, monkeypatch, name):
    """warmup: none: no decision until the window fills on the trading calendar (bar 10 for
    VRatio, 15 for VRP); from then on the decisions are those of warmup: auto."""
    auto = _real(shared_data, monkeypatch, name)
    none = _real(shared_data, monkeypatch, name, warmup="none")
    first = INDEPENDENT[name][1] - 1
    assert none.weights.iloc[:first].isna().all().all()
    assert none.weights.iloc[first].notna().all()
    assert none.metrics["first_decision"] == f"{auto.weights.index[first]:%Y-%m-%d}"
    assert none.metrics["warmup"] == {"setting": "none", "bars": 0, "from": None, "signals": {}}
    pd.testing.assert_frame_equal(none.weights.iloc[first:], auto.weights.iloc[first:])
    assert auto.equity.iloc[-1] != none.equity.iloc[-1]


# --------------------------------------------------------------------------- embedded market
def test_embedded_bars_before_start_are_warmup():
    """The embedded market's bars before data.start are the warm-up; with data.start at the
    market's start there is none."""
    cfg = embedded_cfg("vratio")
    market = market_for(cfg)
    whole = market_for(embedded_cfg("vratio", start=None))
    assert market.calendar[0] >= pd.Timestamp(START)
    before = whole.calendar[whole.calendar < market.calendar[0]]
    pd.testing.assert_index_equal(market.warmup.index, before, check_names=False)
    np.testing.assert_array_equal(
        market.warmup["vix"].to_numpy(), whole.frames["vix"]["close"].loc[before].to_numpy()
    )
    assert whole.n_warmup == 0 and whole.warmup is None
    assert decisions(cfg).iloc[0].notna().all()


WARMUP_STRATEGIES = ("vratio", "vrp", "stdlvix", "momentum", "ou_pairs", "roll_yield")


@pytest.mark.parametrize("name", WARMUP_STRATEGIES)
@given(offset=st.integers(0, 300))
@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_decisions_do_not_depend_on_where_data_starts(name, offset):
    """A decision on a day is the same whatever data.start is (warmup: auto): the market that
    starts later sees the earlier bars as warm-up."""
    full = decisions(embedded_cfg(name, start=None))
    start = full.index[offset]
    later = decisions(embedded_cfg(name, start=f"{start:%Y-%m-%d}"))
    pd.testing.assert_frame_equal(later, full.loc[start:], check_freq=False)


@pytest.mark.parametrize("bars", [0, 4, 9])
def test_warmup_bars_limit_the_history(bars):
    """warmup: N gives N bars; VRatio's SMA10 needs 10 values, so it first decides on traded
    bar 10 - N (1-based)."""
    cfg = embedded_cfg("vratio", warmup=bars)
    assert market_for(cfg).n_warmup == bars
    w = decisions(cfg)
    first = int(np.flatnonzero(w.notna().all(axis=1).to_numpy())[0])
    assert first == max(0, 9 - bars)


def _with_warmup(market: Market, warmup: pd.DataFrame) -> Market:
    return Market(
        market.calendar,
        market.frames,
        market.tradable,
        market.source,
        market.notes,
        warmup,
        market.warmup_setting,
    )


@pytest.mark.parametrize("fill", ["next_close", "next_open"])
def test_the_warmup_is_read_by_both_executors(fill):
    """Raising VIX3M on the warm-up bars makes VRatio's first decisions short vol (XIV) in the
    event-driven run (runonce and next) and the vectorised run alike."""
    cfg = embedded_cfg("vratio", fill)
    market = market_for(cfg)
    bumped = market.warmup.copy()
    bumped["vix3m"] *= 3.0
    lifted = _with_warmup(market, bumped)
    flat = market.warmup.copy()
    flat["vix3m"] = flat["vix"] * 0.5
    dropped = _with_warmup(market, flat)
    for m, expect in ((lifted, 1.0), (dropped, 0.0)):
        ref = run_backtest(cfg, market=m)
        assert ref.weights["xiv"].iloc[0] == expect
        other = run_backtest(cfg, market=m, runonce=False, preload=False)
        fast = fast_backtest(cfg, m)
        np.testing.assert_array_equal(ref.weights.to_numpy(), other.weights.to_numpy())
        np.testing.assert_array_equal(ref.weights.to_numpy(), fast.weights.to_numpy())
        pd.testing.assert_series_equal(ref.equity, other.equity)
        np.testing.assert_allclose(fast.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("name", strategies.share_names())
def test_fast_path_equals_event_driven_with_warmup(name):
    """Conformance with pre-start history, for every registered strategy (chain series too)."""
    cfg = embedded_cfg(name)
    market = market_for(cfg)
    assert market.n_warmup > 100
    ev = run_backtest(cfg, market=market)
    fast = fast_backtest(cfg, market)
    np.testing.assert_array_equal(ev.weights.to_numpy(), fast.weights.to_numpy())
    np.testing.assert_allclose(fast.equity.to_numpy(), ev.equity.to_numpy(), rtol=1e-9)
    assert ev.metrics["first_decision"] == fast.metrics["first_decision"]
    assert ev.metrics["warmup"] == fast.metrics["warmup"]


def test_metrics_and_notes_report_the_warmup(tmp_path):
    """metrics.json: the setting, the bars (and first date) of history each input used, the
    first decision; the notes say the same in words."""
    res = run_backtest(embedded_cfg("vrp"))
    meta = json.loads((write_run(res, tmp_path) / "metrics.json").read_text())
    market = market_for(embedded_cfg("vrp"))
    first_warm = f"{market.warmup.index[0]:%Y-%m-%d}"
    assert meta["warmup"] == {
        "setting": "auto",
        "bars": market.n_warmup,
        "from": first_warm,
        "signals": {n: {"bars": market.n_warmup, "from": first_warm} for n in ("vix", "spx")},
    }
    assert meta["first_decision"] == f"{market.calendar[0]:%Y-%m-%d}"
    notes = meta["market_notes"]
    assert any(n.startswith("vix: ") and "bars of history before" in n for n in notes)
    assert any(n.startswith("first decision ") and "data.warmup: auto" in n for n in notes)
    assert (tmp_path / res.label / "metrics.json").exists()


def test_momentum_reads_only_history_that_exists():
    """Momentum reads its ETNs: an ETN without history before data.start stays unknown in the
    warm-up (NaN), the other's history is used."""
    cfg = embedded_cfg("momentum")
    market = market_for(cfg)
    frames = {n: market_for(embedded_cfg("momentum", start=None)).frames[n] for n in ("xiv", "vxx")}
    frames["xiv"] = frames["xiv"].loc[START:]
    own = Market.from_frames(frames, tradable=("xiv", "vxx"), start=START)
    assert own.n_warmup == market.n_warmup
    assert own.warmup["xiv"].isna().all() and own.warmup["vxx"].notna().all()
    none = Market.from_frames(frames, tradable=("xiv", "vxx"), start=START, warmup="none")
    assert none.n_warmup == 0


@pytest.mark.parametrize("value", [-1, "all", 2.5])
def test_bad_warmup_is_a_config_error(value):
    with pytest.raises(ConfigError, match="warmup"):
        embedded_cfg("vratio", warmup=value)
