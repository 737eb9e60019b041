"""Scripted calls for the simulated caller (YAML or TOML).

    call: {from: "+15551230000", to: "+15559870000"}
    steps:
      - wait: 1.0                      # seconds of line silence
      - wait_for_agent: {quiet: 0.6, timeout: 15}   # until the agent has spoken and gone quiet
      - say: "what are your opening hours"
      - say: {text: "my number is", wav: "number.wav"}
      - barge_in: {after: 0.8, say: "sorry, one more thing"}   # talk over the agent 0.8 s into its reply
      - dtmf: "1"
      - hangup: true
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ScenarioError(ValueError):
    pass


@dataclass
class Step:
    kind: str                  # wait | wait_for_agent | say | barge_in | dtmf | hangup
    seconds: float = 0.0
    text: str = ""
    wav: str | None = None
    quiet: float = 0.6
    timeout: float = 20.0
    after: float = 0.0
    digit: str = ""


@dataclass
class Scenario:
    steps: list[Step]
    caller: str = "+15551230000"
    callee: str = "+15559870000"
    params: dict[str, str] = field(default_factory=dict)


def _step(raw) -> Step:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ScenarioError(f"each step is a one-key mapping, got {raw!r}")
    (kind, v), = raw.items()
    if kind == "wait":
        return Step("wait", seconds=float(v))
    if kind == "wait_for_agent":
        v = v if isinstance(v, dict) else {}
        return Step("wait_for_agent", quiet=float(v.get("quiet", 0.6)), timeout=float(v.get("timeout", 20)))
    if kind == "say":
        if isinstance(v, str):
            return Step("say", text=v)
        if isinstance(v, dict) and ("text" in v or "wav" in v):
            return Step("say", text=str(v.get("text", "")), wav=v.get("wav"))
        raise ScenarioError(f"say needs text or {{text, wav}}, got {v!r}")
    if kind == "barge_in":
        if not isinstance(v, dict) or "say" not in v:
            raise ScenarioError("barge_in needs {after: seconds, say: text}")
        return Step("barge_in", after=float(v.get("after", 0.5)), text=str(v["say"]), wav=v.get("wav"),
                    timeout=float(v.get("timeout", 20)))
    if kind == "dtmf":
        d = str(v)
        if not d or any(c not in "0123456789*#" for c in d):
            raise ScenarioError(f"dtmf digits must be 0-9 * #, got {d!r}")
        return Step("dtmf", digit=d)
    if kind == "hangup":
        return Step("hangup")
    raise ScenarioError(f"unknown step {kind!r}")


def from_dict(data: dict) -> Scenario:
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ScenarioError("a scenario needs a 'steps' list")
    call = data.get("call", {}) or {}
    try:
        steps = [_step(s) for s in data["steps"]]
    except (TypeError, ValueError) as e:
        raise ScenarioError(str(e)) from None
    return Scenario(steps, str(call.get("from", "+15551230000")), str(call.get("to", "+15559870000")),
                    {str(k): str(v) for k, v in (call.get("params") or {}).items()})


def load(path: str | Path) -> Scenario:
    p = Path(path)
    text = p.read_text()
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ScenarioError(f"{p}: {e}") from None
    return from_dict(data)
