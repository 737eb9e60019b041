"""Call records survive a call store that is down: the real server and simulated callers, a real
PostgreSQL (tests/pg_server.py) that is killed during calls and started again, real SQLite; the
observer's backoff runs on trio's MockClock. We check what an operator sees: the rows in the
database, the outbox files on disk, /metrics and the log lines (no password in any of them)."""
import json
import logging
import os
import sqlite3
import subprocess
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import trio

from observe_helpers import sample_record
from pg_server import _os_user, fresh_database, pg_binaries, pg_url  # noqa: F401 (fixture)
from test_observe_observer import SHORT_CALL, StandInAgent, m, observed, run, scrape
from offhook.observe.observer import Observer
from offhook.observe.outbox import Backoff, Outbox, Write
from offhook.observe.record import CallRecord, EndReason
from offhook.observe.store import open_store
from offhook.observe.store_pg import PostgresStore
from offhook.server.config import Config
from offhook.sim.caller import SimCaller
from offhook.sim.scenario import from_dict

SECRET = "s3cret-hunter2"  # in the DATABASE_URL (the test server trusts, so it is not checked)
OUTBOX_GAUGE = "offhook_store_outbox_writes"


class Postgres:
    """The module's test server, killed (immediate stop: no clean shutdown) and started again."""

    def __init__(self, url: str):
        q = parse_qs(urlsplit(url).query)
        self.sock, self.port = q["host"][0], q["port"][0]
        self.base = os.path.dirname(self.sock)
        self.running = True

    def _ctl(self, *args: str) -> None:
        user = _os_user()
        kw = {"user": user[1], "group": user[2], "extra_groups": []} if user else {}
        subprocess.run([str(pg_binaries() / "pg_ctl"), "-D", os.path.join(self.base, "data"), "-w", "-t", "60",
                        *args], check=True, capture_output=True, timeout=90, cwd=self.base, **kw)

    # Both block the trio thread on purpose: no virtual time passes while the server stops or starts.
    def kill(self) -> None:
        self._ctl("-m", "immediate", "stop")
        self.running = False

    def start(self) -> None:
        self._ctl("-l", os.path.join(self.base, "log"), "start", "-o",
                  f"-c listen_addresses='' -k {self.sock} -p {self.port} -c fsync=off -c max_connections=50")
        self.running = True


@pytest.fixture
def pg(pg_url):  # noqa: F811
    server = Postgres(pg_url)
    try:
        yield server
    finally:
        if not server.running:  # a failed test must not leave the next one without its server
            server.start()


@pytest.fixture
def db(pg_url):  # noqa: F811
    return fresh_database(pg_url) + f"&password={SECRET}"


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="offhook")
    return caplog


def lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def spy(obs) -> list[tuple[str, str, bool]]:
    """What the store took, in the order it took it: (write, call sid, complete)."""
    taken = []
    for name in ("start_call", "finish_call"):
        real = getattr(obs.store, name)

        async def wrapped(rec, real=real, name=name):
            await real(rec)
            taken.append((name, rec.call_sid, rec.complete))
        setattr(obs.store, name, wrapped)
    return taken


def outbox_files(obs_or_dir) -> list[str]:
    d = obs_or_dir.outbox.dir if hasattr(obs_or_dir, "outbox") else obs_or_dir
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".json")) if d.exists() else []


def rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT call_sid, complete, end_reason FROM calls ORDER BY started_at").fetchall()


