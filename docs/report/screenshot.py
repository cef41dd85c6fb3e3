"""Redraw docs/report/run_page.png, the README's screenshot of a run page: runs
configs/real/vratio.yaml (needs ../shared/data) into a temporary folder and photographs the top
of its report.html in headless Chromium (Debian's chromium + chromium-driver, selenium from the
dev extra).

    python docs/report/screenshot.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import volbacktest as vb

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 900, 1425  # the top of the page: headline metrics, equity, monthly returns


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = vb.run(HERE.parents[1] / "configs" / "real" / "vratio.yaml").save(tmp)
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        for arg in ("--headless=new", "--no-sandbox", "--hide-scrollbars"):
            opts.add_argument(arg)
        opts.add_argument(f"--window-size={WIDTH},{HEIGHT}")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        try:
            driver.get((Path(folder) / "report.html").as_uri())
            driver.save_screenshot(str(HERE / "run_page.png"))
        finally:
            driver.quit()
    print(f"wrote {HERE / 'run_page.png'}")


if __name__ == "__main__":
    main()
