"""The comparison report: self-contained HTML (well-formed, no external references, every
embedded image decodes), PNG and CSV beside it, the ``compare`` subcommand, sweep parameter
views (heatmap, neighbour-averaged robustness) and their building blocks."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from volbacktest.engine.inputs.config import config_from_mapping
from volbacktest.engine.run.compare import (
    grid_pivot,
    monthly_returns,
    neighbour_mean,
    write_report,
    write_sweep_report,
)
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest
from volbacktest.engine.sweep.execute import ExecutorOptions
from volbacktest.engine.sweep.run import run_sweep
from volbacktest.engine.sweep.spec import plan_from_mapping

REPO = Path(__file__).resolve().parents[1]
SHORT = {"synthetic": {"seed": 11, "start": "2008-01-02", "end": "2009-12-31"}}
VOID = {"img", "meta", "br", "hr", "input", "link", "col", "area", "base", "source", "wbr"}


class _Checker(HTMLParser):
    """Well-formedness (every non-void element closed, properly nested) and references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster"):
                self.refs.append(value or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def validate_report(path: Path) -> int:
    """Assert the report is self-contained and well-formed; return the number of images."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, f"unclosed elements: {checker.stack}"
    assert (
        "script" not in checker.tags and "link" not in checker.tags and "iframe" not in checker.tags
    )
    assert "url(" not in text and "@import" not in text  # no CSS fetches
    for ref in checker.refs:
        assert ref.startswith("data:"), f"external reference {ref[:80]!r}"
    images = [r for r in checker.refs if r.startswith("data:image/")]
    for ref in images:
        head, data = ref.split(",", 1)
        assert head == "data:image/png;base64"
        img = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        img.verify()
        assert img.size[0] > 100 and img.size[1] > 100
    return len(images)


def cfg_for(name: str, fill: str = "next_close"):
    return config_from_mapping(
        {
            "name": f"cmp_{name}",
            "strategy": {"name": name},
            "data": SHORT,
            "execution": {"fill": fill},
            "report": {"tearsheet": False, "plots": False},
        }
    )


@pytest.fixture(scope="module")
def results():
    return [run_backtest(cfg_for(n)) for n in ("vratio", "buy_and_hold")]


def test_report_is_self_contained_with_tear_sheets(results, tmp_path):
    path = write_report(results, tmp_path, title="two strategies", tearsheets=True)
    n_images = validate_report(path)
    # equity, drawdowns, rolling Sharpe, monthly heatmaps + one tear sheet per strategy
    assert n_images == 4 + len(results)
    for name in (
        "equity.png",
        "drawdowns.png",
        "rolling_sharpe.png",
        "monthly_returns.png",
        "metrics.csv",
        "equity.csv",
        "drawdowns.csv",
        "rolling_sharpe.csv",
        "monthly_returns.csv",
    ):
        assert (tmp_path / name).is_file(), name
    metrics = pd.read_csv(tmp_path / "metrics.csv", index_col="run")
    assert list(metrics.index) == [r.label for r in results]
    assert metrics.loc["cmp_vratio", "sharpe"] == pytest.approx(results[0].metrics["sharpe"])
    html = path.read_text(encoding="utf-8")
    for title in ("Metrics", "Equity curves", "Drawdowns", "Rolling Sharpe", "Monthly returns"):
        assert f"<h2>{title}" in html
    assert "pyfolio tear sheets" in html


def test_look_ahead_runs_are_flagged(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_backtest(cfg_for("vratio", "same_close"))
    path = write_report([res], tmp_path, tearsheets=False)
    validate_report(path)
    assert "look-ahead" in path.read_text(encoding="utf-8")


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser():
    """A selenium WebDriver on the system's headless Chromium with its chromedriver (Debian's
    ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them). Missing: a failure in CI
    (``CI`` or ``REQUIRE_SHARED_DATA=1``), a skip with the reason elsewhere."""
    binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if binary is None or driver is None or webdriver is None:
        msg = (
            "no headless browser: needs chromium and chromedriver (apt-get install chromium "
            "chromium-driver) and selenium (the dev extra)"
        )
        if os.environ.get("CI") or os.environ.get("REQUIRE_SHARED_DATA", "") not in ("", "0"):
            pytest.fail(msg + "; CI requires the browser test to run")
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9",  # any network request would fail (and be logged)
        "--window-size=1280,900",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def _not_blank(shot: Path) -> None:
    """The screenshot decodes and shows a page: many colours, not one flat fill."""
    with Image.open(shot) as im:
        px = np.asarray(im.convert("L"), dtype=float)
        assert im.size[0] >= 1000 and im.size[1] >= 900
        assert px.std() > 10.0, f"{shot.name}: blank screenshot (grey std {px.std():.1f})"
        assert len(np.unique(px)) > 50, f"{shot.name}: too few shades for a rendered page"
        # dark ink somewhere below the title: charts and tables were drawn
        assert (px[300:] < 100).mean() > 0.001


def check_in_browser(driver, page: Path, shot: Path) -> dict:
    """Open ``page``, wait for it to render, check the console and every image, save a full-page
    screenshot to ``shot``; returns what the page reported."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"
        )
    )
    state = driver.execute_script(
        "const imgs = Array.from(document.images);"
        "return {images: imgs.length,"
        " broken: imgs.filter(i => !(i.naturalWidth > 0 && i.naturalHeight > 0))"
        "   .map(i => i.alt),"
        " height: document.documentElement.scrollHeight,"
        " h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent)};"
    )
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, f"{page}: console messages {errors[:3]}"
    assert not state["broken"], f"{page}: broken images {state['broken']}"
    assert state["images"] > 0 and state["h2"]
    driver.set_window_size(1280, min(int(state["height"]) + 100, 16000))
    driver.save_screenshot(str(shot))
    _not_blank(shot)
    return state


