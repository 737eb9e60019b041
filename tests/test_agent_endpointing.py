"""Endpointing: the caller who pauses mid-sentence is waited for; the one who has finished is not."""
import pytest

from offhook.agent.endpointing import (
    EndpointPolicy, RuleScorer, StillTalkingScorer, TurnContext, expecting_from_question)

FINISHED, GOING_ON = False, True

CASES = [
    # plainly finished
    ("What are your hours on Saturday?", None, FINISHED),
    ("what are your hours on saturday", None, FINISHED),
    ("I'd like to book a haircut", None, FINISHED),
    ("yes", None, FINISHED),
    ("Yeah, that's right.", None, FINISHED),
    ("no thanks", None, FINISHED),
    ("I think so", None, FINISHED),
    ("I hope so.", None, FINISHED),
    ("hold on", None, FINISHED),
    ("come in", None, FINISHED),
    ("that's all, thank you, bye", None, FINISHED),
    ("Do you take walk-ins?", None, FINISHED),
    ("How much is a beard trim", None, FINISHED),
    ("see you then", None, FINISHED),
    ("I'd like that", None, FINISHED),
    ("at three", None, FINISHED),
    ("I'll be there at 3", None, FINISHED),
    ("can I come in", None, FINISHED),
    ("hang on", None, FINISHED),
    ("yes it is", None, FINISHED),
    ("that's what it was", None, FINISHED),
    ("yes you are", None, FINISHED),
    ("so", None, GOING_ON),
    ("thank you", None, FINISHED),
    ("see you then", None, FINISHED),
    ("can you fit me in", None, FINISHED),
    # trailing conjunctions, prepositions, articles, possessives
    ("I want to book a haircut and", None, GOING_ON),
    ("I'd like to", None, GOING_ON),
    ("can I book it for", None, GOING_ON),
    ("so", None, GOING_ON),
    ("the best time for me is after work but", None, GOING_ON),
    ("because", None, GOING_ON),
    ("I was calling about the", None, GOING_ON),
    ("it's for my", None, GOING_ON),
    ("I'm looking for a", None, GOING_ON),
    ("and so", None, GOING_ON),
    ("it's kind of like", None, GOING_ON),
    ("do you have anything on", None, GOING_ON),
    ("can I get an appointment in", None, GOING_ON),
    ("and then", None, GOING_ON),
    ("could I", None, GOING_ON),
    ("yeah I was just", None, GOING_ON),
    ("the problem is", None, GOING_ON),
    ("what time is", None, GOING_ON),
    ("how much is", None, GOING_ON),
    ("hi I'm calling about", None, GOING_ON),
    ("I was wondering if", None, GOING_ON),
    # fillers
    ("um", None, GOING_ON),
    ("I'd like to book um", None, GOING_ON),
    ("Uh...", None, GOING_ON),
    ("Saturday, uh", None, GOING_ON),
    # slot introductions
    ("my number is", None, GOING_ON),
    ("My name is", "name", GOING_ON),
    ("it's", None, GOING_ON),
    ("the address is", None, GOING_ON),
    # a trailing comma, dash or ellipsis from the STT's punctuation
    ("Saturday,", None, GOING_ON),
    ("I was wondering —", None, GOING_ON),
    ("Well...", None, GOING_ON),
    # unfinished numbers, as words or numerals
    ("my number is eight five oh", None, GOING_ON),
    ("my number is eight five oh.", None, GOING_ON),
    ("my phone number is 850 687", None, GOING_ON),
    ("eight five oh", "phone", GOING_ON),
    ("eight fifty, six eight seven", "phone", GOING_ON),
    ("it's 850-687-208", "phone", GOING_ON),
    ("one eight five oh six eight seven two zero eight", "phone", GOING_ON),  # 1 + 9 digits
    ("eight five oh six eight seven", None, GOING_ON),  # digit groups without a cue
    # finished numbers
    ("eight five oh six eight seven two zero eight five", "phone", FINISHED),
    ("my number is 850-687-2085", None, FINISHED),
    ("it's eight fifty, six eight seven, twenty eighty five", "phone", FINISHED),
    ("one eight five oh six eight seven two zero eight five", "phone", FINISHED),
    ("(850) 687-2085.", "phone", FINISHED),
    # the slot the agent asked for has not come yet
    ("sure", "phone", GOING_ON),
    ("yeah it's", "phone", GOING_ON),
    ("yes", "name", GOING_ON),
    ("Ana", "name", FINISHED),
    ("it's Ana Lopez", "name", FINISHED),
    ("four twelve", "address", GOING_ON),
    ("it's 412", "address", GOING_ON),
    ("412 Maple Street", "address", FINISHED),
    ("okay", "address", GOING_ON),
    ("let me think", "time", GOING_ON),
    ("tomorrow at 3", "time", FINISHED),
    ("Saturday morning", "time", FINISHED),
    ("ten thirty", "time", FINISHED),
]


