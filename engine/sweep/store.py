"""The results store: one SQLite file in the sweep's results folder, written as runs finish.

Schema 3 (query it with any SQLite client; the ``run_table`` view shows every run readably)::

    runs       one row per run, in the order the runs finished (the implicit rowid):
               run_id BLOB (the 20 hex digits as 10 bytes; unique index ``runs_id``),
               idx (position in the sweep), segment (-> segments.id; 0 = the plain sweep),
               params (JSON array of the swept values in the order of meta ``axes``; a JSON
               object when a run's names differ), status ('ok' | 'failed'), error and detail
               (NULL when empty), executor (-> executors.id), elapsed_us (integer
               microseconds), finished_at (integer Unix seconds, UTC), one REAL column per
               metric, then n_obs and moments (NULL for a run without usable returns): the
               little-endian float64 sums of r, r^2, r^3 and r^4 over the run's ``n_obs`` daily
               returns, then float32 sums of r over each of S contiguous blocks and of r^2 over
               each (S = meta ``blocks``): what the overfitting statistics need (PSR and DSR
               from the float64 sums, PBO from the block sums)
    run_table  view: runs with run_id as hex text, segment and executor names, error and
               detail as '' when empty, elapsed_s and finished_at as ISO text
    segments   id, name ('' for the plain sweep, else the walk-forward window's label)
    executors  id, name ('vectorised', 'local', 'dask', ...)
    accum      segment, n, n_obs, data: the sum over finished runs of their demeaned unit-length
               return series (the mean pairwise correlation of the runs follows from it),
               committed in the same transaction as the runs it sums
    calendars  calendar_id, n, first, last, dates (little-endian int64 ns)
    meta       key, value (schema, sweep fingerprint, name, spec, axes, blocks, created)

About 280 bytes a run all included with S = 8 (``bench/bench_sweep_million.py``): the row's 13
metrics about 100, its moments 96, the run id 10 and its index 20; with S = 16, about 360.
S is chosen when the store is made from the number of runs planned: the 16 blocks of the
paper's examples, halved while PBO would merge them anyway for that many runs
(``calculators.overfitting.pbo_blocks``). Float32 block sums (7 significant digits) only rank
runs' half-sample Sharpe ratios for PBO; the PSR and DSR use the float64 sums.

Daily return series are kept only where ``sweep.store_returns`` asks (``all``: every finished
run; ``top``: the ``sweep.top`` best, written after the sweep from their event-driven re-runs;
``none``), as Parquet files ``returns/part-<ns>.parquet`` beside the SQLite file: columns
``run_id``, ``calendar_id`` and ``returns`` (a list of float64). A part is written whole (a
temporary file renamed) *before* the SQLite commit of its runs, so a sweep killed in between
leaves a part whose runs are re-run on resume and written again; readers keep the last copy.

A run id is the hash of the run's resolved config, so a combination is stored exactly once
whatever the executor or however often the sweep is resumed. Rows are inserted in batches (one
``executemany`` per commit). The file is in WAL mode and every commit is atomic: a sweep killed
at any moment leaves every committed run intact and nothing half-written; ``--resume`` skips
every run already stored (finished or failed). Stores of schema 1 and 2 (earlier versions,
about 620 bytes a run) are refused with the fix (rerun with ``--overwrite``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.overfitting import (
    DEFAULT_BLOCKS,
    block_sums,
    pbo_blocks,
    series_totals,
    unit_deviations,
)
from volbacktest.engine.errors import ConfigError, require_extra
from volbacktest.engine.run.outputs import atomic_file

from .metrics import METRIC_NAMES
from .records import STATUS_FAILED, STATUS_OK, RecordOptions, RunIds, RunRecord

log = logging.getLogger(__name__)

STORE_NAME = "sweep.sqlite"
RETURNS_DIR = "returns"
SCHEMA_VERSION = "3"
STORE_RETURNS = ("top", "all", "none")
PAGE_SIZE = 16384  # 4 KB pages held 15 rows of ~260 bytes and left ~5 % of each unused
READ_CHUNK = 50_000  # rows per fetch when a whole segment is read in pieces

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT OR IGNORE INTO segments (id, name) VALUES (0, '');
CREATE TABLE IF NOT EXISTS executors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (
    run_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    segment INTEGER NOT NULL DEFAULT 0 REFERENCES segments (id),
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('{STATUS_OK}', '{STATUS_FAILED}')),
    error TEXT,
    detail TEXT,
    executor INTEGER REFERENCES executors (id),
    elapsed_us INTEGER,
    finished_at INTEGER NOT NULL,
    {", ".join(f"{m} REAL" for m in METRIC_NAMES)},
    n_obs INTEGER,
    moments BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_id ON runs (run_id);
CREATE VIEW IF NOT EXISTS run_table AS SELECT
    lower(hex(r.run_id)) AS run_id, r.idx, s.name AS segment, r.params, r.status,
    coalesce(r.error, '') AS error, coalesce(r.detail, '') AS detail,
    coalesce(e.name, '') AS executor, r.elapsed_us / 1e6 AS elapsed_s,
    strftime('%Y-%m-%dT%H:%M:%S+00:00', r.finished_at, 'unixepoch') AS finished_at,
    {", ".join(f"r.{m}" for m in METRIC_NAMES)}, r.n_obs
    FROM runs r JOIN segments s ON s.id = r.segment LEFT JOIN executors e ON e.id = r.executor;
CREATE TABLE IF NOT EXISTS calendars (
    calendar_id TEXT PRIMARY KEY, n INTEGER NOT NULL, first TEXT, last TEXT, dates BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS accum (
    segment TEXT PRIMARY KEY, n INTEGER NOT NULL, n_obs INTEGER NOT NULL, data BLOB NOT NULL
);
"""

