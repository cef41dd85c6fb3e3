"""The user's own data: data.datasets files, DataFrames from Python, the checks every price series
goes through, plain outputs and run.json provenance.

The reference is configs/real/vratio.yaml on the catalogue (real Cboe and Yahoo files nobody
here wrote): the same files under other names, or as DataFrames, must give identical metrics.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import volbacktest as vb
from volbacktest.data import loaders
from volbacktest.engine.calculators.series_checks import gaps, spike_rows, stale_runs
from volbacktest.engine.cli import main
from volbacktest.engine.errors import DataError
from volbacktest.engine.inputs.config import load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "examples" / "own_files.yaml"
FILES = {  # dataset -> shared file
    "vix": "cboe_vix_index/VIX_History.csv",
    "vix3m": "cboe_vix_index/VIX3M_History.csv",
    "xiv": "vix_etns/XIV_close_stitched_DERIVED.csv",
    "vxx": "vix_etns/VXX_yahoo_adjusted__johnngo.csv",
}
VXX_NULL_ROWS = ["2018-01-01", "2018-01-15"]


# describe the inputs rather than the result: where the data came from, and how much history
# before data.start the signals could read (the shipped VIX3M_History.csv starts 2009-09-18; the
# catalogue's vix3m splices an older file in front of it, so its warm-up is longer; both are
# far more than VRatio's 10 bars, so every decision and figure is the same)
_INPUT_RECORDS = ("data_source", "warmup")


def _same_metrics(a: dict, b: dict) -> None:
    differ = {k: (a[k], b.get(k)) for k in a if k not in _INPUT_RECORDS and a[k] != b.get(k)}
    assert not differ, differ
    assert a["first_decision"] == b["first_decision"]


@pytest.fixture(scope="module")
def reference(shared_data) -> dict:
    return vb.run(REPO / "configs" / "real" / "vratio.yaml").metrics


# --------------------------------------------------------------------------- the kernels
def test_spike_rule_finds_a_reversing_typo_not_a_crash():
    closes = np.array([20.0, 21.0, 210.0, 21.5, 22.0, 4.0, 4.1, 4.2])  # x10 typo, then a crash
    assert np.flatnonzero(spike_rows(closes, 0.7)).tolist() == [2]


def test_stale_and_gap_rules_count_rows_and_sessions():
    assert stale_runs([1, 2, 2, 2, 2, 3], 3) == [(1, 4)]
    assert stale_runs([1, 2, 2, 2, 3], 3) == []
    days = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-21", "2020-01-22"])
    sessions = pd.bdate_range("2020-01-01", "2020-01-31")
    assert gaps(days, sessions, 10) == [(1, 2, 11)]  # 6..20 January: 11 weekdays
    assert gaps(days, sessions, 11) == []


# --------------------------------------------------------------------------- reproduction
@pytest.mark.shared_data
def test_example_config_reproduces_real_vratio(reference):
    cfg = load_config(EXAMPLE)
    assert cfg.data.source == "files" and set(cfg.data.datasets) == set(FILES)
    res = vb.run(cfg)
    _same_metrics(reference, res.metrics)
    assert res.metrics["data_source"] == "files"


@pytest.mark.shared_data
def test_renamed_copies_in_a_temporary_folder_reproduce_it(shared_data, reference, tmp_path):
    mine = tmp_path / "project" / "my data"
    mine.mkdir(parents=True)
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for i, (name, rel) in enumerate(FILES.items()):
        copy = mine / f"series_{i}.txt"  # new names, an extension no loader keys on
        shutil.copyfile(shared_data / rel, copy)
        raw["data"]["datasets"][name]["path"] = f"my data/{copy.name}"  # relative to the config
    raw["name"] = "renamed"
    config = tmp_path / "project" / "renamed.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out), "--no-tearsheet"]) == 0
    folder = out / "renamed"
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    _same_metrics(reference, metrics)

    # every CSV reads without options, the header on line 1
    for csv in folder.glob("*.csv"):
        frame = pd.read_csv(csv)
        assert len(frame) and not any(str(c).startswith("#") for c in frame.columns), csv
    assert pd.read_csv(folder / "returns.csv").columns.tolist() == ["date", "return"]

    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    for key in ("version", "git", "python", "libraries", "config", "config_sha256", "datasets"):
        assert run[key] is not None, key
    assert {"numpy", "pandas", "backtrader"} <= set(run["libraries"])
    assert set(run["git"]) == {"commit", "dirty"}
    assert run["labels"]["fill"] == "next_close"
    canonical = json.dumps(run["config"], sort_keys=True, separators=(",", ":"))
    assert run["config_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    by_name = {d["name"]: d for d in run["datasets"]}
    assert set(by_name) == set(FILES)
    vix = by_name["vix"]
    copy = mine / "series_0.txt"
    assert vix["path"] == str(copy) and vix["bytes"] == copy.stat().st_size
    assert vix["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert (vix["rows"], vix["first"], vix["last"]) == (8484, "1990-01-02", "2023-08-25")


@pytest.mark.shared_data
def test_the_same_data_as_dataframes_reproduces_it(shared_data, reference):
    vxx = loaders.load_yahoo_ohlcv(shared_data / FILES["vxx"], acknowledged=VXX_NULL_ROWS)
    frames = {
        "vix": loaders.load_cboe_index(shared_data / FILES["vix"]),
        "vix3m": loaders.load_cboe_index(shared_data / FILES["vix3m"]),
        "xiv": pd.read_csv(shared_data / FILES["xiv"], index_col="date", parse_dates=True)[
            "close_split_adjusted"
        ],
        "vxx": loaders.adjust_to_total_return(vxx),
    }
    cfg = load_config(REPO / "configs" / "real" / "vratio.yaml")
    res = vb.run(cfg, data=frames)
    _same_metrics(reference, res.metrics)
    assert {d["source"] for d in res.result.provenance} == {"python frame"}


# --------------------------------------------------------------------------- policies
def _series(days: int = 40, start: str = "2010-03-01") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=days)
    close = 20.0 + np.sin(np.arange(days) / 3.0)
    return pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": np.round(close, 4)})


def _vratio(tmp_path: Path, entry: dict, **data) -> Path:
    """A synthetic-market vratio config whose vix comes from ``entry``."""
    cfg = {
        "name": "mine",
        "strategy": {"name": "vratio", "params": {"window": 5}},
        "data": {
            "start": "2010-03-01",
            "end": "2010-04-23",
            "datasets": {"vix": entry},
            **data,
        },
        "report": {"plots": False, "tearsheet": False},
    }
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_user_entry_wins_over_the_source_and_the_notes_say_so(tmp_path):
    _series().to_csv(tmp_path / "vix.csv", index=False)
    res = vb.run(_vratio(tmp_path, {"path": "vix.csv"}))
    notes = "\n".join(res.notes)
    assert "vix: format auto -> yahoo" not in notes  # no Open/High/Low: generic csv
    assert "format auto -> csv" in notes
    assert "used instead of the synthetic source's 'vix'" in notes


def test_on_problem_warn_runs_and_lists_the_problem(tmp_path):
    frame = _series()
    frame.loc[10, "Close"] *= 10
    frame.to_csv(tmp_path / "vix.csv", index=False)
    res = vb.run(_vratio(tmp_path, {"path": "vix.csv", "format": "csv"}, on_problem="warn"))
    spike = [n for n in res.notes if "spike" in n]
    assert len(spike) == 1 and "vix.csv line 12" in spike[0] and "2010-03-15" in spike[0]
    out = res.save(tmp_path / "out")
    assert spike[0] in json.loads((out / "run.json").read_text(encoding="utf-8"))["notes"]


def test_parquet_outputs_and_input(tmp_path):
    frame = _series()
    frame.rename(columns={"Date": "day", "Close": "settle"}).assign(
        day=lambda f: pd.to_datetime(f["day"])
    ).to_parquet(tmp_path / "vix.parquet")
    entry = {"path": "vix.parquet", "columns": {"date": "day", "close": "settle"}}
    path = _vratio(tmp_path, entry)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["report"]["format"] = "parquet"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    res = vb.run(path)
    assert "vix: format auto -> parquet (the .parquet extension)" in res.notes
    out = res.save(tmp_path / "out")
    returns = pd.read_parquet(out / "returns.parquet")
    assert returns.index.name == "date" and np.allclose(returns["return"], res.returns)
    assert not list(out.glob("*.csv"))


def test_newest_first_file_is_read_oldest_first(tmp_path):
    frame = _series()
    frame.iloc[::-1].to_csv(tmp_path / "vix.csv", index=False)
    loaded = vb.run(_vratio(tmp_path, {"path": "vix.csv", "format": "csv"}))
    frame.to_csv(tmp_path / "vix.csv", index=False)
    plain = vb.run(_vratio(tmp_path, {"path": "vix.csv", "format": "csv"}))
    _same_metrics(plain.metrics, loaded.metrics)


def test_datasets_command_shows_resolved_datasets(tmp_path, capsys):
    _series().to_csv(tmp_path / "vix.csv", index=False)
    assert main(["datasets", str(_vratio(tmp_path, {"path": "vix.csv"}))]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("vix "))
    assert "file" in row and "csv (auto)" in row and "40" in row and "2010-03-01" in row
    assert "synthetic" in next(line for line in out.splitlines() if "xiv" in line)
    assert main(["datasets"]) == 0
    assert "etf50_options" in capsys.readouterr().out  # chain datasets listed


# --------------------------------------------------------------------------- bad user files
def _csv(text: str | bytes, name: str = "vix.csv"):
    def write(folder: Path) -> str:
        if isinstance(text, bytes):
            (folder / name).write_bytes(text)
        else:
            (folder / name).write_text(text, encoding="utf-8")
        return name

    return write


def _rows(edit=None, **kw):
    def write(folder: Path) -> str:
        frame = _series()
        if edit:
            frame = edit(frame)
        frame.to_csv(folder / "vix.csv", index=False, **kw)
        return "vix.csv"

    return write


def _at(row, col, value):
    def edit(frame):
        frame = frame.astype({col: object})
        frame.loc[row, col] = value
        return frame

    return edit


def _chain(change: dict):
    def write(folder: Path) -> str:
        rows = {
            "trade_date": ["2010-03-01", "2010-03-01"],
            "expiry": ["2010-04-16", "2010-04-16"],
            "cp": ["C", "P"],
            "strike": ["20", "20"],
            "bid": ["1.0", "1.1"],
            "ask": ["1.2", "1.3"],
        }
        for col, (i, v) in change.items():
            rows[col][i] = v
        pd.DataFrame(rows).to_csv(folder / "chain.csv", index=False)
        return "chain.csv"

    return write


def _parquet_wrong(folder: Path) -> str:
    pd.DataFrame({"when": pd.bdate_range("2010-03-01", periods=5), "px": 1.0}).to_parquet(
        folder / "vix.parquet"
    )
    return "vix.parquet"


def _ambiguous(frame):
    return frame.assign(Date=pd.to_datetime(frame["Date"]).dt.strftime("%d/%m/%Y"))[:8]


def _gap(frame):
    return pd.concat([frame[:10], frame[25:]])


_SPIKE = _at(10, "Close", 203.0)
_DECIMAL = "Date;Close\n" + "\n".join(f"2010-03-{d:02d};20,{d}" for d in range(1, 30)) + "\n"
_CHAIN = {"format": "chain"}

# label -> (file writer, entry overrides, pieces the one error line must hold)
BAD_FILES = {
    "DD/MM dates all <= 12": (_rows(_ambiguous), {}, ["vix.csv", "ambiguous", "date_format"]),
    "M/D and D/M mixed": (
        _csv("Date,Close\n13/01/2010,20\n01/14/2010,21\n"),
        {},
        ["vix.csv", "line 2", "inconsistent"],
    ),
    "unsorted (neither order)": (
        _rows(lambda f: f.iloc[[0, 2, 1, *range(3, 40)]]),
        {},
        ["vix.csv", "out of order", "data.on_problem: warn"],
    ),
    "semicolon separator": (
        _csv("Date;Close\n2010-03-01;20\n2010-03-02;21\n"),
        {"format": "auto"},
        ["vix.csv", "';'", "sep"],
    ),
    "decimal comma, not declared": (
        _csv(_DECIMAL),
        {"sep": ";"},
        ["vix.csv", "line 2", "'Close'", "decimal: ','"],
    ),
    "decimal comma in a comma file": (
        _csv('Date,Close\n2010-03-01,"20,5"\n2010-03-02,"21,5"\n'),
        {},
        ["vix.csv", "line 2", "decimal"],
    ),
    "duplicate dates": (
        _rows(lambda f: f.assign(Date=f["Date"].where(f.index != 5, f["Date"][4]))),
        {},
        ["vix.csv", "duplicate", "lines 6, 7"],
    ),
    "'null' rows": (_rows(_at(7, "Close", "null")), {}, ["vix.csv", "2010-03-10", "acknowledge"]),
    "zero price": (_rows(_at(3, "Close", 0.0)), {}, ["vix.csv", "line 5", "'Close'", "<= 0"]),
    "negative price": (_rows(_at(3, "Close", -2.0)), {}, ["vix.csv", "line 5", "<= 0"]),
    "text in a price column": (
        _rows(_at(4, "Close", "n.a.")),
        {},
        ["vix.csv", "line 6", "'Close'", "non-numeric"],
    ),
    "x10 one-day spike": (_rows(_SPIKE), {}, ["vix.csv line 12", "2010-03-15", "spike", "fix:"]),
    "stale constant tail": (
        _rows(lambda f: f.assign(Close=f["Close"].where(f.index < 20, 27.32))),
        {},
        ["vix.csv line", "2010-03-29..2010-04-23", "stale", "27.32", "fix:"],
    ),
    "long gap": (_rows(_gap), {}, ["vix.csv line", "gap", "15 sessions (weekdays)", "fix:"]),
    "empty file": (_csv(""), {}, ["vix.csv", "empty", "header"]),
    "header-only file": (_csv("Date,Close\n"), {}, ["vix.csv", "line 1", "no data rows"]),
    "missing column named in columns": (
        _rows(),
        {"columns": {"close": "Settle"}},
        ["vix.csv", "columns: close: 'Settle'", "Date, Close"],
    ),
    "no close column": (
        _csv("Date,Price\n2010-03-01,20\n2010-03-02,21\n"),
        {},
        ["vix.csv", "close", "columns:"],
    ),
    "high below low": (
        _csv("Date,Open,High,Low,Close\n2010-03-01,20,19,21,20\n2010-03-02,20,21,19,20\n"),
        {"format": "yahoo"},
        ["vix.csv", "high < low", "lines 2", "2010-03-01"],
    ),
    "impossible date": (
        _csv("Date,Close\n2010-02-27,20\n2010-02-30,21\n"),
        {},
        ["vix.csv", "line 3", "impossible"],
    ),
    "text in the date column": (
        _csv("Date,Close\n2010-03-01,20\nyesterday,21\n"),
        {},
        ["vix.csv", "line 3", "not dates"],
    ),
    "chain with crossed quotes": (
        _chain({"bid": (1, "1.5")}),
        _CHAIN,
        ["chain.csv", "crossed", "line 3"],
    ),
    "chain expiry before trade date": (
        _chain({"expiry": (0, "2010-02-19")}),
        _CHAIN,
        ["chain.csv", "expiry before the trade date", "line 2"],
    ),
    "chain strikes as text": (
        _chain({"strike": (1, "twenty")}),
        _CHAIN,
        ["chain.csv", "'strike'", "line 3", "non-numeric"],
    ),
    "unknown format name": (
        _rows(),
        {"format": "cbeo"},
        ["format", "'cbeo'", "did you mean 'cboe'"],
    ),
    "unknown entry key": (
        _rows(),
        {"colums": {}},
        ["data.datasets.vix.colums", "did you mean 'columns'"],
    ),
    "kind that contradicts the strategy": (
        _rows(),
        {"kind": "tradable"},
        ["data.datasets.vix.kind", "only reads 'vix'", "kind: signal"],
    ),
    "path that does not exist": (
        lambda folder: "nowhere/vix.csv",
        {},
        ["data.datasets.vix.path", "nowhere/vix.csv", "fix the path"],
    ),
    "Parquet with the wrong schema": (
        _parquet_wrong,
        {"format": "auto"},
        ["vix.parquet", "'close'", "when, px"],
    ),
    "CSV named .parquet": (
        _csv("Date,Close\n", "vix.parquet"),
        {"format": "auto"},
        ["vix.parquet", "not a readable Parquet"],
    ),
    "binary file": (
        _csv(b"\x89PNG\r\n\x1a\n\x00\x00\x00"),
        {"format": "csv"},
        ["vix.csv", "binary"],
    ),
}


@pytest.mark.parametrize("label", list(BAD_FILES))
def test_bad_user_file_exits_2_with_one_message(label, tmp_path, capsys):
    write, overrides, pieces = BAD_FILES[label]
    name = write(tmp_path)
    entry = {"path": name, "format": "csv", **overrides}
    key = "chain" if overrides is _CHAIN else "vix"
    config = _vratio(tmp_path, {"path": "unused.csv"} if key == "chain" else entry)
    if key == "chain":
        _series().to_csv(tmp_path / "unused.csv", index=False)
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        raw["data"]["datasets"]["chain"] = entry
        config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    for piece in pieces:
        assert piece in err, f"{label}: {piece!r} not in {err!r}"
    assert not (out / "mine").exists()


def test_at_least_25_bad_files():
    assert len(BAD_FILES) >= 25


def test_loader_errors_name_the_line_for_a_plain_call(tmp_path):
    (tmp_path / "x.csv").write_text("Date,Close\n2010-03-01,20\n2010-03-02,abc\n", "utf-8")
    with pytest.raises(DataError, match="line 3"):
        loaders.load_columns(tmp_path / "x.csv")


def test_sweep_store_records_provenance_once(tmp_path):
    import sqlite3

    spec = {
        "name": "tiny_sweep",
        "strategy": {"name": "vratio"},
        "data": {"synthetic": {"seed": 11, "start": "2008-01-02", "end": "2009-12-31"}},
        "sweep": {"grid": {"window": [5, 10]}, "top": 1, "executor": "vectorised"},
    }
    out = vb.sweep(spec, out=tmp_path, report=False, progress=False)
    with sqlite3.connect(out.store_path) as con:
        rows = con.execute("SELECT value FROM meta WHERE key = 'provenance'").fetchall()
    assert len(rows) == 1
    record = json.loads(rows[0][0])
    assert record == json.loads((out.folder / "run.json").read_text(encoding="utf-8"))
    assert {d["name"] for d in record["datasets"]} == {"xiv", "vxx", "vix", "vix3m"}
    assert {d["seed"] for d in record["datasets"]} == {11}
    assert record["version"] and "pandas" in record["libraries"] and "config_sha256" in record


@pytest.mark.shared_data
def test_vendor_chain_layouts_are_detected_and_loaded(shared_data):
    from volbacktest.data.user_files import FileEntry, load_user_file

    for name, rel, fmt, rows in (
        ("gs", "us_option_chains/option_GS_df.csv", "gs", 858),
        ("spx", "us_option_chains/SPX-Options-24jan2011.csv", "spx_quotes", 1920),
    ):
        loaded = load_user_file(name, FileEntry(shared_data / rel), on_problem="stop")
        assert loaded.is_chain and loaded.format == fmt and len(loaded.frame) == rows
        assert loaded.detected.startswith(f"{name}: format auto -> {fmt}")
        assert {"trade_date", "expiry", "cp", "strike"} <= set(loaded.frame.columns)
