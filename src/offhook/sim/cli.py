"""`offhook call`: place a simulated Twilio call against a running server.

    offhook call scenario.yaml [--url http://127.0.0.1:8080] [--auth-token TOKEN] [--out DIR]

Runs the call as Twilio does (offhook.sim.phone): the signed /twilio/voice webhook, the media stream
the TwiML names, then the <Connect action> and the status callback (--direct: only the media socket).
Speaks the scenario's lines (eSpeak NG when installed, else a synthetic speech-like signal), plays
the agent's audio as Twilio would, prints a live log, writes DIR/<call sid>.wav (caller left, agent
right) and DIR/<call sid>.json (timeline and timings), and ends with the measured timings. Exit 0
when the call ran to its end, 1 when it could not connect or broke off, 2 for a bad scenario.
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import trio

from offhook.sim.caller import CallResult, SimCaller
from offhook.sim.phone import place_call
from offhook.sim.scenario import ScenarioError, load
from offhook.sim.voice import local_tts_voice, synthetic_voice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario file (YAML or TOML)")
    p.add_argument("--url", default="http://127.0.0.1:8080",
                   help="the server: base URL (http/ws) or the full media socket URL (default %(default)s)")
    p.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN") or None,
                   help="sign the WebSocket upgrade as Twilio does (default: $TWILIO_AUTH_TOKEN)")
    p.add_argument("--public-url", help="the server's public URL, when it validates signatures against "
                                        "one (its OFFHOOK_PUBLIC_URL, e.g. https://voice.example.com)")
    p.add_argument("--direct", action="store_true",
                   help="connect the media socket only (no webhook, after-stream or status callback)")
    p.add_argument("--out", default="offhook-calls", help="directory for the WAV and JSON (default %(default)s)")
    p.add_argument("--voice", choices=["auto", "tts", "synthetic"], default="auto",
                   help="caller voice: eSpeak NG (tts), a synthetic signal, or tts when available (auto)")
    p.add_argument("--seed", type=int, default=None, help="seed for the call's ids (default: random)")
    p.add_argument("--quiet", action="store_true", help="no live log")


def http_base(url: str) -> str:
    """Any form of --url -> the server's http(s) base."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (expected e.g. http://127.0.0.1:8080)")
    path = parts.path.rstrip("/").removesuffix("/twilio/media")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def media_url(url: str) -> str:
    """http(s)/ws(s) base or full URL -> the ws(s) URL of /twilio/media."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (expected e.g. http://127.0.0.1:8080)")
    path = parts.path.rstrip("/")
    if not path.endswith("/twilio/media"):
        path += "/twilio/media"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _voice(choice: str):
    if choice == "synthetic":
        return synthetic_voice
    tts = local_tts_voice()
    if tts is None and choice == "tts":
        raise ValueError("--voice tts needs the offline extra (pip install 'offhook[offline]')")
    return tts or synthetic_voice


def summary(res: CallResult) -> str:
    rows = [f"call {res.call_sid}: {res.duration:.1f} s, ended by {res.ended_by or '?'}"
            + (f", error: {res.error}" if res.error else "")]
    for i, line in enumerate(res.lines, 1):
        lat = f"{line.latency * 1000:6.0f} ms" if line.latency is not None else "  no reply"
        rows.append(f"  line {i}: end of caller line -> first agent audio {lat}   {line.text[:50]!r}")
    for i, b in enumerate(res.barge_ins, 1):
        clear = f"{b.clear_latency * 1000:.0f} ms" if b.clear_latency is not None else "never"
        stopped = f"{(b.audio_stopped - b.onset) * 1000:.0f} ms" if b.audio_stopped is not None else "never"
        rows.append(f"  barge-in {i} at {b.onset:.2f} s: onset -> clear received {clear}, "
                    f"onset -> agent audio stopped {stopped}")
    rows.append(f"  agent audio heard {res.agent_audio_seconds():.1f} s, marks echoed {len(res.marks_echoed)}, "
                f"clears {res.clears}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load(args.scenario)
        url = media_url(args.url)
        http_base(args.url)
        voice = _voice(args.voice)
    except FileNotFoundError as e:
        print(f"offhook call: scenario not found: {e.filename}", file=sys.stderr)
        return 2
    except (ScenarioError, ValueError) as e:
        print(f"offhook call: {e}", file=sys.stderr)
        return 2

    def live(t: float, kind: str, detail: str) -> None:
        if not args.quiet:
            print(f"{t:8.2f}s  {kind:<16} {detail}", flush=True)

    if args.direct:
        signed = media_url(args.public_url) if args.public_url else url
        caller = SimCaller(url, scenario, auth_token=args.auth_token, signed_url=signed, seed=args.seed,
                           voice=voice, on_event=live)
        res, after = trio.run(caller.run), None
    else:
        phone = trio.run(partial(place_call, http_base(args.url), scenario, auth_token=args.auth_token,
                                 public_url=args.public_url, seed=args.seed, voice=voice, on_event=live))
        for err in phone.errors:
            print(f"offhook call: {err}", file=sys.stderr)
        if phone.stream is None:
            if not phone.errors:
                print(f"offhook call: the server did not connect a stream; the caller got: "
                      f"{' '.join(phone.next_verbs) or '?'}", file=sys.stderr)
            return 1
        res, after = phone.stream, phone.next_verbs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wav, js = out / f"{res.call_sid}.wav", out / f"{res.call_sid}.json"
    res.write_wav(str(wav))
    res.write_json(str(js))
    print(summary(res))
    if after is not None:
        print(f"  after the stream Twilio was told: {' '.join(after) or '(nothing)'}")
    print(f"  recording {wav}\n  timeline  {js}")
    return 1 if res.error or res.ended_by != "caller" else 0
