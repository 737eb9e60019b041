"""The three provider interfaces: streaming STT, LLM and TTS, trio-native.

Every stream is an async context manager; leaving it (normally, by error or by cancellation) closes
the provider connection promptly. Implementations live in sibling modules (deepgram, anthropic_llm,
elevenlabs, aura, sphinx, espeak, receptionist); the agent only sees these types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncContextManager, AsyncIterator, Protocol, Sequence, runtime_checkable


# ---------------------------------------------------------------- STT
@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float  # seconds of stream audio
    end: float
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Partial:
    """Interim hypothesis: "the caller is talking", text unreliable."""
    text: str
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Final:
    """A finalised segment. speech_final: the provider's own endpoint (Deepgram speech_final)."""
    text: str
    confidence: float
    words: tuple[Word, ...] = ()
    speech_final: bool = False
    start: float = 0.0
    end: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float  # seconds of stream audio


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    last_word_end: float


STTEvent = Partial | Final | SpeechStarted | UtteranceEnd


class STTError(Exception):
    """The STT stream failed (connection lost beyond recovery, protocol error, auth)."""


@runtime_checkable
class STTStream(Protocol):
    audio_seconds: float  # usage: audio sent, for cost

    async def send(self, audio: bytes) -> None: ...
    async def finalize(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[STTEvent]: ...


class STTProvider(Protocol):
    name: str

    def stream(self, *, sample_rate: int = 8000, encoding: str = "mulaw",
               tag: str | None = None) -> AsyncContextManager[STTStream]:
        """One stream per call. encoding: "mulaw" (8 kHz) or "linear16". tag: the call sid
        (Deepgram's usage tag; the emulator uses it to find the simulated caller's script)."""
        ...


# ---------------------------------------------------------------- LLM
class LLMError(Exception):
    """Base of typed LLM failures; the agent counts these towards handoff."""
    kind = "error"
    retryable = True


class LLMTimeout(LLMError):
    kind = "timeout"


class LLMRateLimited(LLMError):
    kind = "rate_limited"


class LLMOverloaded(LLMError):
    kind = "overloaded"


class LLMServerError(LLMError):
    kind = "server_error"


class LLMConnectionError(LLMError):
    kind = "connection"


class LLMBadRequest(LLMError):
    kind = "bad_request"
    retryable = False


@dataclass(slots=True)
class LLMUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@runtime_checkable
class LLMStream(Protocol):
    usage: LLMUsage

    def __aiter__(self) -> AsyncIterator[str]: ...  # text deltas as they arrive


class LLMProvider(Protocol):
    name: str
    model: str

    def stream(self, messages: Sequence[dict], *, system: str,
               max_tokens: int | None = None) -> AsyncContextManager[LLMStream]:
        """messages: Anthropic-style [{"role": "user"|"assistant", "content": str}, ...]."""
        ...


# ---------------------------------------------------------------- TTS
@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: str  # "ulaw" | "pcm16"
    sample_rate: int


ULAW_8K = AudioFormat("ulaw", 8000)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    audio: bytes
    # (text, start_ms, end_ms) per character or word, relative to the utterance's first audio; the
    # pieces concatenate to the spoken text (word pieces carry their trailing space)
    alignment: tuple[tuple[str, float, float], ...] | None = None


class TTSError(Exception):
    """The TTS stream failed; the agent falls back to the next provider."""


@runtime_checkable
class TTSUtterance(Protocol):
    format: AudioFormat
    characters: int               # usage: characters sent, for cost
    first_audio_latency: float | None  # seconds from first send_text to first audio chunk

    async def send_text(self, text: str) -> None: ...
    async def flush(self) -> None: ...   # no more text: synthesise what is pending and finish
    def __aiter__(self) -> AsyncIterator[AudioChunk]: ...


@runtime_checkable
class TTSSession(Protocol):
    """A call's warm connection to one TTS provider (one per call)."""

    def utterance(self) -> AsyncContextManager[TTSUtterance]: ...


class TTSProvider(Protocol):
    name: str

    def session(self) -> AsyncContextManager[TTSSession]: ...


@dataclass(slots=True)
class ProviderUsage:
    """What a call consumed, per provider, for the cost ledger."""
    stt_seconds: float = 0.0
    llm: LLMUsage = field(default_factory=LLMUsage)
    tts_characters: dict[str, int] = field(default_factory=dict)
