"""CFE per-contract loader (data/cfe.py): the shared files, bad files reported, the splice."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volbacktest.data.calendars import nyse_sessions
from volbacktest.data.cfe import (
    KNOWN_ISSUES,
    KnownIssue,
    contract_of,
    load_cfe_folder,
    load_vx_settles,
    matrix_sessions,
    splice_continuous,
)
from volbacktest.data.loaders import load_vix_futures_continuous
from volbacktest.engine.calculators.futures_curve import futures_curve
from volbacktest.engine.errors import DataError, DataNotFoundError, DataQualityWarning

HEADER = "Trade Date,Futures,Open,High,Low,Close,Settle,Change,Total Volume,EFP,Open Interest"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CODES = "FGHJKMNQUVXZ"
SESSIONS = nyse_sessions("2009-06-01", "2010-06-30")
# synthetic contracts: (code, expiry by the CFE rule) traded from 2009-10-01 to expiry
SYNTH = (("F10", "2010-01-20"), ("G10", "2010-02-17"), ("H10", "2010-03-17"))
CONTINUOUS = "vix_futures_continuous/vix_futures_VX1-VX8_with_VIX_SP500__quantintell.csv"


def _label(code: str) -> str:
    return f"{code[0]} ({MONTHS[CODES.index(code[0])]} {code[1:]})"


def _lines(code: str, expiry: str, start: str = "2009-10-01", base: float = 25.0) -> list[str]:
    days = SESSIONS[(SESSIONS >= start) & (SESSIONS <= expiry)]
    settles = base + 0.01 * np.arange(len(days))
    return [
        f"{d.month}/{d.day}/{d.year},{_label(code)},0,0,0,0,{s:.2f},0,0,0,0"
        for d, s in zip(days, settles, strict=True)
    ]


def _write(folder: Path, code: str, lines: list[str]) -> Path:
    path = folder / f"CFE_{code}_VX.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def _synthetic_folder(folder: Path, edit=None) -> Path:
    """Three clean contracts; ``edit(code, lines) -> lines`` changes one file's data lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for code, expiry in SYNTH:
        lines = _lines(code, expiry)
        _write(folder, code, edit(code, lines) if edit else lines)
    return folder


@pytest.fixture(scope="module")
def real(shared_data):
    return load_cfe_folder(shared_data / "vix_futures_cfe" / "per_contract")


# --------------------------------------------------------------------------- shared files


def test_shared_folder_counts_and_known_problems(real):
    """159 files / 26,099 rows (PROVENANCE); 336 listing placeholders + the 2 zero settles of
    N09 make the 338 zero settles PROVENANCE counts; every problem is a documented one."""
    assert len(real.contracts) == 159
    assert real.placeholders == 336
    assert len(real.rows) + real.placeholders == 26_099
    assert real.rows["trade_date"].min() == pd.Timestamp("2004-03-26")
    assert real.last_date == pd.Timestamp("2017-03-08")
    found = {(p.file, p.kind, p.date) for p in real.problems}
    known = {(k.file, k.kind, pd.Timestamp(d)) for k in KNOWN_ISSUES for d in k.dates}
    assert found == known
    assert all(p.acknowledged for p in real.problems)
    zeros = [p for p in real.problems if p.kind == "zero_settle"]
    assert len(zeros) == 2 and all(p.file == "CFE_N09_VX.csv" for p in zeros)
    assert "CFE_M07_VX.csv line 3, 4 (2006-11-21): gap: no rows for 24 sessions" in real.report()


def test_shared_scale_and_settles(real):
    """x10 quoting before 2007-03-26 normalised: K04's first settle 203.2 -> 20.32, J07's
    final SOQ 12.03 (after the change) untouched, and every settle in VIX points."""
    rows = real.rows.set_index(["contract", "trade_date"])
    assert rows.loc[("K04", pd.Timestamp("2004-03-26")), "settle"] == pytest.approx(20.32)
    assert rows.loc[("J07", pd.Timestamp("2007-04-18")), "settle"] == pytest.approx(12.03)
    settle = real.rows["settle"].dropna()
    assert settle.between(9.5, 70.0).all()  # PROVENANCE: 9.9..67.95 besides the errors
    # the documented CFE errors are missing, not repaired
    assert np.isnan(rows.loc[("G09", pd.Timestamp("2008-04-21")), "settle"])
    assert np.isnan(rows.loc[("Q09", pd.Timestamp("2008-10-30")), "settle"])


