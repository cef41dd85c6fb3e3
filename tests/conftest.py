"""Shared fixtures: where the shared market data lives, and how its absence is handled."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib
import pytest
from hypothesis import settings

matplotlib.use("Agg")

# CI replays a fixed set of examples (a submission must not fail on a freshly drawn one);
# developers' runs stay random, which is how the suite keeps finding new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VOLBT_DATA_ROOT", REPO.parent / "shared" / "data"))


def _require_shared() -> bool:
    return os.environ.get("REQUIRE_SHARED_DATA", "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when absent, fails if REQUIRE_SHARED_DATA=1."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    msg = (
        f"shared market data not found at {SHARED_DATA} (set VOLBT_DATA_ROOT or place the "
        "shared/ folder beside the repository)"
    )
    if _require_shared():
        pytest.fail(msg + "; REQUIRE_SHARED_DATA=1 makes this a failure")
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The command line's ``main`` sets the package logger's level; put it back for the other
    tests (test_cli, test_bad_inputs and any test calling ``main`` in-process)."""
    logger = logging.getLogger("volbacktest")
    level = logger.level
    yield
    logger.setLevel(level)
