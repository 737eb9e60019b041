"""`offhook bench ws`: the WebSocket layer for the media socket — hypercorn's WS (what the server
uses), trio-websocket and the `websockets` package's trio server — each serving a bare Twilio echo,
driven by the same load generator in a separate process, stepped up together (all three at each N)
until p99 lateness > 10 ms or frames are lost."""
from __future__ import annotations

import argparse
import sys

from offhook.bench.report import fmt, table, write_json
from offhook.bench.runner import ServerProc, core_split, step_up_many
from offhook.bench.wsservers import LIBS

DEFAULT_STEPS = "25,50,100,150,200,250,300,400,500"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}")
    p.add_argument("--steps", default=DEFAULT_STEPS, help="call counts to step through")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window per step")
    p.add_argument("--retries", type=int, default=1, help="re-runs of a failing step (shared machines)")
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds after the calls start, before measuring")


def echo_server(lib: str):
    return lambda spec: ServerProc([sys.executable, "-m", "offhook.bench.wsservers", "--lib", lib])


def summary_row(name: str, res: dict) -> list[str]:
    m = res["at_max"] or {}
    return [name, str(res["max_calls"]), fmt(res["cpu_per_call"] and res["cpu_per_call"] * 100, ".3f", "%"),
            fmt(res["calls_per_core_by_cpu"], ".0f"), fmt(m.get("rss_per_call_kb"), ".1f", " kB"),
            fmt((m.get("outbound_lateness_ms") or {}).get("p99"), ".2f", " ms"),
            fmt((m.get("lag_ms") or {}).get("p99"), ".2f", " ms"),
            fmt(m.get("generator_cpu_window") and m["generator_cpu_window"] * 100, ".0f", "%")]


HEADERS = ["server", "max calls (1 core)", "CPU/call", "calls/core by CPU", "RSS/call", "p99 late @max",
           "loop lag p99 @max", "generator CPU @max"]

NOTE = ("max calls: largest N with p99 lateness <= 10 ms and no frame lost (the server process pinned to one core,\n"
        "the callers on the others);\n"
        "calls/core by CPU: 1 / (server CPU s per wall s per call) at that N. Machine shared: see loadavg in JSON.")


def run(args: argparse.Namespace) -> int:
    steps = [int(s) for s in args.steps.split(",")]
    libs = [l for l in args.libs.split(",") if l]
    unknown = set(libs) - set(LIBS)
    if unknown:
        print(f"unknown library: {', '.join(sorted(unknown))} (choose from {', '.join(LIBS)})", file=sys.stderr)
        return 2
    print(f"stepping {', '.join(libs)} in turn at each N", flush=True)
    results = step_up_many({lib: echo_server(lib) for lib in libs}, steps, seconds=args.seconds, warmup=args.warmup,
                           mode="echo", retries=args.retries, refine=args.refine)
    print()
    print(table(HEADERS, [summary_row(lib, r) for lib, r in results.items()]))
    print(NOTE)
    ranked = sorted((r["cpu_per_call"], lib) for lib, r in results.items() if r["cpu_per_call"])
    if ranked:
        print(f"cheapest per call: {ranked[0][1]}")
    path = write_json("bench-ws", {"steps": steps, "seconds": args.seconds, "cores": core_split(), "results": results,
                                   "cheapest": ranked[0][1] if ranked else None}, args.results)
    print(f"JSON: {path}")
    return 0  # the measurement ran; whether a step passed is in the table (a noisy machine is not an error)
