"""The Observer ties monitoring to a running server.

    async with Observer.open(config) as obs:
        obs.attach(app)
        ...serve...

At call start it writes the (incomplete) record and gives the call a recorder; at call end it
completes the record, prices it, moves the metrics, decides whether the recording is kept, and
writes it; a Twilio status callback is kept and, once the call is over, corrects its Twilio minutes.
It serves /metrics, /dashboard, /dashboard/call/<sid> and /recordings/<sid>.wav.

The server's hooks are synchronous and run on the call's path, so they only do in-memory work
(metrics, a snapshot of the record) and queue the store work for one writer task, which keeps a
call's writes in order (start before end before status correction) and off the hot path.
"""
from __future__ import annotations

import hmac
import logging
import math
import re
import socket
import time
from collections import deque
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import parse_qs, quote, urlencode

import trio

from offhook.observe import dashboard
from offhook.observe.cost import CostLedger
from offhook.observe.metrics import CONTENT_TYPE, Metrics
from offhook.observe.record import CallRecord, EventRecord
from offhook.observe.recording import CallRecorder, keep_decision
from offhook.observe.report import RECORDING_EVENT, compute
from offhook.observe.retention import recording_file, retention_task
from offhook.observe.store import StoreError, open_store, valid_sid

log = logging.getLogger("offhook.observe")

DRAIN_S = 10.0            # at shutdown, queued writes get this long to finish
DASHBOARD_MAX_CALLS = 5000
MAX_DAYS = 366
CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _query(scope) -> dict[str, str]:
    qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {k: v[-1] for k, v in qs.items()}


