"""Prometheus metrics. The names are a contract with operators' dashboards; do not rename.

Per-call figures move once, from the finished CallRecord, when the call ends (so /metrics and the
stored record always agree); the active-call and event-loop-lag gauges are live. Each Observer has
its own CollectorRegistry, so two servers in one process (or two tests) never share counts.
"""
from __future__ import annotations

import re

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from offhook.observe.measures import (HANDOFF_REASONS, bad_message_counts, count_events, duration_bucket,
                                      stage_latencies)
from offhook.observe.record import CallRecord, EventKind

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
STAGE_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
REACTION_BUCKETS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)

LAG_PERIOD_S = 0.5

CONTENT_TYPE = CONTENT_TYPE_LATEST


_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def watchdog_label(kind: str, detail: str) -> str:
    """The watchdog's name from kind "watchdog:<name>", or a detail that is a bare identifier; anything
    else is "other" (free text as a label value would make a new time series per message)."""
    name = kind.partition(":")[2] or detail
    return name if _LABEL.match(name) else "other"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        self.first_audio = Histogram("offhook_first_audio_seconds",
                                     "End of caller speech to first agent audio played, per turn",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("offhook_stage_seconds", "Per-stage latency per turn", ["stage"],
                               buckets=STAGE_BUCKETS, registry=r)
        self.barge_in_reaction = Histogram("offhook_barge_in_reaction_seconds",
                                           "Caller speech onset to clear sent, per true barge-in",
                                           buckets=REACTION_BUCKETS, registry=r)
        self.calls = Counter("offhook_calls", "Calls by end reason", ["reason"], registry=r)
        self.barge_ins = Counter("offhook_barge_ins", "Barge-ins by outcome (true/false)", ["outcome"], registry=r)
        self.hangups = Counter("offhook_hangups", "Call ends by duration bucket and who ended the call",
                               ["duration_bucket", "ended_by"], registry=r)
        self.stalls = Counter("offhook_stalls", "Agent stalls (no audio when due)", registry=r)
        self.tts_fallbacks = Counter("offhook_tts_fallbacks", "Switches to a fallback TTS", registry=r)
        self.llm_failures = Counter("offhook_llm_failures", "LLM request failures", registry=r)
        self.handoffs = Counter("offhook_handoffs", "Calls handed off (voicemail or human)", registry=r)
        self.watchdog = Counter("offhook_watchdog_events", "Watchdog firings by kind", ["kind"], registry=r)
        self.bad_messages = Counter("offhook_bad_messages", "Bad inbound media-stream messages by kind",
                                    ["kind"], registry=r)
        self.speculative = Counter("offhook_speculative", "Speculative replies by outcome (hit/miss)",
                                   ["outcome"], registry=r)
        self.cost = Counter("offhook_cost_dollars", "Provider cost in dollars by component", ["component"],
                            registry=r)
        self.active_calls = Gauge("offhook_active_calls", "Calls in progress", registry=r)
        self.loop_lag = Gauge("offhook_event_loop_lag_seconds",
                              "How late the event loop woke a timer, last sample", registry=r)

    def call_finished(self, rec: CallRecord) -> None:
        for turn in rec.turns:
            if (fa := turn.first_audio_latency) is not None:
                self.first_audio.observe(fa)
            for stage, v in stage_latencies(turn).items():
                if v is not None:
                    self.stage.labels(stage=stage).observe(v)
            if turn.speculative in ("hit", "miss"):
                self.speculative.labels(outcome=turn.speculative).inc()
        for b in rec.barge_ins:
            if b.outcome in ("true", "false"):
                self.barge_ins.labels(outcome=b.outcome).inc()
            if b.outcome == "true" and b.reaction is not None:
                self.barge_in_reaction.observe(b.reaction)
        self.calls.labels(reason=rec.end_reason.value).inc()
        duration = rec.duration if rec.duration is not None else 0.0
        self.hangups.labels(duration_bucket=duration_bucket(duration), ended_by=rec.ended_by.value).inc()
        self.stalls.inc(count_events(rec, EventKind.STALL.value))
        self.tts_fallbacks.inc(count_events(rec, EventKind.TTS_FALLBACK.value))
        self.llm_failures.inc(count_events(rec, EventKind.LLM_FAILURE.value))
        if rec.end_reason in HANDOFF_REASONS:
            self.handoffs.inc()
        for e in rec.events:
            if e.kind == EventKind.WATCHDOG.value or e.kind.startswith("watchdog:"):
                self.watchdog.labels(kind=watchdog_label(e.kind, e.detail)).inc()
        for kind, n in bad_message_counts(rec).items():
            self.bad_messages.labels(kind=kind).inc(n)
        for component, dollars in rec.cost.items():
            if component != "total" and dollars > 0:
                self.cost.labels(component=component).inc(dollars)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def measure_loop_lag(self, period: float = LAG_PERIOD_S, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Sleep `period`, see how late we woke: a blocked or saturated loop shows up here first."""
        task_status.started()
        while True:
            due = trio.current_time() + period
            await trio.sleep_until(due)
            self.loop_lag.set(max(0.0, trio.current_time() - due))
