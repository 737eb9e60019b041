"""The ticker writing paced frames itself (sockets with `send_now`): what happens when a socket cannot
take a message at once, half takes it, is cleared meanwhile, or its call ends; and a ticker woken
late. Exact, under MockClock."""
import json

import pytest
import trio
from trio.testing import MockClock

from offhook.twilio.pacer import Pacer, Ticker
from offhook.twilio.protocol import OutboundBuilder
from pacer_helpers import frames, recorded_ticks, run

pytestmark = pytest.mark.timeout(30)


class Socket:
    """A call's socket: `send_now` takes a message unless `busy` (then the pacer's task writes it with
    `send`, which waits until `free` is set); `half` makes the next send_now take part of a message,
    the rest written by the returned coroutine function `delay` seconds later."""

    def __init__(self):
        self.sent = []  # (time, message, task name)
        self.busy = False
        self.free = trio.Event()
        self.free.set()
        self.half = False
        self.delay = 0.03

    def _put(self, text):
        self.sent.append((trio.current_time(), json.loads(text), trio.lowlevel.current_task().name))

    def send_now(self, text):
        if self.busy:
            return False
        if self.half:
            self.half = False

            async def rest():
                await trio.sleep(self.delay)
                self._put(text)
            return rest
        self._put(text)
        return True

    async def send(self, text):
        await self.free.wait()
        self._put(text)

    def block(self):
        """From now on the socket takes nothing: the pacer's task waits to write."""
        self.busy = True
        self.free = trio.Event()

    def unblock(self):
        self.busy = False
        self.free.set()

    def media(self):
        return [m["media"]["payload"] for _, m, _ in self.sent if m["event"] == "media"]

    def media_times(self):
        return [t for t, m, _ in self.sent if m["event"] == "media"]

    def events(self):
        return [m["event"] if m["event"] != "mark" else "mark:" + m["mark"]["name"] for _, m, _ in self.sent]


def expected_media(n):
    builder = OutboundBuilder("MZ")
    return [json.loads(builder.media(f))["media"]["payload"] for f in frames(n)]


async def playing(nursery, ticker, sockets, n_frames):
    pacers = [Pacer(s.send, OutboundBuilder("MZ"), ticker, send_now=s.send_now) for s in sockets]
    for p in pacers:
        nursery.start_soon(p.run)
        p.start_utterance()
        p.enqueue(frames(n_frames))
        p.end_utterance()
    return pacers


def test_paced_frames_are_written_in_the_tickers_own_step():
    async def main():
        s = Socket()
        ticker = Ticker()
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            await playing(n, ticker, [s], 20)
            await trio.sleep(1)
            writers = [task for _, m, task in s.sent if m["event"] == "media"]
            assert all("Pacer.run" in w for w in writers[:4])  # the lead burst: at once, by the pacer
            assert all("Ticker.run" in w for w in writers[4:])  # every paced frame: by the ticker
            assert s.media() == expected_media(20)
            n.cancel_scope.cancel()
    run(main)


def test_a_socket_that_cannot_take_its_frame_holds_up_only_its_own_call():
    async def main():
        ok1, slow, ok2 = Socket(), Socket(), Socket()
        ticker = Ticker(slots=1)  # all three on the same tick
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            t0 = trio.current_time()
            pacers = await playing(n, ticker, [ok1, slow, ok2], 50)
            await trio.sleep(0.2)
            slow.block()
            await trio.sleep(0.3)  # its socket takes nothing for 300 ms
            slow.unblock()
            await trio.sleep(1.5)
            for s in (ok1, ok2):
                times = [round((t - t0) * 1000, 6) for t in s.media_times()]
                assert times[:4] == [0] * 4 and times[4:] == [20 * i for i in range(1, 47)]
            for s in (ok1, slow, ok2):  # every frame, once, in order, and the marks between them
                assert s.media() == expected_media(50)
                ev = s.events()
                assert [e for e in ev if e.startswith("mark")] == [f"mark:1:{k}" for k in (10, 20, 30, 40, 50)] + ["mark:1:end"]
                assert ev.index("mark:1:10") == 10 and ev.index("mark:1:20") == 21
            stalled = [round((t - t0) * 1000, 6) for t in slow.media_times()]
            assert max(b - a for a, b in zip(stalled, stalled[1:])) >= 300 - 20
            assert pacers[0].late_frames == pacers[2].late_frames == 0
            n.cancel_scope.cancel()
    run(main)


def test_a_half_written_message_is_finished_before_anything_after_it():
    async def main():
        s = Socket()
        ticker = Ticker()
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            t0 = trio.current_time()
            p = (await playing(n, ticker, [s], 30))[0]
            await trio.sleep(0.095)  # the tick at 100 ms writes frame 9 (of 0..29) in part
            s.half = True
            await trio.sleep(1)
            assert s.media() == expected_media(30)
            times = [round((t - t0) * 1000, 6) for t in s.media_times()]
            assert times[9] == 130  # its rest, 30 ms later, by the pacer's task
            # frame 10 (it plays at 200 ms, within the lead) follows the rest at once; then the grid
            assert times[10] == 130 and times[11:] == [20 * i for i in range(8, 27)]
            assert s.events().index("mark:1:10") == 10
            assert not p.blocked
            n.cancel_scope.cancel()
    run(main)


