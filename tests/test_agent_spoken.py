"""Spoken-form normaliser: what the TTS voice is given to say for numbers the LLM wrote."""
import pytest
from hypothesis import given, settings, strategies as st

from offhook.agent.spoken import (
    DigitRun, digit_runs, number_words, ordinal_words, phone_digits, spoken_phone, to_spoken, year_words)

PHONE = "eight-five-oh, six-eight-seven, two-zero-eight-five"


@pytest.mark.parametrize("text, spoken", [
    # phone numbers, every common US way of writing them
    ("Call (850) 687-2085.", f"Call {PHONE}."),
    ("Call (850)687-2085 today", f"Call {PHONE} today"),
    ("850-687-2085", PHONE),
    ("850.687.2085", PHONE),
    ("850 687 2085", PHONE),
    ("8506872085", PHONE),
    ("+1 850 687 2085", f"one, {PHONE}"),
    ("+1 (850) 687-2085", f"one, {PHONE}"),
    ("1-850-687-2085", f"one, {PHONE}"),
    ("+18506872085", f"one, {PHONE}"),
    ("Dial 555-0100 for us", "Dial five-five-five, zero-one-zero-zero for us"),
    ("for 100-1000 guests", "for 100-1000 guests"),
    ("Reach us at 212-555-0100 or 850-687-2085.",
     f"Reach us at two-one-two, five-five-five, zero-one-zero-zero or {PHONE}."),
    # times
    ("We open at 10:30 am.", "We open at ten thirty a.m."),
    ("We open at 10:30am", "We open at ten thirty a.m."),
    ("at 10:30 AM sharp", "at ten thirty a.m. sharp"),
    ("at 9am.", "at nine a.m."),
    ("at 9 am", "at nine a.m."),
    ("at 9 a.m. sharp", "at nine a.m. sharp"),
    ("until 6 PM", "until six p.m."),
    ("until 6 p.m. See you", "until six p.m. See you"),
    ("at 9:05 pm", "at nine oh five p.m."),
    ("at 12:15 pm", "at twelve fifteen p.m."),
    ("at 14:00", "at two p.m."),
    ("at 14:45", "at two forty-five p.m."),
    ("at 00:30", "at twelve thirty a.m."),
    ("at 10:30", "at ten thirty"),
    ("at 10:00", "at ten o'clock"),
    ("from 9am-5pm", "from nine a.m. to five p.m."),
    ("from 9-5pm", "from nine to five p.m."),
    ("from 9:30 am – 1 pm", "from nine thirty a.m. to one p.m."),
    ("10:00-18:00", "ten o'clock to six p.m."),
    ("at 9 a.m.–5 p.m.", "at nine a.m. to five p.m."),
    ("call 2085. – 10:30 am", "call 2085. – ten thirty a.m."),
    ("the score was 25:99", "the score was 25:99"),
    ("at 13pm", "at 13pm"),
    # prices
    ("A trim is $3.50.", "A trim is three dollars and fifty cents."),
    ("$120", "one hundred twenty dollars"),
    ("$35.00 flat", "thirty-five dollars flat"),
    ("$1 and $0.99 and $0.01", "one dollar and ninety-nine cents and one cent"),
    ("$3.05", "three dollars and five cents"),
    ("$3.5", "three dollars and fifty cents"),
    ("$1,200", "one thousand two hundred dollars"),
    ("$12,500.75", "twelve thousand five hundred dollars and seventy-five cents"),
    ("$2 million", "two million dollars"),
    ("$2.5 million", "two point five million dollars"),
    ("$35-$40", "thirty-five dollars to forty dollars"),
    ("$35 – $40.", "thirty-five dollars to forty dollars."),
    ("9-$40", "9-forty dollars"),
    ("20% off", "twenty percent off"),
    ("2.5% fee", "two point five percent fee"),
    # dates
    ("Dec 3", "December third"),
    ("Dec. 3rd", "December third"),
    ("on December 3, 2026.", "on December third, twenty twenty-six."),
    ("on Jan 21st at 9am", "on January twenty-first at nine a.m."),
    ("Sept 2", "September second"),
    ("in March 2026", "in March twenty twenty-six"),
    ("12/03", "December third"),
    ("1/15", "January fifteenth"),
    ("12/03/2026", "December third, twenty twenty-six"),
    ("12/3/26", "December third, twenty twenty-six"),
    ("2026-12-03", "December third, twenty twenty-six"),
    ("2005-07-04", "July fourth, two thousand five"),
    ("2026-13-03", "2026-13-03"),
    ("2/30", "2/30"),
    ("Feb 29, 2028", "February twenty-ninth, twenty twenty-eight"),
    ("2027-02-29", "2027-02-29"),
    ("1/2 cup", "1/2 cup"),
    ("open 24/7", "open 24/7"),
    ("May 10:30", "May ten thirty"),
    # ordinals
    ("the 1st, 2nd, 3rd and 4th", "the first, second, third and fourth"),
    ("our 11th, 12th, 21st, 22nd, 100th", "our eleventh, twelfth, twenty-first, twenty-second, one hundredth"),
    ("the 40th", "the fortieth"),
    # addresses
    ("123 Main St.", "one twenty-three Main Street."),
    ("at 123 Main St. in town", "at one twenty-three Main Street in town"),
    ("at 123 Main St. See you", "at one twenty-three Main Street. See you"),
    ("412 Maple Street, Springfield", "four twelve Maple Street, Springfield"),
    ("412 Maple Street.", "four twelve Maple Street."),
    ("1600 Pennsylvania Ave", "sixteen hundred Pennsylvania Avenue"),
    ("4501 N. 5th Ave.", "forty-five oh one North Fifth Avenue."),
    ("105 Oak Ln", "one oh five Oak Lane"),
    ("10 Downing Rd", "ten Downing Road"),
    ("100 Martin Luther King Blvd", "one hundred Martin Luther King Boulevard"),
    ("12345 Old Mill Rd", "one two three four five Old Mill Road"),
    ("Springfield, IL 62704", "Springfield, IL six two seven zero four"),
    # left alone: plain numbers and the words around everything
    ("We have 3 chairs and 12 staff.", "We have 3 chairs and 12 staff."),
    ("Room 12B, version 2.0", "Room 12B, version 2.0"),
    ("Sure — it's $35, and we're open until 6 pm!",
     "Sure — it's thirty-five dollars, and we're open until six p.m.!"),
])
def test_spoken_forms(text, spoken):
    assert to_spoken(text) == spoken


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (45, "forty-five"), (100, "one hundred"),
    (120, "one hundred twenty"), (999, "nine hundred ninety-nine"), (1000, "one thousand"),
    (1200, "one thousand two hundred"), (2_000_005, "two million five"), (3_000_000_000, "three billion"),
    (-4, "minus four"),
])
def test_number_words(n, words):
    assert number_words(n) == words