_FRAME_COLUMNS = (
    "run_id",
    "idx",
    "segment",
    "params",
    "status",
    "error",
    "detail",
    "executor",
    "elapsed_s",
    "finished_at",
    *METRIC_NAMES,
)
_INSERT = (
    "INSERT OR REPLACE INTO runs (run_id, idx, segment, params, status, error, detail, executor, "
    f"elapsed_us, finished_at, {', '.join(METRIC_NAMES)}, n_obs, moments) "
    f"VALUES ({', '.join('?' * (12 + len(METRIC_NAMES)))})"
)


def _moments_dtype(blocks: int) -> np.dtype:
    return np.dtype([("totals", "<f8", (4,)), ("blocks", "<f4", (2 * blocks,))])


def run_moments(returns: np.ndarray, blocks: int) -> bytes | None:
    """One run's ``moments`` row (float64 totals, float32 block sums) from its daily returns;
    None when there are fewer returns than blocks or a non-finite one."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < blocks or not np.isfinite(r).all():
        return None
    sums = block_sums(r, blocks)
    row = np.zeros((), _moments_dtype(blocks))
    row["totals"] = series_totals(sums, blocks)[:, 0]
    row["blocks"] = sums[: 2 * blocks]
    return row.tobytes()


def _stored_schema(path: Path) -> str | None:
    """The schema version of an existing store (None: no store there yet)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            return "1" if "runs" in tables else None
        row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a readable results store ({exc})") from None
    finally:
        con.close()
    return row[0] if row else "1"


