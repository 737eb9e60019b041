"""The simulated phone call end to end, as Twilio runs it: signed webhook -> TwiML -> media stream
with the TwiML's parameters -> <Connect action> for what comes next -> status callback."""
import trio

from edge_helpers import TOKEN, run, running_server
from offhook.server.echo import EchoHandler
from offhook.server.media import AfterAction
from offhook.sim.phone import place_call
from offhook.sim.scenario import from_dict

PUBLIC = "https://voice.example.com"
SAY_HELLO = from_dict({"call": {"from": "+15551112222", "to": "+15553334444"},
                       "steps": [{"wait_for_agent": {"quiet": 0.3}}, {"say": "hello there"},
                                 {"wait_for_agent": {"quiet": 0.4}}, {"hangup": True}]})


def test_signed_call_through_webhook_stream_after_stream_and_status():
    async def main():
        async with running_server(public_url=PUBLIC) as app:  # signatures checked against the public URL
            call = await place_call(app.base_http, SAY_HELLO, auth_token=TOKEN, public_url=PUBLIC)
            await trio.sleep(0.1)
        assert not call.errors and not app.rejected
        assert 'url="wss://voice.example.com/twilio/media"' in call.webhook_twiml
        res = call.stream
        assert res.ended_by == "caller" and res.lines[0].latency is not None
        server_call = app.finished[-1]
        assert server_call.call_sid == call.call_sid
        assert server_call.params == {"from": "+15551112222", "to": "+15553334444", "callSid": call.call_sid}
        assert call.next_verbs == ["Hangup"] and call.status_code == 204
        assert app.statuses[call.call_sid]["CallStatus"] == "completed"
        assert app.statuses[call.call_sid]["CallDuration"] == str(round(res.duration))
    run(main)


def test_agent_handoff_to_voicemail_is_what_the_caller_gets_next():
    class HandsOff(EchoHandler):
        async def run(self, call):
            await trio.sleep(1.0)
            call.end("handoff_voicemail", "agent", after=AfterAction("voicemail", "Leave us a message."))

    async def main():
        async with running_server(public_url=PUBLIC, handler_factory=HandsOff) as app:
            call = await place_call(app.base_http, SAY_HELLO, auth_token=TOKEN, public_url=PUBLIC)
        assert call.stream.ended_by == "server"
        assert call.next_verbs == ["Say", "Record", "Hangup"]
        assert "<Say>Leave us a message.</Say>" in call.next_twiml
        assert app.finished[-1].end_reason == "handoff_voicemail"
    run(main)


def test_unsigned_webhook_is_refused():
    async def main():
        async with running_server(public_url=PUBLIC) as app:
            call = await place_call(app.base_http, SAY_HELLO, auth_token="wrong", public_url=PUBLIC)
        assert call.stream is None and call.errors == ["/twilio/voice answered 403: invalid Twilio signature"]
    run(main)
