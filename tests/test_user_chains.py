"""The user's option chains (``data.datasets`` chain entries) read as ``column@<name>`` by
strategies and filters (engine.inputs.user_chains)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import volbacktest as vb
from volbacktest.engine.cli import main
from volbacktest.engine.inputs.chainseries import series_on_calendar

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the real 50ETF chain


def _real_ivix(shared_data, tmp_path, **data) -> dict:
    raw = yaml.safe_load((ROOT / "configs/real/ivix_timing.yaml").read_text(encoding="utf-8"))
    raw["data"].update(root=str(shared_data), **data)
    raw["report"] = {"out_dir": str(tmp_path / "out")}
    return raw


def test_a_copied_50etf_chain_gives_the_builtin_decisions(shared_data, tmp_path):
    """configs/real/ivix_timing.yaml reading ivix30@my50 (the JoinQuant file copied under a new
    name, declared in data.datasets) decides and scores exactly as with etf50_options."""
    folder = shared_data / "china_50etf"
    copy = tmp_path / "my_50etf_closes.csv"
    shutil.copyfile(folder / "50etf_options_daily_joinquant__TanTzs.csv", copy)
    entry = {
        "path": str(copy),
        "format": "50etf",
        "underlying": "etf50",
        "rates": "shibor",
        "contracts": str(folder / "50ETF_options_contract_list__zhenfelix.csv"),
    }
    builtin = vb.run(_real_ivix(shared_data, tmp_path))
    mine_raw = _real_ivix(shared_data, tmp_path, datasets={"my50": entry})
    mine_raw["strategy"]["params"]["chain"] = "my50"
    mine = vb.run(mine_raw)
    assert mine.config.plan.inputs() == ("ivix30@my50",)
    assert builtin.metrics["trades"] > 0
    pd.testing.assert_frame_equal(mine.weights, builtin.weights)
    pd.testing.assert_series_equal(mine.equity, builtin.equity)
    differ = {k for k in builtin.metrics if mine.metrics[k] != builtin.metrics[k]}
    assert differ == {"rule"}  # the rule names the chain
    assert "(iVIX from my50)" in mine.metrics["rule"]
    notes = " | ".join(mine.notes)
    assert "my50: option chain from my_50etf_closes.csv (format 50etf" in notes
    assert "policy removed 52463 of 288756 rows" in notes  # the built-in chain's policy
    assert "checked but not read" not in notes


def test_a_chain_entry_wins_over_the_builtin_of_its_name(shared_data, tmp_path):
    """An entry named etf50_options replaces the built-in chain (one year), and the notes say
    so; the iVIX is the same because the file is."""
    folder = shared_data / "china_50etf"
    copy = tmp_path / "etf50_copy.csv"
    shutil.copyfile(folder / "50etf_options_daily_joinquant__TanTzs.csv", copy)
    entry = {
        "path": str(copy),
        "format": "auto",  # detected from the JoinQuant header
        "underlying": "etf50",
        "rates": "shibor",
        "contracts": str(folder / "50ETF_options_contract_list__zhenfelix.csv"),
    }
    window = {"start": "2017-01-03", "end": "2017-12-29"}
    builtin = vb.run(_real_ivix(shared_data, tmp_path, **window))
    mine = vb.run(_real_ivix(shared_data, tmp_path, **window, datasets={"etf50_options": entry}))
    assert "used instead of the built-in chain dataset 'etf50_options'" in " ".join(mine.notes)
    pd.testing.assert_frame_equal(mine.weights, builtin.weights)
    assert mine.metrics == builtin.metrics


# --------------------------------------------------------------------------- a hand-made chain

SPOT = 3.0


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _black_scholes(cp: str, s: float, k: float, t: float, vol: float) -> float:
    """Black-Scholes with zero rate and no dividend (the first-principles reference)."""
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if cp == "C":
        return s * _ncdf(d1) - k * _ncdf(d2)
    return k * _ncdf(-d2) - s * _ncdf(-d1)


def _hand_made(folder) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """A generic long chain (own column names) of Black-Scholes prices with a flat smile whose
    volatility moves from day to day, and the underlying's closes."""
    days = pd.bdate_range("2021-02-01", "2021-03-31")
    i = np.arange(len(days))
    spot = SPOT * np.exp(0.01 * np.sin(i / 3.0))
    vols = 0.20 + 0.05 * (1.0 + np.sin(i / 4.0))
    expiries = pd.to_datetime(["2021-02-24", "2021-03-24", "2021-04-28", "2021-05-26"])
    strikes = np.round(np.arange(2.0, 4.001, 0.05), 2)
    rows = []
    for day, s, vol in zip(days, spot, vols, strict=True):
        for expiry in expiries[expiries > day]:
            t = (expiry - day).days / 365.0
            for k in strikes:
                for cp in "CP":
                    price = round(_black_scholes(cp, s, k, t, vol), 6)
                    rows.append((f"{day:%Y-%m-%d}", f"{expiry:%Y-%m-%d}", cp, k, price))
    columns = ["Day", "Expiry", "Type", "Strike", "Price"]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "chain.csv", index=False)
    pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Close": spot}).to_csv(
        folder / "under.csv", index=False
    )
    return days, vols, spot