def test_records_written_while_postgres_is_down_arrive_once_it_is_back_in_order_each_once(tmp_path, pg, db, logs):
    async def main():
        async with observed(tmp_path, database_url=db) as (app, obs):
            taken = spy(obs)
            a = SimCaller(app.base_ws + "/twilio/media", from_dict(SHORT_CALL), seed=1)
            async with trio.open_nursery() as n:
                n.start_soon(a.run)
                while not app.active:
                    await trio.sleep(0.01)
                await obs.flush()
                assert taken == [("start_call", a.call_sid, False)]
                pg.kill()  # mid-call: A's completion, and all of B, meet a dead database
            b = SimCaller(app.base_ws + "/twilio/media", from_dict(SHORT_CALL), seed=2)
            result = await b.run()
            assert not result.error and result.lines[0].latency is not None  # the caller noticed nothing
            await trio.sleep(0.1)

            # what an operator sees during the outage
            assert outbox_files(obs) == [f"000000000001-finish-{a.call_sid}.json",
                                         f"000000000002-start-{b.call_sid}.json",
                                         f"000000000003-finish-{b.call_sid}.json"]
            kept = json.loads((obs.outbox.dir / outbox_files(obs)[2]).read_text())
            assert kept["payload"]["complete"] and kept["payload"]["end_reason"] == "caller_hangup"
            assert m(await scrape(app), OUTBOX_GAUGE) == 3
            [warning] = lines(logs, "call store unavailable")
            assert str(obs.outbox.dir) in warning and "password=***" in warning

            pg.start()
            with trio.fail_after(300):
                await obs.flush()
            assert m(await scrape(app), OUTBOX_GAUGE) == 0
            assert outbox_files(obs) == []
            assert taken == [("start_call", a.call_sid, False), ("finish_call", a.call_sid, True),
                             ("start_call", b.call_sid, False), ("finish_call", b.call_sid, True)]
            assert len(lines(logs, "call store back after")) == 1
            assert obs.write_failures == 0

        assert rows(db) == [(a.call_sid, 1, "caller_hangup"), (b.call_sid, 1, "caller_hangup")]
        cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), database_url=db)
        async with open_store(cfg) as store:
            rec = await store.get_call(b.call_sid)
        assert rec.complete and len(rec.turns) == 1 and rec.cost["total"] > 0
        assert SECRET not in logs.text
        assert not any(SECRET in p.read_text() for p in tmp_path.rglob("*.json"))
    run(main)


def test_a_calls_end_never_overtakes_its_start_waiting_in_the_outbox(tmp_path, pg, db, logs):
    """The database comes back while the call's start waits for its next try (1 s later) and the
    call ends before that: the end must queue behind the start, or the start would overwrite it."""
    async def main():
        async with observed(tmp_path, database_url=db) as (app, obs):
            taken = spy(obs)
            pg.kill()
            caller = SimCaller(app.base_ws + "/twilio/media", from_dict({"steps": [{"wait": 0.2}, {"hangup": True}]}))
            async with trio.open_nursery() as n:
                n.start_soon(caller.run)
                while not obs.outbox.pending:
                    await trio.sleep(0.01)
                started = trio.current_time()
                pg.start()
            await trio.sleep(0.1)
            assert trio.current_time() - started < 1.0  # the call is over before the start's next try
            with trio.fail_after(10):
                await obs.flush()
        assert taken == [("start_call", caller.call_sid, False), ("finish_call", caller.call_sid, True)]
        assert rows(db) == [(caller.call_sid, 1, "caller_hangup")]
    run(main)


def test_a_shutdown_during_an_outage_loses_nothing_the_next_start_delivers_it(tmp_path, pg, db, logs):
    long_call = {"steps": [{"wait_for_agent": {"quiet": 0.3}}, {"wait": 60.0}, {"hangup": True}]}

    async def main():
        async with trio.open_nursery() as n:
            async with observed(tmp_path, database_url=db) as (app, obs):
                pg.kill()
                caller = SimCaller(app.base_ws + "/twilio/media", from_dict(long_call))
                n.start_soon(caller.run)
                while not app.active:
                    await trio.sleep(0.01)
                await trio.sleep(1.0)
                outbox = obs.outbox.dir
            # server and observer stopped with the call in progress and the database still down
        assert outbox_files(outbox) == [f"000000000001-start-{caller.call_sid}.json",
                                        f"000000000002-finish-{caller.call_sid}.json"]
        [line] = lines(logs, "not delivered by shutdown")
        assert "2 writes" in line and str(outbox) in line

        pg.start()
        cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), database_url=db)
        async with Observer.open(cfg) as obs:  # the next start, on the same data_dir, delivers at once
            with trio.fail_after(60):
                await obs.flush()
            rec = await obs.store.get_call(caller.call_sid)
        # complete: the start (an upsert of the incomplete record) did not come after the end
        assert rec.complete and rec.end_reason is EndReason.SERVER_SHUTDOWN
        assert rows(db) == [(caller.call_sid, 1, "server_shutdown")]
        assert len(lines(logs, "left in")) == 1 and len(lines(logs, "by an earlier run are delivered")) == 1
        assert not outbox.exists()  # an empty outbox is tidied away
        assert SECRET not in logs.text
    run(main)


