"""Binary messages written straight to a trio-websocket client's socket when it can take them now.

The STT gets one 160-byte message per caller frame: 50 a second on every call, the costliest thing a
call does that a bare media server does not. trio-websocket's `send_message` takes its send lock and
goes through trio's `send_all`, which always yields to the scheduler after the write; with our
shielded per-send deadline that was ~24 µs of CPU a frame. When nobody else is writing and the
kernel takes the whole frame (the normal case: a 160-byte frame into an idle socket buffer), the
write itself is all that is needed (~6 µs). Otherwise the rest goes out the usual way, under the
connection's lock, so frames never interleave with the reader task's pongs or close frames.

Only plain-TCP connections (ws://, the local emulators, a TLS-terminating sidecar) have a socket to
write to; over TLS (wss://) `direct_sender` returns None and the caller keeps `send_message`.
This reads attributes of trio-websocket's WebSocketConnection (`_stream`, `_stream_lock`, `_wsproto`,
`_close_reason`); `direct_sender` checks they are there, so a release that renames them only loses
the shortcut. The frame is built by `ws_frames.client_frame` (one final binary frame, masked with a
fresh random key): wsproto's builder took 3.8 µs for a 160-byte frame, this 0.9 µs. Data
frames change no protocol state, and nothing is written once the connection is not OPEN.
"""
from __future__ import annotations

from dataclasses import dataclass

import trio
import trio_websocket
from wsproto.connection import ConnectionState

from offhook.socket_write import plain_socket, try_write, write_rest
from offhook.ws_frames import client_frame


@dataclass(slots=True)
class Rest:
    """What the socket did not take at once; `DirectSender.finish` writes it."""
    data: memoryview
    locked: bool  # the connection's send lock is already ours
    whole_message: bool = False  # not framed yet: the connection is closing, trio-websocket decides


class DirectSender:
    def __init__(self, ws: trio_websocket.WebSocketConnection, sock) -> None:
        self._ws = ws
        self._sock = sock
        self._lock: trio.StrictFIFOLock = ws._stream_lock

    def write_now(self, message: bytes) -> Rest | None:
        """Write one binary message without waiting: None if it is all written, else the Rest, which
        must be given to `finish` before anything else is sent. Raises ConnectionClosed."""
        ws = self._ws
        if ws._close_reason is not None:
            raise trio_websocket.ConnectionClosed(ws._close_reason)
        if ws._wsproto.state is not ConnectionState.OPEN:
            return Rest(memoryview(message), locked=False, whole_message=True)
        left = try_write(self._sock, self._lock, memoryview(client_frame(message)))
        return None if left is None else Rest(*left)

    async def finish(self, rest: Rest) -> None:
        """Write the rest of a frame (run it shielded: half a frame corrupts the stream)."""
        if rest.whole_message:
            await self._ws.send_message(bytes(rest.data))
            return
        if not await write_rest(self._ws._stream, self._lock, rest.data, rest.locked):
            await self._ws._abort_web_socket()
            raise trio_websocket.ConnectionClosed(self._ws._close_reason) from None


def direct_sender(ws: trio_websocket.WebSocketConnection) -> DirectSender | None:
    """A DirectSender for a plain-TCP connection, or None (TLS, or an unknown trio-websocket)."""
    sock = plain_socket(getattr(ws, "_stream", None))
    if sock is None:
        return None
    if not all(hasattr(ws, a) for a in ("_stream_lock", "_wsproto", "_close_reason", "_abort_web_socket")):
        return None
    return DirectSender(ws, sock)
