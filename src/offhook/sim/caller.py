"""The simulated caller: behaves as Twilio does on a media stream.

It connects to /twilio/media (signing the upgrade when given the auth token), sends `connected` and
`start`, streams the caller's audio as 20 ms mu-law frames in real time (line noise between lines),
plays the agent's frames through a model of Twilio's playout buffer, echoes marks once their audio
has played, honours `clear`, sends `dtmf` and `stop`. It records both sides on one timeline (stereo
WAV: caller left, agent right) plus a JSON timeline, and measures end of each caller line -> first
agent audio, and barge-in onset -> `clear` received -> agent audio stopped.

Per call: one task ticks every 20 ms (send a frame, advance playout), one reads the socket, one runs
the script. Times are trio.current_time() relative to the connection, so under MockClock they are exact.
"""
from __future__ import annotations

import binascii
import json
import logging
import random
import string
import wave
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from offhook.audio import ulaw_decode
from offhook.sim.board import BOARD, ScriptBoard
from offhook.sim.playout import Playout
from offhook.sim.scenario import Scenario, Step
from offhook.sim.voice import Voice, comfort_noise, synthetic_voice
from offhook.twilio.protocol import InboundBuilder, ProtocolError, build_connected, build_start, parse_outbound
from offhook.twilio.signature import sign

log = logging.getLogger("offhook.sim")
TICK = 0.020


def _sid(prefix: str, rnd: random.Random) -> str:
    return prefix + "".join(rnd.choice(string.hexdigits.lower()[:16]) for _ in range(32))


@dataclass
class LineResult:
    text: str
    start: float              # seconds from connect (= caller audio time)
    end: float
    first_agent_audio: float | None = None  # first agent frame received after the line ended
    first_agent_played: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.first_agent_audio is None else self.first_agent_audio - self.end


@dataclass
class BargeInResult:
    onset: float
    text: str
    clear_received: float | None = None
    audio_stopped: float | None = None  # end of the last agent frame played after the onset

    @property
    def clear_latency(self) -> float | None:
        return None if self.clear_received is None else self.clear_received - self.onset


@dataclass
class CallResult:
    call_sid: str
    stream_sid: str
    lines: list[LineResult] = field(default_factory=list)
    barge_ins: list[BargeInResult] = field(default_factory=list)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    caller_frames: list[bytes] = field(default_factory=list)   # one per tick
    agent_played: list[tuple[int, bytes]] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    clears: int = 0
    ended_by: str = ""
    duration: float = 0.0
    error: str = ""

    def agent_audio_seconds(self) -> float:
        return len(self.agent_played) * TICK

    def agent_heard_between(self, t0: float, t1: float) -> float:
        """Seconds of agent audio the caller heard in [t0, t1)."""
        return sum(TICK for k, _ in self.agent_played if t0 <= k * TICK < t1)

    def write_wav(self, path: str) -> None:
        n = max(len(self.caller_frames), (self.agent_played[-1][0] + 1) if self.agent_played else 0)
        silence = b"\xff" * 160
        agent = [silence] * n
        for k, f in self.agent_played:
            agent[k] = f
        left = ulaw_decode(b"".join(self.caller_frames + [silence] * (n - len(self.caller_frames))))
        right = ulaw_decode(b"".join(agent))
        stereo = bytearray(len(left) * 2)
        for i in range(0, len(left), 2):
            stereo[2 * i : 2 * i + 2] = left[i : i + 2]
            stereo[2 * i + 2 : 2 * i + 4] = right[i : i + 2]
        with wave.open(path, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes(stereo))

    def to_json(self) -> dict:
        return {
            "call_sid": self.call_sid, "stream_sid": self.stream_sid, "ended_by": self.ended_by,
            "duration": self.duration, "clears": self.clears, "error": self.error,
            "lines": [{"text": l.text, "start": l.start, "end": l.end, "first_agent_audio": l.first_agent_audio,
                       "latency": l.latency} for l in self.lines],
            "barge_ins": [{"onset": b.onset, "text": b.text, "clear_received": b.clear_received,
                           "audio_stopped": b.audio_stopped, "clear_latency": b.clear_latency}
                          for b in self.barge_ins],
            "timeline": [{"t": t, "event": k, "detail": d} for t, k, d in self.timeline],
        }

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=2)


