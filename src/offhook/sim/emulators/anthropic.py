"""Anthropic Messages API emulator: `POST /v1/messages` over HTTP/1.1 (trio + h11), streaming SSE.

    async with anthropic_emulator(profile=LatencyProfile(first_s=0.3, gap_s=0.02),
                                  faults=FaultPlan([Fault("error", status=529)]),
                                  responder=lambda messages, system: "Sure, we open at nine.") as emu:
        llm = ClaudeLLM(api_key=emu.api_key, base_url=emu.base_url)
        ...
        emu.requests[0].headers, emu.requests[0].body

A raw h11 server rather than an ASGI app, so that faults are byte-exact: a hang holds the socket
open without a byte, a close drops the TCP connection mid-chunk, a malformed event is a truncated
JSON line, and the moment the client drops the connection is recorded (`disconnected_at`).

What it does per request (times are trio.current_time(), exact under MockClock):
- Auth: `x-api-key` or `Authorization: Bearer` (the installed SDK sends the latter); neither -> 401
  `authentication_error`; a wrong key when `api_key` is set -> 401 too.
- Validation like the real API: JSON body, `model`, positive integer `max_tokens`, non-empty `messages`
  with user/assistant roles -> otherwise 400 `invalid_request_error`. Unknown path 404
  `not_found_error`, body over `max_body` 413 `request_too_large`.
- The reply text is `responder(messages, system)` (sync or async; system flattened to a string),
  sent as word-sized `text_delta`s; more than `max_tokens` deltas -> cut, `stop_reason: max_tokens`.
- Timeline: headers + `message_start` + `content_block_start` + `ping` after `profile.network_s`,
  the first `text_delta` at `profile.first()` from the request, later ones `profile.gap()` apart, then
  `content_block_stop`, `message_delta` (final usage), `message_stop`. Keep-alive: the SDK's
  connection pool reuses the connection for the next request.
- Usage: tokens approximated as ceil(chars / 4). Prompt caching: the system blocks up to the last one
  with `cache_control` form the cached prefix; at or above `cache_min_tokens` (1024, as for Sonnet) the
  first request writes it (`cache_creation_input_tokens`) and later ones read it
  (`cache_read_input_tokens`), and `input_tokens` counts only the rest.
- Fault plan, one entry per valid request, `after_s` from the request's arrival:
  error -> the HTTP status with the real JSON error body if no header was sent yet, else an SSE
  `event: error` (as the API does after a 200) and the end of the body; hang -> nothing more is sent
  and the socket stays open (after_s=0: no response at all); close -> TCP close (mid-chunk once
  the body has started); malformed -> a truncated JSON event, then the end of the body; drip -> every
  text delta from after_s on waits `drip_s` (after_s=0: a slow first token too).

Run standalone for benchmarks: `python -m offhook.sim.emulators.anthropic --port 8766 --first-ms 300`.
"""
from __future__ import annotations

import inspect
import json
import math
import os
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable, Literal

import h11
import trio

from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.sim.emulators.serving import Observable, emulator_args, profile_of, serve_until_interrupted

__all__ = ["AnthropicEmulator", "EmuRequest", "EmuConnection", "anthropic_emulator", "echo_responder",
           "ERROR_TYPES", "error_body", "main"]

Responder = Callable[[list[dict], str], "str | Awaitable[str]"]

# HTTP status -> the API's error type (docs: "Errors").
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "api_error", 529: "overloaded_error"}
_ERROR_MESSAGES = {"rate_limit_error": "Number of requests has exceeded your rate limit.",
                   "api_error": "Internal server error", "overloaded_error": "Overloaded"}
_TOKEN = re.compile(r"\s*\S+")


