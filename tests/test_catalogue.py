"""Dataset catalogue (data/catalogue.py): names, search roots, error messages, every dataset."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from volbacktest.data import catalogue as C
from volbacktest.data.loaders import STANDARD_COLUMNS
from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError

# names the issue and the synthetic market use; the engine dispatches on them
REQUIRED_NAMES = {
    "vix", "vix3m", "vix9d", "vix6m", "spx", "xiv", "vxx", "vxx_raw", "svxy", "ziv", "vxz",
    "vx1", "vx2", "gld", "gdx", "etf50", "etf50_qfq",
}  # fmt: skip
SIGNALS = {"vix", "vix3m", "vix9d", "vix6m", "spx", "vx1", "vx2", "vx1_cfe"}
CLOSE_ONLY = {"xiv", "vx1", "vx2"}


def test_catalogue_names_and_kinds():
    names = {spec.name for spec in C.list_datasets()}
    assert REQUIRED_NAMES <= names
    for spec in C.list_datasets():
        assert spec.kind == ("signal" if spec.name in SIGNALS else "tradable"), spec.name
        assert spec.files and all(not Path(f).is_absolute() for f in spec.files)
        assert pd.Timestamp(spec.start) < pd.Timestamp(spec.end)
        assert spec.name in str(spec) and spec.kind in str(spec)
    assert [s.name for s in C.list_datasets()] == sorted(names)


def test_specs_are_frozen_and_picklable():
    spec = C.DATASETS["xiv"]
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    clone = pickle.loads(pickle.dumps(spec))
    assert clone.name == "xiv" and clone.files == spec.files


@pytest.mark.parametrize("name", sorted(C.DATASETS))
def test_every_dataset_loads_from_shared_data(shared_data, name):
    spec = C.DATASETS[name]
    frame = C.load_dataset(name, roots=[shared_data])
    assert list(frame.columns[:5]) == list(STANDARD_COLUMNS)
    assert all(frame[c].dtype == np.float64 for c in frame.columns)
    assert frame.index.name == "date" and frame.index.tz is None
    assert frame.index.dtype == "datetime64[ns]"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert frame.index[0] == pd.Timestamp(spec.start)
    assert frame.index[-1] == pd.Timestamp(spec.end)
    assert frame["close"].notna().all() and (frame["close"] > 0).all()
    assert frame.attrs["dataset"] == name and frame.attrs["kind"] == spec.kind
    assert frame.attrs["files"] == tuple(str(shared_data / f) for f in spec.files)
    assert frame.attrs["has_open"] == bool(frame["open"].notna().all())
    # sane daily moves: no unadjusted split or x10 scale change left in the close
    if spec.kind == "tradable":
        moves = frame["close"].pct_change().abs()
        # real moves: SVXY -83 % on 2018-02-06; the settle-based short-term index behind the
        # simulated notes rose 96 % on 2018-02-05 (settles at 16:15 ET, after the crash)
        allowed = {
            "svxy": {pd.Timestamp("2018-02-06")},
            "xiv_sim": {pd.Timestamp("2018-02-05")},
            "vxx_sim": {pd.Timestamp("2018-02-05")},
            "svxy_sim": {pd.Timestamp("2018-02-05")},
        }.get(name, set())
        assert set(moves.index[(moves > 0.45).to_numpy()]) == allowed
    else:  # volatility indexes can triple in a day (VIX9D 2018-02-05), never x4
        assert np.log(frame["close"]).diff().abs().max() < np.log(4)


def test_close_only_series_say_so(shared_data):
    for name in CLOSE_ONLY:
        frame = C.load_dataset(name, roots=[shared_data])
        assert frame["open"].isna().all(), name  # never open = close
        assert frame["high"].isna().all() and frame["low"].isna().all()
        assert frame.attrs["has_open"] is False
    assert C.load_dataset("vxx", roots=[shared_data]).attrs["has_open"] is True


def test_vx_series_come_from_the_continuous_file(shared_data):
    from volbacktest.data.loaders import load_vix_futures_continuous

    curve = load_vix_futures_continuous(shared_data / C.DATASETS["vx1"].files[0])
    vx1 = C.load_dataset("vx1", roots=[shared_data])
    vx2 = C.load_dataset("vx2", roots=[shared_data])
    pd.testing.assert_series_equal(vx1["close"], curve["vx1"], check_names=False)
    pd.testing.assert_series_equal(vx2["close"], curve["vx2"], check_names=False)
    assert "settlement day" in vx1.attrs["roll"]
    assert "ON the final settlement day" in C.DATASETS["vx1"].notes


def test_vix3m_is_spliced_and_quiet_about_the_known_half_day(shared_data):
    vix3m = C.load_dataset("vix3m", roots=[shared_data])  # warnings are errors here
    assert vix3m.loc["2008-06-02", "close"] > 0  # only in the old file
    assert vix3m.loc["2009-11-27", "close"] == pytest.approx(26.15)  # new file preferred
    assert C.load_dataset("vxv", roots=[shared_data]).equals(vix3m)


def test_split_datasets_carry_their_splits(shared_data):
    vxx_raw = C.load_dataset("vxx_raw", roots=[shared_data])
    assert [f"{s.date:%Y-%m-%d}" for s in vxx_raw.attrs["splits"]] == [
        "2010-11-09",
        "2012-10-05",
        "2013-11-08",
        "2016-08-09",
    ]
    ziv = C.load_dataset("ziv", roots=[shared_data])
    assert [(f"{s.date:%Y-%m-%d}", s.ratio) for s in ziv.attrs["splits"]] == [("2011-06-27", 8)]


def test_gld_gdx_expose_total_return_and_traded_close(shared_data):
    gdx = C.load_dataset("gdx", roots=[shared_data])
    assert (gdx["close"] <= gdx["raw_close"] + 1e-9).all()  # dividend-adjusted below traded
    assert gdx["close"].iloc[-1] == pytest.approx(gdx["raw_close"].iloc[-1])
    gld = C.load_dataset("gld", roots=[shared_data])
    np.testing.assert_allclose(gld["close"], gld["raw_close"])  # GLD pays no dividends


def test_start_end_window(shared_data):
    frame = C.load_dataset("xiv", roots=[shared_data], start="2012-01-01", end="2012-12-31")
    assert frame.index[0] == pd.Timestamp("2012-01-03")
    assert frame.index[-1] == pd.Timestamp("2012-12-31")
    assert frame.attrs["dataset"] == "xiv" and not frame.attrs["has_open"]
    with pytest.raises(ConfigError, match="start 2013-01-01 is after end 2012-01-01"):
        C.load_dataset("xiv", roots=[shared_data], start="2013-01-01", end="2012-01-01")
    with pytest.raises(ConfigError, match="start='2012-13-01' is not a date; write it as"):
        C.load_dataset("xiv", roots=[shared_data], start="2012-13-01")
    with pytest.raises(DataError, match=r"no rows between 2019-01-01.*covers 2010-11-30"):
        C.load_dataset("xiv", roots=[shared_data], start="2019-01-01")


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ConfigError) as err:
        C.load_dataset("vix3n")
    msg = str(err.value)
    assert "unknown dataset 'vix3n'" in msg and "Did you mean 'vix3m'" in msg
    for name in REQUIRED_NAMES:
        assert name in msg
    with pytest.raises(ConfigError, match="Did you mean 'xiv'"):
        C.dataset_spec("XIV ETN")
    assert C.dataset_spec(" VXX ").name == "vxx"
    assert C.dataset_spec("vxst").name == "vix9d"


def test_missing_file_names_the_path_and_every_root(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    gone = tmp_path / "gone"
    with pytest.raises(DataNotFoundError) as err:
        C.load_dataset("vix", roots=[gone, empty])
    msg = str(err.value)
    assert "cboe_vix_index/VIX_History.csv" in msg
    assert f"{gone} (given; does not exist)" in msg and f"{empty} (given; exists)" in msg
    assert "data.root" in msg and "VOLBT_DATA_ROOT" in msg


def test_missing_file_lists_roots_with_their_origin(tmp_path, monkeypatch):
    monkeypatch.setenv(C.ENV_DATA_ROOT, str(tmp_path / "env_root"))
    monkeypatch.setattr(C, "DEFAULT_DATA_ROOT", tmp_path / "default_root")
    roots = C.search_roots(tmp_path / "cfg_root")
    assert list(roots) == []
    with pytest.raises(DataNotFoundError) as err:
        C.resolve_files(C.DATASETS["xiv"], roots)
    msg = str(err.value)
    assert f"{tmp_path / 'cfg_root'} (config data.root; does not exist)" in msg
    assert f"{tmp_path / 'env_root'} ($VOLBT_DATA_ROOT; does not exist)" in msg
    assert f"{tmp_path / 'default_root'} (default ../shared/data; does not exist)" in msg


def test_search_roots_order_and_filtering(tmp_path, monkeypatch):
    cfg, env1, env2 = (tmp_path / n for n in ("cfg", "env1", "env2"))
    cfg.mkdir()
    env2.mkdir()
    monkeypatch.setenv(C.ENV_DATA_ROOT, f"{env1}{__import__('os').pathsep}{env2}")
    roots = C.search_roots(cfg)
    assert [origin for origin, _ in roots.candidates] == [
        "config data.root",
        "$VOLBT_DATA_ROOT",
        "$VOLBT_DATA_ROOT",
        "default ../shared/data",
    ]
    assert [path for _, path in roots.candidates][:3] == [cfg, env1, env2]
    expected = [cfg, env2] + ([C.DEFAULT_DATA_ROOT] if C.DEFAULT_DATA_ROOT.is_dir() else [])
    assert list(roots) == expected
    monkeypatch.delenv(C.ENV_DATA_ROOT)
    assert [o for o, _ in C.search_roots().candidates] == ["default ../shared/data"]
    assert C.DEFAULT_DATA_ROOT == Path(C.__file__).resolve().parents[1].parent / "shared" / "data"


def test_no_default_root_outside_a_source_checkout(tmp_path, monkeypatch):
    """A wheel install has no checkout: nothing is searched beside site-packages."""
    assert C.source_checkout() == Path(C.__file__).resolve().parents[1]  # tests run from one
    monkeypatch.delenv(C.ENV_DATA_ROOT, raising=False)
    monkeypatch.setattr(C, "DEFAULT_DATA_ROOT", None)
    roots = C.search_roots()
    assert list(roots) == [] and roots.candidates == ()
    with pytest.raises(DataNotFoundError, match="--data-root"):
        C.resolve_files(C.DATASETS["vix"], roots)


def test_an_explicit_root_is_the_only_root(tmp_path, shared_data):
    roots = C.roots_for(tmp_path / "nowhere")
    assert list(roots) == [] and [o for o, _ in roots.candidates] == ["config data.root"]
    assert list(C.roots_for(shared_data)) == [shared_data.resolve()]


def test_first_root_holding_a_file_wins(tmp_path, shared_data):
    local = tmp_path / "cboe_vix_index"
    local.mkdir()
    (local / "VIX_History.csv").write_text(
        "DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2020,12,13,11,12.5\n01/03/2020,12.5,14,12,13.5\n"
    )
    mine = C.load_dataset("vix", roots=[tmp_path, shared_data])
    assert list(mine["close"]) == [12.5, 13.5]
    assert C.load_dataset("vix", roots=[tmp_path / "nope", shared_data]).shape[0] == 8484
    # through the config root
    via_config = C.load_dataset("vix", roots=C.search_roots(tmp_path))
    assert list(via_config["close"]) == [12.5, 13.5]
