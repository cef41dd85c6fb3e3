"""Series derived from option chains (iVIX, risk-neutral moments, anomaly aggregates), usable as
strategy or filter inputs by name.

An input name of the form ``"<column>@<chain dataset>"`` (e.g. ``"ivix30@etf50_options"``) means
"the daily ``column`` computed from that chain dataset". Two registries connect the pieces:

* :data:`CHAIN_DATASETS`: a chain dataset's loaders (real files / embedded market) and the
  dataset name of its underlying (the instrument the option-chain feed prices);
* :data:`SERIES`: a column name → the :class:`ChainSeriesSpec` computing it.

``spec.compute(chain, context)`` is a pure, vectorised function over a whole chain history
returning a frame indexed by trade date. The backtrader ``ChainIndicator`` (``engine.execution.bt``)
calls the same function over the whole chain (runonce) or over the last ``lookback_days`` + 1
dates (next), so both modes agree, and the market builder calls it once to give the decision
function the identical series.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from volbacktest.data.catalogue import SearchRoots, roots_for
from volbacktest.engine.caches import CACHES
from volbacktest.engine.errors import ConfigError


@dataclass(frozen=True)
class ChainContext:
    """What a chain computation may need besides the chain: rates, the data source."""

    source: str  # "synthetic" | "shared"
    rates: Any = 0.0  # constant decimal rate, or a rates frame (e.g. SHIBOR) for the calculator
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainDatasetSpec:
    name: str
    underlying: str  # dataset name of the underlying's bars (the traded instrument)
    # (roots[, bad_quotes=...]) -> chain, context; context.extras["notes"]: the policy's counts
    load_shared: Callable[..., tuple[pd.DataFrame, ChainContext]]
    load_synthetic: Callable[[int, Any, Any], tuple[pd.DataFrame, ChainContext]] | None = None
    description: str = ""
    from_file: bool = False  # a data.datasets entry (engine.inputs.user_chains), loaded by it


@dataclass(frozen=True)
class ChainSeriesSpec:
    name: str
    columns: tuple[str, ...]
    compute: Callable[[pd.DataFrame, ChainContext], pd.DataFrame]
    lookback_days: int = 0  # earlier trade dates a value needs besides its own
    description: str = ""


CHAIN_DATASETS: dict[str, ChainDatasetSpec] = {}
SERIES: dict[str, ChainSeriesSpec] = {}  # keyed by column name


def register_chain_dataset(spec: ChainDatasetSpec) -> ChainDatasetSpec:
    CHAIN_DATASETS[spec.name] = spec
    return spec


def register_series(spec: ChainSeriesSpec) -> ChainSeriesSpec:
    for col in spec.columns:
        if col in SERIES and SERIES[col] is not spec:
            raise ValueError(f"chain series column {col!r} is already registered")
        SERIES[col] = spec
    return spec


def is_chain_input(name: str) -> bool:
    return "@" in name


def split_input(name: str) -> tuple[ChainSeriesSpec, str, str]:
    """``"ivix30@mychain"`` → (series spec, column, chain name), the chain not looked up."""
    _ensure_registered()
    column, _, chain = name.partition("@")
    if column not in SERIES:
        raise ConfigError(
            f"unknown chain series {column!r} in {name!r}; valid: {', '.join(sorted(SERIES))}"
        )
    return SERIES[column], column, chain


def parse_input(name: str, data_cfg=None) -> tuple[ChainSeriesSpec, str, ChainDatasetSpec]:
    """``"ivix30@etf50_options"`` → (series spec, column, chain dataset spec); a chain entry of
    ``data_cfg.datasets`` wins over the registered chain of the same name."""
    spec, column, chain = split_input(name)
    user = _user_chain(chain, data_cfg)
    if user is not None:
        return spec, column, user
    if chain not in CHAIN_DATASETS:
        raise ConfigError(
            f"unknown option-chain dataset {chain!r} in {name!r}; valid: "
            f"{', '.join(_valid_chains(data_cfg)) or '(none registered)'} (or declare it in "
            f"data.datasets: {chain}: {{path: ..., format: chain, underlying: ...}})"
        )
    return spec, column, CHAIN_DATASETS[chain]


# the module building chain datasets from data.datasets entries (imported by name, as the
# registering modules are: it reads files through data.user_files and the market's loaders)
USER_CHAINS_MODULE = "volbacktest.engine.inputs.user_chains"


def _user_chain(chain: str, data_cfg) -> ChainDatasetSpec | None:
    datasets = getattr(data_cfg, "datasets", None) or {}
    if chain not in datasets:
        return None
    return importlib.import_module(USER_CHAINS_MODULE).chain_spec(chain, data_cfg)


def _valid_chains(data_cfg) -> list[str]:
    datasets = getattr(data_cfg, "datasets", None) or {}
    return sorted({*CHAIN_DATASETS, *datasets})


def _ensure_registered() -> None:
    """Import the modules that register chain datasets and series (explicit, not at import of
    this module, to keep the calculators' heavy imports lazy)."""
    for module in REGISTERING_MODULES:
        importlib.import_module(module)


# modules whose import registers chain datasets / series (appended by each capability)
REGISTERING_MODULES: list[str] = [
    "volbacktest.engine.inputs.options_series",
    "volbacktest.engine.inputs.options_chains",
]


def chain_dataset(chain: str, data_cfg=None) -> ChainDatasetSpec:
    """The chain dataset ``chain``: a chain entry of ``data_cfg.datasets``, else the registered
    one (ConfigError listing the valid names if none)."""
    _ensure_registered()
    spec = _user_chain(chain, data_cfg) or CHAIN_DATASETS.get(chain)
    if spec is None:
        raise ConfigError(
            f"unknown option-chain dataset {chain!r}; valid: {_valid_chains(data_cfg)}"
        )
    return spec


def load_chain(chain: str, data_cfg) -> tuple[pd.DataFrame, ChainContext]:
    """The whole chain history of ``chain`` from the configured source (cached in-process), or
    from the user's file when ``data.datasets`` has a chain entry of that name."""
    spec = chain_dataset(chain, data_cfg)
    if spec.from_file:
        return spec.load_shared(None)
    if data_cfg.source == "synthetic":
        if spec.load_synthetic is None:
            raise ConfigError(
                f"option-chain dataset {chain!r} has no embedded version; use data.source: shared"
            )
        syn = data_cfg.synthetic
        return _cached_synthetic(chain, syn.seed, str(syn.start), str(syn.end))
    roots = tuple(str(r) for r in roots_for(data_cfg.root))
    return _cached_shared(chain, roots, data_cfg.bad_quotes)


@CACHES.memo("inputs.chainseries.synthetic_chains", maxsize=8)
def _cached_synthetic(chain: str, seed: int, start: str, end: str):
    return CHAIN_DATASETS[chain].load_synthetic(seed, start, end)


@CACHES.memo("inputs.chainseries.shared_chains", maxsize=8)
def _cached_shared(chain: str, roots: tuple[str, ...], bad_quotes: str = "stop"):
    paths = [Path(r) for r in roots]
    found = SearchRoots(paths, [("root", p) for p in paths])
    # data.bad_quotes reaches the loader when it is not the default (a loader registered as
    # ``load_shared(roots)`` keeps working with default configs)
    policy = {} if bad_quotes == "stop" else {"bad_quotes": bad_quotes}
    return CHAIN_DATASETS[chain].load_shared(found, **policy)


def chain_notes(name: str, data_cfg) -> tuple[str, ...]:
    """What the loader's policy did to the chain behind the input ``name`` (rows dropped or
    merged, with counts), for the run's notes."""
    _, _, chain = parse_input(name, data_cfg)
    _, context = load_chain(chain.name, data_cfg)
    return tuple(context.extras.get("notes", ()))


def series_on_calendar(name: str, calendar: pd.DatetimeIndex, data_cfg) -> pd.Series:
    """What a strategy sees for the chain input ``name`` on ``calendar``: the series computed over
    the chain rows from the calendar's first to its last date (exactly what
    ``engine.execution.bt.ChainIndicator.once`` computes from its feed), on the calendar, with no
    carrying forward (a date without a value stays NaN; the calculator's status says why).

    The market builder, the backtrader indicator and the vectorised executor therefore all see
    the same numbers."""
    spec, column, chain = parse_input(name, data_cfg)
    key = (spec.name, chain.name, data_cfg.model_dump_json(), calendar[0], calendar[-1])
    if key not in _SERIES_CACHE:
        chain_df, context = load_chain(chain.name, data_cfg)
        dates = chain_df["trade_date"]
        window = chain_df[(dates >= calendar[0]) & (dates <= calendar[-1])]
        order = np.argsort(window["trade_date"].to_numpy(), kind="stable")  # as the feed sorts
        _SERIES_CACHE[key] = spec.compute(window.iloc[order].reset_index(drop=True), context)
    return _SERIES_CACHE[key][column].reindex(calendar)


_SERIES_CACHE: dict[tuple, pd.DataFrame] = CACHES.mapping("inputs.chainseries.series")
