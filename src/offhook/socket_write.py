"""Writing to a trio socket stream without a trip through the scheduler when the kernel takes the
data at once.

trio's `SocketStream.send_all` always yields to the scheduler after a successful write, and the
locks around it yield when taken (uncontended too). For the per-frame messages of a call (Twilio
media out, STT audio out) that was a task switch or two per 20 ms frame per call, and a frame
written one scheduler batch later than it could have been. Callers use this only while nobody else
can be writing to the stream (their send lock is free; nothing here yields), and give what was not
taken to the regular, locked path.
"""
from __future__ import annotations

import socket

import trio


def plain_socket(stream) -> socket.socket | None:
    """The OS socket under a plain trio SocketStream; None for TLS and other streams."""
    if not isinstance(stream, trio.SocketStream):
        return None
    return getattr(stream.socket, "_sock", None)


def write_now(sock: socket.socket, data) -> int:
    """Bytes of data the kernel took without waiting; 0 when it took none or the socket is dead (the
    regular path then reports the error as usual)."""
    try:
        return sock.send(data)
    except OSError:  # BlockingIOError, InterruptedError, or a reset/closed socket
        return 0


def try_write(sock: socket.socket, lock,
              data: memoryview) -> tuple[memoryview, bool] | None:
    """Write data now if no other writer holds `lock` (the stream's writers' lock). None when the
    kernel took all of it; else (what is left, whether `lock` is now ours) for `write_rest`, which
    must come before anything else is written. Nothing here yields, so the check and the write
    cannot be split by another writer."""
    if lock.locked():  # another writer is mid-write: queue behind it
        return data, False
    n = write_now(sock, data)
    if n == len(data):
        return None
    lock.acquire_nowait()
    return data[n:], True


async def write_rest(stream: trio.SocketStream, lock, data: memoryview,
                     locked: bool) -> bool:
    """Write what try_write left, under the lock (taken here unless already ours). False when the
    stream is broken or closed. Callers shield it: half a message corrupts the stream."""
    if not locked:
        await lock.acquire()
    try:
        await stream.send_all(data)
        return True
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    finally:
        lock.release()
