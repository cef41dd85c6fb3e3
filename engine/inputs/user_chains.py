"""The user's option chains (``data.datasets`` entries with a chain format) as chain datasets,
readable as ``column@<name>`` by strategies and filters like the built-in ``etf50_options``.

An entry ``mychain: {path: ..., format: 50etf | chain | gs | spx_quotes | auto, underlying:
etf50}`` becomes a :class:`~engine.inputs.chainseries.ChainDatasetSpec` (``from_file``) when a
config names it; it wins over a registered chain dataset of the same name (the run's notes say
so). What the chain needs besides the file comes from the entry:

* ``underlying`` (required): the dataset name of the instrument the options are on, which the
  strategy trades (the series reach the decision through its option-chain feed). Its closes
  (from ``data.datasets`` or the configured source) fill the chain's ``underlying`` column where
  the file has none;
* ``rates`` (default ``0.0``): a constant decimal rate, or ``shibor``, the SHIBOR curve of the
  shared data (``china_50etf/shibor__Alexdachen.csv``, its last curve carried forward beyond
  2018-07-13, as for ``etf50_options``);
* ``contracts`` (``50etf`` only, optional): the SSE contract list, which marks the adjusted
  "A" contracts as the built-in chain does;
* ``multiplier`` (optional): units per contract where the file has none (the ``50etf`` loader
  sets 10,000 for standard contracts); only the options executor needs it.

``50etf`` files are read under the built-in chain's policy (``options_series._policy`` with
``data.bad_quotes``); the other formats through ``data.user_files`` with its checks. The same
file declared in place of ``etf50_options`` therefore gives the same series.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data import chains
from volbacktest.data.catalogue import roots_for
from volbacktest.data.rates import load_shibor
from volbacktest.data.user_files import (
    CHAIN_FORMATS,
    detect_format,
    files_signature,
    load_user_file,
)
from volbacktest.engine.caches import CACHES
from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError, DataQualityWarning
from volbacktest.engine.inputs import chainseries
from volbacktest.engine.inputs.chainseries import ChainContext, ChainDatasetSpec
from volbacktest.engine.inputs.config import DataConfig
from volbacktest.engine.inputs.datasets import load_named
from volbacktest.engine.inputs.options_series import ETF50_FILES, _policy


def chain_format(name: str, entry) -> str | None:
    """The entry's chain format (``auto`` detected), or None for a price series."""
    fmt = entry.format
    if fmt == "auto":
        fmt = detect_format(Path(entry.path))[0]
    return fmt if fmt in CHAIN_FORMATS else None


def chain_spec(name: str, data_cfg) -> ChainDatasetSpec:
    """The chain dataset of ``data.datasets.<name>`` (ConfigError naming the key and the fix
    when the entry is a price series or lacks ``underlying``)."""
    entry = data_cfg.datasets[name]
    fmt = chain_format(name, entry)
    if fmt is None:
        raise ConfigError(
            f"data.datasets.{name}: {Path(entry.path).name} is a price series, not an option "
            f"chain, so {name!r} cannot be read as column@{name}; give a chain file (format: "
            f"chain, 50etf, gs or spx_quotes) or read {name!r} as a series"
        )
    if not entry.underlying:
        raise ConfigError(
            f"data.datasets.{name}.underlying: missing; the option chain {name!r} needs the "
            "dataset name of its underlying, which the strategy trades (e.g. underlying: "
            "etf50 for 50ETF options)"
        )
    return ChainDatasetSpec(
        name=name,
        underlying=entry.underlying,
        load_shared=partial(_load, name, data_cfg),
        description=f"data.datasets.{name}: {Path(entry.path).name} (format {fmt})",
        from_file=True,
    )


def _load(name: str, data_cfg, roots=None, **_) -> tuple[pd.DataFrame, ChainContext]:
    entry = data_cfg.datasets[name]
    return _cached(name, data_cfg.model_dump_json(), files_signature(entry.path))


