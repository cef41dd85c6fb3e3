"""Bad inputs, as a new user makes them: every one ends with exit status 2, one ``error:`` line
naming the cause and the fix, no traceback, no work before a bad output location is reported,
and no earlier result changed (issue 17).

Each case builds its inputs under ``tmp_path`` (configs, price files, chains, CFE folders,
sweep specs, output paths; shared files are copied or symlinked, never changed), runs the
command line's ``main()`` in-process from ``tmp_path`` and checks the status, the key words of
the message and a snapshot of ``results/``, which holds an earlier run's folder before the
command starts. A few cases run ``python -m volbacktest`` as a subprocess to prove that no
traceback reaches stderr.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from volbacktest.engine.cli import main
from volbacktest.engine.errors import DataQualityWarning

# a policy's warning (rows kept or dropped) is what a user sees on stderr, not a test error
pytestmark = pytest.mark.filterwarnings("ignore::volbacktest.engine.errors.DataQualityWarning")
REPO = Path(__file__).resolve().parents[1]
SHORT = {"synthetic": {"seed": 7, "start": "2015-01-02", "end": "2016-12-30"}}
EARLIER = "earlier_run"  # the earlier result every case must leave untouched
SPX = "us_option_chains/SPX-Options-24jan2011.csv"
GS = "us_option_chains/option_GS_df.csv"
ETF50 = "china_50etf/50etf_options_daily_joinquant__TanTzs.csv"
CFE = "vix_futures_cfe/per_contract"


# --------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> content hash), hidden ones included."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_config(where: Path, name: str = "small", **sections) -> Path:
    raw = {
        "name": name,
        "strategy": {"name": "vratio", "params": {"window": 10}},
        "data": SHORT,
        "report": {"out_dir": "results", "tearsheet": False, "plots": False},
    }
    for key, value in sections.items():
        raw[key] = value
    path = where / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def shared_root(tmp: Path, shared: Path, folder: str) -> Path:
    """A data root under ``tmp`` that links every shared folder except ``folder``, which is a
    real folder of links to the shared files (a case then replaces one of them)."""
    root = tmp / "root"
    root.mkdir()
    for entry in shared.iterdir():
        if entry.name != folder:
            (root / entry.name).symlink_to(entry)
    (root / folder).mkdir()
    for f in (shared / folder).iterdir():
        (root / folder / f.name).symlink_to(f)
    return root


def replace_file(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.unlink()
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def edit_lines(source: Path, edit: Callable[[list[str]], list[str]], dest: Path) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()
    dest.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return dest


BINARY = bytes(range(256)) * 8  # not UTF-8 (0x80.. alone), NUL bytes, no line structure


@dataclass
class Env:
    tmp: Path
    shared: Path | None

    def need_shared(self) -> Path:
        if self.shared is None:
            raise AssertionError("this case needs the shared data")
        return self.shared


@pytest.fixture
def env(tmp_path, monkeypatch, request) -> Env:
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "results" / EARLIER
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"sharpe": 1.0}\n', encoding="utf-8")
    shared = None
    if "shared_data" in request.fixturenames:  # a case that edits a copy of a shared file
        shared = request.getfixturevalue("shared_data")
    return Env(tmp_path, shared)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.err


@pytest.fixture
def no_work(monkeypatch):
    """Any backtest, sweep, chain computation or contract reading fails the test loudly: the
    error must come before the work."""

    def forbidden(*_a, **_k):
        raise AssertionError("work began before the bad output location was reported")

    import volbacktest.data.cfe as cfe
    import volbacktest.engine.cli.vix as vix_cli
    import volbacktest.engine.inputs.market as market
    import volbacktest.engine.sweep.run as sweep_run

    monkeypatch.setattr(market, "market_for", forbidden)
    monkeypatch.setattr(sweep_run, "run_sweep", forbidden)
    monkeypatch.setattr(vix_cli, "compute", forbidden)
    monkeypatch.setattr(cfe, "load_cfe_folder", forbidden)


@pytest.fixture
def read_only(monkeypatch):
    """Folders named ``readonly`` are not writable (tests run as root, where chmod does not
    stop writes, so ``os.access`` is what the check reads)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and "readonly" in Path(path).parts:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    Path("readonly").mkdir()  # in tmp_path (the env fixture's working folder)


def check(env: Env, argv, capsys, *words: str) -> str:
    """Run ``argv``: status 2, every word in the message, one ``error:`` line, no traceback,
    and ``results/`` exactly as before."""
    before = snapshot(env.tmp / "results")
    status, err = run_cli(argv, capsys)
    assert status == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    low = err.lower()
    for word in words:
        assert word.lower() in low, f"{word!r} not in {err!r}"
    assert snapshot(env.tmp / "results") == before, "an earlier result changed"
    return err


