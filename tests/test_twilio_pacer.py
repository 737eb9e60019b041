"""Pacing, marks, the playback ledger and clear — exact, under MockClock. Each behaviour holds for a
socket the ticker writes itself (`send_now`, as hypercorn's) and for one only the pacer's task writes."""
import json

import pytest
import trio

from offhook.twilio.pacer import Pacer, Ticker, Utterance
from offhook.twilio.protocol import OutboundBuilder
from pacer_helpers import frames, recorded_ticks, run


class Wire:
    """Collects what the pacer put on the socket, with the (mock) time it left."""

    def __init__(self):
        self.sent = []

    async def send(self, text):
        self.sent.append((trio.current_time(), json.loads(text)))

    def sender(self):
        return {}

    def media_times(self):
        return [t for t, m in self.sent if m["event"] == "media"]

    def events(self):
        return [m["event"] if m["event"] != "mark" else "mark:" + m["mark"]["name"] for _, m in self.sent]


class NowWire(Wire):
    """A socket that always takes a message at once, written from the ticker's own task step."""

    def send_now(self, text):
        self.sent.append((trio.current_time(), json.loads(text)))
        return True

    def sender(self):
        return {"send_now": self.send_now}


WIRES = pytest.mark.parametrize("wire_kind", [Wire, NowWire], ids=["task-written", "ticker-written"])


async def with_pacer(body, wire_kind=Wire, **kw):
    wire = wire_kind()
    ticker = Ticker()
    async with trio.open_nursery() as n:
        await n.start(ticker.run)
        pacer = Pacer(wire.send, OutboundBuilder("MZ1"), ticker, **wire.sender(), **kw)
        n.start_soon(pacer.run)
        await body(pacer, wire)
        n.cancel_scope.cancel()


@WIRES
def test_first_audio_leaves_at_once_then_20ms_cadence_with_lead(wire_kind):
    async def body(pacer, wire):
        t0 = trio.current_time()
        pacer.start_utterance("hello")
        pacer.enqueue(frames(50))
        pacer.end_utterance()
        await trio.sleep(1.5)
        times = [round((t - t0) * 1000, 3) for t in wire.media_times()]
        assert len(times) == 50
        assert times[:4] == [0, 0, 0, 0]  # 80 ms lead burst: 4 frames at once
        gaps = [round(b - a, 3) for a, b in zip(times[4:], times[5:])]
        assert set(gaps) == {20.0}  # then one per tick
        # never more than the lead ahead of real time
        for i, t in enumerate(times):
            assert i * 20 - t <= 80 + 1e-6
    run(lambda: with_pacer(body, wire_kind, lead=0.08))


@WIRES
def test_marks_every_n_frames_and_at_utterance_end(wire_kind):
    async def body(pacer, wire):
        u = pacer.start_utterance("x")
        pacer.enqueue(frames(25))
        pacer.end_utterance()
        await trio.sleep(1)
        ev = wire.events()
        assert ev.count("media") == 25
        assert [e for e in ev if e.startswith("mark")] == [f"mark:{u.id}:10", f"mark:{u.id}:20", f"mark:{u.id}:end"]
        assert ev.index(f"mark:{u.id}:10") == 10  # right after the 10th frame
        assert ev[-1] == f"mark:{u.id}:end"
    run(lambda: with_pacer(body, wire_kind, mark_every=10))


@WIRES
def test_ledger_playing_and_heard_follow_playout_and_marks(wire_kind):
    async def body(pacer, wire):
        t0 = trio.current_time()
        u = pacer.start_utterance("one two three four five")
        pacer.add_alignment([("one ", 0, 200), ("two ", 200, 400), ("three ", 400, 600), ("four ", 600, 800),
                             ("five", 800, 1000)])
        pacer.enqueue(frames(50))
        pacer.end_utterance()
        await trio.sleep_until(t0 + 0.5)
        assert pacer.playing()
        h = pacer.heard()
        assert h.heard_ms == pytest.approx(500, abs=0.01)
        assert h.text == "one two"
        # Twilio's echoes are ground truth: confirmed frames raise the floor of the estimate
        pacer.on_mark(f"{u.id}:10")
        assert u.confirmed_frames == 10
        await trio.sleep_until(t0 + 1.2)
        assert not pacer.playing()
        assert pacer.heard().heard_ms == pytest.approx(1000)
        assert pacer.heard().text == "one two three four five"
    run(lambda: with_pacer(body, wire_kind))


