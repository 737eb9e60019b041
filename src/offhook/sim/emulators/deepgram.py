"""Deepgram live STT (`/v1/listen`) emulator: a trio-websocket server speaking the v1 wire protocol.

    async with deepgram_emulator(profile=LatencyProfile(first_s=0.15, gap_s=0.25)) as emu:
        stt = DeepgramSTT(api_key=emu.api_key, base_url=emu.base_url)
        BOARD.say(call_sid, 0.5, 1.7, "What time do you open?")   # what the simulated caller says
        async with stt.stream(tag=call_sid) as stream: ...

Transcripts come from the scenario, not from the audio: the simulated caller writes each line it
speaks on `offhook.sim.board.BOARD` as (start, end, text) in seconds of its stream audio, keyed by
the call sid, which offhook passes as Deepgram's `tag`. The emulator tracks how much audio it has
received (bytes / bytes per second of the declared encoding) and, as that audio passes the
lines' times, produces what Deepgram would:
- `SpeechStarted` (vad_events=true) when the audio reaches a line's start, timestamp = the start.
- interim Results (interim_results=true): the first `profile.first_s` (default 150 ms) of audio after
  the first word of an utterance started, then every `profile.gap_s` (250 ms) of audio; they hold
  the words begun so far since the last final.
- is_final Results with words (word, start, end, confidence, punctuated_word) and times: with
  `speech_final: true` once `endpointing` ms of audio without a new word follow the utterance's
  last word; otherwise every `segment_s` (3 s) of audio a segment is finalised with the words
  completed so far; in silence that is an empty final, as the service sends (which is also how a
  client can tell the socket is alive while nobody speaks). A word still in progress is not cut:
  the segment ends where it starts, and it comes in the next one (a word belongs to the segment
  in which it ends), exactly once.
- `UtteranceEnd` (utterance_end_ms set) after that much audio without a new word following the
  last finalised word.
- `Finalize` flushes the words begun so far as an is_final with `from_finalize: true`.
- `CloseStream` flushes the same way, then sends `Metadata` (duration = audio received) and closes
  with 1000. No data (audio or text) for `idle_timeout` (10 s) -> close 1011 `NET-0001`.
Word times are spread over a line in proportion to the words' lengths; `word` is the lower-case
word without punctuation, `punctuated_word` as written on the board; transcripts use the
punctuated words when `punctuate` or `smart_format` is on. Times are on the connection's own
clock (0 = its first audio byte).

After a reconnect the client may replay audio the previous connection heard. A recogniser goes by
the audio, and so does the emulator, with the clock to tell repeats apart: it places a new
connection of a tag on the call's timeline from its first burst of audio (messages less than 10 ms
apart: a replay, or just the first live message). The burst ends at the live edge of the call's
audio, which runs in real time from the tag's first audio: that puts its start to within the
client's pacing. If audio heard on earlier connections (the last 60 s per tag are kept) matches
the burst within PLACE_WITHIN_S (0.3 s) of there, the burst goes exactly where it matches (the
nearest match: line noise that repeats every second also matches a second off, which is why the
clock decides among matches); otherwise the audio was never heard (the client kept less than the
outage, or does not replay, or restarted its stream) and goes where the clock puts it.

Handshake: path `/v1/listen`; `Authorization: Token <key>` (or `Bearer <key>`, or the
`Sec-WebSocket-Protocol: token, <key>` form); no or a wrong key -> HTTP 401 with Deepgram's JSON
body; a query Deepgram would refuse (bad encoding, utterance_end_ms without interim results, ...)
-> HTTP 400.

Latency profile: `first_s`/`gap_s` as above (audio time), `network_s` + uniform(0, `jitter_s`)
delay on every message sent. Fault plan, one entry per accepted connection, `after_s` counted from
the upgrade: error (after_s=0: the upgrade is refused with `status`; later: an Error message with
the code at the start of `message` or NET-0000, then close 1011 with that code as the reason),
hang (nothing more is sent and the idle timeout stops, the socket stays open and audio is still
read), close (the TCP connection is dropped without a close frame), malformed (a truncated JSON
text frame), drip (from after_s on, messages go out `drip_s` apart at best).

Everything is recorded with trio.current_time() stamps (`connections`, `rejected`). Standalone
for benchmarks: `python -m offhook.sim.emulators.deepgram --port 8767`; a separate process does not
share the caller's BOARD, so it also accepts board lines over a WebSocket at `/emulator/board`
(JSON text frames `{"tag", "start", "end", "text"}`).
"""
from __future__ import annotations

