"""Recording retention: old WAVs go, their records say so, nothing outside the recordings dir is touched."""
import os
import time

import trio
from trio.testing import MockClock

from observe_helpers import sample_record
from offhook.observe.observer import Observer
from offhook.observe.retention import SWEEP_PERIOD_S, recording_file, retention_task, sweep
from offhook.observe.store import open_store
from offhook.server.config import Config

DAY = 86400.0


def make(path, age_days, now):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_sweep_deletes_old_recordings_and_orphans_and_keeps_the_rest(tmp_path):
    now = time.time()
    root = tmp_path / "recordings"
    outside = make(tmp_path / "precious.wav", 100, now)
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path))

    async def main():
        async with open_store(cfg) as store:
            for sid, age in (("CAold", 40), ("CAnew", 1), ("CAevil", 40)):
                r = sample_record(sid, started_at=now - age * DAY, duration=20.0)
                r.recording_path = f"day/{sid}.wav" if sid != "CAevil" else "../precious.wav"
                make(root / "day" / f"{sid}.wav", age, now)
                await store.finish_call(r)
            make(root / "day" / "CAorphan.wav", 40, now)          # a WAV the store never heard of
            make(root / "spool" / "CAdead.caller.ulaw", 2, now)    # spool of a call on a dead server
            make(root / "spool" / "CAlive.caller.ulaw", 0.01, now)  # a call in progress
            result = await sweep(store, root, 30, now=now)
            assert (result.deleted, result.records_cleared, result.orphans_deleted) == (1, 2, 3)
            assert (await store.get_call("CAold")).recording_path is None
            assert (await store.get_call("CAevil")).recording_path is None
            assert (await store.get_call("CAnew")).recording_path == "day/CAnew.wav"
    trio.run(main)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    # the file the evil path named is untouched; its same-named-in-root orphan (day/CAevil.wav) is swept
    assert left == ["day/CAnew.wav", "spool/CAlive.caller.ulaw"]
    assert outside.exists()


def test_paths_that_leave_the_root_are_refused(tmp_path):
    root = tmp_path / "rec"
    root.mkdir()
    for bad in ("../x.wav", "/etc/passwd", "a/../../x.wav", "", "a\\..\\x.wav"):
        assert recording_file(root, bad) is None, bad
    assert recording_file(root, "2026-01-01/CA1.wav") == (root / "2026-01-01" / "CA1.wav").resolve()


def test_the_task_sweeps_at_start_and_every_period(tmp_path):
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path))
    root = tmp_path / "recordings"

    async def main():
        async with open_store(cfg) as store:
            sweeps = []
            changed = trio.Event()

            def on_sweep(result):
                sweeps.append((trio.current_time(), result.orphans_deleted))
                changed.set()

            async with trio.open_nursery() as n:
                await n.start(lambda task_status: retention_task(store, root, 30, on_sweep=on_sweep,
                                                                 task_status=task_status))
                await changed.wait()
                changed = trio.Event()
                make(root / "x" / "CAorphan.wav", 31, time.time())
                await changed.wait()
                n.cancel_scope.cancel()
            assert [n for _, n in sweeps] == [0, 1]
            assert sweeps[1][0] - sweeps[0][0] == SWEEP_PERIOD_S
            assert not (root / "x" / "CAorphan.wav").exists()
    trio.run(main, clock=MockClock(autojump_threshold=0))


def test_the_observer_sweeps_old_recordings_when_it_opens(tmp_path):
    now = time.time()
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), recording_retention_days=7)
    root = tmp_path / "recordings"

    async def main():
        async with open_store(cfg) as store:
            for sid, age in (("CAweekold", 8), ("CAfresh", 6)):
                r = sample_record(sid, started_at=now - age * DAY, duration=20.0)
                r.recording_path = f"d/{sid}.wav"
                make(root / r.recording_path, age, now)
                await store.finish_call(r)
        async with Observer.open(cfg) as obs:
            while not obs.sweeps:
                await obs.swept.wait()
            assert obs.sweeps[-1].deleted == 1
            assert (await obs.store.get_call("CAweekold")).recording_path is None
            assert (await obs.store.get_call("CAfresh")).recording_path == "d/CAfresh.wav"
    trio.run(main)
    assert sorted(p.name for p in root.rglob("*.wav")) == ["CAfresh.wav"]