def test_ordinal_and_year_words():
    assert [ordinal_words(n) for n in (1, 2, 3, 5, 8, 9, 12, 20, 23, 101)] == [
        "first", "second", "third", "fifth", "eighth", "ninth", "twelfth", "twentieth", "twenty-third",
        "one hundred first"]
    assert [year_words(y) for y in (2026, 2000, 2005, 2010, 1999, 1900, 1905)] == [
        "twenty twenty-six", "two thousand", "two thousand five", "twenty ten", "nineteen ninety-nine",
        "nineteen hundred", "nineteen oh five"]


def test_spoken_phone_groups():
    assert spoken_phone("(850) 687-2085") == PHONE
    assert spoken_phone("18506872085") == f"one, {PHONE}"
    assert spoken_phone("6872085") == "six-eight-seven, two-zero-eight-five"
    assert spoken_phone("85068720") == "eight-five-oh, six-eight-seven, two-zero"
    assert spoken_phone("8506") == "eight-five-oh, six"
    assert spoken_phone("850687208555") == f"{PHONE}, five-five"


@pytest.mark.parametrize("text, runs", [
    ("my number is eight five oh", ["850"]),
    ("eight fifty, six eight seven, twenty eighty five", ["8506872085"]),
    ("fifty six", ["56"]),
    ("fifty, six", ["506"]),
    ("double five five one two three four", ["5551234"]),
    ("eight hundred five five five", ["800555"]),
    ("850-687-2085 and 12", ["8506872085", "12"]),
    ("eight five oh um six eight seven", ["850687"]),
    ("one for the road", ["1"]),
    ("nothing here", []),
])
def test_digit_runs_read_what_callers_say(text, runs):
    assert [r.digits for r in digit_runs(text)] == runs


