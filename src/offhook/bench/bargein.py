"""`offhook bench bargein`: how fast the agent stops when the caller talks over it, and how often it
stops when it should not.

The real server and agent on loopback with the emulated providers (Deepgram STT emulator reading the
callers' ScriptBoard, ElevenLabs TTS emulator, the scripted receptionist), simulated callers, all in
one trio run under MockClock(autojump_threshold=0.005): the times are trio time, so exact and
independent of the machine's load.

- True barge-ins: each caller asks something with a long answer, then talks over the reply at a
  random point 0.3-3 s into it (a real question, so it becomes a turn). Measured at the caller:
  onset -> `clear` received, onset -> the agent's audio stopped (end of the last agent frame played).
- False-barge-in set: while the agent talks the caller makes a noise that is not a turn: a cough
  (a 80-250 ms noise burst) or a backchannel ("mm-hm", "yeah", "uh-huh", "okay", "right"). A false
  barge-in is one that made the agent stop (a `clear` within 1.5 s of the sound).
"""
from __future__ import annotations

import argparse
import random
import tempfile
import wave
from pathlib import Path

import numpy as np
import trio
import trio.testing

from offhook.bench.report import fmt, table, write_json
from offhook.sim.load import percentiles

LONG_QUESTIONS = ("what services do you have", "what are your opening hours")
FOLLOW_UPS = ("sorry, how much is a haircut", "wait, are you open on saturday", "actually where are you located",
              "hold on, do you take cards")
BACKCHANNELS = ("mm-hm", "yeah", "uh-huh", "okay", "right")
FALSE_WINDOW_S = 1.5


def cough_wavs(folder: Path, n: int, rng: random.Random) -> list[str]:
    """Short loud noise bursts (80-250 ms, shaped like a cough), 8 kHz 16-bit mono WAVs."""
    paths = []
    for i in range(n):
        ms = rng.randint(80, 250)
        samples = 8 * ms
        x = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(samples)
        env = np.exp(-np.linspace(0, 4, samples)) * np.minimum(1, np.arange(samples) / 40)
        pcm = np.clip(x * env * 0.3 * 32767, -32768, 32767).astype("<i2").tobytes()
        p = folder / f"cough{i}.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(pcm)
        paths.append(str(p))
    return paths


def true_steps(rng: random.Random, n: int) -> list[dict]:
    steps: list[dict] = [{"wait_for_agent": {"quiet": 0.6, "timeout": 20}}]
    for i in range(n):
        steps.append({"say": LONG_QUESTIONS[i % len(LONG_QUESTIONS)]})
        steps.append({"barge_in": {"after": round(rng.uniform(0.3, 3.0), 3), "say": rng.choice(FOLLOW_UPS)}})
        steps.append({"wait_for_agent": {"quiet": 0.6, "timeout": 20}})
    return steps + [{"hangup": True}]


def false_steps(rng: random.Random, n: int, coughs: list[str]) -> list[dict]:
    steps: list[dict] = [{"wait_for_agent": {"quiet": 0.6, "timeout": 20}}]
    for i in range(n):
        steps.append({"say": LONG_QUESTIONS[i % len(LONG_QUESTIONS)]})
        after = round(rng.uniform(0.5, 2.5), 3)
        if i % 2:
            steps.append({"barge_in": {"after": after, "say": "", "wav": rng.choice(coughs)}})
        else:
            steps.append({"barge_in": {"after": after, "say": rng.choice(BACKCHANNELS)}})
        steps.append({"wait_for_agent": {"quiet": 0.6, "timeout": 30}})
    return steps + [{"hangup": True}]


async def _run(calls: int, per_call: int, false_per_call: int, seed: int, out: dict) -> None:
    from offhook.agent.factory import agent_handler_factory
    from offhook.bench.emulated import emulated_providers
    from offhook.server.app import OffhookApp
    from offhook.server.config import Config
    from offhook.server.run import serve_app
    from offhook.sim.caller import SimCaller
    from offhook.sim.scenario import from_dict

    rng = random.Random(seed)
    config = Config.load(env={}, validate_signatures=False, port=0)
    with tempfile.TemporaryDirectory(prefix="offhook-bargein-") as tmp:
        coughs = cough_wavs(Path(tmp), 8, rng)
        async with emulated_providers() as providers, agent_handler_factory(config, providers) as factory:
            app = OffhookApp(config, factory)
            async with trio.open_nursery() as nursery:
                base = await nursery.start(serve_app, app, "127.0.0.1", 0)
                media = base.replace("http://", "ws://") + "/twilio/media"
                results: dict[str, list] = {"true": [], "false": []}

                # scripts drawn up front: trio runs tasks in no fixed order, the draws must not depend on it
                plans = [("true", i, true_steps(rng, per_call)) for i in range(calls)]
                if false_per_call:
                    plans += [("false", i, false_steps(rng, false_per_call, coughs)) for i in range(calls)]

                async def one(kind: str, i: int, steps: list[dict]) -> None:
                    caller = SimCaller(media, from_dict({"steps": steps}), seed=seed * 1000 + i + (500 if kind == "false" else 0))
                    results[kind].append(await caller.run())

                async with trio.open_nursery() as calls_n:
                    for kind, i, steps in plans:
                        calls_n.start_soon(one, kind, i, steps)
                with trio.move_on_after(10):
                    while app.active:
                        await trio.sleep(0.05)
                out["server_barge_ins"] = [b for c in app.finished if getattr(c, "record", None)
                                           for b in c.record.barge_ins]
                nursery.cancel_scope.cancel()
    out.update(results)


