"""The agent end to end: the real server, real provider clients against their emulators, the
simulated caller. Assertions are on what the caller heard and when (virtual time, exact)."""
import pytest

from agent_helpers import agent_rig, heard_after, heard_spans, mock_clock

pytestmark = pytest.mark.timeout(60)

QUESTION = "What time do you open tomorrow?"
GREET_THEN_ASK = [{"wait_for_agent": {"quiet": 0.6, "timeout": 15}}, {"say": QUESTION},
                  {"wait_for_agent": {"quiet": 0.8, "timeout": 15}}]


@mock_clock
async def test_greeting_then_a_question_answered_within_budget():
    async with agent_rig(profile="", recording_notice="This call may be recorded.") as rig:
        result, call = await rig.call(GREET_THEN_ASK)
    assert not result.error and result.ended_by == "caller"
    spans = heard_spans(result)
    # the greeting (profile greeting + recording notice) starts playing within ~0.3 s of the call
    assert spans[0][0] <= 0.3
    greeting_text = rig.said()[0]
    assert "This call may be recorded" in greeting_text
    # it lasts as long as the voice takes to say it (the emulated voice: 65 ms per character)
    assert spans[0][1] - spans[0][0] == pytest.approx(len(greeting_text.strip()) * 0.065, abs=0.3)
    # then silence until the caller has asked, and the answer within the latency budget
    line = result.lines[0]
    assert result.agent_heard_between(spans[0][1] + 0.1, line.end) == 0
    assert line.latency is not None and line.latency <= 0.8
    answer_at = heard_after(result, line.end)
    assert answer_at == pytest.approx(line.first_agent_played, abs=0.021)
    # what was said: the receptionist's answer about opening hours, numbers in spoken form
    answer_text = rig.said()[-1]
    assert "nine a.m." in answer_text or "nine" in answer_text
    rec = call.record
    assert rec.call_sid == result.call_sid and len(rec.turns) == 1
    turn = rec.turns[0]
    assert "open tomorrow" in turn.caller_text
    assert turn.agent_text_generated.startswith("Sure")
    # the waterfall is ordered and matches the caller's clock
    assert turn.speech_end == pytest.approx(line.end, abs=0.03)
    assert turn.speech_end < turn.endpoint_commit <= turn.first_frame_sent
    assert turn.llm_first_token < turn.tts_first_audio <= turn.first_frame_sent
    assert turn.first_frame_played == pytest.approx(line.first_agent_played, abs=0.05)
    # usage for the cost ledger
    assert rec.usage.llm_output_tokens > 0 and rec.usage.llm_input_tokens > 0
    assert rec.usage.tts_characters["elevenlabs"] >= len(greeting_text.strip())
    assert rec.usage.stt_seconds == pytest.approx(result.duration, abs=0.5)
    assert rec.usage.twilio_seconds == pytest.approx(result.duration, abs=0.5)
