"""Clause chunker: LLM text deltas in, clauses out, each ready to send to TTS as soon as it ends.

    chunker = ClauseChunker()
    for delta in llm_stream:
        for clause in chunker.feed(delta):
            await tts.send_text(to_spoken(clause))
    rest = chunker.flush()

A clause ends at `, ; : . ? !`, an em/en dash or an ellipsis followed by whitespace, or after about
`max_words` words at a word boundary. The whitespace character that confirmed the end goes with the
clause ("Sure, "), further whitespace starts the next one, so "".join(clauses) + flush() is the text
exactly. A boundary is only decided once enough text has arrived that no continuation could change
the decision, so the clauses are the same however the text was split into deltas.

Never split where the spoken-form normaliser needs the pieces together: "$3.50", "10:30", "1,200"
have no whitespace after the mark; abbreviations ("Dr.", "St.", "e.g.", "a.m.") are not sentence
ends; a comma or dash between digits ("850, 687, 2085", "eight five oh, six eight seven",
"9am – 5pm") and the word limit never separate digits, a number from "am"/"pm", a month from
its day or a street suffix.
"""
from __future__ import annotations

__all__ = ["ClauseChunker"]

_ENDS = frozenset(",;:.?!—–…")
_CLOSERS = frozenset("\"')]}”’»")

# never a sentence end, whatever follows ("Dr. Smith", "St. Louis", "e.g. haircuts")
_ABBREV_ALWAYS = frozenset("dr mr mrs ms prof st mt ft e.g i.e u.s vs approx apt ste est dept".split())
# an end only when a capital follows ("at 9 a.m. See you" vs "at 9 a.m. tomorrow")
_ABBREV_UNLESS_CAPITAL = frozenset("a.m p.m jr sr etc inc ltd co ave rd blvd ln ct pl hwy pkwy".split())
# an end unless a digit follows ("No. 5")
_ABBREV_UNLESS_DIGIT = frozenset("no nos tel ph ext".split())

_DIGIT_WORDS = frozenset(
    "zero oh o one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand double triple".split())
_MONTHS = frozenset(
    "jan feb mar apr jun jul aug sep sept oct nov dec january february march april may june july "
    "august september october november december".split())
_MERIDIEM = frozenset({"am", "pm", "a.m", "p.m"})
# words that belong to the word before them: the word limit never cuts in front of these
_GLUE_AFTER = frozenset(
    "am pm a.m. p.m. a.m p.m o'clock percent dollars dollar cents st st. street ave ave. avenue rd "
    "rd. road blvd blvd. boulevard ln ln. lane dr. drive ct ct. court way pl pl. place".split())


def _bare(word: str) -> str:
    return word.strip("\"'()[]{}“”‘’«»,;:!?").lower()


def _digitish(word: str) -> bool:
    w = _bare(word).rstrip(".")
    return any(c.isdigit() for c in w) or w in _DIGIT_WORDS or w.startswith("$")


class ClauseChunker:
    """Splits streamed LLM text into clauses for TTS (see the module docstring for the rules)."""

    def __init__(self, max_words: int = 12) -> None:
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        self.max_words = max_words
        self._buf = ""

    def feed(self, delta: str) -> list[str]:
        """Add a text delta; return the clauses it completed (possibly none), in order."""
        self._buf += delta
        out: list[str] = []
        while (end := self._boundary(self._buf)) is not None:
            out.append(self._buf[:end])
            self._buf = self._buf[end:]
        return out

    def flush(self) -> str | None:
        """The text not yet returned (it may be only whitespace), or None when there is none; resets."""
        rest, self._buf = self._buf, ""
        return rest or None

    # ------------------------------------------------------------ decisions on the pending text
    def _boundary(self, text: str) -> int | None:
        """End index of the first clause in `text`, or None when no end is certain yet.

        Scans left to right and stops at the first position it cannot decide: a later boundary must
        not be taken while an earlier one might still turn out to be an end.
        """
        n = len(text)
        words = 0
        i = 0
        while i < n:
            c = text[i]
            if c in _ENDS:
                j = i + 1
                while j < n and text[j] in _CLOSERS:
                    j += 1
                if j == n:
                    return None  # the next character decides
                if text[j].isspace():
                    verdict = self._mark_ends_clause(text, i, j + 1)
                    if verdict is None:
                        return None
                    if verdict:
                        return j + 1
                i = j
                continue
            if c.isspace():
                if i > 0 and not text[i - 1].isspace():
                    words += 1
                    if words >= self.max_words:
                        verdict = self._word_break_ok(text, i)
                        if verdict is None:
                            return None
                        if verdict:
                            return i + 1
            i += 1
        return None

    @staticmethod
    def _word_before(text: str, end: int) -> str:
        start = end
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        return text[start:end]

    @staticmethod
    def _word_after(text: str, start: int) -> str | None:
        """The whole word starting after the whitespace at `start`, or None while it may still grow."""
        i = start
        while i < len(text) and text[i].isspace():
            i += 1
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        if j == len(text):
            return None
        return text[i:j]

    def _mark_ends_clause(self, text: str, mark: int, after: int) -> bool | None:
        c = text[mark]
        if c == ".":
            word = _bare(self._word_before(text, mark + 1))
            stem = word[:-1] if word.endswith(".") else word
            if stem in _ABBREV_ALWAYS or (len(stem) == 1 and stem.isalpha()):  # "J. Smith"
                return False
            needs_capital = stem in _ABBREV_UNLESS_CAPITAL
            needs_digit = stem in _ABBREV_UNLESS_DIGIT
            if needs_capital or needs_digit:
                nxt = self._first_char_after(text, after)
                if nxt is None:
                    return None
                return nxt.isupper() if needs_capital else not nxt.isdigit()
            return True
        before = self._word_before(text, len(text[:mark].rstrip()))
        if c in ",—–" and (_digitish(before) or _bare(before).rstrip(".") in _MERIDIEM):
            # "850, 687, 2085", "9am – 5pm", "$35 — $40": one number or range, one clause
            nxt = self._word_after(text, after - 1)
            if nxt is None:
                return None
            return not _digitish(nxt)
        return True

    @staticmethod
    def _first_char_after(text: str, start: int) -> str | None:
        i = start
        while i < len(text) and text[i].isspace():
            i += 1
        return text[i] if i < len(text) else None

    def _word_break_ok(self, text: str, space: int) -> bool | None:
        before = self._word_before(text, space)
        stem = _bare(before).rstrip(".")
        if _digitish(before) or stem in _MONTHS or stem in _ABBREV_ALWAYS:
            return False
        nxt = self._word_after(text, space)
        if nxt is None:
            return None
        # a lone mark ("—") belongs with the words before it
        return not (_digitish(nxt) or _bare(nxt) in _GLUE_AFTER or not any(ch.isalnum() for ch in nxt))
