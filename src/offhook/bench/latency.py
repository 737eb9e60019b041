"""`offhook bench latency`: voice-to-voice turn latency of the whole agent, end to end.

Simulated calls through the real server, the real provider clients and their emulators
(offhook.sim.rig) at the seed's budget: STT first partial 150 ms, LLM first token 300 ms, TTS first
chunk 200 ms, plus 50-100 ms network on each provider, all in one trio run under
MockClock(autojump_threshold=0.005) with real loopback sockets, so every provider and network delay
is exact virtual time and offhook's own CPU costs no virtual time at all. Each call: the greeting,
then `blocks` times: a question; a question with a pause mid-sentence; a question talked over by a
barge-in 0.4-1.0 s into its answer; the barge-in's own question.

Reported:
- end of caller speech -> first agent audio at the caller, p50/p95/p99 (virtual, exact), with the
  waterfall: ingress (jitter buffer), endpoint/speculation wait, LLM first token, clause wait, commit
  gate, offhook dispatch, TTS first chunk, delivery;
- the endpoint wait (end of speech -> turn committed) and the speculative hit rate (speculative LLM
  requests whose reply was used, of those started);
- offhook's own share of the latency in virtual time (dispatch + delivery: structure, e.g. waiting
  for a tick) and, separately, in wall time: the CPU offhook spends on each turn's critical path
  (commit decision, LLM deltas up to the first clause, chunker, spoken form, first TTS chunk through
  OutboundPath into the pacer), measured with perf_counter; and per inbound frame (on_audio);
- barge-in onset -> `clear` sent (server record) and -> `clear` received (caller).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import trio
import trio.testing

from offhook.agent import factory as agent_factory
from offhook.bench.report import fmt, table, write_json
from offhook.sim.emulators.plan import LatencyProfile
from offhook.sim.load import percentiles
from offhook.sim.rig import agent_rig

STT = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05, jitter_s=0.05)   # 50-100 ms per message
LLM = LatencyProfile(first_s=0.30, gap_s=0.03, network_s=0.075, jitter_s=0.025)  # 350-400 ms incl. network
TTS = LatencyProfile(first_s=0.20, gap_s=0.05, network_s=0.075, jitter_s=0.025)  # 250-300 ms incl. network
QUESTIONS = ["What time do you open tomorrow?", "Where are you located?", "How much is a haircut?",
             "Are you open on Saturday?", "What services do you offer?", "When do you close on Friday?"]
# a question broken off where a sentence cannot end ("... on", "... for"): the endpoint policy waits
# long, the speculative request made in the pause is cancelled when the caller goes on
PAUSED = [("Are you open on", "Saturday morning?"), ("How much is a haircut for", "a child?"),
          ("What time do you close on", "Friday?"), ("Do you take cards or", "just cash?")]
BARGE = "Sorry, where are you located?"
TURNS_PER_BLOCK = 4
WATERFALL = ("ingress", "endpoint", "llm", "clause", "gate", "dispatch", "tts", "delivery")


def steps(blocks: int, seed: int) -> list[dict]:
    out: list[dict] = [{"wait_for_agent": {"quiet": 0.5, "timeout": 10}}]
    for i in range(blocks):
        k = seed + i
        head, tail = PAUSED[k % len(PAUSED)]
        # patient waits (the longest answers run ~14 s): the only barge-ins are the scripted ones
        out += [{"say": QUESTIONS[k % len(QUESTIONS)]}, {"wait_for_agent": {"quiet": 0.6, "timeout": 25}},
                {"say": head}, {"wait": 0.3 + 0.1 * (k % 4)}, {"say": tail},
                {"wait_for_agent": {"quiet": 0.6, "timeout": 25}},
                {"say": QUESTIONS[(k + 3) % len(QUESTIONS)]},
                {"barge_in": {"after": 0.4 + 0.15 * (k % 5), "say": BARGE}},
                {"wait_for_agent": {"quiet": 0.6, "timeout": 25}}]
    return out


async def _calls(calls: int, blocks: int) -> tuple[list, dict]:
    async with agent_rig(stt_profile=STT, llm_profile=LLM, tts_profile=TTS, tts2_profile=TTS) as rig:
        results = []

        async def one(i):
            results.append(await rig.call(steps(blocks, i), seed=i))

        async with trio.open_nursery() as nursery:
            for i in range(calls):
                nursery.start_soon(one, i)
    return results, rig.agents


def _turn_of(line, turns):
    return next((t for t in turns if t.speech_end is not None and abs(t.speech_end - line.end) < 0.1), None)


def analyse(results: list, agents: dict) -> dict:
    """The latency figures from the callers' results, the server's call records and the agents' own
    timestamps (all trio time, so exact)."""
    lat, paused_lat, endpoint_wait, own_virtual, cpu, frame_us = [], [], [], [], [], []
    parts: dict[str, list[float]] = {k: [] for k in WATERFALL}
    react_server, react_caller, outcomes, slow = [], [], [], []
    openers = spec_starts = spec_hits = spec_wasted = 0
    spec_turns = {"hit": 0, "miss": 0, "none": 0}
    paused_tails = {tail for _, tail in PAUSED}
    for result, call in results:
        agent = agents[call.call_sid]
        t0 = call.t0
        by_turn = {}
        for reply in agent.answered:
            by_turn.setdefault(reply.turn.index, reply)
        for line in result.lines:
            if line.first_agent_audio is None:
                continue
            turn = _turn_of(line, call.record.turns)
            reply = by_turn.get(turn.index) if turn is not None else None
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
            if line.text in paused_tails:
                paused_lat.append(latency)
            endpoint_wait.append(turn.endpoint_commit - turn.speech_end)
            spec_turns[turn.speculative] = spec_turns.get(turn.speculative, 0) + 1
            slow.append((round(latency * 1000), line.text, {k: round(v * 1000) for k, v in w.items()}))
            for k, v in w.items():
                parts[k].append(v)
            own_virtual.append(w["dispatch"] + w["delivery"])
            openers += bool(sp.opener_played)
        cpu += agent.turn_cpu_s
        if agent.frames:
            frame_us.append(agent.cpu_s / agent.frames * 1e6)
        spec_starts += agent.spec_starts
        spec_hits += agent.spec_hits
        spec_wasted += agent.spec_wasted_tokens
        for b in call.record.barge_ins:
            if b.reaction is not None:
                react_server.append(b.reaction)
            outcomes.append(b.outcome)
        react_caller += [b.clear_latency for b in result.barge_ins if b.clear_latency is not None]

    ms = lambda xs: {k: (v * 1000 if v is not None else None) for k, v in percentiles(xs).items()}
    return {
        "turns": len(lat),
        "latency_ms": ms(lat),
        "paused_turns": len(paused_lat),
        "paused_latency_ms": ms(paused_lat),
        "endpoint_wait_ms": ms(endpoint_wait),
        "speculative": {"starts": spec_starts, "hits": spec_hits,
                        "hit_rate": spec_hits / spec_starts if spec_starts else None,
                        "wasted_tokens": spec_wasted, "turns_by_outcome": spec_turns},
        "turns_opening_with_a_prerendered_word": openers,
        "waterfall_p50_ms": {k: (statistics.median(v) * 1000 if v else None) for k, v in parts.items()},
        "own_virtual_ms": ms(own_virtual),
        "own_cpu_per_turn_ms": ms(cpu),
        "on_audio_us_per_frame_mean": statistics.mean(frame_us) if frame_us else None,
        "barge_in_clear_sent_ms": ms(react_server),
        "barge_in_clear_at_caller_ms": ms(react_caller),
        "barge_in_outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "slowest": sorted(slow, key=lambda x: x[0])[-3:],
    }


def measure(calls: int = 10, blocks: int = 5, openers: bool = True) -> dict:
    saved = agent_factory.OPENERS
    if not openers:
        agent_factory.OPENERS = ("Xyzzy.",)  # a word no reply opens with: every first audio waits for the TTS
    t = time.perf_counter()
    try:
        results, agents = trio.run(_calls, calls, blocks, clock=trio.testing.MockClock(autojump_threshold=0.005))
    finally:
        agent_factory.OPENERS = saved
    out = analyse(results, agents)
    out.update({
        "calls": calls, "blocks": blocks, "scripted_turns": calls * blocks * TURNS_PER_BLOCK, "openers": openers,
        "profiles": {"stt": repr(STT), "llm": repr(LLM), "tts": repr(TTS)},
        "clock": "trio MockClock(autojump_threshold=0.005), real loopback sockets",
        "wall_s": time.perf_counter() - t,
    })
    return out


def render(r: dict) -> str:
    def row(name, d, spec=".0f", unit=" ms"):
        return [name, *(fmt(d[k], spec, unit) for k in ("p50", "p95", "p99", "max"))]

    rows = [row(f"end of speech -> first audio ({r['turns']} turns)", r["latency_ms"]),
            row(f"  of which paused mid-sentence ({r['paused_turns']})", r["paused_latency_ms"]),
            row("endpoint wait (end of speech -> commit)", r["endpoint_wait_ms"]),
            row("offhook's own share (dispatch + delivery)", r["own_virtual_ms"]),
            row("offhook CPU on a turn's critical path", r["own_cpu_per_turn_ms"], ".2f")]
    text = table(["voice-to-voice latency", "p50", "p95", "p99", "max"], rows)
    s = r["speculative"]
    text += (f"\nspeculative hit rate: {fmt(s['hit_rate'], '.0%')} ({s['hits']} of {s['starts']} speculative "
             f"requests used; {s['wasted_tokens']} tokens wasted)"
             f"\nwaterfall p50: " + ", ".join(f"{k} {fmt(v, '.0f')}" for k, v in r["waterfall_p50_ms"].items()) +
             f" ms\nturns opening with a pre-rendered word: {r['turns_opening_with_a_prerendered_word']}; "
             f"on_audio per inbound frame: {fmt(r['on_audio_us_per_frame_mean'], '.1f', ' us')}"
             f"\nbarge-in onset -> clear sent p50 {fmt(r['barge_in_clear_sent_ms']['p50'], '.0f', ' ms')}, "
             f"-> clear at the caller p50 {fmt(r['barge_in_clear_at_caller_ms']['p50'], '.0f', ' ms')}"
             f"\n{r['turns']} of {r['scripted_turns']} scripted turns measured; {r['wall_s']:.0f} s wall")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=10, help="simulated calls (concurrent)")
    p.add_argument("--blocks", type=int, default=5,
                   help=f"blocks of {TURNS_PER_BLOCK} turns per call (question, paused question, barged-in question, barge-in)")
    p.add_argument("--no-openers", action="store_true",
                   help="measure without the pre-rendered openers (every first audio waits for the TTS)")


def run(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.blocks < 1:
        print("--calls and --blocks must be at least 1", file=sys.stderr)
        return 2
    logging.disable(logging.WARNING)  # expected per-call warnings (barge-ins, hang-ups) would bury the table
    try:
        r = measure(args.calls, args.blocks, openers=not args.no_openers)
    finally:
        logging.disable(logging.NOTSET)
    print(render(r))
    print(f"JSON: {write_json('bench-latency', r, args.results)}")
    return 0 if r["turns"] else 1
