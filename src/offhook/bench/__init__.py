"""`offhook bench`: latency, calls per core (full server path and bare WebSocket echo), barge-in.

Each sub-benchmark prints a short table and writes JSON under the results folder (`--results`).
"""
from __future__ import annotations

import argparse
import importlib

# name -> (module, help); each module has add_arguments(parser) and run(args) -> int
BENCHES = {
    "ws": ("offhook.bench.ws", "bare WebSocket echo: hypercorn vs trio-websocket vs websockets"),
    "load": ("offhook.bench.load", "calls per core through the full server path, vs the bare echo floor"),
    "latency": ("offhook.bench.latency", "voice-to-voice turn latency (emulated providers, MockClock)"),
    "bargein": ("offhook.bench.bargein", "barge-in reaction and false barge-ins (emulated providers, MockClock)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="folder for the JSON results (default: results/)")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (module, help_) in BENCHES.items():
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--results", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        importlib.import_module(module).add_arguments(sp)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(BENCHES[args.bench][0]).run(args)
