"""The call record: what one call leaves behind, produced by the agent and stored by `observe.store`.

Plain dataclasses only (no IO), so every layer may import them. Times inside a call are seconds on
the call's own clock (`trio.current_time()` at the server) relative to `CallRecord.t0`; wall-clock
timestamps (`started_at`, `ended_at`) are Unix seconds.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class EndReason(str, enum.Enum):
    CALLER_HANGUP = "caller_hangup"
    AGENT_END = "agent_end"
    HANDOFF_VOICEMAIL = "handoff_voicemail"
    HANDOFF_HUMAN = "handoff_human"
    LLM_FAILURES = "llm_failures"
    ERROR_PROTOCOL = "error_protocol"
    ERROR_PROVIDER = "error_provider"
    ERROR_INTERNAL = "error_internal"
    SERVER_SHUTDOWN = "server_shutdown"
    INCOMPLETE = "incomplete"  # written at call start; a crash leaves it


class EndedBy(str, enum.Enum):
    CALLER = "caller"
    AGENT = "agent"
    SYSTEM = "system"
    UNKNOWN = "unknown"


class EventKind(str, enum.Enum):
    """The EventRecord kinds that monitoring counts (other kinds are stored and shown, not counted)."""

    STALL = "stall"
    TTS_FALLBACK = "tts_fallback"
    LLM_FAILURE = "llm_failure"
    WATCHDOG = "watchdog"
    HANDOFF = "handoff"
    BAD_MESSAGE = "bad_message"  # detail "<kind>:<count>"
    ERROR = "error"


@dataclass
class TurnRecord:
    """One caller turn and the agent's reply. Times are call-relative seconds, None when not reached."""

    index: int
    caller_text: str = ""
    caller_confidence: float | None = None
    agent_text_generated: str = ""
    agent_text_heard: str = ""
    interrupted: bool = False
    speculative: str = "none"  # none | hit | miss
    stalled: bool = False
    tts_provider: str = ""
    # latency waterfall
    speech_end: float | None = None
    stt_final: float | None = None
    endpoint_commit: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_frame_sent: float | None = None
    first_frame_played: float | None = None

    @property
    def first_audio_latency(self) -> float | None:
        """End of caller speech -> first agent audio played (falls back to sent when no mark came)."""
        end = self.first_frame_played if self.first_frame_played is not None else self.first_frame_sent
        if self.speech_end is None or end is None:
            return None
        return end - self.speech_end


@dataclass
class BargeInRecord:
    onset: float
    clear_sent: float | None = None
    playback_stopped: float | None = None
    outcome: str = "pending"  # true | false | pending
    heard_ms: float = 0.0
    cancelled: list[str] = field(default_factory=list)  # e.g. ["tts", "llm"]

    @property
    def reaction(self) -> float | None:
        return None if self.clear_sent is None else self.clear_sent - self.onset


@dataclass
class EventRecord:
    """Stalls, TTS fallbacks, LLM failures, watchdog firings, bad inbound messages, handoffs."""

    kind: str
    at: float
    detail: str = ""


@dataclass
class Usage:
    twilio_seconds: float = 0.0
    stt_seconds: float = 0.0
    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    llm_cache_write_tokens: int = 0
    llm_cache_read_tokens: int = 0
    tts_characters: dict[str, int] = field(default_factory=dict)  # provider name -> characters
    stt_provider: str = ""  # provider name for pricing ("" = the default-priced one)
    llm_model: str = ""     # model or provider name for pricing ("" = the default-priced one)

    def add_tts(self, provider: str, chars: int) -> None:
        self.tts_characters[provider] = self.tts_characters.get(provider, 0) + chars


@dataclass
class CallRecord:
    call_sid: str
    stream_sid: str = ""
    account_sid: str = ""
    from_number: str = ""
    to_number: str = ""
    started_at: float = 0.0
    ended_at: float | None = None
    t0: float = 0.0  # call clock at start, for the relative times below
    end_reason: EndReason = EndReason.INCOMPLETE
    ended_by: EndedBy = EndedBy.UNKNOWN
    complete: bool = False
    turns: list[TurnRecord] = field(default_factory=list)
    barge_ins: list[BargeInRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: dict[str, float] = field(default_factory=dict)  # component -> dollars, plus "total"
    recording_path: str | None = None
    server_id: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["end_reason"] = self.end_reason.value
        d["ended_by"] = self.ended_by.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CallRecord":
        d = dict(d)
        d["end_reason"] = EndReason(d.get("end_reason", EndReason.INCOMPLETE.value))
        d["ended_by"] = EndedBy(d.get("ended_by", EndedBy.UNKNOWN.value))
        d["turns"] = [TurnRecord(**t) for t in d.get("turns", [])]
        d["barge_ins"] = [BargeInRecord(**b) for b in d.get("barge_ins", [])]
        d["events"] = [EventRecord(**e) for e in d.get("events", [])]
        d["usage"] = Usage(**d.get("usage", {}))
        return cls(**d)