class SimCaller:
    def __init__(self, media_url: str, scenario: Scenario, *, auth_token: str | None = None,
                 signed_url: str | None = None, call_sid: str | None = None, seed: int = 0,
                 voice: Voice | None = None, board: ScriptBoard = BOARD,
                 on_event: Callable[[float, str, str], None] | None = None, connect_timeout: float = 10.0,
                 extra_headers: list[tuple[str, str]] | None = None,
                 custom_parameters: dict[str, str] | None = None, account_sid: str | None = None):
        rnd = random.Random(seed)
        self.url = media_url
        self.scenario = scenario
        self.auth_token = auth_token
        self.signed_url = signed_url or media_url
        self.call_sid = call_sid or _sid("CA", rnd)
        self.stream_sid = _sid("MZ", rnd)
        self.account_sid = account_sid or _sid("AC", rnd)
        # what `start.customParameters` carries: the TwiML's <Parameter>s when the call came via the webhook
        self.custom_parameters = custom_parameters
        self.voice = voice or synthetic_voice
        self.board = board
        self.on_event = on_event
        self.connect_timeout = connect_timeout
        self.extra_headers = extra_headers or []
        self.result = CallResult(self.call_sid, self.stream_sid)
        self.playout = Playout()
        self._noise = comfort_noise()
        self._speech: deque[bytes] = deque()  # frames still to say
        self._speech_done = trio.Event()
        self._seq = 0
        self._tick = 0
        self._t0: float | None = None
        self._lock = trio.Lock()
        self._ws = None
        self._agent_last_played_tick = -1
        self._agent_started = trio.Event()
        self._closed = False
        self._stop_sent = False
        self._conversation: trio.CancelScope | None = None
        self._pending_line: LineResult | None = None
        self._pending_barge: BargeInResult | None = None

    # ---------------------------------------------------------------- helpers
    def now(self) -> float:
        return trio.current_time() - self._t0

    def _event(self, kind: str, detail: str = "") -> None:
        t = self.now()
        self.result.timeline.append((t, kind, detail))
        if self.on_event:
            self.on_event(t, kind, detail)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(self, text: str, *, last: bool = False) -> None:
        """Send one message; nothing goes after `stop` (as with Twilio), and a socket the server has
        closed ends the conversation here instead of failing whichever task was sending."""
        async with self._lock:
            if self._stop_sent:
                return
            self._stop_sent = last
            try:
                await self._ws.send_message(text)
            except ConnectionClosed:
                self._server_closed()

    def _server_closed(self) -> None:
        hung_up = self._closed  # after our `stop` the server closing the socket is the normal end
        if not hung_up and (self._conversation is None or not self._conversation.cancel_called):
            self.result.ended_by = self.result.ended_by or "server"
            self._event("closed_by_server")
        if self._conversation is not None:
            self._conversation.cancel()

    # ---------------------------------------------------------------- main
    async def run(self) -> CallResult:
        headers = list(self.extra_headers)
        if self.auth_token:
            headers.append(("X-Twilio-Signature", sign(self.auth_token, self.signed_url)))
        try:
            async with open_websocket_url(self.url, extra_headers=headers, message_queue_size=0,
                                          connect_timeout=self.connect_timeout, disconnect_timeout=2) as ws:
                self._ws = ws
                await self._converse()
        except (HandshakeError, OSError, trio.TooSlowError) as e:
            self.result.error = f"connect failed: {e!r}"[:300]
            self.result.ended_by = "error"
        except ConnectionClosed:
            self.result.ended_by = self.result.ended_by or "server"
        finally:
            if self._t0 is not None:
                self.result.duration = self.now()
            self.result.agent_played = list(self.playout.played)
        return self.result

    async def _converse(self) -> None:
        self._t0 = trio.current_time()
        self.builder = InboundBuilder(self.stream_sid)
        await self._send(build_connected())
        params = self.custom_parameters
        if params is None:
            params = {"from": self.scenario.caller, "to": self.scenario.callee, "callSid": self.call_sid,
                      **self.scenario.params}
        await self._send(build_start(self._next_seq(), self.stream_sid, self.call_sid, self.account_sid, params))
        self._event("start", self.call_sid)
        async with trio.open_nursery() as nursery:
            self._conversation = nursery.cancel_scope
            nursery.start_soon(self._ticker)
            nursery.start_soon(self._reader)
            await self._script()
            nursery.cancel_scope.cancel()

    async def _ticker(self) -> None:
        while True:
            await trio.sleep_until(self._t0 + (self._tick + 1) * TICK)
            self._tick += 1
            k = self._tick - 1
            if self._speech:
                frame = self._speech.popleft()
                if not self._speech:
                    self._speech_done.set()
            else:
                frame = self._noise[k % len(self._noise)]
            self.result.caller_frames.append(frame)
            await self._send(self.builder.media(self._next_seq(), k + 1, k * 20, frame))
            played, echoes = self.playout.tick(k)
            if played is not None:
                self._agent_last_played_tick = k
                line = self._pending_line
                if line is not None and line.first_agent_played is None:
                    line.first_agent_played = k * TICK
            for name in echoes:
                await self._echo_mark(name)

    async def _echo_mark(self, name: str) -> None:
        self.result.marks_echoed.append(name)
        await self._send(self.builder.mark(self._next_seq(), name))

    async def _reader(self) -> None:
        try:
            while True:
                text = await self._ws.get_message()
                try:
                    msg = parse_outbound(text)
                except ProtocolError as e:
                    self._event("bad_message", e.kind)
                    continue
                if msg.event == "media":
                    try:
                        frame = binascii.a2b_base64(msg.media.payload)
                    except binascii.Error:
                        self._event("bad_message", "bad_base64")
                        continue
                    self.playout.on_media(frame)
                    self._agent_started.set()
                    line = self._pending_line
                    if line is not None and line.first_agent_audio is None and self.now() >= line.end:
                        line.first_agent_audio = self.now()
                        self._event("agent_audio", f"{line.latency * 1000:.0f} ms after caller")
                elif msg.event == "mark":
                    for name in self.playout.on_mark(msg.mark.name):
                        await self._echo_mark(name)
                elif msg.event == "clear":
                    self.result.clears += 1
                    dropped = self.playout.pending
                    for name in self.playout.on_clear(self._tick):
                        await self._echo_mark(name)
                    b = self._pending_barge
                    if b is not None and b.clear_received is None:
                        b.clear_received = self.now()
                        b.audio_stopped = (self._agent_last_played_tick + 1) * TICK
                    self._event("clear", f"{dropped} frames dropped")
        except ConnectionClosed:
            self._server_closed()

    # ---------------------------------------------------------------- the script
    async def _say(self, text: str, wav: str | None = None) -> LineResult:
        audio = self._load_wav(wav) if wav else self.voice(text)
        frames = [audio[i : i + 160] for i in range(0, len(audio), 160)]
        if frames and len(frames[-1]) < 160:
            frames[-1] = frames[-1] + b"\xff" * (160 - len(frames[-1]))
        start = self._tick * TICK
        end = start + len(frames) * TICK
        self.board.say(self.call_sid, start, end, text)
        line = LineResult(text, start, end)
        self.result.lines.append(line)
        self._event("say", text)
        self._speech_done = trio.Event()
        self._speech = deque(frames)
        await self._speech_done.wait()
        self._pending_line = line
        self._event("said", text)
        return line

    @staticmethod
    def _load_wav(path: str) -> bytes:
        from offhook.audio import Resampler, ulaw_encode
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
            pcm = w.readframes(w.getnframes())
            if w.getnchannels() == 2:
                pcm = b"".join(pcm[i : i + 2] for i in range(0, len(pcm), 4))
            rate = w.getframerate()
        if rate != 8000:
            r = Resampler(rate, 8000)
            pcm = r.process(pcm) + r.flush()
        return ulaw_encode(pcm)

    async def _wait_for_agent(self, quiet: float, timeout: float) -> bool:
        """Until agent audio has played since the caller last spoke, and then `quiet` s of no agent audio."""
        since = round(self.result.lines[-1].end / TICK) if self.result.lines else 0
        with trio.move_on_after(timeout):
            while True:
                idle = (self._tick - 1 - self._agent_last_played_tick) * TICK
                if self._agent_last_played_tick >= since and self.playout.pending == 0 and idle >= quiet:
                    return True
                await trio.sleep(TICK)
        self._event("timeout", "waiting for the agent")
        return False

    async def _script(self) -> None:
        for step in self.scenario.steps:
            await self._run_step(step)
            if self._closed:
                return
        await self._hangup()

    async def _run_step(self, step: Step) -> None:
        if step.kind == "wait":
            await trio.sleep(step.seconds)
        elif step.kind == "wait_for_agent":
            await self._wait_for_agent(step.quiet, step.timeout)
        elif step.kind == "say":
            await self._say(step.text, step.wav)
        elif step.kind == "barge_in":
            # wait for the agent's next reply to start playing, then talk over it
            self._agent_started = trio.Event()
            with trio.move_on_after(step.timeout):
                await self._agent_started.wait()
                await trio.sleep(step.after)
            b = BargeInResult(self.now(), step.text)
            self.result.barge_ins.append(b)
            self._pending_barge = b
            self._event("barge_in", step.text)
            await self._say(step.text, step.wav)
        elif step.kind == "dtmf":
            for d in step.digit:
                await self._send(self.builder.dtmf(self._next_seq(), d))
                self._event("dtmf", d)
                await trio.sleep(0.1)
        elif step.kind == "hangup":
            await self._hangup()

    async def _hangup(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.result.ended_by = self.result.ended_by or "caller"
        self._event("hangup")
        await self._send(self.builder.stop(self._next_seq(), self.account_sid, self.call_sid), last=True)
