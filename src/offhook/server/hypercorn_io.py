"""hypercorn's socket I/O on the per-frame path made cheaper (hypercorn 0.17-0.18).

Writes: without a scheduler round trip when the socket takes them at once (plain TCP).

Every message hypercorn sends goes through `TCPServer.protocol_send`: `async with send_lock`, then a
shielded `send_all`. Taking a free trio Lock yields, and `send_all` yields again after writing, so
each outbound media frame cost two task switches and reached the socket one scheduler batch after
the pacer sent it: under load that batch is milliseconds, the frame's lateness. While the lock is
free nobody is mid-write, so the frame can go to the kernel straight away (socket_write.py); what
the kernel does not take goes out under the lock as before, before anything else can be sent.
TLS streams (hypercorn terminating TLS itself) keep the original path.

Text messages from synchronous code (`text_sender`): the playback ticker writes every paced call's
frame in its own task step, so a frame does not wait for the pacer's task to be scheduled (a batch
of hundreds of reader tasks under load). Same rule: only while the lock is free, and what the
kernel does not take is finished under the lock by the pacer's task: hypercorn's lock is replaced
by one that a task other than the one that took it may release (a trio.Lock may not be).

Reads: hypercorn wraps every `receive_some` in `trio.fail_after(read_timeout or inf)`, a generator
context manager and a cancel scope per inbound frame (~6% of a loaded server's CPU) that, with no
read_timeout configured (offhook sets none: idle calls are ended by its own dead-line watch), can
never fire. Without a read_timeout the loop reads bare; with one it is hypercorn's own loop.
"""
from __future__ import annotations

from functools import partial

import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server
from wsproto.connection import ConnectionState
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from offhook.server.hypercorn_ws import patchable
from offhook.socket_write import plain_socket, try_write, write_rest
from offhook.twilio.pacer import SendNow
from offhook.ws_frames import plain_frames, server_text_frame

_original = tcp_server.TCPServer.protocol_send
_original_read = tcp_server.TCPServer._read_data
_original_init = tcp_server.TCPServer.__init__


class HandOverLock:
    """A lock that any task may release: a message the ticker's task half wrote is finished, and the
    lock released, by the pacer's task. (trio's own classes cannot be subclassed.)"""

    def __init__(self) -> None:
        self._sem = trio.Semaphore(1, max_value=1)

    def locked(self) -> bool:
        return self._sem.value == 0

    def acquire_nowait(self) -> None:
        self._sem.acquire_nowait()

    async def acquire(self) -> None:
        await self._sem.acquire()

    def release(self) -> None:
        self._sem.release()

    async def __aenter__(self) -> None:
        await self._sem.acquire()

    async def __aexit__(self, *exc) -> None:
        self._sem.release()


def __init__(self, *args, **kwargs) -> None:
    _original_init(self, *args, **kwargs)
    self.send_lock = HandOverLock()


async def protocol_send(self, event) -> None:
    sock = plain_socket(self.stream) if isinstance(event, RawData) else None
    if sock is None or self.send_lock.locked():  # another write under way: hypercorn's own path
        return await _original(self, event)
    left = try_write(sock, self.send_lock, memoryview(event.data))
    if left is not None:
        await _finish(self, left)


async def _finish(server: tcp_server.TCPServer, left: tuple[memoryview, bool]) -> None:
    with trio.CancelScope(shield=True):
        written = await write_rest(server.stream, server.send_lock, *left)
    if not written:
        await server.protocol.handle(Closed())


def text_sender(asgi_send) -> SendNow | None:
    """For the ASGI `send` of a hypercorn WebSocket on plain TCP, a function that sends one text
    message without yielding: True when the kernel took all of it; False when it sent nothing (another
    write under way, the socket not open: use `asgi_send`, which also reports errors); otherwise the
    message is partly written and the returned coroutine function must be awaited, before anything
    else is sent, to write the rest. None when `asgi_send` is not such a socket (TLS, other versions)."""
    ws = getattr(asgi_send, "__self__", None)
    h11 = getattr(getattr(ws, "send", None), "__self__", None)
    server = getattr(getattr(h11, "send", None), "__self__", None)
    if (not isinstance(ws, ws_stream.WSStream) or not isinstance(server, tcp_server.TCPServer)
            or tcp_server.TCPServer.protocol_send is not protocol_send):
        return None
    sock = plain_socket(server.stream)
    if sock is None:
        return None
    lock = server.send_lock
    conn = ws.connection
    own = plain_frames(conn)

    def send_now(text: str):
        if ws.closed or ws.state != ws_stream.ASGIWebsocketState.CONNECTED or lock.locked():
            return False
        if own and conn.state is ConnectionState.OPEN:  # (hypercorn sends whole messages only)
            data = server_text_frame(text)
        else:
            try:
                data = conn.send(TextMessage(data=text))
            except LocalProtocolError:
                return False
        left = try_write(sock, lock, memoryview(data))
        return True if left is None else partial(_finish, server, left)

    return send_now


async def _read_data(self) -> None:
    if self.config.read_timeout:
        return await _original_read(self)
    while True:
        try:
            data = await self.stream.receive_some(tcp_server.MAX_RECV)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            break
        await self.protocol.handle(RawData(bytes(data)))
        if data == b"":
            break
    await self.protocol.handle(Closed())


def install() -> bool:
    """Idempotent; other hypercorn versions keep their own protocol_send and _read_data."""
    if not patchable("socket I/O (each write goes through the scheduler)"):
        return False
    tcp_server.TCPServer.__init__ = __init__
    tcp_server.TCPServer.protocol_send = protocol_send
    tcp_server.TCPServer._read_data = _read_data
    return True
