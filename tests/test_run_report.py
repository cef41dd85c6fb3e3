"""The per-run report: benchmark-relative metrics (checked by hand and against empyrical), FIFO
round trips (a hand-worked ledger, and reconciliation with transactions.csv on embedded and real
runs), and report.html in every run folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.metrics import BENCHMARK_METRICS, benchmark_metrics
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import config_from_mapping, load_config
from volbacktest.engine.run.analysis import analyse
from volbacktest.engine.run.html import fmt
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.run.trades import reconcile, round_trips

REPO = Path(__file__).resolve().parents[1]
SHORT = {"synthetic": {"seed": 5, "start": "2008-01-02", "end": "2010-12-31"}}


def _cfg(name: str = "vratio", **report):
    return config_from_mapping(
        {
            "name": f"rep_{name}",
            "strategy": {"name": name},
            "data": SHORT,
            "execution": {"commission": {"percent": 0.001}, "slippage": {"percent": 0.0005}},
            "report": {"tearsheet": False, "plots": False, **report},
        }
    )


# --------------------------------------------------------------------------- benchmark metrics
def _by_hand(r: np.ndarray, b: np.ndarray) -> dict:
    """Textbook formulas written out (daily data, 252 periods a year, rf = 0)."""
    n = len(r)
    rm, bm = r.mean(), b.mean()
    cov = ((r - rm) * (b - bm)).sum() / n
    var = ((b - bm) ** 2).sum() / n
    beta = cov / var
    alpha = (1.0 + (r - beta * b).mean()) ** 252 - 1.0
    corr = cov / math.sqrt(var * ((r - rm) ** 2).sum() / n)
    a = r - b
    te = math.sqrt(((a - a.mean()) ** 2).sum() / (n - 1))

    def cagr(x: np.ndarray) -> float:
        return float(np.prod(1.0 + x) ** (252.0 / len(x)) - 1.0)

    up, down = b > 0, b < 0
    return {
        "alpha": alpha,
        "beta": beta,
        "correlation": corr,
        "tracking_error": te * math.sqrt(252),
        "information_ratio": a.mean() / te * math.sqrt(252),
        "up_capture": cagr(r[up]) / cagr(b[up]),
        "down_capture": cagr(r[down]) / cagr(b[down]),
        "benchmark_cagr": cagr(b),
    }


def test_benchmark_metrics_by_hand_and_empyrical():
    """A real-like case: the VRatio run on the embedded market against its S&P 500."""
    res = run_backtest(_cfg(benchmark="spx"))
    analysis = analyse(res)
    both = pd.concat([res.returns, analysis.benchmark], axis=1).dropna()
    assert len(both) == len(res.returns) - 1  # the benchmark's first bar has no return
    got = benchmark_metrics(res.returns, analysis.benchmark)
    want = _by_hand(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy())
    assert set(got) == set(BENCHMARK_METRICS)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # and the information ratio is empyrical's (non-annualised) excess Sharpe, annualised
    import empyrical as ep

    excess = ep.excess_sharpe(both.iloc[:, 0], both.iloc[:, 1])
    assert got["information_ratio"] == pytest.approx(excess * math.sqrt(252), rel=1e-9)
    assert analysis.metrics["beta"] == got["beta"]


def test_benchmark_of_itself_and_of_a_scaled_copy():
    rng = np.random.default_rng(3)
    idx = pd.bdate_range("2015-01-01", periods=500)
    b = pd.Series(rng.normal(3e-4, 0.01, len(idx)), index=idx)
    same = benchmark_metrics(b, b)
    assert same["beta"] == pytest.approx(1.0, abs=1e-12)
    assert same["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert same["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert same["tracking_error"] == 0.0 and same["information_ratio"] is None
    assert same["up_capture"] == pytest.approx(1.0) and same["down_capture"] == pytest.approx(1.0)
    double = benchmark_metrics(2 * b + 1e-4, b)
    assert double["beta"] == pytest.approx(2.0, abs=1e-12)
    assert double["alpha"] == pytest.approx((1 + 1e-4) ** 252 - 1, rel=1e-9)


def test_unknown_or_uncovering_benchmark_is_a_config_error():
    res = run_backtest(_cfg())
    for name, text in (("nope", "report.benchmark: 'nope'"),):
        cfg = res.config.with_overrides(**{"report.benchmark": name})
        with pytest.raises(ConfigError, match=text):
            analyse(BacktestResult(**{**res.__dict__, "config": cfg}))


# --------------------------------------------------------------------------- round trips
def _hand_result(fills, closes, cash0=10_000.0) -> BacktestResult:
    """A ledger built the way the engine's is (cash flows at fill prices, commission apart)."""
    cal = pd.DatetimeIndex(closes.index)
    tx = pd.DataFrame(fills, columns=["date", "symbol", "size", "price", "commission"])
    tx["date"] = pd.to_datetime(tx["date"])
    tx["value"] = -tx["size"] * tx["price"]
    shares = (
        tx.pivot_table(index="date", columns="symbol", values="size", aggfunc="sum")
        .reindex(index=cal, columns=closes.columns)
        .fillna(0.0)
        .cumsum()
    )
    flow = (tx["value"] - tx["commission"]).groupby(tx["date"]).sum().reindex(cal, fill_value=0)
    values = shares * closes
    equity = values.sum(axis=1) + cash0 + flow.cumsum()
    positions = values.assign(cash=cash0 + flow.cumsum())
    cfg = config_from_mapping(
        {"name": "hand", "strategy": {"name": "buy_and_hold"}, "execution": {"initial_cash": cash0}}
    )
    return BacktestResult(
        config=cfg,
        equity=equity,
        returns=equity.pct_change().fillna(0.0),
        positions=positions,
        holdings=shares,
        transactions=tx,
        weights=values.div(equity, axis=0),
        metrics={},
    )


