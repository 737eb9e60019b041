"""Many servers: `offhook serve --workers 2` (two worker processes sharing one loopback port via
SO_REUSEPORT) recording into one shared PostgreSQL; 40 simulated calls spread across the workers, and
a SIGTERM while they are all mid-call. Every call must finish as its caller scripted it (the drain
cuts none), and be recorded exactly once, complete, by the worker that took it.

The server is a separate process tree, so this runs in real time (a few seconds of calls); the
simulated callers are the real Twilio-protocol simulator over real sockets.
"""
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
import trio
from trio_websocket import ConnectionClosed

from pg_server import SKIP_REASON, fresh_database, pg_binaries, pg_url  # noqa: F401  (fixture)
from offhook.observe.record import EndReason
from offhook.observe.store import open_store
from offhook.server.config import Config
from offhook.sim.caller import SimCaller
from offhook.sim.scenario import from_dict

CALLS = 40
# greeting beep, one line, its echo, hang up: long enough that SIGTERM lands while every call is on
SCRIPT = {"steps": [{"wait_for_agent": {"quiet": 0.3, "timeout": 10}}, {"say": "hello, I'd like to book a table"},
                    {"wait_for_agent": {"quiet": 0.4, "timeout": 10}}, {"hangup": True}]}


class Workers:
    """`offhook serve --workers 2` as a process group; stdout lines collected by a thread."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "offhook.cli", "serve", "--workers", "2", "--port", "0", "--mode", "echo",
             "--insecure-dev", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.lines: list[str] = []
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if sum("listening on" in l for l in self.lines) == 2:
                self.listening.set()

    @property
    def base(self) -> str:
        line = next(l for l in self.lines if "listening on" in l)
        return line.split("listening on ")[1].split()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def workers(tmp_path, pg_url):  # noqa: F811
    db = fresh_database(pg_url)
    env = {**os.environ, "DATABASE_URL": db, "OFFHOOK_DATA_DIR": str(tmp_path), "OFFHOOK_DRAIN_TIMEOUT_S": "30",
           "OFFHOOK_RECORDING_SAMPLE_RATE": "0"}
    w = Workers(env)
    try:
        assert w.listening.wait(60), "workers did not start:\n" + "\n".join(w.lines)
        w.db = db
        yield w
    finally:
        w.stop()


def test_two_workers_share_the_calls_and_the_store_and_drain_on_sigterm(workers):
    media = workers.base.replace("http://", "ws://") + "/twilio/media"
    results = []
    hung_up_at = []

    async def main():
        all_on = trio.Event()
        connected = 0

        def on_event(t, kind, detail):
            nonlocal connected
            if kind == "say":  # the greeting has played: this call is up on a worker
                connected += 1
                if connected == CALLS:
                    all_on.set()
            elif kind == "hangup":
                hung_up_at.append(trio.current_time())

        async def one(i):
            caller = SimCaller(media, from_dict(SCRIPT), seed=1000 + i, on_event=on_event)
            try:
                results.append(await caller.run())
            except* ConnectionClosed:
                # Simulator race (sim/caller.py): its 20 ms ticker may send once more after the caller's
                # `stop`, when the server has already closed the socket. Tolerated only after the hang-up.
                assert caller.result.timeline[-1][1] == "hangup", caller.result.timeline[-3:]
                results.append(caller.result)

        async with trio.open_nursery() as n:
            for i in range(CALLS):
                n.start_soon(one, i)
            with trio.fail_after(30):
                await all_on.wait()
            workers.proc.send_signal(signal.SIGTERM)  # the parent forwards it: both workers drain
            sent_at = trio.current_time()
        return sent_at

    sigterm_at = trio.run(main)
    # the drain let every call finish as scripted: greeting, the caller's line, its echo, caller hangs up
    assert len(results) == CALLS
    for r in results:
        assert r.error == "" and r.ended_by == "caller", (r.call_sid, r.error, r.ended_by)
        line = r.lines[0]
        assert line.first_agent_audio is not None, f"{r.call_sid}: the echo of its line never came"
        assert r.agent_heard_between(line.end, r.duration) >= 1.0  # the echo played back in full
    assert workers.proc.wait(30) == 0, "\n".join(workers.lines)  # drained cleanly, then exited
    # SIGTERM reached both workers while all 40 calls were on, and no call ended before its script did
    draining = [l for l in workers.lines if "SIGTERM: draining" in l and "offhook.server:" in l]
    assert len(draining) >= 2, "\n".join(workers.lines)
    assert len(hung_up_at) == CALLS and min(hung_up_at) > sigterm_at

    async def stored():
        config = Config.load(env={}, database_url=workers.db, validate_signatures=False)
        async with open_store(config, create=False) as store:
            return await store.calls_between(0.0)

    records = trio.run(stored)
    sids = Counter(rec.call_sid for rec in records)
    assert sorted(sids) == sorted(r.call_sid for r in results)  # every call, and nothing else
    assert set(sids.values()) == {1}                            # each exactly once
    for rec in records:
        assert rec.complete and rec.end_reason == EndReason.CALLER_HANGUP, (rec.call_sid, rec.end_reason)
    by_worker = Counter(rec.server_id.rsplit("-", 1)[-1] for rec in records)
    assert set(by_worker) == {"w0", "w1"} and sum(by_worker.values()) == CALLS, by_worker
