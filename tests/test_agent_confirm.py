"""Low-confidence loop: what the agent says instead of acting on a doubtful turn."""
import pytest

from offhook.agent.confirm import confirmation_for, is_affirmative
from offhook.agent.endpointing import TurnContext

NONE, PHONE = TurnContext(), TurnContext("phone")


@pytest.mark.parametrize("text, confidence, ctx, said", [
    # confident turns are acted on
    ("book me for Tuesday", 0.95, NONE, None),
    ("book me for Tuesday", None, NONE, None),   # no confidence reported: trust it
    ("book me for Tuesday", 0.6, NONE, None),    # at the threshold
    ("", 0.1, NONE, None),
    ("  ", 0.1, PHONE, None),
    # low confidence: read back what was heard, in the agent's words
    ("book me for Tuesday.", 0.41, NONE, "Just to check — did you say book you for Tuesday?"),
    ("I'd like a haircut at 3pm", 0.3, NONE, "Just to check — did you say you'd like a haircut at three p.m.?"),
    ("My name is Ana and I am at 412 Maple St", 0.5, NONE,
     "Just to check — did you say your name is Ana and you are at four twelve Maple Street?"),
    ("my number is 8506872085", 0.2, NONE,
     "Just to check — did you say your number is eight-five-oh, six-eight-seven, two-zero-eight-five?"),
    ("my number is eight five oh six eight seven two zero eight five", 0.2, NONE,
     "Just to check — did you say your number is eight-five-oh, six-eight-seven, two-zero-eight-five?"),
    # a phone number was asked for: a bad one is confirmed whatever the confidence
    ("my number is eight five oh six eight seven", 0.97, PHONE,
     "Just to check — did you say eight-five-oh, six-eight-seven?"),
    ("it's five five five one two three four", 0.99, PHONE,
     "Just to check — did you say five-five-five, one-two-three-four?"),
    ("eight five oh six eight seven two zero eight five five", 0.99, PHONE,
     "Just to check — did you say eight-five-oh, six-eight-seven, two-zero-eight-five, five?"),
    ("one two three four five six seven eight nine zero", 0.99, PHONE,
     "Just to check — did you say one-two-three, four-five-six, seven-eight-nine-zero?"),
    ("eight five oh six eight seven two zero eight five", 0.99, PHONE, None),
    ("(850) 687-2085", 0.99, PHONE, None),
    ("eight fifty, six eight seven, twenty eighty five", 0.9, PHONE, None),
    ("eight five oh six eight seven two zero eight five", 0.3, PHONE,
     "Just to check — did you say eight-five-oh, six-eight-seven, two-zero-eight-five?"),
    ("I'd rather not give it", 0.95, PHONE, None),   # no digits: an answer for the LLM
    # a number being given unasked is checked the same way
    ("and my number is eight five oh six eight seven two", 0.95, NONE,
     "Just to check — did you say and your number is eight-five-oh, six-eight-seven-two?"),
    ("my cell is 850 687 20", 0.95, NONE,
     "Just to check — did you say your cell is eight-five-oh, six-eight-seven, two-zero?"),
    ("my number is 850-687-2085", 0.95, NONE, None),
    ("table number 4 please", 0.95, NONE, None),      # a count, not a phone number
])
def test_confirmation(text, confidence, ctx, said):
    assert confirmation_for(text, confidence, ctx) == said


def test_threshold_is_configurable():
    assert confirmation_for("tuesday", 0.7, NONE, threshold=0.8) == "Just to check — did you say tuesday?"
    assert confirmation_for("tuesday", 0.7, NONE, threshold=0.5) is None


@pytest.mark.parametrize("text, verdict", [
    ("yes", True), ("Yes.", True), ("yeah", True), ("yep", True), ("correct", True), ("that's right", True),
    ("That’s correct!", True), ("yes that's it", True), ("uh-huh", True), ("mm-hm", True),
    ("yeah, no problem", True), ("exactly", True), ("you got it", True),
    ("no", False), ("No.", False), ("nope", False), ("wrong", False), ("that's wrong", False),
    ("that's not right", False), ("not quite", False), ("yeah no", False), ("no it's eight five five", False),
    ("incorrect", False), ("I said Tuesday", False),
    ("", None), ("Tuesday", None), ("what time is it", None), ("um", None),
])
def test_is_affirmative(text, verdict):
    assert is_affirmative(text) is verdict
