"""The `offhook` command. Each sub-command lives in the package it drives and is imported lazily,
so `offhook --help` stays fast and a missing optional extra only affects the command that needs it."""
from __future__ import annotations

import importlib
import sys

# name -> (module, help). The module exposes `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("offhook.server.cli", "run the call server Twilio connects to"),
    "call": ("offhook.sim.cli", "place a simulated Twilio call against a running server"),
    "demo": ("offhook.demo", "run a whole scripted call offline and print a summary"),
    "report": ("offhook.observe.report", "latency, barge-in, hangup and cost report from the call store"),
    "bench-audio": ("offhook.audio.benchcli", "measure the audio core against audioop/soxr/webrtcvad"),
    "bench": ("offhook.bench", "voice-to-voice latency, calls-per-core and barge-in benchmarks"),
}


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="offhook", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
