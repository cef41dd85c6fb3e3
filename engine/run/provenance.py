"""What produced a result: the ``run.json`` of a run folder (and, once, of a sweep's store).

:func:`environment` records the package version, the git commit and whether the tree had
uncommitted changes (when the package runs from a checkout), and the versions of Python, numpy,
pandas, backtrader and pydantic. :func:`run_record` adds the resolved config, its sha256 (of the
canonical JSON: sorted keys, no spaces) and one entry per dataset (file path, bytes, sha256,
rows, first and last date; or the synthetic seed; or a user frame's hash), as the market
recorded them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from volbacktest.data.catalogue import source_checkout

LIBRARIES = ("numpy", "pandas", "backtrader", "pydantic", "pyyaml")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def git_state(root: Path | None = None) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the checkout the package runs from, or
    ``{"commit": None}`` outside a git checkout (an installed wheel)."""
    root = root or source_checkout()
    if root is None or not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def environment() -> dict:
    """Package version, git state and library versions."""
    return {
        "package": "volbacktest",
        "version": _version("volbacktest"),
        "git": git_state(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def config_hash(resolved: Mapping) -> str:
    """sha256 of the resolved config's canonical JSON (sorted keys, no spaces); a sweep's run
    id is its first hex digits (without ``name`` and ``report``)."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_record(result, outputs: dict[str, str] | None = None) -> dict:
    """The ``run.json`` of one run (``result``: a BacktestResult)."""
    resolved = result.config.resolved()
    return {
        "run": result.label,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **environment(),
        "labels": {
            "fill": result.metrics.get("fill"),
            "look_ahead": result.metrics.get("look_ahead"),
            "rule": result.metrics.get("rule"),
            "data_source": result.metrics.get("data_source"),
        },
        "config_file": str(result.config.source_file) if result.config.source_file else None,
        "config_sha256": config_hash(resolved),
        "config": resolved,
        "datasets": list(result.provenance),
        "notes": list(result.market_notes),
        "outputs": outputs or {},
    }


NO_SHARE_MARKET = (
    "a futures or options sweep: its executor reads its own settle matrix or chain, whose files "
    "are not hashed here"
)


def sweep_record(base, market, spec: dict) -> dict:
    """The provenance a sweep's store records once (``meta`` key ``provenance``, and
    ``run.json`` beside it): environment, the base config (resolved, hashed), the sweep spec and
    the datasets of the base config's market (``market`` None: a contract executor's run)."""
    resolved = base.resolved()
    return {
        "sweep": base.name,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **environment(),
        "config_file": str(base.source_file) if base.source_file else None,
        "config_sha256": config_hash(resolved),
        "config": resolved,
        "sweep_spec": spec,
        "datasets": list(market.provenance) if market is not None else [],
        "notes": list(market.notes) if market is not None else [NO_SHARE_MARKET],
    }