@pytest.mark.parametrize("transcript, expecting, going_on", CASES)
def test_rule_scorer_on_real_phrasings(transcript, expecting, going_on):
    s = RuleScorer().score(transcript, TurnContext(expecting))
    assert 0.0 <= s <= 1.0
    assert (s >= 0.5) is going_on, s


@pytest.mark.parametrize("transcript, expecting, going_on", CASES)
def test_policy_waits_long_only_when_the_caller_is_likely_to_go_on(transcript, expecting, going_on):
    need = EndpointPolicy().silence_needed(transcript, TurnContext(expecting))
    assert need == (0.9 if going_on else 0.25)


def test_empty_transcript_waits_for_the_cap():
    p = EndpointPolicy()
    assert p.silence_needed("", TurnContext()) == 3.0
    assert p.silence_needed("   ", TurnContext("phone")) == 3.0
    assert RuleScorer().score("", TurnContext()) == 1.0


def test_policy_is_configurable_and_never_exceeds_the_cap():
    p = EndpointPolicy(short_s=0.2, long_s=1.2, cap_s=1.0)
    assert p.silence_needed("my number is", TurnContext()) == 1.0
    assert p.silence_needed("yes", TurnContext()) == 0.2
    strict = EndpointPolicy(threshold=0.95)
    assert strict.silence_needed("I want a haircut and", TurnContext()) == 0.25  # 0.85 < 0.95
    assert strict.silence_needed("my number is", TurnContext()) == 0.9


class ConstantModel:
    """Stands for a learned model: the policy only needs .score()."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.seen: list[tuple[str, TurnContext]] = []

    def score(self, transcript: str, ctx: TurnContext) -> float:
        self.seen.append((transcript, ctx))
        return self.value


def test_scorer_is_replaceable():
    assert isinstance(RuleScorer(), StillTalkingScorer)
    model = ConstantModel(0.7)
    assert isinstance(model, StillTalkingScorer)
    ctx = TurnContext("name")
    assert EndpointPolicy().silence_needed("yes", ctx, model) == 0.9
    assert model.seen == [("yes", ctx)]
    assert EndpointPolicy().silence_needed("and", ctx, ConstantModel(0.1)) == 0.25


@pytest.mark.parametrize("kwargs", [dict(short_s=0), dict(short_s=4.0), dict(long_s=-1), dict(threshold=1.5)])
def test_bad_policy_is_a_clear_error(kwargs):
    with pytest.raises(ValueError):
        EndpointPolicy(**kwargs)


@pytest.mark.parametrize("question, slot", [
    ("What's the best number to reach you?", "phone"),
    ("Great. What's a good phone number for you?", "phone"),
    ("And can I get a callback number?", "phone"),
    ("Could I have your number, please?", "phone"),
    ("Can I get your name and number?", "name"),
    ("And your number and name?", "phone"),
    ("Sure. And what name should I put that under?", "name"),
    ("Who am I speaking with?", "name"),
    ("Could you spell that for me?", "name"),
    ("What's your address?", "address"),
    ("And what's the street address?", "address"),
    ("Where should we send the invoice?", "address"),
    ("What time works for you?", "time"),
    ("Which day would you like to come in?", "time"),
    ("When would you like to come in?", "time"),
    ("We're open until six today. Anything else I can help with?", None),
    ("Is that eight-five-oh, six-eight-seven, two-zero-eight-five?", None),
    ("How many people are in your party?", None),
    ("What's the number of guests?", None),
    ("Please tell me your phone number.", "phone"),
    ("Thanks for calling Maple Street Hair Studio. How can I help you today?", None),
    ("Your name? Sorry, I meant your number. Which is it?", None),
    ("", None),
])
def test_expecting_from_question(question, slot):
    assert expecting_from_question(question) == slot
