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


DAY = 86400.0


def fa_turn(index: int, first_audio: float, speech_end: float = 1.0) -> TurnRecord:
    """A turn with the given first-audio latency: endpoint wait = first_audio - 0.4, LLM 0.2, TTS 0.1,
    sending 0, playout 0.1, STT final 0.2 after speech end."""
    return turn(index, speech_end, endpoint=first_audio - 0.4, stt=0.2, llm=0.2, tts=0.1, send=0.0, play=0.1)


def seeded_calls(now: float) -> list[CallRecord]:
    """Seven calls with hand-picked figures (see test_observe_report for the expected report)."""
    def call(sid, day_ago, dur, reason, by, fas, cost, barge=(), events=(), recording=None):
        started = now - day_ago * DAY
        r = CallRecord(sid, from_number="+15551234567", to_number="+15559870000", started_at=started,
                       ended_at=started + dur, end_reason=reason, ended_by=by, complete=True,
                       turns=[fa_turn(i, fa, speech_end=2.0 + 5 * i) for i, fa in enumerate(fas)],
                       barge_ins=list(barge), events=[EventRecord(k, 3.0, "") for k in events],
                       usage=Usage(twilio_seconds=dur), cost={"twilio": cost * 0.25, "tts_elevenlabs": cost * 0.75,
                                                              "total": cost})
        if recording:
            r.recording_path = f"seed/{sid}.wav"
            r.events.append(EventRecord("recording_kept", dur, recording))
        return r
    ok = BargeInRecord(onset=3.0, clear_sent=3.08, playback_stopped=3.15, outcome="true")
    slow = BargeInRecord(onset=4.0, clear_sent=4.2, playback_stopped=4.25, outcome="true")
    clear_only = BargeInRecord(onset=5.0, clear_sent=5.1, outcome="true")
    false = BargeInRecord(onset=6.0, outcome="false")
    calls = [
        call("CAseed1", 6.0, 5.0, EndReason.CALLER_HANGUP, EndedBy.CALLER, [0.6], 0.01),
        call("CAseed2", 5.0, 20.0, EndReason.CALLER_HANGUP, EndedBy.CALLER, [0.7, 0.8], 0.05,
             barge=[ok, false], events=["stall"]),
        call("CAseed3", 3.0, 45.0, EndReason.AGENT_END, EndedBy.AGENT, [0.9], 0.08, barge=[slow, clear_only],
             events=["tts_fallback"], recording="sampled"),
        call("CAseed4", 2.0, 120.0, EndReason.HANDOFF_HUMAN, EndedBy.AGENT, [1.4], 0.20,
             events=["llm_failure", "llm_failure"], recording="handoff"),
        call("CAseed5", 1.0, 400.0, EndReason.CALLER_HANGUP, EndedBy.CALLER, [], 0.50),
        call("CAold", 9.0, 30.0, EndReason.CALLER_HANGUP, EndedBy.CALLER, [3.0], 9.99),  # before the window
    ]
    calls.append(CallRecord("CAseed6", started_at=now - 0.5 * DAY))  # a server died during this one
    return calls