def test_retries_back_off_from_one_second_doubling_to_a_minute_and_start_again_at_one(tmp_path, pg, db, logs):
    async def main():
        cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), database_url=db)
        async with Observer.open(cfg) as obs:
            tries = []  # (began, failed) per try; virtual time may pass during one (its worker thread)
            real = obs.store.record_status

            async def record_status(st, received_at=None):
                began = trio.current_time()
                try:
                    await real(st, received_at)
                finally:
                    tries.append((began, trio.current_time()))
            obs.store.record_status = record_status

            def waits():  # from a failed try to the next one
                return [b[0] - a[1] for a, b in zip(tries, tries[1:])]

            pg.kill()
            obs.status({"CallSid": "CAbackoff", "CallStatus": "ringing"})  # the server's status hook
            await trio.sleep(300)
            assert len(tries) >= 9
            assert waits() == pytest.approx([1, 2, 4, 8, 16, 32, 60, 60, 60, 60][:len(tries) - 1], abs=1e-6)
            assert len(lines(logs, "call store unavailable")) == 1  # one warning, not one per try

            pg.start()
            with trio.fail_after(61):
                await obs.flush()
            assert set(await obs.store.get_status("CAbackoff")) == {"ringing"}
            # the next outage starts from one second again
            pg.kill()
            del tries[:]
            obs.status({"CallSid": "CAbackoff", "CallStatus": "completed", "CallDuration": "7"})
            await trio.sleep(10)
            assert len(tries) >= 3 and waits()[:2] == pytest.approx([1, 2], abs=1e-6)
            pg.start()
            with trio.fail_after(61):
                await obs.flush()
            assert set(await obs.store.get_status("CAbackoff")) == {"ringing", "completed"}
        assert SECRET not in logs.text
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.005))


def test_a_write_whose_preparation_outlasts_the_wait_for_the_next_try_still_reaches_the_store(tmp_path, logs):
    """During an outage, a call's end is prepared (its recording saved) while the next try comes due:
    the write must still go to the outbox, not be dropped because the wait for it timed out."""
    async def main():
        async with Observer.open(Config.load(env={}, data_dir=str(tmp_path), validate_signatures=False)) as obs:
            down = True
            real = obs.store.start_call

            async def start_call(rec):  # the store unreachable until `down` is cleared
                if down:
                    raise OSError("store unreachable")
                await real(rec)
            obs.store.start_call = start_call
            obs._submit(Write.of_record("start", sample_record("CAfirst", started_at=1.0, duration=None)))
            await trio.sleep(0.1)
            assert len(obs.outbox.pending) == 1  # the next try is 1 s after the failure

            async def slow_preparation():  # e.g. a long call's recording written out
                await trio.sleep(5)
                return Write.of_record("start", sample_record("CAslow", started_at=2.0, duration=None))
            obs._submit(slow_preparation)
            await trio.sleep(3)
            down = False
            with trio.fail_after(100):
                await obs.flush()
            assert not obs.outbox.pending
            stored = [await obs.store.get_call(sid) for sid in ("CAfirst", "CAslow")]
        assert [r.call_sid for r in stored if r is not None] == ["CAfirst", "CAslow"]
    run(main)


