"""eSpeak NG as an embedded, offline TTS provider (libespeak-ng through `espeakng-loader`, via ctypes).

libespeak-ng keeps all its state in process globals: two threads synthesising at once corrupted the
heap when this was tried, so exactly one dedicated worker thread ever calls into it. Every call's
utterances, and the blocking `synthesize()` helper, queue jobs to that thread; jobs are one text
piece each (a clause, as the agent's chunker sends them), so a long reply for one call cannot hold
the engine for long and the calls share it fairly in FIFO order. eSpeak runs in synchronous mode
at roughly 200-300x real time, so one thread serves many calls.

Audio streams to trio as eSpeak's synth callback produces it (60 ms chunks): the worker hands each
chunk over with `TrioToken.run_sync_soon`, never blocking on trio. Cancelling an utterance marks its
jobs cancelled; the running one stops at its next callback by returning 1 (`espeak_Cancel` has no
effect in synchronous mode), queued ones are skipped.

libespeak-ng is GPL-3.0, so it is an optional extra: `pip install 'offhook[offline]'`.
"""
from __future__ import annotations

import ctypes
import logging
import math
import queue
import re
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import trio

try:
    import espeakng_loader
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "offhook.providers.espeak needs eSpeak NG, which is an optional extra (GPL-3.0): "
        "pip install 'offhook[offline]'") from exc

from offhook.audio import Resampler
from offhook.providers.base import AudioChunk, AudioFormat, TTSError

log = logging.getLogger(__name__)

__all__ = ["ESpeakTTS", "ESpeakSession", "ESpeakUtterance", "synthesize", "native_rate"]

# espeak_AUDIO_OUTPUT / espeak_EVENT_TYPE / flags / parameters from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE = 1
_PARAM_PITCH = 3
_CALLBACK_MS = 60  # audio per synth callback: the streaming granularity


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples since the start of this espeak_Synth call
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True, slots=True)
class _Voice:
    name: str
    wpm: int
    pitch: int


class _Job:
    """One piece of text to speak. Callbacks run on the engine thread."""

    __slots__ = ("text", "voice", "on_audio", "on_end", "cancelled", "samples")

    def __init__(self, text: str, voice: _Voice,
                 on_audio: Callable[[_Job, bytes, list[tuple[int, int]]], None],
                 on_end: Callable[[_Job, str | None], None]):
        self.text = text
        self.voice = voice
        self.on_audio = on_audio  # (job, pcm16 bytes, [(char index, sample in job)] word starts)
        self.on_end = on_end  # (job, error message or None); job.samples = audio produced
        self.cancelled = False  # set from any thread; a plain bool is atomic under the GIL
        self.samples = 0