def test_shared_contract_table_against_the_derived_summary(real, shared_data):
    """Row counts, first dates and final settles against contracts_summary_DERIVED.csv."""
    summary = pd.read_csv(shared_data / "vix_futures_cfe" / "contracts_summary_DERIVED.csv")
    table = real.contracts.set_index("file").loc[summary["file"]]
    assert (table["rows"].to_numpy() == summary["rows"].to_numpy()).all()
    bad = {"CFE_F09_VX.csv", "CFE_G09_VX.csv", "CFE_Q09_VX.csv", "CFE_G14_VX.csv"}
    dropped = summary["file"].isin(bad).to_numpy().astype(int)
    assert (table["rows_valid"].to_numpy() + dropped == summary["rows_nonzero_settle"]).all()
    expired = summary["expired_in_file"].to_numpy()
    final = summary["final_settle"].to_numpy()
    scale = np.where(pd.to_datetime(summary["last_date_in_file"]) < "2007-03-26", 10.0, 1.0)
    assert np.allclose(table["final_settle"].to_numpy()[expired], (final / scale)[expired])
    assert (table["expiry_source"].to_numpy() == np.where(expired, "file", "rule")).all()
    last = pd.to_datetime(summary["last_date_in_file"]).to_numpy()
    assert (table["expiry"].to_numpy()[expired] == last[expired]).all()


def test_contract_code_from_file_name():
    assert contract_of("x/CFE_K04_VX.csv") == ("K04", 2004, 5)
    assert contract_of("CFE_z17_VX.csv") == ("Z17", 2017, 12)
    with pytest.raises(DataError, match=r"CFE_A04_VX\.csv: not a CFE per-contract file name"):
        contract_of("CFE_A04_VX.csv")


# --------------------------------------------------------------------------- bad files


def test_clean_synthetic_folder(tmp_path):
    got = load_cfe_folder(_synthetic_folder(tmp_path))
    assert got.problems == ()
    assert list(got.contracts["expiry"]) == [pd.Timestamp(e) for _, e in SYNTH]
    assert (got.contracts["expiry_source"] == "file").all()
    m = got.matrix()
    assert m.listed.to_numpy().sum() == np.isfinite(m.settle.to_numpy()).sum()


def _drop(code_to_edit: str, positions):
    def edit(code, lines):
        return [x for i, x in enumerate(lines) if code != code_to_edit or i not in positions]

    return edit


def test_gap_is_reported_with_file_lines_and_dates(tmp_path):
    folder = _synthetic_folder(tmp_path, _drop("G10", {20, 21, 22}))
    with pytest.raises(DataError) as err:
        load_cfe_folder(folder)
    text = str(err.value)
    assert "CFE_G10_VX.csv line 21, 22" in text
    assert "gap: no rows for 3 sessions 2009-10-29..2009-11-02" in text
    assert "fix: restore the missing rows" in text and "nothing is interpolated" in text


def test_gap_stays_empty_when_warned(tmp_path):
    folder = _synthetic_folder(tmp_path, _drop("G10", {20, 21, 22}))
    with pytest.warns(DataQualityWarning, match="CFE_G10_VX.csv line 21, 22"):
        got = load_cfe_folder(folder, on_problem="warn")
    m = got.matrix()
    g10 = pd.Timestamp("2010-02-17")
    missing = pd.DatetimeIndex(["2009-10-29", "2009-10-30", "2009-11-02"])
    assert m.settle.loc[missing, g10].isna().all()  # not interpolated
    assert m.listed.loc[missing, g10].all()  # still listed: a hole, not a delisting
    curve = futures_curve(m, SESSIONS, n=3)
    assert curve.price.loc[missing, 2].isna().all()
    assert (curve.expiry.loc[missing, 2] == g10).all()
    assert curve.price.loc["2009-11-03", 2] == pytest.approx(25.0 + 0.01 * 23)


