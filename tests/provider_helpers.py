"""Shared by the provider tests: running a test function under trio's MockClock."""
import functools

import trio
import trio.testing


def mock_clock(fn=None, *, autojump: float = 0.005):
    """Run an async test under MockClock(autojump_threshold=autojump): with real loopback sockets
    the clock only jumps once every task has waited `autojump` s of real time, so socket I/O is
    never skipped over, and emulated latencies come out exact."""
    if fn is None:
        return functools.partial(mock_clock, autojump=autojump)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=autojump))
    return wrapper