def test_round_trips_worked_by_hand():
    days = pd.bdate_range("2020-01-06", periods=6)
    closes = pd.DataFrame(
        {"a": [100.0, 105.0, 95.0, 120.0, 118.0, 130.0], "b": [50.0, 48.0, 45.0, 40.0, 44.0, 41.0]},
        index=days,
    )
    fills = [
        (days[0], "a", 10.0, 100.0, 1.0),  # lot 1: 10 @ 100, commission 0.10 a share
        (days[1], "a", 10.0, 105.0, 2.0),  # lot 2: 10 @ 105, commission 0.20 a share
        (days[3], "a", -15.0, 120.0, 3.0),  # closes lot 1 and half of lot 2, 0.20 a share
        (days[0], "b", -4.0, 50.0, 0.0),  # a short: 4 @ 50
        (days[4], "b", 4.0, 44.0, 0.0),  # covered at 44
    ]
    res = _hand_result(fills, closes)
    rt = round_trips(res)
    t = rt.trips.set_index(["symbol", "entry_date"])
    one = t.loc[("a", days[0])]
    assert one["size"] == 10 and one["exit_price"] == 120
    assert one["pnl"] == pytest.approx(10 * (120 - 100) - 10 * 0.1 - 10 * 0.2)  # 197
    assert one["return"] == pytest.approx(197 / (10 * 100.1))
    assert one["bars_held"] == 3 and one["days_held"] == 3
    # closes between entry and exit: 100, 105, 95, 120 -> worst -5%, best +20% (exit)
    assert one["mae"] == pytest.approx(-0.05) and one["mfe"] == pytest.approx(0.20)
    two = t.loc[("a", days[1])]
    assert two["size"] == 5
    assert two["pnl"] == pytest.approx(5 * (120 - 105) - 5 * 0.2 - 5 * 0.2)  # 73
    assert two["mae"] == pytest.approx(95 / 105 - 1)
    short = t.loc[("b", days[0])]
    assert short["side"] == "short" and short["pnl"] == pytest.approx(4 * (50 - 44))
    # the short's adverse move is up: the highest close was the entry's 50, best 40 (-20%)
    assert short["mae"] == pytest.approx(0.0) and short["mfe"] == pytest.approx(0.20)
    # open: 5 a @ 105 carrying 5 x 0.20 commission, marked at the last close 130
    assert rt.unrealised_pnl == pytest.approx(5 * (130 - 105) - 1.0)
    assert reconcile(res, rt) == pytest.approx(0.0, abs=1e-9)
    assert res.equity.iloc[-1] - 10_000 == pytest.approx(197 + 73 + 24 + 124)


