"""Runs one load step: a server process, the load generator in another, the server sampled from outside.

The server's CPU time and RSS come from /proc (library-agnostic, nothing added to its hot path);
event-loop lag and frame counters from its own SIGUSR1 snapshots, taken when the generator
announces the start and end of its measurement window.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
LATE_LIMIT_MS = 10.0


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class BenchError(RuntimeError):
    pass


def cores() -> tuple[set[int], set[int]] | None:
    """(the server's core, everything else's cores) when there are at least two: "calls per core"
    is then the server alone on one core, and the callers and emulators cannot steal its time."""
    avail = sorted(os.sched_getaffinity(0))
    if len(avail) < 2:
        return None
    return {avail[0]}, set(avail[1:])


def core_split() -> dict | None:
    """The split, for the results."""
    split = cores()
    return None if split is None else {"server": sorted(split[0]), "callers_and_emulators": sorted(split[1])}


def pin(pid: int, which: int) -> None:
    split = cores()
    if split is not None:
        os.sched_setaffinity(pid, split[which])


class ServerProc:
    """A server process that prints `READY <port>` and answers SIGUSR1 with a stats snapshot."""

    def __init__(self, cmd: list[str], env: dict | None = None, ready_timeout: float = 60.0):
        self.stats = tempfile.NamedTemporaryFile(prefix="offhook-bench-", suffix=".json", delete=False).name
        self.proc = subprocess.Popen([*cmd, "--stats", self.stats], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        pin(self.proc.pid, 0)
        deadline = time.monotonic() + ready_timeout
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise BenchError(f"server exited before it was ready: {' '.join(cmd)} (rc {self.proc.wait()})")
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                break
            if line.startswith("ERROR "):
                raise BenchError(line[6:].strip())
        if self.port is None:
            self.stop()
            raise BenchError("server not ready in time")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def snapshot(self) -> dict:
        self.proc.send_signal(signal.SIGUSR1)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise BenchError("server exited during the run")
            if line.startswith("SNAPSHOT"):
                with open(self.stats) as f:
                    return json.load(f)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self.stats)
        except OSError:
            pass


@dataclass
class Step:
    calls: int
    seconds: float = 5.0
    warmup: float = 1.5
    mode: str = "echo"


def run_step(start_server, step: Step, *, path: str = "/twilio/media", slots: int = 10,
             emulators: bool = False) -> dict:
    """Start a server (`start_server(spec)`, spec = the emulators' addresses or None), drive
    `step.calls` calls at it from a load-generator process, stop it; returns the merged measurements.
    With `emulators`, the provider emulators run in a third process, started first."""
    out = tempfile.NamedTemporaryFile(prefix="offhook-load-", suffix=".json", delete=False).name
    cmd = [sys.executable, "-m", "offhook.sim.load", "--calls", str(step.calls),
           "--seconds", str(step.seconds), "--warmup", str(step.warmup), "--mode", step.mode,
           "--slots", str(slots), "--json", out, "--announce"]
    emu = None
    if emulators:
        emu = subprocess.Popen([sys.executable, "-m", "offhook.bench.emuproc"], stdout=subprocess.PIPE, text=True)
        pin(emu.pid, 1)
        line = emu.stdout.readline()
        if not line.startswith("EMULATORS "):
            emu.kill()
            raise BenchError(f"the emulators did not start: {line.strip()!r}")
        spec = json.loads(line[len("EMULATORS "):])
        threading.Thread(target=emu.stdout.read, daemon=True).start()  # never let its pipe fill up
        cmd += ["--board-url", spec["board_url"]]
    try:
        server = start_server(spec if emulators else None)
    except BaseException:
        if emu is not None:
            emu.kill()
        raise
    gen = subprocess.Popen([*cmd, "--url", f"ws://127.0.0.1:{server.port}{path}"], stdout=subprocess.PIPE, text=True)
    pin(gen.pid, 1)
    try:
        res = _measure(server, gen, out, emu)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        server.stop()
        if emu is not None:
            emu.terminate()
            emu.wait(10)
    return res


def _measure(server: ServerProc, gen: subprocess.Popen, out: str, emu: subprocess.Popen | None) -> dict:
    rss_idle = proc_rss(server.pid)
    base = server.snapshot()
    marks: dict[str, tuple[float, float, int]] = {}
    window: dict = {}
    for line in gen.stdout:
        if line.startswith("WINDOW "):
            edge = line.split()[1]
            marks[edge] = (time.monotonic(), proc_cpu(server.pid), proc_rss(server.pid))
            if emu is not None:
                marks["emu_" + edge] = (time.monotonic(), proc_cpu(emu.pid), 0)
            if edge == "start":
                server.snapshot()          # lag samples restart here
            else:
                window = server.snapshot()
    rc = gen.wait()
    try:
        with open(out) as f:
            res = json.load(f)
    except (OSError, ValueError):
        raise BenchError(f"load generator failed (rc {rc})") from None
    finally:
        os.unlink(out)
    time.sleep(0.3)  # let the server see the hang-ups before the final count
    final = server.snapshot()
    if "start" not in marks or "end" not in marks:
        raise BenchError("the load generator never reached its measurement window")
    (w0, c0, _), (w1, c1, rss) = marks["start"], marks["end"]
    n = max(1, res["connected"])
    util = (c1 - c0) / (w1 - w0)
    lost_in = res["frames_sent"] - (final["frames_in"] - base["frames_in"])
    lost_out = res["lost_replies"] if res["mode"] == "echo" else None
    lost = max(0, lost_in) + (lost_out or 0) + res["dropped_by_server"] + res["n_connect_failures"]
    # the criterion: echo, the round trip of each frame; the full path, the server's outbound frame
    # lateness (tick deadline -> frames written), which the agent's own pauses do not inflate (at the
    # caller a pause in the speech cannot be told from a late frame; the caller-side figure is kept)
    tick = window.get("tick_lateness_ms")
    p99 = res["lateness_ms"]["p99"] if res["mode"] == "echo" or not tick else tick["p99"]
    res.update({
        "server_cpu_util": util, "server_cpu_per_call": util / n,
        "server_rss_mb": rss / 2**20, "server_rss_idle_mb": rss_idle / 2**20,
        "rss_per_call_kb": max(0, rss - rss_idle) / n / 1024,
        "lag_ms": window.get("lag_ms"), "outbound_lateness_ms": tick if res["mode"] == "call" else res["lateness_ms"],
        "lost_in": lost_in, "lost_out": lost_out, "lost": lost,
        "server_window": {k: v for k, v in window.items() if k not in ("lag_ms", "tick_lateness_ms")},
        # the full path's lateness probe only sees pacers back within their tick, so an overloaded
        # loop must fail on its lag as well
        "passed": p99 is not None and p99 <= LATE_LIMIT_MS and lost == 0
        and (res["mode"] == "echo" or ((window.get("lag_ms") or {}).get("p99") or 0) <= LATE_LIMIT_MS),
        "loadavg": os.getloadavg()[0],
        "emulators_cpu_window": ((marks["emu_end"][1] - marks["emu_start"][1]) / (w1 - w0)) if emu is not None else None,
    })
    return res


def step_up_many(starters: dict, steps: list[int], *, seconds: float, mode: str, log=print, retries: int = 1,
                 refine: int = 2, warmup: float = 1.5, per: dict[str, dict] | None = None, **kw) -> dict[str, dict]:
    """Steps N up until p99 lateness > 10 ms or frames are lost, then bisects `refine` times between
    the last passing and the first failing N. Several server kinds are stepped in turn at each N, so
    that whatever else loads this shared machine at the time hits them alike. A fresh server per run
    (`start_server(spec)` makes it), so each run's RSS and counters are its own. A step that fails is
    retried `retries` times and counts as failed only if every attempt fails (one 50 ms stall
    elsewhere on the box sinks a 5 s p99). `per[name]` overrides `mode` and run_step's keywords for
    one kind (the load benchmark steps its echo floor and its full path in turn)."""
    state = {name: {"rows": [], "good": 0, "bad": None} for name in starters}

    def attempt(name: str, n: int) -> bool:
        own = {**kw, **(per or {}).get(name, {})}
        kind_mode = own.pop("mode", mode)
        for i in range(retries + 1):
            row = run_step(starters[name], Step(n, seconds=seconds, warmup=warmup, mode=kind_mode), **own)
            row["attempt"] = i + 1
            state[name]["rows"].append(row)
            log(f"  {name if len(starters) > 1 else ''} N={n:4d}  p99 late {row['outbound_lateness_ms']['p99'] or 0:7.2f} ms  "
                f"lost {row['lost']:5d}  server CPU {row['server_cpu_util'] * 100:5.1f}% "
                f"({row['server_cpu_per_call'] * 100:.3f}%/call)  lag p99 {(row['lag_ms'] or {}).get('p99') or 0:6.2f} ms  "
                f"gen CPU {row['generator_cpu_window'] * 100:4.0f}%  {'ok' if row['passed'] else 'FAIL'}", flush=True)
            if row["passed"]:
                return True
        return False

    for n in steps:
        live = [name for name, st in state.items() if st["bad"] is None]
        if not live:
            break
        for name in live:
            if attempt(name, n):
                state[name]["good"] = n
            else:
                state[name]["bad"] = n
    for _ in range(refine):
        for name, st in state.items():
            if st["bad"] is None or st["bad"] - st["good"] < 2:
                continue
            mid = (st["good"] + st["bad"]) // 2
            if attempt(name, mid):
                st["good"] = mid
            else:
                st["bad"] = mid
    out = {}
    for name, st in state.items():
        best = next((r for r in reversed(st["rows"]) if r["passed"] and r["calls"] == st["good"]), None)
        out[name] = {"steps": st["rows"], "max_calls": st["good"], "first_failing": st["bad"], "at_max": best,
                     "cpu_per_call": best["server_cpu_per_call"] if best else None,
                     "calls_per_core_by_cpu": 1 / best["server_cpu_per_call"] if best and best["server_cpu_per_call"]
                     else None}
    return out
