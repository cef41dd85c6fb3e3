"""The import architecture: no cycles, no upward imports across the layers, pure calculators.

Layers, low to high (a module may import only its own layer or lower ones; see
``architecture_support.LAYERS``): 0 engine.errors, engine.caches; 1 engine.calculators;
2 strategies, data (never each other); 3 engine.inputs; 4 engine.execution; 5 engine.run;
6 engine.sweep; 7 engine.cli, engine.api; 8 volbacktest itself. The graph is read from the
source with ``ast``: every import anywhere in a file counts (function-local ones included),
except inside ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from architecture_support import (
    build_graph,
    find_cycles,
    layer_of,
    layer_violations,
    package_dirs,
    purity_violations,
    sibling_violations,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    return build_graph(REPO)


def _report(title: str, lines: list[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)


def test_the_graph_covers_every_package(graph):
    names = set(graph.modules)
    for expected in (
        "volbacktest",
        "volbacktest.__main__",
        "volbacktest.engine",
        "volbacktest.engine.errors",
        "volbacktest.engine.calculators.vix",
        "volbacktest.engine.inputs.config",
        "volbacktest.engine.sweep.run",
        "volbacktest.strategies.ivix",
        "volbacktest.data.chains",
    ):
        assert expected in names
    assert not [m for m in names if layer_of(m) is None]
    # relative and absolute imports both resolve to modules
    assert "volbacktest.strategies.base" in graph.edges["volbacktest.strategies.ivix"]
    assert "volbacktest.engine.calculators.vix" in graph.edges["volbacktest.data.vix_history"]


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    assert not cycles, _report("import cycles", cycles)


def test_no_upward_imports(graph):
    lines = layer_violations(graph) + sibling_violations(graph)
    assert not lines, _report("imports against the layers", lines)


def test_calculators_are_pure(graph):
    """engine.calculators: no backtrader, no data layer, no files, no calendars."""
    lines = purity_violations(graph)
    assert not lines, _report("impure calculators", lines)


def test_importing_the_calculators_loads_no_backtrader_data_or_heavy_extras():
    """At run time too (a spawned sweep worker pays for every import): importing every
    calculator loads neither backtrader, nor the data layer, nor scipy.signal (the OU
    simulator imports it on first use) nor exchange_calendars."""
    modules = sorted(
        f"volbacktest.engine.calculators.{p.stem}"
        for p in (REPO / "engine" / "calculators").glob("*.py")
        if p.stem != "__init__"
    )
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        bad = ("backtrader", "volbacktest.data", "scipy.signal", "exchange_calendars")
        print(sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in bad)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]", out.stdout


# --------------------------------------------------------------------------------------------
# the checker finds what it is meant to find

_FAKE = {
    "volbacktest/__init__.py": "",
    "engine/__init__.py": "",
    "engine/errors.py": "",
    "engine/calculators/__init__.py": "",
    "engine/calculators/kernel.py": """\
        from typing import TYPE_CHECKING

        import pandas as pd

        if TYPE_CHECKING:
            from volbacktest.engine.run.runner import Result  # type only: not an edge

        def load(path):
            from volbacktest.engine.inputs.config import Config  # upward, in a function
            return pd.read_csv(path), open(path), Config
        """,
    "engine/inputs/__init__.py": "",
    "engine/inputs/config.py": """\
        from volbacktest.engine.calculators import kernel

        Config = kernel
        """,
    "engine/run/__init__.py": "",
    "engine/run/runner.py": "Result = 1\n",
    "data/__init__.py": "",
    "data/a.py": "from . import b\n",
    "data/b.py": "from .a import X\n",
    "strategies/__init__.py": "",
    "strategies/s.py": "from ..data import a\n",
}


@pytest.fixture
def fake_graph(tmp_path):
    for rel, text in _FAKE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return build_graph(tmp_path, package_dirs(REPO / "pyproject.toml"))


def test_checker_finds_a_planted_cycle(fake_graph):
    assert sorted(find_cycles(fake_graph)) == [
        "volbacktest.data.a -> volbacktest.data.b -> volbacktest.data.a",
        "volbacktest.engine.calculators.kernel -> volbacktest.engine.inputs.config -> "
        "volbacktest.engine.calculators.kernel",
    ]


def test_checker_finds_planted_upward_and_sibling_imports(fake_graph):
    assert layer_violations(fake_graph) == [
        "volbacktest.engine.calculators.kernel (1) imports volbacktest.engine.inputs.config (3)"
        "  [engine/calculators/kernel.py:9]"
    ]
    assert sibling_violations(fake_graph) == [
        "volbacktest.strategies.s imports volbacktest.data.a  [strategies/s.py:1]"
    ]
    # the TYPE_CHECKING import is no edge
    assert (
        "volbacktest.engine.run.runner"
        not in fake_graph.edges["volbacktest.engine.calculators.kernel"]
    )


def test_checker_finds_planted_file_access(fake_graph):
    assert purity_violations(fake_graph) == [
        "volbacktest.engine.calculators.kernel calls .read_csv(...)  "
        "[engine/calculators/kernel.py:10]",
        "volbacktest.engine.calculators.kernel calls open(...)  [engine/calculators/kernel.py:10]",
    ]