def _reconcile_from_disk(folder: Path) -> None:
    """sum(round-trip P&L) == total P&L − the open lots' unrealised P&L, all read back from the
    files (the open lots' cost from transactions.csv, marked with positions.csv)."""
    tx = pd.read_csv(folder / "transactions.csv", parse_dates=["date"])
    trips = pd.read_csv(folder / "round_trips.csv", parse_dates=["entry_date", "exit_date"])
    positions = pd.read_csv(folder / "positions.csv", index_col="date")
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    cash0 = float(config["execution"]["initial_cash"])
    total = metrics["final_equity"] - cash0
    # every share bought or sold is in exactly one round trip or still open
    opened = tx.groupby("symbol")["size"].apply(lambda s: s.abs().sum())
    closed = trips.groupby("symbol")["size"].sum() * 2
    net = tx.groupby("symbol")["size"].sum()
    assert ((opened - closed.reindex(opened.index, fill_value=0) - net.abs()).abs() < 1e-6).all()
    # the open lots: FIFO leaves the latest fills of the position's side open
    unrealised = 0.0
    for symbol, held in net.items():
        if abs(held) < 1e-9:
            continue
        fills = tx[(tx["symbol"] == symbol) & (np.sign(tx["size"]) == np.sign(held))]
        left, side = abs(held), float(np.sign(held))
        unrealised += positions[symbol].iloc[-1]  # the open lots at the last close
        for _, f in fills.iloc[::-1].iterrows():
            take = min(left, abs(f["size"]))
            # a long lot cost its price and commission; a short lot took its price less commission
            unrealised -= side * take * f["price"] + take * f["commission"] / abs(f["size"])
            left -= take
            if left <= 1e-12:
                break
    # the files hold 10 significant digits: rounding scales with the money traded
    traded = float((tx["size"].abs() * tx["price"]).sum())
    assert trips["pnl"].sum() == pytest.approx(total - unrealised, rel=0, abs=1e-9 * traded)
    assert metrics["realised_pnl"] == pytest.approx(trips["pnl"].sum(), rel=1e-9)
    assert metrics["round_trips"] == len(trips)
    wins = trips.loc[trips["pnl"] > 0, "pnl"]
    assert metrics["hit_rate"] == pytest.approx(len(wins) / len(trips))
    assert metrics["profit_factor"] == pytest.approx(
        wins.sum() / -trips.loc[trips["pnl"] < 0, "pnl"].sum()
    )


@pytest.mark.parametrize("name", ["vratio", "momentum"])
def test_round_trips_reconcile_with_transactions_csv(name, tmp_path):
    folder = write_run(run_backtest(_cfg(name)), tmp_path)
    _reconcile_from_disk(folder)
    assert (folder / "report.html").is_file()


@pytest.mark.shared_data
def test_real_run_page_with_benchmark(shared_data, tmp_path):
    cfg = load_config(REPO / "configs" / "real" / "vratio.yaml").with_overrides(
        **{
            "report.benchmark": "spx",
            "report.tearsheet": False,
            "report.plots": False,
            "execution.commission.percent": 0.001,
        }
    )
    folder = write_run(run_backtest(cfg), tmp_path)
    _reconcile_from_disk(folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["benchmark"] == "spx" and -1 < metrics["correlation"] < 1
    page = (folder / "report.html").read_text(encoding="utf-8")
    for text in ("against spx", "Monthly returns", "Annual returns", "Round trips", "real_vratio"):
        assert text in page
    assert fmt("beta", metrics["beta"]) in page


def test_every_shipped_config_writes_a_run_page():
    files = sorted((REPO / "configs").glob("*.yaml")) + sorted(
        (REPO / "configs" / "real").glob("*.yaml")
    )
    assert len(files) > 15
    for path in files:
        assert load_config(path).report.html, path


def test_formatting():
    assert fmt("cagr", 0.7345) == "73.5%"
    assert fmt("max_drawdown", -0.8349) == "-83.5%"
    assert fmt("sharpe", 1.23456) == "1.23"
    assert fmt("final_equity", 1234567.8) == "1,234,568"
    assert fmt("trades", 12) == "12"
    assert fmt("start", pd.Timestamp("2020-01-02")) == "2020-01-02"
    assert fmt("sharpe", None) == "–" and fmt("sharpe", float("nan")) == "–"
