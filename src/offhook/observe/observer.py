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

A write the store cannot take because it is unreachable goes to the outbox on disk (see
observe.outbox) and is retried with backoff until the store is back; while anything is waiting
there, new writes queue behind it, so the order holds across an outage, a shutdown and the next
start (which delivers the outbox first). The store's writes are upserts of the whole record, so a
write delivered twice (the store took it but the answer was lost) is still one row. A write that
fails for another reason (a bug, a malformed record) is not retried: it goes to outbox/failed/.
"""
from __future__ import annotations

import hmac
import logging
import math
import re
import socket
import time
import traceback
from collections import deque
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote, urlencode

import trio
from prometheus_client import Counter, Gauge

from offhook.observe import dashboard
from offhook.observe.cost import CostLedger
from offhook.observe.metrics import CONTENT_TYPE, Metrics
from offhook.observe.outbox import Backoff, Outbox, Write
from offhook.observe.record import CallRecord, EventRecord
from offhook.observe.recording import CallRecorder, keep_decision
from offhook.observe.report import RECORDING_EVENT, compute
from offhook.observe.retention import recording_file, retention_task
from offhook.observe.store import StoreError, open_store, valid_sid

log = logging.getLogger("offhook.observe")

DRAIN_S = 10.0            # at shutdown, queued writes get this long to finish (the rest stay in the outbox)
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 60.0  # outbox retries: 1 s, doubling, at most a minute apart
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
        self.server_id = config.server_id or socket.gethostname()
        self.outbox = Outbox(Path(config.data_dir) / "outbox", self.server_id)
        Gauge("offhook_store_outbox_writes", "Call-store writes waiting in the local outbox for the store",
              registry=self.metrics.registry).set_function(lambda: len(self.outbox.pending))
        self.failed_writes = Counter("offhook_store_failed_writes",
                                     "Call-store writes that failed other than by an outage (kept in outbox/failed)",
                                     registry=self.metrics.registry)
        self.root = Path(config.data_dir) / "recordings"
        self.spool = self.root / "spool"
        self._send, self._recv = trio.open_memory_channel(math.inf)
        self._drain = trio.CancelScope()       # its deadline is set at shutdown
        self.write_seconds: deque[float] = deque(maxlen=1000)  # per store attempt, for operators and benches
        self.write_failures = 0                # writes moved to failed/ (not retried)
        self._backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        self._retry_at = -math.inf
        self._outage_since: float | None = None  # trio time the store was first found unreachable
        self._delivered_late = 0               # writes delivered from the outbox in this outage
        self._current: Write | None = None     # taken from the queue, not yet stored, on disk or failed
        self._marks: list[tuple[int, trio.Event]] = []  # flush() waiters: (last outbox seq before it)
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
            try:
                await trio.to_thread.run_sync(obs.outbox.open)
            except OSError as e:
                raise StoreError(f"cannot use the call store outbox in {obs.outbox.root}: {e}") from None
            obs.write_failures += obs.outbox.unreadable
            obs.failed_writes.inc(obs.outbox.unreadable)
            try:
                if obs.outbox.pending:
                    log.warning("call store: %d writes left in %s by an earlier run; delivering them first",
                                len(obs.outbox.pending), obs.outbox.dir)
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
                        obs._drain.deadline = trio.current_time() + DRAIN_S
                        obs._send.close()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(obs.outbox.close)

    def _swept(self, result) -> None:
        self.sweeps.append(result)
        del self.sweeps[:-24]
        done, self.swept = self.swept, trio.Event()
        done.set()

    # ---------------------------------------------------------------- the writer
    async def _writer(self) -> None:
        # Shielded: a shutdown must not cut a call's record write in half; the channel closing and the
        # drain deadline are what end this task, and what the deadline cuts off stays in the outbox.
        with trio.CancelScope(shield=True):
            with self._drain:
                while True:
                    if self.outbox.pending:
                        await self._retry_outbox()
                        continue
                    try:
                        item = await self._recv.receive()
                    except trio.EndOfChannel:
                        break
                    w = await self._prepared(item)
                    if w is not None:
                        await self._deliver(w)
            await self._spill()

    async def _prepared(self, item) -> Write | None:
        """The write an item of the queue stands for (None for a flush mark)."""
        if isinstance(item, trio.Event):
            self._mark(item)
            return None
        if isinstance(item, Write):
            self._current = item
            return item
        with trio.CancelScope(shield=True):  # local work (the recording): never cut off by the drain
            try:
                self._current = await item()
            except Exception:
                log.exception("a call store write could not be prepared; it is lost")
                return None
        return self._current

    async def _deliver(self, w: Write) -> None:
        error = await self._attempt(w)
        if error is None:
            self._current = None
        elif self.store.unavailable(error):
            self._outage(error)
            await self._keep(w)
        else:
            await self._failed(w, error)

    async def _retry_outbox(self) -> None:
        if trio.current_time() < self._retry_at:
            await self._keep_until(self._retry_at)
            return
        w = self.outbox.pending[0]
        error = await self._attempt(w)
        if error is not None and self.store.unavailable(error):
            self._outage(error)
            log.debug("call store still unavailable (%s); next try at %.1f", self.store.redact(str(error))[:200],
                      self._retry_at)
        else:  # the store answered: the next write goes at once
            self._backoff.reset()
            self._retry_at = -math.inf
            if error is None:
                await trio.to_thread.run_sync(self.outbox.done, w)
                self._delivered_late += 1
            else:
                await self._failed(w, error)
            if not self.outbox.pending:
                self._recovered()
        self._release_marks()

    async def _keep_until(self, when: float) -> None:
        """Until `when`, new writes go straight to the outbox, behind the ones waiting there. Only the
        wait for one is cut off at `when`: a write taken from the queue (its recording perhaps saved
        past `when`) goes to the outbox all the same."""
        while True:
            item = None
            with trio.move_on_at(when):
                try:
                    item = await self._recv.receive()
                except trio.EndOfChannel:
                    await trio.sleep_until(when)
            if item is None:
                return
            w = await self._prepared(item)
            if w is not None:
                await self._keep(w)

    async def _attempt(self, w: Write) -> Exception | None:
        t = trio.current_time()
        try:
            await self._write(w)
        except Exception as e:  # classified by the caller: outage (retry) or not (failed/)
            return e
        finally:
            self.write_seconds.append(trio.current_time() - t)
        return None

    async def _write(self, w: Write) -> None:
        if w.kind == "start":
            await self.store.start_call(w.record())
        elif w.kind == "finish":
            rec = w.record()
            status = (await self.store.get_status(rec.call_sid)).get("completed")
            await self._store_finished(rec, status["duration"] if status else None)
        elif w.kind == "status":
            await self._write_status(w.payload, w.made_at)
        else:
            raise ValueError(f"unknown call store write {w.kind!r}")

    async def _keep(self, w: Write) -> None:
        await trio.to_thread.run_sync(self.outbox.add, w)
        self._current = None

    async def _failed(self, w: Write, error: Exception) -> None:
        self._current = None
        self.write_failures += 1
        self.failed_writes.inc()
        why = self.store.redact("".join(traceback.format_exception(error)))
        where = await trio.to_thread.run_sync(self.outbox.fail, w, why) or "nowhere (see above)"
        log.error("call store refused the %s (%s: %s), not retrying; kept in %s", w.label, type(error).__name__,
                  self.store.redact(str(error))[:300], where)

    def _outage(self, error: Exception) -> None:
        """The store is unreachable: the next try is a backoff step from now (the failure, not the file)."""
        self._retry_at = trio.current_time() + self._backoff.next()
        if self._outage_since is not None:
            return
        self._outage_since = trio.current_time()
        self._delivered_late = 0
        log.warning("call store unavailable (%s): keeping call records in %s and retrying until it is back",
                    self.store.redact(f"{type(error).__name__}: {error}")[:300], self.outbox.dir)

    def _recovered(self) -> None:
        if self._outage_since is None:
            if self._delivered_late:
                log.warning("call store: the %d writes left by an earlier run are delivered",
                            self._delivered_late)
        else:
            log.warning("call store back after %.0f s: %d waiting writes delivered",
                        trio.current_time() - self._outage_since, self._delivered_late)
        self._outage_since = None
        self._delivered_late = 0

    async def _spill(self) -> None:
        """After the drain deadline: what is not in the store yet goes to the outbox for the next start."""
        if self._current is not None and self._current.path is None:
            await self._keep(self._current)
        while True:
            try:
                item = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            w = await self._prepared(item)
            if w is not None:
                await self._keep(w)
        if self.outbox.pending:
            log.warning("call store: %d writes not delivered by shutdown; kept in %s for the next start",
                        len(self.outbox.pending), self.outbox.dir)
        if self.outbox.in_memory:
            log.error("call store: %d of them could not be kept on disk and are lost", self.outbox.in_memory)
        for _, done in self._marks:
            done.set()
        self._marks.clear()

    def _mark(self, done: trio.Event) -> None:
        if self.outbox.pending:
            self._marks.append((self.outbox.pending[-1].seq, done))
        else:
            done.set()

    def _release_marks(self) -> None:
        head = self.outbox.pending[0].seq if self.outbox.pending else math.inf
        waiting = []
        for seq, done in self._marks:
            if seq < head:
                done.set()
            else:
                waiting.append((seq, done))
        self._marks = waiting

    def _submit(self, item) -> bool:
        try:
            self._send.send_nowait(item)
            return True
        except trio.ClosedResourceError:
            log.error("call store already closed: a write was dropped")
            return False

    async def flush(self) -> None:
        """Wait until everything queued so far is in the store (or failed, and kept in outbox/failed)."""
        done = trio.Event()
        if self._submit(done):
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
        self._submit(Write.of_record("start", rec))
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

        async def finish() -> Write:
            if recorder is not None:  # before the record is written: it names the kept recording
                try:
                    await self._keep_or_discard(recorder, snap, why)
                except Exception:  # the recording's trouble must not cost the record
                    log.exception("call %s: recording not kept", snap.call_sid)
                rec.recording_path = snap.recording_path
            return Write.of_record("finish", snap)
        self._submit(finish)

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

    async def _store_finished(self, rec: CallRecord, twilio_seconds: float | None) -> None:
        """Write the completed record. Twilio's billed duration, when known, replaces our stream-time
        estimate; the cost metric catches up only once the corrected record is stored (a write that
        fails and is retried must not count twice)."""
        extra = 0.0
        if twilio_seconds is not None:
            before = rec.cost.get("twilio", 0.0)
            rec.usage.twilio_seconds = twilio_seconds
            rec.cost = self.ledger.cost(rec.usage)
            extra = rec.cost["twilio"] - before
        await self.store.finish_call(rec)
        if extra > 0:
            self.metrics.cost.labels(component="twilio").inc(extra)

    def status(self, st: dict) -> None:
        if not valid_sid(st.get("CallSid", "")):
            log.warning("status callback not stored: invalid CallSid %r", st.get("CallSid", "")[:80])
            return
        self._submit(Write.of_status(st, time.time()))

    async def _write_status(self, st: dict, received_at: float) -> None:
        await self.store.record_status(st, received_at)
        if st.get("CallStatus") != "completed":
            return
        try:
            seconds = float(st.get("CallDuration") or "")
        except ValueError:
            return
        rec = await self.store.get_call(st.get("CallSid", ""))
        if rec is not None and rec.complete:  # else the call's end picks the duration up
            await self._store_finished(rec, seconds)

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
