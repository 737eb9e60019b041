"""A fix for hypercorn's handling of over-size WebSocket messages (hypercorn 0.17-0.18).

When a message exceeds `websocket_max_message_size`, hypercorn sends close 1009 and then `break`s out
of the loop over wsproto's pending events. The peer's close reply usually arrives in the same read as
the tail of the huge message, so it is among the events thrown away: the application is never told
the socket closed, hypercorn never closes the TCP connection, and the call hangs until the peer gives
up (trio-websocket waits 60 s). A caller could pin a server task this way with one big frame.

The replacement below keeps processing events after the refusal (dropping the rest of the refused
message), and tells the application at once with `websocket.disconnect` code 1009, so the call ends
with a recorded reason and the connection is closed when the application returns.

It also drops our close reply when it races hypercorn's own EOF at the end of a call (hypercorn sends
EOF outside its send lock, so the reply raised BusyResourceError and logged a traceback per call).
"""
from __future__ import annotations

import importlib.metadata
import logging

import trio

from hypercorn.protocol import ws_stream
from wsproto.events import CloseConnection, Message, Ping
from wsproto.connection import ConnectionState
from wsproto.frame_protocol import CloseReason

MESSAGE_TOO_BIG = CloseReason.MESSAGE_TOO_BIG.value
log = logging.getLogger("offhook.server")


async def _handle_events(self) -> None:
    for event in self.connection.events():
        if isinstance(event, Message):
            if getattr(self, "_offhook_refusing", False):  # tail of a message already refused
                self._offhook_refusing = not event.message_finished
                continue
            try:
                self.buffer.extend(event)
            except ws_stream.FrameTooLargeError:
                self.buffer.clear()
                self._offhook_refusing = not event.message_finished
                await self._send_wsproto_event(CloseConnection(code=MESSAGE_TOO_BIG))
                await self.app_put({"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG})
                continue
            if event.message_finished:
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                try:
                    await self._send_wsproto_event(event.response())
                except trio.BusyResourceError:
                    # hypercorn's _close() (app finished) sends EOF outside its send lock; when the
                    # peer's close crosses it, our close reply is moot: the socket is going away
                    pass
            await self.send(ws_stream.StreamClosed(stream_id=self.stream_id))


PATCHED_VERSIONS = ("0.17.", "0.18.")  # the versions whose WSStream internals this was written against


def patchable(what: str) -> bool:
    """Whether the installed hypercorn is one these patches were written against; if not, says which
    of them (`what`) is left out."""
    try:
        version = importlib.metadata.version("hypercorn")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    if version.startswith(PATCHED_VERSIONS):
        return True
    log.warning("hypercorn %s: %s not patched", version or "?", what)
    return False


def install() -> bool:
    """Idempotent; called when the server module is imported. Other hypercorn versions are left alone
    (tests/test_server_edge.py's megabyte test says whether they still need it)."""
    if not patchable("over-size WebSocket message handling"):
        return False
    ws_stream.WSStream._handle_events = _handle_events
    return True
