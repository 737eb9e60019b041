"""The scripted receptionist: whole conversations through its LLM stream interface, as the agent drives it."""
import functools
from datetime import date, time

import pytest
import trio
import trio.testing

from offhook.providers.base import LLMStream
from offhook.providers.profile import parse_profile, sample_profile
from offhook.providers.receptionist import (ScriptedReceptionist, parse_phone, spoken_phone, spoken_price,
                                            spoken_time)

MONDAY = date(2025, 6, 2)
SPOKEN = "eight five oh, six eight seven, two zero eight five"


def mock_clock(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0))
    return wrapper


def brain(**kw) -> ScriptedReceptionist:
    return ScriptedReceptionist(sample_profile(), today=lambda: MONDAY, **kw)


async def call(r: ScriptedReceptionist, *caller_lines: str) -> list[str]:
    """Say each line in turn; every reply is streamed and kept in the history like the agent does."""
    messages: list[dict] = []
    replies = []
    for line in caller_lines:
        messages.append({"role": "user", "content": line})
        async with r.stream(messages, system="You are the receptionist.") as s:
            assert isinstance(s, LLMStream)
            text = "".join([t async for t in s])
        messages.append({"role": "assistant", "content": text})
        replies.append(text)
    return replies


def say(r: ScriptedReceptionist, *caller_lines: str) -> list[str]:
    async def run():
        return await call(r, *caller_lines)
    return trio.run(run)


# ---------------------------------------------------------------- booking
def test_booking_conversation_end_to_end():
    replies = say(brain(), "Hi, I'd like to book a haircut",
                  "Friday",
                  "three thirty",
                  "my name is Sam Lee",
                  "eight five oh six eight seven two zero eight five",
                  "yes",
                  "no thanks, that's all")
    assert "What day" in replies[0]
    assert "Friday it is" in replies[1] and "nine a.m. to eight p.m." in replies[1]  # Friday's hours
    assert "Friday at three thirty p.m." in replies[2] and "name" in replies[2]
    assert "Sam Lee" in replies[3] and "number" in replies[3]
    assert replies[4] == (f"Thank you. So that's a haircut for Sam Lee on Friday at three thirty p.m., "
                          f"and your number is {SPOKEN}. Shall I book it?")
    assert replies[5].startswith("Perfect, you're all set, Sam Lee: Friday at three thirty p.m.")
    assert replies[6] == "Thanks for calling Maple Street Hair Studio. Goodbye!"


def test_everything_in_one_breath_and_formatted_transcripts():
    # Deepgram smart_format style: digits, "3:30 PM", a dashed phone number
    replies = say(brain(), "Can I book a beard trim tomorrow at 3:30 PM? I'm Ana, my number is (850) 687-2085.", "yes")
    assert replies[0] == (f"Thank you. So that's a beard trim for Ana on Tuesday at three thirty p.m., and your number "
                          f"is {SPOKEN}. Shall I book it?")
    assert "you're all set" in replies[1]


def test_misheard_number_is_confirmed_before_use():
    replies = say(brain(), "book an appointment on wednesday at ten am", "it's Kim",
                  "eight five oh six ate seven two zero eight five",    # "ate": heard, not sure
                  "no",
                  "eight five oh six eight seven two zero eight five")
    assert replies[2] == f"Just to check, did I hear that right: {SPOKEN}?"
    assert "again" in replies[3] and "Shall I book" not in replies[3]
    assert f"your number is {SPOKEN}. Shall I book it?" in replies[4]

    replies = say(brain(), "book an appointment on wednesday at ten am", "it's Kim",
                  "eight fifty six eight seven two oh eight five", "yes that's right")
    assert replies[2] == f"Just to check, did I hear that right: {SPOKEN}?"
    assert f"your number is {SPOKEN}. Shall I book it?" in replies[3]


def test_too_few_digits_is_asked_again_not_booked():
    replies = say(brain(), "book an appointment friday at noon", "Lee", "eight five oh six eight seven two zero")
    assert replies[2] == ("Sorry, I only got eight five oh, six eight seven, two zero. That's eight digits. "
                          "Could you say the whole number again?")


def test_closed_days_and_times_outside_the_slots_are_refused():
    replies = say(brain(), "I want to book a haircut on sunday", "saturday at five pm", "two pm")
    assert replies[0] == ("Sorry, we're closed on Sundays. We're open Monday to Saturday. "
                          "Which day works for you?")
    assert "from ten a.m. to three thirty p.m., every half hour" in replies[1]
    assert "Saturday at two p.m." in replies[2]