class _Engine:
    """The only thread allowed to call libespeak-ng."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._callback = _SynthCallback(self._on_synth)  # kept alive for the process lifetime
        self._queue: queue.SimpleQueue[_Job | Callable[[], None]] = queue.SimpleQueue()
        self._job: _Job | None = None
        self._voice: _Voice | None = None
        self._known_voices: dict[str, bool] = {}
        self._ready = threading.Event()
        self.sample_rate = 0
        self.init_error: str | None = None
        threading.Thread(target=self._run, name="espeak-ng", daemon=True).start()
        self._ready.wait()
        if self.init_error:
            raise TTSError(self.init_error)

    # ------------------------------------------------------------ any thread
    def submit(self, job: _Job) -> None:
        self._queue.put(job)

    def call(self, fn: Callable[[], object]) -> object:
        """Run fn on the engine thread and wait for its result (blocking)."""
        done = threading.Event()
        box: list = []

        def run() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            done.set()
        self._queue.put(run)
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def voice_exists(self, name: str) -> bool:
        return bool(self.call(lambda: self._voice_exists(name)))

    # ------------------------------------------------------------ engine thread
    def _run(self) -> None:
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _CALLBACK_MS, espeakng_loader.get_data_path().encode(),
            _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            self.init_error = f"espeak_Initialize failed ({rate})"
            self._ready.set()
            return
        self.sample_rate = rate
        self._lib.espeak_SetSynthCallback(self._callback)
        self._ready.set()
        while True:
            item = self._queue.get()
            try:
                if isinstance(item, _Job):
                    self._synth(item)
                else:
                    item()
            except Exception:  # the engine serves every call: one bad job must not stop it
                log.exception("eSpeak job failed")

    def _voice_exists(self, name: str) -> bool:
        if name not in self._known_voices:
            self._known_voices[name] = self._lib.espeak_SetVoiceByName(name.encode()) == 0
            self._voice = None  # whatever was set before may have been replaced
        return self._known_voices[name]

    def _apply(self, voice: _Voice) -> str | None:
        if voice == self._voice:
            return None
        self._voice = None
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            return f"unknown eSpeak voice {voice.name!r}"
        self._lib.espeak_SetParameter(_PARAM_RATE, voice.wpm, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._voice = voice
        return None

    def _synth(self, job: _Job) -> None:
        if job.cancelled:
            job.on_end(job, None)
            return
        error = self._apply(job.voice)
        if error is None:
            data = job.text.encode("utf-8")
            # Without ENDPAUSE eSpeak drops the pause after the last clause: keep it only where a
            # sentence really ends, so clauses sent one by one still run together naturally.
            flags = _CHARS_UTF8 | (_ENDPAUSE if _SENTENCE_END.search(job.text) else 0)
            self._job = job
            try:
                rc = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
            finally:
                self._job = None
            if rc != 0 and not job.cancelled:
                error = f"espeak_Synth failed ({rc})"
        try:
            job.on_end(job, error)
        except Exception:  # a consumer's failure must not kill the engine for every call
            job.cancelled = True

    def _on_synth(self, wav, n: int, events) -> int:
        job = self._job
        if job is None or job.cancelled:
            return 1
        try:
            words = []
            i = 0
            while True:
                ev = events[i]
                if ev.type == _EVENT_LIST_TERMINATED:
                    break
                if ev.type == _EVENT_WORD:
                    words.append((ev.text_position - 1, ev.sample))
                i += 1
            if n > 0 or words:
                pcm = ctypes.string_at(wav, n * 2) if n > 0 else b""
                job.samples += n
                job.on_audio(job, pcm, words)
        except Exception:
            job.cancelled = True
        return 1 if job.cancelled else 0


_SENTENCE_END = re.compile(r"[.!?]\W*\s*$")
# A boundary at the very end of the buffer after a digit may be "3." of "3.50" or "10:" of "10:30".
_CLAUSE_END = re.compile(r"[.!?;:,](?=\s)|(?<!\d)[.!?;:,]$|\n")
_MAX_HELD_CHARS = 160

_engine_lock = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def native_rate() -> int:
    """eSpeak NG's output sample rate (22050 Hz with the bundled voices)."""
    return _get_engine().sample_rate


def _split_ready(text: str) -> tuple[str, str]:
    """Split buffered text into (ready to speak, held back).

    Text is spoken up to the last clause boundary; a trailing fragment waits for more text (it may
    be half a word) unless it grows long, when it goes up to its last space.
    """
    last = None
    for m in _CLAUSE_END.finditer(text):
        last = m
    if last is not None:
        return text[:last.end()], text[last.end():]
    if len(text) > _MAX_HELD_CHARS:
        cut = text.rfind(" ")
        if cut > 0:
            return text[:cut + 1], text[cut + 1:]
    return "", text


