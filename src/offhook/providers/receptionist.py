"""The scripted receptionist: an offline LLMProvider that answers from a business profile.

    brain = ScriptedReceptionist(sample_profile())
    async with brain.stream(messages, system=prompt) as s:
        async for token in s:          # streamed like an LLM: " Sure,", " we're", " open", ...
            ...
    brain.reply(messages)              # the same reply as one string

It is stateless between calls: the conversation state (booking slots, what was asked, a pending
"did I hear that right?") is rebuilt on every call by replaying the caller's messages in order. So a
speculative request that the agent cancels, a retried turn or a barge-in never leaves it confused,
and the same history always gives the same reply.

Understands (on the caller's last message, in the context of the replayed state): opening hours (in
general or on a day), the address, services and prices, the profile's FAQ, a request for a human,
goodbye, and booking: day, time (checked against the opening hours and booking slots), name and phone
number, collected across turns in any order, then read back with the number in spoken form ("eight
five oh, six eight seven, two zero eight five") for a final yes/no. A number that parses badly (too
few digits, words that only sound like digits) gets "did I hear that right?" instead of being used.
Replies open with a short confirmatory word ("Sure,", "Okay,", "Got it.") so audio starts fast.
"""
from __future__ import annotations

import math
import re
from itertools import combinations
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import date, time
from typing import AsyncIterator, Callable, Sequence

import trio

from offhook.providers.base import LLMUsage
from offhook.providers.profile import WEEKDAYS, BusinessProfile, Hours, Service, sample_profile

__all__ = ["ScriptedReceptionist", "ReceptionistStream", "spoken_phone", "spoken_time", "spoken_price",
           "spoken_number", "parse_phone", "parse_time", "parse_day", "PhoneParse", "INTENTS"]

INTENTS = ("human", "goodbye", "price", "faq", "booking", "hours", "address", "services", "unknown")

