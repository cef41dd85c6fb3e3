"""The backtest spine end to end on the embedded market: no look-ahead, identical results under
backtrader's run modes, determinism, ledger vs broker, and the README quickstart."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volbacktest import strategies
from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.inputs.market import Market, market_for
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[1]
# the embedded market from 2008-01-02, traded from 2008-03-03: the first two months are warm-up
# history the signals read (data.warmup: auto), so the properties below cover it too
SHORT = {
    "synthetic": {"seed": 11, "start": "2008-01-02", "end": "2010-12-31"},
    "start": "2008-03-03",
}


def cfg_for(name: str, fill: str = "next_close", **execution):
    return config_from_mapping(
        {
            "name": f"t_{name}_{fill}",
            "strategy": {"name": name},
            "data": SHORT,
            "execution": {"fill": fill, **execution},
            "report": {"tearsheet": False, "plots": False},
        }
    )


@pytest.fixture(scope="module")
def markets():
    return {n: market_for(cfg_for(n)) for n in strategies.share_names()}


def perturb_after(market: Market, t: int, seed: int) -> Market:
    """Replace every value after bar t (prices and signals) with different positive numbers;
    the warm-up history before the first bar is kept."""
    rng = np.random.default_rng(seed)
    frames = {}
    for name, f in market.frames.items():
        g = f.copy()
        tail = g.iloc[t + 1 :]
        factor = rng.uniform(0.5, 1.5, size=(len(tail), 1))
        g.iloc[t + 1 :] = tail.to_numpy() * factor
        frames[name] = g
    return replace(market, frames=frames)


@pytest.mark.parametrize("fill", ["next_close", "next_open"])
@pytest.mark.parametrize("name", strategies.share_names())
@given(t=st.integers(120, 650), seed=st.integers(0, 2**16))  # 694 SSE sessions for the 50ETF
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_no_look_ahead(markets, name, fill, t, seed):
    """Changing any data after bar t leaves every decision, position (and equity) up to t
    unchanged; the decisions read the warm-up history before the first bar too."""
    cfg = cfg_for(name, fill, commission={"percent": 0.001}, slippage={"percent": 0.0005})
    assert markets[name].n_warmup > 20  # about two months (38 SSE sessions for the 50ETF)
    base = run_backtest(cfg, market=markets[name])
    other = run_backtest(cfg, market=perturb_after(markets[name], t, seed))
    pd.testing.assert_frame_equal(base.weights.iloc[: t + 1], other.weights.iloc[: t + 1])
    pd.testing.assert_frame_equal(base.holdings.iloc[: t + 1], other.holdings.iloc[: t + 1])
    pd.testing.assert_series_equal(base.equity.iloc[: t + 1], other.equity.iloc[: t + 1])
    # and the orders filled on bar t were decided before bar t
    before = base.transactions[base.transactions["date"] <= base.equity.index[t]]
    after = other.transactions[other.transactions["date"] <= base.equity.index[t]]
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_holdings_columns_are_named_alike_with_and_without_fills(markets):
    """A run whose fills start after bar t and one without fills compare equal up to t: the
    holdings' column axis has no name either way (a Hypothesis draw of the look-ahead test on
    ou_pairs found 'symbol' against None)."""
    res = run_backtest(cfg_for("vratio"), market=markets["vratio"])
    assert len(res.transactions) and res.holdings.columns.name is None
    assert list(res.holdings.columns) == list(res.config.plan.assets())


def test_same_close_trades_on_the_close_it_observes(markets):
    """same_close (warned, labelled) trades on the close its decision observed: raising VIX3M on
    one bar t flips VRatio's decision on t, and the same_close run trades at t's own close; the
    next_close run is unchanged up to and including t (it can act at t+1 at the earliest)."""
    from volbacktest.engine.errors import LookAheadWarning

    m = markets["vratio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LookAheadWarning)
        base = run_backtest(cfg_for("vratio", "same_close"), market=m)
    vxx = np.nan_to_num(base.weights["vxx"].to_numpy())
    calm = [t for t in range(20, len(vxx) - 2) if vxx[t - 1] == vxx[t] == vxx[t + 1] == 1.0]
    t = calm[len(calm) // 2]
    day = m.calendar[t]
    frames = dict(m.frames)
    frames["vix3m"] = frames["vix3m"].copy()
    frames["vix3m"].loc[day, "close"] *= 20.0
    bumped = replace(m, frames=frames)

    with pytest.warns(LookAheadWarning):
        same = run_backtest(cfg_for("vratio", "same_close"), market=bumped)
    assert same.metrics["look_ahead"] is True and "LOOK-AHEAD" in same.metrics["fill"]
    assert same.weights["xiv"].iloc[t] == 1.0
    assert day not in set(base.transactions["date"]) and day in set(same.transactions["date"])

    before = run_backtest(cfg_for("vratio"), market=m)
    after = run_backtest(cfg_for("vratio"), market=bumped)
    pd.testing.assert_series_equal(before.equity.iloc[: t + 1], after.equity.iloc[: t + 1])
    assert day not in set(after.transactions["date"])
    assert m.calendar[t + 1] in set(after.transactions["date"])


@pytest.mark.filterwarnings("ignore::volbacktest.engine.errors.LookAheadWarning")
@pytest.mark.parametrize("fill", ["next_close", "next_open", "same_close"])
@pytest.mark.parametrize("name", strategies.share_names())
def test_run_modes_identical(markets, name, fill):
    """Indicator values and results are identical under runonce/preload combinations."""
    cfg = cfg_for(name, fill)
    ref = run_backtest(cfg, market=markets[name], runonce=True, preload=True)
    for runonce, preload in ((False, True), (False, False)):
        other = run_backtest(cfg, market=markets[name], runonce=runonce, preload=preload)
        np.testing.assert_array_equal(ref.weights.to_numpy(), other.weights.to_numpy())
        pd.testing.assert_series_equal(ref.equity, other.equity)
        pd.testing.assert_frame_equal(ref.transactions, other.transactions)


@pytest.mark.parametrize("fill", ["next_close", "next_open", "same_close"])
def test_fill_timing(markets, fill):
    """A decision on bar t fills at t+1's close / t+1's open / t's close."""
    cfg = cfg_for("vratio", fill)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_backtest(cfg, market=markets["vratio"])
    w = np.nan_to_num(res.weights.to_numpy())
    # bars t with a new target (the warm-up can make bar 0 the first decision: start from cash)
    changes = np.flatnonzero(np.any(np.diff(w, axis=0, prepend=0.0) != 0, axis=1))
    lag = 0 if fill == "same_close" else 1
    fill_bars = sorted({res.equity.index.get_loc(d) for d in res.transactions["date"]})
    # a close fill on the final bar cannot happen (no later broker cycle): it is reported
    last_fillable = len(w) if fill == "next_open" else len(w) - 1
    expected = sorted({c + lag for c in changes if c + lag < last_fillable})
    assert fill_bars == expected
    col = "open" if fill == "next_open" else "close"
    for _, row in res.transactions.iterrows():
        assert row["price"] == pytest.approx(
            markets["vratio"].frames[row["symbol"]].loc[row["date"], col]
        )


