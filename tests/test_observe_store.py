"""The call store: the same tests against SQLite and against a real PostgreSQL server started here."""
import sqlite3

import psycopg
import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from observe_helpers import sample_record
from offhook.observe.record import CallRecord, EndReason, TurnRecord
from offhook.observe.store import SCHEMA_VERSION, StoreError, open_store
from offhook.server.config import Config
from pg_server import fresh_database as _fresh_pg_db
from pg_server import pg_url  # noqa: F401 (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request, tmp_path):
    if request.param == "sqlite":
        return Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path))
    url = _fresh_pg_db(request.getfixturevalue("pg_url"))
    return Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), database_url=url)


def run(fn, *args):
    return trio.run(fn, *args)


def test_a_call_is_incomplete_from_its_start_and_complete_at_its_end(config):
    async def main():
        async with open_store(config) as store:
            rec = CallRecord("CA100", from_number="+15551230000", started_at=1000.0, server_id="s1")
            await store.start_call(rec)
            got = await store.get_call("CA100")
            assert got.complete is False and got.end_reason is EndReason.INCOMPLETE and got.ended_at is None
            assert got.from_number == "+15551230000"
            full = sample_record("CA100", started_at=1000.0, duration=95.0)
            await store.finish_call(full)
            got = await store.get_call("CA100")
            assert got == full  # every turn, barge-in, event, usage figure and cost survives the round trip
            assert got.turns[1].first_audio_latency == pytest.approx(full.turns[1].first_audio_latency)
            assert [c.call_sid for c in await store.calls_between(0)] == ["CA100"]
    run(main)


def test_a_crash_mid_call_leaves_an_incomplete_row(config):
    async def main():
        async with open_store(config) as store:
            await store.start_call(CallRecord("CAcrash", started_at=2000.0))
            await store.start_call(CallRecord("CAdone", started_at=2001.0))
            await store.finish_call(sample_record("CAdone", started_at=2001.0, duration=10.0))
        # the server is gone; a new one opens the same store
        async with open_store(config) as store:
            calls = {c.call_sid: c for c in await store.calls_between(0)}
            assert set(calls) == {"CAcrash", "CAdone"}
            assert not calls["CAcrash"].complete and calls["CAcrash"].end_reason is EndReason.INCOMPLETE
            assert calls["CAdone"].complete and calls["CAdone"].end_reason is EndReason.CALLER_HANGUP
    run(main)