class _Aligner:
    """Word alignment for one utterance from eSpeak's word-start events.

    Each piece runs from a word's first character to the next word's, so the pieces concatenate to
    the text sent; a word ends where the next one starts (its trailing pause included). Times are ms
    from the utterance's first audio. Runs on the engine thread; jobs of one utterance are in order.
    """

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._base = 0  # samples of this utterance before the current job
        self._text = ""
        self._open: tuple[int, int] | None = None  # (char, sample in job) of the unfinished word

    def start_job(self, text: str) -> None:
        self._text = text
        self._open = None

    def words(self, starts: list[tuple[int, int]]) -> list[tuple[str, float, float]]:
        closed = []
        for char, sample in starts:
            if self._open is None:
                self._open = (0, sample)  # leading text belongs to the first word
                continue
            if char <= self._open[0] or char >= len(self._text):
                continue  # eSpeak repeats positions inside numbers; keep pieces monotonic
            closed.append(self._piece(self._open, char, sample))
            self._open = (char, sample)
        return closed

    def end_job(self, samples: int) -> list[tuple[str, float, float]]:
        start = self._open or (0, 0)
        piece = [self._piece(start, len(self._text), samples)] if self._text else []
        self._base += samples
        self._open = None
        return piece

    def _piece(self, start: tuple[int, int], end_char: int, end_sample: int) -> tuple[str, float, float]:
        ms = 1000.0 / self._rate
        return (self._text[start[0]:end_char], (self._base + start[1]) * ms,
                (self._base + max(end_sample, start[1])) * ms)


class _JobDone:
    __slots__ = ("error",)

    def __init__(self, error: str | None) -> None:
        self.error = error


_WAKE = object()