def test_digit_run_spans_point_at_the_digits():
    text = "it's eight five oh, six eight seven, two zero eight five thanks"
    (run,) = digit_runs(text)
    assert run == DigitRun(5, 56, "8506872085")
    assert text[run.start:run.end] == "eight five oh, six eight seven, two zero eight five"


@pytest.mark.parametrize("text, digits", [
    ("my number is eight five oh six eight seven two zero eight five", "8506872085"),
    ("it's 1 850 687 2085", "8506872085"),
    ("(850) 687-2085", "8506872085"),
    ("eight five oh six eight seven", None),          # too short
    ("one two three four five six seven eight nine zero", None),  # no area code starts with 1
    ("my number is five five five one two three four", None),
    ("no number", None),
])
def test_phone_digits_only_for_plausible_numbers(text, digits):
    assert phone_digits(text) == digits


# ---------------------------------------------------------------- properties
no_digits = st.text(alphabet=st.characters(blacklist_categories=("Nd", "No", "Nl", "Cs")), max_size=200)


@settings(max_examples=300, deadline=None)
@given(no_digits)
def test_text_without_digits_is_returned_unchanged(text):
    assert to_spoken(text) == text


words = st.lists(st.sampled_from(["Sure,", "we", "are", "open", "St.", "Dr.", "May", "am", "the", "—",
                                  "at", "is", "and", "$", "%", "Main", "Street", "call"]), max_size=8).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(words, st.sampled_from(["(850) 687-2085", "$3.50", "10:30 am", "Dec 3", "21st", "2026-12-03", "14:00"]),
       words)
def test_words_around_a_number_are_not_altered(before, number, after):
    out = to_spoken(f"{before} {number} . {after}")
    assert out.startswith(before + " ") and out.endswith(" . " + after)
    assert not any(c.isdigit() for c in out)


clause_pieces = st.lists(st.tuples(st.sampled_from([
    "Sure,", "okay.", "we", "open", "at", "10:30 am", "9am", "–", "5pm", "$3.50,", "$35", "$40.", "Dec 3,", "2026",
    "(850) 687-2085", "850,", "687,", "2085.", "eight", "five", "oh,", "123 Main St.", "412 Maple Street,",
    "Springfield,", "IL 62704", "the 21st", "See", "you", "then.", "20%", "12/03", "—", "and", "a.m.", "14:00"]),
    st.sampled_from([" ", " ", "  ", "\n"])), max_size=30).map(lambda parts: "".join(p + s for p, s in parts))


@settings(max_examples=300, deadline=None)
@given(clause_pieces, st.integers(1, 14))
def test_normalising_clause_by_clause_says_the_same_as_the_whole_text(text, max_words):
    # the responder normalises each clause as the chunker releases it
    from offhook.agent.chunker import ClauseChunker
    c = ClauseChunker(max_words)
    clauses = c.feed(text)
    rest = c.flush()
    clauses += [rest] if rest else []
    assert "".join(to_spoken(x) for x in clauses) == to_spoken(text)


junk = st.lists(st.sampled_from(list("0123456789$%:/.,-–— ()+apmAPMstndrh\n") + [
    "Dec ", "May ", " St", " Ave", "am", "pm", "1st", "eight ", "fifty ", "oh ", "double ", "um ", "hundred "]),
    max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(junk)
def test_any_mix_of_digits_and_marks_is_handled(text):
    out = to_spoken(text)
    # whatever was not read out is left exactly as written; what was read out has no digits left
    assert isinstance(out, str) and (out == text or sum(c.isdigit() for c in out) < sum(c.isdigit() for c in text))
    for run in digit_runs(text):
        assert run.digits and 0 <= run.start < run.end <= len(text)
    assert phone_digits(text) is None or len(phone_digits(text)) == 10