def test_a_question_mid_booking_is_answered_then_the_booking_resumes():
    replies = say(brain(), "book an appointment", "is there parking?", "thursday")
    assert replies[1] == ("Sure. There's free parking behind the building, entrance on Oak Lane. "
                          "What day would you like to come in?")
    assert "Thursday it is" in replies[2]


def test_no_at_the_read_back_changes_a_slot():
    replies = say(brain(), "book a color on monday at 11 am, my name is Jo, 8506872085", "no", "make it tuesday", "yes")
    assert "Shall I book it?" in replies[0] and "Monday at eleven a.m." in replies[0]
    assert "What would you like to change" in replies[1]
    assert "Tuesday at eleven a.m." in replies[2] and "Shall I book it?" in replies[2]
    assert "you're all set, Jo: Tuesday at eleven a.m." in replies[3]


def test_price_offer_then_yes_starts_a_booking_for_that_service():
    replies = say(brain(), "how much is a kids haircut", "yes please", "saturday at ten", "Max", "850 687 2085")
    assert replies[0] == "Sure, a kids haircut is twenty dollars. Would you like to book one?"
    assert "kids haircut" in replies[1] and "What day" in replies[1]
    assert replies[4].startswith("Thank you. So that's a kids haircut for Max on Saturday at ten a.m.")


# ---------------------------------------------------------------- answers from the profile
def test_hours_prices_address_faq_and_handoff_from_the_sample_profile():
    r = brain()
    ask = lambda line: say(r, line)[0]  # noqa: E731
    assert ask("what are your hours?") == (
        "Sure. We're open Monday to Wednesday from nine a.m. to six p.m., Thursday and Friday from nine a.m. "
        "to eight p.m., and Saturday from ten a.m. to four p.m. We're closed on Sunday.")
    assert ask("are you open on saturday") == "Sure, on Saturday we're open from ten a.m. to four p.m."
    assert ask("are you open tomorrow") == "Sure, on Tuesday we're open from nine a.m. to six p.m."
    assert ask("are you open sundays") == "Sorry, we're closed on Sundays."
    assert ask("how much does a beard trim cost") == \
        "Sure, a beard trim is fifteen dollars. Would you like to book one?"
    assert ask("what are your prices").startswith("Sure. We offer a haircut for thirty-five dollars, a kids haircut")
    assert ask("where are you located") == "Sure, we're at 412 Maple Street, Springfield, next to the post office."
    assert ask("do you take walk ins").endswith("booking ahead is the safest way to get a spot.")
    assert ask("can I talk to a real person please") == "Of course. Let me put you through to someone now."
    assert ask("blah blah").startswith("Sorry, I didn't catch that.")
    assert r.intent("I want to speak to a human") == "human"
    assert r.intent("do you have parking") == "faq"


def test_another_profile_gives_other_answers():
    dental = parse_profile("""
name = "Corner Dental"
greeting = "Corner Dental, how can I help?"
address = "1 Main Street"
[hours]
monday = "08:00-17:00"
tuesday = "08:00-17:00"
wednesday = "closed"
thursday = "08:00-12:30"
friday = "08:00-17:00"
saturday = "closed"
sunday = "closed"
[[services]]
name = "cleaning"
price = 95.5
""")
    r = ScriptedReceptionist(dental, today=lambda: MONDAY)
    assert r.reply([]) == "Corner Dental, how can I help?"
    replies = say(r, "how much is a cleaning", "what are your hours", "where are you", "bye")
    assert replies[0] == "Sure, a cleaning is ninety-five dollars fifty. Would you like to book one?"
    assert replies[1] == ("Sure. We're open Monday and Tuesday from eight a.m. to five p.m., Thursday from eight a.m. "
                          "to twelve thirty p.m., and Friday from eight a.m. to five p.m. We're closed on Wednesday, "
                          "Saturday, and Sunday.")
    assert replies[2] == "Sure, we're at 1 Main Street."
    assert replies[3] == "Thanks for calling Corner Dental. Goodbye!"
    # no handoff number: the caller is told it is voicemail
    assert "voicemail" in say(r, "let me talk to a person")[0]


