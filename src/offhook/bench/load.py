"""`offhook bench load`: calls per core through the full server path, against the bare echo floor.

Full path: the real OffhookApp on hypercorn (WebSocket, Media Streams protocol, jitter buffer,
handler, OutboundPath, pacer), each simulated call talking and listening continuously. `--mode echo`
uses the diagnostic echo handler (InboundPath + VAD, plays each caller line back); `--mode agent`
the agent with the STT/TTS emulators, which run in the load generator's process so the emulated
STT can read the callers' ScriptBoard. Floor: the bare hypercorn echo of `offhook bench ws`, same
library and the same callers, in the same run: the two are stepped in turn at each N. Goals: >= 60%
of the floor's calls per core and >= 100 calls per core.
"""
from __future__ import annotations

import argparse
import json
import sys

from offhook.bench.report import fmt, table, write_json
from offhook.bench.runner import ServerProc, core_split, step_up_many
from offhook.bench.ws import echo_server

DEFAULT_STEPS = "25,50,100,150,200,250,300,400"
GOAL_FRACTION = 0.60
GOAL_CALLS = 100


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("echo", "agent"), default="echo", help="handler on the full path")
    p.add_argument("--steps", default=DEFAULT_STEPS, help="call counts to step through")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window per step")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds after the calls start, before measuring")
    p.add_argument("--no-floor", action="store_true", help="skip the bare echo floor")
    p.add_argument("--retries", type=int, default=1, help="re-runs of a failing step (shared machines)")
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure")


def full_server(mode: str):
    def start(spec):
        extra = ["--providers", json.dumps(spec)] if mode == "agent" else []
        return ServerProc([sys.executable, "-m", "offhook.bench.server", "--mode", mode, *extra])
    return start


def measure(args: argparse.Namespace, log=print) -> dict:
    steps = [int(s) for s in args.steps.split(",")]
    kw = {"seconds": args.seconds, "warmup": args.warmup, "retries": args.retries, "refine": args.refine, "log": log}
    out: dict = {"mode": args.mode, "steps": steps, "seconds": args.seconds, "cores": core_split()}
    # stepped in turn at each N, so that a busy spell on this shared machine hits both alike (run one
    # after the other, the floor once met a quiet quarter of an hour and the full path a noisy one)
    starters = {"full": full_server(args.mode)}
    per = {"full": {"mode": "call", "emulators": args.mode == "agent"}}
    label = f"full path ({args.mode} handler)"
    if not args.no_floor:
        starters = {"floor": echo_server("hypercorn"), **starters}
        per["floor"] = {"mode": "echo"}
        label = f"floor (bare hypercorn echo) and {label}, in turn at each N"
    log(label, flush=True)
    out.update(step_up_many(starters, steps, mode="echo", per=per, **kw))
    full, floor = out["full"], out.get("floor")
    out["fraction_of_floor"] = full["max_calls"] / floor["max_calls"] if floor and floor["max_calls"] else None
    out["cpu_fraction_of_floor"] = (floor["cpu_per_call"] / full["cpu_per_call"]
                                    if floor and floor["cpu_per_call"] and full["cpu_per_call"] else None)
    out["goals"] = {
        "calls_per_core>=100": full["max_calls"] >= GOAL_CALLS,
        "fraction_of_floor>=0.6": out["fraction_of_floor"] is not None and out["fraction_of_floor"] >= GOAL_FRACTION,
    }
    return out


def render(out: dict) -> str:
    rows = []
    for name, key in (("bare echo floor (hypercorn)", "floor"), (f"full path, {out['mode']} handler", "full")):
        r = out.get(key)
        if not r:
            continue
        m = r["at_max"] or {}
        rows.append([name, str(r["max_calls"]), str(r["first_failing"] or "-"),
                     fmt(r["cpu_per_call"] and r["cpu_per_call"] * 100, ".3f", "%"),
                     fmt(r["calls_per_core_by_cpu"], ".0f"), fmt(m.get("rss_per_call_kb"), ".1f", " kB"),
                     fmt((m.get("outbound_lateness_ms") or {}).get("p99"), ".2f", " ms"),
                     fmt((m.get("lag_ms") or {}).get("p99"), ".2f", " ms")])
    text = table(["server", "max calls/core", "first failing N", "CPU/call", "calls/core by CPU", "RSS/call",
                  "p99 late @max", "loop lag p99 @max"], rows)
    g = out["goals"]
    text += (f"\nfull path / floor: {fmt(out['fraction_of_floor'], '.0%')} of the floor's calls per core "
             f"(CPU per call: {fmt(out['cpu_fraction_of_floor'], '.0%')}); goals: >= 100 calls/core "
             f"{'met' if g['calls_per_core>=100'] else 'NOT met'}, >= 60% of floor "
             f"{'met' if g['fraction_of_floor>=0.6'] else 'NOT met'}")
    return text


def run(args: argparse.Namespace) -> int:
    out = measure(args)
    print()
    print(render(out))
    path = write_json(f"bench-load-{args.mode}", out, args.results)
    print(f"JSON: {path}")
    return 0  # the measurement ran; the goals are reported, not an exit status
