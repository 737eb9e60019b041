"""Which URL Twilio signed, rebuilt from the request: configured public base, TLS proxy headers, Host."""
import pytest

from offhook.twilio.signature import SignatureChecker, public_url, sign

TOKEN = "sig-test-token"


@pytest.mark.parametrize("path,headers,base,scheme,ws,expected", [
    ("/twilio/voice", {"host": "127.0.0.1:8080"}, None, "http", False, "http://127.0.0.1:8080/twilio/voice"),
    ("/twilio/voice", {"host": "127.0.0.1:8080", "x-forwarded-proto": "https", "x-forwarded-host": "a.ngrok.app"},
     None, "http", False, "https://a.ngrok.app/twilio/voice"),
    # a chain of proxies: the first value is the client-facing one
    ("/twilio/voice", {"x-forwarded-proto": "https, http", "x-forwarded-host": "a.example, internal:80"},
     None, "http", False, "https://a.example/twilio/voice"),
    ("/twilio/media", {"host": "x", "x-forwarded-proto": "https", "x-forwarded-host": "a.example"},
     None, "ws", True, "wss://a.example/twilio/media"),
    # the configured public URL wins over whatever the headers claim
    ("/twilio/voice?x=1", {"host": "evil", "x-forwarded-host": "evil"}, "https://voice.example.com", "http",
     False, "https://voice.example.com/twilio/voice?x=1"),
    ("/twilio/media", {}, "https://voice.example.com", "ws", True, "wss://voice.example.com/twilio/media"),
    # served under a path prefix, stripped or not by the proxy
    ("/twilio/voice", {}, "https://h.example/agent/", "http", False, "https://h.example/agent/twilio/voice"),
    ("/agent/twilio/voice", {}, "https://h.example/agent", "http", False, "https://h.example/agent/twilio/voice"),
])
def test_public_url(path, headers, base, scheme, ws, expected):
    assert public_url(path, headers, base, scheme, websocket=ws) == expected


def test_checker_accepts_twilios_signature_and_nothing_else():
    c = SignatureChecker(TOKEN, "https://voice.example.com/")
    params = {"CallSid": "CA1", "From": "+15551230000"}
    good = sign(TOKEN, "https://voice.example.com/twilio/voice", params)
    assert c.check_http("/twilio/voice", {"x-twilio-signature": good}, params, "http")
    assert not c.check_http("/twilio/voice", {"x-twilio-signature": good}, {**params, "From": "+1"}, "http")
    assert not c.check_http("/twilio/voice", {}, params, "http")
    other_token = sign("other", "https://voice.example.com/twilio/voice", params)
    assert not c.check_http("/twilio/voice", {"x-twilio-signature": other_token}, params, "http")
    ws = sign(TOKEN, "wss://voice.example.com/twilio/media")
    assert c.check_ws("/twilio/media", {"x-twilio-signature": ws}, "ws")
    plain_ws = sign(TOKEN, "ws://voice.example.com/twilio/media")
    assert not c.check_ws("/twilio/media", {"x-twilio-signature": plain_ws}, "ws")
    # Twilio may sign with or without the default port; the validator accepts both
    with_port = sign(TOKEN, "https://voice.example.com:443/twilio/voice", params)
    assert c.check_http("/twilio/voice", {"x-twilio-signature": with_port}, params, "http")