@WIRES
def test_clear_stops_sending_and_reports_heard(wire_kind):
    async def body(pacer, wire):
        t0 = trio.current_time()
        u = pacer.start_utterance("alpha beta gamma delta")
        pacer.enqueue(frames(100))
        await trio.sleep_until(t0 + 0.31)
        heard = await pacer.clear()
        assert heard.utterance_id == u.id
        assert heard.heard_ms == pytest.approx(310, abs=0.01)
        assert heard.sent_ms == pytest.approx((0.31 // 0.02 + 1 + 4) * 20, abs=20)  # lead ahead of playout
        assert wire.events()[-1] == "clear"
        n_media = wire.events().count("media")
        await trio.sleep(1)
        assert wire.events().count("media") == n_media  # nothing after clear
        assert not pacer.playing()
        assert pacer.clear_latencies == [0.0]
        # marks echoed because of the clear do not count as played
        for name in list(u.marks):
            pacer.on_mark(name)
        assert pacer.heard(u).heard_ms == pytest.approx(310, abs=0.01)
        # the next utterance plays normally
        pacer.start_utterance("next")
        pacer.enqueue(frames(3))
        pacer.end_utterance()
        await trio.sleep(0.2)
        assert wire.events()[-4:] == ["media", "media", "media", f"mark:{u.id + 1}:end"]
    run(lambda: with_pacer(body, wire_kind))


@WIRES
def test_heard_text_without_alignment_is_proportional_on_word_boundaries(wire_kind):
    async def body(pacer, wire):
        t0 = trio.current_time()
        pacer.start_utterance("a b c d e f g h i j")
        pacer.enqueue(frames(50))
        await trio.sleep_until(t0 + 0.5)
        h = await pacer.clear()
        assert h.text == "a b c d e"
    run(lambda: with_pacer(body, wire_kind))


async def talking_pacers(nursery, ticker, wires, n_frames):
    """A running pacer per wire on `ticker`; 50 ms later each starts an utterance of n_frames."""
    pacers = [Pacer(w.send, OutboundBuilder(f"MZ{i}"), ticker, **w.sender()) for i, w in enumerate(wires)]
    for p in pacers:
        nursery.start_soon(p.run)
    await trio.sleep(0.05)
    for p in pacers:
        p.start_utterance()
        p.enqueue(frames(n_frames))
    return pacers


@WIRES
def test_one_ticker_drives_many_pacers(wire_kind):
    async def main():
        wires = [wire_kind() for _ in range(30)]
        ticker = Ticker()
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            await talking_pacers(n, ticker, wires, 20)
            await trio.sleep(0.102)  # between two ticks (the slots tick every 5 ms)
            assert ticker.waiting == 30  # all parked on the one timer, none on its own
            await trio.sleep(1)
            assert all(len(w.media_times()) == 20 for w in wires)
            n.cancel_scope.cancel()
    run(main)


@WIRES
def test_pacers_are_spread_over_the_ticker_phases_and_each_keeps_its_20ms_cadence(wire_kind):
    async def main():
        wires = [wire_kind() for _ in range(8)]
        ticker = Ticker(slots=4)
        woken = recorded_ticks(ticker)  # (time, slot, pacers waiting, due) of each tick of a slot
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            t0 = trio.current_time()
            pacers = await talking_pacers(n, ticker, wires, 50)
            await trio.sleep(1.5)
            assert sorted(p.slot for p in pacers) == [0, 0, 1, 1, 2, 2, 3, 3]
            # each wake-up is one slot's pacers only (at most ceil(8/4)), on its phase of the period
            assert woken and max(k for _, _, k, _ in woken) == 2
            for t, slot, _, _ in woken:
                assert ((t - t0) * 1000 - 5 * slot) % 20 == pytest.approx(0, abs=1e-6) or \
                    ((t - t0) * 1000 - 5 * slot) % 20 == pytest.approx(20, abs=1e-6)
            assert {slot for _, slot, _, _ in woken} == {0, 1, 2, 3}
            for p, w in zip(pacers, wires):
                times = [round((t - t0) * 1000, 3) for t in w.media_times()]
                assert len(times) == 50 and times[:4] == [50] * 4  # the lead burst, as with one pacer
                assert {round(b - a, 3) for a, b in zip(times[4:], times[5:])} == {20.0}
                assert times[4] == 50 + ((5 * p.slot - 50) % 20 or 20)  # its slot's first tick after 50 ms
                assert p.late_frames == 0
                for i, t in enumerate(times):  # never more than the lead ahead, never behind playout
                    assert 0 <= 50 + i * 20 - t <= 80 + 1e-6
            n.cancel_scope.cancel()
    run(main)


def test_a_finished_pacer_frees_its_slot_for_the_next_call():
    async def main():
        ticker = Ticker(slots=4)
        async with trio.open_nursery() as n:
            await n.start(ticker.run)
            scopes, pacers = [], []
            for i in range(4):
                p = Pacer(Wire().send, OutboundBuilder(f"MZ{i}"), ticker)
                p.start_utterance()
                p.enqueue(frames(10))
                scope = trio.CancelScope()
                scopes.append(scope)
                pacers.append(p)

                async def go(p=p, scope=scope):
                    with scope:
                        await p.run()
                n.start_soon(go)
            await trio.sleep(0.01)
            assert sorted(p.slot for p in pacers) == [0, 1, 2, 3]
            scopes[[p.slot for p in pacers].index(2)].cancel()  # the call on slot 2 hangs up
            await trio.sleep(0.01)
            w = Wire()
            late = Pacer(w.send, OutboundBuilder("MZ9"), ticker)
            late.start_utterance()
            late.enqueue(frames(10))
            n.start_soon(late.run)
            await trio.sleep(0.5)
            assert late.slot == 2 and len(w.media_times()) == 10
            n.cancel_scope.cancel()
    run(main)


def test_bad_arguments():
    async def main():
        w = Wire()
        with pytest.raises(ValueError):
            Pacer(w.send, OutboundBuilder("MZ"), Ticker(), lead=5)
        p = Pacer(w.send, OutboundBuilder("MZ"), Ticker())
        p.start_utterance()
        with pytest.raises(ValueError, match="160 bytes"):
            p.enqueue([b"\x00" * 10])
        assert p.on_mark("garbage") is None
        assert p.on_mark("99:10") is None
    run(main)


def test_ticker_rests_while_nobody_waits_and_keeps_its_grid():
    async def main():
        ticker = Ticker()
        async with trio.open_nursery() as n:
            t0 = trio.current_time()
            await n.start(ticker.run)
            await trio.sleep(1.0)
            assert ticker.ticks == 0  # an idle server's ticker does not wake
            await trio.sleep(0.007)
            await ticker.wait()
            assert trio.current_time() - t0 == pytest.approx(1.02)  # the next point of the 20 ms grid
            await ticker.wait()
            assert trio.current_time() - t0 == pytest.approx(1.04) and ticker.ticks == 2
            n.cancel_scope.cancel()
    run(main)


def test_a_call_that_hangs_up_while_waiting_for_the_resting_ticker_leaves_it_working():
    async def main():
        ticker = Ticker()
        async with trio.open_nursery() as n:
            t0 = trio.current_time()
            await n.start(ticker.run)
            await trio.sleep(0.003)
            with trio.move_on_after(0):  # wakes the resting ticker, then is gone before it ticks
                await ticker.wait()
            await trio.sleep(0.1)
            assert ticker.ticks == 0
            await ticker.wait()
            assert trio.current_time() - t0 == pytest.approx(0.12) and ticker.ticks == 1
            n.cancel_scope.cancel()
    run(main)


def test_heard_text_counts_a_word_heard_once_its_letters_played_even_before_its_punctuation():
    # character alignment: "Sure," then a space then "we"; a word cut mid-way is not heard
    u = Utterance(1, "Sure, we")
    u.alignment = [(c, i * 50.0, i * 50.0 + 50.0) for i, c in enumerate("Sure, we")]
    assert u.heard_text(150.0) == ""          # "Sur" played: cut mid-word
    assert u.heard_text(200.0) == "Sure"      # letters done, comma not yet
    assert u.heard_text(250.0) == "Sure,"
    assert u.heard_text(320.0) == "Sure,"     # "w" of "we" only
    assert u.heard_text(400.0) == "Sure, we"
    # word alignment whose pieces carry their punctuation but not the following space
    w = Utterance(2, "Sure, we open.")
    w.alignment = [("Sure,", 0.0, 200.0), (" ", 200.0, 220.0), ("we ", 220.0, 400.0), ("open.", 400.0, 600.0)]
    assert w.heard_text(210.0) == "Sure,"
    assert w.heard_text(599.0) == "Sure, we"
