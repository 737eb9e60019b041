"""The primary voice's connection lost at awkward moments (a connection lost mid-utterance is in
test_agent_e2e_tts): one the service closes between turns is opened again; a call ended, or a reply
cancelled, in the same step as its TTS socket fails ends cleanly instead of crashing with the TTS
failure."""
import logging
from contextlib import contextmanager

import pytest
import trio

from agent_helpers import LLM_PROFILE, STARTUP_TTS_CONNECTIONS, agent_rig, heard_after, heard_spans, mock_clock, \
    tts_faults
from test_agent_e2e_tts import AFTER, GREETING, GREETING_TEXT, MS_PER_CHAR, QUESTION, words_spoken
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile

pytestmark = pytest.mark.timeout(60)

LONG_ANSWER = ("We are at four twelve Maple Street in Springfield, right next to the post office, across "
               "from the bakery, with free parking behind the building and a ramp at the side door.")


@mock_clock
async def test_a_connection_the_service_closes_between_turns_is_opened_again_for_the_next(caplog):
    caplog.set_level(logging.WARNING, "offhook.providers.elevenlabs")
    # 1000 at 1.0 s: the greeting's audio has all arrived (it is still playing), no utterance is open
    async with agent_rig(tts_faults=tts_faults(Fault("close_normal", after_s=1.0))) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    conns = rig.tts.connections[STARTUP_TTS_CONNECTIONS:]
    assert len(conns) == 2 and conns[0].close_code == 1000
    # the answer went to the primary over the new connection; nothing needed the fallback
    assert [c.connection for c in rig.contexts()] == [conns[0].index, conns[1].index]
    assert "Maple Street" in rig.said()[-1] and not rig.said(fallback=True)
    assert not any(e.kind == "tts_fallback" for e in call.record.events)
    assert heard_after(result, result.lines[0].end) - result.lines[0].end <= 0.9
    assert result.agent_heard_between(0, result.lines[0].start) == pytest.approx(
        (len(GREETING_TEXT) + 1) * MS_PER_CHAR, abs=0.03)  # the greeting, whole, once
    assert [r.getMessage() for r in caplog.records if r.name == "offhook.providers.elevenlabs"] == [
        "ElevenLabs connection 0 failed: ElevenLabs closed the connection: 1000 NORMAL_CLOSURE"]


@mock_clock
async def test_when_every_voice_lost_its_connection_the_first_goes_on_over_a_new_one():
    async with agent_rig(tts_faults=tts_faults(Fault("close_normal", after_s=0.35))) as rig:
        # the fallback's connection of this call closes too, 0.3 s into what it was given to say
        rig.tts2.faults = FaultPlan([Fault("close_normal", after_s=0.3)])
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    fallbacks = [e.detail for e in call.record.events if e.kind == "tts_fallback"]
    assert len(fallbacks) == 2 and fallbacks[0].endswith("continuing on elevenlabs-fallback")
    assert fallbacks[1].startswith("elevenlabs-fallback: ") and "1000 NORMAL_CLOSURE" in fallbacks[1]
    assert fallbacks[1].endswith("continuing on elevenlabs (new connection)")
    # each voice went on from the first word whose audio had not reached offhook from the voice
    # before it (a word cut mid-way is said again in full): the whole greeting, in three pieces
    sent = [rig.said()[0].split(), rig.said(fallback=True)[0].split(), rig.said()[1].split()]
    assert sent[0] == GREETING_TEXT.split()
    first, second = (call.pacer.utterances[u] for u in sorted(call.pacer.utterances)[:2])
    for before, u, after in ((sent[0], first, sent[1]), (sent[1], second, sent[2])):
        done = words_spoken(before, "".join(t for t, _, _ in u.alignment))
        assert 0 <= done < len(before) and after == before[done:]
    assert sent[2]
    assert rig.contexts()[1].connection != rig.contexts()[0].connection
    # the caller heard the greeting, whole and without a gap, then the answer (primary, healed)
    greeting = heard_spans(result)[0]
    assert greeting[1] - greeting[0] >= len(GREETING_TEXT) * MS_PER_CHAR - 0.05
    assert heard_after(result, result.lines[0].end) - result.lines[0].end <= 0.9
    assert "Maple Street" in rig.said()[-1] and len(rig.said(fallback=True)) == 1
    assert call.end_reason == "caller_hangup" and not [k for _, k, _ in call.events if k == "error"]