def test_pages_render_in_headless_browser(results, tmp_path):
    """A run page, a comparison page and a sweep page, opened in headless Chromium."""
    run_folder = write_run(
        run_backtest(cfg_for("vratio").with_overrides(**{"report.benchmark": "spx"})),
        tmp_path / "runs",
    )
    compare = write_report(results, tmp_path / "compare", tearsheets=False)
    sweep = run_sweep(
        plan_from_mapping(
            {
                "name": "shot",
                "strategy": {"name": "vratio"},
                "data": SHORT,
                "report": {"tearsheet": False, "plots": False},
                "sweep": {"grid": {"window": [3, 6, 12], "band": [0.0, 0.02]}, "top": 1},
            }
        ),
        opts=ExecutorOptions(progress=False),
        out=tmp_path / "sweeps",
        tearsheets=False,
    ).report
    driver = _browser()
    try:
        pages = {
            "run": run_folder / "report.html",
            "comparison": compare,
            "sweep": sweep,
        }
        seen = {k: check_in_browser(driver, p, tmp_path / f"{k}.png") for k, p in pages.items()}
    finally:
        driver.quit()
    assert "Headline metrics" in seen["run"]["h2"] and "Round trips" in " ".join(seen["run"]["h2"])
    assert seen["run"]["images"] == 3  # equity/underwater, rolling, exposure
    assert "Metrics" in seen["comparison"]["h2"]
    assert "Parameter heatmap (sharpe)" in seen["sweep"]["h2"]


def test_compare_subcommand(tmp_path):
    paths = []
    for name in ("vratio", "vrp"):
        p = tmp_path / f"{name}.yaml"
        raw = {
            "name": f"cli_{name}",
            "strategy": {"name": name},
            "data": SHORT,
            "report": {"out_dir": str(tmp_path / "results")},
        }
        p.write_text(yaml.safe_dump(raw), encoding="utf-8")
        paths.append(str(p))
    cmd = [sys.executable, str(REPO / "run_backtest.py"), "compare", *paths, "--no-tearsheet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = tmp_path / "results" / "compare" / "report.html"
    assert f"report: {report}" in done.stdout and "cli_vratio" in done.stdout
    assert validate_report(report) == 4
    bad = subprocess.run(
        [*cmd[:3], str(tmp_path / "nope.yaml")], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2 and "config file not found" in bad.stderr


def test_sweep_report_parameter_views(tmp_path):
    raw = {
        "name": "views",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"tearsheet": False, "plots": False},
        "sweep": {"grid": {"window": [3, 6, 12, 24], "band": [0.0, 0.02, 0.04]}, "top": 2},
    }
    out = run_sweep(
        plan_from_mapping(raw), opts=ExecutorOptions(progress=False), out=tmp_path, tearsheets=False
    )
    html = out.report.read_text(encoding="utf-8")
    assert validate_report(out.report) == 6  # heatmap, robustness + 4 strategy figures
    for text in ("Parameter heatmap (sharpe)", "Robustness (neighbour mean)", "Best runs"):
        assert text in html
    assert "fast path agrees with the event-driven runs" in html
    heat = pd.read_csv(out.report.parent / "heatmap.csv", index_col=0)
    heat.columns = heat.columns.astype(float)
    assert heat.shape == (4, 3)
    ranking = out.ranking
    best = ranking.iloc[0]
    assert heat.loc[int(best["p.window"]), float(best["p.band"])] == pytest.approx(best["sharpe"])
    # a one-axis grid gets a sensitivity line instead
    raw["sweep"]["grid"] = {"window": [3, 6, 12]}
    one = run_sweep(
        plan_from_mapping(raw),
        opts=ExecutorOptions(progress=False),
        out=tmp_path / "one",
        tearsheets=False,
    )
    assert "Parameter sensitivity (sharpe)" in one.report.read_text(encoding="utf-8")
    validate_report(one.report)


def test_neighbour_mean_by_hand():
    pivot = pd.DataFrame([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]], index=[1, 2], columns=[10, 20, 30])
    got = neighbour_mean(pivot).to_numpy()
    expected = np.array(
        [
            [(1 + 2 + 4) / 3, (1 + 2 + 3 + 4 + 6) / 5, (2 + 3 + 6) / 3],
            [(1 + 2 + 4) / 3, (1 + 2 + 3 + 4 + 6) / 5, (2 + 3 + 6) / 3],
        ]
    )
    np.testing.assert_allclose(got, expected)


