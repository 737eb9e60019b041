"""Clause chunker: where LLM text is cut into TTS requests, however the deltas arrive."""
import pytest
from hypothesis import given, settings, strategies as st

from offhook.agent.chunker import ClauseChunker


def chunk(text: str, max_words: int = 12, pieces: list[str] | None = None) -> list[str]:
    c = ClauseChunker(max_words)
    out: list[str] = []
    for p in pieces if pieces is not None else [text]:
        out += c.feed(p)
    rest = c.flush()
    return out + ([rest] if rest is not None else [])


@pytest.mark.parametrize("text, clauses", [
    ("Sure, we're open until six. Anything else?", ["Sure, ", "we're open until six. ", "Anything else?"]),
    ("Okay; noted: thanks! Bye?", ["Okay; ", "noted: ", "thanks! ", "Bye?"]),
    ("Sure — we can do that.", ["Sure — ", "we can do that."]),
    ("Let me check... yes, we have it.", ["Let me check... ", "yes, ", "we have it."]),
    ('He said "fine." Then left.', ['He said "fine." ', "Then left."]),
    ("Really?! Wow.", ["Really?! ", "Wow."]),
    ("Sure,\n\nwe are.", ["Sure,\n", "\nwe are."]),
    # numbers, times, prices: the mark is not followed by whitespace
    ("A trim is $3.50, a cut $35.", ["A trim is $3.50, ", "a cut $35."]),
    ("We open at 10:30 on weekdays.", ["We open at 10:30 on weekdays."]),
    ("That's 1,200 dollars.", ["That's 1,200 dollars."]),
    ("It is 3.5 miles away.", ["It is 3.5 miles away."]),
    # abbreviations are not sentence ends
    ("Dr. Smith is in. Call e.g. Monday.", ["Dr. Smith is in. ", "Call e.g. Monday."]),
    ("We're at 123 Main St. in town.", ["We're at 123 Main St. in town."]),
    ("Take St. Louis Ave. north.", ["Take St. Louis Ave. north."]),
    ("Come at 9 a.m. tomorrow.", ["Come at 9 a.m. tomorrow."]),
    ("Come at 9 a.m. See you then.", ["Come at 9 a.m. ", "See you then."]),
    ("Ask for J. Smith please.", ["Ask for J. Smith please."]),
    ("Suite No. 5 is upstairs.", ["Suite No. 5 is upstairs."]),
    ("The answer is no. Sorry.", ["The answer is no. ", "Sorry."]),
    # phone numbers stay whole
    ("Call 850, 687, 2085 now.", ["Call 850, 687, 2085 now."]),
    ("It's eight five oh, six eight seven, two zero eight five, right? Good.",
     ["It's eight five oh, six eight seven, two zero eight five, ", "right? ", "Good."]),
    ("At 10, we open.", ["At 10, ", "we open."]),
    ("Open 9am – 5pm daily.", ["Open 9am – 5pm daily."]),
    ("It's $35 — $40, depending on length.", ["It's $35 — $40, ", "depending on length."]),
    ("At 10 — we open.", ["At 10 — ", "we open."]),
    ("From 10:30 am — 2 pm on Monday.", ["From 10:30 am — 2 pm on Monday."]),
    ("No dash-split here", ["No dash-split here"]),
])
def test_clauses_end_at_punctuation_not_inside_numbers_or_abbreviations(text, clauses):
    assert chunk(text) == clauses


def test_long_clause_is_cut_after_max_words_at_a_word_boundary():
    text = "we have openings on monday tuesday wednesday thursday friday and saturday mornings for you"
    out = chunk(text, max_words=12)
    assert out == ["we have openings on monday tuesday wednesday thursday friday and saturday mornings ",
                   "for you"]
    assert chunk("one two three four five", max_words=2) == ["one two three four five"]  # all digits
    assert chunk("a b c d e f", max_words=2) == ["a b ", "c d ", "e f"]