class ResultsStore:
    """SQLite results of one sweep. Use :meth:`open`; one writer (the sweep's parent)."""

    def __init__(self, path: Path, store_returns: str | None = None):
        self.path = Path(path)
        self.returns_dir = self.path.parent / RETURNS_DIR
        found = _stored_schema(self.path)
        if found is not None and found != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: a results store of schema {found} (written by an earlier "
                f"volbacktest; this one reads schema {SCHEMA_VERSION}, about a third of the "
                "size): rerun the sweep with --overwrite to replace it, or with --out for a new "
                "results folder"
            )
        self._con = sqlite3.connect(self.path, timeout=30.0)
        self._con.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only; before WAL
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(_SCHEMA)
        self._con.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
        )
        self._con.commit()
        self._calendars: set[str] = {
            r[0] for r in self._con.execute("SELECT calendar_id FROM calendars")
        }
        self._rows: list[tuple] = []  # staged runs, inserted in one executemany at commit
        blocks = self.meta("blocks")
        self.blocks = int(blocks) if blocks is not None else DEFAULT_BLOCKS
        self._dtype = _moments_dtype(self.blocks)
        axes = self.meta("axes")
        self.axes: list[str] | None = json.loads(axes) if axes is not None else None
        self._labels: dict[tuple[str, str], int] = {}  # (table, name) -> id
        self._accum: dict[str, list] = {}  # segment -> [n, n_obs, unit sum], dirty ones only
        kept = store_returns or self.meta("store_returns") or "all"
        if kept not in STORE_RETURNS:
            raise ConfigError(f"sweep.store_returns: {kept!r} is not one of {STORE_RETURNS}")
        self.store_returns = kept
        self._pending: list[tuple[str, str, np.ndarray]] = []  # returns of the next part

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        fingerprint: str,
        name: str,
        resume: bool,
        spec: dict | None = None,
        store_returns: str = "all",
        runs: int | None = None,
    ) -> ResultsStore:
        """Open (or create) the store in ``folder`` for the sweep identified by ``fingerprint``
        (``runs``: how many runs it plans, which sets the blocks kept for PBO).

        An existing store with runs needs ``resume=True`` and the same sweep; anything else is a
        ConfigError naming the fix (so results are never mixed or silently overwritten)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / STORE_NAME
        existed = path.exists()
        if store_returns != "none":
            require_extra("pyarrow", "storage")  # before anything runs: Parquet return series
        store = cls(path, store_returns)
        have = store.meta("fingerprint")
        n = store.count()
        if existed and have is not None and have != fingerprint:
            store.close()
            raise ConfigError(
                f"{path}: holds the results of a different sweep ({store_name(path)}); use "
                "--out to choose another results folder, or --overwrite to replace it"
            )
        if n and not resume:
            store.close()
            raise ConfigError(
                f"{path}: already holds {n} runs of this sweep; pass --resume to continue it "
                "(finished runs are kept), --overwrite to replace it whole, or --out for a fresh "
                "results folder"
            )
        if have is None:
            store.blocks = pbo_blocks(runs) if runs else DEFAULT_BLOCKS
            store._dtype = _moments_dtype(store.blocks)
            store.set_meta(
                fingerprint=fingerprint,
                name=name,
                created=_now_iso(),
                blocks=store.blocks,
                store_returns=store_returns,
                spec=json.dumps(spec or {}, default=str),
            )
        return store

    def close(self) -> None:
        self.commit()
        self._con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, **values) -> None:
        self._con.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )
        self._con.commit()

    def _label(self, table: str, name: str, create: bool = True) -> int | None:
        """Id of ``name`` in the ``segments`` or ``executors`` table (made when missing)."""
        key = (table, name)
        found = self._labels.get(key)
        if found is None:
            row = self._con.execute(f"SELECT id FROM {table} WHERE name = ?", (name,)).fetchone()
            if row is None:
                if not create:
                    return None
                cur = self._con.execute(f"INSERT INTO {table} (name) VALUES (?)", (name,))
                row = (cur.lastrowid,)
            found = self._labels[key] = int(row[0])
        return found

    # -- writing ----------------------------------------------------------------------------
    def _calendar_id(self, dates_ns: np.ndarray) -> str:
        blob = np.asarray(dates_ns, dtype="<i8").tobytes()
        cid = hashlib.sha256(blob).hexdigest()[:20]
        if cid not in self._calendars:
            first = pd.Timestamp(int(dates_ns[0])).strftime("%Y-%m-%d") if len(dates_ns) else None
            last = pd.Timestamp(int(dates_ns[-1])).strftime("%Y-%m-%d") if len(dates_ns) else None
            self._con.execute(
                "INSERT OR IGNORE INTO calendars (calendar_id, n, first, last, dates) "
                "VALUES (?, ?, ?, ?, ?)",
                (cid, len(dates_ns), first, last, blob),
            )
            self._calendars.add(cid)
        return cid

    def _params_text(self, params: dict) -> str:
        if self.axes is None:
            self.axes = list(params)
            self.set_meta(axes=json.dumps(self.axes))
        if list(params) == self.axes:
            values = list(params.values())
        else:  # not the sweep's axes (never seen in practice): the names are kept with them
            values = params
        return json.dumps(values, default=str, separators=(",", ":"))

    def add_pass(self, records: list[RunRecord]) -> None:
        """Stage the records of one fast-path pass together, all or none (its unit sum comes
        with its last record: a pass cut by an error or Ctrl-C leaves nothing staged, and its
        runs are run again on resume)."""
        rows, pending = len(self._rows), len(self._pending)
        saved = {k: [v[0], v[1], v[2].copy()] for k, v in self._accum.items()}
        try:
            for rec in records:
                self.add(rec)
        except BaseException:
            del self._rows[rows:]
            del self._pending[pending:]
            self._accum = saved
            raise

    def add(self, rec: RunRecord) -> None:
        """Stage one run (call :meth:`commit` to make it durable)."""
        n_obs, moments = self._moments(rec)
        self._rows.append(
            (
                bytes.fromhex(rec.run_id),
                int(rec.index),
                self._label("segments", rec.segment),
                self._params_text(rec.params),
                rec.status,
                rec.error or None,
                rec.detail or None,
                self._label("executors", rec.executor) if rec.executor else None,
                round(float(rec.elapsed_s) * 1e6),
                int(time.time()),
                *(rec.metrics.get(m) for m in METRIC_NAMES),
                n_obs,
                moments,
            )
        )
        if self.store_returns == "all" and rec.ok and rec.returns is not None:
            self.put_returns(rec.run_id, rec.returns, rec.calendar)

    def record_options(self) -> RecordOptions:
        """How executors summarise runs for this store (see :class:`RecordOptions`)."""
        return RecordOptions(self.blocks, keep_returns=self.store_returns == "all")

    def _moments(self, rec: RunRecord) -> tuple[int | None, bytes | None]:
        if rec.summarised:  # summarised where the run finished (RecordOptions)
            if rec.unit_sum is not None:
                self._add_units(rec, rec.unit_runs, rec.unit_sum)
            return (rec.n_obs, rec.moments) if rec.moments is not None else (None, None)
        r = None if rec.returns is None else np.asarray(rec.returns, dtype=np.float64)
        row = None if not rec.ok or r is None else run_moments(r, self.blocks)
        if row is None:
            return None, None
        self._add_units(rec, 1, unit_deviations(r))
        return len(r), row

    def _add_units(self, rec: RunRecord, runs: int, units: np.ndarray) -> None:
        acc = self._accum.get(rec.segment)
        if acc is None:
            acc = self._load_accum(rec.segment, len(units))
            self._accum[rec.segment] = acc
        if acc[1] != len(units):  # runs of a segment share one calendar; anything else skipped
            log.debug("run %s has %d returns, its segment %d", rec.run_id, len(units), acc[1])
        else:
            acc[0] += runs
            acc[2] += units

    def _load_accum(self, segment: str, n_obs: int) -> list:
        row = self._con.execute(
            "SELECT n, n_obs, data FROM accum WHERE segment = ?", (segment,)
        ).fetchone()
        if row is None:
            return [0, n_obs, np.zeros(n_obs)]
        return [int(row[0]), int(row[1]), np.frombuffer(row[2], dtype="<f8").copy()]

    def _flush_accum(self) -> None:
        for segment, (n, n_obs, u) in self._accum.items():
            self._con.execute(
                "INSERT INTO accum (segment, n, n_obs, data) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(segment) DO UPDATE SET n = excluded.n, n_obs = excluded.n_obs, "
                "data = excluded.data",
                (segment, n, n_obs, np.asarray(u, dtype="<f8").tobytes()),
            )

    def add_many(self, records: Iterable[RunRecord]) -> None:
        for rec in records:
            self.add(rec)
        self.commit()

    def put_returns(self, run_id: str, returns, calendar_ns: np.ndarray) -> None:
        """Stage one run's daily returns for the next Parquet part (written at commit)."""
        cid = self._calendar_id(np.asarray(calendar_ns, dtype=np.int64))
        self._pending.append((run_id, cid, np.asarray(returns, dtype=np.float64)))

    def _write_part(self) -> None:
        pa = require_extra("pyarrow", "storage")
        pq = require_extra("pyarrow.parquet", "storage")
        ids, cids, series = zip(*self._pending, strict=True)
        lengths = np.fromiter((len(x) for x in series), dtype=np.int32, count=len(series))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = np.concatenate(series) if series else np.empty(0)
        table = pa.table(
            {
                "run_id": pa.array(ids, type=pa.string()),
                "calendar_id": pa.array(cids, type=pa.string()).dictionary_encode(),
                "returns": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
            }
        )
        self.returns_dir.mkdir(exist_ok=True)
        name = f"part-{time.time_ns():020d}-{os.getpid()}.parquet"
        with atomic_file(self.returns_dir / name) as tmp:  # ".part-...": not globbed
            pq.write_table(table, tmp, compression="zstd")
        self._pending.clear()

    def commit(self) -> None:
        if self._pending:
            self._write_part()  # before the runs are committed: see the module docstring
        if self._rows:
            self._con.executemany(_INSERT, self._rows)
            self._rows.clear()
        if self._con.in_transaction:
            self._flush_accum()
            self._con.commit()

    @property
    def uncommitted(self) -> int:
        return len(self._rows)

    # -- reading ----------------------------------------------------------------------------
    def _filter(self, segment: str | None, status: str | None) -> tuple[str, list]:
        """WHERE clause over ``runs r`` (None: no such segment, nothing matches)."""
        sql, args = " WHERE 1 = 1", []
        if segment is not None:
            seg = self._label("segments", segment, create=False)
            sql += " AND r.segment = ?"
            args.append(-1 if seg is None else seg)
        if status is not None:
            sql += " AND r.status = ?"
            args.append(status)
        return sql, args

    def count(self, status: str | None = None, segment: str | None = None) -> int:
        where, args = self._filter(segment, status)
        sql = "SELECT COUNT(*) FROM runs r" + where
        return int(self._con.execute(sql, args).fetchone()[0])

    def done_ids(self, segment: str | None = None) -> RunIds:
        """Run ids already stored (finished or failed): a resumed sweep skips them."""
        where, args = self._filter(segment, None)
        cur = self._con.execute("SELECT run_id FROM runs r" + where, args)
        parts = []
        while rows := cur.fetchmany(READ_CHUNK):
            parts.append(RunIds.from_bytes(b"".join(r[0] for r in rows)))
        return RunIds.concat(parts)

    def _params_frame(self, texts) -> pd.DataFrame:
        axes = self.axes or []
        rows = []
        for text in texts:
            v = json.loads(text)
            rows.append(dict(zip(axes, v, strict=True)) if isinstance(v, list) else v)
        return pd.DataFrame(rows)

    def _to_frame(self, rows: list) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=list(_FRAME_COLUMNS))
        params = self._params_frame(df["params"])
        params.index = df.index
        params.columns = [f"p.{c}" for c in params.columns]
        out = pd.concat([df.drop(columns=["params"]), params], axis=1).set_index("run_id")
        lead = [c for c in out.columns if c.startswith("p.")]
        rest = [c for c in out.columns if not c.startswith("p.")]
        return out[lead + rest]

    def frame(
        self, segment: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """Runs as a DataFrame indexed by run id: swept parameters as columns (``p.<name>``),
        then status, error and the metrics (every row in memory, or the first ``limit`` in
        sweep order: for a whole large sweep, read :meth:`ranked` chunk by chunk)."""
        sql, args = " WHERE 1 = 1", []
        for column, value in (("segment", segment), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        sql += " ORDER BY segment, idx"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = self._con.execute(
            f"SELECT {', '.join(_FRAME_COLUMNS)} FROM run_table{sql}", args
        ).fetchall()
        return self._to_frame(rows)

    def grid_means(self, segment: str, metric: str, names: list[str]) -> pd.DataFrame:
        """``metric`` averaged over the finished runs of ``segment`` per combination of the
        swept ``names`` (columns ``p.<name>``, then ``metric``): one row per cell, computed by
        SQLite (memory: the cells, not the runs)."""
        if metric not in METRIC_NAMES:
            raise ConfigError(f"rank metric {metric!r} is not one of {METRIC_NAMES}")
        axes = self.axes or []
        picks = [f"json_extract(r.params, '$[{axes.index(n)}]')" for n in names if n in axes]
        if not picks:
            return pd.DataFrame(columns=[*(f"p.{n}" for n in names), metric])
        where, args = self._filter(segment, STATUS_OK)
        sql = (
            f"SELECT {', '.join(picks)}, AVG(r.{metric}) FROM runs r{where} AND r.{metric} IS "
            f"NOT NULL GROUP BY {', '.join(str(i + 1) for i in range(len(picks)))}"
        )
        rows = self._con.execute(sql, args).fetchall()
        return pd.DataFrame(rows, columns=[*(f"p.{n}" for n in names if n in axes), metric])

    def ranked(
        self,
        segment: str,
        metric: str,
        maximise: bool,
        *,
        limit: int | None = None,
        chunk: int = READ_CHUNK,
    ) -> Iterator[pd.DataFrame]:
        """Finished runs of ``segment`` with a value for ``metric``, best first (ties: sweep
        order), as :meth:`frame`-like frames of at most ``chunk`` rows (at least one, perhaps
        empty): SQLite sorts on disk, so memory is one chunk whatever the number of runs."""
        if metric not in METRIC_NAMES:
            raise ConfigError(f"rank metric {metric!r} is not one of {METRIC_NAMES}")
        sql = (
            f"SELECT {', '.join(_FRAME_COLUMNS)} FROM run_table WHERE segment = ? AND status = ? "
            f"AND {metric} IS NOT NULL ORDER BY {metric} {'DESC' if maximise else 'ASC'}, idx"
        )
        args: list = [segment, STATUS_OK]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        cur = self._con.execute(sql, args)
        first = True
        while (rows := cur.fetchmany(chunk)) or first:
            first = False
            yield self._to_frame(rows)

    def _parts(self) -> list[Path]:
        if not self.returns_dir.is_dir():
            return []
        return sorted(self.returns_dir.glob("part-*.parquet"))  # names sort in write order

    def _committed(self, run_ids: list[str]) -> set[str]:
        """The ones of ``run_ids`` stored in ``runs`` (looked up in the run id index)."""
        found: set[str] = set()
        for lo in range(0, len(run_ids), 500):
            batch = [bytes.fromhex(r) for r in run_ids[lo : lo + 500]]
            sql = f"SELECT run_id FROM runs WHERE run_id IN ({', '.join('?' * len(batch))})"
            found.update(r[0].hex() for r in self._con.execute(sql, batch))
        return found

    def _stored_series(self, run_ids=None) -> dict[str, tuple[str, np.ndarray]]:
        """run id -> (calendar id, returns) of the committed runs (the last copy of each)."""
        parts = self._parts()
        if not parts:
            return {}
        pq = require_extra("pyarrow.parquet", "storage")
        pc = require_extra("pyarrow.compute", "storage")
        out: dict[str, tuple[str, np.ndarray]] = {}
        for part in parts:
            table = pq.read_table(part)
            if run_ids is not None:
                table = table.filter(pc.is_in(table["run_id"], value_set=_pa_strings(run_ids)))
            ids = table["run_id"].to_pylist()
            committed = self._committed(ids)
            cids = table["calendar_id"].cast("string").to_pylist()
            col = table["returns"].combine_chunks()
            values = col.values.to_numpy(zero_copy_only=False)
            offsets = col.offsets.to_numpy()
            for i, rid in enumerate(ids):
                if rid in committed:
                    out[rid] = (cids[i], values[offsets[i] : offsets[i + 1]])
        return out

    def returns(self, run_id: str) -> pd.Series:
        """The stored daily returns of one run, on its calendar."""
        found = self._stored_series([run_id]).get(run_id)
        if found is None:
            raise KeyError(
                f"no returns stored for run {run_id!r} in {self.returns_dir} (store_returns: "
                f"{self.store_returns}; `all` keeps every run's, `top` the best runs')"
            )
        cid, values = found
        row = self._con.execute(
            "SELECT dates FROM calendars WHERE calendar_id = ?", (cid,)
        ).fetchone()
        dates = pd.DatetimeIndex(np.frombuffer(row[0], dtype="<i8").astype("datetime64[ns]"))
        return pd.Series(values, index=dates, name=run_id)

    def returns_ids(self) -> set[str]:
        """Runs whose returns are stored."""
        return set(self._stored_series())

    def moments_length(self, segment: str = "") -> tuple[int, int]:
        """(the most frequent number of returns among the finished runs of ``segment`` with
        moments, how many runs have it); (0, 0) when none has."""
        where, args = self._filter(segment, STATUS_OK)
        row = self._con.execute(
            f"SELECT r.n_obs, COUNT(*) AS k FROM runs r{where} AND r.n_obs IS NOT NULL "
            "GROUP BY r.n_obs ORDER BY k DESC, r.n_obs LIMIT 1",
            args,
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _decode(self, blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        a = np.frombuffer(b"".join(blobs), dtype=self._dtype)
        return a["totals"].T.astype(np.float64), a["blocks"].T.astype(np.float64)

    def moment_chunks(
        self, segment: str, n_obs: int, chunk: int = READ_CHUNK
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(totals, block sums) of the finished runs of ``segment`` with ``n_obs`` returns, in
        sweep order, ``chunk`` runs at a time: ``totals`` has the four float64 sums of r, r^2,
        r^3 and r^4 as rows, ``blocks`` the S block sums of r then the S of r^2; columns are
        runs."""
        where, args = self._filter(segment, STATUS_OK)
        cur = self._con.execute(
            f"SELECT r.moments FROM runs r{where} AND r.n_obs = ? ORDER BY r.idx",
            [*args, n_obs],
        )
        while rows := cur.fetchmany(chunk):
            yield self._decode([r[0] for r in rows])

    def moment_totals(self, run_ids: list[str], n_obs: int) -> np.ndarray:
        """The four float64 sums (rows) of each of ``run_ids`` (columns; NaN for a run without
        moments of ``n_obs`` returns)."""
        out = np.full((4, len(run_ids)), np.nan)
        where = {rid: j for j, rid in enumerate(run_ids)}
        for lo in range(0, len(run_ids), 500):
            batch = [bytes.fromhex(r) for r in run_ids[lo : lo + 500]]
            rows = self._con.execute(
                f"SELECT run_id, moments FROM runs WHERE n_obs = ? AND run_id IN "
                f"({', '.join('?' * len(batch))})",
                [n_obs, *batch],
            ).fetchall()
            if rows:
                totals, _ = self._decode([r[1] for r in rows])
                out[:, [where[r[0].hex()] for r in rows]] = totals
        return out

    def moments(self, segment: str | None = None) -> tuple[pd.Index, np.ndarray, int]:
        """Run ids, their float64 :func:`~engine.calculators.overfitting.series_totals` (one
        column per run) and the common number of returns, for the finished runs of
        ``segment`` (those of the most frequent length), in sweep order; every run in
        memory (the statistics read :meth:`moment_chunks` instead)."""
        n_obs, _ = self.moments_length(segment or "")
        where, args = self._filter(segment, STATUS_OK)
        rows = self._con.execute(
            f"SELECT r.run_id, r.moments FROM runs r{where} AND r.n_obs = ? ORDER BY r.idx",
            [*args, n_obs],
        ).fetchall()
        if not rows:
            return pd.Index([], name="run_id"), np.zeros((4, 0)), 0
        totals, _ = self._decode([r[1] for r in rows])
        return pd.Index([r[0].hex() for r in rows], name="run_id"), totals, n_obs

    def correlation_sum(self, segment: str = "") -> tuple[int, np.ndarray | None]:
        """(runs summed, sum of their unit deviations) of ``segment`` as committed."""
        self.commit()
        row = self._con.execute(
            "SELECT n, data FROM accum WHERE segment = ?", (segment,)
        ).fetchone()
        if row is None:
            return 0, None
        return int(row[0]), np.frombuffer(row[1], dtype="<f8")

    def returns_blobs(self) -> dict[str, bytes]:
        """run id -> raw returns bytes (to compare two stores bit for bit)."""
        return {k: v.astype("<f8").tobytes() for k, (_, v) in self._stored_series().items()}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def _pa_strings(values):
    pa = require_extra("pyarrow", "storage")
    return pa.array(list(values), type=pa.string())


def store_name(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'name'").fetchone()
    except sqlite3.DatabaseError:
        return "unreadable"
    finally:
        con.close()
    return row[0] if row else "unnamed"