def test_zero_settle_inside_a_contract_is_reported(tmp_path):
    def edit(code, lines):
        if code == "H10":
            lines[30] = lines[30].replace(",25.30,", ",0.00,")
        return lines

    folder = _synthetic_folder(tmp_path, edit)
    with pytest.raises(DataError, match=r"CFE_H10_VX\.csv line 32 \(2009-11-12\): zero_settle"):
        load_cfe_folder(folder)
    with pytest.warns(DataQualityWarning):
        m = load_cfe_folder(folder, on_problem="warn").matrix()
    assert np.isnan(m.settle.loc["2009-11-12", pd.Timestamp("2010-03-17")])


def test_duplicated_date_is_reported_with_both_lines(tmp_path):
    def edit(code, lines):
        if code == "F10":
            lines.insert(11, lines[10].replace(",25.10,", ",26.10,"))
        return lines

    folder = _synthetic_folder(tmp_path, edit)
    with pytest.raises(DataError) as err:
        load_cfe_folder(folder)
    assert "CFE_F10_VX.csv line 12, 13 (2009-10-15): duplicate_date: 2 rows for one date" in str(
        err.value
    )
    with pytest.warns(DataQualityWarning):
        m = load_cfe_folder(folder, on_problem="warn").matrix()
    # conflicting settles: neither is used
    assert np.isnan(m.settle.loc["2009-10-15", pd.Timestamp("2010-01-20")])


def test_identical_duplicate_keeps_one_row(tmp_path):
    def edit(code, lines):
        return lines[:11] + [lines[10]] + lines[11:] if code == "F10" else lines

    folder = _synthetic_folder(tmp_path, edit)
    with pytest.warns(DataQualityWarning, match="duplicate_date"):
        m = load_cfe_folder(folder, on_problem="warn").matrix()
    assert m.settle.loc["2009-10-15", pd.Timestamp("2010-01-20")] == pytest.approx(25.10)


def test_spike_is_a_bad_settle_and_can_be_acknowledged(tmp_path):
    def edit(code, lines):
        if code == "G10":
            lines[40] = lines[40].replace(",25.40,", ",1.00,")
        return lines

    folder = _synthetic_folder(tmp_path, edit)
    with pytest.raises(DataError, match=r"CFE_G10_VX\.csv line 42 \(2009-11-27\): bad_settle"):
        load_cfe_folder(folder)
    known = (KnownIssue("CFE_G10_VX.csv", "bad_settle", ("2009-11-27",), "test"),)
    got = load_cfe_folder(folder, known_issues=known)  # logged, not raised
    assert [p.acknowledged for p in got.problems] == [True]
    assert np.isnan(got.matrix().settle.loc["2009-11-27", pd.Timestamp("2010-02-17")])


def test_early_expiry_is_reported(tmp_path):
    def edit(code, lines):
        return lines[:-5] if code == "G10" else lines

    with pytest.raises(DataError, match=r"CFE_G10_VX\.csv line \d+ \(2010-02-09\): early_expiry"):
        load_cfe_folder(_synthetic_folder(tmp_path, edit))


def test_listing_placeholders_are_dropped_silently(tmp_path):
    def edit(code, lines):
        first = lines[0].replace(",25.00,", ",0.00,")
        return [first, *lines[1:]] if code == "H10" else lines

    got = load_cfe_folder(_synthetic_folder(tmp_path, edit))
    assert got.placeholders == 1 and got.problems == ()
    h10 = got.contracts.set_index("contract").loc["H10"]
    assert h10["first_valid"] == pd.Timestamp("2009-10-02")


