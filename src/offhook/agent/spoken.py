"""Spoken-form normaliser: what a TTS voice should say for the numbers an LLM writes.

    to_spoken("Call (850) 687-2085 before 10:30 am, a cut is $35.")
    -> "Call eight-five-oh, six-eight-seven, two-zero-eight-five before ten thirty a.m., a cut is
        thirty-five dollars."

Handles US phone numbers (spoken digit by digit in 3-3-4 groups, "oh" for zero in the three-digit
groups), times ("10:30 am", "9am", "14:00"), time ranges ("9am-5pm"), prices ("$3.50", "$120",
"$2.5 million"), percentages, dates ("Dec 3", "December 3rd, 2026", "12/03", "2026-12-03"),
ordinals ("21st"), simple street addresses ("123 Main St." -> "one twenty-three Main Street") and
ZIP codes. Every rule needs a digit, so text without digits comes back unchanged, and the text
around a match is never touched: the LLM's words are its own.

Also here, because the endpointing scorer and the confirmation loop need the same reading of what
callers say: `digit_runs` (the digits in "eight fifty, six eight seven" or "850-687"), and
`phone_digits` (a plausible US number in a transcript).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from offhook.providers.receptionist import spoken_number

__all__ = ["to_spoken", "number_words", "ordinal_words", "year_words", "spoken_phone", "spoken_time",
           "spoken_price", "DigitRun", "digit_runs", "phone_digits"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 9, "billion"), (10 ** 6, "million"))
_ORDINAL_LAST = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                 "nine": "ninth", "twelve": "twelfth"}
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_MONTH_OF = {m.lower(): i + 1 for i, m in enumerate(_MONTHS)} | {
    m[:3].lower(): i + 1 for i, m in enumerate(_MONTHS)} | {"sept": 9}
_STREET = {"st": "Street", "ave": "Avenue", "av": "Avenue", "rd": "Road", "blvd": "Boulevard",
           "dr": "Drive", "ln": "Lane", "ct": "Court", "pl": "Place", "pkwy": "Parkway",
           "hwy": "Highway", "ter": "Terrace", "cir": "Circle", "sq": "Square"}
_DIRECTION = {"n": "North", "s": "South", "e": "East", "w": "West", "ne": "Northeast",
              "nw": "Northwest", "se": "Southeast", "sw": "Southwest"}


# ---------------------------------------------------------------- number words
def number_words(n: int) -> str:
    """A whole number in words: 120 -> "one hundred twenty", 1200 -> "one thousand two hundred"."""
    if n < 0:
        return "minus " + number_words(-n)
    for scale, word in _SCALES:  # the receptionist's reading stops below a million
        if n >= scale:
            q, rest = divmod(n, scale)
            return f"{number_words(q)} {word}" + (" " + number_words(rest) if rest else "")
    return spoken_number(n)


def ordinal_words(n: int) -> str:
    """21 -> "twenty-first", 100 -> "one hundredth"."""
    words = number_words(n)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _ORDINAL_LAST:
        return head + _ORDINAL_LAST[last]
    if last.endswith("y"):
        return head + last[:-1] + "ieth"
    return head + last + "th"


def year_words(y: int) -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1900 -> "nineteen hundred"."""
    if not 1000 <= y <= 9999 or 2000 <= y <= 2009:
        return number_words(y)
    hi, lo = divmod(y, 100)
    if lo == 0:
        return f"{number_words(hi)} hundred"
    return f"{number_words(hi)} {_pair(lo)}"


def _pair(n: int) -> str:
    """Two digits as said inside a year or house number: 5 -> "oh five", 45 -> "forty-five"."""
    return f"oh {_ONES[n]}" if n < 10 else number_words(n)


def _house_number(digits: str) -> str:
    n = int(digits)
    if len(digits) != len(str(n)) or len(digits) >= 5:
        return " ".join(_ONES[int(d)] for d in digits)  # "0123", "12345": digit by digit
    if n < 100 or n % 100 == 0 and (n < 1000 or n % 1000 == 0):
        return number_words(n)  # "ten", "one hundred", "two thousand"
    hi, lo = divmod(n, 100)
    return f"{number_words(hi)} hundred" if lo == 0 else f"{number_words(hi)} {_pair(lo)}"


def _decimal(whole: str, frac: str) -> str:
    words = number_words(int(whole.replace(",", "")))
    return words + (" point " + " ".join(_ONES[int(d)] for d in frac) if frac else "")


