"""Multi-call load generator: N simulated Twilio media streams from one process, one ticker.

Meant to run in its own process (the server being measured must not share its CPU), so it is built
to cost far less per frame than any server: one thread, non-blocking sockets on one epoll selector,
the sans-IO client framing of `offhook.sim.rawws`, and one ticker that sends every call's 20 ms frame.
Calls are spread over `slots` phases of the 20 ms period (real calls do not start in lock-step), so
the server sees a steady stream rather than N messages at once.

Two modes:
- `echo`: every frame is realistic Twilio `media` JSON; the server answers each with one `media`
  message (a bare echo server). Per-frame round trip = reply arrival - send time, matched in order.
- `call`: each caller talks and listens continuously: it says a line (speech-like audio, its words
  written to the ScriptBoard for the emulated STT), then sends line noise while it listens to the
  agent's reply through a model of Twilio's playout buffer (marks echoed when played, `clear`
  honoured), then says the next line once the agent has gone quiet.

Outbound lateness (both modes) is how much later than its due time a server frame arrived. Echo:
due when the frame it answers was sent (lateness = round trip). Call: within one agent utterance the
first `lead` frames go out at once and then one per 20 ms tick; paced frame i is due by its tick,
first arrival + (i - lead + 1) x 20 ms (one tick of allowance: the server's ticker phase is
arbitrary), and a gap in the audio (the agent's audio arriving slower than real time) makes every
frame after it late. Only frames arriving inside the measurement window (after the warm-up) count.

The timing source is a parameter (`clock`), real time by default: the generator measures a real
server over real sockets, and is run by the benchmarks, not by timed tests.
"""
from __future__ import annotations

import argparse
import binascii
import json
import os
import resource
import selectors
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from offhook.sim.board import BOARD, ScriptBoard
from offhook.sim.playout import Playout
from offhook.sim.rawws import FrameReader, WSError, check_handshake_response, close_frame, handshake_request, text_frame
from offhook.sim.voice import comfort_noise, synthetic_voice
from offhook.twilio.protocol import InboundBuilder, ProtocolError, build_connected, build_start, parse_outbound

TICK = 0.020
LINES = ("hi I would like to book a table for tomorrow", "what time do you open on saturday",
         "my number is five five five one two three four", "yes that is right thank you",
         "do you have parking nearby", "can I bring my dog")


def percentiles(values: list[float], ps=(50, 95, 99)) -> dict[str, float | None]:
    """{"p50": .., "p95": .., "p99": .., "max": ..} in the values' unit (nearest-rank)."""
    if not values:
        return {**{f"p{p}": None for p in ps}, "max": None}
    s = sorted(values)
    out = {f"p{p}": s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))] for p in ps}
    out["max"] = s[-1]
    return out


