"""The command line: commands, help texts, the CONFIG.yaml shortcut, did-you-mean, --version,
logging options, exit statuses and --data-root."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from volbacktest.engine.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]
SHORT = {"synthetic": {"start": "2015-01-02", "end": "2016-12-30"}}


def _config(tmp_path: Path, name: str = "cli_small", **data) -> Path:
    raw = {
        "name": name,
        "strategy": {"name": "vratio"},
        "data": data or SHORT,
        "report": {"out_dir": str(tmp_path / "results"), "tearsheet": False, "plots": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# --------------------------------------------------------------------------- help
def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: volbacktest ")
    for command in COMMANDS:
        assert f"\n    {command} " in out, command
    assert "volbacktest configs/vratio.yaml" in out  # the shortcut's example


def test_parser_has_exactly_the_commands():
    assert list(_subparsers(build_parser())) == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_shows_its_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: volbacktest {command} ")
    example = out.split("\nexample:\n", 1)[1]
    assert f"volbacktest {command} " in example
    # the example keeps its lines (a raw formatter): every line starts with two spaces
    assert all(line.startswith("  ") for line in example.strip("\n").splitlines())


def test_every_option_of_every_parser_has_help():
    parser = build_parser()
    parsers = {"volbacktest": parser, **_subparsers(parser)}
    for name, p in parsers.items():
        assert p.description, name
        if name != "volbacktest":
            assert "example:" in (p.epilog or ""), name
        for action in p._actions:
            text = action.help
            assert text and text is not argparse.SUPPRESS and text.strip(), (
                f"{name}: {action.option_strings or action.dest} has no help"
            )
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(c.help for c in choices._choices_actions)


def test_python_m_volbacktest_help_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "volbacktest", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert f"\n    {command} " in done.stdout, command


# --------------------------------------------------------------------------- usage errors
def test_unknown_command_suggests_the_closest(capsys):
    assert main(["sweeep", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'sweeep'" in err and "did you mean 'sweep'" in err
    assert ", ".join(COMMANDS) in err
    assert "config file not found" not in err


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["run", "x.yaml", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: volbacktest" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"volbacktest {version('volbacktest')}\n"


def test_missing_config_exits_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: config file not found")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [["--debug", "run", "MISSING"], ["MISSING", "--debug"], ["compare", "MISSING", "--debug", "B"]],
    ids=["before", "after", "between"],
)
def test_debug_shows_the_traceback(argv, tmp_path, capsys):
    names = {"MISSING": str(tmp_path / "nope.yaml"), "B": str(tmp_path / "b.yaml")}
    assert main([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err


# --------------------------------------------------------------------------- logging
@pytest.mark.parametrize(
    ("argv", "level"),
    [
        ([], logging.WARNING),
        (["-q"], logging.ERROR),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["--debug"], logging.DEBUG),
        (["datasets", "--quiet"], logging.ERROR),
        (["datasets", "--verbose"], logging.INFO),
        (["-v", "datasets", "-v"], logging.DEBUG),  # counted before and after the command
        (["datasets", "--debug"], logging.DEBUG),
    ],
)
def test_verbosity_options_set_the_log_level(argv, level, capsys):
    argv = argv if "datasets" in argv else [*argv, "datasets"]
    assert main(argv) == 0
    assert logging.getLogger("volbacktest").level == level
    assert "search roots:" in capsys.readouterr().out


# --------------------------------------------------------------------------- running
def _outputs(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    returns = (folder / "returns.csv").read_text(encoding="utf-8")
    return {"metrics": metrics, "returns": returns}


def test_config_shortcut_equals_run(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), "--out", str(tmp_path / "a")]) == 0
    via_run = capsys.readouterr().out
    assert main([str(cfg), "--out", str(tmp_path / "b")]) == 0
    via_shortcut = capsys.readouterr().out
    # options of `run` before the config, global options before and after
    assert main(["-q", "--out", str(tmp_path / "c"), str(cfg), "--no-tearsheet", "--debug"]) == 0
    opts_first = capsys.readouterr().out
    a = _outputs(tmp_path / "a" / "cli_small")
    assert a["metrics"]["trades"] > 0
    assert _outputs(tmp_path / "b" / "cli_small") == a
    assert _outputs(tmp_path / "c" / "cli_small") == a
    assert via_shortcut.replace(str(tmp_path / "b"), "X") == via_run.replace(
        str(tmp_path / "a"), "X"
    )
    assert opts_first.replace(str(tmp_path / "c"), "X") == via_run.replace(str(tmp_path / "a"), "X")


@pytest.fixture
def no_default_data(monkeypatch, tmp_path):
    """No data search root besides the one a test gives (no $VOLBT_DATA_ROOT, no
    ../shared/data), and a working folder where relative paths cannot find the shared data."""
    from volbacktest.data import catalogue

    monkeypatch.setenv("VOLBT_DATA_ROOT", str(tmp_path / "nowhere"))
    monkeypatch.setattr(catalogue, "DEFAULT_DATA_ROOT", None)
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty_root"
    empty.mkdir()
    return empty


def test_data_root_reaches_the_config(tmp_path, no_default_data, capsys):
    cfg = _config(tmp_path, source="shared")
    rc = main(["run", str(cfg), "--data-root", str(no_default_data)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(no_default_data) in err and "Traceback" not in err
    rc = main(["compare", str(cfg), "--data-root", str(no_default_data)])
    err = capsys.readouterr().err
    assert rc == 2 and str(no_default_data) in err, err


def test_data_root_reaches_the_sweep(tmp_path, no_default_data, capsys):
    raw = yaml.safe_load(_config(tmp_path, source="shared").read_text(encoding="utf-8"))
    raw["sweep"] = {"grid": {"window": [5, 10]}, "top": 0}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    argv = ["sweep", str(path), "--no-progress", "--no-report", "--out", str(tmp_path / "s")]
    rc = main([*argv, "--data-root", str(no_default_data)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert str(no_default_data) in err and "Traceback" not in err


def test_data_root_must_exist(tmp_path, capsys):
    cfg = _config(tmp_path)
    missing = tmp_path / "no_such_dir"
    assert main(["run", str(cfg), "--data-root", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: --data-root {missing}: no such folder\n"


@pytest.mark.parametrize("option", ["--root", "--data-root"])
def test_datasets_root_and_its_alias(option, tmp_path, capsys):
    assert main(["datasets", option, str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"search roots: {tmp_path.resolve()}")
    assert "\netf50 " in out  # the catalogue follows
