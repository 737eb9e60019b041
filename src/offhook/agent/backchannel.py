"""Backchannels: "mm-hm", "yeah", "okay" said while the agent talks are listening, not interrupting.

    is_backchannel("Mm-hm.")                      # True: keep talking
    is_backchannel("yeah but what about Sunday")  # False: real content, barge in
    is_backchannel("wait")                        # False

Used by barge-in when the STT gives words quickly: speech made only of these words does not stop
the agent. Words that ask the agent to stop or change course ("no", "wait", "stop", "hang on") are
never backchannels.
"""
from __future__ import annotations

import re

__all__ = ["BACKCHANNEL_WORDS", "is_backchannel"]

# normalised phrases (lower case, hyphens and punctuation removed, spelling variants below)
BACKCHANNEL_WORDS: frozenset[str] = frozenset({
    "mm hm", "uh huh", "mhm", "mm", "mmm", "hm", "yeah", "yes", "yep", "yup", "ya", "yah", "okay", "ok",
    "kay", "alright", "all right", "right", "sure", "got it", "gotcha", "i see", "oh", "ah", "aha",
    "cool", "great", "good", "perfect", "exactly", "true", "totally", "sounds good", "nice",
    "oh okay", "uh yeah", "yeah yeah", "mm okay",
})
_MAX_WORDS = 6  # "yeah okay sure got it" is still listening; longer speech has something to say

_VARIANTS = (
    (re.compile(r"\bo k\b"), "okay"),
    (re.compile(r"\bm+h+m+\b"), "mhm"),
    (re.compile(r"\bm+ h+m+\b|\bhm+ hm+\b"), "mm hm"),
    (re.compile(r"\bu+h+ ?h+u+h+\b|\bu+ ?huh\b"), "uh huh"),
    (re.compile(r"\bo+ka+y+\b|\bokey\b|\bk\b"), "okay"),
    (re.compile(r"\by+e+a+h+\b|\byea\b"), "yeah"),
    (re.compile(r"\bm{3,}\b"), "mmm"),
    (re.compile(r"\bhm+\b"), "hm"),
)
_PHRASES_BY_LENGTH = sorted({tuple(p.split()) for p in BACKCHANNEL_WORDS}, key=len, reverse=True)


def _normalise(text: str) -> list[str]:
    t = text.lower().replace("’", "'")
    t = re.sub(r"[-‐–—_]", " ", t)
    t = re.sub(r"[^a-z' ]+", " ", t)
    t = " ".join(t.split())
    for rx, canon in _VARIANTS:
        t = rx.sub(canon, t)
    return t.split()


def is_backchannel(text: str) -> bool:
    """True when the text is only acknowledgement words ("mm-hm", "uh-huh", "yeah", "okay",
    "right", "sure", "yep", "got it", ... in any case, with any punctuation, a few in a row);
    False for empty text and for anything with content ("no", "wait", "what about Sunday")."""
    words = _normalise(text)
    if not words or len(words) > _MAX_WORDS:
        return False
    i = 0
    while i < len(words):
        for phrase in _PHRASES_BY_LENGTH:
            if tuple(words[i:i + len(phrase)]) == phrase:
                i += len(phrase)
                break
        else:
            return False
    return True