def test_trailing_commas_blank_lines_and_padded_dates(tmp_path):
    def edit(code, lines):
        lines = [x + "," for x in lines]
        lines.insert(5, "")
        return [re.sub(r"^(\d)/", r"0\1/", x) for x in lines]

    got = load_cfe_folder(_synthetic_folder(tmp_path, edit))
    assert got.problems == () and len(got.rows) == sum(len(_lines(c, e)) for c, e in SYNTH)


def test_x10_scale_before_2007_03_26(tmp_path):
    days = nyse_sessions("2007-03-19", "2007-04-18")
    settle = np.where(days < "2007-03-26", 150.0, 15.1)
    lines = [
        f"{d:%m/%d/%Y},J (Apr 07),0,0,0,0,{s},0,0,0,0" for d, s in zip(days, settle, strict=True)
    ]
    _write(tmp_path, "J07", lines)
    rows = load_cfe_folder(tmp_path).rows
    assert rows["settle"].iloc[0] == pytest.approx(15.0)
    assert rows["settle"].iloc[-1] == pytest.approx(15.1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: [ls[0].replace("G (Feb 10)", "H (Mar 10)"), *ls[1:]], "does not name the"),
        (lambda ls: [ls[0].replace(",25.00,", ",abc,"), *ls[1:]], "column 'Settle' holds 'abc'"),
        (lambda ls: [ls[0].replace("10/1/2009", "2009-13-45"), *ls[1:]], "is not M/D/YYYY"),
    ],
)
def test_malformed_cells_name_file_and_line(tmp_path, edit, message):
    folder = _synthetic_folder(tmp_path, lambda c, ls: edit(ls) if c == "G10" else ls)
    with pytest.raises(DataError, match=rf"CFE_G10_VX\.csv line 2: .*{re.escape(message)}"):
        load_cfe_folder(folder)


