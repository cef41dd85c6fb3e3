"""The import graph of the package, built from the source with ``ast``, and the checks on it.

Used by ``test_architecture.py``; kept out of the package (nothing here runs in a backtest).

* :func:`package_dirs` reads the setuptools ``package-dir`` mapping of ``pyproject.toml``
  (``engine/`` installs as ``volbacktest.engine`` and so on);
* :func:`discover_modules` maps every ``.py`` file under those folders to its dotted name
  (``engine/x/y.py`` -> ``volbacktest.engine.x.y``, ``__init__.py`` -> the package);
* :func:`build_graph` reads every ``import`` / ``from ... import`` anywhere in each file
  (function bodies included, ``if TYPE_CHECKING:`` blocks skipped, relative imports resolved)
  and resolves each to the project module it loads;
* :func:`find_cycles`, :func:`layer_violations`, :func:`sibling_violations` and
  :func:`purity_violations` return printable lines, empty when all is well.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = "volbacktest"

# The layers, low to high: a module may import only its own layer or lower ones. A name covers
# the module itself and everything below it; the longest matching name wins.
LAYERS: dict[str, int] = {
    "volbacktest.engine.errors": 0,
    "volbacktest.engine.caches": 0,
    "volbacktest.engine.calculators": 1,
    "volbacktest.strategies": 2,
    "volbacktest.data": 2,
    "volbacktest.engine.inputs": 3,
    "volbacktest.engine.execution": 4,
    "volbacktest.engine.run": 5,
    "volbacktest.engine.sweep": 6,
    "volbacktest.engine.cli": 7,
    "volbacktest.engine.api": 7,
    "volbacktest.__main__": 8,
}
# Package modules that cover only themselves (their submodules need their own entry above).
# ``volbacktest.engine`` runs before every engine module is imported, so it sits at the
# bottom; ``volbacktest`` itself is the front door.
PACKAGE_LAYERS: dict[str, int] = {
    "volbacktest": 8,
    "volbacktest.engine": 0,
}
# Layer-2 siblings that must not import each other in either direction.
SEPARATE: tuple[tuple[str, str], ...] = (("volbacktest.strategies", "volbacktest.data"),)

# What a pure calculator must not import (top-level names or project packages) ...
IMPURE_IMPORTS: tuple[str, ...] = (
    "backtrader",
    "volbacktest.data",
    "pathlib",
    "os",
    "io",
    "glob",
    "shutil",
    "tempfile",
    "pickle",
    "pyarrow",
    "dask",
    "distributed",
    "exchange_calendars",
)
# ... nor call (file access): ``open(...)``, ``x.read_*(...)``, ``x.to_<file format>(...)``,
# ``np.load/save*``, ``Path(...)``
_FILE_CALL_NAMES = frozenset({"open", "Path"})
_FILE_METHODS = frozenset(
    {
        "open",
        "to_csv",
        "to_parquet",
        "to_pickle",
        "to_json",
        "to_excel",
        "to_hdf",
        "to_feather",
        "write_text",
        "write_bytes",
        "load",
        "loadtxt",
        "genfromtxt",
        "save",
        "savez",
        "savetxt",
    }
)


@dataclass(frozen=True)
class ImportRef:
    """One imported name, made absolute (``a.b`` for ``import a.b``, ``a.b.c`` for
    ``from a.b import c`` and for ``from . import c`` inside package ``a.b``), and its line."""

    name: str
    line: int


@dataclass
class ModuleInfo:
    name: str
    path: Path
    is_package: bool
    imports: list[ImportRef] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)  # file-access calls found


@dataclass(repr=False)
class Graph:
    modules: dict[str, ModuleInfo]
    edges: dict[str, dict[str, int]]  # source -> {target: first line}
    root: Path

    def __repr__(self) -> str:  # short, for pytest's failure report
        n_edges = sum(len(t) for t in self.edges.values())
        return f"Graph({len(self.modules)} modules, {n_edges} edges under {self.root})"

    def where(self, module: str, line: int) -> str:
        path = self.modules[module].path
        try:
            path = path.relative_to(self.root)
        except ValueError:
            pass
        return f"{path}:{line}"


# --------------------------------------------------------------------------------------------
# discovery


def package_dirs(pyproject: Path) -> dict[str, str]:
    """The setuptools ``package-dir`` mapping (dotted package -> folder relative to the root)."""
    with pyproject.open("rb") as fh:
        config = tomllib.load(fh)
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {str(k): str(v) for k, v in mapping.items()}


def discover_modules(root: Path, dirs: Mapping[str, str]) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is_package) for every ``.py`` file under the mapped folders.

    A folder mapped to a package is walked recursively; a subfolder that is itself mapped
    (``volbacktest.engine`` -> ``engine``) is left to its own entry.
    """
    folders = {(root / d).resolve(): pkg for pkg, d in dirs.items()}
    out: dict[str, tuple[Path, bool]] = {}
    for folder, pkg in folders.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts:
                continue
            nested = ((folder / Path(*rel.parts[:i])).resolve() for i in range(1, len(rel.parts)))
            if any(sub in folders for sub in nested):
                continue  # inside a folder mapped to another package
            parts = list(rel.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join([pkg, *parts])
            out[name] = (path, is_package)
    return out


# --------------------------------------------------------------------------------------------
# reading one file


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Reader(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.imports: list[ImportRef] = []
        self.calls: list[tuple[str, int]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the runtime branch of ``if TYPE_CHECKING: ... else:``
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(ImportRef(alias.name, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), self.package)
        else:
            base = node.module or ""
        if base == PROJECT:  # ``from volbacktest import x`` runs the front door's __init__ too
            self.imports.append(ImportRef(base, node.lineno))
        for alias in node.names:
            name = base if alias.name == "*" else f"{base}.{alias.name}"
            self.imports.append(ImportRef(name, node.lineno))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _FILE_CALL_NAMES:
            self.calls.append((f"{func.id}(...)", node.lineno))
        elif isinstance(func, ast.Attribute) and (
            func.attr.startswith("read_") or func.attr in _FILE_METHODS
        ):
            self.calls.append((f".{func.attr}(...)", node.lineno))
        self.generic_visit(node)


def read_module(name: str, path: Path, is_package: bool) -> ModuleInfo:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    reader = _Reader(name, is_package)
    reader.visit(tree)
    return ModuleInfo(name, path, is_package, reader.imports, reader.calls)


# --------------------------------------------------------------------------------------------
# the graph


def resolve(ref: ImportRef, known: Iterable[str] | Mapping[str, object]) -> str | None:
    """The project module an import loads: ``a.b.c`` itself when it is a module, else the
    longest known prefix (``from pkg.mod import name`` -> ``pkg.mod``; ``from pkg import name``
    of a non-module name -> the package ``pkg``). None for imports outside the project."""
    top = ref.name.split(".")[0]
    if top != PROJECT:
        return None
    parts = ref.name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def build_graph(root: Path, dirs: Mapping[str, str] | None = None) -> Graph:
    """The import graph of every project module under ``root`` (edges between project modules;
    a module's imports of itself are left out)."""
    root = Path(root).resolve()
    if dirs is None:
        dirs = package_dirs(root / "pyproject.toml")
    found = discover_modules(root, dirs)
    modules = {name: read_module(name, path, pkg) for name, (path, pkg) in found.items()}
    edges: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, info in modules.items():
        for ref in info.imports:
            target = resolve(ref, modules)
            if target is None or target == name:
                continue
            edges[name].setdefault(target, ref.line)
    return Graph(modules, edges, root)


# --------------------------------------------------------------------------------------------
# checks


def strongly_connected(edges: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, largest first (recursive: the
    depth is at most the number of modules, a few hundred)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(edges[node]):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            out.append(sorted(component))

    for start in sorted(edges):
        if start not in index:
            visit(start)
    return sorted(out, key=lambda c: (-len(c), c))


def _shortest_cycle(edges: Mapping[str, Mapping[str, int]], start: str, members: set[str]):
    """Shortest path start -> ... -> start inside ``members`` (breadth first)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node]):
            if child not in members:
                continue
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in seen:
                seen.add(child)
                previous[child] = node
                queue.append(child)
    return None


def find_cycles(graph: Graph) -> list[str]:
    """``a -> b -> a`` for a shortest cycle through each module of every import cycle
    (duplicates of the same cycle seen from another member dropped)."""
    lines: list[str] = []
    for component in strongly_connected(graph.edges):
        if len(component) < 2:
            continue
        members = set(component)
        seen: set[tuple[str, ...]] = set()
        for module in component:
            cycle = _shortest_cycle(graph.edges, module, members)
            if cycle is None:
                continue
            ring = cycle[:-1]
            key = min(tuple(ring[i:] + ring[:i]) for i in range(len(ring)))
            if key in seen:
                continue
            seen.add(key)
            lines.append(" -> ".join(cycle))
    return lines


def layer_of(module: str) -> int | None:
    if module in PACKAGE_LAYERS:
        return PACKAGE_LAYERS[module]
    best = None
    for name, layer in LAYERS.items():
        if (module == name or module.startswith(name + ".")) and (
            best is None or len(name) > len(best[0])
        ):
            best = (name, layer)
    return None if best is None else best[1]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_violations(graph: Graph) -> list[str]:
    """``module (layer) imports target (layer)`` for every import of a higher layer, and
    ``module has no layer`` for a module the table does not cover."""
    lines = [f"{m} has no layer (add it to LAYERS)" for m in graph.modules if layer_of(m) is None]
    for source, targets in sorted(graph.edges.items()):
        lo = layer_of(source)
        for target, line in sorted(targets.items()):
            hi = layer_of(target)
            if lo is not None and hi is not None and hi > lo:
                lines.append(
                    f"{source} ({lo}) imports {target} ({hi})  [{graph.where(source, line)}]"
                )
    return lines


def sibling_violations(graph: Graph) -> list[str]:
    """Imports between packages that must stay apart (strategies <-> data)."""
    lines = []
    for a, b in SEPARATE:
        for source, targets in sorted(graph.edges.items()):
            for target, line in sorted(targets.items()):
                if (_within(source, a) and _within(target, b)) or (
                    _within(source, b) and _within(target, a)
                ):
                    lines.append(f"{source} imports {target}  [{graph.where(source, line)}]")
    return lines


def purity_violations(graph: Graph, package: str = "volbacktest.engine.calculators") -> list[str]:
    """Imports of :data:`IMPURE_IMPORTS` and file-access calls in the modules of ``package``."""
    lines = []
    for name, info in sorted(graph.modules.items()):
        if not _within(name, package):
            continue
        for ref in info.imports:
            for banned in IMPURE_IMPORTS:
                if _within(ref.name, banned):
                    lines.append(f"{name} imports {ref.name}  [{graph.where(name, ref.line)}]")
                    break
        for call, line in info.calls:
            lines.append(f"{name} calls {call}  [{graph.where(name, line)}]")
    return lines
