"""Speaking one agent utterance on the first healthy TTS voice, falling back mid-sentence.

Text arrives clause by clause (`TextFeed`); each attempt opens an utterance on one provider's warm
session, sends the text not yet spoken and then every new clause, and moves the audio through an
`OutboundPath` (at the provider's format; mu-law 8 kHz passes straight) into the pacer. An attempt
fails on a TTSError, on first audio later than `first_audio_timeout` after its first text, or when
the watchdog finds it owing audio while the line is silent; the next voice then continues from the
first word whose audio never arrived (the alignment says which). When no voice is left, one whose
connection ended under the utterance goes on once more over a new connection. A per-process
circuit breaker per provider keeps later utterances off a failing one until a probe succeeds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import trio

from offhook.agent.breaker import CircuitBreaker
from offhook.audio import OutboundPath, ulaw_level_db
from offhook.providers.base import TTSError, TTSProvider, TTSSession
from offhook.providers.tts_stream import SENTENCE_END, TTSConnectionError


def _opener_key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _nonspace(s: str) -> int:
    return len(s) - sum(1 for c in s if c.isspace())


@dataclass
class Voice:
    """One TTS provider as this call uses it."""
    name: str
    provider: TTSProvider
    breaker: CircuitBreaker
    session: TTSSession | None = None


class TextFeed:
    """Clauses for one utterance, readable from any position (a fallback re-reads)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.closed = False
        self._changed = trio.Event()

    def put(self, text: str) -> None:
        self.items.append(text)
        self._poke()

    def close(self) -> None:
        self.closed = True
        self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, index: int) -> bool:
        """Until item `index` exists (True) or the feed is closed without it (False)."""
        while index >= len(self.items):
            if self.closed:
                return False
            await self._changed.wait()
        return True


def _first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


