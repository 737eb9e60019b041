"""The real server in-process for tests (running_server lives in offhook.sim.rig), and raw calls."""
from __future__ import annotations

import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed, open_websocket_url

from offhook.sim.rig import TOKEN, running_server  # noqa: F401  (re-exported for the tests)
from offhook.twilio.protocol import InboundBuilder, build_connected, build_start

FRAME = b"\x7e" * 160


def run(fn):
    # Real sockets under a mock clock: jump only after 5 ms of real idleness, so loopback I/O completes
    # before virtual time moves; all delays here are the server's and simulator's own trio sleeps.
    trio.run(fn, clock=MockClock(autojump_threshold=0.005))


async def raw_call(app, messages, *, then_good_frames=60, call_sid="CAraw"):
    """Connect without signature checks, send `messages` mid-call, then good audio and `stop`; returns
    the server's MediaCall. The server may end the call first (that is what some tests check)."""
    b = InboundBuilder("MZraw")
    async with open_websocket_url(app.base_ws + "/twilio/media") as ws:
        try:
            await ws.send_message(build_connected())
            await ws.send_message(build_start(1, "MZraw", call_sid, "AC1", {}))
            for m in messages:
                await ws.send_message(m)
            for i in range(then_good_frames):
                await ws.send_message(b.media(100 + i, i + 1, i * 20, FRAME))
                await trio.sleep(0.02)
            await ws.send_message(b.stop(999, "AC1", call_sid))
            with trio.move_on_after(2):
                while True:
                    await ws.get_message()
        except ConnectionClosed:
            pass
    await trio.sleep(0.1)
    return next(c for c in app.finished if c.call_sid == call_sid)
