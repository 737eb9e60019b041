"""Claude as the agent's LLM: `anthropic.AsyncAnthropic` streaming, natively under trio.

    llm = ClaudeLLM(model="claude-haiku-5-5", max_tokens=300)          # key from ANTHROPIC_API_KEY
    async with llm.stream(messages, system=prompt) as s:
        async for text in s:
            ...
    s.usage  # LLMUsage: input/output/cache tokens, for cost
    await llm.aclose()

Why it looks like this (PROTOCOLS.md §2.1):
- `max_retries=0`: the SDK retries only before the body starts, with its own backoff, which would
  hide seconds from the agent's stall timer and failure count. The agent owns retry policy.
- Own deadlines: a stall after the headers surfaces from the SDK as a raw transport ReadTimeout only
  after the whole read timeout, so the first text delta must arrive within `first_token_timeout` of
  the request and each later event within `inter_token_timeout` of the previous text, or LLMTimeout.
  They are trio deadlines, so they read trio.current_time() and are exact under MockClock.
- Always `async with client.messages.stream(...)`: leaving it (error, cancellation, break) closes the
  HTTP response; a bare `create(stream=True)` that is abandoned keeps the connection open.
- The system prompt is one text block with `cache_control: ephemeral`, so every turn after the first
  reads the (long, per-business) prompt from the prompt cache: cheaper and a faster first token.
- The key also goes in `x-api-key`: the installed SDK sends only `Authorization: Bearer`, while
  `x-api-key` is the header every API version, proxy and gateway accepts.
- Every failure is one of base.py's typed LLM errors, so the agent can count failures towards handoff.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, AsyncIterator, Iterator, Sequence

import anthropic
import httpx2
import trio

from offhook.providers.base import (LLMBadRequest, LLMConnectionError, LLMError, LLMOverloaded, LLMRateLimited,
                                    LLMServerError, LLMTimeout, LLMUsage)
from offhook.providers.common import Secret

__all__ = ["ClaudeLLM", "ClaudeStream", "ClaudeConfigError", "DEFAULT_MODEL", "map_error"]

DEFAULT_MODEL = "claude-haiku-5-5"  # the fastest model family in the installed SDK's model list

_BY_TYPE: dict[str, type[LLMError]] = {
    "rate_limit_error": LLMRateLimited, "overloaded_error": LLMOverloaded, "api_error": LLMServerError,
    "invalid_request_error": LLMBadRequest, "authentication_error": LLMBadRequest,
    "permission_error": LLMBadRequest, "not_found_error": LLMBadRequest, "request_too_large": LLMBadRequest,
    "billing_error": LLMBadRequest, "timeout_error": LLMTimeout,
}


class ClaudeConfigError(LLMError, ValueError):
    """Missing key or a bad setting, found at construction."""
    kind = "config"
    retryable = False


def _status_error(status: int, kind: str | None) -> type[LLMError]:
    if kind in _BY_TYPE and (status == 200 or kind != "api_error" or status >= 500):
        # an `event: error` after a 200 carries only its type; otherwise the type refines the status
        return _BY_TYPE[kind]
    if status == 429:
        return LLMRateLimited
    if status == 529:
        return LLMOverloaded
    if status in (408, 504):
        return LLMTimeout
    if status >= 500:
        return LLMServerError
    if 400 <= status < 500:
        return LLMBadRequest
    return LLMServerError


def map_error(exc: BaseException) -> LLMError | None:
    """The typed LLM error for an SDK or transport exception (None: not a provider failure)."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        cls = _status_error(exc.status_code, exc.type)
        where = f"HTTP {exc.status_code}" if exc.status_code != 200 else "error event"
        msg = f"Anthropic {where} {exc.type or ''}: {exc.api_message or exc.message}".replace("  ", " ")
        return cls(f"{msg} (request-id {exc.request_id})" if exc.request_id else msg)
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMTimeout(f"Anthropic request timed out: {exc.__cause__ or exc}")
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMConnectionError(f"cannot reach Anthropic: {exc.__cause__ or exc}")
    if isinstance(exc, anthropic.APIResponseValidationError):
        return LLMServerError(f"Anthropic sent an unexpected response: {exc}")
    if isinstance(exc, httpx2.TimeoutException):  # mid-body: the SDK does not wrap these
        return LLMTimeout(f"Anthropic stream stalled: {type(exc).__name__}")
    if isinstance(exc, (httpx2.TransportError, httpx2.StreamError)):
        return LLMConnectionError(f"Anthropic stream broke: {type(exc).__name__}: {exc}")
    if isinstance(exc, json.JSONDecodeError):
        return LLMServerError(f"Anthropic sent a malformed event: {exc}")
    if isinstance(exc, anthropic.AnthropicError):
        return LLMError(f"Anthropic client error: {exc}")
    return None


@contextmanager
def _typed_errors(timeout_msg: str) -> Iterator[None]:
    try:
        yield
    except trio.TooSlowError:
        raise LLMTimeout(timeout_msg) from None
    except Exception as e:
        mapped = map_error(e)
        if mapped is None or mapped is e:
            raise
        raise mapped from e


