"""Chain loaders, validation, policy and partitioned storage (data/chains.py, data/rates.py).

Counts asserted for the shared files come from their PROVENANCE.md (written by whoever fetched
the data, not by this code) or are recomputed here from the raw CSV with plain pandas.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from volbacktest.data.chains import (
    CHAIN_COLUMNS,
    ChainPolicy,
    apply_policy,
    decode_cboe_symbol,
    load_50etf_contracts,
    load_50etf_options,
    load_gs_options,
    load_spx_quote_table,
    load_whitepaper_2009,
    load_whitepaper_2019,
    policy_report,
    read_partitioned,
    validate_chain,
    write_partitioned,
)
from volbacktest.data.rates import load_shibor
from volbacktest.engine.calculators.chain_rules import counts_by_period, sse_offgrid_strike
from volbacktest.engine.calculators.rates import SHIBOR_TENOR_DAYS, shibor_curve_rate
from volbacktest.engine.errors import DataError, DataNotFoundError, DataQualityWarning

ETF = "china_50etf/50etf_options_daily_joinquant__TanTzs.csv"
ETF_CLOSE = "china_50etf/510050_daily_unadjusted__zsh-a.csv"
ETF_LIST = "china_50etf/50ETF_options_contract_list__zhenfelix.csv"
GS = "us_option_chains/option_GS_df.csv"
SPX = "us_option_chains/SPX-Options-24jan2011.csv"
WP = "vix_whitepaper_example"
SHIBOR = "china_50etf/shibor__Alexdachen.csv"


def _assert_schema(df: pd.DataFrame) -> None:
    assert list(df.columns[: len(CHAIN_COLUMNS)]) == list(CHAIN_COLUMNS)
    assert df["trade_date"].dtype == "datetime64[ns]"
    assert df["expiry"].dtype == "datetime64[ns]"
    assert set(df["cp"].unique()) <= {"C", "P"}
    assert df["strike"].dtype == np.float64
    assert (df["trade_date"] == df["trade_date"].dt.normalize()).all()


# ---------------------------------------------------------------------------- 50ETF


@pytest.fixture(scope="module")
def etf_raw(shared_data):
    return load_50etf_options(shared_data / ETF, shared_data / ETF_CLOSE, policy=None)


def test_50etf_raw_counts_match_provenance(etf_raw):
    _assert_schema(etf_raw)
    assert len(etf_raw) == 288_756
    assert etf_raw["trade_date"].nunique() == 2_254
    assert etf_raw["expiry"].nunique() == 114
    assert (etf_raw["cp"] == "C").sum() == 144_378
    assert etf_raw["trade_date"].min() == pd.Timestamp("2015-02-09")
    assert etf_raw["trade_date"].max() == pd.Timestamp("2024-05-21")
    rep = validate_chain(etf_raw, source="50etf")
    assert rep.nan_price.count == 1_223
    assert rep.expired.count == 0
    assert rep.crossed.count == 0  # closes only: no quotes to cross
    # 1,988 keys held twice (standard + adjusted contract with the same rounded strike)
    assert rep.duplicates.count == 2 * 1_988
    assert rep.duplicates.examples[0].split()[2:4] == ["2016-12-06", "C"]
    # every 3-decimal strike is flagged adjusted; more are (2-decimal strikes off the SSE grid)
    three_dec = np.abs(etf_raw["strike"] * 100 - np.round(etf_raw["strike"] * 100)) > 1e-9
    assert three_dec.sum() == 91_748
    assert etf_raw.loc[three_dec, "adjusted"].all()
    assert rep.adjusted.count > 91_748


def test_50etf_underlying_and_cp_from_raw_file(shared_data, etf_raw):
    raw = pd.read_csv(shared_data / ETF)
    close = pd.read_csv(shared_data / ETF_CLOSE, index_col="datetime")["close"]
    first = raw.iloc[0]
    row = etf_raw.loc[
        (etf_raw["trade_date"] == pd.Timestamp(first["交易日期"]))
        & (etf_raw["expiry"] == pd.Timestamp(first["到期日期"]))
        & (etf_raw["strike"] == first["执行价"])
        & (etf_raw["cp"] == ("C" if first["类型"] == "看涨" else "P"))
    ]
    assert len(row) == 1
    assert row["close"].iloc[0] == first["收盘价"]
    assert row["underlying"].iloc[0] == close[first["交易日期"]]
    assert etf_raw["underlying"].notna().all()  # provenance: every option date has an ETF row


def test_50etf_default_policy_warns_with_counts(shared_data):
    with pytest.warns(DataQualityWarning, match=r"nan_price: 1223.*key \(keep_standard\)"):
        df = load_50etf_options(shared_data / ETF)
    assert len(df) == 288_756 - 1_223 - 1_988
    assert not df.duplicated(["trade_date", "cp", "expiry", "strike"]).any()
    assert df["close"].notna().all()
    # per year: what was dropped and kept (README "VIX and iVIX" table)
    rep = policy_report(df)
    assert list(rep.index) == [str(y) for y in range(2015, 2025)]
    assert rep["rows"].sum() == 288_756 and rep["kept"].sum() == len(df)
    assert rep["dropped: nan_price"].sum() == 1_223
    twins = rep["dropped: duplicate key (keep_standard)"]
    assert twins.sum() == 1_988 and twins[["2015", "2020", "2024"]].eq(0).all()
    assert rep.loc["2015", "kept: adjusted"] == 0 and rep["kept: adjusted"].sum() == int(
        df["adjusted"].sum()
    )


def test_50etf_repeated_keys_are_told_apart_by_listing_order(shared_data, etf_raw):
    """Each of the 1,988 repeated keys is a standard and an adjusted contract: the contract
    list has exactly two live contracts per key, the lower code (listed before the ex-dividend
    date) an "A" contract; the file lists each date's contracts in code order, so the loader
    flags the first row adjusted and keeps the last as the standard one."""
    lst = load_50etf_contracts(shared_data / ETF_LIST)
    key = ["trade_date", "cp", "expiry", "strike"]
    dup = etf_raw[etf_raw.duplicated(key, keep=False)]
    assert len(dup) == 2 * 1_988
    assert dup["adjusted"].sum() == 1_988
    assert not dup.duplicated([*key, "adjusted"]).any()  # one standard + one adjusted per key
    milli = np.rint(lst["strike"] * 1000).astype(np.int64)
    live = dup.assign(milli=np.rint(dup["strike"] * 1000).astype(np.int64)).merge(
        lst.assign(milli=milli)[["cp", "expiry", "milli", "contract", "adjusted", "list_date"]],
        on=["cp", "expiry", "milli"],
        suffixes=("", "_list"),
    )
    live = live.loc[live["list_date"] <= live["trade_date"]]
    per_key = live.groupby([*key, "adjusted"])
    assert (per_key.size() == 2).all()  # both rows of a key see the same two live contracts
    lowest = live.loc[live.groupby(key)["contract"].transform("min") == live["contract"]]
    assert lowest["adjusted_list"].all()
    highest = live.loc[live.groupby(key)["contract"].transform("max") == live["contract"]]
    assert not highest["adjusted_list"].any()
    # file order = contract-code order on the rows whose key names one contract
    raw = pd.read_csv(shared_data / ETF, usecols=[0, 1, 2, 3])
    raw.columns = ["trade_date", "cp", "expiry", "strike"]
    raw = raw.assign(
        cp=raw["cp"].map({"看涨": "C", "看跌": "P"}),
        trade_date=pd.to_datetime(raw["trade_date"]),
        expiry=pd.to_datetime(raw["expiry"]),
        milli=np.rint(raw["strike"] * 1000).astype(np.int64),
        pos=np.arange(len(raw)),
    )
    coded = raw.merge(
        lst.assign(milli=milli)[["cp", "expiry", "milli", "contract", "list_date"]],
        on=["cp", "expiry", "milli"],
    )
    coded = coded.loc[coded["list_date"] <= coded["trade_date"]]
    coded = coded.loc[coded.groupby("pos")["contract"].transform("size") == 1]
    code = coded.sort_values("pos")["contract"].str.slice(0, 8).astype(np.int64)
    grp = coded.sort_values("pos")[["trade_date", "cp"]]
    step = code.groupby([grp["trade_date"], grp["cp"]]).diff()
    assert (step.dropna() > 0).all()


def test_50etf_contract_list(shared_data):
    lst = load_50etf_contracts(shared_data / ETF_LIST)
    assert len(lst) == 4_292
    assert lst["adjusted"].sum() == 808
    first = lst.iloc[0]
    assert (first["cp"], first["strike"], first["expiry"]) == ("C", 2.2, pd.Timestamp("2015-03-25"))
    # no standard contract is off the SSE strike grid; most adjusted ones are
    assert not sse_offgrid_strike(lst.loc[~lst["adjusted"], "strike"]).any()
    assert sse_offgrid_strike(lst.loc[lst["adjusted"], "strike"]).sum() == 808 - 30
    with pytest.warns(DataQualityWarning):
        df = load_50etf_options(
            shared_data / ETF, shared_data / ETF_CLOSE, contracts_path=shared_data / ETF_LIST
        )
    code = df.loc[
        (df["trade_date"] == "2015-02-09") & (df["cp"] == "C") & (df["strike"] == 2.2), "contract"
    ]
    assert code.iloc[0] == "10000001.XSHG"
    assert (df.loc[df["adjusted"], "multiplier"].isna()).all()


def test_sse_grid_rule():
    k = np.array([2.0, 2.05, 2.006, 2.46, 3.1, 3.24, 3.25, 5.25, 2.25])
    assert sse_offgrid_strike(k).tolist() == [
        False,
        False,
        True,
        True,
        False,
        True,
        True,
        False,
        False,
    ]


def test_50etf_bad_header_names_the_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("date,type,expiry,strike,close\n2015-02-09,看涨,2015-03-25,2.2,0.18\n")
    with pytest.raises(DataError, match="交易日期"):
        load_50etf_options(p)
    with pytest.raises(DataNotFoundError):
        load_50etf_options(tmp_path / "missing.csv")
    q = tmp_path / "badcp.csv"
    q.write_text("交易日期,类型,到期日期,执行价,收盘价\n2015-02-09,认购,2015-03-25,2.2,0.18\n")
    with pytest.raises(DataError, match=r"row 0 .*认购"):
        load_50etf_options(q)


# ---------------------------------------------------------------------------- US chains


def test_gs_file(shared_data):
    df = load_gs_options(shared_data / GS)  # nothing to drop: no warning (warnings are errors)
    _assert_schema(df)
    assert len(df) == 858
    assert (df["cp"] == "C").sum() == 429
    assert df["expiry"].nunique() == 11
    assert df["expiry"].min() == pd.Timestamp("2016-01-08")
    assert (df["trade_date"] == pd.Timestamp("2016-01-05")).all()
    assert (df["underlying"] == 174.09).all()
    assert (df["bid"] == 0).sum() == 98
    rep = validate_chain(df, source="gs")
    assert rep.ok
    first = df.loc[(df["contract"] == "GS160108C00125000")].iloc[0]
    assert (first["strike"], first["bid"], first["ask"], first["iv"]) == (
        125.0,
        46.95,
        50.8,
        0.0874,
    )


def test_cboe_symbol_decoding():
    assert decode_cboe_symbol("SPXW1128A1075-E") == (
        "SPXW",
        pd.Timestamp("2011-01-28"),
        "C",
        1075.0,
        "PM",
    )
    # standard SPX carries the Saturday: expiry is the Friday before, A.M.-settled
    root, exp, cp, k, st = decode_cboe_symbol("SPX1119N835-E")
    assert (root, exp, cp, k, st) == ("SPX", pd.Timestamp("2011-02-18"), "P", 835.0, "AM")
    assert decode_cboe_symbol("SPXPM1131C825-E")[1:] == (
        pd.Timestamp("2011-03-31"),
        "C",
        825.0,
        "PM",
    )
    assert decode_cboe_symbol("SPX1117X2250-E")[1:3] == (pd.Timestamp("2011-12-16"), "P")
    with pytest.raises(DataError, match="not ROOT"):
        decode_cboe_symbol("1128A1075")
    with pytest.raises(DataError, match="invalid date"):
        decode_cboe_symbol("SPX1131B1000-E")


def test_spx_quote_table(shared_data):
    df = load_spx_quote_table(shared_data / SPX)
    _assert_schema(df)
    assert len(df) == 2 * 960
    assert (df["underlying"] == 1290.59).all()
    assert df.attrs["quote_time"] == pd.Timestamp("2011-01-24 14:03", tz="America/New_York")
    assert (df["trade_date"] == pd.Timestamp("2011-01-24")).all()
    by_root = df.groupby("root")["expiry"].agg(["min", "max"])
    assert by_root.loc["SPXW", "min"] == pd.Timestamp("2011-01-28")
    assert by_root.loc["SPX", "min"] == pd.Timestamp("2011-02-18")
    assert by_root.loc["SPX", "max"] == pd.Timestamp("2013-12-20")
    assert set(df.loc[df["root"] == "SPX", "settlement"]) == {"AM"}
    assert set(df.loc[df["root"] != "SPX", "settlement"]) == {"PM"}
    # first data line: 11 Jan 1075.00 call 215.30/217.00, put 0.05/0.10 vol 10 OI 15535
    row = df.loc[(df["strike"] == 1075.0) & (df["root"] == "SPXW")].set_index("cp")
    assert (row.loc["C", "bid"], row.loc["C", "ask"]) == (215.30, 217.00)
    assert (row.loc["P", "bid"], row.loc["P", "ask"], row.loc["P", "open_interest"]) == (
        0.05,
        0.10,
        15535.0,
    )
    assert validate_chain(df, "spx").duplicates.count == 0


# ---------------------------------------------------------------------------- white papers


def test_whitepaper_2019_tables(shared_data):
    wp = load_whitepaper_2019(shared_data / WP)
    df = wp.chain
    _assert_schema(df)
    sizes = df.groupby("expiry").size().to_dict()
    e1, e2 = sorted(wp.rates_cc)
    assert sizes == {e1: 2 * 186, e2: 2 * 128}
    assert (e1 - df["trade_date"].iloc[0]).days == 25
    assert (e2 - df["trade_date"].iloc[0]).days == 32
    assert wp.rates_cc[e1] == 0.000305 and wp.rates_cc[e2] == 0.000286
    assert set(df.loc[df["expiry"] == e1, "settlement"]) == {"AM"}
    assert validate_chain(df, "wp2019").ok


def test_whitepaper_2009_tables(shared_data):
    wp = load_whitepaper_2009(shared_data / WP)
    df = wp.chain
    sizes = df.groupby("expiry").size().to_dict()
    assert sizes == {pd.Timestamp("2009-01-10"): 2 * 195, pd.Timestamp("2009-02-07"): 2 * 173}
    assert df["trade_date"].iloc[0] == pd.Timestamp("2009-01-01")
    assert set(wp.rates_cc.values()) == {0.0038}  # 0.38 percent -> decimal
    assert validate_chain(df, "wp2009").ok


def test_whitepaper_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="whitepaper2019_appendix1_near_term"):
        load_whitepaper_2019(tmp_path)


# ---------------------------------------------------------------------------- validation/policy


def _bad_chain() -> pd.DataFrame:
    td = pd.Timestamp("2020-01-02")
    rows = [
        # trade_date, cp, expiry, strike, bid, ask, adjusted
        (td, "C", "2020-02-01", 100.0, 2.0, 2.2, False),
        (td, "P", "2020-02-01", 100.0, 2.5, 2.4, False),  # crossed
        (td, "C", "2020-02-01", 105.0, -0.1, 0.2, False),  # negative
        (td, "P", "2020-02-01", 105.0, np.nan, np.nan, False),  # no price
        (td, "C", "2019-12-20", 100.0, 1.0, 1.1, False),  # expired
        (td, "C", "2020-02-01", 110.0, 0.5, 0.6, False),  # duplicate pair
        (td, "C", "2020-02-01", 110.0, 0.7, 0.8, False),
        (td, "C", "2020-02-01", 100.1, 1.5, 1.6, True),  # adjusted, duplicates standard 100
        (td, "C", "2020-03-01", 101.3, 1.5, 1.6, True),  # adjusted, no standard near it
    ]
    df = pd.DataFrame(rows, columns=["trade_date", "cp", "expiry", "strike", "bid", "ask", "adj"])
    df = df.rename(columns={"adj": "adjusted"})
    df["expiry"] = pd.to_datetime(df["expiry"]).astype("datetime64[ns]")
    df["trade_date"] = df["trade_date"].astype("datetime64[ns]")
    return df


def test_validate_chain_counts_and_examples():
    rep = validate_chain(_bad_chain(), source="bad")
    assert rep.crossed.count == 1 and "bid=2.5 ask=2.4" in rep.crossed.examples[0]
    assert rep.negative.count == 1 and "bid=-0.1" in rep.negative.examples[0]
    assert rep.nan_price.count == 1
    assert rep.expired.count == 1 and "exp 2019-12-20" in rep.expired.examples[0]
    assert rep.duplicates.count == 2
    assert rep.adjusted.count == 2
    assert not rep.ok
    assert "crossed (bid > ask): 1" in rep.summary()
    with pytest.raises(DataError, match="missing key column"):
        validate_chain(_bad_chain().drop(columns="strike"))


def test_apply_policy_drops_with_warning_and_overrides():
    df = _bad_chain()
    rep = validate_chain(df, source="bad")
    # the default stops at errors in the file (crossed, negative, expired), naming each
    with pytest.raises(DataError, match=r"bad: 1 rows with crossed.*negative.*expiry before"):
        apply_policy(df, rep)
    with pytest.warns(DataQualityWarning) as rec:
        warned = apply_policy(df, rep, bad_quotes="warn", drop_nan_price=False, duplicates="first")
    assert "kept (bad_quotes='warn')" in str(rec[0].message)
    assert len(warned) == 8 and (warned["bid"] < 0).any()  # kept; one duplicate removed
    with pytest.warns(DataQualityWarning, match=r"bad: policy removed 6 of 9 rows") as rec:
        out = apply_policy(df, rep, bad_quotes="drop")
    msg = str(rec[0].message)
    for part in ("crossed: 1", "negative: 1", "expired: 1", "nan_price: 1", "(keep_standard): 2"):
        assert part in msg
    # two standard rows under one key cannot be told apart: both go, nothing is averaged
    assert not (out["strike"] == 110.0).any()
    assert policy_report(out).loc["2020", "dropped: duplicate key (keep_standard)"] == 2
    # one standard row beside an adjusted twin: the standard one stays
    twin = df.assign(adjusted=df["adjusted"] | (df.index == 5))
    with pytest.warns(DataQualityWarning, match=r"\(keep_standard\): 1"):
        kept = apply_policy(twin, validate_chain(twin), bad_quotes="drop")
    assert kept.loc[kept["strike"] == 110.0, "bid"].tolist() == [0.7]
    with pytest.warns(DataQualityWarning, match=r"\(first\): 1"):
        first = apply_policy(df, rep, duplicates="first", bad_quotes="drop")
    assert first.loc[first["strike"] == 110.0, "bid"].tolist() == [0.5]
    with pytest.raises(DataError, match="averaging different contracts is not a policy"):
        ChainPolicy(duplicates="mean")
    # prefer_standard drops the adjusted call at 100.1 (a priced standard call at 100 is within
    # half a strike step) and keeps the one at 101.3 in a group without standard strikes
    with pytest.warns(DataQualityWarning, match=r"adjusted \(prefer_standard\): 1"):
        out2 = apply_policy(df, rep, adjusted="prefer_standard", bad_quotes="drop")
    assert out2.loc[out2["adjusted"], "strike"].tolist() == [101.3]
    # standard_grid: adjusted rows go only where their (date, expiry) has >= 3 standard strikes
    # (expiry 2020-02-01 has 100, 105, 110 standard calls/puts priced; 2020-03-01 has none)
    grid = df.assign(bid=df["bid"].abs()).iloc[[0, 2, 5, 7, 8]]
    with pytest.warns(DataQualityWarning, match=r"adjusted \(standard_grid\): 1"):
        out3 = apply_policy(grid, adjusted="standard_grid")
    assert out3.loc[out3["adjusted"], "strike"].tolist() == [101.3]
    out4 = apply_policy(grid.iloc[[0, 1, 3]], adjusted="standard_grid")  # nothing dropped
    assert out4["adjusted"].sum() == 1  # two standard strikes only: the adjusted one stays
    with pytest.raises(DataError, match="duplicate key"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataQualityWarning)
            apply_policy(df, rep, duplicates="error", bad_quotes="drop")
    with pytest.raises(DataError, match="valid options"):
        apply_policy(df, rep, drop_crosed=True)
    with pytest.raises(DataError, match="'prefer_standard'"):
        ChainPolicy(adjusted="standard")
    with pytest.raises(DataError, match="call validate_chain"):
        apply_policy(df.iloc[1:], rep)


def test_counts_by_period_per_year_and_month():
    td = pd.to_datetime(["2016-12-30", "2017-01-03", "2017-01-04", "2017-02-01"]).to_numpy()
    masks = {"dropped": np.array([True, False, True, True]), "kept": np.array([0, 1, 0, 0])}
    years = counts_by_period(td, masks)
    assert years.to_dict("index") == {
        "2016": {"first": "2016-12-30", "last": "2016-12-30", "rows": 1, "dropped": 1, "kept": 0},
        "2017": {"first": "2017-01-03", "last": "2017-02-01", "rows": 3, "dropped": 2, "kept": 1},
    }
    months = counts_by_period(td, masks, "M")
    assert list(months.index) == ["2016-12", "2017-01", "2017-02"]
    assert months["rows"].tolist() == [1, 2, 1]
    with pytest.raises(DataError, match="freq"):
        counts_by_period(td, masks, "W")


def test_apply_policy_clean_chain_is_silent(shared_data):
    wp = load_whitepaper_2019(shared_data / WP)
    out = apply_policy(wp.chain)  # no warning raised (pytest turns warnings into errors)
    assert len(out) == len(wp.chain)


# ---------------------------------------------------------------------------- storage


def test_partitioned_roundtrip(tmp_path, shared_data):
    pytest.importorskip("pyarrow")
    df = load_gs_options(shared_data / GS)
    df2 = df.assign(
        trade_date=pd.Timestamp("2016-02-10"), expiry=df["expiry"] + pd.Timedelta("60D")
    )
    both = pd.concat([df, df2], ignore_index=True)
    write_partitioned(both, tmp_path / "gs", by="month")
    assert sorted(p.name for p in (tmp_path / "gs").iterdir()) == ["ym=2016-01", "ym=2016-02"]
    jan = read_partitioned(tmp_path / "gs", "2016-01-01", "2016-01-31")
    pd.testing.assert_frame_equal(
        jan[list(CHAIN_COLUMNS)], df[list(CHAIN_COLUMNS)], check_dtype=False
    )
    assert jan["trade_date"].dtype == "datetime64[ns]"
    assert len(read_partitioned(tmp_path / "gs")) == len(both)
    write_partitioned(both, tmp_path / "gsd", by="date")
    feb = read_partitioned(tmp_path / "gsd", start="2016-02-01", columns=["trade_date", "strike"])
    assert len(feb) == len(df2) and list(feb.columns) == ["trade_date", "strike"]
    with pytest.raises(DataNotFoundError):
        read_partitioned(tmp_path / "nothing")


# ---------------------------------------------------------------------------- SHIBOR


def test_load_shibor(shared_data):
    r = load_shibor(shared_data / SHIBOR)
    assert r.index.is_monotonic_increasing
    assert list(r.columns) == list(SHIBOR_TENOR_DAYS)
    assert r.index.min() == pd.Timestamp("2006-10-08")
    assert r.index.max() == pd.Timestamp("2018-07-13")
    # first line of the file (newest): 2018-07-13, 1D 2.48 percent -> 0.0248
    assert r.loc["2018-07-13", "ON"] == pytest.approx(0.0248)
    assert r.loc["2018-07-13", "1Y"] == pytest.approx(0.03961)
    assert SHIBOR_TENOR_DAYS["1Y"] == 360 and SHIBOR_TENOR_DAYS["ON"] == 1


def test_shibor_curve_interpolation_and_clamp():
    idx = pd.DatetimeIndex(["2015-01-05", "2015-01-06"])
    tenors = np.array(list(SHIBOR_TENOR_DAYS.values()), dtype=float)
    flat = pd.DataFrame(0.03, index=idx, columns=list(SHIBOR_TENOR_DAYS))
    linear = pd.DataFrame(
        np.vstack([0.01 + tenors * 1e-5] * 2), index=idx, columns=list(SHIBOR_TENOR_DAYS)
    )
    dates = idx[[0, 0, 1, 1]]
    days = np.array([0.5, 45.0, 200.0, 800.0])
    simple = shibor_curve_rate(flat, dates, days, compounding="simple")
    np.testing.assert_allclose(simple, 0.03)
    lin = shibor_curve_rate(linear, dates, days, compounding="simple")
    # a cubic spline through points on a line is the line; clamped to the end tenors outside
    np.testing.assert_allclose(lin, [0.01 + 1e-5, 0.01 + 45e-5, 0.01 + 200e-5, 0.01 + 360e-5])
    cc = shibor_curve_rate(flat, dates[1:2], np.array([90.0]))
    # continuous rate consistent with T = days/365: exp(R * 90/365) = 1 + 0.03 * 90/360
    assert np.exp(cc[0] * 90 / 365) == pytest.approx(1 + 0.03 * 90 / 360, rel=1e-14)
    with pytest.raises(DataError, match="no SHIBOR"):
        shibor_curve_rate(flat, pd.DatetimeIndex(["2014-01-01"]), np.array([30.0]))
