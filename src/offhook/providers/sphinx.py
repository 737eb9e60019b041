"""PocketSphinx 5 as an embedded, offline streaming STT provider with a small domain language model.

The general en-US model is slow and inaccurate on phone audio; what works (DESIGN §8) is an n-gram LM
built at start-up from the phrases the business expects (`pocketsphinx.lm.ArpaBoLM`, < 10 ms), a
dictionary cut down to their words (decoder load ~15 ms instead of seconds), `fwdflat=False`, and
the phone audio upsampled to the 16 kHz the bundled model requires.

Decoding runs inline in `send()`, on the trio thread. Measured here: ~0.45 ms per 20 ms chunk (p95
~0.6 ms, real-time factor ~0.02), end of utterance with word posteriors 1-10 ms. A worker thread
would not help: the pocketsphinx binding holds the GIL inside process_raw/end_utt (no `nogil`), so a
thread would add a hand-off per chunk and no parallelism.

Utterances are segmented with offhook's own energy VAD (FrameVad) on the 20 ms frames rather than
pocketsphinx's Endpointer: it works on exactly the frames the call already has (the Endpointer
wants 30 ms frames and decides over a 0.3 s window, which delays SpeechStarted), costs ~1 µs, and
gives the same speech/silence decisions the rest of the pipeline (barge-in, endpointing) uses. Its
weakness, heavy noise, is shared with that pipeline; a pre-roll keeps the word onsets the VAD's
debounce would cut off.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from io import StringIO
from typing import AsyncIterator, Iterable

import numpy as np
import trio

try:
    import pocketsphinx
    from pocketsphinx.lm import ArpaBoLM
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "offhook.providers.sphinx needs PocketSphinx, which is an optional extra: "
        "pip install 'offhook[offline]'") from exc

from offhook.audio import FrameVad, Resampler, ulaw_decode
from offhook.providers.base import Final, Partial, SpeechStarted, STTError, STTEvent, UtteranceEnd, Word

__all__ = ["PocketSphinxSTT", "SphinxRecognizer", "SphinxStream", "BASE_PHRASES", "normalise"]

RATE = 16000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
_FRAMES_PER_S = 100  # pocketsphinx's frame rate (-frate)

# The en-US model's phone set (model/en-us/en-us/mdef), for checking hand-written pronunciations.
PHONES = frozenset(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y "
    "Z ZH".split())

_DIGITS = "zero one two three four five six seven eight nine".split()
# What any caller says whatever the business: answers, politeness, days, times, and digit strings
# (every digit pair, so phone numbers of any shape are in the model).
BASE_PHRASES: tuple[str, ...] = (
    "yes", "no", "yeah", "yes please", "no thanks", "no thank you", "thank you", "thanks", "goodbye",
    "bye", "hello", "hi", "okay", "sure", "that's right", "that's correct", "no that's wrong",
    "sorry", "can you repeat that", "i don't know",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today",
    "tomorrow", "morning", "afternoon", "evening", "next week",
    *(f"at {h}" for h in "one two three four five six seven eight nine ten eleven twelve noon".split()),
    "thirty", "fifteen", "forty five", "o'clock", "a m", "p m", "my name is", "my number is", "it's",
    *(f"{a} {b}" for a in _DIGITS + ["oh"] for b in _DIGITS + ["oh"]),
)

_TEENS = ("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+")
_FILLERS = {"<s>", "</s>", "<sil>"}


def _number_words(digits: str) -> list[str]:
    n = int(digits)
    if len(digits) > 2 or digits.startswith("0") and len(digits) > 1:
        return [_DIGITS[int(d)] for d in digits]  # phone numbers, codes: digit by digit
    if n < 10:
        return [_DIGITS[n]]
    if n < 20:
        return [_TEENS[n - 10]]
    return [_TENS[n // 10]] + ([_DIGITS[n % 10]] if n % 10 else [])


def normalise(text: str) -> list[str]:
    """Text as the recogniser's words: lower case, no punctuation, numbers spelled out."""
    words: list[str] = []
    for tok in _TOKEN.findall(text.lower().replace("&", " and ")):
        words.extend(_number_words(tok) if tok.isdigit() else [tok])
    return words


@dataclass(frozen=True)
class _Model:
    arpa: str
    dictionary: str
    vocabulary: frozenset[str]
    missing: tuple[str, ...]


