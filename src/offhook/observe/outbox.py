"""A durable local outbox for call-store writes the store could not take (server down, unreachable).

Each pending write is one JSON file, `<data_dir>/outbox/<server>/<seq>-<kind>-<sid>.json`, written
atomically (temporary file, fsync, rename), so a crash leaves the whole write or none of it; the
sequence number keeps the writes in the order they were made, so a call's completion never overtakes
its start. A directory belongs to one live process, which holds an flock on its `.lock`: workers
sharing a data_dir each have their own (named by server_id), and at start a process adopts the
directories whose owner is gone (a previous run, a worker that no longer exists), in order.

A write that fails for another reason than an outage (a bug, a malformed record) goes to
`outbox/failed/` with the error, to be inspected rather than retried forever.

All methods do file IO: call them off the trio thread, from one task at a time.
"""
from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offhook.observe.record import CallRecord
from offhook.observe.store import valid_sid

log = logging.getLogger("offhook.observe")

KINDS = ("start", "finish", "status")
FORMAT = 1
FAILED = "failed"
LOCK = ".lock"
LOCK_TRIES, LOCK_PAUSE_S = 10, 0.05
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Write:
    """One call-store write: a call's start or finish (the record), or a Twilio status callback."""

    kind: str
    call_sid: str
    payload: dict[str, Any]  # CallRecord.to_dict(), or the status callback's fields
    made_at: float           # wall time the write was made (a status callback's received_at)
    seq: int = 0
    path: Path | None = field(default=None, compare=False)  # its file, once in the outbox

    @classmethod
    def of_record(cls, kind: str, rec: CallRecord) -> "Write":
        return cls(kind, rec.call_sid, rec.to_dict(), time.time())

    @classmethod
    def of_status(cls, status: dict[str, str], received_at: float) -> "Write":
        return cls("status", status.get("CallSid", ""), dict(status), received_at)

    def record(self) -> CallRecord:
        """A fresh record each time (a retried write starts again from what was made)."""
        return CallRecord.from_dict(self.payload)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "call_sid": self.call_sid, "made_at": self.made_at,
                "payload": self.payload}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Write":
        d = json.loads(data)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not an outbox write of format {FORMAT}")
        if d.get("kind") not in KINDS:
            raise ValueError(f"unknown write kind {d.get('kind')!r}")
        if not isinstance(d.get("payload"), dict):
            raise ValueError("write without a payload")
        return cls(d["kind"], str(d.get("call_sid", "")), d["payload"], float(d.get("made_at", 0.0)))

    @property
    def label(self) -> str:
        return f"{self.kind} of call {self.call_sid}"

    @property
    def file_sid(self) -> str:
        """The call sid as it may appear in a file name."""
        return self.call_sid if valid_sid(self.call_sid) else "unknown"


