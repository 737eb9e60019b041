"""Small pieces every network provider client needs: the API key from the argument or the
environment, held so that it never shows, opening the provider's WebSocket, fresh copies of stored
failures, unwrapping a nursery's single-exception group, close-frame text."""
from __future__ import annotations

import os
from typing import AsyncContextManager, Protocol, TypeVar

import trio_websocket

E = TypeVar("E", bound=BaseException)


class Secret:
    """Holds an API key so that repr()/vars()/tracebacks with locals show nothing of it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


def api_key_of(given: str | None, env: str, error: type[Exception], service: str, kind: str) -> Secret:
    """The key passed in, else $env; `error` (the provider's config error) when neither has one."""
    key = given if given is not None else os.environ.get(env, "")
    if not key.strip():
        raise error(f"{service} needs an API key: set {env} (or choose another {kind} provider)")
    return Secret(key.strip())


class WsSettings(Protocol):
    connect_timeout: float
    close_timeout: float

    def _headers(self) -> list[tuple[bytes, bytes]]: ...


def open_ws(url: str, p: WsSettings) -> AsyncContextManager[trio_websocket.WebSocketConnection]:
    """The provider's WebSocket: its auth headers, its connect and close-handshake timeouts."""
    return trio_websocket.open_websocket_url(url, extra_headers=p._headers(), connect_timeout=p.connect_timeout,
                                             disconnect_timeout=p.close_timeout)


def again(err: E) -> E:
    """A fresh exception for each raise of a stored failure (re-raising one instance piles up
    tracebacks), chained to the original."""
    fresh = type(err)(*err.args)
    fresh.__cause__ = err
    return fresh


def reraise_single(group: BaseExceptionGroup) -> None:
    """Raise the only exception of a nursery's group unwrapped, as any other context manager
    would (our background tasks never raise, so the group only wraps the caller's own error)."""
    if len(group.exceptions) != 1:
        raise group
    exc = group.exceptions[0]
    context = exc.__context__  # keep the caller's own context, not our group
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def host_of(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0].split("?", 1)[0]


def close_text(reason: trio_websocket.CloseReason | None) -> str:
    if reason is None:
        return "no close frame"
    return f"{reason.code} {reason.name}" + (f": {reason.reason}" if reason.reason else "")