# ---------------------------------------------------------------- the spoken forms
def spoken_phone(digits: str) -> str:
    """A US number read digit by digit in groups: "8506872085" -> "eight-five-oh, six-eight-seven,
    two-zero-eight-five" (a leading country code 1 is read "one", 7 digits as 3-4, other lengths
    in the 3-3-4 places: "85068720" -> "eight-five-oh, six-eight-seven, two-zero")."""
    d = re.sub(r"\D", "", digits)
    groups: list[str] = []
    if len(d) == 11 and d[0] == "1":
        groups, d = ["1"], d[1:]
    if len(d) == 7:
        groups += [d[:3], d[3:]]
    else:  # 10 digits, or a partial/overlong number read in the same 3-3-4 places
        groups += [d[:3], d[3:6], d[6:10], d[10:]]
    return ", ".join("-".join(("oh" if len(g) == 3 else "zero") if c == "0" else _ONES[int(c)] for c in g)
                     for g in groups if g)


def spoken_time(hour: int, minute: int, meridiem: str | None = None) -> str | None:
    """"ten thirty a.m.", "two p.m." (from 14:00), "ten o'clock"; None when not a time of day.
    meridiem: "am", "pm" or None (then hours 13-23 and 0 are read as p.m./a.m.)."""
    if not 0 <= minute <= 59:
        return None
    if meridiem is None:
        if not 0 <= hour <= 23:
            return None
        if hour == 0 or hour > 12:
            meridiem = "am" if hour == 0 else "pm"
    elif not 1 <= hour <= 12:
        return None
    h = hour % 12 or 12
    words = number_words(h)
    if minute:
        words += " " + _pair(minute)
    if meridiem:
        return f"{words} {meridiem[0]}.m."
    return words if minute else f"{words} o'clock"


def spoken_price(dollars: int, cents: int = 0) -> str:
    """"three dollars and fifty cents", "one hundred twenty dollars", "ninety-nine cents"."""
    d = f"{number_words(dollars)} dollar{'' if dollars == 1 else 's'}"
    if not cents:
        return d
    c = f"{number_words(cents)} cent{'' if cents == 1 else 's'}"
    return c if dollars == 0 else f"{d} and {c}"


def _date(month: int, day: int | None, year: int | None) -> str | None:
    try:
        date(year or 2000, month, day or 1)  # "2/30", "13/01": not dates, left as written
    except ValueError:
        return None
    words = _MONTHS[month - 1] + (" " + ordinal_words(day) if day is not None else "")
    if year is not None:
        words += (", " if day is not None else " ") + year_words(year)
    return words


def _two_digit_year(y: str | None) -> int | None:
    if y is None:
        return None
    return 2000 + int(y) if len(y) == 2 else int(y)


# ---------------------------------------------------------------- the rules
_MER = r"(?P<{0}>[aApP])\.?\s?[mM]\.?(?![A-Za-z])"
_MONTH_NAMES = "|".join(sorted([m for m in _MONTHS] + [m[:3] for m in _MONTHS] + ["Sept"], key=len, reverse=True))
_SUFFIXES = "|".join(sorted({*(_STREET.values()), *(k.capitalize() for k in _STREET)}, key=len, reverse=True))

_RULES: list[tuple[str, str]] = [
    ("phone", r"(?<![\w$.,/+-])(?P<cc>\+?1[\s.-]?)?(?:\((?P<a1>\d{3})\)\s?|(?P<a2>\d{3})[\s.-]?)"
              r"(?P<ex>\d{3})[\s.-]?(?P<ln>\d{4})(?![\w/]|[.,]\d)"),
    ("iso", r"(?<![\w/-])(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?![\w-])"),
    ("price", r"\$(?P<pd>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<pc>\d{1,2}))?(?!\d|:\d)"
              r"(?:\s+(?P<ps>thousand|million|billion)\b)?"),
    ("address", r"(?<![\w.,$])(?P<hn>\d{1,5})\s+(?P<sn>(?:(?:[NSEW]|NE|NW|SE|SW)\.?\s+)?"
                r"(?:(?:[A-Z][a-z]+|\d{1,3}(?:st|nd|rd|th))\s+){1,3})"
                rf"(?P<sx>{_SUFFIXES})\b(?P<sdot>\.)?"),
    ("clock", r"(?<![\d:.,])(?P<ch>\d{1,2}):(?P<cm>\d{2})(?![\d:])(?:\s?" + _MER.format("cmer") + ")?"),
    ("hour", r"(?<![\w:.,$])(?P<hh>\d{1,2})\s?" + _MER.format("hmer")),
    # "9 to 5pm": the bare hour of a range that ends in a time
    ("hourto", r"(?<![\w:.,$])(?P<th>\d{1,2})(?= to \d{1,2}(?::\d{2})?\s?[aApP]\.?\s?[mM](?![A-Za-z]))"),
    ("slash", r"(?<![\w/.,])(?P<sm>\d{1,2})/(?P<sd>\d{1,2})(?:/(?P<sy>\d{4}|\d{2}))?(?![\w/])"),
    # a 7-digit local number; exchanges start 2-9, which keeps "100-1000 guests" a range
    ("local", r"(?<![\w$.,/-])(?P<l3>[2-9]\d{2})-(?P<l4>\d{4})(?![\w-]|[.,]\d)"),
    ("month", rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+(?:(?P<md>\d{{1,2}})(?:st|nd|rd|th)?(?![\d:]|[-/.]\d)\b"
              r"(?:,?\s+(?P<my>\d{4})(?![\w-]|[/.:]\d))?|(?P<mo>\d{4})(?![\w-]|[/.:]\d))"),
    ("ordinal", r"(?<![\w.,])(?P<on>\d{1,7})(?:st|nd|rd|th)\b"),
    ("percent", r"(?<![\w.,])(?P<pw>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<pf>\d+))?\s?%"),
    ("zip", r"\b(?P<st>[A-Z]{2})\s+(?P<z5>\d{5})(?:-(?P<z4>\d{4}))?\b"),
]
_PATTERN = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _RULES))
_TIME_FOR_RANGE = r"\d{1,2}(?::\d{2})?\s?[aApP]\.?\s?[mM]\b|\d{1,2}:\d{2}"
_RANGE_DASH = re.compile(rf"(?<=[\dmM.])\s*[-–—]\s*(?=(?P<right>{_TIME_FOR_RANGE}|\$\d))")
_RANGE_LEFT_TIME = re.compile(r"(?<![\d:.,])(?:\d{1,2}(?::\d{2})?\s?[aApP]\.?\s?[mM]\.?|\d{1,2}:\d{2}|\d{1,2})$")
_RANGE_LEFT_PRICE = re.compile(r"\$[\d,]+(?:\.\d{1,2})?$")