def text_of(content: Any) -> str:
    """The text of a message's or system's content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def echo_responder(messages: list[dict], system: str) -> str:
    last = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last.strip()}" if last.strip() else "You said nothing."


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def error_body(status: int, message: str | None = None, request_id: str = "req_emu") -> dict:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message or _ERROR_MESSAGES.get(kind, kind)},
            "request_id": request_id}


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# ---------------------------------------------------------------- records
@dataclass
class EmuConnection:
    index: int
    opened_at: float
    closed_at: float | None = None
    requests: int = 0


@dataclass
class EmuRequest:
    index: int
    connection: int
    method: str
    path: str
    headers: dict[str, str]          # lower-cased names; a repeated header's values joined by ", "
    raw_body: bytes
    received_at: float
    body: dict | None = None          # the JSON body, when it parsed
    fault: Fault | None = None
    status: int | None = None         # HTTP status sent (None: no response head was sent)
    error_type: str | None = None     # error type sent, as a status body or an SSE error event
    events: list[tuple[float, str]] = field(default_factory=list)  # (t, SSE event name) in order sent
    text: str = ""                    # reply text sent in text deltas
    usage: dict[str, int] = field(default_factory=dict)  # final usage sent in message_delta
    first_token_at: float | None = None
    finished_at: float | None = None  # last byte of the response sent
    disconnected_at: float | None = None  # the client closed the connection before the response ended
    outcome: Literal["complete", "error", "hang", "close", "malformed", "client_closed"] | None = None

    @property
    def system(self) -> Any:
        return (self.body or {}).get("system")

    def deltas(self) -> list[str]:
        return [name for _, name in self.events if name == "content_block_delta"]


class _ClientGone(Exception):
    pass


class AnthropicEmulator(Observable):
    def __init__(self, *, profile: LatencyProfile | None = None, faults: FaultPlan | None = None,
                 responder: Responder | None = None, api_key: str | None = "test-anthropic-key",
                 cache_min_tokens: int = 1024, max_body: int = 32 * 1024 * 1024) -> None:
        super().__init__()
        self.profile = profile or LatencyProfile()
        self.faults = faults or FaultPlan()
        self.responder: Responder = responder or echo_responder
        self.api_key = api_key            # None: any key is accepted (a key is still required)
        self.cache_min_tokens = cache_min_tokens
        self.max_body = max_body
        self.host, self.port = "127.0.0.1", 0
        self.connections: list[EmuConnection] = []
        self.requests: list[EmuRequest] = []
        self._rng = self.profile.rng()
        self._cache: set[str] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ connection
    async def handle(self, stream: trio.SocketStream) -> None:
        conn = EmuConnection(index=len(self.connections), opened_at=trio.current_time())
        self.connections.append(conn)
        h = h11.Connection(h11.SERVER)
        try:
            while True:
                req = await self._read_request(stream, h, conn)
                if req is None:
                    break
                keep = await self._respond(stream, h, req)
                self._poke()
                if not keep or h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                    break
                h.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, _ClientGone):
            pass
        finally:
            conn.closed_at = trio.current_time()
            await trio.aclose_forcefully(stream)
            self._poke()

    async def _read_request(self, stream: trio.SocketStream, h: h11.Connection,
                            conn: EmuConnection) -> EmuRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                await self._send_plain_error(stream, h, e.error_status_hint, str(e))
                return None
            if ev is h11.NEED_DATA:
                h.receive_data(await stream.receive_some(65536))
            elif isinstance(ev, h11.Request):
                head = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
                if len(body) > self.max_body:
                    await self._send_plain_error(stream, h, 413, "Request exceeds the maximum allowed size")
                    return None
            elif isinstance(ev, h11.EndOfMessage):
                break
            else:  # ConnectionClosed, PAUSED
                return None
        assert head is not None
        headers: dict[str, str] = {}
        for k, v in head.headers:
            name = k.decode("latin-1").lower()
            headers[name] = f"{headers[name]}, {v.decode('latin-1')}" if name in headers else v.decode("latin-1")
        conn.requests += 1
        req = EmuRequest(index=len(self.requests), connection=conn.index, method=head.method.decode(),
                         path=head.target.decode("latin-1"), headers=headers, raw_body=bytes(body),
                         received_at=trio.current_time())
        self.requests.append(req)
        self._poke()
        return req

    async def _send_plain_error(self, stream: trio.SocketStream, h: h11.Connection, status: int, msg: str) -> None:
        if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            data = json.dumps(error_body(status, msg)).encode()
            await stream.send_all(h.send(h11.Response(status_code=status, headers=[
                ("content-type", "application/json"), ("content-length", str(len(data))), ("connection", "close")])))
            await stream.send_all(h.send(h11.Data(data=data)) + h.send(h11.EndOfMessage()))

    # ------------------------------------------------------------ one request
    async def _respond(self, stream: trio.SocketStream, h: h11.Connection, req: EmuRequest) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        out = _Writer(stream, h, req, self)
        problem = self._check(req)
        if problem is not None:
            await out.error_response(*problem)
            req.outcome = "error"
            return True
        req.fault = self.faults.next()
        body = req.body or {}
        system = body.get("system")
        text = self.responder(body["messages"], text_of(system))
        if inspect.isawaitable(text):
            text = await text
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, stream, h, req, nursery.cancel_scope)
            try:
                play = self._play if body.get("stream") is True else self._play_whole
                keep = await play(out, req, str(text))
            except _ClientGone:
                keep = False
            nursery.cancel_scope.cancel()
        if req.disconnected_at is not None:
            if req.outcome is None:
                req.outcome = "client_closed"
            return False
        return keep

    def _check(self, req: EmuRequest) -> tuple[int, str] | None:
        if req.path.split("?")[0].rstrip("/") != "/v1/messages":
            return 404, f"Not found: {req.path}"
        if req.method != "POST":
            return 405, f"Method {req.method} not allowed"
        bearer = req.headers.get("authorization", "")
        key = req.headers.get("x-api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
        if not key:
            return 401, "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return 401, "invalid x-api-key"
        try:
            body = json.loads(req.raw_body)
        except ValueError:
            return 400, "The request body is not valid JSON."
        if not isinstance(body, dict):
            return 400, "The request body must be a JSON object."
        req.body = body
        if not isinstance(body.get("model"), str) or not body["model"]:
            return 400, "model: Field required"
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            return 400, "max_tokens: must be a positive integer"
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return 400, "messages: at least one message is required"
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") \
                    or not isinstance(m.get("content"), (str, list)):
                return 400, f"messages.{i}: expected {{role: user|assistant, content}}"
        if "system" in body and not isinstance(body["system"], (str, list)):
            return 400, "system: expected a string or a list of text blocks"
        return None

    async def _watch_disconnect(self, stream: trio.SocketStream, h: h11.Connection, req: EmuRequest,
                                scope: trio.CancelScope) -> None:
        """Notice the client dropping the connection while we are still answering (cancellation)."""
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                h.receive_data(data)  # a pipelined next request: h11 keeps it for the next cycle
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        req.disconnected_at = trio.current_time()
        if req.outcome is None:
            req.outcome = "client_closed"
        self._poke()
        scope.cancel()

    def _usage(self, body: dict, output_tokens: int) -> dict[str, int]:
        system = body.get("system")
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
        msgs_tokens = sum(approx_tokens(text_of(m.get("content"))) for m in body["messages"])
        sys_tokens = sum(approx_tokens(text_of([b])) for b in blocks)
        last_cached = max((i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")),
                          default=-1)
        prefix = blocks[:last_cached + 1]
        prefix_tokens = sum(approx_tokens(text_of([b])) for b in prefix)
        created = read = 0
        if prefix and prefix_tokens >= self.cache_min_tokens:
            key = json.dumps([body.get("model"), prefix], sort_keys=True)
            if key in self._cache:
                read = prefix_tokens
            else:
                self._cache.add(key)
                created = prefix_tokens
        return {"input_tokens": sys_tokens + msgs_tokens - created - read, "output_tokens": output_tokens,
                "cache_creation_input_tokens": created, "cache_read_input_tokens": read}

    async def _play(self, out: "_Writer", req: EmuRequest, text: str) -> bool:
        """The response timeline, with the request's fault cut in at its time. False: close after."""
        body = req.body or {}
        fault = req.fault
        t0 = req.received_at
        rng = self._rng
        fault_at = t0 + fault.after_s if fault is not None and fault.kind != "drip" else math.inf
        drip_from = t0 + fault.after_s if fault is not None and fault.kind == "drip" else math.inf

        tokens = _TOKEN.findall(text)
        stop_reason = "end_turn"
        if len(tokens) > body["max_tokens"]:
            tokens, stop_reason = tokens[:body["max_tokens"]], "max_tokens"
        usage = self._usage(body, len(tokens))
        msg_id = f"msg_emu_{req.index:06d}"
        start_usage = {**usage, "output_tokens": 1}

        # (time, what) steps; "head" sends the status line and the message preamble
        t_head = t0 + self.profile.network_s
        first = max(t_head, t0 + self.profile.first(rng))
        steps: list[tuple[float, str, str]] = [(t_head, "head", "")]
        prev = t_head
        for i, tok in enumerate(tokens):
            t = first if i == 0 else prev + self.profile.gap(rng)
            if t >= drip_from:
                t = prev + fault.drip_s  # type: ignore[union-attr]
            steps.append((t, "delta", tok))
            prev = t
        steps.append((prev, "end", ""))

        for t, kind, tok in steps:
            if fault_at <= t:
                await trio.sleep_until(fault_at)
                return await self._fault(out, req, fault)  # type: ignore[arg-type]
            await trio.sleep_until(t)
            if kind == "head":
                await out.head()
                await out.event("message_start", {"type": "message_start", "message": {
                    "id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
                await out.event("content_block_start", {"type": "content_block_start", "index": 0,
                                                        "content_block": {"type": "text", "text": ""}})
                await out.event("ping", {"type": "ping"})
            elif kind == "delta":
                if req.first_token_at is None:
                    req.first_token_at = trio.current_time()
                req.text += tok
                await out.event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta", "text": tok}})
            else:
                await out.event("content_block_stop", {"type": "content_block_stop", "index": 0})
                req.usage = usage
                await out.event("message_delta", {"type": "message_delta",
                                                  "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                                  "usage": usage})
                await out.event("message_stop", {"type": "message_stop"})
                await out.end()
                req.outcome = "complete"
        return True

    async def _play_whole(self, out: "_Writer", req: EmuRequest, text: str) -> bool:
        """A non-streaming request: one Message JSON once the whole reply is generated."""
        body = req.body or {}
        fault = req.fault
        rng = self._rng
        tokens = _TOKEN.findall(text)
        stop_reason = "end_turn"
        if len(tokens) > body["max_tokens"]:
            tokens, stop_reason = tokens[:body["max_tokens"]], "max_tokens"
        done = req.received_at + self.profile.first(rng) + sum(self.profile.gap(rng) for _ in tokens[1:])
        if fault is not None and fault.kind == "drip":
            done += fault.drip_s * len(tokens)
        elif fault is not None and req.received_at + fault.after_s <= done:
            await trio.sleep_until(req.received_at + fault.after_s)
            return await self._fault(out, req, fault)
        await trio.sleep_until(done)
        req.text = "".join(tokens)
        req.usage = self._usage(body, len(tokens))
        message = {"id": f"msg_emu_{req.index:06d}", "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": req.text}], "stop_reason": stop_reason,
                   "stop_sequence": None, "usage": req.usage}
        await out.json(200, message)
        req.outcome = "complete"
        return True

    async def _fault(self, out: "_Writer", req: EmuRequest, fault: Fault) -> bool:
        if fault.kind == "error":
            req.outcome = "error"
            if not out.head_sent:
                await out.error_response(fault.status, fault.message)
                return True
            kind = ERROR_TYPES.get(fault.status, "api_error")
            req.error_type = kind
            await out.event("error", {"type": "error", "error": {"type": kind, "message": fault.message}})
            await out.end()
            return True
        if fault.kind == "hang":
            req.outcome = "hang"
            self._poke()
            await trio.sleep_forever()  # until the client gives up and closes
        if fault.kind == "close":
            req.outcome = "close"
            return False
        # malformed: an event whose JSON is cut short, as a broken proxy or a truncated write would give
        req.outcome = "malformed"
        if (req.body or {}).get("stream") is not True:
            await out.json(200, None, raw=b'{"id":"msg_emu","type":"mess')
            return True
        if not out.head_sent:
            await out.head()
        await out.raw(b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n',
                      "content_block_delta")
        await out.end()
        return True


class _Writer:
    """Sends one response through h11, recording what went out."""

    def __init__(self, stream: trio.SocketStream, h: h11.Connection, req: EmuRequest,
                 emu: AnthropicEmulator) -> None:
        self.stream, self.h, self.req, self.emu = stream, h, req, emu
        self.head_sent = False

    async def _send(self, event: Any) -> None:
        data = self.h.send(event)
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self.req.disconnected_at is None:
                    self.req.disconnected_at = trio.current_time()
                raise _ClientGone from None

    async def head(self) -> None:
        self.req.status = 200
        self.head_sent = True
        await self._send(h11.Response(status_code=200, headers=[
            ("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
            ("request-id", f"req_emu_{self.req.index:06d}")]))
        self.emu._poke()

    async def raw(self, data: bytes, name: str) -> None:
        self.req.events.append((trio.current_time(), name))
        await self._send(h11.Data(data=data))
        self.emu._poke()

    async def event(self, name: str, data: dict) -> None:
        await self.raw(sse(name, data), name)

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())
        self.req.finished_at = trio.current_time()

    async def json(self, status: int, body: dict | None, raw: bytes | None = None,
                   extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        data = raw if raw is not None else json.dumps(body).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data))),
                   ("request-id", f"req_emu_{self.req.index:06d}"), *extra]
        self.req.status = status
        self.head_sent = True
        await self._send(h11.Response(status_code=status, headers=headers))
        await self._send(h11.Data(data=data))
        await self.end()

    async def error_response(self, status: int, message: str | None) -> None:
        body = error_body(status, message, f"req_emu_{self.req.index:06d}")
        self.req.error_type = body["error"]["type"]
        await self.json(status, body, extra=[("retry-after", "1")] if status == 429 else [])


