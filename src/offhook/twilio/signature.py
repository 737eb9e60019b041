"""X-Twilio-Signature checks for webhooks and the media WebSocket upgrade.

Twilio signs the URL it called — the public one, not our bind address — so the URL is rebuilt from
the configured public base, or, when none is configured, from X-Forwarded-Proto/Host set by the
TLS proxy in front of us, falling back to the Host header.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator


def _header(headers: dict[str, str], name: str) -> str | None:
    v = headers.get(name)
    return v.split(",")[0].strip() if v else None


def public_url(path_qs: str, headers: dict[str, str], public_base: str | None, scheme: str,
               websocket: bool = False) -> str:
    """The URL Twilio used for this request. headers: lower-cased names."""
    prefix = ""
    if public_base:
        base = urlsplit(public_base)
        proto, host = base.scheme, base.netloc
        # served under a path (https://host/offhook) by a proxy that strips it before us
        prefix = base.path.rstrip("/")
        if prefix and (path_qs == prefix or path_qs.startswith(prefix + "/")):
            prefix = ""
    else:
        proto = _header(headers, "x-forwarded-proto") or scheme
        host = _header(headers, "x-forwarded-host") or headers.get("host", "")
    if websocket:
        proto = {"https": "wss", "http": "ws"}.get(proto, proto)
    elif proto in ("wss", "ws"):
        proto = "https" if proto == "wss" else "http"
    return f"{proto}://{host}{prefix}{path_qs}"


class SignatureChecker:
    def __init__(self, auth_token: str, public_base: str | None):
        self._validator = RequestValidator(auth_token)
        self.public_base = public_base.rstrip("/") if public_base else None

    def check_http(self, path_qs: str, headers: dict[str, str], params: dict[str, str], scheme: str) -> bool:
        sig = headers.get("x-twilio-signature")
        if not sig:
            return False
        url = public_url(path_qs, headers, self.public_base, scheme)
        return bool(self._validator.validate(url, params, sig))

    def check_ws(self, path_qs: str, headers: dict[str, str], scheme: str) -> bool:
        sig = headers.get("x-twilio-signature")
        if not sig:
            return False
        url = public_url(path_qs, headers, self.public_base, scheme, websocket=True)
        return bool(self._validator.validate(url, {}, sig))


def sign(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """What Twilio would send (for the simulated caller and tests)."""
    return RequestValidator(auth_token).compute_signature(url, params or {})