# ---------------------------------------------------------------- spoken forms
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spoken_number(n: int) -> str:
    if n < 0:
        return "minus " + spoken_number(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + spoken_number(rest))
    if n < 1_000_000:
        rest = n % 1000
        return spoken_number(n // 1000) + " thousand" + ("" if rest == 0 else " " + spoken_number(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def _digit_word(d: str, oh: bool) -> str:
    return ("oh" if oh else "zero") if d == "0" else _ONES[int(d)]


def spoken_phone(digits: str) -> str:
    """10 digits as 3-3-4 groups spoken digit by digit: "eight five oh, six eight seven, two zero eight five"."""
    d = re.sub(r"\D", "", digits)
    if len(d) == 11 and d[0] == "1":
        groups = [d[0], d[1:4], d[4:7], d[7:]]
    elif len(d) == 10:
        groups = [d[:3], d[3:6], d[6:]]
    else:
        groups = [d[i:i + 3] for i in range(0, len(d), 3)]
    # "eight five oh, six eight seven, two zero eight five": zero is "oh" in the three-digit groups only
    return ", ".join(" ".join(_digit_word(c, len(g) == 3) for c in g) for g in groups if g)


def spoken_time(t: time) -> str:
    if t.hour == 12 and t.minute == 0:
        return "noon"
    h = t.hour % 12 or 12
    suffix = "a.m." if t.hour < 12 else "p.m."
    if t.minute == 0:
        return f"{spoken_number(h)} {suffix}"
    minutes = f"oh {_ONES[t.minute]}" if t.minute < 10 else spoken_number(t.minute)
    return f"{spoken_number(h)} {minutes} {suffix}"


def spoken_price(p: float) -> str:
    cents = round(p * 100)
    dollars, c = divmod(cents, 100)
    words = f"{spoken_number(dollars)} dollar{'' if dollars == 1 else 's'}"
    return words + (f" {spoken_number(c)}" if c else "")


def _join(items: Sequence[str], conj: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} {conj} {items[1]}"
    return ", ".join(items[:-1]) + f", {conj} {items[-1]}"


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


# ---------------------------------------------------------------- parsing what callers say
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")
_DIGIT_WORDS = {w: str(i) for i, w in enumerate(_ONES[:10])} | {"oh": "0", "o": "0"}
_SOUNDALIKE_DIGITS = {"to": "2", "too": "2", "for": "4", "ate": "8", "won": "1", "tree": "3", "fore": "4",
                      "sex": "6", "niner": "9", "nought": "0"}
_TEEN_WORDS = {w: str(i) for i, w in enumerate(_ONES) if i >= 10}
_TENS_WORDS = {w: i for i, w in enumerate(_TENS) if i >= 2}
_PHONE_FILLER = {"my", "number", "is", "it's", "its", "it", "um", "uh", "er", "phone", "the", "and", "area", "code",
                 "dash", "yeah", "yes", "sure", "okay", "ok", "so", "that's", "thats", "cell", "mobile", "you",
                 "can", "reach", "me", "at", "on", "i", "think", "oh's", "a"}


def _normalise(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"(\d{1,2}):(\d{2})", r"\1 \2", t)
    t = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", t)
    t = re.sub(r"\b([ap]) m\b", r"\1m", t)
    t = re.sub(r"(\d)([ap]m)\b", r"\1 \2", t)
    t = re.sub(r"(\d)-(?=\d)", r"\1 ", t)
    return t


def _words(text: str) -> list[str]:
    return _WORD.findall(_normalise(text))


@dataclass(frozen=True)
class PhoneParse:
    digits: str          # every digit heard, in order
    doubtful: bool       # some digits came from sound-alike or unknown words
    valid: bool          # a whole number: 10 digits (a leading 1 before 10 more is dropped)

    @property
    def number(self) -> str:
        return self.digits[1:] if len(self.digits) == 11 and self.digits[0] == "1" else self.digits


def _is_digitish(w: str) -> bool:
    return w.isdigit() or w in _DIGIT_WORDS or w in _TEEN_WORDS or w in _TENS_WORDS


def _phone_runs(text: str) -> list[list[tuple[str, object]]]:
    """Runs of digit items in what was said. Items: ("d", digits), ("s", digits) heard from a
    sound-alike word, ("a", (joined, split)) for "fifty six" (56, or 50 then 6), ("u", word) for an
    unknown word between digits. Two unknown words in a row end a run ("... at 3 30 pm, I'm Ana, 850 ...")."""
    words: list[str] = []
    for segment in re.split(r"[,;!?]|\.(?!\d)", _normalise(text)):  # a comma ends "fifty, six"
        words += _WORD.findall(segment) + ["|"]
    runs: list[list[tuple[str, object]]] = [[]]
    unknown = 0
    repeat = 1
    i = 0
    while i < len(words):
        w, nxt = words[i], words[i + 1] if i + 1 < len(words) else ""
        run = runs[-1]
        item: tuple[str, object] | None = None
        if w in ("double", "triple"):
            repeat = 2 if w == "double" else 3
            i += 1
            continue
        if w.isdigit():
            item = ("d", w * repeat if len(w) == 1 else w)
        elif w in _DIGIT_WORDS:
            item = ("d", _DIGIT_WORDS[w] * repeat)
        elif w in _TEEN_WORDS:
            item = ("d", _TEEN_WORDS[w])
        elif w in _TENS_WORDS:
            tens = _TENS_WORDS[w]
            if nxt in _DIGIT_WORDS and _DIGIT_WORDS[nxt] != "0":
                item = ("a", (f"{tens}{_DIGIT_WORDS[nxt]}", f"{tens}0{_DIGIT_WORDS[nxt]}"))
                i += 1
            else:
                item = ("d", f"{tens}0")
        elif w == "hundred" and run:
            item = ("d", "00")
        elif w in _SOUNDALIKE_DIGITS and (run or _is_digitish(nxt)):
            item = ("s", _SOUNDALIKE_DIGITS[w] * repeat)
        elif w == "|" or w in _PHONE_FILLER:
            pass
        else:
            unknown += 1
            if unknown == 2 and run:
                runs.append([])
            elif run:
                run.append(("u", w))
        if item is not None:
            unknown = 0
            runs[-1].append(item)
        repeat = 1
        i += 1
    return [_strip_unknown(r) for r in runs if any(k != "u" for k, _ in r)]


def _strip_unknown(run: list[tuple[str, object]]) -> list[tuple[str, object]]:
    while run and run[-1][0] == "u":
        run = run[:-1]
    return run


def _valid_phone(digits: str) -> bool:
    return len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")


def parse_phone(text: str) -> PhoneParse | None:
    """The phone number in what the caller said: "eight five oh six eight seven...", "850-687-2085",
    "double five", "eight fifty, six eight seven". The longest run of digits is the number. Doubtful
    (confirm before use) when a digit came from a sound-alike word ("ate"), an unknown word sat among
    the digits, or only an unusual reading of "fifty six" (50 then 6) gives a whole number.
    None when nothing in it is a digit."""
    runs = _phone_runs(text)
    if not runs:
        return None
    best = max(runs, key=lambda r: sum(len(v[1] if k == "a" else v) for k, v in r))  # type: ignore[index, arg-type]
    doubtful = any(k in ("s", "u") for k, _ in best)
    ambiguous = [i for i, (k, _) in enumerate(best) if k == "a"]

    def digits(split: frozenset[int]) -> str:
        return "".join(v[1 if i in split else 0] if k == "a" else v  # type: ignore[index]
                       for i, (k, v) in enumerate(best))

    plain = digits(frozenset())
    if _valid_phone(plain) or not ambiguous or len(ambiguous) > 4:
        return PhoneParse(plain, doubtful, _valid_phone(plain))
    for n in range(1, len(ambiguous) + 1):
        for combo in combinations(ambiguous, n):
            d = digits(frozenset(combo))
            if _valid_phone(d):
                return PhoneParse(d, True, True)
    return PhoneParse(plain, doubtful, False)


def parse_day(words: Sequence[str], today: date) -> str | None:
    for w in words:
        base = w[:-1] if w.endswith("s") and w[:-1] in WEEKDAYS else w
        base = base.removesuffix("'s")
        if base in WEEKDAYS:
            return base
        if w == "today" or w == "tonight":
            return WEEKDAYS[today.weekday()]
        if w == "tomorrow":
            return WEEKDAYS[(today.weekday() + 1) % 7]
    return None


_HOUR_WORDS = {w: i for i, w in enumerate(_ONES) if 1 <= i <= 12}
_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty": 40, "fifty": 50, "twenty": 20, "ten": 10, "forty-five": 45}
_MERIDIEM = {"am": "am", "morning": "am", "pm": "pm", "afternoon": "pm", "evening": "pm", "tonight": "pm"}


def parse_time(words: Sequence[str], *, cued_only: bool = False) -> tuple[int, int, str | None] | None:
    """(hour 1-12 or 0-23, minute, "am"|"pm"|None) from the caller's words. cued_only: only a time
    introduced by "at" or followed by am/pm/o'clock (so "two people" is not two o'clock)."""
    w = list(words)
    for i, tok in enumerate(w):
        if tok in ("noon", "midday"):
            return 12, 0, "pm"
        if tok == "half" and i + 2 < len(w) and w[i + 1] == "past" and _hour(w[i + 2]) is not None:
            return _hour(w[i + 2]), 30, _meridiem(w[i + 3:])  # type: ignore[return-value]
        if tok == "quarter" and i + 2 < len(w) and w[i + 1] in ("past", "after") and _hour(w[i + 2]) is not None:
            return _hour(w[i + 2]), 15, _meridiem(w[i + 3:])  # type: ignore[return-value]
        h = _hour(tok)
        if h is None:
            continue
        j = i + 1
        minute = 0
        if j < len(w):
            nxt = w[j]
            if nxt.isdigit() and len(nxt) == 2 and int(nxt) < 60:
                minute, j = int(nxt), j + 1
            elif nxt in ("oh", "o") and j + 1 < len(w) and w[j + 1] in _DIGIT_WORDS:
                minute, j = int(_DIGIT_WORDS[w[j + 1]]), j + 2
            elif nxt in _MINUTE_WORDS:
                minute, j = _MINUTE_WORDS[nxt], j + 1
                if minute in (20, 40, 50) and j < len(w) and w[j] in _DIGIT_WORDS and w[j] not in ("oh", "o"):
                    minute, j = minute + int(_DIGIT_WORDS[w[j]]), j + 1
            elif nxt in ("o'clock", "oclock"):
                j += 1
        mer = _meridiem(w[j:j + 3])
        cued = (i > 0 and w[i - 1] in ("at", "around", "about", "for", "by")) or mer is not None or \
            (j - 1 < len(w) and w[j - 1] in ("o'clock", "oclock")) or minute != 0
        if cued_only and not cued:
            continue
        if h > 12 and mer is None:
            return h, minute, None
        if h > 23:
            continue
        return h, minute, mer
    return None


def _hour(tok: str) -> int | None:
    if tok.isdigit() and len(tok) <= 2 and 1 <= int(tok) <= 23:
        return int(tok)
    return _HOUR_WORDS.get(tok)


def _meridiem(words: Sequence[str]) -> str | None:
    for w in words[:3]:
        if w in _MERIDIEM:
            return _MERIDIEM[w]
    return None


# ---------------------------------------------------------------- intents
_YES = {"yes", "yeah", "yep", "yup", "correct", "right", "sure", "absolutely", "ok", "okay", "perfect",
        "great", "please", "exactly", "definitely", "affirmative", "ya", "yea"}
_NO = {"no", "nope", "nah", "wrong", "incorrect", "not"}
_HUMAN_STRONG = {"human", "representative", "operator", "receptionist"}
_HUMAN_WHO = {"person", "someone", "somebody", "manager", "staff", "people", "agent"}
_HUMAN_VERB = {"speak", "talk", "connect", "transfer", "real", "actual", "live"}
_BYE = {"bye", "goodbye"}
_BYE_PHRASES = ("that's all", "thats all", "that's it", "thats it", "nothing else", "no thanks", "no thank you",
                "that is all", "have a good day", "have a nice day")
_PRICE = {"much", "price", "prices", "cost", "costs", "charge", "charges", "expensive", "cheap", "fee", "rates"}
_BOOK = {"book", "booking", "appointment", "appointments", "schedule", "reserve", "reservation", "slot"}
_HOURS = {"hours", "open", "opening", "close", "closing", "closed"}
_ADDRESS = {"address", "located", "location", "where", "directions", "find"}
_SERVICES = {"services", "offer", "menu", "treatments"}
_NAME_CUES = (("my", "name", "is"), ("name", "is"), ("name's",), ("this", "is"), ("it's",), ("i'm",), ("i", "am"),
              ("call", "me"), ("under",), ("it", "is"), ("for",))
_NAME_STOP = {"and", "please", "thanks", "thank", "my", "number", "phone", "at", "on", "i", "is", "the", "for"}
_NOT_NAMES = {"um", "uh", "er", "yeah", "yes", "sure", "okay", "ok", "it", "is", "it's", "its", "so", "well",
              "name", "my", "hi", "hello", "oh", "no", "sorry", "the", "a", "this", "i", "i'm", "am", "call", "me"}
_SLOT_WORDS = {"day": "day", "date": "day", "time": "time", "hour": "time", "name": "name", "number": "phone",
               "phone": "phone"}


def _has_phrase(text: str, phrases: Sequence[str]) -> bool:
    return any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases)


