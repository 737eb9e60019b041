"""System prompt: the business's facts and the phone-style instructions, byte-stable for caching."""
import os
import subprocess
import sys

from offhook.agent.prompt import build_system_prompt
from offhook.providers.profile import parse_profile, sample_profile

MINIMAL = """
name = "Corner Dental"
greeting = "Corner Dental, how can I help?"
address = "7 Elm Rd, Shelbyville"
[hours]
monday = "08:00-12:30"
tuesday = "closed"
wednesday = "12:00-17:45"
thursday = "closed"
friday = "closed"
saturday = "closed"
sunday = "closed"
[[services]]
name = "cleaning"
price = 12.5
minutes = 45
"""


def test_sample_profile_facts_are_in_the_prompt_in_spoken_form():
    p = build_system_prompt(sample_profile())
    assert "You are the phone receptionist for Maple Street Hair Studio." in p
    assert 'greeting: "Thanks for calling Maple Street Hair Studio. How can I help you today?"' in p
    assert "Address: four twelve Maple Street, Springfield, next to the post office" in p
    for line in ("- Monday to Wednesday: nine a.m. to six p.m.", "- Thursday and Friday: nine a.m. to eight p.m.",
                 "- Saturday: ten a.m. to four p.m.", "- Sunday: closed"):
        assert line in p
    for line in ("- haircut (also called cut, trim, hair cut): thirty-five dollars, thirty minutes",
                 "- kids haircut (also called children's haircut, child's haircut, kids cut): twenty dollars",
                 "- beard trim (also called beard): fifteen dollars, fifteen minutes",
                 "- color (also called colour, coloring, dye, highlights): eighty dollars, ninety minutes",
                 "- blow dry (also called blowout, blow out): thirty dollars, thirty minutes"):
        assert line in p
    for f in sample_profile().faq:
        assert f.answer in p
        assert all(f'"{q}"' in p for q in f.examples)
    assert "Appointments start every thirty minutes" in p
    assert "The last appointment starts thirty minutes before closing." in p
    assert "Thursday seven thirty p.m.; Friday seven thirty p.m.; Saturday three thirty p.m." in p
    assert not any(c.isdigit() for c in p)  # every number already in its spoken form
    assert "+15558675309" not in p          # the handoff number is for the server, not the model


INSTRUCTIONS = (
    'Start every reply with a short confirmatory word, such as "Sure —", "Okay,", or "Got it."',
    "one or two short sentences", "Ask one question at a time", "Write numbers the way you would say them",
    "phone numbers digit by digit", "no lists, headings, markdown", "If the caller asks for a person",
    "connect them with a member of the team", "read the booking back",
)


def test_instructions_for_phone_speech_are_present():
    p = build_system_prompt(sample_profile())
    assert [i for i in INSTRUCTIONS if i not in p] == []


def test_without_a_handoff_number_the_agent_offers_voicemail():
    p = build_system_prompt(parse_profile(MINIMAL))
    assert "you will take a voicemail so the team can call them back" in p
    assert "member of the team" not in p
    assert "- Monday: eight a.m. to twelve thirty p.m." in p
    assert "- Tuesday: closed" in p and "- Wednesday: twelve p.m. to five forty-five p.m." in p
    assert "- Thursday to Sunday: closed" in p
    assert "- cleaning: twelve dollars and fifty cents, forty-five minutes" in p
    assert "Address: seven Elm Road, Shelbyville" in p
    assert "Answers to common questions" not in p  # no FAQ in this profile
    assert "# Recording" not in p


def test_recording_notice_and_extra_instructions():
    plain = build_system_prompt(sample_profile())
    rec = build_system_prompt(sample_profile(), recording_notice=True)
    assert "# Recording" not in plain
    assert 'tell them: "This call may be recorded for quality and training."' in rec
    assert 'tell them: "This call may be recorded."' in build_system_prompt(parse_profile(MINIMAL),
                                                                              recording_notice=True)
    extra = build_system_prompt(sample_profile(), extra="  Today is Tuesday.  ")
    assert extra.startswith(plain.rstrip("\n"))  # the cacheable part is unchanged by extra
    assert extra.endswith("# Additional instructions\nToday is Tuesday.\n")
    assert build_system_prompt(sample_profile(), extra="   ") == plain


def test_output_is_deterministic_across_processes():
    here = build_system_prompt(sample_profile(), recording_notice=True, extra="x")
    assert build_system_prompt(sample_profile(), recording_notice=True, extra="x") == here
    code = ("import sys; from offhook.agent.prompt import build_system_prompt; "
            "from offhook.providers.profile import sample_profile; "
            "sys.stdout.write(build_system_prompt(sample_profile(), recording_notice=True, extra='x'))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out == here
