"""The low-confidence loop: confirm what was heard before acting on it.

    ctx = TurnContext(expecting="phone")
    confirmation_for("my number is eight five oh six eight seven", 0.93, ctx)
    -> "Just to check — did you say eight-five-oh, six-eight-seven?"
    confirmation_for("I want Tuesday", 0.41, TurnContext())
    -> "Just to check — did you say you want Tuesday?"
    is_affirmative("yeah that's right")  -> True;  is_affirmative("no") -> False

The agent says the confirmation instead of sending the turn to the LLM; the caller's answer to it
is read with `is_affirmative` (True: act on the confirmed turn; False: ask again; None: the caller
said something else, which is a new turn).
"""
from __future__ import annotations

import re

from offhook.agent.endpointing import PHONE_CUES, TurnContext
from offhook.agent.spoken import DigitRun, digit_runs, phone_digits, spoken_phone, to_spoken

__all__ = ["confirmation_for", "is_affirmative", "DEFAULT_CONFIDENCE_THRESHOLD"]

DEFAULT_CONFIDENCE_THRESHOLD = 0.6
# "my number is 850 687 20": a phone number being given even when the agent did not ask for one
# (fewer digits next to "number" are more likely a count: "party number 4")
_CUED_DIGITS = 5

# the caller's first person is the agent's second person when read back
_SWAP = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
         "i've": "you've", "i'd": "you'd", "i'll": "you'll", "am": "are"}
_SWAP_RX = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, _SWAP), key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)
_TRAILING = " \t\n.,;:!?…—–-"


def _second_person(text: str) -> str:
    def swap(m: re.Match[str]) -> str:
        word = m.group(0).lower().replace("’", "'")
        # "am" only after "I" ("I am at..." -> "you are at...")
        if word == "am" and not re.search(r"\bi\s+$", m.string[:m.start()], re.IGNORECASE):
            return m.group(0)
        return _SWAP[word]
    return _SWAP_RX.sub(swap, text.replace("’", "'"))


def _read_back(text: str, runs: list[DigitRun], expecting: str | None, phone: bool) -> str:
    if runs:
        run = max(runs, key=lambda r: len(r.digits))
        if expecting == "phone":
            return spoken_phone(run.digits)  # the number is the whole point: read back just that
        if phone or len(run.digits) >= 7:
            text = text[:run.start] + spoken_phone(run.digits) + text[run.end:]
    return to_spoken(_second_person(text))


def confirmation_for(text: str, confidence: float | None, ctx: TurnContext,
                     threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> str | None:
    """"Just to check — did you say …?" when the turn should be confirmed before acting on it: the
    STT's confidence is below threshold, or a phone number was expected (or announced: "my number
    is" with five or more digits) and the digits heard do not make a plausible 10-digit US number.
    None when the turn can be acted on (or is empty, or a phone was expected but the caller said no
    digits at all: that is an answer for the LLM)."""
    heard = text.strip().rstrip(_TRAILING)
    if not heard:
        return None
    low = confidence is not None and confidence < threshold
    runs = digit_runs(heard)
    longest = max((len(r.digits) for r in runs), default=0)
    cued = any(w in PHONE_CUES for w in re.findall(r"[a-z]+", heard.lower())) and longest >= _CUED_DIGITS
    phone = ctx.expecting == "phone" and longest > 0 or cued
    bad_phone = phone and phone_digits(heard) is None
    if not (low or bad_phone):
        return None
    return f"Just to check — did you say {_read_back(heard, runs, ctx.expecting, phone)}?"


_NEGATIVE = re.compile(
    r"\b(?:no|nope|nah|nay|wrong|incorrect|negative|not (?:right|correct|quite|it|really|exactly)|"
    r"that's not|that is not|isn't|it's not|didn't|did not|don't think so|i said)\b")
_AFFIRMATIVE = re.compile(
    r"\b(?:yes|yeah|yea|yep|yup|ya|yah|correct|right|exactly|affirmative|sure|absolutely|definitely|"
    r"uh huh|mm hm|mhm|yes sir|you got it|that's it|spot on|perfect|okay|ok)\b")
_NEUTRAL = re.compile(r"\bno (?:problem|worries)\b")


def is_affirmative(text: str) -> bool | None:
    """Did the caller confirm? True for yes/yeah/correct/that's right, False for no/nope/wrong/
    that's not right (a "no" anywhere wins: "yeah no" is no), None when neither is said."""
    t = text.lower().replace("’", "'")
    t = re.sub(r"[-‐–]", " ", t)
    t = _NEUTRAL.sub(" ", t)
    if _NEGATIVE.search(t):
        return False
    if _AFFIRMATIVE.search(t):
        return True
    return None