# --------------------------------------------------------------------------- configs
CONFIG_CASES = {
    # id: (yaml text, key words)
    "month_13": (
        "name: m\nstrategy: {name: vratio}\ndata: {source: synthetic, start: 2019-13-45}\n",
        ["line 3", "2019-13-45", "not a valid date", "YYYY-MM-DD"],
    ),
    "yaml_syntax": ("name: m\nstrategy: {name: vratio\n", ["not valid YAML", "line"]),
    "empty_file": ("", ["empty", "configs/vratio.yaml"]),
    "a_list": ("- name: m\n", ["mapping", "list"]),
    "typo_key": (
        "name: m\nstrategy: {name: vratio, parms: {window: 3}}\n",
        ["strategy.parms", "unknown key", "did you mean 'params'"],
    ),
    "unknown_strategy": ("name: m\nstrategy: {name: vratioo}\n", ["vratioo", "vratio"]),
    "negative_window": (
        "name: m\nstrategy: {name: vratio, params: {window: -3}}\n",
        ["window", "-3"],
    ),
    "end_before_start": (
        "name: m\nstrategy: {name: vratio}\ndata: {start: 2016-01-01, end: 2015-01-01}\n",
        ["data", "not after start"],
    ),
    "bad_fill": (
        "name: m\nstrategy: {name: vratio}\nexecution: {fill: next_bar}\n",
        ["execution.fill", "next_close"],
    ),
    "bad_source": (
        "name: m\nstrategy: {name: vratio}\ndata: {source: yahoo}\n",
        ["data.source", "synthetic", "shared"],
    ),
    "bad_bad_quotes": (
        "name: m\nstrategy: {name: vratio}\ndata: {bad_quotes: ignore}\n",
        ["data.bad_quotes", "stop", "drop", "warn"],
    ),
    "rnd_tail_on_vratio": (
        "name: m\nstrategy: {name: vratio}\n"
        "filters:\n  - {type: rnd_tail, fraction: 0.9, threshold: 0.15}\n",
        ["filters.0", "etf50_options", "trade 'etf50'"],
    ),
    "unknown_filter": (
        "name: m\nstrategy: {name: vratio}\nfilters:\n  - {type: rnd_tale}\n",
        ["filters.0", "rnd_tale"],
    ),
    "params_not_mapping": (
        "name: m\nstrategy: {name: vratio, params: 10}\n",
        ["strategy.params"],
    ),
    "negative_cash": (
        "name: m\nstrategy: {name: vratio}\nexecution: {initial_cash: -5}\n",
        ["execution.initial_cash"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config(env, capsys, case):
    text, words = CONFIG_CASES[case]
    path = env.tmp / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    check(env, [path], capsys, "bad.yaml", *words)


def test_binary_config(env, capsys):
    path = env.tmp / "bad.yaml"
    path.write_bytes(BINARY)
    check(env, [path], capsys, "bad.yaml", "not a UTF-8 text file")


def test_missing_config(env, capsys):
    check(env, ["run", "nope.yaml"], capsys, "nope.yaml", "not found")


def test_unknown_command(env, capsys):
    status, err = run_cli(["sweeep", "x.yaml"], capsys)
    assert status == 2 and "did you mean 'sweep'" in err and "Traceback" not in err


def test_datasets_root_missing(env, capsys):
    check(env, ["datasets", "--root", "nowhere"], capsys, "nowhere", "no such folder")


def test_configs_sharing_a_name(env, capsys):
    a = write_config(env.tmp, "a")
    b = env.tmp / "b.yaml"
    b.write_text(a.read_text(encoding="utf-8"), encoding="utf-8")
    check(env, [a, b], capsys, "share the name", "distinct")


def test_data_root_missing(env, capsys):
    check(env, [write_config(env.tmp), "--data-root", "nowhere"], capsys, "--data-root", "no such")


def test_second_config_bad_nothing_written(env, capsys, no_work):
    """A multi-config run validates every config before running any."""
    good = write_config(env.tmp, "good")
    bad = write_config(env.tmp, "bad", strategy={"name": "vratio", "params": {"windw": 3}})
    check(env, [good, bad], capsys, "bad.yaml", "windw")
    assert not (env.tmp / "results" / "good").exists()


# --------------------------------------------------------------------------- output paths
def test_out_dir_is_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    cfg = write_config(env.tmp, report={"out_dir": "afile", "tearsheet": False, "plots": False})
    check(env, [cfg], capsys, "afile", "is a file, not a folder")


def test_out_option_is_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    check(env, [write_config(env.tmp), "--out", "afile"], capsys, "afile", "not a folder")


def test_out_below_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    check(env, [write_config(env.tmp), "--out", "afile/deeper"], capsys, "afile", "is a file")


def test_run_folder_is_a_file(env, capsys, no_work):
    (env.tmp / "results" / "small").write_text("x", encoding="utf-8")
    check(env, [write_config(env.tmp)], capsys, "results/small", "is a file")


def test_existing_run_needs_overwrite(env, capsys, no_work):
    cfg = write_config(env.tmp, EARLIER)
    check(env, [cfg], capsys, EARLIER, "already holds a result", "--overwrite")


def test_existing_comparison_needs_overwrite(env, capsys, no_work):
    (env.tmp / "results" / "comparison").mkdir()
    (env.tmp / "results" / "comparison" / "metrics.csv").write_text("x", encoding="utf-8")
    a, b = write_config(env.tmp, "a"), write_config(env.tmp, "b")
    check(env, [a, b], capsys, "comparison", "--overwrite")


def test_read_only_results(env, capsys, no_work, read_only):
    cfg = write_config(env.tmp)
    check(env, [cfg, "--out", "readonly/results"], capsys, "readonly", "not writable")


def test_compare_out_is_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    a, b = write_config(env.tmp, "a"), write_config(env.tmp, "b")
    check(env, ["compare", a, b, "--out", "afile"], capsys, "afile", "not a folder")


def test_compare_existing_report_needs_overwrite(env, capsys, no_work):
    a, b = write_config(env.tmp, "a"), write_config(env.tmp, "b")
    out = env.tmp / "results" / EARLIER
    check(env, ["compare", a, b, "--out", out], capsys, "report folder", "--overwrite")


def test_sweep_out_is_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    spec = sweep_spec(env.tmp)
    check(env, ["sweep", spec, "--out", "afile"], capsys, "afile", "is a file")


def test_sweep_read_only(env, capsys, no_work, read_only):
    spec = sweep_spec(env.tmp)
    check(env, ["sweep", spec, "--out", "readonly"], capsys, "readonly", "not writable")


def test_vix_out_is_a_folder(env, capsys, no_work):
    chains = env.tmp / "chain.csv"
    chains.write_text("x\n", encoding="utf-8")
    check(
        env,
        ["vix", "--chains", chains, "--rate", "0.01", "--out", "results"],
        capsys,
        "--out",
        "is a folder",
    )


def test_vix_out_exists(env, capsys, no_work):
    (env.tmp / "results" / "v.csv").write_text("old\n", encoding="utf-8")
    args = ["vix", "--chains", env.tmp / "c.csv", "--rate", "0.01", "--out", "results/v.csv"]
    check(env, args, capsys, "results/v.csv", "already exists", "--overwrite")


def test_vix_read_only(env, capsys, no_work, read_only):
    args = ["vix", "--chains", "c.csv", "--rate", "0.01", "--out", "readonly/v.csv"]
    check(env, args, capsys, "readonly", "not writable")


def test_vix_terms_is_out(env, capsys, no_work):
    args = ["vix", "--chains", "c.csv", "--rate", "0.01", "--out", "results/v.csv"]
    check(env, [*args, "--terms", "results/v.csv"], capsys, "--terms", "is the --out file")


def test_futures_out_exists(env, capsys, no_work):
    (env.tmp / "results" / "curve.csv").write_text("old\n", encoding="utf-8")
    args = ["futures", "--contracts", env.tmp, "--out", "results/curve.csv"]
    check(env, args, capsys, "curve.csv", "already exists")


def test_etn_out_below_a_file(env, capsys, no_work):
    (env.tmp / "afile").write_text("x", encoding="utf-8")
    args = ["etn", "--contracts", env.tmp, "--out", "afile/vxx.csv"]
    check(env, args, capsys, "afile", "is a file")


# --------------------------------------------------------------------------- price files
def _gld_lines(shared: Path) -> list[str]:
    return (shared / "pairs_gld_gdx" / "GLD.csv").read_text(encoding="utf-8").splitlines()


def _extra_comma(lines):
    lines[99] += ",9"
    return lines


def _text_close(lines):
    cells = lines[50].split(",")
    cells[4] = "n/a price"
    lines[50] = ",".join(cells)
    return lines


def _negative_close(lines):
    cells = lines[50].split(",")
    cells[4] = cells[5] = "-" + cells[4]
    lines[50] = ",".join(cells)
    return lines


def _duplicate_date(lines):
    return lines[:60] + [lines[59]] + lines[60:]


def _no_adj_close(lines):
    return [",".join(c for i, c in enumerate(line.split(",")) if i != 5) for line in lines]


def _day_month(lines):
    out = [lines[0]]
    for line in lines[1:]:
        y, m, d = line.split(",")[0].split("-")
        if int(d) <= 12:  # no field above 12: DD/MM cannot be told from MM/DD
            out.append(f"{d}/{m}/{y}," + line.split(",", 1)[1])
    return out


def _mixed_layouts(lines):
    y, m, d = lines[3].split(",")[0].split("-")
    lines[3] = f"{m}/{d}/{y}," + lines[3].split(",", 1)[1]
    return lines


def _header_only(lines):
    return lines[:1]


PRICE_CASES = {
    "extra_comma": (_extra_comma, ["GLD.csv", "well-formed", "line 100"]),
    "text_close": (_text_close, ["GLD.csv", "non-numeric", "n/a price"]),
    "negative_close": (_negative_close, ["GLD.csv", "line 51", "prices must be positive"]),
    "duplicate_date": (_duplicate_date, ["GLD.csv", "duplicate"]),
    "no_adj_close": (_no_adj_close, ["GLD.csv", "Adj Close", "download that has"]),
    "ambiguous_day_month": (_day_month, ["GLD.csv", "ambiguous", "YYYY-MM-DD"]),
    "mixed_date_layouts": (_mixed_layouts, ["GLD.csv", "mixes date layouts"]),
    "header_only": (_header_only, ["GLD.csv", "no line with a number"]),
}


@pytest.mark.parametrize("case", sorted(PRICE_CASES))
def test_bad_price_file(env, shared_data, capsys, case):
    shared = env.need_shared()
    edit, words = PRICE_CASES[case]
    root = shared_root(env.tmp, shared, "pairs_gld_gdx")
    replace_file(root, "pairs_gld_gdx/GLD.csv", "\n".join(edit(_gld_lines(shared))) + "\n")
    cfg = REPO / "configs" / "real" / "ou_pairs_gld_gdx.yaml"
    err = check(env, [cfg, "--data-root", root, "--out", "results"], capsys, *words)
    assert "used as they are" not in err and "date_format=" not in err.split("(from Python")[0]


def test_binary_price_file(env, shared_data, capsys):
    root = shared_root(env.tmp, env.need_shared(), "pairs_gld_gdx")
    replace_file(root, "pairs_gld_gdx/GLD.csv", BINARY)
    cfg = REPO / "configs" / "real" / "ou_pairs_gld_gdx.yaml"
    check(env, [cfg, "--data-root", root], capsys, "GLD.csv", "not a comma-separated text file")


def test_second_config_bad_data_nothing_run_or_written(env, shared_data, capsys, monkeypatch):
    """The second config's bad file stops the command before the first config runs."""
    root = shared_root(env.tmp, env.need_shared(), "pairs_gld_gdx")
    replace_file(root, "pairs_gld_gdx/GLD.csv", "\n".join(_extra_comma(_gld_lines(env.shared))))
    import volbacktest.engine.run.runner as runner

    monkeypatch.setattr(runner, "run_backtest", lambda *a, **k: pytest.fail("a backtest ran"))
    good = write_config(env.tmp, "good")
    bad = REPO / "configs" / "real" / "ou_pairs_gld_gdx.yaml"
    check(env, [good, bad, "--data-root", root], capsys, "GLD.csv", "well-formed")
    assert not (env.tmp / "results" / "good").exists()


# --------------------------------------------------------------------------- option chains
def _spx(env: Env, edit: Callable[[list[str]], list[str]]) -> Path:
    return edit_lines(env.need_shared() / SPX, edit, env.tmp / "spx.csv")


def _negative_bids(lines):
    lines[3] = lines[3].replace(",0.05,0.10,10,", ",-0.05,-0.01,10,")
    return lines


def _expired(lines):
    return [
        line.replace("SPXW1128", "SPXW1028") if i in (3, 4) else line
        for i, line in enumerate(lines)
    ]


def _crossed(lines):
    lines[3] = lines[3].replace(",215.30,217.00,", ",218.30,217.00,")
    return lines


def _text_bid(lines):
    lines[3] = lines[3].replace(",215.30,217.00,", ",abc,217.00,")
    return lines


def _bad_description(lines):
    lines[5] = "junk" + lines[5]
    return lines


def _bad_header_lines(lines):
    return ["nothing here", *lines[2:]]


SPX_CASES = {
    "negative_bids": (_negative_bids, [], ["negative prices", "bid=-0.05", "--bad-quotes drop"]),
    "expiry_before_trade": (
        _expired,
        [],
        ["4 rows with expiry before the trade date", "exp 2010-01-28", "--bad-quotes"],
    ),
    "crossed": (_crossed, [], ["crossed quotes (bid > ask)", "--bad-quotes drop"]),
    "crossed_kept": (_crossed, ["--bad-quotes", "warn"], ["bid > ask", "--bad-quotes drop"]),
    "text_bid": (_text_bid, [], ["column 'bid'", "line 4", "'abc'", "plain numbers"]),
    "bad_description": (_bad_description, [], ["line 6", "description"]),
    "bad_header_lines": (_bad_header_lines, ["--format", "spx_table"], ["lines 1-2"]),
}


def spx_argv(chains: Path, *extra: str) -> list:
    return [
        *"vix --preset cboe --rate 0.0012 --out results/spx.csv".split(),
        "--chains",
        chains,
        *extra,
    ]


@pytest.mark.parametrize("case", sorted(SPX_CASES))
def test_bad_spx_chain(env, shared_data, capsys, case):
    edit, extra, words = SPX_CASES[case]
    chains = _spx(env, edit)
    argv = spx_argv(chains, *extra)
    err = check(env, argv, capsys, "spx.csv", *words)
    assert "apply_policy" not in err.split("(command line")[-1]
    assert not (env.tmp / "results" / "spx.csv").exists()


def test_bad_quotes_drop_is_counted(env, shared_data, capsys):
    """With --bad-quotes drop the run goes on; the warning counts the dropped rows."""
    chains = _spx(env, _negative_bids)
    argv = spx_argv(chains, "--bad-quotes", "drop", "--set", "max_next_days=null")
    with pytest.warns(DataQualityWarning, match=r"policy removed 1 of 1920 rows \(negative: 1\)"):
        status, err = run_cli(argv, capsys)
    assert status == 0, err
    assert (env.tmp / "results" / "spx.csv").is_file()


def _etf50(env: Env, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    frame = pd.read_csv(env.need_shared() / ETF50, nrows=300, dtype=str)
    path = env.tmp / "etf50.csv"
    edit(frame).to_csv(path, index=False)
    return path


def _text_strike(frame):
    frame.loc[5, "执行价"] = "2.2元"
    return frame


def _bad_cp(frame):
    frame.loc[7, "类型"] = "认购"
    return frame


def _bad_expiry(frame):
    frame.loc[9, "到期日期"] = "2015-02-30"
    return frame


def _missing_column(frame):
    return frame.drop(columns="收盘价")


def _text_close_etf(frame):
    frame.loc[11, "收盘价"] = "0,18"
    return frame


ETF50_CASES = {
    "text_strike": (_text_strike, ["执行价", "line 7", "2.2元"]),
    "bad_cp": (_bad_cp, ["类型", "看涨"]),
    "bad_expiry": (_bad_expiry, ["到期日期", "2015-02-30"]),
    "missing_column": (_missing_column, ["收盘价", "missing column"]),
    "text_close": (_text_close_etf, ["收盘价", "line 13", "'0,18'"]),
}


@pytest.mark.parametrize("case", sorted(ETF50_CASES))
def test_bad_50etf_chain(env, shared_data, capsys, case):
    edit, words = ETF50_CASES[case]
    chains = _etf50(env, edit)
    argv = [
        "vix",
        "--chains",
        chains,
        "--format",
        "50etf",
        "--rate",
        "0.02",
        "--out",
        "results/ivix.csv",
    ]
    check(env, argv, capsys, "etf50.csv", *words)


def test_gs_row_with_extra_field(env, shared_data, capsys):
    def extra(lines):
        lines[10] += ",1,2"
        return lines

    chains = edit_lines(env.need_shared() / GS, extra, env.tmp / "gs.csv")
    argv = ["vix", "--chains", chains, "--format", "gs", "--rate", "0.01", "--out", "results/g.csv"]
    check(env, argv, capsys, "gs.csv", "well-formed", "line 11")


def test_binary_chain_file(env, capsys):
    (env.tmp / "chain.csv").write_bytes(BINARY)
    argv = [
        "vix",
        "--chains",
        "chain.csv",
        "--format",
        "gs",
        "--rate",
        "0.01",
        "--out",
        "results/g.csv",
    ]
    check(env, argv, capsys, "chain.csv", "not a UTF-8 text file")


def _long_chain(env: Env, **changes) -> Path:
    rows = pd.DataFrame(
        {
            "trade_date": ["2020-01-02"] * 4,
            "expiry": ["2020-02-21"] * 4,
            "cp": ["C", "P", "C", "P"],
            "strike": ["100", "100", "105", "105"],
            "bid": ["2.0", "1.5", "1.0", "3.0"],
            "ask": ["2.2", "1.7", "1.2", "3.3"],
        }
    )
    for column, (row, value) in changes.items():
        rows.loc[row, column] = value
    path = env.tmp / "long.csv"
    rows.to_csv(path, index=False)
    return path


LONG_CASES = {
    "text_strike": ({"strike": (2, "105 USD")}, ["column 'strike'", "line 4", "105 USD"]),
    "bad_trade_date": ({"trade_date": (1, "someday")}, ["line 3", "trade_date", "not a date"]),
    "negative_ask": ({"ask": (0, "-2.2")}, ["negative prices", "--bad-quotes"]),
    "expired": ({"expiry": (3, "2019-12-20")}, ["expiry before the trade date"]),
    "crossed": ({"bid": (1, "1.9")}, ["crossed quotes"]),
}


@pytest.mark.parametrize("case", sorted(LONG_CASES))
def test_bad_long_chain(env, capsys, case):
    changes, words = LONG_CASES[case]
    argv = [
        "vix",
        "--chains",
        _long_chain(env, **changes),
        "--rate",
        "0.01",
        "--out",
        "results/long.csv",
    ]
    check(env, argv, capsys, "long.csv", *words)


VIX_ARG_CASES = {
    "missing_underlying": (["--underlying", "nope.csv"], ["--underlying nope.csv", "no such file"]),
    "missing_chains": (["--chains", "nope.csv"], ["--chains nope.csv", "no such file"]),
    "missing_rates": (["--rates", "nope.csv"], ["--rates nope.csv", "no such file"]),
    "contracts_with_csv": (["--contracts", "long.csv"], ["--contracts", "50etf format only"]),
    "bad_set": (["--set", "min_near_days"], ["FIELD=VALUE"]),
    "unknown_set": (["--set", "nonsense=1"], ["nonsense", "valid"]),
    "unknown_preset": (["--preset", "cboee"], ["cboee", "cboe"]),
    "no_rows_in_range": (["--start", "2021-01-01"], ["no chain rows"]),
}


@pytest.mark.parametrize("case", sorted(VIX_ARG_CASES))
def test_bad_vix_arguments(env, capsys, case):
    extra, words = VIX_ARG_CASES[case]
    chain = _long_chain(env)
    argv = ["vix", "--chains", chain, "--rate", "0.01", "--out", "results/v.csv"]
    if "--rates" in extra:
        argv.remove("--rate"), argv.remove("0.01")
    for flag in ("--chains", "--preset"):
        if flag in extra and flag in argv:
            i = argv.index(flag)
            del argv[i : i + 2]
    check(env, [*argv, *extra], capsys, *words)


def test_vix_without_rates(env, capsys):
    argv = ["vix", "--chains", _long_chain(env), "--out", "results/v.csv"]
    check(env, argv, capsys, "no rates given", "--rate")


def test_unrecognised_chain_layout(env, capsys):
    (env.tmp / "odd.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    argv = ["vix", "--chains", "odd.csv", "--rate", "0.01", "--out", "results/v.csv"]
    check(env, argv, capsys, "odd.csv", "layout not recognised", "--format")


# --------------------------------------------------------------------------- CFE folders
def _cfe_folder(env: Env, n: int = 3) -> Path:
    folder = env.tmp / "cfe"
    folder.mkdir()
    for f in sorted((env.need_shared() / CFE).glob("CFE_*_VX.csv"))[:n]:
        (folder / f.name).symlink_to(f)
    return folder


def _cfe_replace(folder: Path, name: str, content: str | bytes) -> None:
    target = folder / name
    if target.is_symlink():
        original = target.resolve().read_text(encoding="utf-8")
        target.unlink()
        content = content(original) if callable(content) else content
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")


def _second_line(transform):
    def edit(text):
        lines = text.splitlines()
        lines[1] = transform(lines[1])
        return "\n".join(lines) + "\n"

    return edit


CFE_CASES = {
    "binary_file": ("CFE_Z19_VX.csv", BINARY, ["CFE_Z19_VX.csv", "not a UTF-8", "move this"]),
    "bad_header": ("CFE_F05_VX.csv", "Date,Price\n10/21/2004,1\n", ["not the CFE layout"]),
    "text_settle": (
        "CFE_F05_VX.csv",
        _second_line(
            lambda s: ",".join(c if i != 6 else "abc" for i, c in enumerate(s.split(",")))
        ),
        ["CFE_F05_VX.csv line 2", "'Settle'", "not a number"],
    ),
    "empty_file": ("CFE_F05_VX.csv", "", ["CFE_F05_VX.csv", "(empty file)", "CFE layout"]),
}


@pytest.mark.parametrize("case", sorted(CFE_CASES))
def test_bad_cfe_folder(env, shared_data, capsys, case):
    name, content, words = CFE_CASES[case]
    folder = _cfe_folder(env)
    _cfe_replace(folder, name, content)
    check(env, ["futures", "--contracts", folder, "--out", "results/curve.csv"], capsys, *words)


CFE_FOLDER_CASES = {
    "missing": (["etn", "--contracts", "nowhere"], ["nowhere", "does not exist"]),
    "empty": (["futures", "--contracts", "empty"], ["no CFE_", "per_contract"]),
}


@pytest.mark.parametrize("case", sorted(CFE_FOLDER_CASES))
def test_cfe_folder_unusable(env, capsys, case):
    argv, words = CFE_FOLDER_CASES[case]
    (env.tmp / "empty").mkdir()
    check(env, [*argv, "--out", "results/x.csv"], capsys, *words)


def test_futures_bad_n(env, capsys):
    status, err = run_cli(["futures", "--contracts", ".", "--out", "x.csv", "--n", "0"], capsys)
    assert status == 2 and "--n: 0 must be 1 or more" in err


def test_etn_bad_leverage_change(env, capsys):
    argv = ["etn", "--contracts", ".", "--out", "x.csv", "--leverage-change", "2018-02-27"]
    status, err = run_cli(argv, capsys)
    assert status == 2 and "DATE:LEVERAGE" in err


# --------------------------------------------------------------------------- sweep specs
def sweep_spec(where: Path, **sweep) -> Path:
    raw = {
        "name": "tiny_sweep",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"out_dir": "results", "tearsheet": False, "plots": False},
        "sweep": {"grid": {"window": [5, 10]}, "rank": "sharpe", "top": 1, **sweep},
    }
    path = where / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


SWEEP_SPEC_CASES = {
    "reversed_range": (
        {"grid": {"window": {"start": 41, "end": 2}}},
        ["sweep.grid.window", "end 2 is before start 41", "swap"],
    ),
    "unknown_key": ({"grids": {"window": [5]}}, ["grids", "unknown key"]),
    "unknown_param": ({"grid": {"windw": [5, 10]}}, ["windw"]),
    "bad_metric": ({"rank": "sharp"}, ["sharp"]),
    "bad_executor": ({"executor": "gpu"}, ["executor", "vectorised"]),
}


@pytest.mark.parametrize("case", sorted(SWEEP_SPEC_CASES))
def test_bad_sweep_spec(env, capsys, case):
    sweep, words = SWEEP_SPEC_CASES[case]
    err = check(env, ["sweep", sweep_spec(env.tmp, **sweep)], capsys, "sweep.yaml", *words)
    assert "function-after" not in err and "list[any]" not in err


SWEEP_ARG_CASES = {
    "negative_workers": (["--workers", "-2"], ["--workers", "-2 must be 1 or more"]),
    "text_workers": (["--workers", "two"], ["--workers", "not a whole number"]),
    "zero_chunk": (["--chunk-size", "0"], ["--chunk-size", "1 or more"]),
    "negative_top": (["--top", "-1"], ["--top", "0 or more"]),
    "zero_batch": (["--batch-size", "0"], ["--batch-size"]),
}


@pytest.mark.parametrize("case", sorted(SWEEP_ARG_CASES))
def test_bad_sweep_arguments(env, capsys, case, no_work):
    extra, words = SWEEP_ARG_CASES[case]
    before = snapshot(env.tmp / "results")
    status, err = run_cli(["sweep", sweep_spec(env.tmp), *extra], capsys)
    assert status == 2 and "Traceback" not in err
    assert all(w in err for w in words), err
    assert snapshot(env.tmp / "results") == before


def test_sweep_resume_and_overwrite(env, capsys, no_work):
    argv = ["sweep", sweep_spec(env.tmp), "--resume", "--overwrite"]
    check(env, argv, capsys, "--resume", "--overwrite", "pick one")


def test_sweep_store_exists(env, capsys):
    """The README's sweep commands in order: a second sweep into the same folder is refused
    with the way out (--resume, --overwrite or another --out), the stored one untouched."""
    spec = sweep_spec(env.tmp)
    status, err = run_cli(["sweep", spec, "--no-report", "--no-progress"], capsys)
    assert status == 0, err
    err = check(
        env,
        ["sweep", spec, "--no-report", "--no-progress"],
        capsys,
        "already holds",
        "--resume",
        "--overwrite",
    )
    status, err = run_cli(
        ["sweep", spec, "--no-report", "--no-progress", "--out", "results/other"], capsys
    )
    assert status == 0, err


# --------------------------------------------------------------------------- the boundary
def test_engine_bug_keeps_its_traceback(env, capsys, monkeypatch):
    import volbacktest.engine.cli.run as run_cmd

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(run_cmd, "run", broken)  # main() builds its parser afresh
    status, err = run_cli(["run", write_config(env.tmp)], capsys)
    assert status == 70
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "please report" in err


def test_os_errors_are_user_errors():
    from volbacktest.engine.cli import user_error

    err = PermissionError(13, "Permission denied", "/x/results/run")
    assert "/x/results/run: Permission denied; check its permissions" in user_error(err)
    assert "read-only" in user_error(OSError(30, "Read-only file system", "/x"))
    assert user_error(ZeroDivisionError()) is None


SUBPROCESS_CASES = {
    "month_13": (
        "name: m\nstrategy: {name: vratio}\ndata: {start: 2019-13-45}\n",
        [],
        "not a valid date",
    ),
    "out_dir_file": (
        "name: m\nstrategy: {name: vratio}\nreport: {out_dir: afile}\n",
        [],
        "is a file, not a folder",
    ),
    "workers": (None, ["sweep", "sweep.yaml", "--workers", "-2"], "must be 1 or more"),
}


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES))
def test_no_traceback_reaches_stderr(tmp_path, case):
    text, argv, words = SUBPROCESS_CASES[case]
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    sweep_spec(tmp_path)
    if text is not None:
        (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
        argv = ["c.yaml"]
    proc = subprocess.run(
        [sys.executable, "-m", "volbacktest", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr.splitlines()[-1]


# --------------------------------------------------------------------------- atomic results
def _run_folder(env: Env, **report) -> tuple[Path, Path]:
    cfg = write_config(
        env.tmp,
        "atomic",
        report={"out_dir": "results", "tearsheet": False, "plots": True, **report},
    )
    return cfg, env.tmp / "results" / "atomic"


def test_rerun_replaces_the_whole_folder(env, capsys):
    cfg, folder = _run_folder(env)
    assert run_cli([cfg], capsys)[0] == 0
    assert (folder / "equity.png").is_file()
    cfg2 = write_config(
        env.tmp, "atomic", report={"out_dir": "results", "tearsheet": False, "plots": False}
    )
    assert run_cli([cfg2], capsys)[0] == 2  # refused without --overwrite
    assert (folder / "equity.png").is_file()
    assert run_cli([cfg2, "--overwrite"], capsys)[0] == 0
    assert not (folder / "equity.png").exists()  # nothing of the earlier run is left
    assert (folder / "metrics.json").is_file()
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_failing_write_keeps_the_earlier_folder(env, capsys, monkeypatch, failure):
    cfg, folder = _run_folder(env)
    assert run_cli([cfg], capsys)[0] == 0
    before = snapshot(env.tmp / "results")
    import volbacktest.engine.run.report as report

    def broken(*_a, **_k):
        raise failure("disk gone half way")

    monkeypatch.setattr(report, "plot_equity", broken)
    status, _ = run_cli([cfg, "--overwrite"], capsys)
    assert status == (130 if failure is KeyboardInterrupt else 70)
    assert snapshot(env.tmp / "results") == before  # no partial folder, the old one whole


def test_sweep_overwrite_replaces_whole(env, capsys):
    spec = sweep_spec(env.tmp)
    argv = ["sweep", spec, "--no-report", "--no-progress"]
    assert run_cli(argv, capsys)[0] == 0
    folder = env.tmp / "results" / "tiny_sweep"
    (folder / "stray.txt").write_text("from an earlier run", encoding="utf-8")
    status, out = main([str(a) for a in [*argv, "--overwrite"]]), capsys.readouterr().out
    assert status == 0
    assert not (folder / "stray.txt").exists()
    assert (folder / "sweep.sqlite").is_file() and (folder / "ranking.csv").is_file()
    assert f"store: {folder}" in out or "store: results/tiny_sweep" in out
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())


def test_api_save_refuses_then_overwrites(tmp_path):
    import volbacktest as vb

    cfg = yaml.safe_load(write_config(tmp_path, "api_run").read_text(encoding="utf-8"))
    res = vb.run(cfg)
    folder = res.save(tmp_path / "out")
    from volbacktest.engine.errors import OutputError

    with pytest.raises(OutputError, match="overwrite"):
        res.save(tmp_path / "out")
    assert res.save(tmp_path / "out", overwrite=True) == folder
    shutil.rmtree(folder)


def test_walkforward_ranking_says_which_window(env, capsys):
    """The rolling walk-forward's "best by" list and ranking.csv are the first window's
    in-sample ranking, and say so."""
    spec = sweep_spec(env.tmp)
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    raw["split"] = {"rolling": {"train": 126, "test": 63}}
    spec.write_text(yaml.safe_dump(raw), encoding="utf-8")
    status = main(["sweep", str(spec), "--no-report", "--no-progress", "--top", "1"])
    out = capsys.readouterr().out
    assert status == 0
    n = out.split("runs in ")[1].split(" walk-forward windows")[0]
    assert f"best by max sharpe in walk-forward window wf00 (1 of {n}, in-sample 2015-" in out
    ranking = pd.read_csv(env.tmp / "results" / "tiny_sweep" / "ranking.csv")
    assert (
        ranking["ranked_on"]
        .str.startswith(f"in-sample of walk-forward window wf00 (1 of {n}")
        .all()
    )
