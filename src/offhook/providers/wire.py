"""Sans-IO helpers the providers' protocol modules share: JSON objects in and out, WebSocket base URLs."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ProtocolError(ValueError):
    """A message that does not follow the protocol (bad JSON, wrong fields or types)."""


def dump(msg: Any) -> str:
    return _encode(msg).decode()


def preview(raw: str | bytes, n: int = 80) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    return repr(text[:n] + ("…" if len(text) > n else ""))


def load_object(raw: str | bytes) -> dict[str, Any]:
    """A JSON object, or ProtocolError."""
    try:
        data = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {preview(raw)}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"not a JSON object: {preview(raw)}")
    return data


def ws_base_url(base_url: str, vendor: str) -> str:
    """http(s)://host[:port][/prefix] -> ws(s)://host[:port][/prefix] (ws/wss pass through)."""
    parts = urlsplit(base_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"{vendor} base URL must be http(s):// or ws(s)://host, got {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
