"""Recording retention: WAVs older than the retention period are deleted and their records updated.

Files are found two ways: through the store (calls older than the cutoff that still have a
recording), and by walking the recordings directory for files the store does not know (a server
that died between writing a WAV and storing its path, or spool files of calls that never ended).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import trio

log = logging.getLogger("offhook.retention")

SWEEP_PERIOD_S = 3600.0
SPOOL = "spool"
SPOOL_MAX_AGE_S = 24 * 3600.0  # no call lasts a day: an older spool file belongs to a dead server


@dataclass
class SweepResult:
    deleted: int = 0
    records_cleared: int = 0
    orphans_deleted: int = 0


def recording_file(root: Path, rel: str) -> Path | None:
    """The file a stored recording path names, or None when it would leave the recordings root."""
    if not rel or os.path.isabs(rel) or "\\" in rel:
        return None
    p = (root / rel).resolve()
    try:
        p.relative_to(root.resolve())
    except ValueError:
        return None
    return p


async def sweep(store, root: Path, retention_days: float, now: float | None = None) -> SweepResult:
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86400.0
    out = SweepResult()
    for sid, rel in await store.recordings_older_than(cutoff):
        path = recording_file(root, rel)
        if path is not None:
            try:
                path.unlink()
                out.deleted += 1
            except FileNotFoundError:
                pass
        await store.set_recording(sid, None)
        out.records_cleared += 1
    known = await store.recording_paths()

    def orphans() -> int:
        n = 0
        if not root.is_dir():
            return 0
        for dirpath, _, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                rel = p.relative_to(root).as_posix()
                try:
                    mtime = p.stat().st_mtime
                except FileNotFoundError:
                    continue
                in_spool = rel.startswith(SPOOL + "/")
                old = mtime < (now - SPOOL_MAX_AGE_S if in_spool else cutoff)
                if old and rel not in known:
                    p.unlink(missing_ok=True)
                    n += 1
        return n
    out.orphans_deleted = await trio.to_thread.run_sync(orphans)
    if out.deleted or out.orphans_deleted:
        log.info("retention: deleted %d recordings and %d orphan files older than %g days",
                 out.deleted, out.orphans_deleted, retention_days)
    return out


async def retention_task(store, root: Path, retention_days: float, period: float = SWEEP_PERIOD_S,
                         *, on_sweep=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Sweep at start and every `period` seconds; `on_sweep(result)` is told after each sweep."""
    task_status.started()
    while True:
        try:
            result = await sweep(store, root, retention_days)
        except Exception:
            log.exception("retention sweep failed; retrying next period")
        else:
            if on_sweep is not None:
                on_sweep(result)
        await trio.sleep(period)