class Backoff:
    """Delays between retries: `first`, doubling, at most `cap`; back to `first` after a success."""

    def __init__(self, first: float = 1.0, cap: float = 60.0):
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Outbox:
    def __init__(self, root: Path, owner: str):
        self.root = Path(root)
        self.failed_dir = self.root / FAILED
        self.owner = _UNSAFE.sub("_", owner) or "server"
        if self.owner in (FAILED, ".", ".."):
            self.owner += "_"
        self.dir: Path | None = None
        self.pending: deque[Write] = deque()
        self.unreadable = 0  # files found at start that were not writes (moved to failed/)
        self._lock_fd: int | None = None
        self._seq = itertools.count(1)
        self._failed_names = itertools.count()

    # ---------------------------------------------------------------- start and stop
    def open(self) -> None:
        """Take this process's directory and load what earlier runs left, oldest first."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name in (self.owner, f"{self.owner}.{os.getpid()}"):
            fd = self._lock(self.root / name, wait=name == self.owner)
            if fd is not None:
                self.dir, self._lock_fd = self.root / name, fd
                break
        else:
            raise OSError(f"outbox directories for {self.owner} in {self.root} are all in use")
        if self.dir.name != self.owner:
            log.warning("another live server uses the outbox %s (same server id?); this one uses %s",
                        self.root / self.owner, self.dir)
        found = self._entries(self.dir)
        for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != FAILED and p != self.dir):
            fd = self._lock(other)
            if fd is None:  # its server is running
                continue
            try:
                adopted = self._entries(other)
                for path in adopted:  # into our directory, after our own (renumbered as they load)
                    found.append(path.rename(self.dir / f"adopted-{other.name}-{path.name}"))
                if adopted:
                    log.warning("outbox: adopted %d writes left by %s", len(adopted), other.name)
                (other / LOCK).unlink(missing_ok=True)
                for junk in other.iterdir():
                    if junk.name.endswith(".tmp"):
                        junk.unlink()
                other.rmdir()
            except OSError as e:
                log.warning("outbox: could not adopt %s (%s)", other, e)
            finally:
                os.close(fd)
        for path in found:
            self._load(path)

    def _lock(self, d: Path, wait: bool = False) -> int | None:
        """An flock on d's lock file, or None if a live process holds it. With wait, a holder gets
        half a second to let go: a sibling worker starting at the same time may be adopting d."""
        for attempt in range(LOCK_TRIES if wait else 1):
            if attempt:
                time.sleep(LOCK_PAUSE_S)  # in a worker thread, at start-up only
            try:
                d.mkdir(exist_ok=True)
                fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # adopted and removed by another server just now
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(d / LOCK).st_ino:
                    return fd
                # else the file was unlinked (d adopted and removed) between our open and flock
            except (BlockingIOError, FileNotFoundError):
                pass
            os.close(fd)
        return None

    @staticmethod
    def _entries(d: Path) -> list[Path]:
        """The writes in d, oldest first; a temporary file is a write that was never completed."""
        out = []
        for p in d.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink()
            elif p.name != LOCK:
                out.append(p)
        return sorted(out, key=lambda p: p.name)

    def _load(self, path: Path) -> None:
        try:
            w = Write.from_json(path.read_bytes())
        except (ValueError, TypeError, OSError) as e:
            self.unreadable += 1
            data = path.read_bytes() if path.is_file() else b""
            try:
                write = json.loads(data)
            except ValueError:
                write = data.decode("utf-8", "replace")
            self._to_failed(path.name, write, f"unreadable outbox file: {e!r}")
            path.unlink(missing_ok=True)
            log.error("outbox: %s is not a readable write (%s); moved to %s", path.name, e, self.failed_dir)
            return
        w.seq = next(self._seq)
        w.path = self.dir / self._name(w)
        if path != w.path:
            path.rename(w.path)
        self.pending.append(w)

    def close(self) -> None:
        """Release the directory; an empty one is removed (the next run makes it again)."""
        if self._lock_fd is None:
            return
        try:
            if not self.pending and self.dir is not None and not any(p.name != LOCK for p in self.dir.iterdir()):
                (self.dir / LOCK).unlink(missing_ok=True)
                self.dir.rmdir()
        except OSError as e:
            log.warning("outbox: could not tidy %s (%s)", self.dir, e)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---------------------------------------------------------------- writes
    def _name(self, w: Write) -> str:
        return f"{w.seq:012d}-{w.kind}-{w.file_sid}.json"

    def add(self, w: Write) -> None:
        """Keep w on disk, behind everything already pending. If it cannot be written (disk full, a
        value JSON cannot hold) it still waits in the queue, in memory only (`in_memory`)."""
        assert self.dir is not None, "outbox not open"
        w.seq = next(self._seq)
        path = self.dir / self._name(w)
        try:
            _write_atomically(path, w.to_json())
            w.path = path
        except (OSError, TypeError, ValueError) as e:
            log.error("outbox: cannot keep the %s on disk (%s); it waits in memory only", w.label, e)
        self.pending.append(w)

    @property
    def in_memory(self) -> int:
        return sum(w.path is None for w in self.pending)

    def done(self, w: Write) -> None:
        """w is in the store: forget it."""
        self._drop(w)

    def fail(self, w: Write, error: str) -> Path | None:
        """w cannot be written (not an outage): out of the queue, kept with the error in failed/
        (None if even that cannot be written)."""
        try:
            return self._to_failed(f"{w.kind}-{w.file_sid}.json", w.to_dict(), error)
        except OSError as e:
            log.error("outbox: cannot keep the failed %s in %s (%s)", w.label, self.failed_dir, e)
            return None
        finally:
            self._drop(w)

    def _drop(self, w: Write) -> None:
        if w in self.pending:
            self.pending.remove(w)
        if w.path is not None:
            try:
                w.path.unlink(missing_ok=True)
            except OSError as e:  # delivered again at the next start: harmless, the writes are upserts
                log.warning("outbox: cannot remove %s (%s)", w.path, e)

    def _to_failed(self, name: str, write: Any, error: str) -> Path:
        """Keep `write` (as JSON; what JSON cannot hold, e.g. a record that does not serialise, as its
        repr) with the error in failed/."""
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{next(self._failed_names)}"
        path = self.failed_dir / f"{stamp}-{name}"
        _write_atomically(path, json.dumps({"error": error, "failed_at": time.time(), "write": write},
                                           indent=1, default=repr).encode())
        return path