def test_bad_header_missing_and_empty_folders(tmp_path):
    (tmp_path / "CFE_F10_VX.csv").write_text("Date,Settle\n1/4/2010,20\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"CFE_F10_VX\.csv line 1: header"):
        load_cfe_folder(tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_cfe_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no CFE_\\*_VX.csv files"):
        load_cfe_folder(tmp_path / "empty")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sets(st.integers(1, 60), min_size=1, max_size=12))
def test_removed_rows_are_never_filled(tmp_path_factory, removed):
    """Any set of interior rows removed from a file: exactly those days are empty for that
    contract (no interpolation) and each run of removed days is one reported gap."""
    folder = _synthetic_folder(tmp_path_factory.mktemp("cfe"), _drop("H10", removed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = load_cfe_folder(folder, on_problem="warn")
    assert any(issubclass(w.category, DataQualityWarning) for w in caught)
    days = SESSIONS[(SESSIONS >= "2009-10-01") & (SESSIONS <= "2010-03-17")]
    gone = days[sorted(removed)]
    column = got.matrix().settle[pd.Timestamp("2010-03-17")]
    assert column.reindex(gone).isna().all()
    assert column.drop(gone, errors="ignore").loc["2009-10-01":].notna().all()
    runs = int(np.sum(np.diff(sorted(removed)) > 1)) + 1
    assert sum(p.kind == "gap" for p in got.problems) == runs


# --------------------------------------------------------------------------- continuous splice


def test_splice_matches_continuous_file_and_keeps_its_roll(shared_data):
    folder = shared_data / "vix_futures_cfe" / "per_contract"
    spliced = load_vx_settles(folder, shared_data / CONTINUOUS)
    # overlap 2007-04-02..2017-03-08: only newly listed far contracts differ (see notes)
    assert any("22 of 19843 settles differ" in n for n in spliced.notes)
    cont = load_vix_futures_continuous(shared_data / CONTINUOUS)
    curve = futures_curve(spliced, matrix_sessions(spliced), n=8)
    got = curve.price.reindex(cont.index)
    assert np.array_equal(got[1].to_numpy(), cont["vx1"].to_numpy())  # every day, expiry days too
    after = cont.index > "2017-03-08"
    for k in range(1, 9):
        assert np.array_equal(got[k].to_numpy()[after], cont[f"vx{k}"].to_numpy()[after])
    assert (spliced.source.loc["2017-03-09":] == "continuous").all()
    assert (spliced.source.loc[:"2017-03-08"] == "cfe").all()


def test_splice_rejects_a_file_that_mixes_contracts(shared_data):
    base = load_cfe_folder(shared_data / "vix_futures_cfe" / "per_contract").matrix()
    cont = load_vix_futures_continuous(shared_data / CONTINUOUS)
    shifted = cont.assign(vx1=cont["vx2"], vx2=cont["vx3"])
    with pytest.raises(DataError, match="the splice would mix contracts"):
        splice_continuous(base, shifted, matrix_sessions(base))


# --------------------------------------------------------------------------- command line


def _cli_folder(folder: Path) -> Path:
    """Five contracts all trading until 2010-02-26 (F10, G10 expire inside, H10..K10 do not)."""
    folder.mkdir(parents=True, exist_ok=True)
    for code, expiry in (*SYNTH, ("J10", "2010-04-21"), ("K10", "2010-05-19")):
        _write(folder, code, _lines(code, min(expiry, "2010-02-26")))
    return folder


def test_cli_futures_and_etn_write_their_tables(tmp_path):
    from volbacktest.engine.cli import main

    folder = _cli_folder(tmp_path / "cfe")
    out = tmp_path / "curve.csv"
    rc = main(["futures", "--contracts", str(folder), "--out", str(out), "--n", "3"])
    rc_plot = main(
        [
            "futures",
            "--contracts",
            str(folder),
            "--out",
            str(out),
            "--plot-date",
            "2009-11-02",
            "--overwrite",
        ]
    )
    assert rc == rc_plot == 0 and (tmp_path / "curve_term.png").stat().st_size > 0
    curve = pd.read_csv(out, index_col="date", parse_dates=["date"])
    for col in ("f1", "expiry1", "bdays_to_expiry1", "cdays_to_expiry1", "vxf30", "w1"):
        assert col in curve.columns
    assert curve.loc["2010-02-26", "expiry1"] == "2010-03-17"  # unexpired: the CFE rule
    etn = tmp_path / "xiv.csv"
    args = ["etn", "--contracts", str(folder), "--kind", "inverse", "--out", str(etn)]
    assert main(args) == 0
    table = pd.read_csv(etn, index_col="date", parse_dates=["date"])
    r = table["index_return_er"].to_numpy()[1:]
    days = np.diff(table.index.to_numpy().astype("datetime64[D]")).astype(float)
    factor = (1 - r) * (1 - 0.0135 * days / 365)  # XIV: -1x daily, 1.35 %/yr
    assert np.allclose(table["etn"].to_numpy()[1:] / table["etn"].to_numpy()[:-1], factor)


def test_cli_reports_bad_input_with_status_2(tmp_path, capsys):
    from volbacktest.engine.cli import main

    folder = _cli_folder(tmp_path / "cfe")
    lines = (folder / "CFE_H10_VX.csv").read_text(encoding="utf-8").splitlines()
    del lines[20]
    (folder / "CFE_H10_VX.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = str(tmp_path / "x.csv")
    assert main(["futures", "--contracts", str(folder), "--out", out]) == 2
    assert "CFE_H10_VX.csv line 20, 21 (2009-10-28): gap" in capsys.readouterr().err
    with pytest.warns(DataQualityWarning):
        assert (
            main(["futures", "--contracts", str(folder), "--out", out, "--on-problem", "warn"]) == 0
        )
    argv = ["etn", "--contracts", str(tmp_path / "none"), "--out", out, "--overwrite"]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err
    bad_kind = [
        "etn",
        "--contracts",
        str(folder),
        "--out",
        out,
        "--kind",
        "long",
        "--leverage",
        "-1",
        "--overwrite",
    ]
    assert main([*bad_kind, "--on-problem", "warn"]) == 2  # before any file is read
    assert "a long note needs leverage > 0" in capsys.readouterr().err
