"""What the metrics, the report and the dashboard compute from call records, defined once.

Stage latencies (seconds, call clock) per turn, each None when either end was not reached:
  endpoint_wait    caller speech end -> endpoint committed (the silence we waited for)
  stt_final        caller speech end -> STT final transcript
  llm_first_token  endpoint committed -> first LLM token (0 when a speculative reply had its first
                   token before the commit: the caller waited on no LLM; hits are counted apart)
  tts_first_audio  first LLM token -> first TTS audio (likewise never below 0)
"""
from __future__ import annotations

import math
from typing import Iterable

from offhook.observe.record import BargeInRecord, CallRecord, EndedBy, EndReason, TurnRecord

STAGES = ("endpoint_wait", "stt_final", "llm_first_token", "tts_first_audio")

# (label, upper bound in seconds); a duration falls in the first bucket whose bound exceeds it
DURATION_BUCKETS = (("0-10s", 10.0), ("10-30s", 30.0), ("30-60s", 60.0), ("1-3m", 180.0), ("3m+", math.inf))

BARGE_IN_SUCCESS_S = 0.200  # playback must stop within this of the caller's onset

HANDOFF_REASONS = (EndReason.HANDOFF_VOICEMAIL, EndReason.HANDOFF_HUMAN)


def stage_latencies(turn: TurnRecord) -> dict[str, float | None]:
    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else max(0.0, b - a)
    return {
        "endpoint_wait": span(turn.speech_end, turn.endpoint_commit),
        "stt_final": span(turn.speech_end, turn.stt_final),
        "llm_first_token": span(turn.endpoint_commit, turn.llm_first_token),
        "tts_first_audio": span(turn.llm_first_token, turn.tts_first_audio),
    }


def duration_bucket(seconds: float) -> str:
    for label, bound in DURATION_BUCKETS:
        if seconds < bound:
            return label
    return DURATION_BUCKETS[-1][0]


def barge_in_stop_delay(b: BargeInRecord) -> float | None:
    """Onset -> playback stopped; the clear time stands in when the stop was not observed (Twilio
    drops its buffer on `clear`, so the two differ by one network hop)."""
    end = b.playback_stopped if b.playback_stopped is not None else b.clear_sent
    return None if end is None else end - b.onset


def barge_in_succeeded(b: BargeInRecord) -> bool:
    d = barge_in_stop_delay(b)
    return b.outcome == "true" and d is not None and d <= BARGE_IN_SUCCESS_S + 1e-9


def is_error(reason: EndReason) -> bool:
    return reason.value.startswith("error_") or reason is EndReason.LLM_FAILURES


def caller_hung_up(rec: CallRecord) -> bool:
    return rec.ended_by is EndedBy.CALLER or rec.end_reason is EndReason.CALLER_HANGUP


def count_events(rec: CallRecord, kind: str) -> int:
    return sum(1 for e in rec.events if e.kind == kind or e.kind.startswith(kind + ":"))


def bad_message_counts(rec: CallRecord) -> dict[str, int]:
    """EventRecord(kind="bad_message", detail="<kind>:<n>") -> {kind: n}; a bare kind counts once."""
    out: dict[str, int] = {}
    for e in rec.events:
        if e.kind != "bad_message":
            continue
        kind, _, n = e.detail.rpartition(":")
        if not kind or not n.isdigit():
            kind, n = e.detail or "unknown", "1"
        out[kind] = out.get(kind, 0) + int(n)
    return out


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default): P50 of [1, 2, 3, 4] is 2.5."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