def test_clear_while_a_tick_could_not_write_sends_no_audio_after_the_clear():
    async def main():
        s = Socket()
        ticker = Ticker()
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            p = (await playing(n, ticker, [s], 100))[0]
            await trio.sleep(0.2)
            s.block()
            await trio.sleep(0.05)  # a tick found the socket busy: the pacer's task waits to write
            assert p.blocked or p.lock.locked()
            sent_before = len(s.media())
            async with trio.open_nursery() as inner:
                inner.start_soon(p.clear)
                await trio.sleep(0.01)
                s.unblock()
            await trio.sleep(0.5)
            ev = s.events()
            assert ev.count("clear") == 1
            assert "media" not in ev[ev.index("clear"):]
            assert len(s.media()) <= sent_before + 1  # at most the one message already being written
            n.cancel_scope.cancel()
    run(main)


def test_a_call_ending_while_the_ticker_serves_it_leaves_the_ticker():
    async def main():
        s = Socket()
        ticker = Ticker()
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            p = Pacer(s.send, OutboundBuilder("MZ"), ticker, send_now=s.send_now)
            call = trio.CancelScope()
            n.start_soon(_run_in, call, p)
            await trio.sleep(0)
            p.start_utterance()
            p.enqueue(frames(100))
            await trio.sleep(0.3)
            assert ticker.waiting == 1
            call.cancel()
            await trio.sleep(0.03)  # (the tick already set still fires, with nobody to serve)
            sent, ticks = len(s.sent), ticker.ticks
            await trio.sleep(1)
            assert ticker.waiting == 0 and len(s.sent) == sent and ticker.ticks == ticks  # at rest
            n.cancel_scope.cancel()
    run(main)


async def _run_in(scope, pacer):
    with scope:
        await pacer.run()


def test_a_ticker_woken_late_fires_each_passed_slot_once_then_keeps_its_grid():
    clock = MockClock(autojump_threshold=0)

    async def main():
        sockets = [Socket() for _ in range(4)]
        ticker = Ticker(slots=4)
        ticks = recorded_ticks(ticker)
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            t0 = trio.current_time()
            pacers = await playing(n, ticker, sockets, 60)
            await trio.sleep(0.2011)
            clock.jump(0.05)  # a 50 ms task step: the ticks of 205-250 ms pass unserved
            await trio.sleep(1)
            ms = lambda t: round((t - t0) * 1000, 6)
            fired = [(ms(t), slot, ms(due)) for t, slot, _, due in ticks]
            late = [f for f in fired if f[0] != f[2]]
            assert sorted(f[1] for f in late) == [0, 1, 2, 3]  # one each, not one per missed phase
            assert {f[0] for f in late} == {251.1}
            assert [f[2] for f in late] == [235, 240, 245, 250]
            after = [f for f in fired if f[0] > 251.1]
            assert after[0][2] == 255 and all(f[0] == f[2] for f in after)  # the grid again
            for p, s in zip(pacers, sockets):
                assert s.media() == expected_media(60)
                assert p.late_frames == 0  # the 80 ms lead covered the stall: the caller heard no gap
            n.cancel_scope.cancel()
    run(main, clock)


def test_a_socket_that_fails_on_a_tick_ends_only_its_own_call():
    async def main():
        ok, bad = Socket(), Socket()
        ticker = Ticker(slots=1)
        failures = []

        def broken(text):
            if json.loads(text)["event"] == "media" and len(bad.media()) >= 6:
                raise RuntimeError("socket state nobody expected")
            return Socket.send_now(bad, text)
        bad.send_now = broken
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            t0 = trio.current_time()
            good, doomed = (Pacer(s.send, OutboundBuilder("MZ"), ticker, send_now=s.send_now) for s in (ok, bad))

            async def run_doomed():
                try:
                    await doomed.run()
                except RuntimeError as e:
                    failures.append((trio.current_time() - t0, str(e)))
            n.start_soon(good.run)
            n.start_soon(run_doomed)
            for p in (good, doomed):
                p.start_utterance()
                p.enqueue(frames(50))
            await trio.sleep(1.5)
            assert failures == [(pytest.approx(0.06), "socket state nobody expected")]  # in its own task
            assert len(bad.media()) == 6
            times = [round((t - t0) * 1000, 6) for t in ok.media_times()]  # the other call played on
            assert times[:4] == [0] * 4 and times[4:] == [20 * i for i in range(1, 47)]
            assert ok.media() == expected_media(50)
            n.cancel_scope.cancel()
    run(main)
