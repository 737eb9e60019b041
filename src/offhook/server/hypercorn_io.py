"""hypercorn's socket I/O on the per-frame path made cheaper (hypercorn 0.17-0.18).

Writes: without a scheduler round trip when the socket takes them at once (plain TCP).

Every message hypercorn sends goes through `TCPServer.protocol_send`: `async with send_lock`, then a
shielded `send_all`. Taking a free trio Lock yields, and `send_all` yields again after writing, so
each outbound media frame cost two task switches and reached the socket one scheduler batch after
the pacer sent it: under load that batch is milliseconds, the frame's lateness. While the lock is
free nobody is mid-write, so the frame can go to the kernel straight away (socket_write.py); what
the kernel does not take goes out under the lock as before, before anything else can be sent.
TLS streams (hypercorn terminating TLS itself) keep the original path.

Reads: hypercorn wraps every `receive_some` in `trio.fail_after(read_timeout or inf)`, a generator
context manager and a cancel scope per inbound frame (~6% of a loaded server's CPU) that, with no
read_timeout configured (offhook sets none: idle calls are ended by its own dead-line watch), can
never fire. Without a read_timeout the loop reads bare; with one it is hypercorn's own loop.
"""
from __future__ import annotations

import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio import tcp_server

from offhook.server.hypercorn_ws import patchable
from offhook.socket_write import plain_socket, try_write, write_rest

_original = tcp_server.TCPServer.protocol_send
_original_read = tcp_server.TCPServer._read_data


async def protocol_send(self, event) -> None:
    sock = plain_socket(self.stream) if isinstance(event, RawData) else None
    if sock is None or self.send_lock.locked():  # another write under way: hypercorn's own path
        return await _original(self, event)
    left = try_write(sock, self.send_lock, memoryview(event.data))
    if left is None:
        return
    with trio.CancelScope(shield=True):
        written = await write_rest(self.stream, self.send_lock, *left)
    if not written:
        await self.protocol.handle(Closed())


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
    tcp_server.TCPServer.protocol_send = protocol_send
    tcp_server.TCPServer._read_data = _read_data
    return True
