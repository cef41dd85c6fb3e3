"""The numpy feeds' bulk ``preload`` and fast ``advance`` leave every line, cursor and ``tick_*``
attribute exactly as backtrader's own ``DataBase.preload`` / ``DataBase.advance`` do (the broker
fills from the ticks; the last bar keeps backtrader's quirk of unfilled ticks)."""

from __future__ import annotations

import datetime as dt

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from volbacktest.engine.execution.bt import ArrayFeed, SignalFeed, bt_dates


def _frame(n: int, seed: int, with_open: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    frame = pd.DataFrame(
        {
            "open": close * rng.uniform(0.98, 1.02, n) if with_open else np.nan,
            "high": close * 1.03,
            "low": close * 0.97,
            "close": close,
        },
        index=pd.bdate_range("2010-01-04", periods=n),
    )
    frame.iloc[5, 2] = np.nan  # a missing value travels as NaN
    return frame


def _started(make):
    feed = make()
    cerebro = bt.Cerebro()
    cerebro.adddata(feed)
    feed.reset()
    feed._start()
    return feed


def _state(feed) -> dict:
    ticks = {k: v for k, v in vars(feed).items() if k.startswith("tick_")}
    lines = [(bytes(ln.array), ln.idx, ln.lencount) for ln in feed.lines]
    return {"ticks": ticks, "lines": lines, "len": len(feed)}


def _same(a: dict, b: dict) -> None:
    assert a["lines"] == b["lines"] and a["len"] == b["len"]
    assert a["ticks"].keys() == b["ticks"].keys()
    for k, x in a["ticks"].items():  # NaN == NaN here: compare bit patterns
        y = b["ticks"][k]
        assert (x is None and y is None) or np.float64(x).tobytes() == np.float64(y).tobytes()
        assert type(x) is type(y), k


@pytest.mark.parametrize(
    "make",
    [
        lambda: ArrayFeed(frame=_frame(40, 1, with_open=True)),
        lambda: ArrayFeed(frame=_frame(40, 2, with_open=False)),
        lambda: SignalFeed.of(
            pd.DataFrame(
                {"vix": _frame(40, 3, True)["close"], "vix3m": _frame(40, 4, True)["high"]}
            )
        ),
    ],
    ids=["ohlc", "no_open", "signals"],
)
def test_bulk_preload_and_advance_equal_backtraders(make):
    ours, theirs = _started(make), _started(make)
    ours.preload()
    bt.feed.DataBase.preload(theirs)
    _same(_state(ours), _state(theirs))
    assert ours._i == theirs._i == 40
    for _ in range(40):
        assert ours.advance_peek() == bt.feed.DataBase.advance_peek(theirs)
        ours.advance()
        bt.feed.DataBase.advance(theirs)
        _same(_state(ours), _state(theirs))
    assert ours.advance_peek() == bt.feed.DataBase.advance_peek(theirs) == float("inf")
    assert ours.tick_close is None  # backtrader leaves the last bar's ticks unfilled


def test_preload_falls_back_to_backtrader_for_date_bounds():
    """A feed with a fromdate keeps backtrader's bar-by-bar load (which drops earlier bars)."""
    frame = _frame(40, 5, True)
    feed = ArrayFeed(frame=frame, fromdate=dt.date(2010, 1, 11))
    cerebro = bt.Cerebro()
    cerebro.adddata(feed)
    feed.reset()
    feed._start()
    feed.preload()
    assert feed.buflen() == int((frame.index >= "2010-01-11").sum())


def test_dates_equal_backtraders_date2num():
    """Daily midnights take the one-step path; times of day and time zones go through
    ``bt.date2num``; both give its floats bit for bit."""
    days = pd.DatetimeIndex(["1900-03-01", "1970-01-01", "2003-01-02", "2019-12-31"])
    timed = pd.DatetimeIndex(["2010-01-04 15:00", "2010-01-05 09:30:01.5"])
    zoned = pd.DatetimeIndex(["2010-01-04 15:00"], tz="America/Chicago")
    for index in (days, timed, zoned):
        want = np.array([bt.date2num(d) for d in index.to_pydatetime()])
        assert bt_dates(index).tobytes() == want.tobytes()
