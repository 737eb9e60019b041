"""Turn-taking end to end: speculation hits and misses, a caller pausing mid-number."""
import pytest

from agent_helpers import agent_rig, heard_after, mock_clock

pytestmark = pytest.mark.timeout(60)

GREETING = {"wait_for_agent": {"quiet": 0.5, "timeout": 10}}
AFTER = {"wait_for_agent": {"quiet": 0.6, "timeout": 10}}


@mock_clock
async def test_speculative_start_hits_when_the_turn_commits_unchanged():
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": "Where are you located?"}, AFTER])
    line, turn = result.lines[0], call.record.turns[0]
    assert turn.speculative == "hit"
    kinds = [e.kind for e in call.record.events]
    assert kinds.count("speculative_start") == 1 and kinds.count("speculative_hit") == 1
    assert "speculative_cancel" not in kinds
    # one LLM request for the turn, sent at the first 150 ms pause, before the turn was committed
    asked = [r for r in rig.llm.requests if r.body and r.body["messages"][-1]["content"] == "Where are you located?"]
    assert len(asked) == 1
    sent_at = asked[0].received_at - call.t0
    assert sent_at == pytest.approx(turn.speech_end + 0.15, abs=0.045)
    assert sent_at < turn.endpoint_commit
    # nothing was spoken before the commit, and the answer came sooner than commit + LLM + TTS
    first = heard_after(result, line.end)
    assert first >= turn.endpoint_commit
    assert first - line.end <= 0.8
    assert "Maple" in rig.said()[-1] or "address" in turn.agent_text_generated.lower() or turn.agent_text_generated
    summary = next(e for e in call.record.events if e.kind == "speculative_summary")
    assert summary.detail == "starts=1 hits=1 wasted_tokens=0"


@mock_clock
async def test_caller_pausing_mid_number_is_not_cut_off_and_speculation_restarts():
    async with agent_rig() as rig:
        result, call = await rig.call([
            GREETING, {"say": "My number is eight five oh"}, {"wait": 0.6},
            {"say": "six eight seven two zero eight five."}, AFTER])
    first, second = result.lines
    # the agent said nothing in the pause: the unfinished number kept the turn open
    assert result.agent_heard_between(first.end, second.start + 0.05) == 0
    turns = call.record.turns
    assert len(turns) == 1
    assert turns[0].caller_text.startswith("My number is eight five oh") and turns[0].caller_text.endswith(
        "two zero eight five.")
    # the speculative request made in the pause was cancelled when the caller went on (the LLM
    # emulator saw that connection closed), and the turn committed on a fresh, matching request
    kinds = [e.kind for e in call.record.events]
    assert kinds.count("speculative_start") == 2 and kinds.count("speculative_cancel") == 1
    stale = [r for r in rig.llm.requests if r.body and r.body["messages"][-1]["content"] == "My number is eight five oh"]
    assert len(stale) == 1 and stale[0].disconnected_at is not None
    assert stale[0].disconnected_at - call.t0 <= second.start + 0.1
    assert turns[0].speculative == "hit"
    # the reply then came promptly after the whole number
    assert heard_after(result, second.end) - second.end <= 0.9


@mock_clock
async def test_a_badly_heard_phone_number_is_confirmed_before_the_agent_acts_on_it():
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": "My number is eight five oh six eight."}, AFTER,
                                       {"say": "Yes."}, AFTER])
    said = rig.said()
    # the agent read the number back in groups instead of acting on it ...
    assert said[1].startswith("Just to check") and "eight-five-oh" in said[1]
    events = [e.detail for e in call.record.events if e.kind == "confirmation"]
    assert events == ["asked about: My number is eight five oh six eight.",
                      "confirmed: My number is eight five oh six eight."]
    # ... the LLM never answered the unconfirmed words (a speculative request was cancelled unspoken)
    early = [r for r in rig.llm.requests if r.received_at - call.t0 < result.lines[1].start]
    assert all(r.disconnected_at is not None or r.outcome == "client_closed" for r in early)
    # ... and after "yes" it answered the confirmed turn, heard as the caller's words
    last = rig.llm.requests[-1].body["messages"]
    assert last[-1] == {"role": "user", "content": "My number is eight five oh six eight."}
    assert heard_after(result, result.lines[1].end) - result.lines[1].end <= 0.9
    assert len(call.record.turns) == 2


@mock_clock
async def test_a_short_answer_is_in_the_history_of_the_very_next_turn():
    def responder(messages, system):
        return "Okay." if len(messages) == 1 else "Sure, anything else?"

    async with agent_rig(responder=responder) as rig:
        result, call = await rig.call([GREETING, {"say": "I'd like a haircut."},
                                       {"wait_for_agent": {"quiet": 0.3, "timeout": 10}},
                                       {"say": "On Friday."}, AFTER])
    # the caller spoke again within a second of the first answer ending
    second = next(r for r in rig.llm.requests if r.body and r.body["messages"][-1]["content"] == "On Friday.")
    assert second.body["messages"] == [{"role": "user", "content": "I'd like a haircut."},
                                       {"role": "assistant", "content": "Okay."},
                                       {"role": "user", "content": "On Friday."}]
    assert [t.caller_text for t in call.record.turns] == ["I'd like a haircut.", "On Friday."]


@mock_clock
async def test_caller_going_on_after_a_commit_but_before_any_answer_is_one_turn():
    async with agent_rig() as rig:
        result, call = await rig.call([GREETING, {"say": "I'd like to book a haircut."}, {"wait": 0.3},
                                       {"say": "On Friday at ten."}, AFTER])
    first, second = result.lines
    # the first part looked finished and was committed, but the caller went on before the agent
    # spoke: that reply was dropped unspoken and both parts became one turn
    assert any(e.kind == "commit_retracted" for e in call.record.events)
    assert result.agent_heard_between(first.end, second.end) == 0
    assert [t.caller_text for t in call.record.turns] == ["I'd like to book a haircut. On Friday at ten."]
    answered = [r for r in rig.llm.requests if r.body and r.body["messages"][-1]["content"] ==
                "I'd like to book a haircut. On Friday at ten."]
    assert answered and heard_after(result, second.end) - second.end <= 0.9
