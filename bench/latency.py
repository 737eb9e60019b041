"""Turn latency and barge-in reaction of the whole agent, end to end (not a test).

    python bench/latency.py [--calls 10] [--blocks 5] [--json out.json]

Runs simulated calls through the real server, the real provider clients and their emulators at the
seed's budget (STT first partial 150 ms, LLM first token 300 ms, TTS first chunk 200 ms, 50-100 ms
network on each provider) under trio's MockClock, so every provider and network delay is exact
virtual time and offhook's own CPU costs no virtual time at all. Each call: the greeting, then
`blocks` times: a question, and a question talked over by a barge-in at 0.4-1.0 s into the answer.

Reported:
- end of caller speech -> first agent audio at the caller, p50/p95 (virtual, exact), with the
  waterfall: ingress (jitter buffer), endpoint/speculation wait, LLM first token, clause wait, commit
  gate, offhook dispatch, TTS first chunk, delivery;
- offhook's own share of that time in virtual time (dispatch + delivery: structure, e.g. waiting for
  a tick) and, separately, in wall time: the CPU offhook spends on each turn's critical path
  (commit decision, LLM deltas up to the first clause, chunker, spoken form, first TTS chunk through
  OutboundPath into the pacer), measured with perf_counter; and per inbound frame (on_audio);
- barge-in onset -> `clear` sent (server record) and -> `clear` received (caller), p50/p95.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from agent_helpers import agent_rig  # noqa: E402  (the test rig: server + emulators + caller)

from offhook.agent import session as agent_session  # noqa: E402
from offhook.sim.emulators.plan import LatencyProfile  # noqa: E402

STT = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05, jitter_s=0.05)   # 50-100 ms per message
LLM = LatencyProfile(first_s=0.30, gap_s=0.03, network_s=0.075, jitter_s=0.025)  # 350-400 ms incl. network
TTS = LatencyProfile(first_s=0.20, gap_s=0.05, network_s=0.075, jitter_s=0.025)  # 250-300 ms incl. network
QUESTIONS = ["What time do you open tomorrow?", "Where are you located?", "How much is a haircut?",
             "Are you open on Saturday?", "What services do you offer?", "When do you close on Friday?"]
BARGE = "Sorry, where are you located?"


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def steps(blocks: int, seed: int) -> list[dict]:
    out: list[dict] = [{"wait_for_agent": {"quiet": 0.5, "timeout": 10}}]
    for i in range(blocks):
        q = QUESTIONS[(seed + i) % len(QUESTIONS)]
        # patient waits (the longest answers run ~14 s): the only barge-ins are the scripted ones
        out += [{"say": q}, {"wait_for_agent": {"quiet": 0.6, "timeout": 25}},
                {"say": QUESTIONS[(seed + i + 3) % len(QUESTIONS)]},
                {"barge_in": {"after": 0.4 + 0.15 * ((seed + i) % 5), "say": BARGE}},
                {"wait_for_agent": {"quiet": 0.6, "timeout": 25}}]
    return out


async def run(calls: int, blocks: int) -> dict:
    agents: dict[str, agent_session.AgentCall] = {}
    real_init = agent_session.AgentCall.__init__

    def capture(self, shared, call):
        real_init(self, shared, call)
        agents[call.call_sid] = self

    agent_session.AgentCall.__init__ = capture
    try:
        async with agent_rig(stt_profile=STT, llm_profile=LLM, tts_profile=TTS, tts2_profile=TTS) as rig:
            results = []

            async def one(i):
                results.append(await rig.call(steps(blocks, i), seed=i))

            async with trio.open_nursery() as nursery:
                for i in range(calls):
                    nursery.start_soon(one, i)
    finally:
        agent_session.AgentCall.__init__ = real_init

    lat, parts, own_virtual, cpu, frame_us = [], {k: [] for k in (
        "ingress", "endpoint", "llm", "clause", "gate", "dispatch", "tts", "delivery")}, [], [], []
    react_server, react_caller, outcomes = [], [], []
    openers = 0
    slow: list = []
    for result, call in results:
        agent = agents[call.call_sid]
        t0 = call.t0
        by_text = {}
        for reply in agent.answered:
            by_text.setdefault(reply.turn.index, reply)
        turns = call.record.turns
        for line in result.lines:
            if line.first_agent_audio is None:
                continue
            turn = next((t for t in turns if t.speech_end is not None and abs(t.speech_end - line.end) < 0.1), None)
            reply = by_text.get(turn.index) if turn is not None else None
            if reply is None or not reply.speaker or not reply.speaker.attempts:
                continue
            sp = reply.speaker
            att = sp.attempts[0]
            if sp.first_audio_at is None or reply.first_clause_at is None:
                continue
            latency = line.first_agent_audio - line.end
            speech_end = turn.speech_end + t0
            ready = max(reply.first_clause_at, reply.committed_at)
            w = {
                "ingress": turn.speech_end - line.end,
                "endpoint": reply.started_at - speech_end,
                "llm": reply.first_token_at - reply.started_at,
                "clause": reply.first_clause_at - reply.first_token_at,
                "gate": max(0.0, reply.committed_at - reply.first_clause_at),
                # a pre-rendered opener ("Sure,") plays without the TTS; else the TTS's first chunk
                "dispatch": (sp.first_audio_at if sp.opener_played else att.first_text_at) - ready,
                "tts": 0.0 if sp.opener_played else att.first_audio_at - att.first_text_at,
                "delivery": (line.first_agent_audio + t0) - sp.first_audio_at,
            }
            lat.append(latency)
            slow.append((round(latency * 1000), line.text, {k: round(v * 1000) for k, v in w.items()}))
            for k, v in w.items():
                parts[k].append(v)
            own_virtual.append(w["dispatch"] + w["delivery"])
            openers += bool(sp.opener_played)
        cpu += agent.turn_cpu_s
        if agent.frames:
            frame_us.append(agent.cpu_s / agent.frames * 1e6)
        for b in call.record.barge_ins:
            if b.reaction is not None:
                react_server.append(b.reaction)
            outcomes.append(b.outcome)
        react_caller += [b.clear_latency for b in result.barge_ins if b.clear_latency is not None]

    def summary(xs, scale=1000.0):
        return {"n": len(xs), "p50": pct(xs, 0.5) * scale, "p95": pct(xs, 0.95) * scale,
                "max": (max(xs) * scale) if xs else float("nan")}

    return {
        "latency_ms": summary(lat),
        "turns_opening_with_a_prerendered_word": openers,
        "waterfall_p50_ms": {k: pct(v, 0.5) * 1000 for k, v in parts.items()},
        "own_virtual_ms": summary(own_virtual),
        "own_cpu_per_turn_ms": summary(cpu),
        "on_audio_us_per_frame_mean": statistics.mean(frame_us) if frame_us else float("nan"),
        "barge_in_clear_sent_ms": summary(react_server),
        "barge_in_clear_at_caller_ms": summary(react_caller),
        "barge_in_outcomes": {o: outcomes.count(o) for o in set(outcomes)},
        "slowest": sorted(slow, key=lambda x: x[0])[-3:],
        "profiles": {"stt": repr(STT), "llm": repr(LLM), "tts": repr(TTS)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--json", default="")
    ap.add_argument("--no-openers", action="store_true",
                    help="measure without the pre-rendered openers (every first audio waits for the TTS)")
    a = ap.parse_args()
    if a.no_openers:
        from offhook.agent import factory
        factory.OPENERS = ("Xyzzy.",)  # a word no reply opens with
    import logging
    logging.disable(logging.WARNING)
    t = time.perf_counter()
    out = trio.run(run, a.calls, a.blocks, clock=trio.testing.MockClock(autojump_threshold=0.005))
    out["wall_s"] = time.perf_counter() - t
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
