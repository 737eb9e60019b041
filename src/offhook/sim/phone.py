"""A whole simulated phone call, as Twilio runs it against offhook:

1. POST /twilio/voice (the incoming-call webhook, signed), read the TwiML;
2. if it is <Connect><Stream>: open the stream from its url with its <Parameter>s (SimCaller), and
   when the stream ends POST the <Connect action> URL for what comes next (hang up, voicemail, a person);
   otherwise the webhook's TwiML is what the caller got (e.g. voicemail while the server drains);
3. POST /twilio/status with CallStatus=completed and the duration.

URLs in the TwiML are the public ones Twilio would use; they are signed as they are and connected to
at the local `base` (the path is kept, the scheme and host are swapped).
"""
from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from offhook.sim.caller import CallResult, SimCaller, _sid
from offhook.sim.scenario import Scenario
from offhook.twilio.signature import sign


@dataclass
class PhoneCall:
    call_sid: str
    webhook_twiml: str = ""
    stream: CallResult | None = None      # None when the webhook did not connect a stream
    next_twiml: str = ""                  # the <Connect action>'s answer after the stream
    status_code: int | None = None        # of the status callback
    errors: list[str] = field(default_factory=list)

    @property
    def next_verbs(self) -> list[str]:
        """The verbs of what came after the stream, e.g. ['Say', 'Record', 'Hangup'] or ['Hangup']."""
        return verbs(self.next_twiml or (self.webhook_twiml if self.stream is None else ""))


def verbs(twiml: str) -> list[str]:
    if not twiml:
        return []
    return [child.tag for child in ET.fromstring(twiml)]


def _local(url: str, base: str) -> str:
    """The public URL's path at the local server (ws/wss follow http/https of base)."""
    u, b = urlsplit(url), urlsplit(base)
    scheme = b.scheme
    if u.scheme in ("ws", "wss"):
        scheme = {"http": "ws", "https": "wss"}.get(b.scheme, b.scheme)
    return urlunsplit((scheme, b.netloc, u.path, u.query, ""))


async def place_call(base: str, scenario: Scenario, *, auth_token: str | None = None,
                     public_url: str | None = None, seed: int | None = None, **caller_kw) -> PhoneCall:
    """base: the local server, http://host:port. public_url: what Twilio calls (default: base)."""
    rnd = random.Random(seed)
    call_sid, account_sid = _sid("CA", rnd), _sid("AC", rnd)
    public = (public_url or base).rstrip("/")
    call = PhoneCall(call_sid)
    form = {"CallSid": call_sid, "AccountSid": account_sid, "From": scenario.caller, "To": scenario.callee,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}

    async with httpx.AsyncClient(timeout=10) as http:
        async def post(url: str, params: dict) -> httpx.Response:
            headers = {"X-Twilio-Signature": sign(auth_token, url, params)} if auth_token else {}
            return await http.post(_local(url, base), data=params, headers=headers)

        r = await post(public + "/twilio/voice", form)
        if r.status_code != 200:
            call.errors.append(f"/twilio/voice answered {r.status_code}: {r.text[:100]}")
            return call
        call.webhook_twiml = r.text
        root = ET.fromstring(r.text)
        connect = root.find("Connect")
        stream = connect.find("Stream") if connect is not None else None
        if stream is None:
            return call  # handed over at the webhook (voicemail, a person)
        url = stream.get("url", "")
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        caller = SimCaller(_local(url, base), scenario, auth_token=auth_token, signed_url=url, call_sid=call_sid,
                           account_sid=account_sid, custom_parameters=params, seed=seed, **caller_kw)
        call.stream = await caller.run()
        action = connect.get("action")
        if action:  # Twilio runs the <Connect action> once the stream is over
            nxt = await post(action, {**form, "CallStatus": "in-progress"})
            call.next_twiml = nxt.text if nxt.status_code == 200 else ""
            if nxt.status_code != 200:
                call.errors.append(f"{action} answered {nxt.status_code}")
        st = await post(public + "/twilio/status", {**form, "CallStatus": "completed",
                                                     "CallDuration": str(round(call.stream.duration))})
        call.status_code = st.status_code
    return call
