"""Where each dataset of a run comes from: the user's files (``data.datasets``), the catalogue's
real files (``source: shared``) or the embedded market (``synthetic``); the quality checks every
price series goes through; and the provenance a run records (``run.json``).

* :func:`load_named`: one dataset by name. A ``data.datasets`` entry wins over the source's
  dataset of that name (the notes say so); with ``source: files`` only those entries exist.
* :func:`check_series`: the spike/stale/gap checks of ``data.quality`` with ``data.checks``'
  thresholds and ``data.on_problem``'s policy (problems a catalogue entry documents are notes).
* :func:`describe`: what ``volbacktest datasets CONFIG`` prints (path, format, rows, dates,
  kind), without running.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from volbacktest.data import quality
from volbacktest.data.catalogue import DATASETS, dataset_spec, resolve_files, roots_for
from volbacktest.data.embedded import embedded_names, generator_of
from volbacktest.data.user_files import (
    FileEntry,
    Loaded,
    date_range,
    file_digest,
    files_signature,
    load_user_file,
)
from volbacktest.engine.caches import CACHES
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.inputs.config import DataConfig, DatasetFile

SourceLoader = Callable[[str, DataConfig], pd.DataFrame]
# data.etns: simulated reads these reconstructions (from VIX futures) in place of the real ETNs
SIMULATED_ETNS = {"xiv": "xiv_sim", "vxx": "vxx_sim"}


@dataclass(frozen=True)
class Named:
    """One dataset as loaded (before alignment) with its notes and provenance."""

    frame: pd.DataFrame
    notes: tuple[str, ...]
    provenance: dict
    acknowledged: tuple[str, ...] = ()


@CACHES.memo("inputs.datasets.user_files", maxsize=64)
def _load_user(name: str, entry_json: str, signature: tuple, on_problem: str) -> Loaded:
    entry = FileEntry.of(DatasetFile.model_validate_json(entry_json))
    return load_user_file(name, entry, on_problem)


@CACHES.memo("inputs.datasets.digests", maxsize=256)
def _digest(path: str, signature: tuple) -> dict:
    return file_digest(path)


def digest(path: str | Path) -> dict:
    """Size and sha256 of a file or folder (cached by paths, sizes and modification times)."""
    return dict(_digest(str(path), files_signature(Path(path))))


def _span(frame: pd.DataFrame) -> dict:
    first, last = date_range(frame)
    return {"rows": len(frame), "first": first, "last": last}


def _in_source(name: str, data_cfg: DataConfig) -> bool:
    if data_cfg.source == "synthetic":
        return name in embedded_names()
    return name in DATASETS


def _user(name: str, entry: DatasetFile, data_cfg: DataConfig) -> Named:
    path = Path(entry.path)
    loaded = _load_user(name, entry.model_dump_json(), files_signature(path), data_cfg.on_problem)
    if loaded.is_chain:
        raise ConfigError(
            f"data.datasets.{name}: a {loaded.format} option chain, not a price series; a "
            f"strategy or filter cannot read {name!r} as a series (list it with `volbacktest "
            "datasets CONFIG`)"
        )
    notes = [loaded.detected] if loaded.detected else []
    notes += list(loaded.repairs)
    rows = len(loaded.frame)
    if data_cfg.source != "files" and _in_source(name, data_cfg):
        notes.append(
            f"{name}: data.datasets entry ({path.name}, {rows} rows) used instead of the "
            f"{data_cfg.source} source's {name!r}"
        )
    else:
        notes.append(f"{name}: from {path.name} (format {loaded.format}, {rows} rows)")
    prov = {
        "name": name,
        "source": "file",
        "format": loaded.format,
        **digest(path),
        **_span(loaded.frame),
    }
    return Named(loaded.frame, tuple(n for n in notes if n), prov)


def load_named(name: str, data_cfg: DataConfig, load_source: SourceLoader) -> Named:
    """One dataset (before alignment): the user's entry when ``data.datasets`` has ``name``,
    else the configured source's, read by ``load_source(name, data_cfg)`` (the market's cached
    loader); ``source: files`` has no other."""
    entry = data_cfg.datasets.get(name)
    if entry is not None:
        return _user(name, entry, data_cfg)
    if data_cfg.source == "files":
        raise ConfigError(
            f"data.datasets: no entry {name!r}, which the strategy or a filter reads (source: "
            f"files reads only the entries given: {', '.join(data_cfg.datasets)}); add "
            f"{name}: {{path: ..., format: ...}}, or use source: shared/synthetic for the rest"
        )
    frame = load_source(name, data_cfg)
    if data_cfg.source == "synthetic":
        syn = data_cfg.synthetic
        prov = {
            "name": name,
            "source": "synthetic",
            "generator": generator_of(name),
            "seed": syn.seed,
            "synthetic_start": str(syn.start),
            "synthetic_end": str(syn.end),
        }
        return Named(frame, (), {**prov, **_span(frame)})
    key = SIMULATED_ETNS.get(name, name) if data_cfg.etns == "simulated" else name
    spec = dataset_spec(key)
    paths = resolve_files(spec, roots_for(data_cfg.root))
    prov = {
        "name": name,
        "source": "shared",
        "dataset": spec.name,
        "files": [digest(p) for p in paths],
        **_span(frame),
    }
    return Named(frame, (), prov, spec.acknowledged_checks)


def unused_entry(name: str, data_cfg: DataConfig) -> str:
    """Load (and so check) a ``data.datasets`` entry the run does not read; the note says so."""
    entry = data_cfg.datasets[name]
    path = Path(entry.path)
    loaded = _load_user(name, entry.model_dump_json(), files_signature(path), data_cfg.on_problem)
    what = "option chain" if loaded.is_chain else "series"
    return (
        f"{name}: data.datasets entry checked but not read by the strategy or filters "
        f"({what}, format {loaded.format}, {len(loaded.frame)} rows)"
    )


def frame_provenance(name: str, frame: pd.DataFrame) -> dict:
    """Provenance of a user's in-memory frame: rows, dates and a sha256 of its values."""
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return {
        "name": name,
        "source": "python frame",
        "sha256": hashlib.sha256(hashed.tobytes()).hexdigest(),
        **_span(frame),
    }