@asynccontextmanager
async def anthropic_emulator(*, host: str = "127.0.0.1", port: int = 0,
                             **options: Any) -> AsyncIterator[AnthropicEmulator]:
    """Serve the emulator in the current trio run for the duration of the block.
    Options: see AnthropicEmulator (profile, faults, responder, api_key, cache_min_tokens, max_body)."""
    emu = AnthropicEmulator(**options)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, emu.handle, port, host=host))
        emu.host, emu.port = host, listeners[0].socket.getsockname()[1]
        try:
            yield emu
        finally:
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    """Run the emulator as a separate process: python -m offhook.sim.emulators.anthropic --port 8766"""
    p = emulator_args(main.__doc__, first_ms=300.0, gap_ms=15.0, first_help="first-token latency",
                      gap_help="gap between text deltas")
    p.add_argument("--api-key", default=os.environ.get("ANTHROPIC_API_KEY") or None,
                   help="accept only this key (default: $ANTHROPIC_API_KEY, or any key)")
    p.add_argument("--receptionist", metavar="PROFILE_TOML", nargs="?", const="",
                   help="answer as the scripted receptionist (of this business profile; default: the sample)")
    args = p.parse_args(argv)
    profile = profile_of(args)
    responder: Responder = echo_responder
    if args.receptionist is not None:
        from offhook.providers.profile import load_profile, sample_profile
        from offhook.providers.receptionist import ScriptedReceptionist
        brain = ScriptedReceptionist(load_profile(args.receptionist) if args.receptionist else sample_profile())
        responder = lambda messages, system: brain.reply(messages)  # noqa: E731

    return serve_until_interrupted(
        lambda: anthropic_emulator(host=args.host, port=args.port, profile=profile, api_key=args.api_key,
                                   responder=responder),
        lambda emu: f"Anthropic emulator on {emu.base_url} (set ANTHROPIC_BASE_URL={emu.base_url})")


if __name__ == "__main__":
    raise SystemExit(main())
