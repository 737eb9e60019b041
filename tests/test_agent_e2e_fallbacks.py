"""The LLM fallbacks end to end: the stall phrase, a hung LLM, three failures -> handoff (TTS and
STT fallbacks: test_agent_e2e_tts.py)."""
import httpx
import pytest

from agent_helpers import PUBLIC, agent_rig, heard_after, mock_clock
from edge_helpers import TOKEN
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.twilio.signature import sign

pytestmark = pytest.mark.timeout(60)

GREETING = {"wait_for_agent": {"quiet": 0.5, "timeout": 10}}
AFTER = {"wait_for_agent": {"quiet": 0.6, "timeout": 12}}
QUESTION = "Where are you located?"
MS_PER_CHAR = 0.065


@mock_clock
async def test_slow_llm_gets_the_stall_phrase_at_two_seconds_then_the_answer():
    slow = LatencyProfile(first_s=2.5, gap_s=0.03)
    async with agent_rig(llm_profile=slow) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, {"wait_for_agent": {"quiet": 0.8, "timeout": 12}}])
    line, turn = result.lines[0], call.record.turns[0]
    assert turn.stalled and [e.detail for e in call.record.events if e.kind == "stall"] == ["Let me check on that."]
    # the caller hears the stall phrase exactly 2.0 s after the turn was committed ...
    stall_at = heard_after(result, line.end)
    assert stall_at == pytest.approx(turn.endpoint_commit + 2.0, abs=0.021)
    stall_len = len("Let me check on that.") * MS_PER_CHAR
    assert result.agent_heard_between(stall_at, stall_at + stall_len) == pytest.approx(stall_len, abs=0.03)
    # ... and then the answer, after the phrase (never over it), once the LLM has spoken
    assert turn.llm_first_token >= turn.endpoint_commit + 2.0
    assert turn.first_frame_played >= stall_at + stall_len - 0.021
    assert turn.first_frame_played >= turn.tts_first_audio >= turn.llm_first_token
    assert result.agent_heard_between(stall_at + stall_len, result.duration) > 1.0
    assert "Street" in rig.said()[-1]


@mock_clock
async def test_llm_that_first_token_before_the_stall_time_gets_no_stall():
    async with agent_rig(llm_profile=LatencyProfile(first_s=1.7, gap_s=0.03)) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, AFTER])
    assert not call.record.turns[0].stalled and not any(e.kind == "stall" for e in call.record.events)


@pytest.mark.parametrize("handoff_number", ["", "+15550001111"])
@mock_clock
async def test_three_llm_failures_hand_the_caller_to_voicemail(handoff_number):
    faults = FaultPlan.always(Fault("error", status=529))
    async with agent_rig(llm_faults=faults, handoff_number=handoff_number) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, {"wait_for_agent": {"quiet": 3, "timeout": 12}}])
        async with httpx.AsyncClient(base_url=rig.app.base_http) as http:
            params = {"CallSid": result.call_sid}
            after = await http.post("/twilio/after-stream", data=params, headers={
                "X-Twilio-Signature": sign(TOKEN, PUBLIC + "/twilio/after-stream", params)})
    kinds = [e.kind for e in call.record.events]
    assert kinds.count("llm_failure") == 3 and kinds.count("handoff") == 1
    assert len([r for r in rig.llm.requests if r.status == 529]) == 3
    # the caller heard the handoff line, then the server ended the media stream
    assert rig.said()[-1].strip() == rig.config.handoff_line
    assert result.ended_by == "server"
    last_audio = result.agent_played[-1][0] * 0.02
    assert result.duration - last_audio < 0.5
    assert after.status_code == 200
    if handoff_number:
        assert call.end_reason == "handoff_human"
        assert "<Number>+15550001111</Number>" in after.text
    else:
        assert call.end_reason == "handoff_voicemail"
        assert "<Record" in after.text and rig.config.voicemail_prompt in after.text


@mock_clock
async def test_llm_hang_is_a_timeout_the_stall_covers_and_the_retry_answers():
    faults = FaultPlan([Fault("hang")])  # the first request (the speculative one) never answers
    async with agent_rig(llm_faults=faults, llm_timeout_s=3.0) as rig:
        result, call = await rig.call([GREETING, {"say": QUESTION}, {"wait_for_agent": {"quiet": 0.8, "timeout": 15}}])
    turn, line = call.record.turns[0], result.lines[0]
    failures = [e.detail for e in call.record.events if e.kind == "llm_failure"]
    assert len(failures) == 1 and failures[0].startswith("timeout")
    assert rig.llm.requests[0].disconnected_at is not None      # the hung request was abandoned
    stall_at = heard_after(result, line.end)
    assert stall_at == pytest.approx(turn.endpoint_commit + 2.0, abs=0.021)
    # the retry went out at the request's deadline and its answer was heard after the stall
    retry = rig.llm.requests[1]
    assert retry.received_at - rig.llm.requests[0].received_at == pytest.approx(3.0 + 0.05, abs=0.03)
    assert turn.first_frame_played >= retry.first_token_at - call.t0
    assert "Street" in rig.said()[-1]
