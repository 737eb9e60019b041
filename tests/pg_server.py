"""A throwaway PostgreSQL server for tests: initdb + pg_ctl from Debian's /usr/lib/postgresql/*/bin, in
a temp dir, listening only on a unix socket there. PostgreSQL refuses to run as root, so as root the
cluster belongs to the `postgres` OS user (created by Debian's package) or, failing that, `nobody`.

    with pg_server() as url:      # postgresql:///postgres?host=/tmp/...&port=...&user=postgres
        ...

`pg_binaries()` is None when no server binary exists; tests skip with that message.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

SKIP_REASON = ("no PostgreSQL server binaries (initdb/pg_ctl under /usr/lib/postgresql/*/bin); "
               "`apt-get install postgresql` (.ci/run does) to run the PostgreSQL store tests")


def pg_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    # the port only names the socket file (.s.PGSQL.<port>); no TCP listener is opened
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _os_user() -> tuple[str, int, int] | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL")


@contextmanager
def pg_server():
    bindir = pg_binaries()
    if bindir is None:
        raise RuntimeError(SKIP_REASON)
    user = _os_user()
    base = tempfile.mkdtemp(prefix="offhook-pg-")
    data, sock = os.path.join(base, "data"), os.path.join(base, "sock")
    os.makedirs(sock)
    if user:
        for p in (base, sock):
            os.chown(p, user[1], user[2])

    def run(*cmd: str) -> None:
        kw: dict = {"check": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "timeout": 120}
        if user:
            kw.update(user=user[1], group=user[2], extra_groups=[])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": base}
        try:
            subprocess.run(cmd, env=env, cwd=base, **kw)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"{cmd[0]} failed: {e.stdout.decode(errors='replace')[-2000:]}") from None

    port = _free_port()
    pg_user = "postgres"
    run(str(bindir / "initdb"), "-D", data, "-U", pg_user, "--auth=trust", "--no-sync", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", data, "-w", "-t", "60", "-l", os.path.join(base, "log"), "start",
        "-o", f"-c listen_addresses='' -k {sock} -p {port} -c fsync=off -c max_connections=50")
    try:
        yield f"postgresql:///postgres?host={sock}&port={port}&user={pg_user}"
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", data, "-w", "-t", "30", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url():
    """One server per test module (import this fixture into the module); skips without binaries."""
    if pg_binaries() is None:
        pytest.skip(SKIP_REASON)
    with pg_server() as url:
        yield url


_names = itertools.count()


def fresh_database(url: str) -> str:
    """A new empty database on the server at `url`; returns its URL."""
    import psycopg
    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    """A DATABASE_URL per backend: "" (SQLite under the data dir) or a fresh PostgreSQL database."""
    return "" if request.param == "sqlite" else fresh_database(request.getfixturevalue("pg_url"))
