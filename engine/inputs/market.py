"""Assemble the market a backtest sees: tradable instruments and signal series on one calendar.

* The calendar is the set of dates on which every tradable instrument has a price, clipped to
  ``data.start``/``data.end``.
* Tradables are taken as they are on that calendar (no filling: a missing price is an error).
* Signal series are carried forward onto the calendar point-in-time (only earlier values are
  used) for at most ``data.ffill_limit`` bars; anything older stays NaN, which the strategies
  treat as "no new information". Dates a signal has but the calendar lacks (e.g. VIX prints on
  US holidays) are dropped. Counts of both are reported in ``Market.notes``.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError, DataError, DataQualityWarning
from volbacktest.engine.inputs.chainseries import is_chain_input, series_on_calendar
from volbacktest.engine.inputs.config import DataConfig

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
# data.etns: simulated reads these reconstructions (from VIX futures) in place of the real ETNs
SIMULATED_ETNS = {"xiv": "xiv_sim", "vxx": "vxx_sim"}


@dataclass(frozen=True)
class Market:
    calendar: pd.DatetimeIndex
    frames: dict[str, pd.DataFrame]
    tradable: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()

    def closes(self, names) -> dict[str, np.ndarray]:
        return {n: self.frames[n]["close"].to_numpy(dtype=np.float64) for n in names}


@functools.lru_cache(maxsize=8)
def _synthetic_frames(seed: int, start, end) -> dict[str, pd.DataFrame]:
    from volbacktest.data.synthetic import market_frames
    from volbacktest.data.synthetic_chains import etf50_frames
    from volbacktest.data.synthetic_pairs import pair_frames

    frames = market_frames(seed=seed, start=str(start), end=str(end))
    frames.update(etf50_frames(seed=seed, start=str(start), end=str(end)))
    return {**frames, **pair_frames(seed=seed, start=str(start), end=str(end))}


def data_roots(data_cfg: DataConfig):
    """Search roots for real files: an explicit ``data.root`` is the only root (no silent
    fallback); otherwise ``$VOLBT_DATA_ROOT`` then ``../shared/data``."""
    from volbacktest.data.catalogue import SearchRoots, search_roots

    if data_cfg.root is None:
        return search_roots()
    root = Path(data_cfg.root).expanduser().resolve()
    return SearchRoots([root] if root.is_dir() else [], [("config data.root", root)])


@functools.lru_cache(maxsize=64)
def _load_file_backed(name: str, files_key: tuple, roots: tuple) -> pd.DataFrame:
    from volbacktest.data.catalogue import load_dataset

    return load_dataset(name, roots=[Path(r) for r in roots])


def load_raw(name: str, data_cfg: DataConfig) -> pd.DataFrame:
    """One dataset as loaded (before alignment), from the configured source. Real files are
    cached in-process, keyed by their paths and modification times."""
    if data_cfg.source == "synthetic":
        syn = data_cfg.synthetic
        frames = _synthetic_frames(syn.seed, syn.start, syn.end)
        if name not in frames:
            raise ConfigError(
                f"dataset {name!r} is not in the synthetic market; it provides: "
                f"{', '.join(sorted(frames))} (or set data.source: shared)"
            )
        return frames[name]
    from volbacktest.data.catalogue import dataset_spec, resolve_files

    if data_cfg.etns == "simulated" and name in SIMULATED_ETNS:
        name = SIMULATED_ETNS[name]
    roots = data_roots(data_cfg)
    paths = resolve_files(dataset_spec(name), roots)
    files_key = tuple((str(p), p.stat().st_mtime_ns) for p in paths)
    root_of_first = next(r for r in roots if (Path(r) / dataset_spec(name).files[0]).is_file())
    return _load_file_backed(name, files_key, (str(root_of_first),))


def _chain_frame(name: str, calendar, data_cfg: DataConfig, notes: list) -> pd.DataFrame:
    """A chain-derived series (``column@chain``) on the calendar as a close-only frame, exactly
    as the backtest's chain indicator computes it (not carried forward)."""
    series = series_on_calendar(name, calendar, data_cfg)
    missing = int(series.isna().sum())
    if missing:
        notes.append(f"{name}: {missing} of {len(series)} dates have no value (see its status)")
    frame = pd.DataFrame(index=calendar, columns=list(PRICE_COLUMNS), dtype=np.float64)
    frame["close"] = series.to_numpy(dtype=np.float64)
    return frame


