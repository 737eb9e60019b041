"""What the pacer tests share: agent audio frames, a run under MockClock, and a record of the ticks."""
import trio
from trio.testing import MockClock


def frames(n, start=0):
    """n distinct 160-byte frames (mu-law, 20 ms each)."""
    return [bytes([(start + i) % 250 + 1]) * 160 for i in range(n)]


def run(fn, clock=None):
    trio.run(fn, clock=clock or MockClock(autojump_threshold=0))


def recorded_ticks(ticker):
    """A list the ticker appends (time fired, slot, pacers on the slot, the tick's due time) to on each
    tick of a slot, before it serves the slot's pacers."""
    ticks = []
    fire = ticker._fire

    def record(slot, due):
        ticks.append((trio.current_time(), slot, ticker.waiting_on(slot), due))
        fire(slot, due)
    ticker._fire = record
    return ticks