def test_schema_is_created_once_and_a_newer_schema_is_refused(config):
    async def main():
        async with open_store(config) as store:
            assert await store._run(store.schema_version) == SCHEMA_VERSION
            await store.start_call(CallRecord("CA1", started_at=1.0))
        async with open_store(config) as store:  # reopening migrates nothing and keeps the data
            assert await store._run(store.schema_version) == SCHEMA_VERSION
            assert (await store.get_call("CA1")) is not None
            await store._run(store._execute, "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
        with pytest.raises(StoreError, match="newer than this offhook"):
            async with open_store(config):
                pass
    run(main)


def test_status_callbacks_are_kept_and_update_the_call(config):
    async def main():
        async with open_store(config) as store:
            await store.start_call(CallRecord("CA7", started_at=10.0))
            await store.record_status({"CallSid": "CA7", "CallStatus": "ringing", "CallDuration": ""})
            await store.record_status({"CallSid": "CA7", "CallStatus": "completed", "CallDuration": "42"})
            await store.record_status({"CallSid": "CAunknown", "CallStatus": "completed", "CallDuration": "x"})
            st = await store.get_status("CA7")
            assert set(st) == {"ringing", "completed"} and st["completed"]["duration"] == 42.0
            assert (await store.get_status("CAunknown"))["completed"]["duration"] is None
            rows = await store._run(store._execute,
                                    "SELECT twilio_status, twilio_duration FROM calls WHERE call_sid = ?", ("CA7",))
            assert rows == [("completed", 42.0)]
            with pytest.raises(StoreError):
                await store.record_status({"CallSid": "../../etc", "CallStatus": "completed"})
    run(main)


def test_time_ranges_limits_and_recordings(config):
    async def main():
        async with open_store(config) as store:
            for i in range(6):
                r = sample_record(f"CA{i}", started_at=100.0 * i, duration=20.0)
                r.recording_path = f"1970-01-01/CA{i}.wav" if i % 2 == 0 else None
                await store.finish_call(r)
            assert [c.call_sid for c in await store.calls_between(150, 450)] == ["CA2", "CA3", "CA4"]
            assert [c.call_sid for c in await store.calls_between(0, limit=2)] == ["CA4", "CA5"]
            assert sorted(await store.recordings_older_than(250)) == [("CA0", "1970-01-01/CA0.wav"),
                                                                      ("CA2", "1970-01-01/CA2.wav")]
            await store.set_recording("CA0", None)
            assert (await store.get_call("CA0")).recording_path is None
            assert await store.recording_paths() == {"1970-01-01/CA2.wav", "1970-01-01/CA4.wav"}
    run(main)


def test_bad_sids_are_refused_not_stored(config):
    async def main():
        async with open_store(config) as store:
            for bad in ("", "CA/../x", "x" * 65, "CA1;DROP TABLE calls"):
                with pytest.raises(StoreError, match="invalid sid"):
                    await store.start_call(CallRecord(bad))
                assert await store.get_call(bad) is None
            assert await store.calls_between(0) == []
    run(main)


def test_the_record_is_snapshotted_when_written(config):
    async def main():
        async with open_store(config) as store:
            rec = CallRecord("CAsnap", started_at=5.0)
            async with trio.open_nursery() as n:
                async with store._limiter:  # the store's worker is busy: this write has to queue
                    n.start_soon(store.start_call, rec)
                    await wait_all_tasks_blocked()
                    rec.turns.append(TurnRecord(0, caller_text="after the write was queued"))
            assert (await store.get_call("CAsnap")).turns == []
    run(main)


def test_two_servers_share_one_postgresql_store(pg_url, tmp_path):
    url = _fresh_pg_db(pg_url)
    a = Config.load(env={}, validate_signatures=False, database_url=url, data_dir=str(tmp_path / "a"))

    async def main():
        async with open_store(a) as s1, open_store(a) as s2:  # both migrate at once: one wins, one waits
            await s1.start_call(CallRecord("CAa", started_at=1.0, server_id="a"))
            await s2.start_call(CallRecord("CAb", started_at=2.0, server_id="b"))
            r = sample_record("CAa", started_at=1.0, duration=3.0)
            r.server_id = "a"
            await s1.finish_call(r)
            calls = await s2.calls_between(0)
            assert [(c.call_sid, c.server_id, c.complete) for c in calls] == [("CAa", "a", True), ("CAb", "b", False)]
            rows = await s1._run(s1._execute, "SELECT COUNT(*) FROM schema_version")
            assert rows == [(1,)]
    run(main)


def test_sqlite_is_in_wal_mode_under_the_data_dir(tmp_path):
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path / "data"))

    async def main():
        async with open_store(cfg) as store:
            await store.start_call(CallRecord("CA1", started_at=1.0))
    run(main)
    db = sqlite3.connect(tmp_path / "data" / "calls.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT call_sid, complete FROM calls").fetchall() == [("CA1", 0)]


def test_reader_refuses_a_missing_store_and_pg_errors_hide_the_password(tmp_path):
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path / "none"))
    bad = Config.load(env={}, validate_signatures=False,
                      database_url="postgresql://u:hunter2@127.0.0.1:1/x?connect_timeout=2")

    async def missing():
        async with open_store(cfg, create=False):
            pass

    async def unreachable():
        async with open_store(bad):
            pass
    with pytest.raises(StoreError, match="no call store at"):
        run(missing)
    assert not (tmp_path / "none").exists()
    with pytest.raises(StoreError) as e:
        run(unreachable)
    assert "hunter2" not in str(e.value) and "***" in str(e.value)


def test_postgresql_reconnects_after_losing_its_connection(pg_url, tmp_path):
    url = _fresh_pg_db(pg_url)
    cfg = Config.load(env={}, validate_signatures=False, database_url=url, data_dir=str(tmp_path))

    async def main():
        async with open_store(cfg) as store:
            await store.start_call(CallRecord("CA1", started_at=1.0))
            pid = store._db.info.backend_pid
            with psycopg.connect(url, autocommit=True) as admin:  # the database restarts, say
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await store.finish_call(sample_record("CA1", started_at=1.0, duration=2.0))
            assert store._db.info.backend_pid != pid
            assert (await store.get_call("CA1")).complete
    run(main)
