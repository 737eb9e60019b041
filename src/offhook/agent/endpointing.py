"""Endpointing: how long a silence must last before the caller's turn is committed.

    policy = EndpointPolicy()                               # 250 ms / 900 ms / 3 s cap
    ctx = TurnContext(expecting=expecting_from_question("What's the best number to reach you?"))
    policy.silence_needed("my number is eight five oh", ctx)   # 0.9: mid-number, keep listening
    policy.silence_needed("eight five oh six eight seven two zero eight five", ctx)  # 0.25

The "still talking?" judgement is a `StillTalkingScorer`: anything with
`score(transcript, ctx) -> float` (0 = clearly finished, 1 = clearly mid-sentence), so a learned
model can replace `RuleScorer` without touching the policy or the call session.

`RuleScorer` looks at how the transcript ends: a conjunction, preposition, article or possessive
("and", "to", "the", "my"), a filler ("um"), a slot introduction ("my number is", "it's"), a
trailing comma or dash, a phone number with fewer than 10 digits so far (digits as words or
numerals, when a number is expected or being given), and whether the slot the agent just asked for
(phone, address, name, time) has been given at all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from offhook.agent.spoken import digit_runs

__all__ = ["TurnContext", "StillTalkingScorer", "RuleScorer", "EndpointPolicy", "expecting_from_question",
           "SLOTS", "PHONE_CUES"]

SLOTS = ("phone", "address", "name", "time")  # the values TurnContext.expecting may take


@dataclass
class TurnContext:
    """What the caller's turn is expected to contain.

    expecting: the slot the agent's last question asks for ("phone", "address", "name", "time"),
    or None.
    """
    expecting: str | None = None


@runtime_checkable
class StillTalkingScorer(Protocol):
    """Judges whether a caller who has gone quiet is likely to go on."""

    def score(self, transcript: str, ctx: TurnContext) -> float:
        """0.0 = the turn is clearly finished, 1.0 = clearly mid-sentence."""
        ...


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# words a sentence does not end on
_CONTINUES = frozenset(
    "and or but nor because cause cos so if than to for of with at from about into onto the a an my "
    "your our their like as whether until unless although i we they he she just very".split())
# a word that ends the sentence after these ("I think so", "hold on", "come in", "and then")
_UNLESS_AFTER = {
    "so": frozenset("think hope guess believe suppose said do".split()),
    "on": frozenset("hold come go carry hang log turn put try move going me us it him her them".split()),
    "in": frozenset("come check log drop walk fit pop stop sign i'm we're me us it him her them".split()),
}
_THEN_AFTER = frozenset("and but so".split())  # "and then" goes on; "see you then" does not
# "is"/"was" after these ends a sentence ("yes it is"); after anything else it goes on ("the problem
# is", "what time is")
_SUBJECTS = frozenset("it that this there here he she they we you i one".split())
_FILLERS = frozenset("um uh er erm uhm umm uhh hmm mm ah".split())
# contractions that cannot end a sentence, and phrases that announce a slot value
_INTROS = (("it's",), ("that's",), ("i'm",), ("its",), ("number", "is"), ("name", "is"), ("address", "is"),
           ("code", "is"), ("email", "is"), ("it", "would", "be"), ("it", "will", "be"), ("i", "live"),
           ("area", "code"), ("we're", "at"), ("i", "am", "at"))
PHONE_CUES = frozenset("number phone cell mobile".split())  # words that say a phone number is being given
_STREET_WORDS = frozenset(
    "street st avenue ave road rd boulevard blvd drive dr lane ln court ct place pl way parkway pkwy "
    "highway hwy terrace circle square apartment apt suite unit".split())
_TIME_WORDS = frozenset(
    "am pm noon midnight morning afternoon evening tonight today tomorrow o'clock half quarter "
    "monday tuesday wednesday thursday friday saturday sunday weekend week next earliest latest "
    "anytime whenever".split())
_NOT_A_NAME = frozenset(
    "yes yeah yep sure okay ok um uh er it's its is my name the it i i'm am this that's hi hello so "
    "well oh right".split())

_FINISHED = 0.2      # no sign either way: ordinary complete-looking speech
_QUESTION = 0.1      # the STT punctuated a question
_SENTENCE = 0.15     # the STT ended it with a full stop
_SLOT_MISSING = 0.6  # the agent asked for something that has not come yet
_TRAILING_MARK = 0.8
_CONTINUING = 0.85
_FILLER = 0.9
_UNFINISHED_NUMBER = 0.9
_INTRO = 0.95


class RuleScorer:
    """Hand-written "still talking?" rules (see the module docstring); stateless."""

    def score(self, transcript: str, ctx: TurnContext) -> float:
        """0.0 = clearly finished, 1.0 = clearly mid-sentence; 1.0 for an empty transcript."""
        text = transcript.strip()
        words = _WORD.findall(text.lower().replace("’", "'"))
        if not words:
            return 1.0
        end = text[-1]
        base = _QUESTION if end == "?" else _SENTENCE if end in ".!" else _FINISHED
        signals = [base]
        if end in ",;:-—–" or text.endswith("..."):
            signals.append(_TRAILING_MARK)
        last = words[-1]
        if last in _FILLERS:
            signals.append(_FILLER)
        elif self._continues(words):
            signals.append(_CONTINUING)
        if any(tuple(words[-len(p):]) == p for p in _INTROS):
            signals.append(_INTRO)
        signals.append(self._slot_signal(text, words, ctx))
        return max(signals)

    @staticmethod
    def _continues(words: list[str]) -> bool:
        last, prev = words[-1], words[-2] if len(words) > 1 else ""
        if last in _UNLESS_AFTER:
            return prev not in _UNLESS_AFTER[last]
        if last == "then":
            return prev in _THEN_AFTER
        if last in ("is", "was", "are", "were"):
            return bool(prev) and prev not in _SUBJECTS
        return last in _CONTINUES

    @staticmethod
    def _slot_signal(text: str, words: list[str], ctx: TurnContext) -> float:
        runs = digit_runs(text)
        trailing = runs[-1].digits if runs and not _WORD.search(text[runs[-1].end:].lower()) else None
        phone_talk = ctx.expecting == "phone" or any(w in PHONE_CUES for w in words)
        if trailing is not None and phone_talk:
            d = trailing[1:] if len(trailing) == 11 and trailing[0] == "1" else trailing
            if len(d) < 10 or d[0] == "1":
                return _UNFINISHED_NUMBER
            return 0.0
        if ctx.expecting == "phone" and not runs:
            return _SLOT_MISSING
        if ctx.expecting == "address":
            if trailing is not None:
                return _CONTINUING  # a house number; the street comes next
            if not runs and not any(w in _STREET_WORDS for w in words):
                return _SLOT_MISSING
        if ctx.expecting == "name" and all(w in _NOT_A_NAME for w in words):
            return _SLOT_MISSING
        if ctx.expecting == "time" and not runs and not any(w in _TIME_WORDS for w in words):
            return _SLOT_MISSING
        if ctx.expecting is None and trailing is not None and 3 <= len(trailing) < 10:
            return _SLOT_MISSING  # digits in groups without a cue: often a number being read out
        return 0.0


_DEFAULT_SCORER = RuleScorer()


@dataclass
class EndpointPolicy:
    """Silence needed to commit a turn: short_s when the scorer says finished (score < threshold),
    long_s when not, never more than cap_s; cap_s while nothing has been transcribed."""
    short_s: float = 0.25
    long_s: float = 0.9
    cap_s: float = 3.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.short_s <= self.cap_s or not 0 < self.long_s:
            raise ValueError(f"endpoint silences must be positive with short_s <= cap_s: short_s={self.short_s}, "
                             f"long_s={self.long_s}, cap_s={self.cap_s}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in 0..1, got {self.threshold}")

    def silence_needed(self, transcript: str, ctx: TurnContext,
                       scorer: StillTalkingScorer | None = None) -> float:
        """Seconds of silence after which the turn with this transcript is committed."""
        if not transcript.strip():
            return self.cap_s
        s = (scorer or _DEFAULT_SCORER).score(transcript, ctx)
        return min(self.cap_s, self.short_s if s < self.threshold else self.long_s)


# ---------------------------------------------------------------- what the agent asked for
_ASKS = {
    "phone": re.compile(r"\b(?:phone|telephone|cell|mobile|call ?back|reach you|text you|number(?! of))\b"),
    "address": re.compile(r"\b(?:address|street|zip|post ?code|where do you live|where (?:should|do) we "
                          r"(?:send|come|deliver)|where are you located)\b"),
    "name": re.compile(r"\b(?:your name|first name|last name|full name|the name|what name|which name|"
                       r"name (?:for|under|on|please)|who am i speaking|who i'm speaking|who do i have|"
                       r"spell (?:that|it|your))\b|\bname\?"),
    "time": re.compile(r"\b(?:what time|which time|when would|when can|when works|when is good|when do you|"
                       r"when should|what day|which day|what date|morning or afternoon)\b"),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def expecting_from_question(agent_text: str) -> str | None:
    """The slot the agent's utterance asks the caller for ("phone", "address", "name", "time"), from
    its last question (or last sentence when it asks without a question mark); None when it asks for
    none. When one question asks for two ("your name and number?"), the first one asked wins."""
    sentences = [s for s in _SENTENCE_END.split(agent_text.strip().lower().replace("’", "'")) if s]
    if not sentences:
        return None
    questions = [s for s in sentences if s.rstrip().endswith("?")]
    target = questions[-1] if questions else sentences[-1]
    found = [(m.start(), slot) for slot, rx in _ASKS.items() if (m := rx.search(target))]
    return min(found)[1] if found else None
