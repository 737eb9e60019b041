"""Business profile loading: the sample, what it derives (slots, services, phrases), and bad files."""
from datetime import time
from pathlib import Path

import pytest

from offhook.providers.profile import (WEEKDAYS, Hours, ProfileError, load_profile, parse_profile,
                                       profile_from_dict, sample_profile)

GOOD = """
name = "Corner Dental"
greeting = "Corner Dental, how can I help?"
address = "1 Main Street"
handoff_number = "+1 (555) 010-0199"
[hours]
monday = "08:00-17:00"
tuesday = "08:00-17:00"
wednesday = "closed"
thursday = "08:00-12:30"
friday = "08:00-17:00"
saturday = "Closed"
sunday = "closed"
[[services]]
name = "cleaning"
price = 95
[[faq]]
patterns = ["insurance"]
answer = "We take most insurance plans."
[booking]
slot_minutes = 60
"""


def bad(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile(text, source="biz.toml")
    msg = str(info.value)
    assert msg.startswith("biz.toml: ")
    return msg


def test_sample_profile_loads_with_every_field():
    p = sample_profile()
    assert p.name == "Maple Street Hair Studio"
    assert p.hours_on("Saturday") == Hours(time(10), time(16))
    assert p.hours_on("sunday") is None
    assert p.handoff_number == "+15558675309"
    assert p.recording_announcement.startswith("This call may be recorded")
    assert [s.name for s in p.services] == ["haircut", "kids haircut", "beard trim", "color", "blow dry"]
    assert p.find_service("how much is a kids haircut?").name == "kids haircut"  # longest name wins
    assert p.find_service("I need a trim").name == "haircut"  # alias
    assert p.find_service("do you do nails") is None
    assert len(p.faq) == 4


def test_booking_slots_follow_hours_and_rules():
    p = sample_profile()
    sat = p.slots("saturday")
    assert sat[0] == time(10) and sat[-1] == time(15, 30) and len(sat) == 12  # half-hourly, last 30 min before close
    assert p.bookable("saturday", time(15, 30)) and not p.bookable("saturday", time(16))
    assert not p.bookable("saturday", time(10, 15)) and not p.bookable("sunday", time(12))
    q = parse_profile(GOOD)
    assert q.slots("thursday") == [time(8), time(9), time(10), time(11)]  # hourly, ends by 12:30
    assert q.handoff_number == "+15550100199" and q.recording_announcement == ""


def test_expected_phrases_cover_what_callers_say():
    phrases = sample_profile().expected_phrases()
    assert len(phrases) == len(set(phrases))
    assert all(p == p.lower() and "  " not in p and p.strip() == p for p in phrases)
    for must in ("what are your hours", "how much is a kids haircut", "i'd like to book a beard trim",
                 "is there parking", "are you open on saturday", "maple street hair studio", "my number is",
                 "can i speak to a person"):
        assert must in phrases
    assert not any("," in p or "?" in p for p in phrases)


def test_load_from_a_file(tmp_path: Path):
    f = tmp_path / "biz.toml"
    f.write_text(GOOD, encoding="utf-8")
    assert load_profile(f).name == "Corner Dental"
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.toml")
    (tmp_path / "latin.toml").write_bytes(GOOD.replace("Corner", "C\xf6rner").encode("latin-1"))
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(tmp_path / "latin.toml")


@pytest.mark.parametrize("edit,expect", [
    (lambda t: t.replace('name = "Corner Dental"\n', ""), "name: missing"),
    (lambda t: t.replace('monday = "08:00-17:00"', 'monday = "8am-5pm"'), 'hours.monday: expected "HH:MM-HH:MM"'),
    (lambda t: t.replace('monday = "08:00-17:00"', 'monday = "17:00-08:00"'), "hours.monday: closes (08:00) before"),
    (lambda t: t.replace('monday = "08:00-17:00"', 'monday = "08:00-25:00"'), "hours.monday: not a time of day"),
    (lambda t: t.replace('monday = "08:00-17:00"\n', ""), "hours.monday: missing"),
    (lambda t: t.replace("sunday =", "sundy ="), "hours.sundy: unknown field"),
    (lambda t: t.replace("address =", "adress ="), "adress: unknown field"),
    (lambda t: t.replace("price = 95", 'price = "95"'), "services[0].price: expected a number"),
    (lambda t: t.replace("price = 95", "price = -5"), "services[0].price"),
    (lambda t: t.replace('name = "cleaning"', 'name = ""'), "services[0].name: expected non-empty text"),
    (lambda t: t + '[[services]]\nname = "Cleaning"\nprice = 1\n', "services[1]: 'Cleaning' is already"),
    (lambda t: t.replace('patterns = ["insurance"]', "patterns = []"), "faq[0].patterns"),
    (lambda t: t.replace("slot_minutes = 60", "slot_minutes = 0"), "booking.slot_minutes: expected a positive"),
    (lambda t: t.replace("+1 (555) 010-0199", "call reception"), "handoff_number: expected an E.164"),
    (lambda t: t.replace('"08:00-17:00"', '"closed"').replace('"08:00-12:30"', '"closed"'), "closed every day"),
])
def test_bad_profiles_are_clear_errors(edit, expect):
    assert expect in bad(edit(GOOD))


def test_wrong_shapes():
    base = {"name": "n", "greeting": "g", "address": "a"}
    with pytest.raises(ProfileError, match="hours: expected a table"):
        profile_from_dict({**base, "hours": 5}, "biz.toml")
    with pytest.raises(ProfileError, match=r"expected \[\[services\]\] tables"):
        profile_from_dict({**base, "hours": {d: "09:00-17:00" for d in WEEKDAYS}, "services": ["haircut"]})


def test_garbage_is_not_toml():
    assert "not valid TOML" in bad("this is [not toml")
    assert "not valid TOML" in bad("\x00\x01\x02")
    assert "hours: missing" in bad("")


def test_every_weekday_is_known():
    assert WEEKDAYS == ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
