"""Backchannels said while the agent talks do not barge in; anything with content does."""
import pytest

from offhook.agent.backchannel import BACKCHANNEL_WORDS, is_backchannel


@pytest.mark.parametrize("text", [
    "mm-hm", "Mm-hm.", "mm hm", "mmhmm", "Mhm", "mhm.", "uh-huh", "Uh huh", "uhhuh", "yeah", "Yeah.", "YEAH!",
    "yeahhh", "okay", "Okay.", "OK", "ok", "O.K.", "okey", "right", "Right.", "sure", "Sure!", "yep", "Yep.",
    "yup", "got it", "Got it.", "gotcha", "yes", "alright", "all right", "I see", "oh okay", "Oh, okay.",
    "mm", "mmm", "hmm", "right, right", "yeah yeah", "Yeah, okay, got it.", "okay — sure", "perfect",
    "sounds good", "cool", "  yeah  ", "yeah…", "Right?",
])
def test_acknowledgements_are_backchannels(text):
    assert is_backchannel(text)


@pytest.mark.parametrize("text", [
    "", "   ", "...", "no", "No.", "nope", "stop", "wait", "Wait, wait", "hang on", "hold on", "excuse me",
    "sorry", "what", "huh?", "yeah but what about Sunday", "okay so I need to reschedule", "sure, for Tuesday",
    "yes please book it", "right, and my number is", "actually", "um", "uh", "hello?", "no no no",
    "okay okay okay okay okay okay okay",  # long enough to be someone trying to get a word in
    "yeah sure no problem I'll be there", "Thanks", "bye", "yes, eight five oh", "okay 3pm",
])
def test_content_and_interruptions_are_not(text):
    assert not is_backchannel(text)


def test_word_list_is_normalised_and_has_the_common_acknowledgements():
    for w in ("mm hm", "uh huh", "yeah", "okay", "right", "sure", "yep", "got it", "mhm", "ok"):
        assert w in BACKCHANNEL_WORDS
    assert all(w == w.lower().strip() and "-" not in w for w in BACKCHANNEL_WORDS)
    assert not BACKCHANNEL_WORDS & {"no", "stop", "wait", "um", "uh", "what"}
    assert all(is_backchannel(w) for w in BACKCHANNEL_WORDS)