def test_backoff_sequence():
    b = Backoff(1.0, 60.0)
    assert [b.next() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert b.next() == 1


def previous_runs(outbox_root, writes: dict[str, list[Write]], junk: dict[str, bytes]) -> None:
    """The outboxes servers (by id) leave when they stop during an outage; all running at once, as
    workers do (a server starting alone would adopt the others' outboxes). Junk goes in the first."""
    boxes = [Outbox(outbox_root, owner) for owner in writes]
    for box in boxes:
        box.open()
    for box, ws in zip(boxes, writes.values()):
        for w in ws:
            box.add(w)
    for name, data in junk.items():
        (boxes[0].dir / name).write_bytes(data)
    for box in boxes:
        box.close()


def test_an_outbox_left_by_a_previous_run_is_delivered_at_start_whole_and_once(tmp_path, logs):
    """SQLite; this server's own left-overs and those of a worker that no longer runs ("oldhost-w3"):
    everything the record holds comes back, a write the store had already taken is still one row, a
    half-written temporary file is dropped and a file that is not a write goes to failed/."""
    full = sample_record("CAfull", started_at=1_700_000_000.0, duration=95.5)
    full.recording_path = "2023-11-14/CAfull.wav"
    other = sample_record("CAother", started_at=1_700_000_100.0, duration=30.0)
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path), server_id="thishost")

    async def main():
        async with open_store(cfg) as store:  # the store took CAother's finish, but the answer was lost
            await store.finish_call(other)
        root = tmp_path / "outbox"
        previous_runs(root, {
            "thishost": [Write.of_record("start", CallRecord("CAfull", started_at=full.started_at)),
                         Write.of_record("finish", full)],
            "oldhost-w3": [Write.of_record("finish", other),
                           Write.of_status({"CallSid": "CAother", "CallStatus": "completed", "CallDuration": "61"},
                                           1_700_000_200.0)]},
            junk={"000000000003-finish-CAhalf.json.tmp": b'{"format":1,"ki',
                  "000000000004-finish-CAbad.json": b'{"format": 1, "kind": "finish"'})
        async with Observer.open(cfg) as obs:
            assert len(obs.outbox.pending) == 4
            with trio.fail_after(10):
                await obs.flush()
            got_full, got_other = await obs.store.get_call("CAfull"), await obs.store.get_call("CAother")
            status = await obs.store.get_status("CAother")
            metrics = obs.metrics.render().decode()
        assert got_full == full  # every field, turns, barge-ins, events, usage, cost, recording
        assert got_other.usage.twilio_seconds == 61 and got_other.cost["twilio"] == pytest.approx(2 * 0.0125)
        assert status == {"completed": {"duration": 61.0, "received_at": 1_700_000_200.0}}
        with sqlite3.connect(tmp_path / "calls.sqlite3") as c:
            assert c.execute("SELECT call_sid FROM calls ORDER BY call_sid").fetchall() == [("CAfull",), ("CAother",)]
        assert sorted(p.name for p in root.iterdir()) == ["failed"]  # both directories delivered and tidied
        [bad] = list((root / "failed").iterdir())
        kept = json.loads(bad.read_text())
        assert "unreadable outbox file" in kept["error"] and kept["write"] == '{"format": 1, "kind": "finish"'
        assert "000000000004-finish-CAbad.json" in bad.name
        assert len(lines(logs, "is not a readable write")) == 1
        assert len(lines(logs, "adopted 2 writes left by oldhost-w3")) == 1
        assert "offhook_store_outbox_writes 0.0" in metrics and "offhook_store_failed_writes_total 1.0" in metrics
    trio.run(main)


class BrokenCostAgent(StandInAgent):
    """A buggy agent: its record's cost is not a number when the call starts."""

    def __init__(self, call):
        super().__init__(call)
        call.record.cost = {"total": "n/a"}


