"""TTS and STT fallbacks end to end: TTS error or lost connection / slow first audio / hang -> the
fallback voice goes on from the first unspoken word, the breaker and its probe; a silent STT -> the
stream restarts."""
import logging

import pytest
import trio

from agent_helpers import agent_rig, heard_after, heard_spans, mock_clock, tts_faults
from offhook.agent.factory import PROBE_INTERVAL_S, PROBE_TEXT
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile

pytestmark = pytest.mark.timeout(60)

GREETING = {"wait_for_agent": {"quiet": 0.5, "timeout": 10}}
AFTER = {"wait_for_agent": {"quiet": 0.6, "timeout": 12}}
QUESTION = "Where are you located?"
MS_PER_CHAR = 0.065


def words(text):
    return text.split()


GREETING_TEXT = "Maple Street Hair, how can I help?"


def words_spoken(words_sent, spoken):
    """How many of the words sent had all their characters' audio arrive (the alignment's text)."""
    n = sum(not c.isspace() for c in spoken)
    done = 0
    while done < len(words_sent) and n >= len(words_sent[done]):
        n -= len(words_sent[done])
        done += 1
    return done


def assert_greeting_continued(rig, call):
    """The primary voice spoke the start of the greeting, the fallback voice the rest, from the
    first word whose audio never reached offhook (a word cut mid-way is said again in full)."""
    first = call.pacer.utterances[min(call.pacer.utterances)]  # the greeting, in the primary voice
    full = words(GREETING_TEXT)
    done = words_spoken(full, "".join(t for t, _, _ in first.alignment))
    assert 0 < done < len(full)
    assert words(rig.said(fallback=True)[0]) == full[done:]


# an error message, the connection closed normally (1000) or with an error code, or dropped
@pytest.mark.parametrize("kind, why", [("error", "ElevenLabsServiceError: ElevenLabs error: emulated fault"),
                                       ("close_normal", "closed the connection: 1000 NORMAL_CLOSURE"),
                                       ("close", "closed the connection: 1011 INTERNAL_ERROR"),
                                       ("drop", "closed the connection: 1006 ABNORMAL_CLOSURE")])
@mock_clock
async def test_tts_failure_mid_sentence_the_fallback_voice_continues_it_and_keeps_later_turns(kind, why, caplog):
    caplog.set_level(logging.WARNING, "offhook.providers.elevenlabs")
    async with agent_rig(tts_faults=tts_faults(Fault(kind, after_s=0.35))) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    assert_greeting_continued(rig, call)
    # the caller heard no gap: the fallback's audio arrived while the primary's was still playing
    greeting = heard_spans(result)[0]
    assert greeting[0] < 0.35
    assert greeting[1] - greeting[0] >= len(GREETING_TEXT) * MS_PER_CHAR - 0.05
    (fallback,) = [e for e in call.record.events if e.kind == "tts_fallback"]
    assert fallback.detail.startswith("elevenlabs: ") and why in fallback.detail
    assert fallback.detail.endswith("continuing on elevenlabs-fallback")
    # one warning, for the failure: the sockets closed with the call at its end are no news
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "offhook.providers.elevenlabs"]
    assert warning.startswith("ElevenLabs connection 0 failed: ") and why.split("Error: ", 1)[-1] in warning
    assert call.end_reason == "caller_hangup" and not [k for _, k, _ in call.events if k == "error"]
    # the breaker keeps the next turn on the fallback voice: the primary got no more text
    assert not any(t.strip() for t in rig.said()[1:])
    answer = rig.said(fallback=True)[-1]
    assert call.record.turns[0].tts_provider == "elevenlabs-fallback" and answer.strip()
    assert heard_after(result, result.lines[0].end) - result.lines[0].end <= 0.9


