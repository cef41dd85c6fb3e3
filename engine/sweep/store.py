"""The results store: one SQLite file in the sweep's results folder, written as runs finish.

Tables (query them with any SQLite client)::

    runs       run_id (primary key), idx, segment, params (JSON), status ('ok' | 'failed'),
               error, detail, executor, elapsed_s, finished_at, and one REAL column per metric
    returns    (legacy, schema 1: float64 blobs; no longer written)
    moments    run_id, n_obs, data (little-endian float64 ``block_sums`` of the returns: S
               block sums of r and of r^2, then the sums of r^3 and r^4; S = ``blocks`` in
               meta): what the overfitting statistics need, kept for every finished run
    accum      segment, n, data: the sum over finished runs of their demeaned unit-length
               return series (the mean pairwise correlation of the runs follows from it),
               committed in the same transaction as the runs it sums
    calendars  calendar_id, n, first, last, dates (little-endian int64 ns)
    meta       key, value (sweep fingerprint, name, spec, created)

Daily return series are kept only where ``sweep.store_returns`` asks (``all``: every finished
run; ``top``: the ``sweep.top`` best, written after the sweep from their event-driven re-runs;
``none``), as Parquet files ``returns/part-<ns>.parquet`` beside the SQLite file: columns
``run_id``, ``calendar_id`` and ``returns`` (a list of float64). A part is written whole (a
temporary file renamed) *before* the SQLite commit of its runs, so a sweep killed in between
leaves a part whose runs are re-run on resume and written again; readers keep the last copy.

A run id is the hash of the run's resolved config, so a combination is stored exactly once
whatever the executor or however often the sweep is resumed. The file is in WAL mode and every
commit is atomic: a sweep killed at any moment leaves every committed run intact and nothing
half-written; ``--resume`` skips every run already stored (finished or failed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.overfitting import (
    DEFAULT_BLOCKS,
    block_sums,
    unit_deviations,
)
from volbacktest.engine.errors import ConfigError, require_extra
from volbacktest.engine.run.outputs import atomic_file

from .metrics import METRIC_NAMES
from .records import STATUS_FAILED, STATUS_OK, RunRecord

log = logging.getLogger(__name__)

STORE_NAME = "sweep.sqlite"
RETURNS_DIR = "returns"
SCHEMA_VERSION = "2"
STORE_RETURNS = ("top", "all", "none")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    segment TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('{STATUS_OK}', '{STATUS_FAILED}')),
    error TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    executor TEXT NOT NULL DEFAULT '',
    elapsed_s REAL,
    finished_at TEXT NOT NULL,
    {", ".join(f"{m} REAL" for m in METRIC_NAMES)}
);
CREATE INDEX IF NOT EXISTS runs_segment ON runs (segment, status);
CREATE TABLE IF NOT EXISTS calendars (
    calendar_id TEXT PRIMARY KEY, n INTEGER NOT NULL, first TEXT, last TEXT, dates BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS returns (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    calendar_id TEXT NOT NULL REFERENCES calendars (calendar_id),
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS moments (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    n_obs INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS accum (
    segment TEXT PRIMARY KEY, n INTEGER NOT NULL, n_obs INTEGER NOT NULL, data BLOB NOT NULL
);
"""

