"""A business profile: what the receptionist knows about the business it answers for.

Loaded from TOML (see src/offhook/data/sample_business.toml for every field):

    profile = load_profile("my_business.toml")      # or sample_profile()
    profile.hours_on("saturday")                     # Hours(opens=10:00, closes=16:00) or None
    profile.bookable("friday", time(15, 0))          # True
    profile.expected_phrases()                       # for the offline recogniser's domain LM

Loading is strict: unknown keys, missing fields, bad times, duplicate services are a ProfileError that
names the file and the field, because a typo silently ignored ("saturdy") would make the agent tell
callers the wrong thing.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

__all__ = ["WEEKDAYS", "Hours", "Service", "FaqEntry", "BookingRules", "BusinessProfile", "ProfileError",
           "load_profile", "parse_profile", "profile_from_dict", "sample_profile", "SAMPLE_PROFILE"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SAMPLE_PROFILE = "sample_business.toml"

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class ProfileError(ValueError):
    """The profile file is missing, not TOML, or does not describe a business we can answer for."""


@dataclass(frozen=True)
class Hours:
    opens: time
    closes: time


@dataclass(frozen=True)
class Service:
    name: str
    price: float
    minutes: int = 30
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class FaqEntry:
    patterns: tuple[str, ...]   # each: words that must all be present, in any order
    answer: str
    examples: tuple[str, ...] = ()

    def matches(self, words: set[str]) -> bool:
        return any(set(words_of(p)) <= words for p in self.patterns)


@dataclass(frozen=True)
class BookingRules:
    slot_minutes: int = 30
    last_start_before_close: int = 0


@dataclass(frozen=True)
class BusinessProfile:
    name: str
    greeting: str
    address: str
    hours: Mapping[str, Hours | None]
    services: tuple[Service, ...] = ()
    faq: tuple[FaqEntry, ...] = ()
    booking: BookingRules = field(default_factory=BookingRules)
    handoff_number: str | None = None
    recording_announcement: str = ""

    def hours_on(self, day: str) -> Hours | None:
        return self.hours[day.lower()]

    def slots(self, day: str) -> list[time]:
        """Appointment start times on a weekday, in order."""
        h = self.hours_on(day)
        if h is None:
            return []
        step = self.booking.slot_minutes
        first = h.opens.hour * 60 + h.opens.minute
        last = h.closes.hour * 60 + h.closes.minute - max(self.booking.last_start_before_close, step)
        return [time(m // 60, m % 60) for m in range(first, last + 1, step)]

    def bookable(self, day: str, at: time) -> bool:
        return at in self.slots(day)

    def find_service(self, text: str) -> Service | None:
        """The service named in `text` (the longest matching name wins: "kids haircut" over "haircut")."""
        words = words_of(text)
        best: tuple[int, Service] | None = None
        for s in self.services:
            for n in s.names:
                nw = words_of(n)
                if _contains(words, nw) and (best is None or len(nw) > best[0]):
                    best = (len(nw), s)
        return best[1] if best else None

    def expected_phrases(self) -> list[str]:
        """Sentences callers of this business are expected to say, for a speech recogniser's domain
        language model (yes/no, digits, days and times are the recogniser's own base phrases)."""
        out = [
            "what are your hours", "what are your opening hours", "when are you open",
            "what time do you open", "what time do you close", "are you open today",
            "are you open tomorrow", "where are you", "where are you located", "what is your address",
            "what services do you offer", "how much does it cost", "what are your prices",
            "i'd like to book an appointment", "i want to make an appointment", "can i book an appointment",
            "i'd like to come in", "can i speak to a person", "can i talk to someone",
            "i want to speak to a human", "my name is", "my number is", "my phone number is",
            "that's all thanks", "that's it", "goodbye", "yes that's right", "no that's wrong",
            self.name.lower(),
        ]
        for day in WEEKDAYS:
            out += [f"are you open on {day}", f"on {day}", f"{day} please", f"what are your hours on {day}"]
        for s in self.services:
            for n in s.names:
                out += [f"how much is a {n}", f"how much does a {n} cost", f"i'd like to book a {n}",
                        f"i want a {n}", n]
        for f in self.faq:
            out += list(f.examples) + list(f.patterns)
        seen: dict[str, None] = {}
        for p in out:
            seen.setdefault(" ".join(words_of(p)), None)
        return [p for p in seen if p]


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _contains(words: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return n > 0 and any(words[i:i + n] == sub for i in range(len(words) - n + 1))


# ---------------------------------------------------------------- loading
def load_profile(path: str | Path) -> BusinessProfile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"business profile not found: {p}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ProfileError(f"{p}: cannot read business profile: {e.strerror}") from None
    return parse_profile(text, source=str(p))


def parse_profile(text: str, source: str = "<profile>") -> BusinessProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {e}") from None
    return profile_from_dict(data, source)


def sample_profile() -> BusinessProfile:
    ref = resources.files("offhook") / "data" / SAMPLE_PROFILE
    return parse_profile(ref.read_text(encoding="utf-8"), source=f"offhook/data/{SAMPLE_PROFILE}")


_TOP = {"name", "greeting", "address", "hours", "services", "faq", "booking", "handoff_number",
        "recording_announcement"}


def profile_from_dict(data: Mapping[str, Any], source: str = "<profile>") -> BusinessProfile:
    c = _Checker(source)
    c.no_unknown(data, _TOP, "")
    hours_t = c.table(data, "hours", required=True)
    c.no_unknown(hours_t, set(WEEKDAYS), "hours.")
    hours: dict[str, Hours | None] = {}
    for day in WEEKDAYS:
        hours[day] = c.hours(hours_t, day)
    if all(h is None for h in hours.values()):
        c.fail("hours", "the business is closed every day")

    services: list[Service] = []
    seen: dict[str, str] = {}
    for i, s in enumerate(c.array_of_tables(data, "services")):
        where = f"services[{i}]"
        c.no_unknown(s, {"name", "price", "minutes", "aliases"}, where + ".")
        svc = Service(name=c.text(s, "name", where, required=True),
                      price=c.number(s, "price", where, required=True),
                      minutes=int(c.number(s, "minutes", where, default=30, integer=True, positive=True)),
                      aliases=c.strings(s, "aliases", where))
        for n in svc.names:
            key = " ".join(words_of(n))
            if not key:
                c.fail(where, f"service name {n!r} has no words")
            if key in seen:
                c.fail(where, f"{n!r} is already a name of service {seen[key]!r}")
            seen[key] = svc.name
        services.append(svc)

    faq: list[FaqEntry] = []
    for i, f in enumerate(c.array_of_tables(data, "faq")):
        where = f"faq[{i}]"
        c.no_unknown(f, {"patterns", "answer", "examples"}, where + ".")
        patterns = c.strings(f, "patterns", where, required=True)
        for p in patterns:
            if not words_of(p):
                c.fail(f"{where}.patterns", f"pattern {p!r} has no words")
        faq.append(FaqEntry(patterns=patterns, answer=c.text(f, "answer", where, required=True),
                            examples=c.strings(f, "examples", where)))

    booking_t = c.table(data, "booking")
    c.no_unknown(booking_t, {"slot_minutes", "last_start_before_close"}, "booking.")
    booking = BookingRules(
        slot_minutes=int(c.number(booking_t, "slot_minutes", "booking", default=30, integer=True, positive=True)),
        last_start_before_close=int(c.number(booking_t, "last_start_before_close", "booking", default=0,
                                             integer=True)))

    handoff = c.text(data, "handoff_number", "", default=None)
    if handoff is not None:
        handoff = re.sub(r"[\s().-]", "", handoff)
        if not _E164.match(handoff):
            c.fail("handoff_number", f"expected an E.164 number like +15558675309, got {data['handoff_number']!r}")

    return BusinessProfile(
        name=c.text(data, "name", "", required=True), greeting=c.text(data, "greeting", "", required=True),
        address=c.text(data, "address", "", required=True), hours=MappingProxyType(hours),
        services=tuple(services), faq=tuple(faq), booking=booking, handoff_number=handoff,
        recording_announcement=c.text(data, "recording_announcement", "", default="") or "")


class _Checker:
    """Field accessors that raise ProfileError naming the file and the dotted field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, msg: str) -> None:
        raise ProfileError(f"{self.source}: {where}: {msg}" if where else f"{self.source}: {msg}")

    @staticmethod
    def _path(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def no_unknown(self, t: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        unknown = sorted(set(t) - allowed)
        if unknown:
            self.fail(prefix + unknown[0], f"unknown field (expected one of: {', '.join(sorted(allowed))})")

    def table(self, t: Mapping[str, Any], key: str, *, required: bool = False) -> Mapping[str, Any]:
        if key not in t:
            if required:
                self.fail(key, "missing")
            return {}
        v = t[key]
        if not isinstance(v, dict):
            self.fail(key, f"expected a table, got {type(v).__name__}")
        return v

    def array_of_tables(self, t: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        v = t.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            self.fail(key, f"expected [[{key}]] tables")
        return v

    def text(self, t: Mapping[str, Any], key: str, where: str, *, required: bool = False,
             default: Any = None) -> Any:
        if key not in t:
            if required:
                self.fail(self._path(where, key), "missing")
            return default
        v = t[key]
        if not isinstance(v, str) or (required and not v.strip()):
            self.fail(self._path(where, key), f"expected non-empty text, got {v!r}")
        return v.strip()

    def strings(self, t: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> tuple[str, ...]:
        if key not in t:
            if required:
                self.fail(self._path(where, key), "missing")
            return ()
        v = t[key]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v) or (required and not v):
            self.fail(self._path(where, key), f"expected a list of non-empty strings, got {v!r}")
        return tuple(x.strip() for x in v)

    def number(self, t: Mapping[str, Any], key: str, where: str, *, required: bool = False, default: float = 0,
               integer: bool = False, positive: bool = False) -> float:
        if key not in t:
            if required:
                self.fail(self._path(where, key), "missing")
            return default
        v = t[key]
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or v < 0 or (positive and v == 0) or v != v or v == float("inf"):
            kind = "a positive whole number" if positive and integer else \
                "a whole number >= 0" if integer else "a number >= 0"
            self.fail(self._path(where, key), f"expected {kind}, got {v!r}")
        return v

    def hours(self, t: Mapping[str, Any], day: str) -> Hours | None:
        where = f"hours.{day}"
        if day not in t:
            self.fail(where, 'missing (give "HH:MM-HH:MM" or "closed" for every weekday)')
        v = t[day]
        if isinstance(v, str) and v.strip().lower() == "closed":
            return None
        m = _HOURS.match(v) if isinstance(v, str) else None
        if not m:
            self.fail(where, f'expected "HH:MM-HH:MM" or "closed", got {v!r}')
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60):
            self.fail(where, f"not a time of day: {v!r}")
        opens, closes = time(h1, m1), time(h2, m2)
        if closes <= opens:
            self.fail(where, f"closes ({closes:%H:%M}) before it opens ({opens:%H:%M})")
        return Hours(opens, closes)