# ---------------------------------------------------------------- streaming like an LLM
@mock_clock
async def test_reply_streams_token_by_token_at_the_configured_pace():
    r = brain(first_token_delay_s=0.2, token_delay_s=0.05)
    messages = [{"role": "user", "content": "where are you located"}]
    t0 = trio.current_time()
    async with r.stream(messages, system="x" * 400) as s:
        got = [(trio.current_time() - t0, t) async for t in s]
    text = "".join(t for _, t in got)
    assert text == r.reply(messages) == "Sure, we're at 412 Maple Street, Springfield, next to the post office."
    assert [t for _, t in got][:3] == ["Sure,", " we're", " at"]
    assert [round(at, 9) for at, _ in got] == [round(0.2 + 0.05 * i, 9) for i in range(len(got))]
    assert s.usage.output_tokens == len(got) == 12
    assert s.usage.input_tokens == (400 + len("where are you located") + 3) // 4


@mock_clock
async def test_max_tokens_and_cancellation_leave_no_trace():
    r = brain(token_delay_s=0.01)
    history = [{"role": "user", "content": "book an appointment"}]
    async with r.stream(history, system="", max_tokens=2) as s:
        assert [t async for t in s] == ["Sure,", " I"]
    with trio.move_on_after(0.015):  # a speculative request cancelled mid-reply
        async with r.stream(history + [{"role": "assistant", "content": "Sure"},
                                       {"role": "user", "content": "friday"}], system="") as s:
            async for _ in s:
                pass
    # the state is rebuilt from the history each time: the cancelled turn changed nothing
    assert r.reply(history) == "Sure, I can book an appointment for you. What day would you like to come in?"
    assert r.reply(history + [{"role": "user", "content": [{"type": "text", "text": "friday"}]}]).startswith(
        "Got it. Friday it is.")


# ---------------------------------------------------------------- spoken forms and number parsing
@pytest.mark.parametrize("heard", [
    "eight five oh six eight seven two zero eight five", "850-687-2085", "(850) 687-2085", "8506872085",
    "my number is eight fifty, six eight seven, twenty eighty five",
    "one eight five oh six eight seven two oh eight five",
])
def test_phone_numbers_in_any_shape_read_back_the_same(heard):
    p = parse_phone(heard)
    assert p is not None and p.valid and not p.doubtful and p.number == "8506872085"
    assert spoken_phone(p.number) == SPOKEN


def test_phone_parse_flags_doubt_and_wrong_lengths():
    assert parse_phone("double five five one two three four five six seven").number == "5551234567"
    assert parse_phone("eight five oh six ate seven two zero eight five").doubtful
    assert parse_phone("eight five oh six uh seven two zero eight five").valid is False  # 9 digits
    assert parse_phone("eight five blue six eight seven two zero eight five").doubtful
    assert parse_phone("no idea") is None
    # "fifty six": 56, or 50 then 6; only the second makes a whole number, so it needs a yes
    p = parse_phone("eight fifty six eight seven two oh eight five")
    assert p.number == "8506872085" and p.doubtful
    p = parse_phone("eight fifty, six eight seven, twenty eighty five")  # the pauses settle it
    assert p.number == "8506872085" and not p.doubtful
    # the longest run of digits is the number, not the time said before it
    assert parse_phone("friday at 3 30 pm please, I'm Ana, it's 850 687 2085").number == "8506872085"
    assert spoken_phone("15005550100") == "one, five oh oh, five five five, zero one zero zero"


def test_spoken_times_and_prices():
    assert [spoken_time(t) for t in (time(9), time(12), time(15, 30), time(9, 5), time(0, 15))] == [
        "nine a.m.", "noon", "three thirty p.m.", "nine oh five a.m.", "twelve fifteen a.m."]
    assert [spoken_price(p) for p in (35, 1, 42.5, 1250)] == [
        "thirty-five dollars", "one dollar", "forty-two dollars fifty", "one thousand two hundred fifty dollars"]


def test_the_number_said_again_while_it_is_being_checked_is_taken_as_a_yes():
    # the same doubtful hearing twice (as when the agent passes on a number the caller confirmed to
    # its own read-back) must not loop on "did I hear that right?"
    replies = say(brain(), "book an appointment on wednesday at ten am", "it's Kim",
                  "eight five oh six ate seven two zero eight five",
                  "eight five oh six ate seven two zero eight five")
    assert replies[2] == f"Just to check, did I hear that right: {SPOKEN}?"
    assert f"your number is {SPOKEN}. Shall I book it?" in replies[3]
