"""The PostgreSQL call store (psycopg 3) for several servers sharing one database.

Each server keeps one connection (autocommit); a dropped connection is reopened once per statement
before the error is raised. Schema migration takes a transaction-scoped advisory lock so servers
starting together do not race to create the tables.
"""
from __future__ import annotations

import logging
import re
from typing import Callable

import psycopg

from offhook.observe.store import SqlStore, StoreError

log = logging.getLogger("offhook.store")

MIGRATION_LOCK = 0x0FF400C  # any constant shared by all offhook servers


def _redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db (for error messages)."""
    url = re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


class PostgresStore(SqlStore):
    backend = "postgresql"

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self._db: psycopg.Connection | None = None

    def _connect(self) -> None:
        try:
            self._db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to the call store {_redact(self.url)}: "
                             f"{str(e).replace(self.url, _redact(self.url))[:300]}") from None

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        sql = sql.replace("?", "%s")
        for attempt in (1, 2):
            assert self._db is not None, "store not started"
            try:
                cur = self._db.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                if attempt == 2 or not (self._db.broken or self._db.closed):
                    raise
                log.warning("call store connection lost; reconnecting")
                self._connect()
        raise AssertionError("unreachable")

    def _transaction(self, statements: Callable[[], None]) -> None:
        assert self._db is not None
        with self._db.transaction():
            statements()

    def _lock_for_migration(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