def _own_cfg(folder, **chain_entry) -> dict:
    entry = {
        "path": str(folder / "chain.csv"),
        "format": "chain",
        "underlying": "under",
        "columns": {
            "trade_date": "Day",
            "expiry": "Expiry",
            "cp": "Type",
            "strike": "Strike",
            "close": "Price",
        },
        **chain_entry,
    }
    return {
        "name": "own_chain",
        "strategy": {
            "name": "ivix_timing",
            "params": {
                "asset": "under",
                "chain": "mychain",
                "short_window": 1,
                "long_window": 3,
                "threshold": 0.02,
            },
        },
        "filters": [
            {"type": "rnd_tail", "chain": "mychain", "threshold": 0.5, "action": "block_entries"}
        ],
        "data": {
            "source": "files",
            "datasets": {"under": {"path": str(folder / "under.csv")}, "mychain": entry},
        },
        "report": {"out_dir": str(folder / "out")},
    }


def test_a_generic_chain_feeds_the_strategy_and_a_filter(tmp_path):
    """ivix_timing and the rnd_tail filter read a hand-made generic chain: the iVIX of a flat
    Black-Scholes smile is its volatility (x100) up to the strike grid's discretisation, and
    the 30-day left tail is the lognormal P[S_T < 0.9 S] = N((ln 0.9 + vol^2 T / 2) /
    (vol sqrt T)) (zero rate, so the forward is the spot)."""
    days, vols, _ = _hand_made(tmp_path)
    res = vb.run(_own_cfg(tmp_path))
    assert res.config.plan.inputs() == ("ivix30@mychain", "rnd_left_tail@mychain")
    assert res.metrics["trades"] > 0  # the moving volatility makes the rule trade
    assert "filter: rnd_tail: P[S_30d < 0.9 S] > 0.5 on mychain" in res.metrics["rule"]
    assert "mychain: option chain from chain.csv (format chain" in " ".join(res.notes)
    calendar = pd.DatetimeIndex(days)
    ivix = series_on_calendar("ivix30@mychain", calendar, res.config.data).to_numpy()
    np.testing.assert_allclose(ivix, 100 * vols, rtol=0.01)
    tail = series_on_calendar("rnd_left_tail@mychain", calendar, res.config.data).to_numpy()
    t = 30 / 365
    ref = np.array([_ncdf((math.log(0.9) + 0.5 * v * v * t) / (v * math.sqrt(t))) for v in vols])
    # exact where an expiry is 30 days ahead (2021-03-24 from 02-22, 04-28 from 03-29); other
    # dates interpolate the tail probability between two expiries in time (off by up to 0.04)
    exact = calendar.isin(pd.to_datetime(["2021-02-22", "2021-03-29"]))
    np.testing.assert_allclose(tail[exact], ref[exact], atol=5e-4)
    assert np.all(np.abs(tail - ref) < 0.05)


# --------------------------------------------------------------------------- bad cases


def _write_cfg(tmp_path, cfg) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


def _price_instead_of_chain(cfg):
    cfg["data"]["datasets"]["mychain"] = {"path": cfg["data"]["datasets"]["under"]["path"]}


def _no_underlying(cfg):
    del cfg["data"]["datasets"]["mychain"]["underlying"]


def _unknown_chain(cfg):
    cfg["filters"] = [{"type": "rnd_tail", "chain": "nochain", "threshold": 0.5}]


def _chain_as_series(cfg):
    cfg["strategy"] = {"name": "buy_and_hold", "params": {"asset": "mychain"}}
    cfg["filters"] = []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_no_underlying, "data.datasets.mychain.underlying: missing"),
        (_price_instead_of_chain, "data.datasets.mychain: under.csv is a price series, not an"),
        (_unknown_chain, "filters.0.chain: unknown option-chain dataset 'nochain'"),
        (_chain_as_series, "data.datasets.mychain: a chain option chain, not a price series"),
    ],
    ids=["missing underlying", "price file as chain", "unknown chain", "chain as series"],
)
def test_bad_chain_entries_exit_2_with_a_named_error(tmp_path, capsys, change, expected):
    _hand_made(tmp_path)
    cfg = _own_cfg(tmp_path)
    change(cfg)
    assert main(["run", _write_cfg(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_an_unknown_series_column_of_a_user_chain_is_named(tmp_path):
    _hand_made(tmp_path)
    cfg = vb.load_config(_write_cfg(tmp_path, _own_cfg(tmp_path)))
    with pytest.raises(vb.ConfigError, match="unknown chain series 'ivix99' in 'ivix99@mychain'"):
        series_on_calendar("ivix99@mychain", pd.DatetimeIndex(["2021-02-01"]), cfg.data)