class ESpeakUtterance:
    """One agent utterance: text in as it arrives, 60 ms PCM16 chunks out as eSpeak makes them."""

    def __init__(self, engine: _Engine, voice: _Voice) -> None:
        self.format = AudioFormat("pcm16", engine.sample_rate)
        self.characters = 0
        self.first_audio_latency: float | None = None
        self._engine = engine
        self._voice = voice
        self._token = trio.lowlevel.current_trio_token()
        self._send, self._recv = trio.open_memory_channel[object](math.inf)
        self._aligner = _Aligner(engine.sample_rate)
        self._jobs: list[_Job] = []
        self._done_jobs = 0
        self._pending = ""
        self._first_text_at: float | None = None
        self._flushed = False
        self._closed = False
        # engine thread only: the job being aligned, and its latest chunk, held back until the next
        # callback (~0.1 ms later) so a word's end is known before the chunk carrying it goes out
        self._aligning: _Job | None = None
        self._held: tuple[bytes, list] | None = None

    @property
    def synthesized_seconds(self) -> float:
        """Audio eSpeak produced for this utterance so far, delivered or not (work done)."""
        return sum(j.samples for j in self._jobs) / self.format.sample_rate

    async def send_text(self, text: str) -> None:
        if self._flushed or self._closed:
            raise TTSError("send_text after flush() or close")
        if not text:
            return
        if self._first_text_at is None:
            self._first_text_at = trio.current_time()
        self.characters += len(text)
        ready, self._pending = _split_ready(self._pending + text)
        self._submit(ready)
        await trio.lowlevel.checkpoint()

    async def flush(self) -> None:
        if self._flushed:
            return
        if self._closed:
            raise TTSError("flush after close")
        self._submit(self._pending)
        self._pending = ""
        self._flushed = True
        self._send.send_nowait(_WAKE)
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[AudioChunk]:
        while not (self._flushed and self._done_jobs == len(self._jobs)):
            item = await self._recv.receive()
            if isinstance(item, AudioChunk):
                yield item
            elif isinstance(item, _JobDone):
                self._done_jobs += 1
                if item.error:
                    raise TTSError(item.error)

    # ------------------------------------------------------------ trio side
    def _submit(self, text: str) -> None:
        if not text.strip():
            return  # nothing to say; eSpeak would only produce a click of silence
        job = _Job(text, self._voice, self._on_audio, self._on_end)
        self._jobs.append(job)
        self._engine.submit(job)

    def _deliver(self, item: object) -> None:
        if isinstance(item, AudioChunk) and self.first_audio_latency is None and item.audio:
            self.first_audio_latency = trio.current_time() - (self._first_text_at or trio.current_time())
        try:
            self._send.send_nowait(item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the utterance was left; its remaining audio is dropped

    def close(self) -> None:
        self._closed = True
        for job in self._jobs:
            job.cancelled = True
        self._recv.close()

    # ------------------------------------------------------------ engine thread
    def _hand_over(self, item: object) -> None:
        try:
            self._token.run_sync_soon(self._deliver, item)
        except trio.RunFinishedError:
            for job in self._jobs:
                job.cancelled = True

    def _on_audio(self, job: _Job, pcm: bytes, words: list[tuple[int, int]]) -> None:
        if self._aligning is not job:
            self._aligning = job
            self._aligner.start_job(job.text)
        closed = self._aligner.words(words)
        if not pcm and self._held is not None:
            self._held[1].extend(closed)  # events without audio: no empty chunk for them
            return
        if self._held is not None:
            self._hand_over(AudioChunk(self._held[0], tuple(self._held[1]) or None))
        self._held = (pcm, closed)

    def _on_end(self, job: _Job, error: str | None) -> None:
        if error is None and self._aligning is job:
            pcm, words = self._held or (b"", [])
            words = words + self._aligner.end_job(job.samples)
            self._hand_over(AudioChunk(pcm, tuple(words) or None))
        self._held = None
        self._aligning = None
        self._hand_over(_JobDone(error))


class ESpeakSession:
    """A call's handle on the shared engine; utterances are independent and may overlap."""

    def __init__(self, engine: _Engine, voice: _Voice) -> None:
        self._engine = engine
        self._voice = voice
        self.format = AudioFormat("pcm16", engine.sample_rate)

    @asynccontextmanager
    async def utterance(self) -> AsyncIterator[ESpeakUtterance]:
        utt = ESpeakUtterance(self._engine, self._voice)
        try:
            yield utt
        finally:
            utt.close()


class ESpeakTTS:
    """Offline TTS provider: eSpeak NG, PCM16 at its native rate (22050 Hz)."""

    def __init__(self, voice: str = "en-us", *, wpm: int = 175, pitch: int = 50,
                 name: str = "espeak") -> None:
        if not 80 <= wpm <= 450:
            raise ValueError(f"wpm must be 80..450, got {wpm}")
        if not 0 <= pitch <= 99:
            raise ValueError(f"pitch must be 0..99, got {pitch}")
        self.name = name
        self._voice = _Voice(voice, wpm, pitch)
        self._checked = False

    async def _ready_engine(self) -> _Engine:
        engine = _engine if _engine is not None else await trio.to_thread.run_sync(_get_engine)
        if not self._checked:
            if not await trio.to_thread.run_sync(engine.voice_exists, self._voice.name):
                raise TTSError(f"unknown eSpeak voice {self._voice.name!r} "
                               "(e.g. 'en-us', 'en', 'en-gb-x-rp', 'en-us+m3')")
            self._checked = True
        return engine

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ESpeakSession]:
        yield ESpeakSession(await self._ready_engine(), self._voice)


def synthesize(text: str, rate: int = 8000, *, voice: str = "en-us", wpm: int = 175,
               pitch: int = 50) -> bytes:
    """Speak text to PCM16 LE at `rate` Hz (blocking; safe from any thread except eSpeak's own).

    For the simulated caller and for pre-rendering fixed phrases; calls use ESpeakTTS streams.
    """
    engine = _get_engine()
    parts: list[bytes] = []
    done = threading.Event()
    outcome: list[str | None] = []

    def on_end(_job: _Job, error: str | None) -> None:
        outcome.append(error)
        done.set()

    if text.strip():
        engine.submit(_Job(text, _Voice(voice, wpm, pitch), lambda _j, pcm, _w: parts.append(pcm), on_end))
        done.wait()
        if outcome[0]:
            raise TTSError(outcome[0])
    pcm = b"".join(parts)
    if rate == engine.sample_rate:
        return pcm
    rs = Resampler(engine.sample_rate, rate)
    return rs.process(pcm) + rs.flush()
