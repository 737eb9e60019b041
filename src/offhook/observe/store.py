"""The call store: one small interface, two backends (SQLite by default, PostgreSQL for several servers).

A call is written twice: at its start (complete=False, end_reason "incomplete") and at its end, so a
server that dies mid-call leaves an incomplete row rather than nothing. The whole record is kept as
JSON; the columns beside it are what queries filter and sort on.

All database work runs off the trio thread, one statement batch at a time on one connection
(`trio.to_thread.run_sync` with a limiter of one): call-rate writes are a few per call, so one
connection is plenty, and serialising them keeps SQLite's single-writer rule and psycopg's
one-thread-per-connection rule without locks of our own. A worker thread that is already writing is
never abandoned on cancellation, so a finished call is never half-written.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import trio

from offhook.observe.record import CallRecord

log = logging.getLogger("offhook.store")

SCHEMA_VERSION = 1

# Each migration is a list of statements; {serial} etc. are per-dialect spellings.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE calls (
            call_sid TEXT PRIMARY KEY,
            server_id TEXT NOT NULL DEFAULT '',
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            end_reason TEXT NOT NULL,
            ended_by TEXT NOT NULL,
            complete INTEGER NOT NULL,
            cost_total DOUBLE PRECISION NOT NULL DEFAULT 0,
            recording_path TEXT,
            twilio_status TEXT,
            twilio_duration DOUBLE PRECISION,
            record TEXT NOT NULL)""",
        "CREATE INDEX calls_started_at ON calls (started_at)",
        "CREATE INDEX calls_recording ON calls (started_at) WHERE recording_path IS NOT NULL",
        """CREATE TABLE call_status (
            call_sid TEXT NOT NULL,
            status TEXT NOT NULL,
            duration DOUBLE PRECISION,
            received_at DOUBLE PRECISION NOT NULL,
            raw TEXT NOT NULL,
            PRIMARY KEY (call_sid, status))""",
    ],
}

SID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StoreError(RuntimeError):
    pass


class StoreUnavailable(StoreError):
    """The store cannot be reached (server down, network, disk): the write may succeed later."""


def valid_sid(sid: str) -> bool:
    """Call sids reach file names and URLs: letters, digits, '-' and '_' only."""
    return bool(SID_RE.match(sid))