class ClaudeLLM:
    """LLMProvider for Anthropic Claude (see the module docstring)."""

    name = "anthropic"

    def __init__(self, *, model: str = DEFAULT_MODEL, max_tokens: int = 300, temperature: float | None = None,
                 api_key: str | None = None, base_url: str | None = None,
                 effort: str | None = None, first_token_timeout: float | None = 8.0,
                 inter_token_timeout: float | None = 4.0, connect_timeout: float = 5.0,
                 request_timeout: float = 60.0) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        if not key.strip():
            raise ClaudeConfigError("Claude needs an API key: set ANTHROPIC_API_KEY (or pass api_key=)")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ClaudeConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if temperature is not None and not 0.0 <= temperature <= 1.0:
            raise ClaudeConfigError(f"temperature must be between 0 and 1, got {temperature!r}")
        for label, v in (("first_token_timeout", first_token_timeout), ("inter_token_timeout", inter_token_timeout)):
            if v is not None and not v > 0:
                raise ClaudeConfigError(f"{label} must be > 0 seconds (or None), got {v!r}")
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
            raise ClaudeConfigError(f"effort must be low, medium, high, xhigh or max, got {effort!r}")
        self.effort = effort  # output_config.effort: "low" answers soonest
        self.first_token_timeout = first_token_timeout
        self.inter_token_timeout = inter_token_timeout
        self._key = Secret(key.strip())
        # base_url None: the SDK reads ANTHROPIC_BASE_URL itself, else api.anthropic.com
        self._client = anthropic.AsyncAnthropic(
            api_key=self._key.value, base_url=base_url, max_retries=0,
            timeout=httpx2.Timeout(request_timeout, connect=connect_timeout),
            default_headers={"x-api-key": self._key.value})
        self.base_url = str(self._client.base_url)

    def __repr__(self) -> str:
        return f"ClaudeLLM(model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> "ClaudeLLM":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _request(self, messages: Sequence[dict], system: str, max_tokens: int | None) -> dict[str, Any]:
        req: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens or self.max_tokens,
                               "messages": list(messages)}
        if system:
            req["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        if self.temperature is not None:
            # not a parameter of the installed SDK's API version (2026-10-21 has no sampling
            # parameters), so it goes in extra_body; an API that refuses it answers 400 (LLMBadRequest)
            req["extra_body"] = {"temperature": self.temperature}
        if self.effort is not None:
            req["output_config"] = {"effort": self.effort}
        return req

    @asynccontextmanager
    async def stream(self, messages: Sequence[dict], *, system: str,
                     max_tokens: int | None = None) -> AsyncIterator["ClaudeStream"]:
        """Sends the request and waits for the response head (within first_token_timeout) on entry;
        typed LLMErrors from entry and from iteration; leaving the block closes the HTTP response."""
        started = trio.current_time()
        first_deadline = started + self.first_token_timeout if self.first_token_timeout else math.inf
        manager = self._client.messages.stream(**self._request(messages, system, max_tokens))
        async with AsyncExitStack() as stack:
            with _typed_errors(f"no response from Claude within {self.first_token_timeout} s"):
                with trio.fail_at(first_deadline):
                    sdk_stream = await stack.enter_async_context(manager)
            yield ClaudeStream(sdk_stream, started=started, first_deadline=first_deadline,
                               inter_token_timeout=self.inter_token_timeout)


class ClaudeStream:
    """One reply (LLMStream): iterate for text deltas; usage, stop_reason and timings as they arrive."""

    def __init__(self, sdk_stream: Any, *, started: float, first_deadline: float,
                 inter_token_timeout: float | None) -> None:
        self._events = sdk_stream.__aiter__()
        self.usage = LLMUsage()
        self.request_id: str | None = sdk_stream.request_id
        self.stop_reason: str | None = None
        self.started_at = started
        self.first_token_at: float | None = None
        self._first_deadline = first_deadline
        self._gap = inter_token_timeout if inter_token_timeout else math.inf
        self._last_token_at: float | None = None
        self._stopped = False

    @property
    def first_token_latency(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    def __aiter__(self) -> "ClaudeStream":
        return self

    def _deadline(self) -> tuple[float, str]:
        if self._last_token_at is None:
            wait = self._first_deadline - self.started_at
            return self._first_deadline, f"no first token from Claude within {wait:g} s"
        return self._last_token_at + self._gap, f"Claude stream stalled for {self._gap:g} s"

    async def __anext__(self) -> str:
        while True:
            deadline, why = self._deadline()
            with _typed_errors(why):
                with trio.fail_at(deadline):
                    try:
                        ev = await self._events.__anext__()
                    except StopAsyncIteration:
                        # read to the end after message_stop, so the connection goes back to the pool
                        if self._stopped:
                            raise
                        raise LLMConnectionError("Claude stream ended before message_stop") from None
            text = self._take(ev)
            if text:
                now = trio.current_time()
                if self.first_token_at is None:
                    self.first_token_at = now
                self._last_token_at = now
                return text

    def _take(self, ev: Any) -> str | None:
        kind = getattr(ev, "type", None)
        if kind == "content_block_delta":
            delta = ev.delta
            return delta.text if getattr(delta, "type", None) == "text_delta" else None
        if kind == "message_start":
            self._add_usage(ev.message.usage)
        elif kind == "message_delta":
            self._add_usage(ev.usage)
            self.stop_reason = ev.delta.stop_reason or self.stop_reason
        elif kind == "message_stop":
            self._stopped = True
        return None

    def _add_usage(self, u: Any) -> None:
        # message_delta counts are cumulative; fields it leaves out (None) keep message_start's value
        for ours, theirs in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
                             ("cache_read_tokens", "cache_read_input_tokens"),
                             ("cache_write_tokens", "cache_creation_input_tokens")):
            v = getattr(u, theirs, None)
            if v is not None:
                setattr(self.usage, ours, v)
