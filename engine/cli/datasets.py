"""``volbacktest datasets``: the dataset catalogue (what ``data:`` can name) and the data
search roots."""

from __future__ import annotations

from .common import add_command, add_data_root, data_root

DESCRIPTION = """\
List the catalogued datasets (name, tradable or signal, date range, description) and the data
search roots: --root, then $VOLBT_DATA_ROOT, then ../shared/data beside the repository."""

EXAMPLE = """
volbacktest datasets
volbacktest datasets --root ../shared/data
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "datasets",
        parents,
        summary="list the datasets configs can name, and the data search roots",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    add_data_root(
        p,
        "--root",
        "--data-root",
        help_text="data root to search first (then $VOLBT_DATA_ROOT, then ../shared/data)",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from volbacktest.data.catalogue import list_datasets, search_roots

    roots = search_roots(data_root(args.data_root))
    print("search roots: " + (", ".join(str(r) for r in roots) or "none found"))
    for line in list_datasets():
        print(line)
    return 0