class Observer:
    def __init__(self, config, store, ledger: CostLedger):
        self.config = config
        self.store = store
        self.ledger = ledger
        self.metrics = Metrics()
        self.root = Path(config.data_dir) / "recordings"
        self.spool = self.root / "spool"
        self.server_id = config.server_id or socket.gethostname()
        self._send, self._recv = trio.open_memory_channel(math.inf)
        self._drain_deadline = math.inf
        self.write_seconds: deque[float] = deque(maxlen=1000)  # per queued job, for operators and benches
        self.write_failures = 0
        self.sweeps: list = []                 # retention SweepResults, oldest first (bounded)
        self.swept = trio.Event()              # set after each sweep (replaced by a fresh one)
        self.app = None

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    @asynccontextmanager
    async def open(cls, config):
        ledger = CostLedger(config.prices)  # bad [prices] fail at start, not at the first call's end
        async with open_store(config) as store:
            obs = cls(config, store, ledger)
            async with trio.open_nursery() as writer:
                writer.start_soon(obs._writer)
                try:
                    async with trio.open_nursery() as background:
                        await background.start(obs.metrics.measure_loop_lag)
                        await background.start(partial(retention_task, store, obs.root,
                                                       config.recording_retention_days, on_sweep=obs._swept))
                        try:
                            yield obs
                        finally:
                            background.cancel_scope.cancel()
                finally:
                    obs._drain_deadline = trio.current_time() + DRAIN_S
                    obs._send.close()

    def _swept(self, result) -> None:
        self.sweeps.append(result)
        del self.sweeps[:-24]
        done, self.swept = self.swept, trio.Event()
        done.set()

    async def _writer(self) -> None:
        # Shielded: a shutdown must not cut a call's record write in half; the channel closing (and the
        # drain deadline) is what ends this task.
        with trio.CancelScope(shield=True):
            async for job in self._recv:
                t = trio.current_time()
                with trio.move_on_at(self._drain_deadline) as scope:
                    try:
                        await job()
                    except Exception:
                        self.write_failures += 1
                        log.exception("call store write failed")
                if scope.cancelled_caught:
                    self.write_failures += 1
                    log.error("call store write abandoned at shutdown (store too slow)")
                self.write_seconds.append(trio.current_time() - t)

    def _submit(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            self._send.send_nowait(job)
        except trio.ClosedResourceError:
            log.error("call store already closed: a write was dropped")

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        done = trio.Event()

        async def mark() -> None:
            done.set()
        self._submit(mark)
        await done.wait()

    # ---------------------------------------------------------------- the server's hooks
    def attach(self, app) -> None:
        self.app = app
        app.call_started_hooks.append(self.call_started)
        app.call_ended_hooks.append(self.call_ended)
        app.status_hooks.append(self.status)
        routes = getattr(app, "extra_routes", None)
        if routes is None:
            routes = app.extra_routes = {}
        routes.update({("GET", "/metrics"): self._metrics_route, ("GET", "/dashboard"): self._dashboard_route,
                       ("GET", "/dashboard/call/"): self._call_route, ("GET", "/recordings/"): self._recording_route})

    def call_started(self, call) -> None:
        self.metrics.active_calls.inc()
        rec: CallRecord | None = getattr(call, "record", None)
        if rec is None:  # no agent record (e.g. echo mode): every call still leaves one
            rec = call.record = CallRecord(call.call_sid)
        rec.call_sid = rec.call_sid or call.call_sid
        rec.stream_sid = rec.stream_sid or call.stream_sid
        params = call.params or {}
        rec.from_number = rec.from_number or params.get("from", "")
        rec.to_number = rec.to_number or params.get("to", "")
        rec.started_at = rec.started_at or time.time()
        rec.t0 = rec.t0 or call.t0
        rec.server_id = rec.server_id or self.server_id
        if not valid_sid(rec.call_sid):
            log.warning("call with an unusable sid %r: not recorded", rec.call_sid[:80])
            return
        snap = CallRecord.from_dict(rec.to_dict())
        self._submit(lambda: self.store.start_call(snap))
        try:
            call.recorder = CallRecorder(self.spool, rec.call_sid)
        except OSError as e:  # monitoring trouble must never cost the caller the call
            log.warning("call %s: not recording (%s)", rec.call_sid, e)

    def call_ended(self, call) -> None:
        self.metrics.active_calls.dec()
        rec: CallRecord | None = getattr(call, "record", None)
        if rec is None or not valid_sid(rec.call_sid):
            return
        if not rec.complete:  # the edge completes it before the hooks run (MediaCall.complete_record)
            log.warning("call %s ended with its record not completed by the edge; storing it as is", rec.call_sid)
        # The duration comes from the call clock (trio.current_time(), injected in tests), not from two
        # wall-clock readings; in production the two agree to the millisecond.
        rec.ended_at = rec.started_at + max(0.0, trio.current_time() - call.t0)
        if not rec.usage.twilio_seconds:
            rec.usage.twilio_seconds = max(0.0, rec.duration or 0.0)
        rec.cost = self.ledger.cost(rec.usage)
        try:
            self.metrics.call_finished(rec)
        except Exception:  # a malformed record must still be stored
            log.exception("call %s: metrics not updated", rec.call_sid)
        recorder: CallRecorder | None = getattr(call, "recorder", None)
        why = keep_decision(rec, self.config.recording_sample_rate) if recorder is not None else None
        if recorder is not None:
            recorder.close()  # no frame after the end
        snap = CallRecord.from_dict(rec.to_dict())

        async def job() -> None:
            status = (await self.store.get_status(snap.call_sid)).get("completed")
            if status and status["duration"] is not None:
                self._apply_twilio_duration(snap, status["duration"])
            if recorder is not None:
                await self._keep_or_discard(recorder, snap, why)
                rec.recording_path = snap.recording_path
            await self.store.finish_call(snap)
        self._submit(job)

    async def _keep_or_discard(self, recorder: CallRecorder, snap: CallRecord, why: str | None) -> None:
        """Save the WAV when kept (else drop the spool); a failure costs the recording, never the record."""
        try:
            if why and not recorder.failed:
                rel = f"{datetime.fromtimestamp(snap.started_at, timezone.utc):%Y-%m-%d}/{snap.call_sid}.wav"
                await trio.to_thread.run_sync(recorder.save, self.root / rel)
                snap.recording_path = rel
                snap.events.append(EventRecord(RECORDING_EVENT, snap.duration or 0.0, why))
            else:
                await trio.to_thread.run_sync(recorder.discard)
        except OSError as e:
            log.warning("call %s: recording not kept (%s)", snap.call_sid, e)

    def _apply_twilio_duration(self, rec: CallRecord, seconds: float) -> None:
        """Twilio's billed duration replaces our stream-time estimate; the cost metric catches up."""
        before = rec.cost.get("twilio", 0.0)
        rec.usage.twilio_seconds = seconds
        rec.cost = self.ledger.cost(rec.usage)
        if rec.cost["twilio"] > before:
            self.metrics.cost.labels(component="twilio").inc(rec.cost["twilio"] - before)

    def status(self, st: dict) -> None:
        async def job() -> None:
            try:
                await self.store.record_status(st)
            except StoreError as e:
                log.warning("status callback not stored: %s", e)
                return
            if st.get("CallStatus") != "completed":
                return
            try:
                seconds = float(st.get("CallDuration") or "")
            except ValueError:
                return
            rec = await self.store.get_call(st.get("CallSid", ""))
            if rec is not None and rec.complete:  # else the call's end picks the duration up
                self._apply_twilio_duration(rec, seconds)
                await self.store.finish_call(rec)
        self._submit(job)

    # ---------------------------------------------------------------- HTTP
    def _authorized(self, scope) -> bool:
        token = self.config.metrics_token
        if not token:
            return True
        auth = _headers(scope).get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else _query(scope).get("token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    async def _respond(self, send, status: int, body: str | bytes, ctype: str = "text/plain; charset=utf-8",
                       headers: list | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(data)).encode()),
                                (b"cache-control", b"no-store"), *(headers or [])]})
        await send({"type": "http.response.body", "body": data})

    async def _respond_page(self, send, html: str) -> None:
        """A dashboard page, under its content security policy."""
        await self._respond(send, 200, html, "text/html; charset=utf-8",
                            [(b"content-security-policy", dashboard.CSP.encode())])

    async def _guard(self, scope, send, *, needs_token: bool) -> bool:
        if needs_token and not self.config.metrics_token:
            await self._respond(send, 403, "the dashboard shows callers' words: "
                                           "set OFFHOOK_METRICS_TOKEN to enable it\n")
            return False
        if not self._authorized(scope):
            await self._respond(send, 401, "unauthorized\n", headers=[(b"www-authenticate", b'Bearer realm="offhook"')])
            return False
        return True

    def _linker(self, scope) -> Callable[..., str]:
        """link(path, **query): a URL that keeps the ?token= this page was opened with (if any)."""
        token = _query(scope).get("token")

        def link(path: str, **query) -> str:
            q = {**query, **({"token": token} if token else {})}
            return path + ("?" + urlencode(q) if q else "")
        return link

    async def _metrics_route(self, scope, receive, send) -> None:
        if await self._guard(scope, send, needs_token=False):
            await self._respond(send, 200, self.metrics.render(), CONTENT_TYPE)

    async def _dashboard_route(self, scope, receive, send) -> None:
        if not await self._guard(scope, send, needs_token=True):
            return
        try:
            days = float(_query(scope).get("days", "7"))
            if not (0 < days <= MAX_DAYS):
                raise ValueError
        except ValueError:
            return await self._respond(send, 400, f"days must be a number of days, 0 < days <= {MAX_DAYS}\n")
        until = time.time()
        since = until - days * 86400
        records = await self.store.calls_between(since, until, limit=DASHBOARD_MAX_CALLS)
        link = self._linker(scope)
        html = await trio.to_thread.run_sync(
            lambda: dashboard.overview(compute(records, since, until), records, link, days=days,
                                       truncated=len(records) >= DASHBOARD_MAX_CALLS))
        await self._respond_page(send, html)

    async def _call_route(self, scope, receive, send) -> None:
        if not await self._guard(scope, send, needs_token=True):
            return
        sid = scope["path"][len("/dashboard/call/"):]
        rec = await self.store.get_call(sid) if valid_sid(sid) else None
        if rec is None:
            return await self._respond(send, 404, "no such call\n")
        link = self._linker(scope)
        url = link(f"/recordings/{quote(sid)}.wav") if rec.recording_path else None
        html = await trio.to_thread.run_sync(lambda: dashboard.call_page(rec, link, url))
        await self._respond_page(send, html)

    async def _recording_route(self, scope, receive, send) -> None:
        if not await self._guard(scope, send, needs_token=True):
            return
        name = scope["path"][len("/recordings/"):]
        sid = name[:-4] if name.endswith(".wav") else ""
        rec = await self.store.get_call(sid) if valid_sid(sid) else None
        path = recording_file(self.root, rec.recording_path) if rec and rec.recording_path else None
        if path is None or not path.is_file():
            return await self._respond(send, 404, "no recording\n")
        await self._send_file(scope, send, path, "audio/wav")

    async def _send_file(self, scope, send, path: Path, ctype: str) -> None:
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        m = _RANGE.match(_headers(scope).get("range", ""))
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
            else:
                start = max(0, size - int(m.group(2)))
            if start > end or start >= size:
                return await self._respond(send, 416, "", headers=[(b"content-range", f"bytes */{size}".encode())])
            status = 206
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(end - start + 1).encode()),
                   (b"accept-ranges", b"bytes"), (b"cache-control", b"no-store")]
        if status == 206:
            headers.append((b"content-range", f"bytes {start}-{end}/{size}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        with open(path, "rb") as f:
            pos = start
            while pos <= end:
                chunk = await trio.to_thread.run_sync(f.read, min(CHUNK, end - pos + 1))
                if not chunk:
                    break
                pos += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": pos <= end})
        if pos <= end:  # the file shrank under us (retention): end the response anyway
            await send({"type": "http.response.body", "body": b"", "more_body": False})
