"""The shared filter mechanism and the option-chain framework (feed, chain indicator, derived
inputs), exercised with a toy chain series registered by the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volbacktest.engine.caches import clear_caches
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.inputs import chainseries, filters
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.run.runner import run_backtest


# ---------------------------------------------------------------------------- gate semantics
def test_flatten_zeroes_flagged_rows_only():
    w = np.array([[1.0, 0.0], [1.0, 0.0], [np.nan, np.nan], [0.0, 1.0]])
    out = filters.gate(w, np.array([False, True, True, False]), "flatten")
    np.testing.assert_array_equal(out, [[1, 0], [0, 0], [np.nan, np.nan], [0, 1]])


def test_block_entries_allows_exits_and_blocks_entries():
    w = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.0], [1.0, 0.0]])
    flag = np.array([False, True, False, True, True, False])
    out = filters.gate(w, flag, "block_entries")
    # bar1: entry blocked; bar2: entry allowed; bar3: switch → exit allowed, new entry blocked;
    # bar4: re-entry blocked; bar5: allowed
    np.testing.assert_array_equal(out, [[0, 0], [0, 0], [1, 0], [0, 0], [0, 0], [1, 0]])


def test_block_entries_allows_reductions():
    w = np.array([[1.0], [0.5], [0.8], [-0.3]])
    out = filters.gate(w, np.array([False, True, True, True]), "block_entries")
    np.testing.assert_array_equal(out, [[1.0], [0.5], [0.5], [0.0]])


@given(
    w=st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0]), min_size=2, max_size=40),
    flags=st.lists(st.booleans(), min_size=40, max_size=40),
    cut=st.integers(1, 40),
)
@settings(max_examples=100, deadline=None)
def test_gate_is_prefix_stable(w, flags, cut):
    w = np.array(w)[:, None]
    f = np.array(flags[: len(w)])
    for action in ("block_entries", "flatten"):
        full = filters.gate(w, f, action)
        np.testing.assert_array_equal(full[:cut], filters.gate(w[:cut], f[:cut], action))


# ---------------------------------------------------------------------------- toy chain series
def _toy_chain(spx: pd.DataFrame) -> pd.DataFrame:
    """Two strikes a day around the SPX close; 'close' is 1% of the strike times a daily factor."""
    rows = []
    rng = np.random.default_rng(0)
    for day, s in spx["close"].items():
        f = rng.uniform(0.5, 1.5)
        for k in (0.95 * s, 1.05 * s):
            for cp in ("C", "P"):
                rows.append((day, day + pd.Timedelta(days=30), cp, k, s, 0.01 * k * f))
    return pd.DataFrame(
        rows, columns=["trade_date", "expiry", "cp", "strike", "underlying", "close"]
    )


def _toy_compute(chain: pd.DataFrame, context) -> pd.DataFrame:
    g = chain.assign(rel=chain["close"] / chain["underlying"]).groupby("trade_date")["rel"]
    out = pd.DataFrame({"toy_level": g.mean()})
    out["toy_change"] = out["toy_level"].diff()  # needs the previous date: lookback 1
    return out


@pytest.fixture
def toy_registry(monkeypatch):
    from volbacktest.data.synthetic import market_frames

    def load_synth(seed, start, end):
        spx = market_frames(seed=seed, start=start, end=end)["spx"]
        return _toy_chain(spx), chainseries.ChainContext(source="synthetic")

    monkeypatch.setitem(
        chainseries.CHAIN_DATASETS,
        "toy_options",
        chainseries.ChainDatasetSpec(
            "toy_options", "spx", load_shared=None, load_synthetic=load_synth
        ),
    )
    spec = chainseries.ChainSeriesSpec(
        "toy", ("toy_level", "toy_change"), _toy_compute, lookback_days=1
    )
    monkeypatch.setitem(chainseries.SERIES, "toy_level", spec)
    monkeypatch.setitem(chainseries.SERIES, "toy_change", spec)

    class ToyFilter(filters.ThresholdFilter):
        def series(self):
            return "toy_change@toy_options"

        def describe(self):
            return f"toy_change > {self.threshold} → {self.action}"

    monkeypatch.setitem(filters.FILTERS, "toy", filters.FilterSpec("toy", ToyFilter, "test"))
    clear_caches("inputs.chainseries")
    yield
    clear_caches("inputs.chainseries")


def _cfg(**extra):
    raw = {
        "name": "toy",
        "strategy": {"name": "buy_and_hold", "params": {"asset": "spx"}},
        "data": {"synthetic": {"seed": 3, "start": "2010-01-04", "end": "2011-06-30"}},
        "report": {"tearsheet": False, "plots": False},
    }
    raw.update(extra)
    return config_from_mapping(raw)


def test_chain_filter_runs_and_modes_agree(toy_registry):
    cfg = _cfg(filters=[{"type": "toy", "threshold": 0.003, "action": "flatten"}])
    assert cfg.plan.inputs() == ("spx", "toy_change@toy_options")
    ref = run_backtest(cfg)
    base = run_backtest(_cfg())
    assert ref.metrics["trades"] > base.metrics["trades"]  # the filter bites
    assert "filter: toy_change > 0.003" in ref.metrics["rule"]
    for runonce, preload in ((False, True), (False, False)):
        other = run_backtest(cfg, runonce=runonce, preload=preload)
        np.testing.assert_array_equal(ref.weights.to_numpy(), other.weights.to_numpy())
        pd.testing.assert_series_equal(ref.equity, other.equity)


def test_chain_feed_is_point_in_time(toy_registry):
    from volbacktest.engine.execution.bt import OptionChainFeed

    chain, ctx = chainseries.load_chain("toy_options", _cfg().data)
    frame = pd.DataFrame(
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0},
        index=pd.DatetimeIndex(sorted(chain["trade_date"].unique())),
    )
    feed = OptionChainFeed(frame=frame, chain=chain, context=ctx, chain_name="toy_options")
    day = frame.index[5]
    got = feed.chain_between(frame.index[0], day)
    assert got["trade_date"].max() == day
    assert len(got) == 6 * 4


def test_filter_config_errors(toy_registry):
    with pytest.raises(ConfigError, match=r"filters\.0\.type: unknown filter type 'tyo'.*'toy'"):
        _cfg(filters=[{"type": "tyo", "threshold": 1}])
    with pytest.raises(ConfigError, match=r"filters\.0\.treshold: unknown key.*'threshold'"):
        _cfg(filters=[{"type": "toy", "treshold": 1}])
    with pytest.raises(ConfigError, match=r"filters\.0\.action: invalid value 'flat'"):
        _cfg(filters=[{"type": "toy", "threshold": 1, "action": "flat"}])


def test_unknown_chain_input_is_a_config_error(toy_registry):
    with pytest.raises(ConfigError, match="unknown option-chain dataset 'nope'"):
        chainseries.parse_input("toy_level@nope")


def test_a_chain_filter_needs_the_chain_underlying_as_a_traded_asset():
    """rnd_tail reads a series of the 50ETF chain through the option-chain feed of etf50: on a
    strategy that trades XIV/VXX the config is refused up front, naming the chain and the fix."""
    with pytest.raises(ConfigError) as err:
        config_from_mapping(
            {
                "name": "x",
                "strategy": {"name": "vratio"},
                "filters": [{"type": "rnd_tail", "threshold": 0.1}],
            }
        )
    msg = str(err.value)
    assert msg.startswith("filters.0: rnd_left_tail@etf50_options")
    assert (
        "chain 'etf50_options' has underlying 'etf50' but the strategy trades 'xiv' and 'vxx'"
        in msg
    )