# ---------------------------------------------------------------- the conversation state
@dataclass(frozen=True)
class _State:
    booking: bool = False
    service: Service | None = None
    day: str | None = None
    at: time | None = None
    name: str | None = None
    phone: str | None = None
    asking: str | None = None               # "day" | "time" | "name" | "phone" | "confirm" | "change"
    checking: str | None = None             # digits read back, waiting for "did I hear that right?"
    offered: Service | None = None          # "would you like to book one?" was asked about this
    booked: bool = False
    turns: int = 0


class ScriptedReceptionist:
    """LLMProvider: the offline default brain (see the module docstring).

    token_delay_s: time between streamed tokens (0: a bare checkpoint); first_token_delay_s: before the
    first. today: the date that "today"/"tomorrow" refer to (default: date.today())."""

    name = "receptionist"
    model = "scripted-receptionist"

    def __init__(self, profile: BusinessProfile | None = None, *, token_delay_s: float = 0.0,
                 first_token_delay_s: float = 0.0, today: Callable[[], date] | None = None) -> None:
        self.profile = profile or sample_profile()
        self.token_delay_s = token_delay_s
        self.first_token_delay_s = first_token_delay_s
        self._today = today or date.today

    # ------------------------------------------------------------ LLMProvider
    @asynccontextmanager
    async def stream(self, messages: Sequence[dict], *, system: str = "",
                     max_tokens: int | None = None) -> AsyncIterator["ReceptionistStream"]:
        text = self.reply(messages)
        tokens = re.findall(r"\s*\S+", text)
        if max_tokens is not None:
            tokens = tokens[:max_tokens]
        prompt = system + "".join(_content_text(m.get("content")) for m in messages)
        usage = LLMUsage(input_tokens=math.ceil(len(prompt) / 4))
        yield ReceptionistStream(tokens, usage, self.first_token_delay_s, self.token_delay_s)

    # ------------------------------------------------------------ the brain
    def reply(self, messages: Sequence[dict]) -> str:
        """The reply to the conversation so far (deterministic; the state is replayed from the caller's turns)."""
        state = _State()
        text = self.profile.greeting
        for m in messages:
            if m.get("role") == "user":
                state, text = self._turn(state, _content_text(m.get("content")))
        return re.sub(r"\.\.(?=\s|$)", ".", text)  # "... six p.m." ending a sentence

    def intent(self, text: str) -> str:
        """The caller's intent in one message, out of INTENTS (no conversation context)."""
        t = _normalise(text)
        words = set(_words(text))
        if words & _HUMAN_STRONG or (words & _HUMAN_WHO and words & _HUMAN_VERB):
            return "human"
        if words & _BYE or _has_phrase(t, _BYE_PHRASES):
            return "goodbye"
        if words & _PRICE:
            return "price"
        if any(f.matches(words) for f in self.profile.faq):
            return "faq"
        if words & _BOOK or _has_phrase(t, ("come in", "make an appointment", "get an appointment")):
            return "booking"
        if words & _HOURS or _has_phrase(t, ("what time do you", "when are you")):
            return "hours"
        if words & _ADDRESS:
            return "address"
        if words & _SERVICES or _has_phrase(t, ("what do you do",)):
            return "services"
        return "unknown"

    def _turn(self, s: _State, text: str) -> tuple[_State, str]:
        s = replace(s, turns=s.turns + 1)
        words = _words(text)
        wset = set(words)
        today = self._today()

        # 1. a pending "did I hear that right?" about the phone number
        if s.checking is not None:
            yes, no = self._yes_no(words)
            if yes:
                return self._advance(replace(s, phone=s.checking, checking=None), "Thank you.")
            if no:
                return replace(s, checking=None, phone=None, asking="phone"), \
                    "Sorry about that. Could you say the number again, one digit at a time?"
            p = parse_phone(text)
            if p is not None and p.valid and p.number == s.checking:
                # the same number said again is a yes (it is also how the agent passes on a number
                # the caller confirmed to its own read-back: asking a second time would loop)
                return self._advance(replace(s, phone=s.checking, checking=None), "Thank you.")
            if p is not None:
                return self._take_phone(replace(s, checking=None), p)

        # 2. the slot we asked for, unless the caller asks something else instead
        intent = self.intent(text)
        if s.booking and s.asking in ("day", "time", "name", "phone") and (
                intent in ("unknown", "booking") or s.asking == "phone" and _digit_count(words) >= 7):
            got = self._fill(s, text, words, today, asked=s.asking)
            if got is not None:
                return got

        # 3. yes/no to our own question
        yes, no = self._yes_no(words)
        if s.booking and s.asking == "confirm" and (yes or no) and intent in ("unknown", "booking"):
            if yes:
                return replace(s, booking=False, booked=True, asking=None), (
                    f"Perfect, you're all set, {s.name}: {self._when(s)}. We'll see you then. "
                    "Is there anything else I can help with?")
            return replace(s, asking="change"), \
                "No problem. What would you like to change: the day, the time, the name or the number?"
        if s.booking and s.asking == "change":
            got = self._fill(s, text, words, today, asked=None)
            if got is not None:
                return got
            slot = next((_SLOT_WORDS[w] for w in words if w in _SLOT_WORDS), None)
            if slot is not None:
                s = replace(s, **{"at" if slot == "time" else slot: None})
                return self._advance(replace(s, asking=None), "Okay.")
        if s.offered is not None and not s.booking and yes and intent == "unknown":
            return self._start_booking(replace(s, offered=None), text, words, today, service=s.offered)

        # 4. what the caller asks
        if intent == "human":
            if self.profile.handoff_number:
                return replace(s, asking=None), "Of course. Let me put you through to someone now."
            return replace(s, asking=None), "Of course. I'll pass you to our voicemail so someone can call you back."
        if intent == "goodbye":
            return replace(s, booking=False, asking=None), f"Thanks for calling {self.profile.name}. Goodbye!"
        if intent == "booking" and not s.booking:
            return self._start_booking(s, text, words, today, service=self.profile.find_service(text) or s.offered)
        answer = self._answer(intent, text, words, today)
        if answer is not None:
            if s.booking:  # answer the question, then back to the booking
                s2, ask = self._advance(s, "")
                return s2, f"{answer} {ask.strip()}"
            service = self.profile.find_service(text) if intent == "price" else None
            if service is not None:
                return replace(s, offered=service), f"{answer} Would you like to book one?"
            return replace(s, offered=None), answer
        if not s.booking:
            service = self.profile.find_service(text)
            if service is not None:
                return replace(s, offered=service), \
                    f"Sure, {_a(service.name)} is {spoken_price(service.price)}. Would you like to book one?"
        if s.booking and s.asking is not None:
            s2, ask = self._advance(s, "")
            return s2, f"Sorry, I didn't catch that. {ask.strip()}"
        if wset and (yes or no) and s.booked:
            return s, "Okay. Is there anything else I can help with?"
        return replace(s, offered=None), ("Sorry, I didn't catch that. I can tell you our hours, prices and "
                                          "address, or book you an appointment.")

    # ------------------------------------------------------------ booking
    def _start_booking(self, s: _State, text: str, words: list[str], today: date,
                       service: Service | None) -> tuple[_State, str]:
        s = replace(_State(turns=s.turns), booking=True, service=service)
        got = self._fill(s, text, words, today, asked=None)
        if got is not None:
            return got
        what = f"{_a(service.name)}" if service else "an appointment"
        return replace(s, asking="day"), f"Sure, I can book {what} for you. What day would you like to come in?"

    def _fill(self, s: _State, text: str, words: list[str], today: date,
              asked: str | None) -> tuple[_State, str] | None:
        """Take every slot value the caller gave; None if nothing was usable for a booking."""
        took = False
        service = self.profile.find_service(text)
        if service is not None:
            s, took = replace(s, service=service), True
        day = parse_day(words, today)
        if day is not None:
            if self.profile.hours_on(day) is None:
                open_days = _day_list([d for d in WEEKDAYS if self.profile.hours_on(d)])
                return replace(s, day=None, at=None, asking="day"), (
                    f"Sorry, we're closed on {day.capitalize()}s. We're open {open_days}. "
                    "Which day works for you?")
            if s.at is not None and not self.profile.bookable(day, s.at):
                s = replace(s, at=None)
            s, took = replace(s, day=day), True
        phone = parse_phone(text)
        long_number = phone is not None and len(phone.digits) >= 7
        if asked != "phone" and not (asked == "name" and day is None and not _has_time_cue(words)) \
                and not (asked == "time" and long_number):
            parsed = parse_time(words, cued_only=asked != "time")
            if parsed is not None:
                # without a day yet, any opening hour will do; the day's check comes with the day
                at = self._resolve_time(parsed, s.day)
                if at is None and s.day is not None:
                    return replace(s, asking="time"), self._time_help(s.day)
                if at is not None:
                    s, took = replace(s, at=at), True
        name = self._parse_name(words, bare=asked == "name")
        if name is not None:
            s, took = replace(s, name=name), True
        if phone is not None and (asked == "phone" or long_number):
            return self._take_phone(s, phone)
        if asked == "name" and name is None and not took:
            return replace(s, asking="name"), "Sorry, could you tell me just your name?"
        if not took:
            return None
        ack = "Got it." if asked else "Okay."
        return self._advance(replace(s, asking=None), ack)

    def _take_phone(self, s: _State, p: "PhoneParse") -> tuple[_State, str]:
        if not p.valid:
            heard = spoken_phone(p.digits)
            return replace(s, asking="phone", phone=None), (
                f"Sorry, I only got {heard}. That's {spoken_number(len(p.digits))} digits. "
                "Could you say the whole number again?" if len(p.digits) < 10 else
                f"Sorry, I got {spoken_number(len(p.digits))} digits: {heard}. Could you say the number again?")
        if p.doubtful:
            return replace(s, checking=p.number, asking="phone"), \
                f"Just to check, did I hear that right: {spoken_phone(p.number)}?"
        return self._advance(replace(s, phone=p.number), "Thank you.")

    def _advance(self, s: _State, ack: str) -> tuple[_State, str]:
        """Ask for the next missing slot, or read the booking back for a yes/no."""
        lead = f"{ack} " if ack else ""
        if s.day is None:
            return replace(s, asking="day"), f"{lead}What day would you like to come in?"
        if s.at is None:
            h = self.profile.hours_on(s.day)
            assert h is not None
            return replace(s, asking="time"), (
                f"{lead}{s.day.capitalize()} it is. What time? We're open from {spoken_time(h.opens)} "
                f"to {spoken_time(h.closes)}.")
        if s.name is None:
            when = self._when(s)
            return replace(s, asking="name"), \
                f"{lead}{when}{'' if when.endswith('.') else '.'} Can I get your name, please?"
        if s.phone is None:
            return replace(s, asking="phone"), f"{lead}Thanks, {s.name}. And what's the best number to reach you?"
        what = f"{_a(s.service.name)} " if s.service else "an appointment "
        return replace(s, asking="confirm"), (
            f"{lead}So that's {what}for {s.name} on {self._when(s)}, and your number is "
            f"{spoken_phone(s.phone)}. Shall I book it?")

    def _when(self, s: _State) -> str:
        return f"{(s.day or '').capitalize()} at {spoken_time(s.at)}" if s.at else (s.day or "").capitalize()

    def _resolve_time(self, parsed: tuple[int, int, str | None], day: str | None) -> time | None:
        h, m, mer = parsed
        if h > 12 or mer is None and h == 0:
            candidates = [h]
        elif mer == "am":
            candidates = [h % 12]
        elif mer == "pm":
            candidates = [h % 12 + 12]
        else:  # "at three": whichever of 3 a.m. / 3 p.m. the business is open at (p.m. first for 1-7)
            candidates = [h % 12 + 12, h % 12] if h < 8 or h == 12 else [h % 12, h % 12 + 12]
        if m >= 60:
            return None
        options = [time(c, m) for c in candidates if c < 24]
        if day is None:
            hours = [self.profile.hours_on(d) for d in WEEKDAYS if self.profile.hours_on(d)]
            return next((t for t in options if any(x.opens <= t < x.closes for x in hours if x)), None)
        return next((t for t in options if self.profile.bookable(day, t)), None)

    def _time_help(self, day: str) -> str:
        h = self.profile.hours_on(day)
        assert h is not None
        slots = self.profile.slots(day)
        step = self.profile.booking.slot_minutes
        every = "every half hour" if step == 30 else "on the hour" if step == 60 else \
            f"every {spoken_number(step)} minutes"
        return (f"Sorry, that time isn't available on {day.capitalize()}. We have appointments from "
                f"{spoken_time(slots[0])} to {spoken_time(slots[-1])}, {every}. What time would you like?")

    def _parse_name(self, words: list[str], bare: bool) -> str | None:
        for cue in _NAME_CUES:
            if cue == ("for",) and not bare:
                continue
            n = len(cue)
            for i in range(len(words) - n + 1):
                if tuple(words[i:i + n]) == cue:
                    name = self._name_words(words[i + n:])
                    if name:
                        return name
        if bare:
            return self._name_words([w for w in words if w not in _NOT_NAMES], whole=True)
        return None

    @staticmethod
    def _name_words(words: list[str], whole: bool = False) -> str | None:
        out: list[str] = []
        for w in words:
            if w in _NAME_STOP or w.isdigit() or w in _DIGIT_WORDS or w in _NOT_NAMES:
                break
            out.append(w)
            if len(out) == 3:
                break
        if not out or (whole and len(out) != len(words)) or any(w in WEEKDAYS for w in out):
            return None
        return " ".join(x.capitalize() for x in out)

    @staticmethod
    def _yes_no(words: list[str]) -> tuple[bool, bool]:
        head = words[:4]
        no = bool(set(head) & _NO) or "don't" in head
        yes = not no and bool(set(head) & _YES)
        return yes, no

    # ------------------------------------------------------------ answers
    def _answer(self, intent: str, text: str, words: list[str], today: date) -> str | None:
        p = self.profile
        if intent == "hours":
            day = parse_day(words, today)
            if day is not None:
                h = p.hours_on(day)
                if h is None:
                    return f"Sorry, we're closed on {day.capitalize()}s."
                return f"Sure, on {day.capitalize()} we're open from {spoken_time(h.opens)} to {spoken_time(h.closes)}."
            return "Sure. " + self._hours_summary()
        if intent == "address":
            return f"Sure, we're at {p.address}."
        if intent == "price":
            service = p.find_service(text)
            if service is not None:
                return f"Sure, {_a(service.name)} is {spoken_price(service.price)}."
            return "Sure. " + self._services_summary()
        if intent == "services":
            return "Sure. " + self._services_summary()
        if intent == "faq":
            wset = set(words)
            f = next(f for f in p.faq if f.matches(wset))
            return f"Sure. {f.answer}"
        return None

    def _hours_summary(self) -> str:
        groups: list[tuple[list[str], Hours | None]] = []
        for d in WEEKDAYS:
            h = self.profile.hours_on(d)
            if groups and groups[-1][1] == h:
                groups[-1][0].append(d)
            else:
                groups.append(([d], h))
        spans = []
        for days, h in groups:
            if h is not None:
                label = days[0].capitalize() if len(days) == 1 else \
                    f"{days[0].capitalize()} and {days[1].capitalize()}" if len(days) == 2 else \
                    f"{days[0].capitalize()} to {days[-1].capitalize()}"
                spans.append(f"{label} from {spoken_time(h.opens)} to {spoken_time(h.closes)}")
        out = f"We're open {_join(spans)}."
        closed = [d.capitalize() for d in WEEKDAYS if self.profile.hours_on(d) is None]
        if closed:
            out += f" We're closed on {_join(closed)}."
        return out

    def _services_summary(self) -> str:
        if not self.profile.services:
            return "Please ask us in person about our services."
        items = [f"{_a(s.name)} for {spoken_price(s.price)}" for s in self.profile.services]
        return f"We offer {_join(items)}. Would you like to book something?"