@dataclass
class LoadConfig:
    url: str                      # ws://host:port/twilio/media
    calls: int
    seconds: float = 5.0          # measurement window
    warmup: float = 1.0           # after every call has started, before measuring
    mode: str = "echo"            # "echo" | "call"
    slots: int = 10               # phases of the 20 ms period the calls are spread over
    lead_frames: int = 4          # the server pacer's lead (call mode: frames sent at once per utterance)
    listen_timeout: float = 10.0  # call mode: say the next line after this long without an answer
    quiet: float = 1.0            # call mode: agent silence that ends its reply (sentence pauses are shorter)
    grace: float = 0.5            # after the window, time for the last replies to arrive
    connect_timeout: float = 10.0
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Call:
    """One simulated media stream (state only; the generator drives the socket)."""

    __slots__ = ("idx", "sock", "reader", "builder", "call_sid", "slot", "seq", "k", "out", "sent_at",
                 "playout", "speech", "state", "listen_since", "last_agent", "line_no", "run", "runs_done",
                 "frames_sent", "frames_received", "clears", "marks_echoed", "closed", "lines_said")

    def __init__(self, idx: int, sock: socket.socket, slot: int):
        self.idx = idx
        self.sock = sock
        self.reader = FrameReader()
        self.call_sid = f"CA{idx:08x}{os.getpid():08x}{'0' * 16}"
        self.builder = InboundBuilder(f"MZ{idx:08x}{os.getpid():08x}{'0' * 16}")
        self.slot = slot
        self.seq = 0
        self.k = 0                 # frames sent (= audio ticks)
        self.out = bytearray()     # bytes the socket did not take yet
        self.sent_at: deque[tuple[float, bool]] = deque()  # echo: (send time, in window)
        self.playout = Playout()
        self.speech: deque[bytes] = deque()
        self.state = "listen"
        self.listen_since = 0.0
        self.last_agent = -1.0
        self.line_no = idx
        self.run: list[tuple[float, bool]] = []  # call mode: arrivals of the current agent utterance
        self.runs_done = 0
        self.frames_sent = self.frames_received = self.clears = self.marks_echoed = self.lines_said = 0
        self.closed = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class LoadGenerator:
    def __init__(self, config: LoadConfig, *, clock: Callable[[], float] = time.monotonic,
                 board: ScriptBoard = BOARD, on_window: Callable[[str], None] | None = None):
        if config.mode not in ("echo", "call"):
            raise ValueError(f"mode must be 'echo' or 'call', got {config.mode!r}")
        self.cfg = config
        self.clock = clock
        self.board = board
        u = urlsplit(config.url)
        if u.scheme != "ws":
            raise ValueError(f"the load generator speaks plain ws:// on loopback, got {config.url!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.sel = selectors.DefaultSelector()
        self.calls: list[_Call] = []
        self.noise = comfort_noise()
        self.voices = [[a[i : i + 160].ljust(160, b"\xff") for i in range(0, len(a), 160)]
                       for a in (synthetic_voice(t) for t in LINES)]
        self.rtts: list[float] = []
        self.lateness: list[float] = []
        self.ticker_late: list[float] = []
        self.connect_failures: list[str] = []
        self.protocol_errors = 0
        self.window = (float("inf"), float("inf"))
        self.send_stalls = 0
        self.on_window = on_window or (lambda edge: None)  # "start" / "end" of the measurement window

    # ---------------------------------------------------------------- connecting
    def _connect(self, idx: int) -> _Call:
        sock = socket.create_connection((self.host, self.port), timeout=self.cfg.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req, accept = handshake_request(f"{self.host}:{self.port}", self.path, self.cfg.headers)
        sock.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise WSError("server closed during the handshake")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        check_handshake_response(head, accept)
        sock.setblocking(False)
        c = _Call(idx, sock, idx % self.cfg.slots)
        if rest:
            self._on_bytes(c, rest, self.clock())
        self._send(c, build_connected())
        self._send(c, build_start(c.next_seq(), c.builder.sid, c.call_sid, "AC" + "0" * 32,
                                  {"from": "+15550000000", "to": "+15559870000", "callSid": c.call_sid}))
        self.sel.register(sock, selectors.EVENT_READ, c)
        return c

    # ---------------------------------------------------------------- socket IO
    def _send(self, c: _Call, text: str) -> None:
        data = text_frame(text)
        if c.out:
            c.out += data
            self._flush(c)
            return
        try:
            n = c.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            c.closed = True
            return
        if n < len(data):
            self.send_stalls += 1
            c.out += data[n:]

    def _flush(self, c: _Call) -> None:
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError:
            c.closed = True
            return
        del c.out[:n]

    def _readable(self, c: _Call, now: float) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return
        self._on_bytes(c, data, now)

    def _drop(self, c: _Call) -> None:
        if not c.closed:
            c.closed = True
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass

    def _on_bytes(self, c: _Call, data: bytes, now: float) -> None:
        try:
            msgs = c.reader.feed(data)
        except WSError:
            self.protocol_errors += 1
            self._drop(c)
            return
        for pong in c.reader.to_send:
            c.sock.send(pong)
        c.reader.to_send.clear()
        for kind, value in msgs:
            if kind == "close":
                self._drop(c)
                return
            try:
                msg = parse_outbound(value)
            except ProtocolError:
                self.protocol_errors += 1
                continue
            if msg.event == "media":
                self._on_media(c, msg.media.payload, now)
            elif msg.event == "mark":
                for name in c.playout.on_mark(msg.mark.name):
                    self._echo_mark(c, name)
            elif msg.event == "clear":
                c.clears += 1
                self._end_run(c)
                for name in c.playout.on_clear(c.k):
                    self._echo_mark(c, name)

    def _echo_mark(self, c: _Call, name: str) -> None:
        c.marks_echoed += 1
        self._send(c, c.builder.mark(c.next_seq(), name))

    def _on_media(self, c: _Call, payload: str, now: float) -> None:
        c.frames_received += 1
        lo, hi = self.window
        if self.cfg.mode == "echo":
            if c.sent_at:
                t, counted = c.sent_at.popleft()
                if counted:
                    self.rtts.append(now - t)
            return
        try:
            frame = binascii.a2b_base64(payload)
        except binascii.Error:
            self.protocol_errors += 1
            return
        c.playout.on_media(frame)
        c.last_agent = now
        c.run.append((now, lo <= now <= hi))

    def _end_run(self, c: _Call) -> None:
        """Score one agent utterance's paced frames: frame i (after the first `lead`, which the pacer
        sends at once) is due by the tick it belongs to, first arrival + (i - lead + 1) x 20 ms; a
        tick of allowance because the pacer's ticker phase is arbitrary."""
        if c.run:
            t0, lead = c.run[0][0], self.cfg.lead_frames
            late = [max(0.0, t - (t0 + (i - lead + 1) * TICK)) for i, (t, counted) in enumerate(c.run)
                    if i >= lead and counted]
            self.lateness.extend(late)
            c.runs_done += len(c.run) > lead
        c.run = []

    # ---------------------------------------------------------------- the 20 ms tick of one call
    def _tick(self, c: _Call, now: float) -> None:
        lo, hi = self.window
        if self.cfg.mode == "echo":
            frame = self.noise[c.k % len(self.noise)]
            c.sent_at.append((now, lo <= now <= hi))
        else:
            frame = self._call_audio(c, now)
        self._send(c, c.builder.media(c.next_seq(), c.k + 1, c.k * 20, frame))
        c.frames_sent += 1
        if self.cfg.mode == "call":
            _, echoes = c.playout.tick(c.k)
            for name in echoes:
                self._echo_mark(c, name)
        c.k += 1

    def _call_audio(self, c: _Call, now: float) -> bytes:
        if c.run and now - c.last_agent > 0.1:
            self._end_run(c)  # the agent's utterance ended (a gap of 5 frames)
        if c.state == "listen":
            answered = c.last_agent >= c.listen_since
            if (answered and now - c.last_agent >= self.cfg.quiet and not c.playout.pending) or \
                    now - c.listen_since >= self.cfg.listen_timeout:
                frames = self.voices[c.line_no % len(self.voices)]
                start = c.k * TICK
                self.board.say(c.call_sid, start, start + len(frames) * TICK, LINES[c.line_no % len(LINES)])
                c.line_no += 1
                c.lines_said += 1
                c.speech.extend(frames)
                c.state = "talk"
        if c.state == "talk":
            frame = c.speech.popleft()
            if not c.speech:
                c.state = "listen"
                c.listen_since = now
            return frame
        return self.noise[c.k % len(self.noise)]

    # ---------------------------------------------------------------- main loop
    def run(self) -> dict:
        cfg = self.cfg
        cpu0 = time.process_time()
        for i in range(cfg.calls):
            try:
                self.calls.append(self._connect(i))
            except (OSError, WSError) as e:
                self.connect_failures.append(f"{type(e).__name__}: {e}"[:200])
        t0 = self.clock()
        for c in self.calls:
            c.listen_since = t0 + (c.idx % 25) * 0.04  # first lines staggered over a second
        self.window = (t0 + cfg.warmup, t0 + cfg.warmup + cfg.seconds)
        end_send = self.window[1]
        slot_dt = TICK / cfg.slots
        by_slot = [[c for c in self.calls if c.slot == s] for s in range(cfg.slots)]
        n = 0  # slot ticks so far
        cpu_w0 = cpu_w1 = None
        while True:
            due = t0 + n * slot_dt
            now = self.clock()
            if now >= due:
                if due >= end_send:
                    break
                if cpu_w0 is None and due >= self.window[0]:
                    cpu_w0 = time.process_time()
                    self.on_window("start")
                if self.window[0] <= due:
                    self.ticker_late.append(now - due)
                for c in by_slot[n % cfg.slots]:
                    if not c.closed:
                        if c.out:
                            self._flush(c)
                        self._tick(c, now)
                n += 1
                continue
            for key, _ in self.sel.select(due - now):
                self._readable(key.data, self.clock())
        cpu_w1 = time.process_time()
        self.on_window("end")
        grace_end = self.clock() + cfg.grace
        while (now := self.clock()) < grace_end:
            for key, _ in self.sel.select(grace_end - now):
                self._readable(key.data, self.clock())
        for c in self.calls:
            if c.run:
                self._end_run(c)
        return self._result(cpu0, cpu_w0 or cpu_w1, cpu_w1)

    def close(self) -> None:
        """Hang every call up (Twilio `stop`, then a WebSocket close) and release the sockets."""
        for c in self.calls:
            if not c.closed:
                try:
                    c.sock.setblocking(True)
                    c.sock.settimeout(1.0)
                    c.sock.sendall(bytes(c.out) + text_frame(c.builder.stop(c.next_seq(), "AC" + "0" * 32, c.call_sid))
                                   + close_frame())
                except OSError:
                    pass
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            self.board.forget(c.call_sid)
        self.sel.close()

    def _result(self, cpu0: float, cpu_w0: float, cpu_w1: float) -> dict:
        cfg = self.cfg
        lost = sum(1 for c in self.calls for _, counted in c.sent_at if counted) if cfg.mode == "echo" else None
        window_sent = cfg.seconds / TICK * len(self.calls)
        return {
            "mode": cfg.mode, "calls": cfg.calls, "connected": len(self.calls),
            "connect_failures": self.connect_failures[:5], "n_connect_failures": len(self.connect_failures),
            "dropped_by_server": sum(1 for c in self.calls if c.closed),
            "seconds": cfg.seconds, "warmup": cfg.warmup, "slots": cfg.slots,
            "frames_sent": sum(c.frames_sent for c in self.calls),
            "frames_received": sum(c.frames_received for c in self.calls),
            "window_frames_sent": int(window_sent),
            "lost_replies": lost,
            "rtt_ms": {k: v * 1000 if v is not None else None for k, v in percentiles(self.rtts).items()},
            "lateness_ms": {k: v * 1000 if v is not None else None
                            for k, v in percentiles(self.rtts if cfg.mode == "echo" else self.lateness).items()},
            "late_samples": len(self.rtts if cfg.mode == "echo" else self.lateness),
            "ticker_late_ms": {k: v * 1000 if v is not None else None
                               for k, v in percentiles(self.ticker_late).items()},
            "agent_utterances": sum(c.runs_done for c in self.calls),
            "lines_said": sum(c.lines_said for c in self.calls),
            "clears": sum(c.clears for c in self.calls),
            "marks_echoed": sum(c.marks_echoed for c in self.calls),
            "protocol_errors": self.protocol_errors, "send_stalls": self.send_stalls,
            "generator_cpu_window": (cpu_w1 - cpu_w0) / cfg.seconds if cfg.seconds else None,
            "generator_cpu_s": time.process_time() - cpu0,
            "generator_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


class RemoteBoard:
    """The ScriptBoard of an emulator in another process, fed over its WebSocket (one JSON text frame
    per line: tag, start, end, text). Blocking sends: one short message per caller line."""

    def __init__(self, url: str, timeout: float = 10.0):
        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        req, accept = handshake_request(f"{u.hostname}:{u.port}", u.path or "/")
        self.sock.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WSError("board feed closed during the handshake")
            buf += chunk
        check_handshake_response(buf.partition(b"\r\n\r\n")[0], accept)

    def say(self, key: str, start: float, end: float, text: str) -> None:
        self.sock.sendall(text_frame(json.dumps({"tag": key, "start": start, "end": end, "text": text})))

    def forget(self, key: str) -> None:
        pass  # the emulator keeps its board for its own lifetime (one benchmark step)

    def close(self) -> None:
        try:
            self.sock.sendall(close_frame())
        except OSError:
            pass
        self.sock.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/twilio/media")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--mode", choices=("echo", "call"), default="echo")
    p.add_argument("--slots", type=int, default=10)
    p.add_argument("--json", metavar="FILE", help="write the result here (default: stdout)")
    p.add_argument("--board-url", help="call mode: send each line's words to this ScriptBoard feed (ws://), "
                                        "e.g. the Deepgram emulator's /emulator/board in another process")
    p.add_argument("--announce", action="store_true",
                   help="print WINDOW start/end lines on stdout (for an orchestrator sampling the server)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m offhook.sim.load", description=__doc__.splitlines()[0])
    add_arguments(p)
    a = p.parse_args(argv)
    board = RemoteBoard(a.board_url) if a.board_url else BOARD
    announce = (lambda edge: print(f"WINDOW {edge}", flush=True)) if a.announce else None
    gen = LoadGenerator(LoadConfig(a.url, a.calls, a.seconds, a.warmup, a.mode, a.slots), on_window=announce,
                        board=board)
    try:
        result = gen.run()
    finally:
        gen.close()
        if board is not BOARD:
            board.close()
    text = json.dumps(result)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0 if result["connected"] else 1


if __name__ == "__main__":
    sys.exit(main())
