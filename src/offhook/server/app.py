"""The ASGI application Twilio talks to.

Plain ASGI rather than Starlette: we serve one WebSocket route whose every message is on the hot
path plus five tiny HTTP routes, so a framework's routing, request objects and middleware would only
add per-message work and a dependency; what we need from HTTP (form bodies, headers) is a few lines.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from typing import Callable
from urllib.parse import parse_qsl

import trio

from offhook.server.after_actions import AfterActions
from offhook.server.config import Config
from offhook.server.hypercorn_io import text_sender
from offhook.server.media import AfterAction, CallHandler, MediaCall, MediaSession
from offhook.twilio import twiml
from offhook.twilio.pacer import Ticker
from offhook.twilio.signature import SignatureChecker, public_url

log = logging.getLogger("offhook.server")

MAX_BODY = 64 * 1024
CLOSE_GRACE_S = 5.0         # drain: calls told to end get this long to close their sockets
AFTER_STREAM_GRACE_S = 10.0  # drain: ... and Twilio this long to fetch their voicemail TwiML from us


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _path_qs(scope) -> str:
    qs = scope.get("query_string", b"").decode("latin-1")
    return scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0] + (f"?{qs}" if qs else "")


def _keep_recent(d: dict, key, value, limit: int = 1000) -> None:
    """d[key] = value, forgetting the oldest entries past `limit` (the store keeps the history)."""
    d.pop(key, None)
    d[key] = value
    while len(d) > limit:
        del d[next(iter(d))]


def _client(scope) -> str:
    c = scope.get("client")
    return f"{c[0]}:{c[1]}" if c else "?"


class OffhookApp:
    def __init__(self, config: Config, handler_factory: Callable[[MediaCall], CallHandler],
                 ticker: Ticker | None = None):
        self.config = config
        self.handler_factory = handler_factory
        self.ticker = ticker or Ticker()
        self.signatures = SignatureChecker(config.twilio_auth_token, config.public_url) \
            if config.validate_signatures else None
        self.active: dict[str, MediaCall] = {}
        # with several workers, shared through data_dir: Twilio's after-stream request may reach any
        self.after_actions = AfterActions(os.path.join(config.data_dir, "after-actions")
                                          if config.workers > 1 else None)
        self.statuses: dict[str, dict] = {}
        self.voicemails: dict[str, dict] = {}     # CallSid -> RecordingUrl, RecordingDuration
        self.finished: list[MediaCall] = []       # recent calls, newest last (bounded)
        self.rejected: list[tuple[str, str]] = []  # (path, remote) of refused requests
        self.call_started_hooks: list[Callable[[MediaCall], None]] = []
        self.call_ended_hooks: list[Callable[[MediaCall], None]] = []
        self.status_hooks: list[Callable[[dict], None]] = []
        self.extra_routes: dict = {}
        self.server_id = config.server_id or socket.gethostname()
        self.calls_total = 0
        self.streams_without_call: Counter = Counter()  # media sockets that never became a call, by why
        self.accepting = True        # False while draining: new calls are handed over, not answered
        self.drained = trio.Event()  # set when a drain has finished: the server may stop
        self.handed_over: list[str] = []  # call sids the drain sent to voicemail
        self._changed = trio.Event()  # pulsed when a call starts/ends or an after-stream is fetched
        self._drain_wait: trio.CancelScope | None = None

    # ---------------------------------------------------------------- ASGI entry
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            if scope["path"] == "/twilio/media":
                await self._media(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
        elif kind == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---------------------------------------------------------------- HTTP
    async def _respond(self, send, status: int, body: str | bytes, ctype: str = "text/plain; charset=utf-8",
                       headers: list | None = None):
        data = body.encode() if isinstance(body, str) else body
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(data)).encode()),
                                *(headers or [])]})
        await send({"type": "http.response.body", "body": data})

    async def _read_body(self, receive) -> bytes | None:
        body = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")
            if len(body) > MAX_BODY:
                return None
            if not msg.get("more_body"):
                return body

    async def _http(self, scope, receive, send):
        path, method = scope["path"], scope["method"]
        routes = {
            ("POST", "/twilio/voice"): self._voice,
            ("POST", "/twilio/after-stream"): self._after_stream,
            ("POST", "/twilio/status"): self._status,
        }
        extra = self.extra_routes
        if (method, path) in routes:
            body = await self._read_body(receive)
            if body is None:
                return await self._respond(send, 413, "request body too large")
            try:
                params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                return await self._respond(send, 400, "bad form body")
            headers = _headers(scope)
            if self.signatures and not self.signatures.check_http(_path_qs(scope), headers, params,
                                                                  scope.get("scheme", "http")):
                self._refuse(path, scope)
                return await self._respond(send, 403, "invalid Twilio signature")
            status, ctype, out = await routes[(method, path)](scope, headers, params)
            return await self._respond(send, status, out, ctype)
        if path == "/healthz" and method == "GET":
            # 503 while draining, so a load balancer's health check takes this process out of rotation
            return await self._respond(send, 200 if self.accepting else 503, json.dumps(self.health()),
                                       "application/json")
        if (method, path) in extra:
            return await extra[(method, path)](scope, receive, send)
        for (m, prefix), fn in extra.items():
            if prefix.endswith("/") and path.startswith(prefix) and m == method:
                return await fn(scope, receive, send)
        await self._respond(send, 404, "not found")

    def _refuse(self, path: str, scope) -> None:
        remote = _client(scope)
        self.rejected.append((path, remote))
        del self.rejected[:-100]
        # never log the token or the signature itself
        log.warning("refused %s from %s: missing or invalid X-Twilio-Signature", path, remote)

    def media_url(self, headers: dict[str, str], scheme: str) -> str:
        return public_url("/twilio/media", headers, self.config.public_url, scheme, websocket=True)

    def health(self) -> dict:
        return {"status": "ok" if self.accepting else "draining", "active_calls": len(self.active),
                "calls_total": self.calls_total, "worker": self.server_id, "pid": os.getpid(),
                "streams_without_call": dict(self.streams_without_call)}

    async def _voice(self, scope, headers, params):
        scheme = scope.get("scheme", "http")
        if not self.accepting:
            # Draining: hand the caller over rather than answer 503, which Twilio turns into "an
            # application error has occurred" (unless a fallback URL is set) and the caller is lost.
            log.info("draining: call %s handed over at the webhook", params.get("CallSid", "?"))
            return 200, "application/xml", self._handover_twiml(self.config.voicemail_prompt,
                                                                 self._after_url(headers, scheme))
        xml = twiml.connect_stream(
            self.media_url(headers, scheme),
            self._after_url(headers, scheme),
            {"from": params.get("From", ""), "to": params.get("To", ""), "callSid": params.get("CallSid", "")},
        )
        return 200, "application/xml", xml

    async def _after_stream(self, scope, headers, params):
        sid = params.get("CallSid", "")
        if params.get("RecordingUrl"):  # Twilio posts the voicemail <Record> result back here
            rec = {k: params.get(k, "") for k in ("RecordingUrl", "RecordingDuration")}
            _keep_recent(self.voicemails, sid, rec)
            log.info("call %s left a voicemail (%s s)", sid, params.get("RecordingDuration", "?"))
        action = self.after_actions.pop(sid) or AfterAction()
        self._pulse()
        here = self._after_url(headers, scope.get("scheme", "http"))  # the recording comes back here
        if action.kind == "voicemail":
            xml = twiml.voicemail(action.prompt or self.config.voicemail_prompt, action_url=here)
        elif action.kind == "dial" and action.number:
            xml = twiml.dial_human(action.number, fallback_prompt=self.config.voicemail_prompt, action_url=here)
        else:
            xml = twiml.hangup()
        return 200, "application/xml", xml

    def _after_url(self, headers, scheme: str) -> str:
        return public_url("/twilio/after-stream", headers, self.config.public_url, scheme)

    def _handover_twiml(self, prompt: str, action_url: str) -> str:
        """A human when a handoff number is configured (voicemail if nobody answers), else voicemail."""
        if self.config.handoff_number:
            return twiml.dial_human(self.config.handoff_number, fallback_prompt=prompt, action_url=action_url)
        return twiml.voicemail(prompt, action_url=action_url)

    async def _status(self, scope, headers, params):
        rec = {k: params.get(k, "") for k in ("CallSid", "CallStatus", "CallDuration", "From", "To", "Timestamp")}
        _keep_recent(self.statuses, rec["CallSid"], rec)
        for hook in self.status_hooks:
            hook(rec)
        return 204, "text/plain", ""

    # ---------------------------------------------------------------- WebSocket
    async def _media(self, scope, receive, send):
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        if self.signatures and not self.signatures.check_ws(_path_qs(scope), _headers(scope),
                                                            scope.get("scheme", "ws")):
            self._refuse(scope["path"], scope)
            await send({"type": "websocket.close", "code": 1008})  # before accept: handshake refused (403)
            return
        await send({"type": "websocket.accept"})

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        session = MediaSession(receive, send_text, self.ticker, self.handler_factory, send_now=text_sender(send),
                               lead=self.config.pacer_lead_ms / 1000, mark_every=self.config.mark_every_frames,
                               on_start=self._call_started, on_end=self._call_ended)
        try:
            if await session.run() is None:
                self.streams_without_call[session.no_start or "?"] += 1
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1.0):
                    try:
                        await send({"type": "websocket.close", "code": 1000})
                    except Exception:
                        pass  # already closed by the peer

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done():
            await self._changed.wait()

    def _call_started(self, call: MediaCall) -> None:
        self.active[call.call_sid] = call
        self.calls_total += 1
        self._pulse()
        for hook in self.call_started_hooks:
            try:
                hook(call)
            except Exception:
                log.exception("call-started hook failed for %s", call.call_sid)

    def _call_ended(self, call: MediaCall) -> None:
        self.active.pop(call.call_sid, None)
        if call.after is not None and call.after.kind != "hangup":
            self.after_actions.put(call.call_sid, call.after)
        self.finished.append(call)
        del self.finished[:-200]
        for hook in self.call_ended_hooks:
            try:
                hook(call)
            except Exception:
                log.exception("call-ended hook failed for %s", call.call_sid)
        self._pulse()

    # ---------------------------------------------------------------- graceful drain
    async def drain(self, timeout: float) -> None:
        """Stop taking calls; let active calls go on for up to `timeout` s, then hand the rest to
        voicemail; return (and set `drained`) once they are gone and Twilio has fetched what comes next.
        New calls meanwhile get the hand-over TwiML at the webhook. Idempotent."""
        if not self.accepting:
            await self.drained.wait()
            return
        self.accepting = False
        log.warning("draining: %d active call(s) may go on for up to %.0f s; new calls are handed over",
                    len(self.active), timeout)
        with trio.move_on_after(timeout) as self._drain_wait:
            await self._until(lambda: not self.active)
        left = list(self.active.values())
        if left:
            log.warning("drain timeout: handing %d call(s) to voicemail", len(left))
        after = AfterAction("voicemail", self.config.voicemail_prompt)
        for call in left:
            self.handed_over.append(call.call_sid)
            call.event("drain_handover")
            call.end("server_shutdown", "system", after=after)
        with trio.move_on_after(CLOSE_GRACE_S):
            await self._until(lambda: not self.active)
        with trio.move_on_after(AFTER_STREAM_GRACE_S):
            await self._until(lambda: not any(self.after_actions.pending(sid) for sid in self.handed_over))
        log.warning("drained: %d call(s) handed to voicemail, %d still open", len(left), len(self.active))
        self.drained.set()

    def drain_now(self) -> None:
        """Cut the drain's waiting short (a second SIGTERM/SIGINT): hand active calls over at once."""
        if self._drain_wait is not None:
            self._drain_wait.cancel()