def _build_model(phrases: Iterable[str], extra_words: dict[str, str]) -> _Model:
    lines = [normalise(p) for p in phrases]
    wanted = {w for line in lines for w in line}
    prons: dict[str, list[str]] = {}
    with open(os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict"),
              encoding="utf-8") as f:
        for entry in f:
            head, _, phones = entry.partition(" ")
            word = head.split("(", 1)[0]
            if word in wanted:
                prons.setdefault(word, []).append(phones.strip())
    for word, phones in extra_words.items():
        prons.setdefault(word, []).insert(0, phones)
    missing = tuple(sorted(wanted - prons.keys()))
    if not wanted & prons.keys():
        raise ValueError(f"none of the phrases' words has a pronunciation: {missing}")
    # A word without a pronunciation cannot be recognised; the rest of its phrase still can.
    corpus = "\n".join(" ".join(w for w in line if w in prons) for line in lines) + "\n"
    lm = ArpaBoLM(text=corpus, add_start=True)
    lm.compute()
    out = StringIO()
    lm.write(out)
    dict_lines = []
    for word in sorted(w for w in wanted if w in prons):
        for i, phones in enumerate(dict.fromkeys(prons[word])):
            dict_lines.append(f"{word if i == 0 else f'{word}({i + 1})'} {phones}\n")
    return _Model(out.getvalue(), "".join(dict_lines), frozenset(wanted - set(missing)), missing)


def _check_pronunciations(extra_words: dict[str, str]) -> dict[str, str]:
    checked = {}
    for word, phones in extra_words.items():
        key = " ".join(normalise(word))
        if not key or " " in key:
            raise ValueError(f"extra word {word!r} must be a single word")
        units = phones.upper().split()
        bad = [p for p in units if p not in PHONES]
        if not units or bad:
            raise ValueError(
                f"pronunciation for {word!r} has unknown phones {bad or phones!r}; use ARPAbet "
                f"without stress marks, e.g. 'K AH T S' (phones: {' '.join(sorted(PHONES))})")
        checked[key] = " ".join(units)
    return checked


# Phone audio upsampled to 16 kHz is digitally silent above 4 kHz, which the wideband model never
# saw: its noise removal and features then misread the speech band. A floor of white noise added to
# what the decoder gets (not to what the VAD hears) fixes most of it. Mean WER on eSpeak-spoken
# phone-band phrases, noise RMS 0/100/200/300/500: 0.53/0.15/0.11/0.10/0.10 at eSpeak's level
# (~-20 dBFS) and 0.52/0.18/0.17/0.20/0.50 for a caller 12 dB quieter; 200 (-44 dBFS) suits both.
# Noise only above 4 kHz helped less.
DEFAULT_FLOOR_NOISE = 200.0


def _floor_noise(rms: float) -> "np.ndarray | None":
    if rms <= 0:
        return None
    rng = np.random.default_rng(20240611)  # fixed: the same audio always decodes the same way
    return np.round(rng.standard_normal(RATE) * rms).astype(np.int32)