def check_series(
    name: str, frame: pd.DataFrame, data_cfg: DataConfig, acknowledged=()
) -> list[str]:
    """The spike/stale/gap checks on ``frame`` under ``data.checks`` and ``data.on_problem``;
    returns the notes (DataError under ``stop``)."""
    c = data_cfg.checks
    thresholds = quality.Thresholds(c.spike, c.stale, c.gap, c.calendar)
    entry = data_cfg.datasets.get(name)
    line_of = None
    if entry is not None and Path(entry.path).is_file() and entry.format not in ("parquet",):
        line_of = functools.partial(
            quality.file_lines,
            entry.path,
            sep=entry.sep,
            date_format=entry.date_format,
            dayfirst=entry.dayfirst,
        )
    problems = quality.find_problems(frame, name, thresholds, line_of)
    return quality.enforce(problems, data_cfg.on_problem, acknowledged)


def describe(
    data_cfg: DataConfig, names: Mapping[str, str], load_source: SourceLoader
) -> list[dict]:
    """One row per dataset a config reads (``names``: name -> tradable/signal) and per extra
    ``data.datasets`` entry (chains included): name, kind, source, format, path, rows, dates."""
    rows = []
    every = dict(names)
    for extra in data_cfg.datasets:
        every.setdefault(extra, "unused")
    for name, role in every.items():
        entry = data_cfg.datasets.get(name)
        if "@" in name:
            rows.append({"name": name, "kind": role, "source": "chain series", "format": "-"})
            continue
        if entry is not None:
            path = Path(entry.path)
            loaded = _load_user(name, entry.model_dump_json(), files_signature(path), "warn")
            kind = "chain" if loaded.is_chain else (entry.kind or role)
            rows.append(
                {
                    "name": name,
                    "kind": kind,
                    "source": "file",
                    "format": loaded.format + (" (auto)" if entry.format == "auto" else ""),
                    "path": str(path),
                    **_span(loaded.frame),
                }
            )
            continue
        named = load_named(name, data_cfg, load_source)
        prov = named.provenance
        where = prov.get("files") or [{"path": f"seed {prov.get('seed')}"}]
        rows.append(
            {
                "name": name,
                "kind": role,
                "source": prov["source"],
                "format": prov.get("dataset", prov.get("generator", "")),
                "path": ";".join(f["path"] for f in where),
                **_span(named.frame),
            }
        )
    return rows