def test_target_for_the_final_close_is_reported(markets):
    """A decision whose close fill would fall on the final bar is reported, not lost."""
    m = markets["vratio"]
    base = run_backtest(cfg_for("vratio"), market=m)
    w = np.nan_to_num(base.weights.to_numpy())
    change = int(np.flatnonzero(np.any(np.diff(w, axis=0) != 0, axis=1))[-1]) + 1
    cut = replace(
        m,
        calendar=m.calendar[: change + 2],
        frames={k: v.iloc[: change + 2] for k, v in m.frames.items()},
    )
    res = run_backtest(cfg_for("vratio"), market=cut)
    assert any("was not traded: the backtest ends at that close" in n for n in res.market_notes)
    assert res.transactions["date"].max() < cut.calendar[-1]


def test_integer_lots_and_costs(markets):
    cfg = cfg_for(
        "vratio",
        sizing="integer",
        lot_size=100,
        commission={"percent": 0.002, "per_share": 0.01},
        slippage={"percent": 0.001},
    )
    res = run_backtest(cfg, market=markets["vratio"])
    assert (res.transactions["size"] % 100 == 0).all()
    assert (res.positions["cash"] >= -1e-9).all()
    assert res.transactions["commission"].gt(0).all()
    assert not res.problems


def test_buy_and_hold_matches_price_path(markets):
    """Holding one asset with no costs: equity grows exactly with its price after the fill."""
    res = run_backtest(cfg_for("buy_and_hold"), market=markets["buy_and_hold"])
    px = markets["buy_and_hold"].frames["xiv"]["close"]
    first = res.transactions["date"].iloc[0]
    growth = res.equity.loc[first:] / res.equity.loc[first]
    np.testing.assert_allclose(growth, px.loc[first:] / px.loc[first], rtol=1e-9)
    assert len(res.transactions) == 1


def test_determinism(tmp_path):
    """Two runs of the same config give byte-identical outputs."""
    cfg = cfg_for("vrp")
    outs = []
    for i in range(2):
        res = run_backtest(cfg)
        outs.append(write_run(res, tmp_path / str(i)))
    for name in (
        "metrics.json",
        "returns.csv",
        "positions.csv",
        "transactions.csv",
        "weights.csv",
        "config.yaml",
    ):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_results_folder_contents(tmp_path):
    cfg = config_from_mapping({"name": "full", "strategy": {"name": "vratio"}, "data": SHORT})
    out = write_run(run_backtest(cfg), tmp_path)
    for name in (
        "config.yaml",
        "metrics.json",
        "returns.csv",
        "positions.csv",
        "transactions.csv",
        "equity.png",
        "tearsheet.png",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "cagr",
        "annual_volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "calmar",
        "turnover",
        "trades",
        "exposure",
        "fill",
        "rule",
    ):
        assert key in metrics
    assert metrics["fill"] == "next_close"
    returns = pd.read_csv(out / "returns.csv", index_col=0, parse_dates=True)
    assert len(returns) == metrics["bars"]


def test_readme_quickstart_command(tmp_path):
    """The README's first command (after installation) runs and prints the metrics table."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_backtest.py"),
            str(REPO / "configs" / "vratio.yaml"),
            "--out",
            str(tmp_path),
            "--no-tearsheet",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "CAGR" in proc.stdout and "Sharpe" in proc.stdout
    assert (tmp_path / "vratio" / "metrics.json").exists()
