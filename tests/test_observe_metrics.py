"""Metrics from a finished record, the contract names, and the event-loop lag gauge."""
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio.testing import MockClock

from observe_helpers import sample_record
from offhook.observe.metrics import Metrics
from offhook.observe.record import EndedBy, EndReason, EventRecord

CONTRACT = {  # the names operators' dashboards are built on (issue 6)
    "offhook_first_audio_seconds": "histogram", "offhook_stage_seconds": "histogram",
    "offhook_barge_in_reaction_seconds": "histogram", "offhook_calls": "counter",
    "offhook_barge_ins": "counter", "offhook_hangups": "counter", "offhook_stalls": "counter",
    "offhook_tts_fallbacks": "counter", "offhook_llm_failures": "counter", "offhook_handoffs": "counter",
    "offhook_bad_messages": "counter", "offhook_speculative": "counter", "offhook_cost_dollars": "counter",
    "offhook_active_calls": "gauge", "offhook_event_loop_lag_seconds": "gauge",
}


def samples(metrics: Metrics) -> dict:
    out = {}
    for fam in text_string_to_metric_families(metrics.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_contract_names_and_types():
    fams = {f.name: f.type for f in text_string_to_metric_families(Metrics().render().decode())}
    for name, kind in CONTRACT.items():
        assert fams.get(name) == kind, name


def test_a_finished_call_moves_its_metrics():
    m = Metrics()
    rec = sample_record("CA1", started_at=0.0, duration=95.0)  # 2 turns, 1 true barge-in, 1 stall, 2 bad_json
    rec.events.append(EventRecord("watchdog", 50.0, "tts_stuck"))
    rec.events.append(EventRecord("watchdog:stt_silent", 60.0, "STT silent 4.1 s while the caller spoke"))
    rec.events.append(EventRecord("watchdog", 70.0, "dead air on elevenlabs: switching voice"))
    m.call_finished(rec)
    hand = sample_record("CA2", started_at=0.0, duration=8.0, reason=EndReason.HANDOFF_HUMAN, ended_by=EndedBy.AGENT)
    hand.turns, hand.barge_ins = [], []
    hand.events = [EventRecord("tts_fallback", 1.0), EventRecord("llm_failure", 2.0)]
    m.call_finished(hand)
    s = samples(m)
    assert s[("offhook_first_audio_seconds_count", ())] == 2
    # the helper's turns: speech end +0.76 s first audio; 0.25 endpoint, 0.2 STT, 0.3 LLM, 0.15 TTS
    assert abs(s[("offhook_first_audio_seconds_sum", ())] - 2 * 0.76) < 1e-9
    assert s[("offhook_first_audio_seconds_bucket", (("le", "0.7"),))] == 0
    assert s[("offhook_first_audio_seconds_bucket", (("le", "0.8"),))] == 2
    for stage, v in (("endpoint_wait", 0.25), ("stt_final", 0.2), ("llm_first_token", 0.3), ("tts_first_audio", 0.15)):
        assert abs(s[("offhook_stage_seconds_sum", (("stage", stage),))] - 2 * v) < 1e-9
    assert abs(s[("offhook_barge_in_reaction_seconds_sum", ())] - 0.08) < 1e-9
    assert s[("offhook_barge_ins_total", (("outcome", "true"),))] == 1
    assert s[("offhook_calls_total", (("reason", "caller_hangup"),))] == 1
    assert s[("offhook_calls_total", (("reason", "handoff_human"),))] == 1
    assert s[("offhook_hangups_total", (("duration_bucket", "1-3m"), ("ended_by", "caller")))] == 1
    assert s[("offhook_hangups_total", (("duration_bucket", "0-10s"), ("ended_by", "agent")))] == 1
    assert s[("offhook_stalls_total", ())] == 1 and s[("offhook_handoffs_total", ())] == 1
    assert s[("offhook_tts_fallbacks_total", ())] == 1 and s[("offhook_llm_failures_total", ())] == 1
    assert s[("offhook_bad_messages_total", (("kind", "bad_json"),))] == 2
    assert s[("offhook_watchdog_events_total", (("kind", "tts_stuck"),))] == 1
    assert s[("offhook_watchdog_events_total", (("kind", "stt_silent"),))] == 1
    assert s[("offhook_watchdog_events_total", (("kind", "other"),))] == 1  # free text never becomes a label
    assert s[("offhook_speculative_total", (("outcome", "hit"),))] == 1
    assert abs(s[("offhook_cost_dollars_total", (("component", "tts_elevenlabs"),))] - 2 * 0.024) < 1e-9


def test_two_observers_never_share_counts():
    a, b = Metrics(), Metrics()
    a.call_finished(sample_record("CA1", started_at=0.0, duration=5.0))
    assert samples(a)[("offhook_calls_total", (("reason", "caller_hangup"),))] == 1
    assert ("offhook_calls_total", (("reason", "caller_hangup"),)) not in samples(b)


def lag(m: Metrics) -> float:
    return samples(m)[("offhook_event_loop_lag_seconds", ())]


def test_event_loop_lag_shows_a_blocked_loop():
    m = Metrics()

    async def main():
        clock = trio.lowlevel.current_clock()
        async with trio.open_nursery() as n:
            await n.start(m.measure_loop_lag, 0.5)
            await trio.sleep(1.2)
            assert lag(m) == 0.0  # an idle loop wakes its timers on time
            # a handler hogs the loop for 0.7 s (time passes, nothing else runs)
            clock.jump(0.7)
            await trio.sleep(0)
            await trio.sleep(0.01)
            assert abs(lag(m) - 0.4) < 1e-6  # due at 1.5 s, woke at 1.9 s
            await trio.sleep(0.6)
            assert lag(m) == 0.0
            n.cancel_scope.cancel()
    trio.run(main, clock=MockClock(autojump_threshold=0))
