"""VIX futures calendar, short-term index roll/recursion and ETN kernels."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volbacktest.data.calendars import nyse_sessions
from volbacktest.engine.calculators.futures import (
    TBILL_DAY_BASIS,
    TBILL_TERM_DAYS,
    etn_from_index,
    index_returns_from_weights,
    inverse_etn,
    long_etn,
    short_term_index,
    short_term_roll,
    vix_expiries,
    vix_futures_expiry,
)
from volbacktest.engine.errors import ConfigError, DataError

MONTH_CODES = "FGHJKMNQUVXZ"


@pytest.fixture(scope="module")
def sessions() -> pd.DatetimeIndex:
    return nyse_sessions("1999-01-01", "2031-12-31")


# --------------------------------------------------------------------------- expiry rule


def _observed_final_settlements(folder) -> pd.DataFrame:
    """Last trade date of every contract file that expired before the download date."""
    rows = []
    for path in sorted((folder / "per_contract").glob("CFE_*_VX.csv")):
        match = re.fullmatch(r"CFE_([FGHJKMNQUVXZ])(\d\d)_VX\.csv", path.name)
        assert match, path.name
        trade_dates = pd.to_datetime(
            pd.read_csv(path, usecols=["Trade Date"])["Trade Date"], format="mixed"
        )
        rows.append(
            {
                "contract": match[1] + match[2],
                "year": 2000 + int(match[2]),
                "month": MONTH_CODES.index(match[1]) + 1,
                "last": trade_dates.max(),
            }
        )
    table = pd.DataFrame(rows)
    download_day = table["last"].max()  # unexpired contracts all stop on the download day
    return table[table["last"] < download_day].reset_index(drop=True)


@pytest.mark.shared_data
def test_expiry_rule_matches_every_observed_final_settlement(shared_data, sessions):
    observed = _observed_final_settlements(shared_data / "vix_futures_cfe")
    assert len(observed) == 150  # PROVENANCE.md: 150 contracts expired inside the files
    rule = [
        vix_futures_expiry(y, m, sessions)
        for y, m in zip(observed.year, observed.month, strict=True)
    ]
    observed["rule"] = pd.DatetimeIndex(rule)
    differ = observed[observed["rule"] != observed["last"]]
    # documented exceptions: early-2004 contract terms settled one week before the rule
    assert sorted(differ["contract"]) == ["N04", "V04"]
    assert ((differ["rule"] - differ["last"]) == pd.Timedelta(days=7)).all()
    # the Good Friday cases settle on a Tuesday and are reproduced by the rule
    tuesdays = observed[observed["last"].dt.day_of_week == 1]
    assert sorted(tuesdays["contract"]) == ["G08", "H14"]
    assert (tuesdays["rule"] == tuesdays["last"]).all()
    # the vectorised calendar contains every matched date
    calendar = vix_expiries("2004-01-01", "2017-12-31", sessions)
    matched = observed.loc[observed["rule"] == observed["last"], "last"]
    assert set(matched) <= set(calendar)


def test_vectorised_calendar_equals_scalar_rule(sessions):
    calendar = vix_expiries("2003-01-01", "2030-12-31", sessions)
    scalar = [vix_futures_expiry(y, m, sessions) for y in range(2003, 2031) for m in range(1, 13)]
    assert list(calendar) == scalar
    assert calendar.name == "expiry"


@settings(max_examples=200, deadline=None)
@given(year=st.integers(2000, 2030), month=st.integers(1, 12))
def test_expiry_rule_invariants(sessions, year, month):
    expiry = vix_futures_expiry(year, month, sessions)
    assert expiry in sessions
    assert (expiry.year, expiry.month) == (year, month)
    next_first = pd.Timestamp(year + month // 12, month % 12 + 1, 1)
    third_friday = pd.date_range(next_first, periods=3, freq="W-FRI")[2]
    if expiry.day_of_week == 2:  # the normal case: Wednesday 30 days before a trading Friday
        assert expiry + pd.Timedelta(days=30) == third_friday
        assert third_friday in sessions
    else:  # a holiday moved it earlier, never by more than a few days
        assert expiry < third_friday - pd.Timedelta(days=30)
        assert third_friday - pd.Timedelta(days=30) - expiry <= pd.Timedelta(days=4)
        holiday_friday = third_friday not in sessions
        holiday_wednesday = third_friday - pd.Timedelta(days=30) not in sessions
        assert holiday_friday or holiday_wednesday


def test_expiry_rule_needs_a_calendar_that_covers_it():
    short = nyse_sessions("2019-01-01", "2019-06-30")
    with pytest.raises(ConfigError, match="nyse_sessions"):
        vix_futures_expiry(2019, 6, short)  # needs the 3rd Friday of July 2019
    with pytest.raises(ConfigError, match="DatetimeIndex"):
        vix_futures_expiry(2019, 3, list(short))


# --------------------------------------------------------------------------- roll weights


def test_roll_weights_on_a_hand_counted_calendar():
    """Weekdays only, expiries 2021-01-20, 02-17, 03-17, 04-21: dt = 20 for the Feb period."""
    sessions = pd.bdate_range("2021-01-04", "2021-05-28")
    expiries = pd.DatetimeIndex(["2021-01-20", "2021-02-17", "2021-03-17", "2021-04-21"])
    dates = pd.DatetimeIndex(["2021-01-19", "2021-01-20", "2021-02-12", "2021-02-15", "2021-02-16"])
    roll = short_term_roll(dates, expiries, sessions)
    # Jan 20 .. Feb 16 holds 20 weekdays: 3 + 5 + 5 + 5 + 2
    assert roll.days_in_period.tolist() == [20] * 5  # Feb 17 .. Mar 16 holds 20 as well
    assert roll.days_remaining.tolist() == [20, 19, 2, 1, 20]
    np.testing.assert_allclose(roll.w1, [1.0, 0.95, 0.1, 0.05, 1.0])
    np.testing.assert_allclose(roll.w1 + roll.w2, 1.0)
    assert list(roll.front_expiry.strftime("%m-%d")) == ["02-17"] * 4 + ["03-17"]
    assert list(roll.second_expiry.strftime("%m-%d")) == ["03-17"] * 4 + ["04-21"]


def test_roll_weights_on_the_nyse_calendar(sessions):
    dates = sessions[(sessions >= "2008-01-02") & (sessions <= "2016-12-30")]
    expiries = vix_expiries("2007-11-01", "2017-03-31", sessions)
    roll = short_term_roll(dates, expiries, sessions)
    frame = roll.to_frame()
    np.testing.assert_allclose(roll.w1 + roll.w2, 1.0, atol=1e-15)
    assert ((roll.w1 > 0) & (roll.w1 <= 1)).all()
    assert (roll.front_expiry > dates).all()  # never holds a contract on its settlement day
    nxt = expiries[expiries.get_indexer(roll.front_expiry) + 1]
    assert (roll.second_expiry == nxt).all()
    for _, period in frame.groupby("front_expiry"):
        assert (np.diff(period["w1"].to_numpy()) < 0).all()  # w1 falls through the period
    # all weight on the new 1st month at the close of the business day before each expiry
    starts = sessions[sessions.get_indexer(expiries) - 1]
    in_range = starts[(starts >= dates[0]) & (starts <= dates[-1])]
    assert len(in_range) == 9 * 12
    np.testing.assert_array_equal(frame.loc[in_range, "w1"], 1.0)
    # dt is the number of sessions between consecutive settlements
    pos = sessions.get_indexer(expiries)
    dt_by_front = dict(zip(expiries[1:], np.diff(pos), strict=True))
    assert (frame["days_in_period"] == frame["front_expiry"].map(dt_by_front)).all()


def test_roll_rejects_a_calendar_that_does_not_cover_the_dates(sessions):
    dates = sessions[(sessions >= "2015-03-02") & (sessions <= "2015-06-30")]
    with pytest.raises(ConfigError, match="roll period"):
        short_term_roll(dates, vix_expiries("2015-03-01", "2015-12-31", sessions), sessions)
    with pytest.raises(ConfigError, match="next two settlements"):
        short_term_roll(dates, vix_expiries("2015-01-01", "2015-06-30", sessions), sessions)
    with pytest.raises(ConfigError, match="not a trading session"):
        short_term_roll(dates, pd.DatetimeIndex(["2015-02-18", "2015-03-21"]), sessions)


# --------------------------------------------------------------------------- index recursion


def test_index_recursion_hand_computed():
    sessions = pd.bdate_range("2021-01-04", "2021-05-28")
    expiries = pd.DatetimeIndex(["2021-01-20", "2021-02-17", "2021-03-17", "2021-04-21"])
    dates = pd.DatetimeIndex(["2021-01-19", "2021-01-20", "2021-01-21"])
    settles = pd.DataFrame(
        {
            pd.Timestamp("2021-02-17"): [20.0, 21.0, 19.0],
            pd.Timestamp("2021-03-17"): [22.0, 22.5, 21.0],
        },
        index=dates,
    )
    result = short_term_index(settles, expiries, sessions, tbill_rate=0.04, base_level=100.0)
    # Jan 20 uses Jan 19 weights (1, 0): 21 / 20 - 1; Jan 21 uses Jan 20 weights (0.95, 0.05)
    r2 = (0.95 * 19.0 + 0.05 * 21.0) / (0.95 * 21.0 + 0.05 * 22.5) - 1.0
    np.testing.assert_allclose(result.return_er, [0.0, 0.05, r2], rtol=1e-14)
    np.testing.assert_allclose(result.level_er, [100.0, 105.0, 105.0 * (1 + r2)], rtol=1e-14)
    tbill_day = (1.0 / (1.0 - TBILL_TERM_DAYS / TBILL_DAY_BASIS * 0.04)) ** (1 / 91) - 1.0
    np.testing.assert_allclose(
        result.level_tr,
        [100.0, 100 * (1.05 + tbill_day), 100 * (1.05 + tbill_day) * (1 + r2 + tbill_day)],
    )
    np.testing.assert_allclose(result.weights["w1"], [1.0, 0.95, 0.9])


def _slow_reference_index(settles: pd.DataFrame, expiries, sessions) -> np.ndarray:
    """Obviously-correct day loop: count sessions by hand, recompute weights every day."""
    sess = list(sessions)
    levels = [1.0]
    dates = list(settles.index)
    for t in range(1, len(dates)):
        prev = dates[t - 1]
        # roll period of the previous close: starts on the session before a settlement
        starts = [sess[sess.index(e) - 1] for e in expiries]
        k = max(i for i, s in enumerate(starts) if s <= prev)
        start_settle, front, second = expiries[k], expiries[k + 1], expiries[k + 2]
        dt = sum(1 for s in sess if start_settle <= s < front)
        dr = sum(1 for s in sess if prev < s < front)
        w1, w2 = dr / dt, 1 - dr / dt
        now = w1 * settles.loc[dates[t], front] + w2 * settles.loc[dates[t], second]
        before = w1 * settles.loc[prev, front] + w2 * settles.loc[prev, second]
        levels.append(levels[-1] * now / before)
    return np.array(levels)


def test_vectorised_index_equals_slow_reference(sessions):
    rng = np.random.default_rng(11)
    dates = sessions[(sessions >= "2012-09-04") & (sessions <= "2013-03-28")]
    expiries = vix_expiries("2012-07-01", "2013-08-31", sessions)
    settle = pd.DataFrame(
        np.exp(rng.normal(0, 0.05, (len(dates), len(expiries))).cumsum(axis=0)) * 18.0,
        index=dates,
        columns=expiries,
    )
    fast = short_term_index(settle, expiries, sessions).level_er.to_numpy()
    np.testing.assert_allclose(fast / fast[0], _slow_reference_index(settle, expiries, sessions))


def test_index_reports_missing_contracts_and_prices(sessions):
    dates = sessions[(sessions >= "2014-01-02") & (sessions <= "2014-03-31")]
    expiries = vix_expiries("2013-12-01", "2014-08-31", sessions)
    settle = pd.DataFrame(15.0, index=dates, columns=expiries[:4])
    with pytest.raises(DataError, match="no column for the contract expiring 2014-04-16"):
        short_term_index(settle, expiries, sessions)
    full = pd.DataFrame(15.0, index=dates, columns=expiries)
    held = full.copy()
    held.iloc[10, 1] = np.nan  # the February contract on 2014-01-16, while it is the front
    with pytest.raises(DataError, match="no price"):
        short_term_index(held, expiries, sessions)
    unheld = full.copy()
    unheld.iloc[:, -1] = np.nan  # never held: harmless
    assert np.isfinite(short_term_index(unheld, expiries, sessions).level_er).all()


def test_index_returns_ignore_unweighted_nan_legs():
    settle = np.array([[10.0, np.nan], [11.0, np.nan], [12.1, 5.0]])
    legs = np.array([[0, 1], [0, 1], [0, 1]])
    weights = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(index_returns_from_weights(settle, legs, weights), [0, 0.1, 0.1])


def test_tbill_rate_series_is_used_with_a_one_day_lag(sessions):
    dates = sessions[(sessions >= "2016-01-04") & (sessions <= "2016-02-26")]
    expiries = vix_expiries("2015-12-01", "2016-06-30", sessions)
    settle = pd.DataFrame(20.0, index=dates, columns=expiries)
    rate = pd.Series([0.02, 0.10], index=pd.DatetimeIndex(["2015-12-31", "2016-01-05"]))
    result = short_term_index(settle, expiries, sessions, tbill_rate=rate)
    r = result.return_tr.to_numpy()
    per_day = lambda y: (1 / (1 - 91 / 360 * y)) ** (1 / 91) - 1  # noqa: E731
    np.testing.assert_allclose(r[1], per_day(0.02))  # Jan 5 accrues Jan 4's rate
    np.testing.assert_allclose(r[2], per_day(0.10))
    with pytest.raises(DataError, match="tbill_rate has no value"):
        short_term_index(settle, expiries, sessions, tbill_rate=rate.iloc[1:])


# --------------------------------------------------------------------------- ETNs


def _index(values, dates) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.DatetimeIndex(dates))


def test_long_etn_fee_accrues_per_calendar_day():
    dates = ["2021-03-04", "2021-03-05", "2021-03-08", "2021-03-09"]  # Thu, Fri, Mon, Tue
    flat = long_etn(_index([50, 50, 50, 50], dates), annual_fee=0.0089, initial_value=100.0)
    days = np.array([0, 1, 3, 1])
    expected = 100.0 * np.cumprod(1 - 0.0089 * days / 365)
    np.testing.assert_allclose(flat.value, expected, rtol=1e-15)
    moving = long_etn(_index([50, 55, 44, 44], dates), annual_fee=0.0)
    np.testing.assert_allclose(moving.value, [100, 110, 88, 88])
    assert not flat.terminated and flat.termination_date is None


def test_inverse_etn_with_fee_and_leverage_change():
    dates = pd.bdate_range("2018-02-22", periods=5)  # Thu .. Wed, change on Tue 02-27
    idx = _index([100, 110, 99, 99, 108.9], dates)
    etn = inverse_etn(idx, annual_fee=0.0135, leverage_changes={"2018-02-27": -0.5})
    days = np.array([0, 1, 3, 1, 1])
    fee = 1 - 0.0135 * days / 365
    r = np.array([0, 0.1, -0.1, 0.0, 0.1])
    lev = np.array([-1, -1, -1, -0.5, -0.5])
    np.testing.assert_allclose(etn.value, 100 * np.cumprod((1 + lev * r) * fee))
    np.testing.assert_allclose(etn.leverage, lev)


def test_acceleration_event_terminates_the_inverse_note():
    dates = pd.bdate_range("2018-01-29", periods=6)
    idx = _index([100, 101, 99, 185, 170, 150], dates)  # +86.9 % on the 4th day
    etn = inverse_etn(idx, annual_fee=0.0)
    assert etn.terminated and etn.termination_date == dates[3]
    expected_last = 100 * (1 - 0.01) * (1 + 2 / 101) * (1 - 86 / 99)
    np.testing.assert_allclose(etn.value.iloc[3], expected_last)
    assert etn.value.iloc[4:].isna().all() and etn.daily_return.iloc[4:].isna().all()
    assert etn.active.tolist() == [True, True, True, True, False, False]
    flat = inverse_etn(idx, annual_fee=0.0, after_termination="flat")
    np.testing.assert_allclose(flat.value.iloc[3:], expected_last)
    # a 79 % fall does not trigger it; a 100 %+ index jump floors the note at zero
    assert not inverse_etn(_index([100, 179], dates[:2]), annual_fee=0.0).terminated
    wiped = inverse_etn(_index([100, 230, 240], dates[:3]), annual_fee=0.0)
    assert wiped.terminated and wiped.value.iloc[1] == 0.0


def test_etn_input_validation():
    dates = pd.bdate_range("2020-01-01", periods=3)
    with pytest.raises(DataError, match="missing or non-positive"):
        long_etn(_index([1.0, np.nan, 1.0], dates))
    with pytest.raises(ConfigError, match="decimal"):
        long_etn(_index([1.0, 1.0, 1.0], dates), annual_fee=0.89)
    with pytest.raises(ConfigError, match="after_termination"):
        etn_from_index(_index([1.0, 1.0, 1.0], dates), after_termination="zero")
