"""Call records for the monitoring tests, built the way the agent fills them."""
from __future__ import annotations

from offhook.observe.record import (BargeInRecord, CallRecord, EndedBy, EndReason, EventRecord, TurnRecord,
                                    Usage)


def turn(index: int, speech_end: float, *, endpoint=0.25, stt=0.20, llm=0.30, tts=0.15, send=0.01, play=0.05,
         text="what time do you open", reply="We open at nine.", **kw) -> TurnRecord:
    """A turn whose stages take the given seconds (endpoint wait and STT final both from speech end)."""
    commit = speech_end + endpoint
    first_token = commit + llm
    first_audio = first_token + tts
    return TurnRecord(index, caller_text=text, caller_confidence=0.91, agent_text_generated=reply,
                      agent_text_heard=reply, tts_provider="elevenlabs", speech_end=speech_end,
                      stt_final=speech_end + stt, endpoint_commit=commit, llm_first_token=first_token,
                      tts_first_audio=first_audio, first_frame_sent=first_audio + send,
                      first_frame_played=first_audio + send + play, **kw)


def sample_record(sid: str, *, started_at: float, duration: float | None,
                  reason: EndReason = EndReason.CALLER_HANGUP, ended_by: EndedBy = EndedBy.CALLER) -> CallRecord:
    rec = CallRecord(
        sid, stream_sid="MZ" + sid, account_sid="AC1", from_number="+15551230000", to_number="+15559870000",
        started_at=started_at, ended_at=None if duration is None else started_at + duration, t0=0.0,
        end_reason=reason, ended_by=ended_by, complete=duration is not None,
        turns=[turn(0, 2.0, text="hi", reply="Hello, Bella's Bistro."), turn(1, 8.0, speculative="hit")],
        barge_ins=[BargeInRecord(onset=9.5, clear_sent=9.58, playback_stopped=9.6, outcome="true", heard_ms=400,
                                 cancelled=["tts", "llm"])],
        events=[EventRecord("stall", 12.0, "tts 1.2 s"), EventRecord("bad_message", 0.0, "bad_json:2")],
        usage=Usage(twilio_seconds=duration or 0.0, stt_seconds=duration or 0.0, llm_input_tokens=4000,
                    llm_output_tokens=120, llm_cache_read_tokens=3000, tts_characters={"elevenlabs": 300}),
        cost={"twilio": 0.025, "stt": 0.01, "llm": 0.005, "tts_elevenlabs": 0.024, "total": 0.064})
    return rec