def test_word_limit_never_separates_a_number_from_its_unit_or_a_street_from_its_suffix():
    assert chunk("please come at 10:30 am on the day", max_words=3) == [
        "please come at 10:30 am ", "on the day"]
    assert chunk("call us at 850 687 2085 any time today", max_words=3) == [
        "call us at 850 687 2085 any ", "time today"]
    assert chunk("we are at Main St. downtown near here", max_words=2) == [
        "we are ", "at Main St. downtown ", "near here"]
    assert chunk("open on December 3 only this year", max_words=2) == [
        "open on ", "December 3 only ", "this year"]


def test_clause_is_released_as_soon_as_the_next_character_confirms_its_end():
    c = ClauseChunker()
    assert c.feed("Sure,") == []
    assert c.feed(" w") == ["Sure, "]
    assert c.feed("e're open. ") == ["we're open. "]
    assert c.feed("Dr.") == []
    assert c.feed(" ") == []   # "Dr." never ends a clause
    assert c.feed("Lee is in") == []
    assert c.flush() == "Dr. Lee is in"
    assert c.flush() is None


def test_abbreviation_waits_for_the_next_character_and_digits_wait_for_the_next_word():
    c = ClauseChunker()
    assert c.feed("at 9 a.m. ") == []          # "See" or "tomorrow"? not known yet
    assert c.feed("S") == ["at 9 a.m. "]
    c = ClauseChunker()
    assert c.feed("eight five oh, six") == []   # "six" might be "sixty": wait for the whole word
    assert c.feed(" eight seven, great") == []
    assert c.feed(" thanks") == ["eight five oh, six eight seven, "]


def test_flush_returns_whitespace_only_remainders_so_nothing_is_lost():
    c = ClauseChunker()
    assert c.feed("Done. ") == ["Done. "]
    assert c.feed("  ") == []
    assert c.flush() == "  "


def test_bad_max_words_is_a_clear_error():
    with pytest.raises(ValueError, match="max_words"):
        ClauseChunker(0)


# ---------------------------------------------------------------- properties
PIECES = ["Sure,", "Okay", "we", "open", "at", "10:30", "am", "$3.50", "$120", "1,200", "3.5", "e.g.", "Dr.",
          "St.", "a.m.", "p.m.", "Main", "—", "...", "eight", "five", "oh,", "six", "850-687-2085",
          "(850)", "687-2085", "no.", "No.", "5", "yes!", "why?", "fine;", "note:", "and", "the", "\n",
          "“quoted.”", "J.", "Smith", "—now", "9am.", "it's", "twenty,"]
SEPARATORS = [" ", " ", " ", "  ", "\n", ""]

texts = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), max_size=40).map(
    lambda parts: "".join(p + s for p, s in parts)) | st.text(max_size=80)


@st.composite
def text_and_splits(draw):
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=400, deadline=None)
@given(text_and_splits(), st.integers(1, 14))
def test_same_clauses_whatever_the_deltas_and_nothing_lost(case, max_words):
    text, pieces = case
    whole = chunk(text, max_words)
    assert "".join(whole) == text
    assert chunk(text, max_words, pieces) == whole
    assert chunk(text, max_words, list(text)) == whole
    assert all(whole)


PROTECTED = ["$3.50", "10:30 am", "9am – 5pm", "$35 - $40", "1,200", "850-687-2085", "(850) 687-2085",
             "e.g. Monday", "Dr. Lee",
             "123 Main St. downtown", "eight five oh, six eight seven, two zero eight five", "3.5"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["we", "can", "see", "you", "then", "okay,", "sure.", "right?"]), max_size=20),
       st.sampled_from(PROTECTED), st.integers(0, 20), st.integers(1, 14))
def test_protected_spans_are_never_cut(words, protected, at, max_words):
    words = list(words)
    words.insert(min(at, len(words)), protected)
    text = " ".join(words) + " and more words here."
    start = text.index(protected)
    cuts, pos = set(), 0
    for clause in chunk(text, max_words):
        pos += len(clause)
        cuts.add(pos)
    assert not any(start < c < start + len(protected) for c in cuts)
