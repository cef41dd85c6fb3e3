"""Assemble the market a backtest sees: tradable instruments and signal series on one calendar.

* The calendar is the set of dates on which every tradable instrument has a price, clipped to
  ``data.start``/``data.end``.
* Tradables are taken as they are on that calendar (no filling: a missing price is an error).
* Signal series are carried forward onto the calendar point-in-time (only earlier values are
  used) for at most ``data.ffill_limit`` bars; anything older stays NaN, which the strategies
  treat as "no new information". Dates a signal has but the calendar lacks (e.g. VIX prints on
  US holidays) are dropped. Counts of both are reported in ``Market.notes``.
* Warm-up (``data.warmup``: ``auto`` | ``none`` | bars): the series a decision reads keep the
  history they have before the first traded bar, on the dates before it where every input that
  has history there has a value (the last N such dates for ``warmup: N``; none for ``none``).
  Decisions are computed over warm-up plus trading bars and only the trading bars' rows are
  used (``DecisionPlan.weights(..., warmup=)``), so a rolling signal is warm on the first traded
  bar when the data allow: a trader on that day could have computed it from the past. Chain
  series get warm-up values computed over the chain rows of the warm-up dates. The notes (and
  ``metrics.json``, see :func:`warmup_metrics`) say how much history each series used.

Datasets come from the config's source (the embedded market, built only for the names the config
uses, or the catalogue's real files), from the user's own files (``data.datasets``, which win
over the source: see ``engine.inputs.datasets``) or from the user's own frames
(:meth:`Market.from_frames`, ``market_for(cfg, frames=...)``), which are checked as files are
(``data.frames.user_frame``). Every price series then goes through the spike/stale/gap checks
(``data.quality``) under ``data.on_problem``; ``Market.provenance`` records where each came from.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.catalogue import dataset_spec, load_dataset, resolve_files, roots_for
from volbacktest.data.embedded import GENERATORS, embedded_frames, generator_of
from volbacktest.data.frames import user_frame
from volbacktest.engine.caches import CACHES
from volbacktest.engine.errors import ConfigError, DataError, DataQualityWarning
from volbacktest.engine.inputs.chainseries import (
    chain_notes,
    is_chain_input,
    load_chain,
    parse_input,
    series_on_calendar,
)
from volbacktest.engine.inputs.config import BacktestConfig, DataConfig
from volbacktest.engine.inputs.datasets import (
    SIMULATED_ETNS,
    check_series,
    digest,
    frame_provenance,
    load_named,
    unused_entry,
)

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
DEFAULT_FFILL_LIMIT = DataConfig.model_fields["ffill_limit"].default


class WarmedUp:
    """What every market a decision reads has about warm-up (the share ``Market`` and the
    contract executors' ``FuturesMarket`` / ``OptionsMarket``): ``calendar`` (the traded bars),
    ``warmup`` (the decision inputs' closes on the warm-up dates before ``calendar[0]``, one
    column per input, NaN where an input has no history; None: no warm-up) and
    ``warmup_setting`` (``data.warmup`` as given). :func:`warmup_summary` reads these."""

    calendar: pd.DatetimeIndex
    warmup: pd.DataFrame | None
    warmup_setting: str

    @property
    def n_warmup(self) -> int:
        """Bars of history before the first traded bar that decisions read."""
        return 0 if self.warmup is None else len(self.warmup)


@dataclass(frozen=True)
class Market(WarmedUp):
    """What a run trades and reads, on one calendar: ``frames[name]`` has the loaders' columns
    (``open, high, low, close, volume``) on ``calendar`` for every tradable (``tradable``) and
    signal; ``source`` says where the data came from and ``notes`` what alignment did (values
    carried forward, dates dropped, user frames used). Build one with :func:`market_for` (from a
    config) or :meth:`from_frames` (from the user's own frames)."""

    calendar: pd.DatetimeIndex
    frames: dict[str, pd.DataFrame]
    tradable: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()
    # closes of the decision inputs on the warm-up dates before calendar[0] (index: those dates,
    # columns: input names; NaN where an input has no history); None: no warm-up
    warmup: pd.DataFrame | None = None
    warmup_setting: str = "none"
    # where each dataset came from (file path, size, sha256, rows, dates; or the synthetic
    # seed; or a user frame's hash): what run.json records
    provenance: tuple[dict, ...] = ()

    def closes(self, names) -> dict[str, np.ndarray]:
        return {n: self.frames[n]["close"].to_numpy(dtype=np.float64) for n in names}

    def warmup_inputs(self, names) -> dict[str, np.ndarray] | None:
        """Closes of ``names`` on the warm-up bars (NaN for a name without history there), or
        None without warm-up."""
        return _warmup_columns(self.warmup, names)

    def decision_inputs(self, names) -> dict[str, np.ndarray]:
        """Closes of ``names`` over the warm-up bars then the trading calendar (the arrays
        ``DecisionPlan.weights(inputs, warmup=self.n_warmup)`` reads)."""
        return with_warmup(self.closes(names), self.warmup)

    def check_serves(self, cfg: BacktestConfig) -> None:
        """ConfigError unless this market trades ``cfg``'s assets and holds every series it
        reads; DataError when ``next_open`` fills meet a tradable without opens."""
        plan = cfg.plan
        wanted = dict.fromkeys(plan.assets() + plan.inputs())
        absent = [n for n in wanted if n not in self.frames]
        untraded = [n for n in plan.assets() if n not in self.tradable]
        if absent or untraded:
            problem = f"has no frame for {absent}" if absent else f"does not trade {untraded}"
            raise ConfigError(
                f"data: the Market given {problem}; {cfg.name} trades "
                f"{', '.join(plan.assets())} and reads {', '.join(wanted)}"
            )
        no_open = [n for n in plan.assets() if not np.isfinite(self.frames[n]["open"]).all()]
        if cfg.execution.fill.uses_open and no_open:
            raise DataError(
                f"data: the Market given has no open prices for {no_open}; "
                "execution.fill: next_open needs opens — use next_close"
            )

    @classmethod
    def from_frames(
        cls,
        frames: Mapping[str, pd.DataFrame | pd.Series],
        *,
        tradable: Sequence[str],
        start=None,
        end=None,
        ffill_limit: int = DEFAULT_FFILL_LIMIT,
        need_open: bool = False,
        warmup: str | int = "auto",
    ) -> Market:
        """A market from the user's own frames: ``tradable`` names the instruments that can be
        traded (their common dates are the calendar), every other frame is a signal series.

        Each frame is a DataFrame with a ``close`` column (``open``/``high``/``low``/``volume``
        optional) on a DatetimeIndex or a ``date`` column, or a Series of closes; it is checked
        as a file would be (unique sorted dates, numbers, positive traded prices; a DataError
        names the dataset, the rows and the fix). ``start``/``end`` clip the calendar and
        ``ffill_limit`` bounds how far a signal is carried forward and ``warmup`` how much
        history before ``start`` the signals keep, as ``data.*`` does.
        """
        tradable = tuple(tradable)
        missing = [n for n in tradable if n not in frames]
        if not tradable or missing:
            raise ConfigError(
                f"tradable {list(missing or tradable)}: name one or more of the frames given "
                f"({', '.join(frames) or 'none'}) as tradable"
            )
        raw = {
            n: user_frame(f, n, kind="tradable" if n in tradable else "signal")
            for n, f in frames.items()
        }
        signals = tuple(n for n in raw if n not in tradable)
        window = DataConfig(start=start, end=end, ffill_limit=ffill_limit, warmup=warmup)
        notes = [note for n, f in raw.items() for note in check_series(n, f, window)]
        prov = tuple(frame_provenance(n, f) for n, f in raw.items())
        warm_inputs = tradable + signals  # the user's decision may read any frame
        return _assemble(
            raw, tradable, signals, window, need_open, "user", notes, prov, warm_inputs
        )


@CACHES.memo("inputs.market.embedded", maxsize=16)
def _embedded_group(group: str, seed: int, start, end) -> dict[str, pd.DataFrame]:
    names = GENERATORS[group][0]
    return embedded_frames(names, seed, start, end)


@CACHES.memo("inputs.market.files", maxsize=64)
def _load_file_backed(name: str, files_key: tuple, roots: tuple) -> pd.DataFrame:
    return load_dataset(name, roots=[Path(r) for r in roots])


def load_raw(name: str, data_cfg: DataConfig) -> pd.DataFrame:
    """One dataset as loaded (before alignment), from the configured source. The embedded market
    builds only the generator that provides ``name``; real files are cached in-process, keyed by
    their paths and modification times."""
    if data_cfg.source == "synthetic":
        syn = data_cfg.synthetic
        return _embedded_group(generator_of(name), syn.seed, syn.start, syn.end)[name]
    if data_cfg.etns == "simulated" and name in SIMULATED_ETNS:
        name = SIMULATED_ETNS[name]
    roots = roots_for(data_cfg.root)
    paths = resolve_files(dataset_spec(name), roots)
    files_key = tuple((str(p), p.stat().st_mtime_ns) for p in paths)
    root_of_first = next(r for r in roots if (Path(r) / dataset_spec(name).files[0]).is_file())
    return _load_file_backed(name, files_key, (str(root_of_first),))


def _chain_frame(name: str, calendar, data_cfg: DataConfig, notes: list) -> pd.DataFrame:
    """A chain-derived series (``column@chain``) on the calendar as a close-only frame, exactly
    as the backtest's chain indicator computes it (not carried forward)."""
    series = series_on_calendar(name, calendar, data_cfg)
    notes.extend(n for n in chain_notes(name, data_cfg) if n not in notes)  # rows dropped
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


def with_warmup(
    on_calendar: Mapping[str, np.ndarray], warmup: pd.DataFrame | None
) -> dict[str, np.ndarray]:
    """Each input's warm-up closes (NaN for an input without history there) followed by its
    values on the trading calendar: the arrays ``DecisionPlan.weights(..., warmup=)`` reads."""
    warm = _warmup_columns(warmup, on_calendar)
    if warm is None:
        return dict(on_calendar)
    return {n: np.concatenate((warm[n], np.asarray(v, float))) for n, v in on_calendar.items()}


def _warmup_columns(warmup: pd.DataFrame | None, names) -> dict[str, np.ndarray] | None:
    if warmup is None or not len(warmup):
        return None
    nan = np.full(len(warmup), np.nan)
    return {n: warmup[n].to_numpy(dtype=np.float64) if n in warmup else nan for n in names}


def _warmup_dates(name: str, raw: dict, before: pd.Timestamp, data_cfg) -> pd.DatetimeIndex:
    """The dates before ``before`` on which input ``name`` has a value (a chain input: the
    chain's trade dates)."""
    if is_chain_input(name):
        chain_df, _ = load_chain(parse_input(name, data_cfg)[2].name, data_cfg)
        dates = pd.DatetimeIndex(chain_df["trade_date"].unique())
    else:
        close = raw[name]["close"]
        dates = pd.DatetimeIndex(close.index[close.notna().to_numpy()])
    return dates[dates < before].sort_values()


def warmup_frame(raw, signals, calendar, data_cfg, notes) -> pd.DataFrame | None:
    """The decision inputs' closes on the warm-up dates (see the module docstring), or None.

    ``raw``: each non-chain input's frame as loaded (a ``close`` column on its own dates, the
    history before ``calendar[0]`` included); chain inputs are computed from ``data_cfg``. The
    contract executors call it too (their inputs' history before ``data.start``), so the rule
    exists once."""
    setting = data_cfg.warmup
    names = tuple(dict.fromkeys(signals))
    if setting in ("none", 0) or not names:
        return None
    own = {n: _warmup_dates(n, raw, calendar[0], data_cfg) for n in names}
    with_history = [d for d in own.values() if len(d)]
    if not with_history:
        notes.append(f"warm-up: no input has history before {calendar[0]:%Y-%m-%d}")
        return None
    dates = with_history[0]
    for d in with_history[1:]:
        dates = dates.intersection(d)
    if isinstance(setting, int):
        dates = dates[-setting:]
    if not len(dates):
        notes.append(
            f"warm-up: the inputs have no common date before {calendar[0]:%Y-%m-%d} "
            f"({', '.join(n for n in names if len(own[n]))} have history)"
        )
        return None
    cols = {}
    for n in names:
        if is_chain_input(n):
            cols[n] = series_on_calendar(n, dates, data_cfg).to_numpy(dtype=np.float64)
        else:  # every input with history has a value on every warm-up date: nothing to carry
            cols[n] = raw[n]["close"].reindex(dates).to_numpy()
    frame = pd.DataFrame(cols, index=pd.DatetimeIndex(dates, name="date"), dtype=np.float64)
    for n in names:
        known = frame[n].dropna()
        if len(known):
            notes.append(
                f"{n}: {len(known)} bars of history before the first traded bar "
                f"{calendar[0]:%Y-%m-%d} used for warm-up (from {known.index[0]:%Y-%m-%d})"
            )
        else:
            notes.append(f"{n}: no history before the first traded bar {calendar[0]:%Y-%m-%d}")
    return frame


def warmup_summary(market: WarmedUp, weights) -> tuple[dict, str]:
    """What a run reports about warm-up: metrics (the setting, the bars of history before the
    first traded bar each input used, the first traded bar with a decision) and a note
    (``weights``: the run's target weights on the calendar, NaN = no decision)."""
    metrics = warmup_metrics(market, weights)
    first = metrics["first_decision"]
    warm = metrics["warmup"]
    history = f"{warm['bars']} bars of warm-up from {warm['from']}" if warm["bars"] else "none"
    if first is None:
        note = "no decision on any traded bar (the signals never warmed up)"
    else:
        bar = int(market.calendar.get_loc(pd.Timestamp(first)))
        note = (
            f"first decision {first} (traded bar {bar + 1} of {len(market.calendar)}; "
            f"data.warmup: {warm['setting']}, history before the first traded bar: {history})"
        )
    return metrics, note


def warmup_metrics(market: WarmedUp, weights) -> dict:
    """The warm-up entries of ``metrics.json`` (see :func:`warmup_summary`)."""
    w = np.asarray(weights, dtype=np.float64)
    decided = np.flatnonzero(~np.all(np.isnan(w), axis=1)) if w.size else np.empty(0, int)
    first = f"{market.calendar[decided[0]]:%Y-%m-%d}" if len(decided) else None
    signals = {}
    if market.n_warmup:
        for n in market.warmup.columns:
            known = market.warmup[n].dropna()
            signals[n] = {
                "bars": len(known),
                "from": f"{known.index[0]:%Y-%m-%d}" if len(known) else None,
            }
    return {
        "warmup": {
            "setting": market.warmup_setting,
            "bars": market.n_warmup,
            "from": f"{market.warmup.index[0]:%Y-%m-%d}" if market.n_warmup else None,
            "signals": signals,
        },
        "first_decision": first,
    }


def build_market(
    data_cfg: DataConfig,
    tradable: tuple[str, ...],
    signals: tuple[str, ...],
    *,
    need_open: bool,
    frames: Mapping[str, pd.DataFrame | pd.Series] | None = None,
) -> Market:
    """Load every dataset named and align it on the tradables' common calendar. ``frames``:
    the user's own frames by dataset name, used instead of the configured source for those
    names (checked as files are; the notes say which)."""
    frames = dict(frames or {})
    names = tuple(dict.fromkeys(tuple(tradable) + tuple(signals)))
    notes: list[str] = []
    raw = {}
    prov = []
    for n in names:
        if is_chain_input(n):
            continue
        if n in frames:
            raw[n] = user_frame(frames[n], n, kind="tradable" if n in tradable else "signal")
            notes.append(f"{n}: the user's frame ({len(raw[n])} rows), not data.source")
            prov.append(frame_provenance(n, raw[n]))
            notes += check_series(n, raw[n], data_cfg)
        else:
            _check_kind(n, data_cfg, n in tradable)
            named = load_named(n, data_cfg, load_raw)
            raw[n] = named.frame
            notes += named.notes
            prov.append(named.provenance)
            notes += check_series(n, named.frame, data_cfg, named.acknowledged)
    chains_read = {n.partition("@")[2] for n in names if is_chain_input(n)}
    for n in sorted(chains_read & set(data_cfg.datasets)):  # the user's option chains
        path = data_cfg.datasets[n].path
        prov.append({"name": n, "source": "file", "format": "option chain", **digest(path)})
    notes += [
        unused_entry(n, data_cfg)
        for n in data_cfg.datasets
        if n not in names and n not in chains_read
    ]
    unused = sorted(set(frames) - set(names))
    if unused:
        raise ConfigError(
            f"data: frames given for {unused}, which the strategy and filters do not use; "
            f"they use {', '.join(names)}"
        )
    source = data_cfg.source if len(frames) < len(raw) else "user"
    return _assemble(
        raw, tuple(tradable), tuple(signals), data_cfg, need_open, source, notes, tuple(prov)
    )


def _check_kind(name: str, data_cfg: DataConfig, traded: bool) -> None:
    """A ``data.datasets`` entry's ``kind`` must agree with how the strategy uses the name."""
    entry = data_cfg.datasets.get(name)
    if entry is None or entry.kind is None or (entry.kind == "tradable") == traded:
        return
    use = "trades" if traded else "only reads"
    raise ConfigError(
        f"data.datasets.{name}.kind: {entry.kind!r}, but the strategy {use} {name!r}; set "
        f"kind: {'tradable' if traded else 'signal'} or leave kind out"
    )


def _assemble(
    raw, tradable, signals, data_cfg, need_open, source, notes, prov=(), warm_inputs=None
) -> Market:
    calendar = _calendar(data_cfg, raw, tradable)
    out = {n: _tradable_frame(n, raw[n], calendar, need_open) for n in tradable}
    for n in signals:
        if n in out:
            continue
        if is_chain_input(n):
            out[n] = _chain_frame(n, calendar, data_cfg, notes)
        else:
            out[n] = _signal_frame(n, raw[n], calendar, data_cfg.ffill_limit, notes)
    warm = warmup_frame(raw, warm_inputs or signals, calendar, data_cfg, notes)
    for note in notes:
        log.info(note)
    setting = str(data_cfg.warmup)
    return Market(calendar, out, tuple(tradable), source, tuple(notes), warm, setting, tuple(prov))


def market_for(
    cfg: BacktestConfig, frames: Mapping[str, pd.DataFrame | pd.Series] | None = None
) -> Market:
    """The market ``cfg``'s strategy and filters read (tradables, signals, chain series)."""
    plan = cfg.plan
    return build_market(
        cfg.data,
        plan.assets(),
        plan.inputs(),
        need_open=cfg.execution.fill == "next_open",
        frames=frames,
    )