@contextmanager
def on_tts_connection_failure(act):
    """Run `act()` in the scheduler step right after the client notices a TTS connection failure
    (its warning): the utterance reading from it wakes with the failure in that same step, which
    is the race a call's teardown or a barge-in runs into under load."""
    noticed = trio.Event()

    class Hook(logging.Handler):
        def emit(self, record):
            if "failed" in record.getMessage():
                noticed.set()

    hook = Hook()
    logger = logging.getLogger("offhook.providers.elevenlabs")
    logger.addHandler(hook)

    async def watch():
        await noticed.wait()
        act()

    try:
        yield watch
    finally:
        logger.removeHandler(hook)


PARKING_ANSWER = "Yes, there is free parking behind the building."


def long_answer(messages, system):
    return PARKING_ANSWER if "parking" in str(messages[-1]) else LONG_ANSWER


# the LLM is slow enough that the reply is still being generated (its text feed open) at the fault
SLOW_LLM = LatencyProfile(first_s=LLM_PROFILE.first_s, gap_s=0.12, network_s=LLM_PROFILE.network_s)
MID_ANSWER = 6.5  # from the connection's first text (the greeting): inside the answer's generation


@pytest.mark.parametrize("how", ["server_going_away", "caller_hangup"])
@mock_clock
async def test_a_call_ending_as_its_tts_connection_fails_ends_cleanly(how):
    async with agent_rig(responder=long_answer, llm_profile=SLOW_LLM,
                         tts_faults=tts_faults(Fault("close_normal", after_s=MID_ANSWER))) as rig:
        def end():
            (call,) = rig.app.active.values()
            if how == "caller_hangup":
                call.end("caller_hangup", "caller")
            else:
                call.cancel_scope.cancel()  # what the server's own shutdown does to its calls

        with on_tts_connection_failure(end) as watch:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                result, call = await rig.call([GREETING, {"say": QUESTION}, {"wait": 12.0}])
    assert [k for _, k, _ in call.events if k == "error"] == []  # the handler did not crash
    assert call.end_reason == ("caller_hangup" if how == "caller_hangup" else "server_shutdown")
    assert call.record.end_reason.value == call.end_reason
    # the line went dead while the answer was playing, in the primary voice, and nothing followed
    answer = heard_spans(result)[-1]
    assert answer[0] < MID_ANSWER < answer[1] + 0.2
    assert not rig.said(fallback=True)


@mock_clock
async def test_a_reply_cancelled_as_its_tts_connection_fails_leaves_the_call_going():
    agents = []
    async with agent_rig(responder=long_answer, llm_profile=SLOW_LLM,
                         tts_faults=tts_faults(Fault("close_normal", after_s=MID_ANSWER))) as rig:
        make = rig.app.handler_factory
        rig.app.handler_factory = lambda call: agents.append(make(call)) or agents[-1]

        def cancel_reply():
            agents[0].speaking.scope.cancel()  # as a barge-in does

        with on_tts_connection_failure(cancel_reply) as watch:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                result, call = await rig.call([GREETING, {"say": QUESTION}, {"wait": 3.0},
                                               {"say": "Do you have parking?"}, AFTER])
    assert [k for _, k, _ in call.events if k == "error"] == []
    assert call.end_reason == "caller_hangup"
    # the next question was answered in full, on the primary's new connection (the cancel came
    # first: no attempt failed, so nothing fell back)
    last = result.lines[-1]
    assert heard_after(result, last.end) - last.end <= 0.9
    assert rig.said()[-1].strip() == PARKING_ANSWER
    assert len({c.connection for c in rig.contexts()}) == 2
    assert not rig.said(fallback=True)
