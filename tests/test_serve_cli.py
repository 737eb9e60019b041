"""`offhook serve` as an operator runs it: start-up errors, the insecure-mode warning, and
`--workers 2` on loopback (both workers take calls; SIGTERM drains without cutting a call; exit 0).

The subprocess tests run on the real clock (the server is another process); they wait on what the
processes print and on the calls themselves, never on fixed sleeps."""
import os
import signal
import socket
import sqlite3
import subprocess
import sys

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from offhook.cli import main
from pg_server import pg_url, store_url  # noqa: F401 (fixtures)
from offhook.sim.caller import SimCaller
from offhook.sim.scenario import from_dict
from offhook.twilio.protocol import InboundBuilder, build_connected, build_start

FRAME = b"\x7e" * 160


# ---------------------------------------------------------------- start-up errors (in-process)
@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("TWILIO_AUTH_TOKEN", "OFFHOOK_VALIDATE_SIGNATURES", "OFFHOOK_MODE", "OFFHOOK_PORT",
                "OFFHOOK_WORKERS", "OFFHOOK_PUBLIC_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OFFHOOK_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize("toml,message", [
    ("port = 'eighty'", "port must be an integer"),
    ("prot = 8080", "unknown setting 'prot'"),
    ("[offhook\n", "not valid TOML"),
    ("drain_timeout_s = -1", "drain_timeout_s must be 0..3600"),
    ("workers = 0", "workers must be 1..256"),
])
def test_garbage_config_is_one_line_and_exit_2(tmp_path, capsys, clean_env, toml, message):
    f = tmp_path / "offhook.toml"
    f.write_text(toml)
    assert main(["serve", "--config", str(f), "--insecure-dev"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("offhook serve: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_token_is_refused_unless_insecure(capsys, clean_env):
    assert main(["serve", "--mode", "echo"]) == 2
    assert "TWILIO_AUTH_TOKEN is required" in capsys.readouterr().err


def test_agent_mode_without_the_agent_modules_says_so(monkeypatch, capsys, clean_env):
    monkeypatch.setitem(sys.modules, "offhook.providers.factory", None)  # as if not installed
    assert main(["serve", "--mode", "agent", "--insecure-dev", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "agent mode needs offhook.providers.factory" in err and "--mode echo" in err
    assert "Traceback" not in err


def test_port_in_use_is_a_clear_error(capsys, clean_env, monkeypatch):
    monkeypatch.setenv("OFFHOOK_VALIDATE_SIGNATURES", "0")  # the env form of --insecure-dev warns too
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--mode", "echo", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "WARNING: Twilio signature validation is OFF" in err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


# ---------------------------------------------------------------- real processes
class Server:
    """`offhook serve ...` in a subprocess; lines of its stdout/stderr as they come."""

    def __init__(self, proc: trio.Process):
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.eof = 0  # pipes read to the end
        self._changed = trio.Event()

    def _pulse(self):
        self._changed.set()
        self._changed = trio.Event()

    async def pump(self, stream, into):
        buf = b""
        async for chunk in stream:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            into.extend(line.decode() for line in lines)
            self._pulse()
        self.eof += 1
        self._pulse()

    async def wait_for(self, text: str, where: str = "out", timeout: float = 30) -> str:
        with trio.fail_after(timeout):
            while True:
                for line in getattr(self, where):
                    if text in line:
                        return line
                if self.eof == 2:  # the process is gone and everything it printed has been read
                    raise AssertionError(f"server exited ({self.proc.returncode}) before {text!r}:\n"
                                         + "\n".join(self.out + self.err[-20:]))
                await self._changed.wait()


async def start_server(nursery, args, tmp_path, **env) -> Server:
    env = {**os.environ, "OFFHOOK_DATA_DIR": str(tmp_path / "data"), **env}
    env.pop("TWILIO_AUTH_TOKEN", None)
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "offhook.cli", "serve", *args],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    server = Server(proc)
    nursery.start_soon(server.pump, proc.stdout, server.out)
    nursery.start_soon(server.pump, proc.stderr, server.err)
    return server


def test_insecure_dev_warns_loudly_and_sigterm_exits_0(tmp_path):
    async def main_():
        async with trio.open_nursery() as n:
            s = await start_server(n, ["--mode", "echo", "--insecure-dev", "--port", "0"], tmp_path)
            line = await s.wait_for("listening on http://127.0.0.1:")
            await s.wait_for("WARNING: Twilio signature validation is OFF", where="err")
            base = line.split("listening on ")[1].split()[0]
            async with httpx.AsyncClient() as http:
                assert (await http.get(base + "/healthz")).json()["status"] == "ok"
            s.proc.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                assert await s.proc.wait() == 0
    trio.run(main_)


async def short_call(base_ws: str, sid: str) -> None:
    b = InboundBuilder("MZ" + sid)
    async with open_websocket_url(base_ws + "/twilio/media") as ws:
        await ws.send_message(build_connected())
        await ws.send_message(build_start(1, "MZ" + sid, sid, "AC1", {}))
        for i in range(3):
            await ws.send_message(b.media(2 + i, i + 1, 20 * i, FRAME))
        await ws.send_message(b.stop(9, "AC1", sid))
        with trio.fail_after(10):  # the server closes the socket after stop
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed:
                pass


async def health_of_each_worker(base: str, workers: int) -> dict[str, dict]:
    """/healthz over fresh connections until every worker has answered (the kernel picks the worker)."""
    seen: dict[str, dict] = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for _ in range(400):
            r = await http.get(base + "/healthz")
            seen[r.json()["worker"]] = r.json()
            if len(seen) == workers:
                break
    return seen


TALK = {"steps": [{"wait_for_agent": {"quiet": 0.3, "timeout": 10}}, {"say": "one thing I would like to say"},
                  {"wait_for_agent": {"quiet": 0.4, "timeout": 10}}, {"hangup": True}]}


def stored_calls(tmp_path, database_url: str) -> list[tuple]:
    query = "SELECT call_sid, server_id, end_reason, complete FROM calls"
    if not database_url:
        with sqlite3.connect(tmp_path / "data" / "calls.sqlite3") as db:
            return db.execute(query).fetchall()
    import psycopg
    with psycopg.connect(database_url) as db:
        return db.execute(query).fetchall()


def test_two_workers_share_the_port_and_sigterm_drains_without_cutting_calls(tmp_path, store_url):
    async def main_():
        async with trio.open_nursery() as n:
            s = await start_server(n, ["--workers", "2", "--mode", "echo", "--insecure-dev", "--port", "0"],
                                   tmp_path, OFFHOOK_DRAIN_TIMEOUT_S="60", DATABASE_URL=store_url)
            line = await s.wait_for("all 2 workers listening on")
            base = line.split("listening on ")[1].strip()
            base_ws = base.replace("http://", "ws://")

            # many calls, each on its own connection: the kernel spreads them over both processes
            async with trio.open_nursery() as calls:
                for i in range(24):
                    calls.start_soon(short_call, base_ws, f"CAshort{i:02d}")
            health = await health_of_each_worker(base, 2)
            assert len(health) == 2 and len({h["pid"] for h in health.values()}) == 2
            assert sum(h["calls_total"] for h in health.values()) == 24
            assert all(h["calls_total"] > 0 for h in health.values()), health

            # calls in progress when SIGTERM comes run to their end
            results, talking = [], trio.Event()
            said = 0

            def on_event(t, kind, detail):
                nonlocal said
                if kind == "say":
                    said += 1
                    if said == 4:
                        talking.set()

            async def talk(i):
                results.append(await SimCaller(base_ws + "/twilio/media", from_dict(TALK), seed=100 + i,
                                               on_event=on_event).run())
            async with trio.open_nursery() as calls:
                for i in range(4):
                    calls.start_soon(talk, i)
                with trio.fail_after(20):
                    await talking.wait()
                s.proc.send_signal(signal.SIGTERM)
                await s.wait_for("SIGTERM: draining 2 workers", where="err")
                async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as http:
                    h = await http.get(base + "/healthz")
                    assert (h.status_code, h.json()["status"]) == (503, "draining")
                    new = await http.post(base + "/twilio/voice", data={"CallSid": "CAlate"})
                    assert new.status_code == 200 and "<Record" in new.text and "<Stream" not in new.text
            assert len(results) == 4
            for r in results:
                assert r.ended_by == "caller" and not r.error, (r.ended_by, r.error)
                assert r.agent_heard_between(r.lines[0].end, r.duration) > 1.0  # the echo played in full
            with trio.fail_after(30):
                assert await s.proc.wait() == 0
            assert sum("offhook: stopped" in line for line in s.out) == 2
            return {r.call_sid for r in results}

    talked = trio.run(main_)
    # both processes wrote the one call store (SQLite file / PostgreSQL): every call once, by its worker
    rows = stored_calls(tmp_path, store_url)
    assert len(rows) == 28 and len({r[0] for r in rows}) == 28
    assert {r[1] for r in rows} == {f"{socket.gethostname()}-w0", f"{socket.gethostname()}-w1"}
    assert all(r[3] for r in rows) and {r[2] for r in rows} == {"caller_hangup"}
    assert talked <= {r[0] for r in rows}


def test_agent_mode_answers_with_the_offline_providers(tmp_path):
    """The agent branch wired for real: providers from the factory (no keys: PocketSphinx, eSpeak,
    the scripted receptionist), the agent's handler, the observer storing the call."""
    greeting_only = {"steps": [{"wait_for_agent": {"quiet": 0.6, "timeout": 30}}, {"hangup": True}]}

    async def main_():
        async with trio.open_nursery() as n:
            s = await start_server(n, ["--mode", "agent", "--insecure-dev", "--port", "0"], tmp_path,
                                   DEEPGRAM_API_KEY="", ANTHROPIC_API_KEY="", ELEVENLABS_API_KEY="")
            line = await s.wait_for("listening on http://127.0.0.1:", timeout=60)
            base_ws = line.split("listening on ")[1].split()[0].replace("http://", "ws://")
            res = await SimCaller(base_ws + "/twilio/media", from_dict(greeting_only)).run()
            s.proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                assert await s.proc.wait() == 0
            return res

    res = trio.run(main_)
    assert res.ended_by == "caller" and not res.error
    assert res.agent_audio_seconds() > 1.0  # the greeting, spoken by eSpeak
    (row,) = stored_calls(tmp_path, "")
    assert row[0] == res.call_sid and row[2] == "caller_hangup" and row[3]


def test_workers_refusing_to_start_stop_the_supervisor_with_their_reason(tmp_path):
    async def main_():
        async with trio.open_nursery() as n:
            s = await start_server(n, ["--workers", "2", "--mode", "agent", "--insecure-dev", "--port", "0"],
                                   tmp_path, OFFHOOK_PROFILE=str(tmp_path / "no-such-profile.toml"))
            with trio.fail_after(60):
                rc = await s.proc.wait()
            await s.wait_for("business profile not found", where="err")
            return rc, s
    rc, s = trio.run(main_)
    assert rc == 2
    assert not any("restarting" in line for line in s.err) and not any("Traceback" in line for line in s.err)


def test_a_worker_that_dies_is_restarted(tmp_path):
    async def main_():
        async with trio.open_nursery() as n:
            s = await start_server(n, ["--workers", "2", "--mode", "echo", "--insecure-dev", "--port", "0"],
                                   tmp_path)
            base = (await s.wait_for("all 2 workers listening on")).split("listening on ")[1].strip()
            health = await health_of_each_worker(base, 2)
            victim = next(h for h in health.values() if h["worker"].endswith("-w1"))
            os.kill(victim["pid"], signal.SIGKILL)
            await s.wait_for("worker 1 exited on its own", where="err")
            with trio.fail_after(30):
                while sum("offhook: worker 1 listening" in line for line in s.out) < 2:
                    await s._changed.wait()
            health = await health_of_each_worker(base, 2)
            assert victim["pid"] not in {h["pid"] for h in health.values()} and len(health) == 2
            s.proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                assert await s.proc.wait() == 0
    trio.run(main_)
