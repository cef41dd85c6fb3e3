"""``volbacktest datasets``: the dataset catalogue (what ``data:`` can name), the option-chain
datasets (what ``column@chain`` inputs can read), the data search roots; with configs, each
config's resolved datasets (where every name it reads comes from) without running."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, add_data_root, data_root, load_configs

DESCRIPTION = """\
Without a config: list the catalogued datasets (name, tradable or signal, date range,
description), the option-chain datasets and the data search roots: --root, then
$VOLBT_DATA_ROOT, then ../shared/data beside the repository.
With configs: show each config's resolved datasets (name, kind, source, format, rows, first and
last date, path), the user's files of data.datasets included, without running the backtest."""

EXAMPLE = """
volbacktest datasets
volbacktest datasets --root ../shared/data
volbacktest datasets configs/examples/own_files.yaml
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "datasets",
        parents,
        summary="list the datasets configs can name, or the datasets a config resolves to",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    p.add_argument(
        "configs", nargs="*", type=Path, metavar="CONFIG", help="show these configs' datasets"
    )
    add_data_root(
        p,
        "--root",
        "--data-root",
        help_text="data root to search first (then $VOLBT_DATA_ROOT, then ../shared/data)",
    )
    p.set_defaults(handler=run)


_COLUMNS = ("name", "kind", "source", "format", "rows", "first", "last", "path")


def _table(rows: list[dict]) -> list[str]:
    cells = [[str(r.get(c, "")) for c in _COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(_COLUMNS, *cells, strict=True)]
    return [
        "  ".join(f"{v:<{w}}" for v, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(_COLUMNS), *cells]
    ]


def _resolved(paths, root: str | None) -> int:
    from volbacktest.engine.inputs.datasets import describe
    from volbacktest.engine.inputs.market import load_raw

    for cfg in load_configs(paths, root):
        plan = cfg.plan
        names = {n: "tradable" for n in plan.assets()}
        for n in plan.inputs():
            names.setdefault(n, "signal")
        print(f"{cfg.name} ({cfg.source_file}): data.source {cfg.data.source}")
        for line in _table(describe(cfg.data, names, load_raw)):
            print(f"  {line}")
    return 0


def run(args) -> int:
    from volbacktest.data.catalogue import list_datasets, search_roots
    from volbacktest.engine.inputs.chainseries import CHAIN_DATASETS, _ensure_registered

    root = data_root(args.data_root)
    if args.configs:
        return _resolved(args.configs, root)
    roots = search_roots(root)
    print("search roots: " + (", ".join(str(r) for r in roots) or "none found"))
    for line in list_datasets():
        print(line)
    _ensure_registered()
    print("\noption-chain datasets (read as column@chain, e.g. ivix30@etf50_options):")
    for spec in sorted(CHAIN_DATASETS.values(), key=lambda s: s.name):
        print(f"{spec.name:<14} underlying {spec.underlying:<8} {spec.description}")
    return 0