class _AttemptFailed(Exception):
    def __init__(self, why: str, *, connection_lost: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.connection_lost = connection_lost  # the voice's connection ended under the utterance


@dataclass
class Attempt:
    voice: Voice
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    sent: str = ""                 # text sent to this voice
    owed_ns: int = 0               # non-space chars of sent text the TTS must have spoken by now
    owed_since: float | None = None
    spoken: str = ""               # text whose audio arrived (alignment)
    first_text_at: float | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    utterance_id: int | None = None
    fail_reason: str | None = None  # set by the watchdog before it cancels the scope
    characters: int = 0
    fed_all: bool = False          # every clause of the reply was sent, and flushed

    @property
    def owes_audio(self) -> bool:
        return _nonspace(self.spoken) < self.owed_ns


class Speaker:
    """Plays the text of `feed` through the voices in order of preference (see the module doc)."""

    def __init__(self, voices: list[Voice], pacer, feed: TextFeed, *, first_audio_timeout: float,
                 levels=None, on_event: Callable[[str, str], None] | None = None,
                 on_first_audio: Callable[[Attempt], None] | None = None, openers=None) -> None:
        self.voices = voices
        self.pacer = pacer
        self.feed = feed
        self.first_audio_timeout = first_audio_timeout
        self.levels = levels
        self.on_event = on_event or (lambda kind, detail: None)
        self.on_first_audio = on_first_audio
        self.attempts: list[Attempt] = []
        self.utterance_ids: list[int] = []
        self.done = False
        self.first_chunk_cpu_s = 0.0
        self.openers = openers
        self.opener_played: str | None = None
        self.first_audio_at: float | None = None   # first audio of the utterance handed to the pacer

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts and not self.done else None

    @property
    def owes_audio(self) -> bool:
        """Is there text this utterance has yet to send, or sent text whose audio has not come?
        (The stream may stay open a little after its last audio: that is not still talking.)"""
        att = self.current
        if self.done:
            return False
        if att is None:
            return True
        return not att.fed_all or att.owes_audio

    def _order(self) -> list[Voice]:
        usable = [v for v in self.voices if v.session is not None]
        healthy = [v for v in usable if v.breaker.allow()]
        # everything tripped: still try, the last voice is better than silence
        return healthy or usable

    async def _opener(self) -> int:
        """When the reply opens with a stock word ("Sure,", "Okay,") that the voice about to speak
        has pre-rendered, play it at once and start the TTS at the next clause: the TTS first-chunk
        latency then hides behind the opener's audio. Returns the feed index the TTS starts at."""
        if self.openers is None or not await self.feed.wait(0):
            return 0
        order = self._order()
        if not order or not self.openers.rendered(order[0].name):
            return 0
        key = _opener_key(self.feed.items[0])
        match = next((i for i, p in enumerate(self.openers.phrases) if _opener_key(p) == key), None)
        if match is None:
            return 0
        voice = order[0]
        text, frames = self.openers.frames(voice.name, match)
        u = self.pacer.start_utterance(text)
        self.utterance_ids.append(u.id)
        self.pacer.enqueue(frames)
        if self.levels is not None:
            self.levels.add(u.id, [ulaw_level_db(f) for f in frames])
        self.pacer.end_utterance()
        self.opener_played = text
        self.first_audio_at = trio.current_time()
        if self.on_first_audio:
            self.on_first_audio(Attempt(voice, first_audio_at=trio.current_time(), utterance_id=u.id))
        return 1

    async def run(self) -> None:
        carry, index = "", await self._opener()   # text to re-send first, next feed item
        tried: set[str] = set()
        lost: set[str] = set()      # voices whose connection ended under this utterance
        retried: set[str] = set()   # ... and that had their one more go
        try:
            if not await self.feed.wait(index):
                return  # nothing (more) to say: no TTS utterance at all
            voice = self._next_voice(tried, lost)
            while True:
                if voice is None:
                    self.on_event("tts_exhausted", "no TTS voice could speak the reply")
                    return
                if voice.name in tried:
                    retried.add(voice.name)
                    lost.discard(voice.name)
                tried.add(voice.name)
                att = Attempt(voice)
                self.attempts.append(att)
                state = {"index": index}  # the attempt advances it as it takes clauses from the feed
                try:
                    await self._attempt(att, carry, state)
                    voice.breaker.record_success()
                    return
                except _AttemptFailed as e:
                    index = state["index"]
                    voice.breaker.record_failure()
                    carry = self._unspoken(att)
                    if e.connection_lost and voice.name not in retried:
                        lost.add(voice.name)
                    failed, voice = voice, self._next_voice(tried, lost)
                    again = " (new connection)" if voice is not None and voice.name in tried else ""
                    self.on_event("tts_fallback", f"{failed.name}: {e.why}; "
                                  f"{'continuing on ' + voice.name + again if voice else 'no voice left'}")
        finally:
            self.done = True

    def _next_voice(self, tried: set[str], lost: set[str]) -> Voice | None:
        """The first voice not tried yet; when none is left, one whose connection ended under the
        utterance, once more (its session connects again): a socket the service closed says
        nothing about the voice, and with one voice configured the reply would otherwise stop."""
        order = self._order()
        return next((v for v in order if v.name not in tried), None) \
            or next((v for v in order if v.name in lost), None)

    @staticmethod
    def _unspoken(att: Attempt) -> str:
        """What the failed attempt was sent but never spoke, from the start of the first word not
        fully spoken."""
        n = _nonspace(att.spoken)
        seen = 0
        for i, c in enumerate(att.sent):
            if seen >= n and not c.isspace():
                j = i  # back to the start of the word this character is in
                while j > 0 and not att.sent[j - 1].isspace():
                    j -= 1
                return att.sent[j:].strip()
            if not c.isspace():
                seen += 1
        return ""

    async def _attempt(self, att: Attempt, carry: str, state: dict) -> None:
        first_wait = trio.CancelScope()
        fmt_path: list[OutboundPath] = []
        session = att.voice.session
        if session is None:
            raise _AttemptFailed("its session is closed")
        failure: BaseException | None = None
        opened = False
        try:
            with att.scope:
                async with session.utterance() as utt:
                    opened = True
                    fmt = utt.format
                    fmt_path.append(OutboundPath(fmt.sample_rate, src_encoding="ulaw" if fmt.encoding == "ulaw"
                                                 else "pcm16"))
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._feed, att, utt, carry, state, first_wait)
                        await self._pump(att, utt, fmt_path[0], first_wait)
                        nursery.cancel_scope.cancel()
                    att.characters = getattr(utt, "characters", 0)
        except* (TTSError, OSError) as group:
            # Noted, not raised here: the group may also hold an outer cancellation that landed in
            # the same scheduler step (a barge-in; the call ending, which also closes the session's
            # socket under the utterance). except* would bundle an exception raised here with it,
            # and that group gets past run()'s `except _AttemptFailed` and crashes the call. This
            # way the cancellation goes on alone, and a failure on its own becomes _AttemptFailed.
            failure = _first_leaf(group)
            att.characters = att.characters or len(att.sent)
            self._close_utterance(att, fmt_path)
        if failure is not None:
            raise _AttemptFailed(f"{type(failure).__name__}: {failure}"[:160],
                                 connection_lost=opened and isinstance(failure, (TTSConnectionError, OSError)))
        self._close_utterance(att, fmt_path)
        if att.scope.cancelled_caught:
            raise _AttemptFailed(att.fail_reason or "cancelled")
        if first_wait.cancelled_caught:
            raise _AttemptFailed(f"no audio within {self.first_audio_timeout:g} s")

    def _close_utterance(self, att: Attempt, paths: list[OutboundPath]) -> None:
        if att.utterance_id is None or self.pacer.current is None or self.pacer.current.id != att.utterance_id:
            return
        if paths:
            tail = paths[0].flush()
            if tail and self.pacer.current.cleared_at is None:
                self._enqueue(att, tail)
        u = self.pacer.utterances.get(att.utterance_id)
        if u is not None and not u.text:
            u.text = att.sent.strip()  # for the ledger's estimate when the TTS gave no alignment
        self.pacer.end_utterance()

    async def _feed(self, att: Attempt, utt, carry: str, state: dict, first_wait: trio.CancelScope) -> None:
        async def send(text: str) -> None:
            if att.first_text_at is None:
                att.first_text_at = trio.current_time()
                first_wait.deadline = att.first_text_at + self.first_audio_timeout
            att.sent += text
            await utt.send_text(text)
            if SENTENCE_END.search(text):
                self._owe(att)

        if carry:
            await send(carry if carry.endswith(" ") else carry + " ")
        while await self.feed.wait(state["index"]):
            text = self.feed.items[state["index"]]
            state["index"] += 1
            if text.strip():
                await send(text if text.endswith(" ") else text + " ")
        if att.sent:
            await utt.flush()
            self._owe(att)
        att.fed_all = True

    @staticmethod
    def _owe(att: Attempt) -> None:
        att.owed_ns = _nonspace(att.sent)
        if att.owed_since is None or not att.owes_audio:
            att.owed_since = trio.current_time()

    async def _pump(self, att: Attempt, utt, path: OutboundPath, first_wait: trio.CancelScope) -> None:
        it = utt.__aiter__()
        with first_wait:
            chunk = await self._next(it)
            if chunk is not None:
                self._on_chunk(att, chunk, path)
        if first_wait.cancelled_caught:
            return
        while chunk is not None:
            chunk = await self._next(it)
            if chunk is not None:
                self._on_chunk(att, chunk, path)

    @staticmethod
    async def _next(it):
        try:
            return await it.__anext__()
        except StopAsyncIteration:
            return None

    def _on_chunk(self, att: Attempt, chunk, path: OutboundPath) -> None:
        t_cpu = time.perf_counter()
        now = trio.current_time()
        frames = path.process(chunk.audio)
        first = att.utterance_id is None and not self.utterance_ids
        if first:
            self.first_audio_at = now
        if att.utterance_id is None:
            u = self.pacer.start_utterance("")
            att.utterance_id = u.id
            self.utterance_ids.append(u.id)
            att.first_audio_at = now
            if self.on_first_audio:
                self.on_first_audio(att)
        if chunk.alignment:
            self.pacer.add_alignment(list(chunk.alignment))
            att.spoken += "".join(t for t, _, _ in chunk.alignment)
        att.last_audio_at = now
        if att.owes_audio:
            att.owed_since = now
        if frames:
            self._enqueue(att, frames)
        if first:
            self.first_chunk_cpu_s = time.perf_counter() - t_cpu

    def _enqueue(self, att: Attempt, frames: list[bytes]) -> None:
        u = self.pacer.current
        self.pacer.enqueue(frames)
        if self.levels is not None and u is not None:
            self.levels.add(u.id, [ulaw_level_db(f) for f in frames])
