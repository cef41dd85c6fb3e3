"""Config validation: every bad config exits 2 with one message naming file, key and fix."""

import textwrap
from pathlib import Path

import pytest

from volbacktest.engine.cli import main
from volbacktest.engine.inputs.config import load_config

REPO = Path(__file__).resolve().parents[1]

BAD = [
    (
        "unknown top-level key",
        "strategy: {name: vratio}\nexection: {fill: next_close}\n",
        ["exection", "did you mean 'execution'", "valid keys"],
    ),
    (
        "misspelt strategy",
        "strategy: {name: vratoi}\n",
        ["strategy.name", "unknown strategy 'vratoi'", "did you mean 'vratio'", "buy_and_hold"],
    ),
    (
        "misspelt strategy param",
        "strategy: {name: vratio, params: {windw: 20}}\n",
        ["strategy.params.windw", "did you mean 'window'", "valid keys"],
    ),
    (
        "negative window",
        "strategy: {name: vratio, params: {window: -5}}\n",
        ["strategy.params.window", "greater than or equal to 1", "-5"],
    ),
    (
        "wrong type",
        "strategy: {name: vrp, params: {hv_window: ten}}\n",
        ["strategy.params.hv_window", "valid integer", "'ten'"],
    ),
    (
        "bad fill mode",
        "strategy: {name: vratio}\nexecution: {fill: next_clse}\n",
        ["execution.fill", "did you mean 'next_close'", "same_close"],
    ),
    (
        "end before start",
        "strategy: {name: vratio}\ndata: {start: 2015-01-01, end: 2010-01-01}\n",
        ["data", "end 2010-01-01 is not after start 2015-01-01"],
    ),
    (
        "negative commission",
        "strategy: {name: vratio}\nexecution: {commission: {percent: -0.01}}\n",
        ["execution.commission.percent", "greater than or equal to 0"],
    ),
    (
        "unknown data source",
        "strategy: {name: vratio}\ndata: {source: yahoo}\n",
        ["data.source", "'synthetic', 'shared' or 'files'"],
    ),
    ("missing strategy", "name: x\n", ["strategy: required key is missing"]),
    (
        "bad orientation",
        "strategy: {name: vratio, params: {orientation: vxv_over_vix}}\n",
        ["strategy.params.orientation", "vix3m_over_vix"],
    ),
    ("not a mapping", "- just\n- a list\n", ["must hold a mapping"]),
    ("invalid yaml", "strategy: {name: vratio\n", ["not valid YAML", "line"]),
    (
        "zero cash",
        "strategy: {name: vratio}\nexecution: {initial_cash: 0}\n",
        ["execution.initial_cash", "greater than 0"],
    ),
    (
        "stdev choice",
        "strategy: {name: vrp, params: {stdev: sampel}}\n",
        ["strategy.params.stdev", "did you mean 'sample'"],
    ),
    ("empty file", "", ["empty"]),
]


@pytest.mark.parametrize(("label", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_exits_2_with_message(label, text, expected, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {path}")
    for piece in expected:
        assert piece in err, f"{label}: {piece!r} not in {err!r}"


def test_missing_file_names_path(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: config file not found" in capsys.readouterr().err


def test_missing_data_root_names_roots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VOLBT_DATA_ROOT", str(tmp_path / "nowhere"))
    cfg = tmp_path / "real.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            strategy: {{name: vratio}}
            data: {{source: shared, root: {tmp_path / "empty"}}}
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)  # so ../shared/data relative paths cannot leak in
    rc = main([str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(tmp_path / "empty") in err
    assert "Traceback" not in err


def test_every_shipped_config_validates():
    # sweep files (configs/sweeps) are backtest configs plus sweep:/split: blocks; the sweep
    # tests validate those
    files = sorted(f for f in (REPO / "configs").rglob("*.yaml") if "sweeps" not in f.parts)
    assert len(files) >= 12
    for f in files:
        cfg = load_config(f)
        assert cfg.name
        assert cfg.params.describe()


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(REPO / "configs" / "vratio.yaml")
    from volbacktest.engine.inputs.config import dump_config

    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(again).resolved() == cfg.resolved()