def _day_list(days: list[str]) -> str:
    """"Monday to Saturday", or the days one by one when they are not three or more in a row."""
    runs: list[list[str]] = []
    for d in days:
        if runs and WEEKDAYS.index(d) == WEEKDAYS.index(runs[-1][-1]) + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    items: list[str] = []
    for r in runs:
        items += [f"{r[0].capitalize()} to {r[-1].capitalize()}"] if len(r) >= 3 else [d.capitalize() for d in r]
    return _join(items)


def _has_time_cue(words: list[str]) -> bool:
    return any(w in _MERIDIEM or w in ("o'clock", "oclock", "noon") for w in words)


def _digit_count(words: list[str]) -> int:
    return sum(len(w) if w.isdigit() else 1 for w in words if w.isdigit() or w in _DIGIT_WORDS)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


class ReceptionistStream:
    """LLMStream of a scripted reply, token by token, with approximate usage."""

    def __init__(self, tokens: list[str], usage: LLMUsage, first_delay: float, delay: float) -> None:
        self.usage = usage
        self.stop_reason = "end_turn"
        self._tokens = tokens
        self._first_delay = first_delay
        self._delay = delay

    def __aiter__(self) -> AsyncIterator[str]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[str]:
        for i, tok in enumerate(self._tokens):
            await trio.sleep(self._first_delay if i == 0 else self._delay)
            self.usage.output_tokens += 1
            yield tok