import datetime
import json
import math
import random
import re
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qsl, urlsplit

import trio
import trio_websocket

from offhook.providers import deepgram_protocol as proto
from offhook.sim.board import BOARD, Line, ScriptBoard
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.sim.emulators.serving import (ConnectionSession, Observable, WsConnectionRecord, emulator_args,
                                           next_message, profile_of, serve_connection, serve_until_interrupted,
                                           serving_websocket)

__all__ = ["DeepgramEmulator", "DeepgramFront", "EmuConnection", "deepgram_emulator", "line_words", "main"]

DEFAULT_PROFILE = LatencyProfile(first_s=0.15, gap_s=0.25)
KEEP_HEARD_S = 60.0
BURST_GAP_S = 0.01  # audio arriving this much after the previous message is live, not a replay burst
# How far from where the clock puts a new connection's audio its match in the audio heard may be:
# the client's pacing error. Well under half a second, because line noise can repeat every second
# (offhook.sim.voice.comfort_noise) and then matches a second too early as well.
PLACE_WITHIN_S = 0.3
FINGERPRINT_S = 0.1   # the audio searched for (then compared over all of the burst that was heard)
_WORD = re.compile(r"\S+")
_STRIP = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class EmuWord:
    word: str             # lower case, no punctuation
    punctuated: str       # as on the board
    start: float          # call audio seconds
    end: float


@lru_cache(maxsize=4096)
def line_words(line: Line) -> tuple[EmuWord, ...]:
    """A line's words with times spread over it in proportion to their lengths (a space each)."""
    tokens = _WORD.findall(line.text)
    if not tokens:
        return ()
    weights = [len(t) + 1 for t in tokens]
    per = (line.end - line.start) / sum(weights)
    words, t = [], line.start
    for tok, w in zip(tokens, weights):
        plain = _STRIP.sub("", tok).lower().strip("'") or tok.lower()
        words.append(EmuWord(plain, tok, t, t + per * (w - 1)))
        t += per * w
    return tuple(words)


