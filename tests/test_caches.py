"""The process-wide caches sit behind one object: listed, emptied and switched off by name."""

from __future__ import annotations

import pytest

from volbacktest.data.embedded import GENERATOR_OF
from volbacktest.engine.caches import CACHES, Caches, clear_caches
from volbacktest.engine.inputs import market as market_mod
from volbacktest.engine.inputs import options_series
from volbacktest.engine.inputs.config import config_from_mapping

SHORT = {"synthetic": {"seed": 3, "start": "2012-01-03", "end": "2012-12-31"}}


def test_every_process_wide_cache_is_registered():
    names = set(CACHES.names())
    for expected in (
        "inputs.market.embedded",
        "inputs.market.files",
        "inputs.chainseries.series",
        options_series.PER_DATE_CACHE,
        options_series.MODEL_CACHE,
        "data.synthetic.markets",
        "data.calendars.nyse",
    ):
        assert expected in names


def test_clear_by_name_prefix_and_all():
    cfg = config_from_mapping({"name": "c", "strategy": {"name": "vratio"}, "data": SHORT})
    market_mod.market_for(cfg)
    info = market_mod._embedded_group.cache_info
    assert info().currsize >= 1
    clear_caches("inputs.market")  # a dotted prefix
    assert info().currsize == 0
    market_mod.market_for(cfg)
    assert info().currsize == 1 and info().misses == 1
    market_mod.market_for(cfg)
    assert info().misses == 1  # the second run reuses the generated market
    clear_caches()
    assert info().currsize == 0
    with pytest.raises(KeyError, match="no cache named 'nope'"):
        clear_caches("nope")


def test_a_vratio_run_builds_only_the_us_volatility_market(monkeypatch):
    """The embedded market builds the generators a config names, not the 50ETF path or the pair."""
    built = []
    original = market_mod.embedded_frames

    def probe(names, seed, start, end):
        built.append(GENERATOR_OF[names[0]])
        return original(names, seed, start, end)

    monkeypatch.setattr(market_mod, "embedded_frames", probe)
    clear_caches("inputs.market")
    cfg = config_from_mapping({"name": "c", "strategy": {"name": "vratio"}, "data": SHORT})
    market_mod.market_for(cfg)
    assert built == ["us_volatility"]
    clear_caches("inputs.market")


def test_disabled_is_scoped_and_nests():
    caches = Caches()
    caches.register("a.b", lambda: None)
    assert caches.enabled("a.b")
    with caches.disabled("a.b"):
        assert not caches.enabled("a.b")
        with caches.disabled("a.b"):
            assert not caches.enabled("a.b")
        assert not caches.enabled("a.b")
    assert caches.enabled("a.b")
