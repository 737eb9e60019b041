"""TwiML for the call's life: connect the media stream, then hang up, voicemail or a human."""
from __future__ import annotations

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse


def connect_stream(media_url: str, action_url: str, parameters: dict[str, str],
                   status_callback: str | None = None) -> str:
    resp = VoiceResponse()
    connect = Connect(action=action_url, method="POST")
    stream = connect.stream(url=media_url, name="offhook")
    if status_callback:
        stream.attributes["statusCallback"] = status_callback
    for k, v in parameters.items():
        stream.parameter(name=k, value=v)
    resp.append(connect)
    return str(resp)


def hangup() -> str:
    resp = VoiceResponse()
    resp.hangup()
    return str(resp)


def voicemail(prompt: str, action_url: str | None = None, max_length_s: int = 120) -> str:
    resp = VoiceResponse()
    resp.say(prompt)
    kw = {"max_length": max_length_s, "play_beep": True}
    if action_url:
        kw["action"] = action_url
    resp.record(**kw)
    resp.hangup()
    return str(resp)


def dial_human(number: str, caller_id: str | None = None, timeout_s: int = 20,
               fallback_prompt: str | None = None, action_url: str | None = None) -> str:
    """Dial a person; when nobody answers, the verbs after <Dial> run: voicemail with fallback_prompt.
    action_url receives the recording (without it Twilio posts to the URL that served this TwiML)."""
    resp = VoiceResponse()
    dial = Dial(caller_id=caller_id, timeout=timeout_s) if caller_id else Dial(timeout=timeout_s)
    dial.number(number)
    resp.append(dial)
    if fallback_prompt:
        resp.say(fallback_prompt)
        kw = {"max_length": 120, "play_beep": True}
        if action_url:
            kw["action"] = action_url
        resp.record(**kw)
        resp.hangup()
    return str(resp)