def test_grid_pivot_averages_extra_axes():
    frame = pd.DataFrame(
        {
            "p.a": [1, 1, 2, 2, 1, 1, 2, 2],
            "p.b": [0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.1, 0.2],
            "p.c": ["x"] * 4 + ["y"] * 4,
            "sharpe": [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    pivot = grid_pivot(frame, ["a", "b", "c"], "sharpe")
    assert pivot.loc[1, 0.1] == 2.0 and pivot.loc[2, 0.2] == 5.0


def test_monthly_returns_compound_by_calendar_month():
    idx = pd.bdate_range("2020-01-01", "2020-03-31")
    rng = np.random.default_rng(4)
    r = pd.Series(rng.normal(0, 0.01, len(idx)), index=idx)
    table = monthly_returns(r)
    assert table.shape == (1, 12)
    for month in (1, 2, 3):
        part = r[r.index.month == month]
        assert table.loc[2020, month] == pytest.approx(np.prod(1 + part.to_numpy()) - 1)
    assert table.loc[2020, 4:].isna().all()


def test_random_sweep_report_explains_missing_heatmap(tmp_path):
    plan = plan_from_mapping(
        {
            "name": "rnd",
            "strategy": {"name": "vratio"},
            "data": SHORT,
            "sweep": {
                "random": {
                    "n": 5,
                    "seed": 2,
                    "params": {"window": {"kind": "int", "low": 2, "high": 30}},
                },
                "top": 0,
            },
        }
    )
    frame = run_sweep(plan, opts=ExecutorOptions(progress=False), out=tmp_path, report=False)
    path = write_sweep_report(
        plan,
        frame.ranking.assign(status="ok"),
        [],
        tmp_path / "r",
        overfitting={"probability_of_backtest_overfitting": 0.25, "sharpe": 1.234},
    )
    text = path.read_text(encoding="utf-8")
    assert "not drawn: the sweep samples at random" in text
    # statistics a sweep supplies are shown, formatted (ratios with two decimals)
    assert "<h2>Overfitting statistics</h2>" in text and "<td>1.23</td>" in text
    # the ranking is formatted for reading: Sharpe with two decimals, drawdowns in percent
    assert "%</td>" in text
    validate_report(path)


def test_walkforward_tear_sheet_marks_the_out_of_sample_start(tmp_path):
    from volbacktest.engine.run.compare import _walkforward_sections

    raw = {
        "name": "wf_sheet",
        "strategy": {"name": "vratio"},
        "data": SHORT,
        "report": {"tearsheet": False, "plots": False},
        "sweep": {"grid": {"window": [5, 10]}, "top": 0},
        "split": {"in_sample_end": "2009-03-31"},
    }
    wf = run_sweep(
        plan_from_mapping(raw), opts=ExecutorOptions(progress=False), out=tmp_path, report=False
    ).walkforward
    html = "".join(_walkforward_sections(wf, tmp_path, tearsheets=True))
    first_oos = wf.out_of_sample.returns.index[0]
    assert first_oos > pd.Timestamp("2009-03-31")
    assert f"out-of-sample from {first_oos:%Y-%m-%d} (pyfolio&#x27;s live_start_date)" in html
    assert "Walk-forward tear sheet" in html
    with Image.open(tmp_path / "walkforward_tearsheet.png") as im:
        assert im.size[1] > 3000  # the whole returns sheet