class SqlStore(ABC):
    """The queries, shared by both backends; a backend supplies the connection and its dialect."""

    backend = "sql"

    def __init__(self) -> None:
        self._limiter = trio.CapacityLimiter(1)
        self.writes = 0

    # ---------------------------------------------------------------- backend hooks
    @abstractmethod
    def _connect(self) -> None:
        ...

    @abstractmethod
    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement and return its rows (autocommit)."""

    @abstractmethod
    def _transaction(self, statements: Callable[[], None]) -> None:
        ...

    @abstractmethod
    def _close(self) -> None:
        ...

    def _lock_for_migration(self) -> None:
        pass

    def unavailable(self, error: BaseException) -> bool:
        """Is this write failure an outage (retry later) rather than a bug or bad data (never retry)?"""
        return isinstance(error, (StoreUnavailable, OSError))

    def redact(self, text: str) -> str:
        """The text with the store's secrets (e.g. a password in its URL) masked, for logs."""
        return text

    # ---------------------------------------------------------------- plumbing
    async def _run(self, fn: Callable, *args) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def start(self) -> None:
        await self._run(self._connect)
        await self._run(self._migrate)

    async def aclose(self) -> None:
        await self._run(self._close)

    def _migrate(self) -> None:
        def step() -> None:
            self._lock_for_migration()
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            rows = self._execute("SELECT MAX(version) FROM schema_version")
            have = rows[0][0] or 0
            if have > SCHEMA_VERSION:
                raise StoreError(f"the call store is at schema version {have}, newer than this offhook "
                                 f"understands ({SCHEMA_VERSION}); upgrade offhook")
            for version in range(have + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS[version]:
                    self._execute(sql)
                self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                log.info("call store migrated to schema version %d", version)
        self._transaction(step)

    def schema_version(self) -> int:
        return self._execute("SELECT MAX(version) FROM schema_version")[0][0]

    # ---------------------------------------------------------------- writes
    @staticmethod
    def _row(rec: CallRecord) -> tuple:
        """The row for a record, built on the caller's thread: the record keeps changing while the
        worker writes (the agent appends turns), so the worker only ever sees this snapshot."""
        if not valid_sid(rec.call_sid):
            raise StoreError(f"refusing to store a call with an invalid sid {rec.call_sid[:80]!r}")
        return (rec.call_sid, rec.server_id, rec.started_at, rec.ended_at, rec.end_reason.value, rec.ended_by.value,
                int(rec.complete), float(rec.cost.get("total", 0.0)), rec.recording_path,
                json.dumps(rec.to_dict(), separators=(",", ":")))

    def _upsert(self, row: tuple) -> None:
        self._execute(
            """INSERT INTO calls (call_sid, server_id, started_at, ended_at, end_reason, ended_by, complete,
                                  cost_total, recording_path, record)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (call_sid) DO UPDATE SET
                 server_id = excluded.server_id, started_at = excluded.started_at,
                 ended_at = excluded.ended_at, end_reason = excluded.end_reason,
                 ended_by = excluded.ended_by, complete = excluded.complete,
                 cost_total = excluded.cost_total, recording_path = excluded.recording_path,
                 record = excluded.record""", row)
        self.writes += 1

    async def start_call(self, rec: CallRecord) -> None:
        await self._run(self._upsert, self._row(rec))

    async def finish_call(self, rec: CallRecord) -> None:
        """Write the completed record (also used to rewrite a stored one, e.g. after a status callback)."""
        await self._run(self._upsert, self._row(rec))

    async def record_status(self, status: dict[str, str], received_at: float | None = None) -> None:
        """Keep a Twilio status callback; a known call gets its Twilio status and duration. `received_at`
        (wall time) is when it arrived, if that was before now (a write retried after an outage)."""
        sid = status.get("CallSid", "")
        if not valid_sid(sid):
            raise StoreError(f"status callback with an invalid CallSid {sid[:80]!r}")
        try:
            duration = float(status["CallDuration"]) if status.get("CallDuration") else None
        except ValueError:
            duration = None
        received = time.time() if received_at is None else received_at  # wall time: servers compare them

        def write() -> None:
            self._execute(
                """INSERT INTO call_status (call_sid, status, duration, received_at, raw) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (call_sid, status) DO UPDATE SET duration = excluded.duration,
                     received_at = excluded.received_at, raw = excluded.raw""",
                (sid, status.get("CallStatus", ""), duration, received, json.dumps(status)))
            self._execute("UPDATE calls SET twilio_status = ?, twilio_duration = COALESCE(?, twilio_duration) "
                          "WHERE call_sid = ?", (status.get("CallStatus", ""), duration, sid))
        await self._run(write)

    async def set_recording(self, sid: str, path: str | None) -> None:
        """Set or clear a call's recording path, in its column and in its stored record."""
        def write() -> None:
            rows = self._execute("SELECT record FROM calls WHERE call_sid = ?", (sid,))
            if not rows:
                return
            d = json.loads(rows[0][0])
            d["recording_path"] = path
            self._execute("UPDATE calls SET recording_path = ?, record = ? WHERE call_sid = ?",
                          (path, json.dumps(d, separators=(",", ":")), sid))
        await self._run(write)

    # ---------------------------------------------------------------- reads
    async def get_call(self, sid: str) -> CallRecord | None:
        if not valid_sid(sid):
            return None
        rows = await self._run(self._execute, "SELECT record FROM calls WHERE call_sid = ?", (sid,))
        return CallRecord.from_dict(json.loads(rows[0][0])) if rows else None

    async def calls_between(self, since: float, until: float | None = None, limit: int | None = None
                            ) -> list[CallRecord]:
        """Calls that started in [since, until), oldest first (the newest `limit` when given)."""
        sql = "SELECT record FROM calls WHERE started_at >= ?"
        params: list = [since]
        if until is not None:
            sql += " AND started_at < ?"
            params.append(until)
        if limit is not None:
            sql = f"SELECT record FROM ({sql} ORDER BY started_at DESC LIMIT {int(limit)}) AS newest"

        def read() -> list[CallRecord]:
            # decoded in the worker too: thousands of records would hold up the calls on the trio thread
            recs = [CallRecord.from_dict(json.loads(r[0])) for r in self._execute(sql, tuple(params))]
            return sorted(recs, key=lambda r: (r.started_at, r.call_sid))
        return await self._run(read)

    async def get_status(self, sid: str) -> dict[str, dict]:
        """Status callbacks received for a call: {CallStatus: {"duration": s|None, "received_at": t}}."""
        rows = await self._run(self._execute,
                               "SELECT status, duration, received_at FROM call_status WHERE call_sid = ?", (sid,))
        return {s: {"duration": d, "received_at": t} for s, d, t in rows}

    async def recordings_older_than(self, cutoff: float) -> list[tuple[str, str]]:
        rows = await self._run(self._execute,
                               "SELECT call_sid, recording_path FROM calls "
                               "WHERE recording_path IS NOT NULL AND started_at < ?", (cutoff,))
        return [(sid, path) for sid, path in rows]

    async def recording_paths(self) -> set[str]:
        rows = await self._run(self._execute, "SELECT recording_path FROM calls WHERE recording_path IS NOT NULL")
        return {r[0] for r in rows}


@asynccontextmanager
async def open_store(config, *, create: bool = True) -> AsyncIterator[SqlStore]:
    """The configured store, migrated and ready; closed on exit. With create=False a missing SQLite
    file is an error rather than a new empty store (for readers such as `offhook report`)."""
    url = config.database_url or ""
    if url.startswith(("postgresql://", "postgres://")):
        from offhook.observe.store_pg import PostgresStore
        store: SqlStore = PostgresStore(url)
    else:
        from offhook.observe.store_sqlite import SqliteStore, sqlite_path
        path = sqlite_path(config)
        if not create and not os.path.exists(path):
            raise StoreError(f"no call store at {path} (set OFFHOOK_DATA_DIR or DATABASE_URL, or --config)")
        store = SqliteStore(path)
    await store.start()
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