def measure(calls: int = 10, per_call: int = 10, false_per_call: int = 6, seed: int = 1) -> dict:
    raw: dict = {}
    trio.run(_run, calls, per_call, false_per_call, seed, raw,
             clock=trio.testing.MockClock(autojump_threshold=0.005))
    clear, stopped, missed = [], [], 0
    for r in raw["true"]:
        for b in r.barge_ins:
            if b.clear_received is None:
                missed += 1
                continue
            clear.append(b.clear_latency)
            stopped.append(b.audio_stopped - b.onset)
    false_clears, events, kinds = 0, 0, {"cough": [0, 0], "backchannel": [0, 0]}
    for r in raw["false"]:
        clears = [t for t, k, _ in r.timeline if k == "clear"]
        for b in r.barge_ins:
            kind = "backchannel" if b.text else "cough"
            events += 1
            kinds[kind][1] += 1
            if any(b.onset <= t <= b.onset + FALSE_WINDOW_S for t in clears):
                false_clears += 1
                kinds[kind][0] += 1
    server_records = raw.get("server_barge_ins", [])
    server = [b.reaction for b in server_records if b.reaction is not None]
    outcomes = {k: sum(1 for b in server_records if b.outcome == k) for k in ("true", "false", "pending")}
    ms = lambda d: {k: (v * 1000 if v is not None else None) for k, v in d.items()}
    return {
        "barge_ins": len(clear) + missed, "missed": missed,
        "onset_to_clear_ms": ms(percentiles(clear)), "onset_to_audio_stopped_ms": ms(percentiles(stopped)),
        "server_onset_to_clear_sent_ms": ms(percentiles(server)),
        "server_outcomes": outcomes,  # the agent's own verdict on each barge-in it acted on
        "false_set": events, "false_barge_ins": false_clears,
        "false_rate": false_clears / events if events else None,
        "false_by_kind": {k: {"stopped_agent": v[0], "events": v[1]} for k, v in kinds.items()},
        "calls": calls, "per_call": per_call, "false_per_call": false_per_call, "seed": seed,
        "clock": "trio MockClock(autojump_threshold=0.005), real loopback sockets",
    }


def render(r: dict) -> str:
    rows = [["onset -> clear received", fmt(r["onset_to_clear_ms"]["p50"], ".0f", " ms"),
             fmt(r["onset_to_clear_ms"]["p95"], ".0f", " ms"), fmt(r["onset_to_clear_ms"]["max"], ".0f", " ms")],
            ["onset -> agent audio stopped", fmt(r["onset_to_audio_stopped_ms"]["p50"], ".0f", " ms"),
             fmt(r["onset_to_audio_stopped_ms"]["p95"], ".0f", " ms"),
             fmt(r["onset_to_audio_stopped_ms"]["max"], ".0f", " ms")],
            ["server: onset -> clear sent", fmt(r["server_onset_to_clear_sent_ms"]["p50"], ".0f", " ms"),
             fmt(r["server_onset_to_clear_sent_ms"]["p95"], ".0f", " ms"),
             fmt(r["server_onset_to_clear_sent_ms"]["max"], ".0f", " ms")]]
    text = table([f"barge-in ({r['barge_ins']}, {r['missed']} missed)", "p50", "p95", "max"], rows)
    k = r["false_by_kind"]
    text += (f"\nfalse barge-ins: {r['false_barge_ins']} of {r['false_set']} "
             f"({fmt(r['false_rate'], '.0%')}): coughs {k['cough']['stopped_agent']}/{k['cough']['events']}, "
             f"backchannels {k['backchannel']['stopped_agent']}/{k['backchannel']['events']}"
             f"\nthe agent's verdicts on the barge-ins it acted on: {r['server_outcomes']['true']} true, "
             f"{r['server_outcomes']['false']} false (resumed), {r['server_outcomes']['pending']} pending")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=10, help="concurrent callers per set")
    p.add_argument("--per-call", type=int, default=10, help="true barge-ins per caller")
    p.add_argument("--false-per-call", type=int, default=6, help="coughs/backchannels per caller")
    p.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    r = measure(args.calls, args.per_call, args.false_per_call, args.seed)
    print(render(r))
    print(f"JSON: {write_json('bench-bargein', r, args.results)}")
    return 0 if r["barge_ins"] and not r["missed"] else 1
