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


# A Dask test cluster must not depend on the machine: with ``dashboard_address=None`` the
# scheduler still serves HTTP (/metrics, /health) on 8787, and fails to start when anything
# else holds that port (pytest turns distributed's "Port 8787 is already in use" warning into an
# error). Every test cluster binds port 0 for both the scheduler and its HTTP server
# (an in-process cluster, ``processes=False``, takes only the dashboard address).
DASK_TEST_DASHBOARD = "127.0.0.1:0"
DASK_TEST_CLUSTER = {
    "host": "127.0.0.1",
    "scheduler_port": 0,
    "dashboard_address": DASK_TEST_DASHBOARD,
    "worker_dashboard_address": None,
}


@pytest.fixture
def busy_dask_ports():
    """Hold Dask's default ports (8786 scheduler, 8787 dashboard) on loopback while a test
    starts a cluster, as a hand-started scheduler would; ports already taken stay taken."""
    import socket

    held = []
    for port in (8786, 8787):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        except OSError:
            s.close()  # something else holds it: the test sees the same situation
    yield
    for s in held:
        s.close()
