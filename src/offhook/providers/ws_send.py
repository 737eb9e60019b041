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
This reads three attributes of trio-websocket's WebSocketConnection (`_stream`, `_stream_lock`,
`_wsproto`); `direct_sender` checks they are there, so a release that renames them only loses the
shortcut. The frame itself is built by wsproto, as trio-websocket builds it.
"""
from __future__ import annotations

from dataclasses import dataclass

import trio
import trio_websocket
from wsproto.events import BytesMessage


@dataclass(slots=True)
class Rest:
    """What the socket did not take at once; `DirectSender.finish` writes it."""
    data: memoryview
    locked: bool  # the connection's send lock is already ours


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
        frame = memoryview(ws._wsproto.send(BytesMessage(data=message)))
        if self._lock.locked():  # another writer is mid-frame: queue behind it
            return Rest(frame, locked=False)
        try:
            n = self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = 0  # a dead socket: the regular path below reports it as trio-websocket does
        if n == len(frame):
            return None
        self._lock.acquire_nowait()  # no yield since the write: nobody can have taken it
        return Rest(frame[n:], locked=True)

    async def finish(self, rest: Rest) -> None:
        """Write the rest of a frame (run it shielded: half a frame corrupts the stream)."""
        if not rest.locked:
            await self._lock.acquire()
        try:
            await self._ws._stream.send_all(rest.data)
            broken = False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            broken = True
        finally:
            self._lock.release()
        if broken:
            await self._ws._abort_web_socket()
            raise trio_websocket.ConnectionClosed(self._ws._close_reason) from None


def direct_sender(ws: trio_websocket.WebSocketConnection) -> DirectSender | None:
    """A DirectSender for a plain-TCP connection, or None (TLS, or an unknown trio-websocket)."""
    stream = getattr(ws, "_stream", None)
    if not isinstance(stream, trio.SocketStream):
        return None
    if not all(hasattr(ws, a) for a in ("_stream_lock", "_wsproto", "_close_reason", "_abort_web_socket")):
        return None
    sock = getattr(stream.socket, "_sock", None)
    if sock is None:
        return None
    return DirectSender(ws, sock)