@CACHES.memo("inputs.user_chains.chains", maxsize=8)
def _cached(name: str, cfg_json: str, signature: tuple):
    data_cfg = DataConfig.model_validate_json(cfg_json)
    entry = data_cfg.datasets[name]
    path = Path(entry.path)
    fmt = chain_format(name, entry)
    notes: list[str] = []
    if fmt == "50etf":
        if entry.contracts is not None and not Path(entry.contracts).is_file():
            raise DataNotFoundError(
                f"data.datasets.{name}.contracts: {entry.contracts} does not exist; fix the "
                "path or leave contracts out"
            )
        with warnings.catch_warnings():
            # the policy's counts are the chain's policy_note below; the underlying is filled
            warnings.simplefilter("ignore", DataQualityWarning)
            try:
                chain = chains.load_50etf_options(
                    path, None, entry.contracts, policy=_policy(data_cfg.bad_quotes)
                )
            except DataError as exc:
                raise DataError(f"data.datasets.{name} ({path}), format 50etf: {exc}") from None
    else:
        loaded = load_user_file(name, entry, data_cfg.on_problem)
        chain = loaded.frame.copy()
        notes += [n for n in (loaded.detected, *loaded.repairs) if n]
    chain = _with_underlying(name, chain, entry.underlying, data_cfg, notes)
    if entry.multiplier is not None:
        have = chain["multiplier"] if "multiplier" in chain.columns else np.nan
        chain["multiplier"] = pd.Series(have, index=chain.index).fillna(entry.multiplier)
    built_in = chainseries.CHAIN_DATASETS.get(name)
    days = chain["trade_date"].nunique()
    what = f"{path.name} (format {fmt}, {len(chain)} rows, {days} trade dates)"
    if built_in is not None:
        notes.append(
            f"{name}: data.datasets option chain {what} used instead of the built-in chain "
            f"dataset {name!r}"
        )
    else:
        notes.append(f"{name}: option chain from {what}, underlying {entry.underlying}")
    if attrs_note := chain.attrs.get("policy_note"):
        notes.append(f"{name}: {attrs_note}")
    rates = _rates(name, entry.rates, data_cfg)
    extras = {"cache_key": ("file", name, cfg_json, signature), "notes": tuple(notes)}
    return chain, ChainContext(source="file", rates=rates, extras=extras)


def _with_underlying(name, chain, underlying, data_cfg, notes) -> pd.DataFrame:
    """The underlying's closes on the chain's trade dates where the file gives none."""
    from volbacktest.engine.inputs.market import load_raw  # the market's cached loaders

    have = chain["underlying"] if "underlying" in chain.columns else None
    if have is not None and have.notna().all():
        return chain
    close = load_named(underlying, data_cfg, load_raw).frame["close"]
    closes = close.reindex(pd.DatetimeIndex(chain["trade_date"])).to_numpy()
    filled = closes if have is None else have.fillna(pd.Series(closes, index=chain.index))
    chain = chain.assign(underlying=np.asarray(filled, dtype=float))
    missing = chain["underlying"].isna()
    if missing.any():
        dates = chain.loc[missing, "trade_date"].dt.date.unique()
        notes.append(
            f"{name}: {underlying} has no close on {len(dates)} trade dates of the chain (first "
            f"{dates[0]}); the underlying is NaN there"
        )
    return chain


def _rates(name: str, rates, data_cfg):
    if rates != "shibor":
        return float(rates)
    for root in roots_for(data_cfg.root):
        path = Path(root) / ETF50_FILES["shibor"]
        if path.is_file():
            return load_shibor(path)
    raise DataNotFoundError(
        f"data.datasets.{name}.rates: shibor reads {ETF50_FILES['shibor']} from the data root, "
        "which is not there; set data.root, or give a constant rate (e.g. rates: 0.02)"
    )
