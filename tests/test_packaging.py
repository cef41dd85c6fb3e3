"""The package as a user installs it: one import name, a wheel that works away from the checkout.

A wheel is built from this checkout and installed (``pip install --target``) into a temporary
folder; every command then runs from an unrelated folder holding a ``strategies.py`` and a
``data/__init__.py`` (names that used to shadow the engine's own top-level packages), with the
installed copy first on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("run", "compare", "sweep", "vix", "futures", "etn", "datasets")


def _pip(*args: str, cwd: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    wheels, target, elsewhere = root / "dist", root / "site", root / "notebook"
    _pip("wheel", "--no-deps", "-w", str(wheels), str(REPO))  # isolated build: setuptools>=68
    (wheel,) = wheels.glob("volbacktest-*.whl")
    _pip("install", "--no-deps", "--target", str(target), str(wheel))
    elsewhere.mkdir()
    (elsewhere / "strategies.py").write_text("raise ImportError('the user strategies.py')\n")
    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "__init__.py").write_text("raise ImportError('the user data/')\n")
    env = {k: v for k, v in os.environ.items() if k != "VOLBT_DATA_ROOT"}
    env["PYTHONPATH"] = str(target)
    env["MPLBACKEND"] = "Agg"
    return {"wheel": wheel, "target": target, "cwd": elsewhere, "env": env}


def _run(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=installed["cwd"],
        env=installed["env"],
        check=False,
        timeout=600,
    )


def test_the_wheel_installs_one_import_name(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"volbacktest"}
    for module in ("engine/cli/__init__.py", "strategies/cooper.py", "data/loaders.py"):
        assert f"volbacktest/{module}" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "volbacktest = volbacktest.engine.cli:main"
        in zipfile.ZipFile(installed["wheel"]).read(entry).decode()
    )


def test_installed_copy_runs_away_from_the_checkout(installed, tmp_path):
    proc = _run(installed, "-c", "import volbacktest, sys; print(volbacktest.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(installed["target"]))

    proc = _run(installed, "-m", "volbacktest", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout

    # no data root from inside the installed package: only the environment or --data-root
    proc = _run(installed, "-m", "volbacktest", "datasets")
    assert proc.returncode == 0, proc.stderr
    assert str(installed["target"]) not in proc.stdout

    out = tmp_path / "results"
    config = REPO / "configs" / "vratio.yaml"
    script = installed["target"] / "bin" / "volbacktest"
    cli = [str(script)] if script.exists() else ["-m", "volbacktest"]
    proc = subprocess.run(
        [*([sys.executable] if cli[0] == "-m" else []), *cli, "run", str(config), "--out",
         str(out), "--no-tearsheet"],
        capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"], timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sharpe_cli = json.loads((out / "vratio" / "metrics.json").read_text())["sharpe"]

    code = (
        "import volbacktest as vb; "
        "print(repr(vb.run({'name': 'nb', 'strategy': {'name': 'vratio'}}).metrics['sharpe']))"
    )
    proc = _run(installed, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) == sharpe_cli