@dataclass(kw_only=True)
class EmuConnection(WsConnectionRecord):
    options: proto.ListenOptions
    offset: float = 0.0                # call audio seconds of this connection's time 0
    audio_bytes: int = 0
    first_audio_at: float | None = None
    received: list[tuple[float, str]] = field(default_factory=list)          # (t, "audio"|control type)
    sent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)   # (t, message as JSON)

    @property
    def tag(self) -> str | None:
        return self.options.tag

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / self.options.bytes_per_second

    def messages(self, type_: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [m for _, m in self.sent
                if (type_ is None or m.get("type") == type_) and all(m.get(k) == v for k, v in match.items())]

    def controls(self, kind: str) -> list[float]:
        return [t for t, k in self.received if k == kind]


class _Heard:
    """The audio received for one tag, on the call's timeline (the last KEEP_HEARD_S of it)."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.base = 0                 # call byte position of audio[0]
        self.clock_start: float | None = None  # trio time of call audio position 0 (audio is real time)

    @property
    def end(self) -> int:
        return self.base + len(self.audio)

    def find(self, burst: bytes, near: int, within: int, fingerprint: int) -> int | None:
        """The call byte position, at most `within` from `near`, where audio starting like `burst`
        was heard: its first `fingerprint` bytes (all of it if shorter) found there, and all of it
        that overlaps the audio heard equal. The nearest to `near` if several; None if nowhere."""
        probe = burst[:fingerprint]
        lo, hi = max(near - within - self.base, 0), near + within - self.base + len(probe)
        hits, i = [], self.audio.find(probe, lo, hi)
        while i >= 0:
            overlap = min(len(burst), len(self.audio) - i)
            if self.audio[i:i + overlap] == burst[:overlap]:
                hits.append(self.base + i)
            i = self.audio.find(probe, i + 1, hi)
        return min(hits, key=lambda p: abs(p - near)) if hits else None

    def write(self, pos: int, data: bytes, keep: int) -> None:
        if pos < self.base:
            data, pos = data[self.base - pos:], self.base
        i = pos - self.base
        if i > len(self.audio):  # audio this emulator never received
            self.audio.extend(bytes(i - len(self.audio)))
        self.audio[i:i + len(data)] = data
        if len(self.audio) > keep:
            cut = len(self.audio) - keep
            del self.audio[:cut]
            self.base += cut


class DeepgramFront(Observable):
    """The upgrade as Deepgram's endpoints do it (/v1/listen and /v1/speak): the path, the key
    (`Authorization: Token|Bearer <key>`, or the `token, <key>` subprotocol), the query, and the
    fault plan's refused handshakes; Deepgram's JSON error bodies."""

    def __init__(self, *, api_key: str, faults: FaultPlan | None) -> None:
        super().__init__()
        self.api_key = api_key
        self.faults = faults or FaultPlan()
        self.host, self.port = "127.0.0.1", 0
        self.rejected: list[tuple[float, int, str]] = []   # (t, HTTP status, body)

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _authorised(self, headers: dict[str, str], subprotocols: list[str]) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("token", "bearer") and key.strip() == self.api_key:
            return True
        return len(subprotocols) >= 2 and subprotocols[0].lower() in ("token", "bearer") \
            and subprotocols[1] == self.api_key

    async def _reject(self, request: trio_websocket.WebSocketRequest, status: int, err_code: str, msg: str) -> None:
        body = json.dumps({"err_code": err_code, "err_msg": msg, "request_id": str(uuid.uuid4())}).encode()
        self.rejected.append((trio.current_time(), status, body.decode()))
        self._poke()
        await request.reject(status, extra_headers=[(b"content-type", b"application/json")], body=body)

    async def accept(self, request: trio_websocket.WebSocketRequest, path: str, parse: Callable[[str], Any]):
        """(ws, url, headers, options, fault) for an accepted upgrade, None when it was refused."""
        url = urlsplit(request.path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if url.path != path:
            await self._reject(request, 404, "NOT_FOUND", f"no such path {url.path}")
            return None
        if not self._authorised(headers, list(request.proposed_subprotocols)):
            await self._reject(request, 401, "INVALID_AUTH", "Invalid credentials.")
            return None
        try:
            options = parse(url.query)
        except ValueError as exc:
            await self._reject(request, 400, "Bad Request", str(exc))
            return None
        fault = self.faults.next()
        if fault is not None and fault.kind == "error" and fault.after_s <= 0:
            await self._reject(request, fault.status, "EMULATED", fault.message)
            return None
        subprotocol = request.proposed_subprotocols[0] if request.proposed_subprotocols else None
        return await request.accept(subprotocol=subprotocol), url, headers, options, fault


class DeepgramEmulator(DeepgramFront):
    def __init__(self, *, profile: LatencyProfile | None = None, faults: FaultPlan | None = None,
                 api_key: str = "test-deepgram-key", board: ScriptBoard = BOARD, segment_s: float = 3.0,
                 idle_timeout: float = 10.0) -> None:
        super().__init__(api_key=api_key, faults=faults)
        self.profile = profile or DEFAULT_PROFILE
        self.board = board
        self.segment_s = segment_s
        self.idle_timeout = idle_timeout
        self.connections: list[EmuConnection] = []
        self._heard: dict[str, _Heard] = {}

    def for_tag(self, tag: str) -> list[EmuConnection]:
        return [c for c in self.connections if c.tag == tag]

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        if urlsplit(request.path).path == "/emulator/board":
            await self._board_feed(await request.accept())
            return
        accepted = await self.accept(request, proto.LISTEN_PATH, proto.parse_listen_query)
        if accepted is None:
            return
        ws, url, headers, options, fault = accepted
        conn = EmuConnection(index=len(self.connections), path=request.path,
                             query=dict(parse_qsl(url.query, keep_blank_values=True)),
                             headers=headers, options=options, opened_at=trio.current_time(), fault=fault)
        self.connections.append(conn)
        self._poke()
        await serve_connection(self, conn, ws, lambda nursery: _Session(self, conn, ws, nursery).run())

    async def _board_feed(self, ws: trio_websocket.WebSocketConnection) -> None:
        while (raw := await next_message(ws)) is not None:
            try:
                line = json.loads(raw)
                self.board.say(str(line["tag"]), float(line["start"]), float(line["end"]), str(line["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                await ws.aclose(1003, f"bad board line: {exc}")
                return
            self._poke()


class _Session(ConnectionSession[DeepgramEmulator, EmuConnection]):
    """One accepted connection: audio in, transcript messages out."""

    def __init__(self, emu: DeepgramEmulator, conn: EmuConnection, ws: trio_websocket.WebSocketConnection,
                 nursery: trio.Nursery) -> None:
        super().__init__(emu, conn, ws, nursery)
        self.opt = conn.options
        self.bps = self.opt.bytes_per_second
        self.rng = random.Random(emu.profile.seed * 1_000_003 + conn.index)
        self.request_id = str(uuid.uuid4())
        self.heard = emu._heard.setdefault(conn.tag, _Heard()) if conn.tag else None
        # (due time, message, or a close frame (code, reason) to end with)
        self.out_send, self.out_recv = trio.open_memory_channel[tuple[float, str | tuple[int, str]]](math.inf)
        self.last_rx = trio.current_time()
        self.placed = False
        self.unplaced: list[bytes] = []  # a burst of audio not heard before, until it ends
        self.unplaced_last = 0.0
        self.pos = 0.0                 # call audio seconds received so far
        self.done_upto = 0.0           # words starting before this are finalised
        self.seg_start = 0.0
        self.sf_upto = 0.0             # words starting before this belong to an ended utterance
        self.interim_at: float | None = None
        self.announced: set[tuple[float, str]] = set()
        self.last_final_end: float | None = None   # for UtteranceEnd
        self.closing = False
        self.drip_from: float | None = None

    # -------------------------------------------------------- output
    def emit(self, text: str) -> None:
        p = self.emu.profile
        delay = p.network_s + (self.rng.uniform(0, p.jitter_s) if p.jitter_s else 0.0)
        self.out_send.send_nowait((trio.current_time() + delay, text))

    async def sender(self) -> None:
        last = -math.inf
        async for due, text in self.out_recv:
            if self.drip_from is not None and due >= self.drip_from:
                due = max(due, last + self.conn.fault.drip_s)  # type: ignore[union-attr]
            await trio.sleep_until(due)
            while self.conn.hung:
                await trio.sleep_forever()
            if isinstance(text, tuple):
                await self.close(*text)
                return
            try:
                self.conn.sent.append((trio.current_time(), json.loads(text)))
            except ValueError:
                self.conn.sent.append((trio.current_time(), {"_raw": text}))
            last = trio.current_time()
            try:
                await self.ws.send_message(text)
            except trio_websocket.ConnectionClosed:
                return
            self.emu._poke()

    # -------------------------------------------------------- main loop
    async def run(self) -> None:
        self.nursery.start_soon(self.sender)
        self.nursery.start_soon(self.idle_watch)
        if self.conn.fault is not None:
            self.nursery.start_soon(self.run_fault, self.conn.fault)
        while (raw := await next_message(self.ws)) is not None:
            now = self.last_rx = trio.current_time()
            if isinstance(raw, bytes):
                self.conn.received.append((now, "audio"))
                self.on_audio(raw, now)
            else:
                try:
                    kind = proto.parse_control(raw)
                except proto.ProtocolError as exc:
                    self.conn.received.append((now, "invalid"))
                    self.emit(proto.error_message(f"Invalid control message: {exc}", code="DATA-0001"))
                    continue
                self.conn.received.append((now, kind))
                if self.unplaced:
                    self.take(self.place_burst())  # the burst is over
                if kind == "Finalize":
                    self.flush(from_finalize=True)
                elif kind == "CloseStream":
                    self.flush(from_finalize=False, always=False)
                    self.emit(proto.metadata_message(
                        request_id=self.request_id, duration=self.conn.audio_seconds,
                        created=datetime.datetime.now(datetime.timezone.utc).isoformat()))
                    self.closing = True
                    self.out_send.send_nowait((trio.current_time() + self.emu.profile.network_s, (1000, "")))
            self.emu._poke()

    def on_audio(self, data: bytes, now: float) -> None:
        conn = self.conn
        if conn.first_audio_at is None:
            conn.first_audio_at = now
        self.take([data] if self.placed else self.place(data, now))

    def take(self, chunks: list[bytes]) -> None:
        """Audio placed on the call's timeline: heard, and transcribed as it goes."""
        conn = self.conn
        for chunk in chunks:
            if self.heard is not None:
                self.heard.write(round(conn.offset * self.bps) + conn.audio_bytes, chunk,
                                 int(KEEP_HEARD_S * self.bps))
            conn.audio_bytes += len(chunk)
        self.pos = conn.offset + conn.audio_bytes / self.bps
        if chunks and not self.closing:
            self.advance()

    def place(self, data: bytes, now: float) -> list[bytes]:
        """Put this connection on the call's timeline (see the module docstring); returns the audio
        to process from there, or [] while it waits to see where the burst of its first audio ends."""
        heard = self.heard
        if heard is None or heard.clock_start is None:  # no tag, or the tag's first connection
            if heard is not None:
                heard.clock_start = now - len(data) / self.bps
            return self.placed_at(0, [data])
        if self.unplaced and now - self.unplaced_last >= BURST_GAP_S:
            return self.place_burst() + [data]
        if not self.unplaced:
            self.nursery.start_soon(self.burst_watch)
        self.unplaced.append(data)
        self.unplaced_last = now
        return []

    async def burst_watch(self) -> None:
        """A burst also ends when nothing follows it (a replay, then the caller on hold)."""
        while self.unplaced:
            await trio.sleep_until(self.unplaced_last + BURST_GAP_S)
            if self.unplaced and trio.current_time() >= self.unplaced_last + BURST_GAP_S:
                self.take(self.place_burst())
                self.emu._poke()

    def place_burst(self) -> list[bytes]:
        """The burst (a client's replay, or just the first live message) ended at the live edge of
        the call's audio, which runs in real time from the tag's first audio: that says where it
        starts to within the client's pacing, and the audio heard before, if it overlaps, to the
        byte."""
        heard = self.heard
        assert heard is not None and heard.clock_start is not None
        held, self.unplaced = self.unplaced, []
        burst = b"".join(held)
        edge = round((self.unplaced_last - heard.clock_start) * self.bps)
        by_clock = max(0, edge - len(burst))
        start = heard.find(burst, by_clock, round(PLACE_WITHIN_S * self.bps), round(FINGERPRINT_S * self.bps))
        if start is None:  # audio never heard before
            start = by_clock - by_clock % proto.ENCODINGS[self.opt.encoding]
        return self.placed_at(start, held)

    def placed_at(self, position: int, chunks: list[bytes]) -> list[bytes]:
        self.placed = True
        self.conn.offset = position / self.bps
        self.pos = self.done_upto = self.seg_start = self.sf_upto = self.conn.offset
        return chunks

    # -------------------------------------------------------- transcripts
    def words(self) -> list[EmuWord]:
        if self.conn.tag is None:
            return []
        lines = sorted(self.emu.board.lines(self.conn.tag), key=lambda ln: ln.start)
        return [w for ln in lines if ln.end > self.conn.offset for w in line_words(ln)
                if w.start >= self.conn.offset]

    def advance(self) -> None:
        opt, pos = self.opt, self.pos
        words = self.words()
        heard = [w for w in words if w.start < pos]
        pending = [w for w in heard if w.start >= self.done_upto]
        # SpeechStarted: once per line, when its audio arrives
        if opt.vad_events and self.conn.tag is not None:
            for ln in self.emu.board.lines(self.conn.tag):
                key = (ln.start, ln.text)
                if self.conn.offset <= ln.start <= pos and key not in self.announced:
                    self.announced.add(key)
                    self.emit(proto.speech_started_message(ln.start - self.conn.offset))
        # endpoint: `endpointing` ms of audio since the utterance's last word ended, no new word
        utterance = [w for w in heard if w.start >= self.sf_upto]
        if opt.endpointing is not False and utterance:
            last_end = max(w.end for w in utterance)
            if pos >= last_end + int(opt.endpointing) / 1000:
                self.final(pending, pos, speech_final=True)
                self.sf_upto = pos
                return
        # a long segment (speech or silence) is finalised every segment_s of audio
        if pos - self.seg_start >= self.emu.segment_s:
            complete = [w for w in pending if w.end <= pos]
            cut = min([pos, *(w.start for w in pending if w.end > pos)])
            if cut > self.seg_start:
                self.final(complete, cut)
                return
        # UtteranceEnd: utterance_end_ms of audio without a new word after the last final word
        if opt.utterance_end_ms and self.last_final_end is not None:
            if not [w for w in heard if w.start > self.last_final_end] and \
                    pos >= self.last_final_end + int(opt.utterance_end_ms) / 1000:
                self.emit(proto.utterance_end_message(self.last_final_end - self.conn.offset))
                self.last_final_end = None
        # interim results: first_s after the first word began, then every gap_s
        if opt.interim_results and pending:
            due = (pending[0].start + self.emu.profile.first_s if self.interim_at is None
                   else self.interim_at + max(self.emu.profile.gap_s, 0.02))
            if pos >= due:
                self.interim_at = pos
                self.emit(self.results(pending, self.seg_start, pos, is_final=False))

    def results(self, words: list[EmuWord], start: float, end: float, *, is_final: bool,
                speech_final: bool = False, from_finalize: bool = False) -> str:
        off = self.conn.offset
        wire = []
        for w in words:
            item: dict[str, Any] = {"word": w.word, "start": round(w.start - off, 3), "end": round(w.end - off, 3),
                                    "confidence": round(0.9 + 0.09 * self.rng.random(), 3)}
            if self.opt.punctuate or self.opt.smart_format:
                item["punctuated_word"] = w.punctuated
            wire.append(item)
        return proto.results_message(start=start - off, duration=end - start, words=wire, is_final=is_final,
                                     speech_final=speech_final, from_finalize=from_finalize,
                                     punctuate=self.opt.punctuate or self.opt.smart_format,
                                     request_id=self.request_id, model=self.opt.model)

    def final(self, words: list[EmuWord], end: float, *, speech_final: bool = False,
              from_finalize: bool = False) -> None:
        """Finalise `words`: those starting before `end`. The next segment starts at `end` as the
        wire says it (rounded to ms, so that consecutive finals tile the audio as the client sees
        them), but which words are still pending goes by the exact time: a word in progress at a
        segment cut starts right at `end`, and rounding up would drop it from both segments."""
        wire_end = self.conn.offset + round(end - self.conn.offset, 3)
        self.emit(self.results(words, self.seg_start, wire_end, is_final=True, speech_final=speech_final,
                               from_finalize=from_finalize))
        if words:
            self.last_final_end = max(w.end for w in words)
        self.seg_start, self.done_upto = wire_end, end
        self.interim_at = None

    def flush(self, *, from_finalize: bool, always: bool = True) -> None:
        pending = [w for w in self.words() if self.done_upto <= w.start < self.pos]
        if pending or always:
            self.final(pending, max([self.pos, *(w.end for w in pending)]), from_finalize=from_finalize)

    # -------------------------------------------------------- timers and faults
    async def idle_watch(self) -> None:
        timeout = self.emu.idle_timeout
        while True:
            await trio.sleep_until(self.last_rx + timeout)
            if self.conn.hung or self.closing:
                return
            if trio.current_time() >= self.last_rx + timeout:
                await self.close(1011, "NET-0001: Deepgram did not receive audio data or a text message "
                                       "within the timeout window.")
                return

    async def run_fault(self, fault: Fault) -> None:
        await trio.sleep(fault.after_s)
        if fault.kind == "error":
            code = proto.close_code_of(fault.message) or "NET-0000"
            text = fault.message.removeprefix(code).strip(" :") or "emulated fault"
            now = trio.current_time()
            self.out_send.send_nowait((now, proto.error_message(text, code=code)))
            self.out_send.send_nowait((now, (1011, f"{code} {text}")))
        elif fault.kind == "close":
            await self.drop()
        elif fault.kind == "hang":
            self.conn.hung = True
        elif fault.kind == "malformed":
            raw = '{"type": "Results", "channel_index": [0, 1], "dur'
            self.conn.sent.append((trio.current_time(), {"_raw": raw}))
            await self.ws.send_message(raw)
            self.emu._poke()
        elif fault.kind == "drip":
            self.drip_from = trio.current_time()


@asynccontextmanager
async def deepgram_emulator(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> AsyncIterator[DeepgramEmulator]:
    """Serve the emulator in the current trio run for the duration of the block.
    Options: see DeepgramEmulator (profile, faults, api_key, board, segment_s, idle_timeout)."""
    async with serving_websocket(DeepgramEmulator(**options), host, port) as emu:
        yield emu


def main(argv: list[str] | None = None) -> int:
    """Run the emulator as a separate process: python -m offhook.sim.emulators.deepgram --port 8767"""
    p = emulator_args(main.__doc__, first_ms=150.0, gap_ms=250.0, first_help="audio from speech start to the "
                      "first partial", gap_help="audio between interim results", key_env="DEEPGRAM_API_KEY",
                      test_key="test-deepgram-key")
    args = p.parse_args(argv)

    return serve_until_interrupted(
        lambda: deepgram_emulator(host=args.host, port=args.port, profile=profile_of(args), api_key=args.api_key),
        lambda emu: f"Deepgram emulator on {emu.base_url} (set DEEPGRAM_BASE_URL={emu.base_url}; "
                    f"board lines at {emu.base_url}/emulator/board)")


if __name__ == "__main__":
    raise SystemExit(main())
