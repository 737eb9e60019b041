"""Sans-IO helpers the providers' protocol modules share: JSON objects in and out, typed messages
checked against the vendor SDK's pydantic models, WebSocket base URLs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import msgspec
import pydantic

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


def dump_model(model: pydantic.BaseModel) -> str:
    return dump(model.model_dump(exclude_none=True, mode="json"))


def typed_object(raw: str | bytes) -> tuple[dict[str, Any], str]:
    """A JSON object and its "type", or ProtocolError."""
    msg = load_object(raw)
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f"message without a type: {preview(raw)}")
    return msg, kind


def validated(models: Mapping[str, type[pydantic.BaseModel]], kind: str,
              msg: dict[str, Any]) -> pydantic.BaseModel | None:
    """msg as the SDK model for its type; None for a type not in `models`; ProtocolError if it does not fit."""
    model = models.get(kind)
    if model is None:
        return None
    try:
        return model.model_validate(msg)
    except pydantic.ValidationError as exc:
        raise ProtocolError(f"bad {kind} message: {exc.error_count()} field error(s): "
                            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from None


@dataclass(frozen=True, slots=True)
class Other:
    """A well-formed message of a type offhook does not use."""
    type: str


def ws_base_url(base_url: str, vendor: str) -> str:
    """http(s)://host[:port][/prefix] -> ws(s)://host[:port][/prefix] (ws/wss pass through)."""
    parts = urlsplit(base_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"{vendor} base URL must be http(s):// or ws(s)://host, got {base_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
