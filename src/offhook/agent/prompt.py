"""The LLM's system prompt, built from the business profile.

    system = build_system_prompt(load_profile("my_business.toml"), extra="Mention our summer sale.")

The prompt says who the agent is and how to talk on the phone (open with a short confirmatory word
so the first audio comes fast, one or two sentences, numbers as spoken, one question at a time,
when to hand over to a person or voicemail), then lists the business's facts: address, hours,
services and prices, FAQ answers, booking rules. Times and prices are written the way they are
said, so the model copies the spoken form.

The output depends only on the arguments (no dates, no set or dict ordering), so it is byte-stable
across calls and processes and the provider's prompt cache keeps hitting. Per-call context belongs
in `extra`, which goes last so everything before it stays cacheable.
"""
from __future__ import annotations

from datetime import time

from offhook.agent.spoken import number_words, spoken_price, spoken_time, to_spoken
from offhook.providers.profile import WEEKDAYS, BusinessProfile, Hours

__all__ = ["build_system_prompt"]

_STYLE = """\
# How to talk
- Start every reply with a short confirmatory word, such as "Sure —", "Okay,", or "Got it.", so the \
caller hears you straight away.
- Keep each reply to one or two short sentences. This is a phone call, not a chat.
- Ask one question at a time, then wait for the answer.
- Write numbers the way you would say them: "nine a.m.", "thirty-five dollars", "the twenty-first", \
and phone numbers digit by digit in groups, like "eight-five-oh, six-eight-seven, two-zero-eight-five".
- Plain spoken sentences only: no lists, headings, markdown, emoji, or symbols.
- Only state facts listed below. If you do not know something, say so plainly and offer {fallback}.
- If you did not catch what the caller said, ask them to repeat it.
- If the caller asks for a person, is upset, has an emergency, or needs something you cannot do, \
say that {handoff}."""


def _clock(t: time) -> str:
    return spoken_time(t.hour % 12 or 12, t.minute, "am" if t.hour < 12 else "pm") or t.strftime("%H:%M")


def _price(p: float) -> str:
    dollars, cents = divmod(round(p * 100), 100)
    return spoken_price(dollars, cents)


def _minutes(n: int) -> str:
    return f"{number_words(n)} minute{'' if n == 1 else 's'}"


def _span(hours: Hours | None) -> str:
    return "closed" if hours is None else f"{_clock(hours.opens)} to {_clock(hours.closes)}"


def _hours_lines(profile: BusinessProfile) -> list[str]:
    """Consecutive days with the same hours share a line: "Monday to Wednesday: ..."."""
    lines: list[str] = []
    i = 0
    while i < len(WEEKDAYS):
        j = i
        while j + 1 < len(WEEKDAYS) and profile.hours_on(WEEKDAYS[j + 1]) == profile.hours_on(WEEKDAYS[i]):
            j += 1
        first, last = WEEKDAYS[i].capitalize(), WEEKDAYS[j].capitalize()
        days = first if i == j else f"{first} and {last}" if j == i + 1 else f"{first} to {last}"
        lines.append(f"- {days}: {_span(profile.hours_on(WEEKDAYS[i]))}")
        i = j + 1
    return lines


def _booking_lines(profile: BusinessProfile) -> list[str]:
    b = profile.booking
    lines = [f"- Appointments start every {_minutes(b.slot_minutes)} during opening hours."]
    if b.last_start_before_close:
        lines.append(f"- The last appointment starts {_minutes(b.last_start_before_close)} before closing.")
    last = [f"{day.capitalize()} {_clock(slots[-1])}" for day in WEEKDAYS if (slots := profile.slots(day))]
    if last:
        lines.append("- Latest start times: " + "; ".join(last))
    lines += [
        "- To book, find out the service, the day and time, the caller's name, and a phone number, "
        "one at a time.",
        "- Only offer times that are open and on the booking grid; if a time is not available, offer the "
        "nearest one that is.",
        "- Before you finish, read the booking back, with the phone number digit by digit, and ask the "
        "caller to confirm.",
    ]
    return lines


def build_system_prompt(profile: BusinessProfile, *, extra: str = "", recording_notice: bool = False) -> str:
    """The system prompt for calls answered for this business (deterministic; see the module
    docstring). recording_notice: the call is recorded, and the agent may say so when asked."""
    if profile.handoff_number:
        handoff = "you will connect them with a member of the team"
        fallback = "to connect them with a member of the team"
    else:
        handoff = "you will take a voicemail so the team can call them back"
        fallback = "to take a message"
    parts = [
        "# Who you are",
        f"You are the phone receptionist for {profile.name}. You are on a live phone call: everything "
        "you write is spoken aloud to the caller by a text-to-speech voice, as soon as you write it.",
        f'The call opened with your greeting: "{to_spoken(profile.greeting)}"',
        "",
        _STYLE.format(handoff=handoff, fallback=fallback),
        "",
        f"# {profile.name}",
        f"Address: {to_spoken(profile.address)}",
        "",
        "Opening hours:",
        *_hours_lines(profile),
    ]
    if profile.services:
        parts += ["", "Services and prices:"]
        for s in profile.services:
            also = f" (also called {', '.join(s.aliases)})" if s.aliases else ""
            parts.append(f"- {s.name}{also}: {_price(s.price)}, {_minutes(s.minutes)}")
    if profile.faq:
        parts += ["", "Answers to common questions:"]
        for f in profile.faq:
            asked = " or ".join(f'"{q}"' for q in (f.examples or f.patterns))
            parts.append(f"- Asked {asked}: {to_spoken(f.answer)}")
    parts += ["", "Booking rules:", *_booking_lines(profile)]
    if recording_notice:
        notice = profile.recording_announcement or "This call may be recorded."
        parts += ["", "# Recording",
                  f'This call is recorded. If the caller asks about recording, tell them: "{notice}"']
    if extra.strip():
        parts += ["", "# Additional instructions", extra.strip()]
    return "\n".join(parts) + "\n"