class SphinxRecognizer:
    """Sans-IO streaming recogniser: 16 kHz PCM16 in, STT events out, timed in stream audio seconds.

    Not thread-safe; one per call.
    """

    def __init__(self, decoder: "pocketsphinx.Decoder", *, endpoint_ms: float = 250.0,
                 preroll_ms: float = 150.0, partial_every_ms: float = 100.0,
                 max_utterance_s: float = 20.0, floor_noise: float = DEFAULT_FLOOR_NOISE) -> None:
        self._decoder = decoder
        self._noise = _floor_noise(floor_noise)
        self._noise_pos = 0
        self._vad = FrameVad(RATE, FRAME_MS, stop_ms=endpoint_ms)
        self._preroll: deque[bytes] = deque(maxlen=max(1, int(preroll_ms // FRAME_MS)))
        self._partial_every = max(1, int(partial_every_ms // FRAME_MS))
        self._max_frames = int(max_utterance_s * 1000 // FRAME_MS)
        self._buf = bytearray()
        self._frames = 0  # 20 ms frames seen since the stream started
        self._in_utt = False
        self._utt_start = 0.0  # stream seconds of the decoder utterance's first sample
        self._utt_frames = 0
        self._last_partial = ""

    @property
    def in_utterance(self) -> bool:
        return self._in_utt

    def process(self, pcm: bytes) -> list[STTEvent]:
        """Feed PCM16 LE at 16 kHz, any length; whole 20 ms frames are decoded at once."""
        self._buf += pcm
        events: list[STTEvent] = []
        n = len(self._buf) // FRAME_BYTES * FRAME_BYTES
        view = memoryview(self._buf)
        try:
            for off in range(0, n, FRAME_BYTES):
                self._frame(bytes(view[off:off + FRAME_BYTES]), events)
        finally:
            view.release()
            del self._buf[:n]
        return events

    def finalize(self) -> list[STTEvent]:
        """Force the pending transcript out (Deepgram's Finalize: is_final, not speech_final)."""
        events: list[STTEvent] = []
        if self._in_utt:
            self._end(events, speech_final=False)
            if self._vad.speaking:
                self._begin(self._frames / (1000 / FRAME_MS))  # the caller is still talking
        return events

    def close(self) -> None:
        if self._in_utt:
            self._in_utt = False
            try:
                self._decoder.end_utt()
            except RuntimeError:
                pass  # the stream is going away; nothing is waiting for this transcript

    # ------------------------------------------------------------------
    def _frame(self, frame: bytes, events: list[STTEvent]) -> None:
        now = self._frames * FRAME_MS / 1000  # stream seconds at this frame's start
        self._frames += 1
        self._vad.process(frame)
        if not self._in_utt:
            self._preroll.append(frame)
            if self._vad.transition == 1:
                onset = max(0.0, now + FRAME_MS / 1000 - self._vad.speech_ms / 1000)
                events.append(SpeechStarted(round(onset, 3)))
                self._begin(now + FRAME_MS / 1000 - len(self._preroll) * FRAME_MS / 1000)
                for f in self._preroll:
                    self._decode(f)
                self._preroll.clear()
            return
        self._decode(frame)
        if self._vad.transition == -1:
            self._end(events, speech_final=True)
        elif self._utt_frames >= self._max_frames:
            self._end(events, speech_final=False)
            self._begin(now + FRAME_MS / 1000)
        elif self._utt_frames % self._partial_every == 0:
            hyp = self._decoder.hyp()
            text = _clean(hyp.hypstr) if hyp is not None else ""
            if text and text != self._last_partial:
                self._last_partial = text
                events.append(Partial(text))

    def _begin(self, at: float) -> None:
        try:
            self._decoder.start_utt()
        except RuntimeError as exc:
            raise STTError(f"pocketsphinx could not start an utterance: {exc}") from exc
        self._in_utt = True
        self._utt_start = at
        self._utt_frames = 0
        self._last_partial = ""

    def _decode(self, frame: bytes) -> None:
        if self._noise is not None:
            x = np.frombuffer(frame, "<i2").astype(np.int32)
            x += self._noise[self._noise_pos:self._noise_pos + len(x)]
            self._noise_pos = (self._noise_pos + len(x)) % (len(self._noise) - len(x))
            frame = np.clip(x, -32768, 32767).astype("<i2").tobytes()
        try:
            self._decoder.process_raw(frame)
        except RuntimeError as exc:
            raise STTError(f"pocketsphinx failed to decode: {exc}") from exc
        self._utt_frames += 1

    def _end(self, events: list[STTEvent], *, speech_final: bool) -> None:
        self._in_utt = False
        try:
            self._decoder.end_utt()
        except RuntimeError as exc:
            raise STTError(f"pocketsphinx could not finish an utterance: {exc}") from exc
        end = self._utt_start + self._utt_frames * FRAME_MS / 1000
        words = []
        if self._decoder.hyp() is not None:
            for seg in self._decoder.seg():
                text = seg.word.split("(", 1)[0]
                if text in _FILLERS or text.startswith(("[", "+")):
                    continue
                words.append(Word(text, round(self._utt_start + seg.start_frame / _FRAMES_PER_S, 3),
                                  round(self._utt_start + (seg.end_frame + 1) / _FRAMES_PER_S, 3),
                                  round(min(1.0, max(0.0, seg.prob)), 4)))
        text = " ".join(w.text for w in words)
        confidence = round(sum(w.confidence for w in words) / len(words), 4) if words else 0.0
        events.append(Final(text, confidence, tuple(words), speech_final=speech_final,
                            start=round(self._utt_start, 3), end=round(end, 3)))
        if words and speech_final:
            events.append(UtteranceEnd(words[-1].end))


def _clean(hypstr: str) -> str:
    return " ".join(w.split("(", 1)[0] for w in hypstr.split() if w not in _FILLERS and w[0] not in "[+")


class SphinxStream:
    """One call's recognition stream (STTStream)."""

    def __init__(self, recognizer: SphinxRecognizer, sample_rate: int, encoding: str) -> None:
        self.audio_seconds = 0.0
        self._rec = recognizer
        self._mulaw = encoding == "mulaw"
        self._bytes_per_s = sample_rate * (1 if self._mulaw else 2)
        self._resampler = Resampler(sample_rate, RATE) if sample_rate != RATE else None
        self._odd = b""  # linear16 may arrive split mid-sample
        self._send, self._recv = trio.open_memory_channel[STTEvent](math.inf)
        self._closed = False

    async def send(self, audio: bytes) -> None:
        if self._closed:
            raise STTError("send on a closed PocketSphinx stream")
        self.audio_seconds += len(audio) / self._bytes_per_s
        if self._mulaw:
            pcm = ulaw_decode(audio)
        else:
            data = self._odd + bytes(audio)
            cut = len(data) & ~1
            pcm, self._odd = data[:cut], data[cut:]
        if self._resampler is not None and pcm:
            pcm = self._resampler.process(pcm)
        self._emit(self._rec.process(pcm))
        await trio.lowlevel.checkpoint()

    async def finalize(self) -> None:
        if self._closed:
            raise STTError("finalize on a closed PocketSphinx stream")
        self._emit(self._rec.finalize())
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> AsyncIterator[STTEvent]:
        return self._recv.__aiter__()

    def _emit(self, events: list[STTEvent]) -> None:
        for ev in events:
            self._send.send_nowait(ev)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._rec.close()
            self._send.close()


class PocketSphinxSTT:
    """Offline STT provider: PocketSphinx with a language model of the phrases callers are expected
    to say (plus BASE_PHRASES: yes/no, days, times, digit strings).

    extra_words: pronunciations for words the CMU dictionary lacks (business and staff names), in
    ARPAbet without stress marks, e.g. {"zumba": "Z UW M B AH"}. Words of `phrases` that have no
    pronunciation are listed in `missing_words` and left out of the model.
    """

    name = "pocketsphinx"

    def __init__(self, phrases: list[str], extra_words: dict[str, str] | None = None, *,
                 include_base: bool = True, endpoint_ms: float = 250.0) -> None:
        extra = _check_pronunciations(extra_words or {})
        all_phrases = list(phrases) + (list(BASE_PHRASES) if include_base else [])
        if not any(normalise(p) for p in all_phrases):
            raise ValueError("PocketSphinxSTT needs at least one phrase with words in it")
        self._model = _build_model(all_phrases, extra)
        self.missing_words: tuple[str, ...] = self._model.missing
        self.vocabulary: frozenset[str] = self._model.vocabulary
        self._endpoint_ms = endpoint_ms

    def decoder(self) -> "pocketsphinx.Decoder":
        """A fresh decoder on the domain model (~15 ms)."""
        model_dir = os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us")
        with tempfile.TemporaryDirectory(prefix="offhook-sphinx-") as tmp:
            lm_path, dict_path = os.path.join(tmp, "domain.arpa"), os.path.join(tmp, "domain.dict")
            with open(lm_path, "w", encoding="utf-8") as f:
                f.write(self._model.arpa)
            with open(dict_path, "w", encoding="utf-8") as f:
                f.write(self._model.dictionary)
            try:
                return pocketsphinx.Decoder(hmm=model_dir, lm=lm_path, dict=dict_path, fwdflat=False,
                                            samprate=RATE, loglevel="FATAL")
            except (RuntimeError, ValueError) as exc:
                raise STTError(f"pocketsphinx could not load the domain model: {exc}") from exc

    def recognizer(self) -> SphinxRecognizer:
        return SphinxRecognizer(self.decoder(), endpoint_ms=self._endpoint_ms)

    @asynccontextmanager
    async def stream(self, *, sample_rate: int = 8000, encoding: str = "mulaw",
                     tag: str | None = None) -> AsyncIterator[SphinxStream]:
        if encoding == "mulaw" and sample_rate != 8000:
            raise ValueError(f"mulaw audio must be 8000 Hz, got {sample_rate}")
        if encoding not in ("mulaw", "linear16"):
            raise ValueError(f"encoding must be 'mulaw' or 'linear16', got {encoding!r}")
        Resampler(sample_rate, RATE)  # raises a clear ValueError for rates it cannot convert
        stream = SphinxStream(self.recognizer(), sample_rate, encoding)
        try:
            yield stream
        finally:
            stream.close()