def _spell(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _replace(m: re.Match[str]) -> str:
    g = m.groupdict()
    kind = m.lastgroup
    out: str | None
    if kind == "phone":
        cc = "1" if g["cc"] else ""
        out = spoken_phone(cc + (g["a1"] or g["a2"]) + g["ex"] + g["ln"])
    elif kind == "local":
        out = spoken_phone(g["l3"] + g["l4"])
    elif kind == "iso":
        out = _date(int(g["im"]), int(g["id"]), int(g["iy"]))
    elif kind == "slash":
        if g["sy"] is None and len(g["sm"]) == 1 and len(g["sd"]) == 1:
            out = None  # "1/2", "3/4": more likely a fraction than a date
        else:
            out = _date(int(g["sm"]), int(g["sd"]), _two_digit_year(g["sy"]))
    elif kind == "month":
        month = _MONTH_OF[g["mn"].lower()]
        if g["mo"]:
            out = _date(month, None, int(g["mo"]))
        else:
            out = _date(month, int(g["md"]), int(g["my"]) if g["my"] else None)
    elif kind == "price":
        whole = g["pd"].replace(",", "")
        if g["ps"]:
            out = f"{_decimal(whole, g['pc'] or '')} {g['ps']} dollars"
        else:
            cents = int((g["pc"] or "0").ljust(2, "0"))
            out = spoken_price(int(whole), cents)
    elif kind == "percent":
        out = _decimal(g["pw"], g["pf"] or "") + " percent"
    elif kind == "clock":
        mer = g["cmer"].lower() + "m" if g["cmer"] else None
        out = spoken_time(int(g["ch"]), int(g["cm"]), mer)
    elif kind == "hour":
        out = spoken_time(int(g["hh"]), 0, g["hmer"].lower() + "m")
    elif kind == "hourto":
        out = number_words(int(g["th"])) if 1 <= int(g["th"]) <= 12 else None
    elif kind == "ordinal":
        out = ordinal_words(int(g["on"]))
    elif kind == "address":
        out = _address(m)
    else:  # zip
        out = f"{g['st']} {_spell(g['z5'])}" + (f" {_spell(g['z4'])}" if g["z4"] else "")
    if out is None:
        return m.group(0)
    if out.endswith(".") and m.string.startswith(".", m.end()):
        out = out[:-1]  # "at 9am." -> "nine a.m." not "nine a.m.."
    return out


def _address(m: re.Match[str]) -> str:
    words = []
    for w in m.group("sn").split():
        bare = w.rstrip(".")
        if bare.lower() in _DIRECTION and bare.isupper():
            words.append(_DIRECTION[bare.lower()])
        elif bare[:1].isdigit():
            words.append(ordinal_words(int(bare[:-2])).capitalize())
        else:
            words.append(w)
    suffix = m.group("sx")
    full = _STREET.get(suffix.lower(), suffix)
    tail = ""
    if m.group("sdot"):
        rest = m.string[m.end():]
        # an abbreviation's dot doubles as a full stop only at a sentence end; "Street." is one
        if full == suffix or not rest.strip() or re.match(r"\s+[A-Z]", rest):
            tail = "."
    return " ".join([_house_number(m.group("hn")), *words, full]) + tail


def to_spoken(text: str) -> str:
    """The text with its numbers, prices, times, dates, phone numbers and addresses in the words a
    voice should say; everything else unchanged (text without digits is returned as is)."""
    if not any(c.isdigit() for c in text):
        return text
    text = _range_to(text)
    return _PATTERN.sub(_replace, text)


def _range_to(text: str) -> str:
    """ "9am-5pm", "10:00-18:00", "$35-$40" -> "9am to 5pm": a dash between times or prices is
    said "to"."""
    def sub(m: re.Match[str]) -> str:
        left = _RANGE_LEFT_PRICE if m.group("right").startswith("$") else _RANGE_LEFT_TIME
        return " to " if left.search(text, 0, m.start()) else m.group(0)
    return _RANGE_DASH.sub(sub, text)


# ---------------------------------------------------------------- digits in what callers say
_TOKEN = re.compile(r"\d+|[A-Za-z]+(?:['’][A-Za-z]+)?")
_DIGIT_WORD = {w: str(i) for i, w in enumerate(_ONES[:10])} | {"oh": "0", "o": "0"}
_TEEN_WORD = {w: str(i) for i, w in enumerate(_ONES) if i >= 10}
_TENS_WORD = {w: i for i, w in enumerate(_TENS) if i >= 2}
_RUN_FILLERS = frozenset({"um", "uh", "er", "erm", "uhm"})
_RUN_GAP = re.compile(r"[\s.,()+\-–/]*")


@dataclass(frozen=True, slots=True)
class DigitRun:
    """Consecutive digits said or written in a transcript: text[start:end] gives `digits`."""
    start: int
    end: int
    digits: str


def _digit_value(text: str, tokens: list[re.Match[str]], i: int) -> tuple[str, int] | None:
    """(digits, tokens used) for the digit-ish token at i, or None. "fifty six" is 56 but
    "fifty, six" is 50 then 6: only a space joins two words into one number."""
    w = tokens[i].group(0).lower()
    nxt = ""
    if i + 1 < len(tokens) and text[tokens[i].end():tokens[i + 1].start()].isspace():
        nxt = tokens[i + 1].group(0).lower()
    if w.isdigit():
        return w, 1
    if w in _DIGIT_WORD:
        return _DIGIT_WORD[w], 1
    if w in _TEEN_WORD:
        return _TEEN_WORD[w], 1
    if w in _TENS_WORD:
        if nxt in _DIGIT_WORD and _DIGIT_WORD[nxt] != "0":
            return f"{_TENS_WORD[w]}{_DIGIT_WORD[nxt]}", 2
        return f"{_TENS_WORD[w]}0", 1
    if w in ("double", "triple") and nxt in _DIGIT_WORD:
        return _DIGIT_WORD[nxt] * (2 if w == "double" else 3), 2
    return None


def digit_runs(text: str) -> list[DigitRun]:
    """The runs of digits in a transcript, as numerals or words: "eight fifty, six eight seven"
    -> one run "850687"; "850-687-2085" -> "8506872085". "oh" counts as zero, "double five" as 55,
    "hundred"/"thousand" after a digit as 00/000; "um"/"uh" between digits do not end a run."""
    tokens = list(_TOKEN.finditer(text))
    runs: list[DigitRun] = []
    start = end = last_end = -1
    digits = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        joined = end >= 0 and _RUN_GAP.fullmatch(text, end, tok.start()) is not None
        w = tok.group(0).lower()
        value = _digit_value(text, tokens, i)
        if value is None and digits and joined and w in ("hundred", "thousand"):
            value = ("00" if w == "hundred" else "000", 1)
        if value is None and digits and joined and w in _RUN_FILLERS and i + 1 < len(tokens) \
                and _digit_value(text, tokens, i + 1) is not None:
            end = tok.end()  # skip the filler, the run goes on
            i += 1
            continue
        if value is None:
            if digits:
                runs.append(DigitRun(start, last_end, digits))
            digits, start, end = "", -1, -1
            i += 1
            continue
        got, used = value
        if digits and not joined:
            runs.append(DigitRun(start, last_end, digits))
            digits = ""
        if not digits:
            start = tok.start()
        digits += got
        end = last_end = tokens[i + used - 1].end()
        i += used
    if digits:
        runs.append(DigitRun(start, last_end, digits))
    return runs


def phone_digits(text: str) -> str | None:
    """The 10 digits of a plausible US phone number in a transcript (the longest digit run; a
    leading country code 1 is dropped), or None when the digits heard do not make one."""
    runs = digit_runs(text)
    if not runs:
        return None
    d = max(runs, key=lambda r: len(r.digits)).digits
    if len(d) == 11 and d[0] == "1":
        d = d[1:]
    return d if len(d) == 10 and d[0] not in "01" else None
