"""The garbage collector tuned for a long-running server of many small calls.

CPython's full (oldest-generation) collection walks every tracked object. In a server that has
imported the SDKs (pydantic models, anthropic, deepgram) that is millions of objects that never
die, and each full collection stopped the event loop for ~40-50 ms at 100 calls, long enough to make
every call's outbound audio late at once. Freezing what exists once the server is set up moves it
out of the collector's sight (it is still freed normally if it ever becomes garbage), so a full
collection only walks what the calls themselves keep alive.

The youngest generation is also collected less often: by default every 700 net allocations, which
at 100 calls is every ~10 ms, so anything alive for a few frames (a queued frame, a turn's tasks) was
promoted, and the old generation filled and was walked again about once a second. Every 10,000
allocations, short-lived objects die young and the full walks become rare.
"""
from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


_settled = False


def settle() -> int:
    """Collect once, then freeze what survived: call when the server is set up, before the first call.
    Once per process (a second server in the same process, as in tests, leaves it as it is).
    Returns the number of objects frozen."""
    global _settled
    if _settled:
        return 0
    _settled = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return gc.get_freeze_count()
