"""Scenario files for the simulated caller, and its model of Twilio's playout (marks, clear)."""
import pytest

from offhook.sim.playout import Playout
from offhook.sim.scenario import ScenarioError, Step, from_dict, load

YAML = """
call: {from: "+15551112222", to: "+15553334444", params: {tenant: acme}}
steps:
  - wait: 0.5
  - wait_for_agent: {quiet: 0.4, timeout: 9}
  - say: "what are your opening hours"
  - say: {text: "my number", wav: number.wav}
  - barge_in: {after: 0.8, say: "sorry one more thing"}
  - dtmf: "12#"
  - hangup: true
"""

TOML = """
[call]
from = "+15551112222"
[[steps]]
say = "hello"
[[steps]]
wait = 1.5
[[steps]]
hangup = true
"""


def test_yaml_scenario(tmp_path):
    f = tmp_path / "call.yaml"
    f.write_text(YAML)
    sc = load(f)
    assert (sc.caller, sc.callee, sc.params) == ("+15551112222", "+15553334444", {"tenant": "acme"})
    assert sc.steps == [
        Step("wait", seconds=0.5), Step("wait_for_agent", quiet=0.4, timeout=9.0),
        Step("say", text="what are your opening hours"), Step("say", text="my number", wav="number.wav"),
        Step("barge_in", after=0.8, text="sorry one more thing", timeout=20.0),
        Step("dtmf", digit="12#"), Step("hangup")]


def test_toml_scenario(tmp_path):
    f = tmp_path / "call.toml"
    f.write_text(TOML)
    sc = load(f)
    assert [s.kind for s in sc.steps] == ["say", "wait", "hangup"] and sc.caller == "+15551112222"


@pytest.mark.parametrize("data,match", [
    ({}, "steps"),
    ({"steps": [{"sing": "la"}]}, "unknown step"),
    ({"steps": [{"say": "a", "wait": 1}]}, "one-key"),
    ({"steps": [{"dtmf": "12x"}]}, "dtmf"),
    ({"steps": [{"wait": "soon"}]}, "soon"),
    ({"steps": [{"barge_in": {"after": 1}}]}, "barge_in"),
    ({"steps": [{"say": {"voice": "x"}}]}, "say needs"),
])
def test_bad_scenarios_are_clear_errors(data, match):
    with pytest.raises(ScenarioError, match=match):
        from_dict(data)


def test_unparseable_file_names_the_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("steps: [unclosed")
    with pytest.raises(ScenarioError, match="broken.yaml"):
        load(f)


def test_playout_plays_one_frame_per_tick_and_echoes_marks_after_their_audio():
    p = Playout()
    a, b = b"a" * 160, b"b" * 160
    p.on_media(a)
    assert p.on_mark("m1") == []       # audio queued before it: not yet
    p.on_media(b)
    assert p.on_mark("m2") == []
    assert p.tick(0) == (a, [])
    assert p.tick(1) == (b, ["m1"])   # m1's audio finished when the next slot starts
    assert p.tick(2) == (None, ["m2"])
    assert p.on_mark("m3") == ["m3"]   # nothing queued: echoed at once
    assert p.played == [(0, a), (1, b)]


def test_playout_clear_drops_audio_and_echoes_pending_marks():
    p = Playout()
    for i in range(5):
        p.on_media(bytes([i]) * 160)
        p.on_mark(f"m{i}")
    p.tick(0)
    # m0 sits behind the frame that played; it and every later mark are echoed by the clear
    assert p.on_clear(1) == ["m0", "m1", "m2", "m3", "m4"]
    assert p.pending == 0 and p.frames_cleared == 4
    assert p.tick(2) == (None, [])