def test_a_write_that_fails_for_another_reason_goes_to_failed_and_the_rest_go_on(tmp_path, logs):
    async def main():
        async with observed(tmp_path, factory=BrokenCostAgent) as (app, obs):
            result = await SimCaller(app.base_ws + "/twilio/media", from_dict(SHORT_CALL)).run()
            await trio.sleep(0.1)
            with trio.fail_after(10):
                await obs.flush()
            metrics = await scrape(app)
            rec = await obs.store.get_call(result.call_sid)
            assert not obs.outbox.pending
        assert not result.error
        assert rec.complete and rec.cost["total"] > 0  # the end's write (priced by the ledger) went in
        [failed] = list((tmp_path / "outbox" / "failed").iterdir())
        assert failed.name.endswith(f"-start-{result.call_sid}.json")
        kept = json.loads(failed.read_text())
        assert kept["write"]["kind"] == "start" and kept["write"]["payload"]["cost"] == {"total": "n/a"}
        assert "ValueError" in kept["error"] and "could not convert string to float" in kept["error"]
        [line] = lines(logs, "call store refused the start of call")
        assert result.call_sid in line and str(failed) in line
        assert m(metrics, "offhook_store_failed_writes_total") == 1 and m(metrics, OUTBOX_GAUGE) == 0
        assert not lines(logs, "call store unavailable")  # not mistaken for an outage: no retry
    run(main)


def test_the_stores_tell_an_outage_from_a_bug_and_mask_the_password(tmp_path):
    pg = PostgresStore(f"postgresql://offhook:{SECRET}@db.example/calls")
    assert pg.unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not pg.unavailable(psycopg.errors.UndefinedColumn("column x does not exist"))
    assert not pg.unavailable(ValueError("could not convert string to float"))
    text = pg.redact(f"cannot connect to postgresql://offhook:{SECRET}@db.example/calls (password {SECRET})")
    assert SECRET not in text and "postgresql://offhook:***@db.example/calls" in text

    async def main():
        cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path))
        async with open_store(cfg) as store:
            with pytest.raises(sqlite3.Error) as bad_sql:
                await store._run(store._execute, "SELECT nope FROM calls")
            assert not store.unavailable(bad_sql.value)
            assert store.unavailable(OSError(28, "No space left on device"))
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
            assert store.unavailable(locked)
    trio.run(main)


def test_a_second_server_with_the_same_id_gets_its_own_outbox(tmp_path, logs):
    first, second = Outbox(tmp_path, "host-w0"), Outbox(tmp_path, "host-w0")
    first.open()
    second.open()
    try:
        assert first.dir.name == "host-w0" and second.dir.name == f"host-w0.{os.getpid()}"
        second.add(Write.of_record("start", CallRecord("CAx")))
        assert outbox_files(second.dir) == ["000000000001-start-CAx.json"] and outbox_files(first.dir) == []
        assert len(lines(logs, "another live server uses the outbox")) == 1
    finally:
        first.close()
        second.close()
    third = Outbox(tmp_path, "host-w0")  # the next start adopts what the second one left
    third.open()
    assert [w.call_sid for w in third.pending] == ["CAx"] and not (tmp_path / f"host-w0.{os.getpid()}").exists()
    third.close()


def test_a_write_the_disk_cannot_take_waits_in_memory_and_is_said_lost_if_never_delivered(tmp_path, logs):
    box = Outbox(tmp_path, "host")
    box.open()
    (box.dir / "000000000001-start-CAfull.json.tmp").symlink_to("/dev/full")  # its write fails: ENOSPC
    box.add(Write.of_record("start", CallRecord("CAfull")))
    box.add(Write.of_record("start", CallRecord("CAnext")))
    assert [w.call_sid for w in box.pending] == ["CAfull", "CAnext"] and box.in_memory == 1
    assert outbox_files(box.dir) == ["000000000002-start-CAnext.json"]
    [line] = lines(logs, "cannot keep the start of call CAfull on disk")
    assert "No space left on device" in line
    box.done(box.pending[0])
    assert box.in_memory == 0
    box.close()
