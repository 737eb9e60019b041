"""The SQLite call store: one file under the data directory, WAL mode (readers never block the writer)."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

from offhook.observe.store import SqlStore, StoreError, StoreUnavailable

# sqlite result codes that say "not now" (locked, read-only, I/O error, disk full, cannot open) rather
# than "wrong statement": only these are retried
_TRANSIENT = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
              sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN}


def sqlite_path(config) -> str:
    url = config.database_url or ""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise StoreError("DATABASE_URL sqlite: needs a path, e.g. sqlite:///var/lib/offhook/calls.db")
        return path
    return str(Path(config.data_dir) / "calls.sqlite3")


class SqliteStore(SqlStore):
    backend = "sqlite"

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        try:
            # used from the store's worker threads one at a time (the limiter), never concurrently
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            db.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open the call store {self.path}: {e}") from None
        self._db = db

    def unavailable(self, error: BaseException) -> bool:
        if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) is not None:
            return error.sqlite_errorcode & 0xFF in _TRANSIENT
        return super().unavailable(error)

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        assert self._db is not None, "store not started"
        return self._db.execute(sql, params).fetchall()

    def _transaction(self, statements: Callable[[], None]) -> None:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            statements()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