_RUN_COLUMNS = (
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
_UPSERT = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS[1:])
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ResultsStore:
    """SQLite results of one sweep. Use :meth:`open`; one writer (the sweep's parent)."""

    def __init__(self, path: Path, store_returns: str | None = None):
        self.path = Path(path)
        self.returns_dir = self.path.parent / RETURNS_DIR
        self._con = sqlite3.connect(self.path, timeout=30.0)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(_SCHEMA)
        self._calendars: set[str] = {
            r[0] for r in self._con.execute("SELECT calendar_id FROM calendars")
        }
        self._uncommitted = 0
        blocks = self.meta("blocks")
        self.blocks = int(blocks) if blocks is not None else DEFAULT_BLOCKS
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
    ) -> ResultsStore:
        """Open (or create) the store in ``folder`` for the sweep identified by ``fingerprint``.

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
            store.set_meta(
                fingerprint=fingerprint,
                name=name,
                created=_now(),
                schema=SCHEMA_VERSION,
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

    def add(self, rec: RunRecord) -> None:
        """Stage one run (call :meth:`commit` to make it durable)."""
        row = (
            rec.run_id,
            int(rec.index),
            rec.segment,
            rec.params_json(),
            rec.status,
            rec.error,
            rec.detail,
            rec.executor,
            float(rec.elapsed_s),
            _now(),
            *(rec.metrics.get(m) for m in METRIC_NAMES),
        )
        self._con.execute(_UPSERT, row)
        if self.store_returns == "all" and rec.ok and rec.returns is not None:
            self.put_returns(rec.run_id, rec.returns, rec.calendar)
        self._add_moments(rec)
        self._uncommitted += 1

    def _add_moments(self, rec: RunRecord) -> None:
        r = None if rec.returns is None else np.asarray(rec.returns, dtype=np.float64)
        if not rec.ok or r is None or len(r) < self.blocks or not np.isfinite(r).all():
            self._con.execute("DELETE FROM moments WHERE run_id = ?", (rec.run_id,))
            return
        self._con.execute(
            "INSERT INTO moments (run_id, n_obs, data) VALUES (?, ?, ?) ON CONFLICT (run_id) "
            "DO UPDATE SET n_obs = excluded.n_obs, data = excluded.data",
            (rec.run_id, len(r), block_sums(r, self.blocks).astype("<f8").tobytes()),
        )
        acc = self._accum.get(rec.segment)
        if acc is None:
            acc = self._load_accum(rec.segment, len(r))
            self._accum[rec.segment] = acc
        if acc[1] != len(r):  # runs of a segment share one calendar; anything else is skipped
            log.debug("run %s has %d returns, its segment %d", rec.run_id, len(r), acc[1])
            return
        acc[0] += 1
        acc[2] += unit_deviations(r)

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
        if self._uncommitted or self._con.in_transaction:
            self._flush_accum()
            self._con.commit()
            self._uncommitted = 0

    @property
    def uncommitted(self) -> int:
        return self._uncommitted

    # -- reading ----------------------------------------------------------------------------
    @staticmethod
    def _filter(segment: str | None, status: str | None, table: str = "") -> tuple[str, list]:
        sql, args = " WHERE 1 = 1", []
        for column, value in (("segment", segment), ("status", status)):
            if value is not None:
                sql += f" AND {table}{column} = ?"
                args.append(value)
        return sql, args

    def count(self, status: str | None = None, segment: str | None = None) -> int:
        where, args = self._filter(segment, status)
        return int(self._con.execute("SELECT COUNT(*) FROM runs" + where, args).fetchone()[0])

    def done_ids(self, segment: str | None = None) -> set[str]:
        """Run ids already stored (finished or failed): a resumed sweep skips them."""
        where, args = self._filter(segment, None)
        return {r[0] for r in self._con.execute("SELECT run_id FROM runs" + where, args)}

    def frame(self, segment: str | None = None, *, status: str | None = None) -> pd.DataFrame:
        """Runs as a DataFrame indexed by run id: swept parameters as columns (``p.<name>``),
        then status, error and the metrics."""
        where, args = self._filter(segment, status)
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs{where} ORDER BY segment, idx"
        rows = self._con.execute(sql, args).fetchall()
        df = pd.DataFrame(rows, columns=list(_RUN_COLUMNS))
        params = pd.DataFrame([json.loads(p) for p in df["params"]], index=df.index)
        params.columns = [f"p.{c}" for c in params.columns]
        out = pd.concat([df.drop(columns=["params"]), params], axis=1).set_index("run_id")
        lead = [c for c in out.columns if c.startswith("p.")]
        rest = [c for c in out.columns if not c.startswith("p.")]
        return out[lead + rest]

    def _parts(self) -> list[Path]:
        if not self.returns_dir.is_dir():
            return []
        return sorted(self.returns_dir.glob("part-*.parquet"))  # names sort in write order

    def _stored_series(self, run_ids=None) -> dict[str, tuple[str, np.ndarray]]:
        """run id -> (calendar id, returns) of the committed runs (the last copy of each)."""
        parts = self._parts()
        if not parts:
            return {}
        pq = require_extra("pyarrow.parquet", "storage")
        pc = require_extra("pyarrow.compute", "storage")
        committed = self.done_ids()
        out: dict[str, tuple[str, np.ndarray]] = {}
        for part in parts:
            table = pq.read_table(part)
            if run_ids is not None:
                table = table.filter(pc.is_in(table["run_id"], value_set=_pa_strings(run_ids)))
            ids = table["run_id"].to_pylist()
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

    def moments(self, segment: str | None = None) -> tuple[pd.Index, np.ndarray, int]:
        """Run ids, their ``block_sums`` (one column per run) and the common number of
        returns, for the finished runs of ``segment`` (those of the most frequent length)."""
        where, args = self._filter(segment, STATUS_OK, "r.")
        rows = self._con.execute(
            "SELECT r.run_id, m.n_obs, m.data FROM runs r JOIN moments m USING (run_id)"
            + where
            + " ORDER BY r.segment, r.idx",
            args,
        ).fetchall()
        if not rows:
            return pd.Index([], name="run_id"), np.zeros((2 * self.blocks + 2, 0)), 0
        lengths = pd.Series([r[1] for r in rows])
        n_obs = int(lengths.mode().iloc[0])
        keep = [r for r in rows if r[1] == n_obs]
        data = np.frombuffer(b"".join(r[2] for r in keep), dtype="<f8")
        sums = data.reshape(len(keep), 2 * self.blocks + 2).T
        return pd.Index([r[0] for r in keep], name="run_id"), sums, n_obs

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