@mock_clock
async def test_a_cheap_probe_brings_later_calls_back_to_the_primary_once_it_is_healthy():
    async with agent_rig(tts_faults=tts_faults(Fault("error", after_s=0.35))) as rig:
        await rig.call([GREETING])
        breaker = rig.factory_shared.breakers["elevenlabs"]
        assert breaker.state == "open"
        before = len(rig.tts.contexts)
        await trio.sleep(PROBE_INTERVAL_S + PROBE_INTERVAL_S / 4 + 0.5)
        # one short probe utterance went to the primary and came back with audio
        probes = [c for c in rig.tts.contexts[before:] if "".join(c.texts).strip()]
        assert ["".join(c.texts).strip() for c in probes] == [PROBE_TEXT]
        assert breaker.state == "closed"
        result, call = await rig.call([GREETING])
    assert rig.said()[-1].strip() == GREETING_TEXT  # the next call's greeting: on the primary again
    assert not any(e.kind == "tts_fallback" for e in call.record.events)


@mock_clock
async def test_tts_slow_first_audio_moves_the_utterance_to_the_fallback_at_the_threshold():
    slow = LatencyProfile(first_s=1.5, gap_s=0.05)
    async with agent_rig(tts_profile=slow) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    first = heard_spans(result)[0]
    # the primary had 1.2 s; the fallback (200 ms + 50 ms network) took over with the whole greeting
    assert 1.2 + 0.25 - 0.03 <= first[0] <= 1.2 + 0.25 + 0.1
    assert words(rig.said(fallback=True)[0]) == words(GREETING_TEXT)
    # the primary's late audio (at 1.5 s) was dropped: the caller heard the greeting once
    assert result.agent_heard_between(0, result.lines[0].start) == pytest.approx(
        (len(GREETING_TEXT) + 1) * MS_PER_CHAR, abs=0.03)  # + the trailing space
    assert any(e.kind == "tts_fallback" and "no audio within 1.2 s" in e.detail for e in call.record.events)


@mock_clock
async def test_tts_hang_mid_sentence_the_watchdog_ends_the_dead_air():
    async with agent_rig(tts_faults=tts_faults(Fault("hang", after_s=0.35))) as rig:
        # a patient caller: does not talk into the dead air
        result, call = await rig.call([{"wait_for_agent": {"quiet": 2.5, "timeout": 10}}, {"say": QUESTION}, AFTER])
    spans = heard_spans(result)
    # the primary's audio ran out, the line went quiet, and after ~1 s the fallback voice went on
    gap = spans[1][0] - spans[0][1]
    assert 1.0 <= gap <= 1.0 + 0.1 + 0.25 + 0.1
    assert any(e.kind == "watchdog:dead_air" and "dead air" in e.detail for e in call.record.events)
    assert_greeting_continued(rig, call)


@mock_clock
async def test_stt_silent_while_the_caller_talks_the_watchdog_restarts_the_stream():
    faults = FaultPlan([Fault("hang", after_s=1.0)])  # the call's STT goes quiet after 1 s
    async with agent_rig(stt_faults=faults) as rig:
        result, call = await rig.call([GREETING, {"say": "Hello? Hello? Can anybody hear me? Hello?"},
                                       {"wait": 9.0}, {"say": QUESTION},
                                       {"wait_for_agent": {"quiet": 0.8, "timeout": 15}}])
    restarts = [e for e in call.record.events if e.kind == "watchdog:stt_silent" and "STT" in e.detail]
    assert len(restarts) == 1 and restarts[0].at >= 10.0
    assert len(rig.stt.for_tag(result.call_sid)) == 2  # a fresh connection after the restart
    # the question after the restart was heard and answered within the usual budget
    last = result.lines[-1]
    answered = heard_after(result, last.end)
    assert answered is not None and answered - last.end < 1.0
    assert call.record.turns and call.record.turns[0].caller_text.startswith("Where")
    assert result.agent_heard_between(result.lines[0].start, last.start) == 0  # nothing before it


@mock_clock
async def test_stt_refused_at_call_start_is_retried_and_the_call_goes_on():
    faults = FaultPlan([Fault("error", status=503)])  # the call's first STT connection is refused
    async with agent_rig(stt_faults=faults) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    errors = [e for e in call.record.events if e.kind == "stt_error"]
    assert len(errors) == 1 and errors[0].at < 0.5
    assert len(rig.stt.for_tag(result.call_sid)) == 1 and len(rig.stt.rejected) == 1
    line = result.lines[0]
    assert heard_after(result, line.end) - line.end <= 0.8
    assert "located" in call.record.turns[0].caller_text
