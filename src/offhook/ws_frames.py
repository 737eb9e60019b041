"""WebSocket data frames built here (RFC 6455 §5.2) for the per-frame messages of a call: one final
frame, no extension. wsproto's builder takes 2-4 µs a frame (a bytearray copy, an extension loop,
its opcode bookkeeping); these take well under 1 µs. Data frames change no protocol state, so the
connection's wsproto object stays right; callers use them only while it is OPEN, no fragmented
message of its own is half sent, and no extension (permessage-deflate) was negotiated."""
from __future__ import annotations

import os

TEXT = 0x81    # FIN + text opcode
BINARY = 0x82  # FIN + binary opcode
MASKED = 0x80


def _head(first: int, n: int, mask: int) -> bytes:
    if n < 126:
        return bytes((first, mask | n))
    if n < 1 << 16:
        return bytes((first, mask | 126)) + n.to_bytes(2, "big")
    return bytes((first, mask | 127)) + n.to_bytes(8, "big")


def client_frame(payload: bytes) -> bytes:
    """One masked, final binary frame carrying payload (a client's frames must be masked)."""
    n = len(payload)
    key = os.urandom(4)
    head = _head(BINARY, n, MASKED) + key
    if not n:
        return head
    mask = int.from_bytes((key * ((n + 3) // 4))[:n], "big")
    return head + (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


def server_text_frame(text: str) -> bytes:
    """One final text frame (a server's frames are not masked)."""
    data = text.encode()
    return _head(TEXT, len(data), 0) + data


def plain_frames(connection) -> bool:
    """Whether a wsproto Connection's frames can be built here: no extension enabled on it (a
    release that renames wsproto's internals only loses the shortcut)."""
    extensions = getattr(getattr(connection, "_proto", None), "extensions", None)
    return extensions is not None and not any(e.enabled() for e in extensions)
