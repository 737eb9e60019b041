"""The PostgreSQL call store (psycopg 3) for several servers sharing one database.

Each server keeps one connection (autocommit); a dropped connection is reopened once per statement
before the error is raised (an OperationalError or StoreUnavailable: the observer keeps the write in
its outbox and retries). Schema migration takes a transaction-scoped advisory lock so servers
starting together do not race to create the tables.
"""
from __future__ import annotations

import logging
import re
from typing import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from offhook.observe.store import SqlStore, StoreUnavailable

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
        self._lost = False

    def _connect(self) -> None:
        try:
            self._db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to the call store {_redact(self.url)}: "
                                   f"{self.redact(str(e))[:300]}") from None

    def unavailable(self, error: BaseException) -> bool:
        # connection lost/refused, server shutting down, out of resources: all worth retrying
        return isinstance(error, psycopg.OperationalError) or super().unavailable(error)

    def redact(self, text: str) -> str:
        text = _redact(text.replace(self.url, _redact(self.url)))
        try:
            password = conninfo_to_dict(self.url).get("password")
        except psycopg.Error:
            password = None
        return text.replace(str(password), "***") if password else text

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
                # said once per outage: while the server stays down every statement tries again
                log.log(logging.DEBUG if self._lost else logging.WARNING, "call store connection lost; reconnecting")
                self._lost = True
                self._connect()
                self._lost = False
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
