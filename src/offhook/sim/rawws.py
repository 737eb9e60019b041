"""A minimal WebSocket client, sans-IO, for the load generator.

The load generator has to cost far less per frame than the server it measures, so it cannot afford a
full client library (or a framework task wake-up) per message. This speaks just what a Twilio media
stream needs from the client side: the opening handshake, masked text frames out, unfragmented text
frames in, ping -> pong, close. Anything else from the server is a `WSError`.
"""
from __future__ import annotations

import base64
import hashlib
import os
import struct

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WSError(Exception):
    pass


def handshake_request(host: str, path: str, headers: list[tuple[str, str]] = ()) -> tuple[bytes, bytes]:
    """(request bytes, expected Sec-WebSocket-Accept value)."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
             *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), accept


def check_handshake_response(head: bytes, accept: bytes) -> None:
    status, *rest = head.split(b"\r\n")
    parts = status.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"101":
        raise WSError(f"handshake refused: {status.decode('latin-1', 'replace')[:80]}")
    fields = {}
    for line in rest:
        k, _, v = line.partition(b":")
        fields[k.strip().lower()] = v.strip()
    if fields.get(b"sec-websocket-accept") != accept:
        raise WSError("handshake: wrong Sec-WebSocket-Accept")


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455: every client frame is masked with a fresh key)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def text_frame(text: str) -> bytes:
    return frame(0x1, text.encode())


def close_frame(code: int = 1000) -> bytes:
    return frame(0x8, struct.pack("!H", code))


class FrameReader:
    """Feed bytes from the server; `messages()` yields ("text", str) | ("close", code) and answers pings
    through `to_send` (bytes the caller must write)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.to_send: list[bytes] = []
        self.closed = False

    def feed(self, data: bytes) -> list[tuple[str, object]]:
        self._buf += data
        out: list[tuple[str, object]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n = struct.unpack_from("!H", buf, pos + 2)[0]
                hl = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                hl = 10
            if b1 & 0x80:
                raise WSError("server frames must not be masked")
            if len(buf) - pos < hl + n:
                break
            payload = bytes(buf[pos + hl : pos + hl + n])
            pos += hl + n
            op = b0 & 0x0F
            if not b0 & 0x80 or op == 0x0:
                raise WSError("fragmented messages are not expected on a media stream")
            if op == 0x1:
                out.append(("text", payload.decode()))
            elif op == 0x9:
                self.to_send.append(frame(0xA, payload))
            elif op == 0x8:
                self.closed = True
                out.append(("close", struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005))
            elif op != 0xA:
                raise WSError(f"unexpected opcode {op}")
        del buf[:pos]
        return out
