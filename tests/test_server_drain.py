"""Graceful drain (what SIGTERM does), in-process on the real server under MockClock: new calls are
handed over at the webhook, calls in progress are not cut before the drain timeout, and the ones
still going at the timeout are sent to voicemail with reason server_shutdown."""
import httpx
import trio

from edge_helpers import run, running_server
from offhook.observe.record import CallRecord, EndReason
from offhook.server.echo import EchoHandler
from offhook.server.media import AfterAction
from offhook.sim.caller import SimCaller
from offhook.sim.scenario import from_dict

PUBLIC = "https://voice.example.com"
TALKATIVE = {"steps": [{"wait_for_agent": {"quiet": 0.3}}, {"say": "first thing I want to say to you"},
                       {"wait_for_agent": {"quiet": 0.4}}, {"say": "and a second thing as well"},
                       {"wait_for_agent": {"quiet": 0.4}}, {"hangup": True}]}
FOREVER = {"steps": [{"wait_for_agent": {"quiet": 0.3}}, {"say": "hello"}, {"wait": 120}, {"hangup": True}]}


class Recorded(EchoHandler):
    def __init__(self, call):
        super().__init__(call)
        call.record = CallRecord(call.call_sid)


async def until(pred, timeout=60):
    with trio.fail_after(timeout):  # virtual seconds: a broken drain fails here instead of hanging
        while not pred():
            await trio.sleep(0.02)


async def webhook(http, path, **params):
    return await http.post(path, data=params)


def test_drain_lets_calls_finish_and_hands_new_calls_over():
    async def main():
        async with running_server(validate_signatures=False, public_url=PUBLIC, handler_factory=Recorded) as app:
            caller = SimCaller(app.base_ws + "/twilio/media", from_dict(TALKATIVE))
            async with trio.open_nursery() as n, httpx.AsyncClient(base_url=app.base_http) as http:
                results = []
                n.start_soon(_run_into, caller, results)
                await until(lambda: app.active)
                drain_started = trio.current_time()
                n.start_soon(app.drain, 30.0)
                await until(lambda: not app.accepting)

                health = await http.get("/healthz")
                assert health.status_code == 503 and health.json()["status"] == "draining"
                assert health.json()["active_calls"] == 1
                new = await webhook(http, "/twilio/voice", CallSid="CAnew", From="+15550000000")
                assert new.status_code == 200 and "<Stream" not in new.text
                assert "<Say>" + app.config.voicemail_prompt + "</Say>" in new.text
                assert '<Record action="https://voice.example.com/twilio/after-stream"' in new.text

                with trio.fail_after(60):
                    await app.drained.wait()
                drained_at = trio.current_time()
            res = results[-1]
            # the call ran as scripted: both lines said and echoed, and the caller hung up
            assert res.ended_by == "caller" and not res.error and len(res.lines) == 2
            assert res.agent_heard_between(res.lines[1].end, res.duration) > 1.0
            call = app.finished[-1]
            assert call.record.end_reason is EndReason.CALLER_HANGUP and app.handed_over == []
            # the drain ended with the call, well before its timeout
            assert drained_at - drain_started < res.duration < 30
    run(main)


async def _run_into(caller, results):
    results.append(await caller.run())


def test_calls_still_going_at_the_drain_timeout_go_to_voicemail():
    async def main():
        async with running_server(validate_signatures=False, public_url=PUBLIC, handler_factory=Recorded) as app:
            caller = SimCaller(app.base_ws + "/twilio/media", from_dict(FOREVER))
            results = []
            async with trio.open_nursery() as n, httpx.AsyncClient(base_url=app.base_http) as http:
                n.start_soon(_run_into, caller, results)
                await until(lambda: app.active)
                await trio.sleep(1.0)
                drain_started = trio.current_time()
                n.start_soon(app.drain, 5.0)
                await trio.sleep(4.9)
                assert app.active and not results  # not cut before the timeout
                await until(lambda: results)
                cut_at = trio.current_time()
                assert 5.0 <= cut_at - drain_started < 5.2
                call = app.finished[-1]
                assert (call.end_reason, call.ended_by) == ("server_shutdown", "system")
                assert call.record.end_reason is EndReason.SERVER_SHUTDOWN
                assert call.after.kind == "voicemail" and app.handed_over == [caller.call_sid]
                assert not app.drained.is_set()  # waiting for Twilio to ask what comes next
                nxt = await webhook(http, "/twilio/after-stream", CallSid=caller.call_sid)
                assert "<Say>" + app.config.voicemail_prompt + "</Say>" in nxt.text and "<Record" in nxt.text
                with trio.fail_after(60):
                    await app.drained.wait()  # the server stops now
                assert trio.current_time() - cut_at < 0.5
        assert results[0].ended_by == "server"
        assert any(kind == "closed_by_server" for _, kind, _ in results[0].timeline)
    run(main)


def test_a_second_signal_hands_calls_over_at_once():
    async def main():
        async with running_server(validate_signatures=False, handler_factory=Recorded) as app:
            caller = SimCaller(app.base_ws + "/twilio/media", from_dict(FOREVER))
            results = []
            async with trio.open_nursery() as n:
                n.start_soon(_run_into, caller, results)
                await until(lambda: app.active)
                n.start_soon(app.drain, 300.0)
                await trio.sleep(2.0)
                t = trio.current_time()
                app.drain_now()
                await until(lambda: results)
                assert trio.current_time() - t < 0.2
                assert app.finished[-1].end_reason == "server_shutdown"
                n.cancel_scope.cancel()
    run(main)


def test_any_worker_on_the_host_answers_the_after_stream_request(tmp_path):
    """Twilio's <Connect action> request is a new HTTP request: with several workers on one port it
    may reach another process than the one whose stream ended. They share the after-stream actions."""
    class HandsOff(EchoHandler):
        async def run(self, call):
            await trio.sleep(0.5)
            call.end("handoff_voicemail", "agent", after=AfterAction("voicemail", "Leave us a message."))

    async def main():
        shared = str(tmp_path / "data")
        two = dict(validate_signatures=False, data_dir=shared, workers=2)
        async with running_server(handler_factory=HandsOff, **two) as a, running_server(**two) as b:
            res = await SimCaller(a.base_ws + "/twilio/media", from_dict(FOREVER)).run()
            assert res.ended_by == "server" and a.after_actions.pending(res.call_sid)
            async with httpx.AsyncClient() as http:
                nxt = await http.post(b.base_http + "/twilio/after-stream", data={"CallSid": res.call_sid})
                again = await http.post(a.base_http + "/twilio/after-stream", data={"CallSid": res.call_sid})
            assert "<Say>Leave us a message.</Say>" in nxt.text  # worker b knew what to say
            assert "<Hangup />" in again.text and "<Say>" not in again.text  # served once
            assert not a.after_actions.pending(res.call_sid)
            assert list((tmp_path / "data" / "after-actions").iterdir()) == []
    run(main)
