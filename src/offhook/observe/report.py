"""`offhook report`: the week's calls in figures, from the call store.

Definitions (the dashboard shows the same numbers, computed here):
- first-audio latency and per-stage latencies: per turn, P50/P95 by linear interpolation.
- barge-in success rate: true barge-ins whose playback stopped within 200 ms of the caller's onset,
  over all true barge-ins. False-barge-in rate: false barge-ins over all barge-ins (true + false).
- hangup rate by duration bucket: calls in the bucket that the caller ended, over all completed
  calls (so the buckets add up to the overall caller-hangup rate); the bucket's call count is shown.
- cost per call: total over completed calls; per minute: total over their summed duration.
- calls to review: recordings kept in the window, handoffs/errors/short hang-ups first, then the
  random sample, newest first within each; at most REVIEW_LIMIT ("listen to 5-10 calls a week").
Incomplete records (a server died mid-call) are counted, and left out of every other figure.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone

import trio

from offhook.observe.formats import ms, pct, usd, when
from offhook.observe.measures import (DURATION_BUCKETS, HANDOFF_REASONS, STAGES, barge_in_succeeded,
                                      caller_hung_up, count_events, duration_bucket, is_error, percentile,
                                      stage_latencies)
from offhook.observe.record import CallRecord, EventKind

REVIEW_LIMIT = 10
REVIEW_PRIORITY = {"handoff": 0, "error": 1, "short_hangup": 2, "sampled": 3}
RECORDING_EVENT = "recording_kept"  # EventRecord(kind, detail=why) added when a recording is kept


def mask_number(number: str) -> str:
    """+15551230000 -> +1•••••••0000: enough to tell calls apart, not enough to dial."""
    digits = sum(c.isdigit() for c in number)
    if digits <= 4:
        return number
    out, seen = [], 0
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen == 1 and number.startswith("+") or seen > digits - 4 else "•")
        else:
            out.append(c)
    return "".join(out)


def _p(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}


def recording_reason(rec: CallRecord) -> str:
    for e in rec.events:
        if e.kind == RECORDING_EVENT:
            return e.detail
    return "sampled"


def compute(records: list[CallRecord], since: float, until: float) -> dict:
    done = [r for r in records if r.complete and r.ended_at is not None]
    first_audio: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    true_bi = false_bi = succeeded = 0
    for r in done:
        for t in r.turns:
            if (fa := t.first_audio_latency) is not None:
                first_audio.append(fa)
            for s, v in stage_latencies(t).items():
                if v is not None:
                    stages[s].append(v)
        for b in r.barge_ins:
            if b.outcome == "true":
                true_bi += 1
                succeeded += barge_in_succeeded(b)
            elif b.outcome == "false":
                false_bi += 1
    reasons: dict[str, int] = {}
    for r in done:
        reasons[r.end_reason.value] = reasons.get(r.end_reason.value, 0) + 1
    buckets = {label: {"calls": 0, "caller_hangups": 0} for label, _ in DURATION_BUCKETS}
    for r in done:
        b = buckets[duration_bucket(r.duration or 0.0)]
        b["calls"] += 1
        b["caller_hangups"] += caller_hung_up(r)
    for b in buckets.values():
        b["rate"] = b["caller_hangups"] / len(done) if done else None
    total = sum(r.cost.get("total", 0.0) for r in done)
    minutes = sum((r.duration or 0.0) for r in done) / 60.0
    components: dict[str, float] = {}
    for r in done:
        for k, v in r.cost.items():
            if k != "total":
                components[k] = components.get(k, 0.0) + v
    kept = [r for r in done if r.recording_path]
    kept.sort(key=lambda r: -r.started_at)
    kept.sort(key=lambda r: REVIEW_PRIORITY.get(recording_reason(r), 9))
    return {
        "since": since, "until": until,
        "calls": {"total": len(records), "complete": len(done), "incomplete": len(records) - len(done)},
        "first_audio": _p(first_audio),
        "stages": {s: _p(v) for s, v in stages.items()},
        "barge_in": {"true": true_bi, "false": false_bi, "succeeded": succeeded,
                     "success_rate": succeeded / true_bi if true_bi else None,
                     "false_rate": false_bi / (true_bi + false_bi) if true_bi + false_bi else None},
        "stalls": sum(count_events(r, EventKind.STALL.value) for r in done),
        "tts_fallbacks": sum(count_events(r, EventKind.TTS_FALLBACK.value) for r in done),
        "llm_failures": sum(count_events(r, EventKind.LLM_FAILURE.value) for r in done),
        "handoffs": sum(r.end_reason in HANDOFF_REASONS for r in done),
        "errors": sum(is_error(r.end_reason) for r in done),
        "end_reasons": dict(sorted(reasons.items())),
        "hangups_by_duration": buckets,
        "cost": {"total": total, "per_call": total / len(done) if done else None,
                 "per_minute": total / minutes if minutes else None, "minutes": minutes,
                 "by_component": dict(sorted(components.items()))},
        "review": [{"call_sid": r.call_sid, "started_at": r.started_at, "duration": r.duration,
                    "end_reason": r.end_reason.value, "why": recording_reason(r),
                    "from": mask_number(r.from_number), "recording": r.recording_path}
                   for r in kept[:REVIEW_LIMIT]],
        "recordings_kept": len(kept),
    }


# ---------------------------------------------------------------- text output
_UTC = "%Y-%m-%d %H:%M UTC"


def format_text(rep: dict) -> str:
    c, bi, cost = rep["calls"], rep["barge_in"], rep["cost"]
    lines = [f"offhook report  {when(rep['since'], _UTC)} .. {when(rep['until'], _UTC)}",
             f"calls            {c['total']} ({c['complete']} complete, {c['incomplete']} incomplete)",
             f"first audio        P50 {ms(rep['first_audio']['p50'])}  P95 {ms(rep['first_audio']['p95'])}"
             f"  ({rep['first_audio']['n']} turns)"]
    for s, v in rep["stages"].items():
        lines.append(f"  {s:<16} P50 {ms(v['p50'])}  P95 {ms(v['p95'])}")
    lines += [f"barge-ins        {bi['true']} true, {bi['false']} false; success {pct(bi['success_rate'])}"
              f" (stopped within 200 ms), false-barge-in rate {pct(bi['false_rate'])}",
              f"stalls {rep['stalls']}   TTS fallbacks {rep['tts_fallbacks']}   LLM failures {rep['llm_failures']}"
              f"   handoffs {rep['handoffs']}   errors {rep['errors']}",
              "end reasons      " + (", ".join(f"{k} {v}" for k, v in rep["end_reasons"].items()) or "-"),
              "caller hang-ups by call duration (share of all calls):"]
    for label, b in rep["hangups_by_duration"].items():
        lines.append(f"  {label:<8} {b['caller_hangups']:>4} of {b['calls']:>4} calls  {pct(b['rate'])}")
    lines += [f"cost             total {usd(cost['total'])}   per call {usd(cost['per_call'])}"
              f"   per minute {usd(cost['per_minute'])}",
              "  " + ", ".join(f"{k} {usd(v)}" for k, v in cost["by_component"].items()),
              f"calls to review ({len(rep['review'])} of {rep['recordings_kept']} recordings kept):"]
    for r in rep["review"]:
        dur = "-" if r["duration"] is None else f"{r['duration']:.0f} s"
        lines.append(f"  {r['call_sid']}  {when(r['started_at'], _UTC)}  {dur:>6}  {r['end_reason']:<18} "
                     f"{r['why']:<12} {r['recording']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the command
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> float:
    """'7d', '36h', '2w', '90m' back from now, or an ISO date/time (UTC unless it says otherwise)."""
    m = _SPAN.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since: expected e.g. 7d, 24h, 2w or 2026-01-31, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="7d", help="window start: 7d, 24h, 2w or an ISO date (default 7d)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--config", help="offhook TOML config (the store is found from it and the environment)")


async def build(config, since: float, until: float) -> dict:
    from offhook.observe.store import open_store
    async with open_store(config, create=False) as store:
        records = await store.calls_between(since, until)
    return compute(records, since, until)


def run(args) -> int:
    from offhook.server.config import Config, ConfigError
    from offhook.observe.store import StoreError
    now = time.time()
    try:
        since = parse_since(args.since, now)
        # the report reads the store only: it needs no Twilio credentials
        config = Config.load(args.config, validate_signatures=False)
        rep = trio.run(build, config, since, now)
    except (argparse.ArgumentTypeError, ConfigError, StoreError) as e:
        print(f"offhook report: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(rep, indent=2) + "\n" if args.json else format_text(rep))
    return 0