def _calendar(data_cfg: DataConfig, raw: dict, tradable: tuple[str, ...]) -> pd.DatetimeIndex:
    calendar = None
    for n in tradable:
        idx = raw[n].index[raw[n]["close"].notna().to_numpy()]
        calendar = idx if calendar is None else calendar.intersection(idx)
    calendar = pd.DatetimeIndex(calendar).sort_values()
    first = max(raw[n].index.min() for n in tradable)
    last = min(raw[n].index.max() for n in tradable)
    span = ", ".join(
        f"{n} {raw[n].index.min():%Y-%m-%d}..{raw[n].index.max():%Y-%m-%d}" for n in tradable
    )
    if data_cfg.start and pd.Timestamp(data_cfg.start) < first:
        raise DataError(
            f"data.start {data_cfg.start} is before the tradable data begins ({span}); "
            f"set data.start on or after {first:%Y-%m-%d}"
        )
    if data_cfg.end and pd.Timestamp(data_cfg.end) > last:
        raise DataError(
            f"data.end {data_cfg.end} is after the tradable data ends ({span}); "
            f"set data.end on or before {last:%Y-%m-%d}"
        )
    if data_cfg.start:
        calendar = calendar[calendar >= pd.Timestamp(data_cfg.start)]
    if data_cfg.end:
        calendar = calendar[calendar <= pd.Timestamp(data_cfg.end)]
    if len(calendar) < 2:
        raise DataError(f"fewer than 2 common trading dates for {', '.join(tradable)} ({span})")
    return calendar


def _tradable_frame(name: str, src: pd.DataFrame, calendar, need_open: bool) -> pd.DataFrame:
    f = src.reindex(calendar).reindex(columns=list(PRICE_COLUMNS))
    opens = f["open"].to_numpy()
    if need_open and not np.isfinite(opens).all():
        bad = f.index[~np.isfinite(opens)]
        raise DataError(
            f"dataset {name!r} has no open price on {len(bad)} of {len(f)} dates (first "
            f"{bad[0]:%Y-%m-%d}); execution.fill: next_open needs opens — use next_close"
        )
    return f


def _signal_frame(name: str, src: pd.DataFrame, calendar, limit: int, notes: list) -> pd.DataFrame:
    """Carry a signal forward onto the calendar (point-in-time, at most ``limit`` bars)."""
    extra = src.index.difference(calendar)
    extra = extra[(extra >= calendar[0]) & (extra <= calendar[-1])]
    union = src.index.union(calendar)
    filled = src.reindex(union).ffill(limit=limit).reindex(calendar)
    filled = filled.reindex(columns=list(PRICE_COLUMNS))
    close = filled["close"]
    first_valid = close.first_valid_index()
    if first_valid is None:
        raise DataError(
            f"signal {name!r} has no value in {calendar[0]:%Y-%m-%d}..{calendar[-1]:%Y-%m-%d}"
        )
    carried = int(close.reindex(calendar.difference(src.index)).notna().sum())
    gaps = int(close.loc[first_valid:].isna().sum())
    if carried:
        notes.append(f"{name}: {carried} values carried forward onto the trading calendar")
    if len(extra):
        notes.append(f"{name}: {len(extra)} dates outside the trading calendar dropped")
    if first_valid > calendar[0]:
        notes.append(f"{name}: starts {first_valid:%Y-%m-%d}, after the calendar start")
    if gaps:
        msg = (
            f"{name}: {gaps} dates still have no value after carrying forward at most {limit} "
            "bars; strategies see NaN there (raise data.ffill_limit or check the file)"
        )
        notes.append(msg)
        warnings.warn(DataQualityWarning(msg), stacklevel=3)
    return filled


def build_market(
    data_cfg: DataConfig, tradable: tuple[str, ...], signals: tuple[str, ...], *, need_open: bool
) -> Market:
    """Load every dataset named and align it on the tradables' common calendar."""
    names = tuple(dict.fromkeys(tuple(tradable) + tuple(signals)))
    raw = {n: load_raw(n, data_cfg) for n in names if not is_chain_input(n)}
    calendar = _calendar(data_cfg, raw, tuple(tradable))
    notes: list[str] = []
    frames = {n: _tradable_frame(n, raw[n], calendar, need_open) for n in tradable}
    for n in signals:
        if n in frames:
            continue
        if is_chain_input(n):
            frames[n] = _chain_frame(n, calendar, data_cfg, notes)
        else:
            frames[n] = _signal_frame(n, raw[n], calendar, data_cfg.ffill_limit, notes)
    for note in notes:
        log.info(note)
    return Market(calendar, frames, tuple(tradable), data_cfg.source, tuple(notes))
