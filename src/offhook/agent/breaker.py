"""Circuit breaker for a provider: after it fails, later turns go straight to the fallback until a
single probe request says it is healthy again.

    breaker = CircuitBreaker(failure_threshold=1, probe_interval_s=30.0)
    if breaker.allow():            # closed, or the one probe of a half-open breaker
        try: ...use the primary...; breaker.record_success()
        except TTSError: breaker.record_failure(); ...use the fallback...
    else: ...use the fallback...

One per provider per process (calls share what they learn about a provider). Time comes from the
injected clock (trio.current_time by default), so tests run under trio's MockClock.
"""
from __future__ import annotations

from typing import Callable

import trio

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """closed -> (failure_threshold consecutive failures) -> open -> (probe_interval_s later, one
    allow()) -> half_open -> success: closed / failure: open again.

    A probe whose outcome is never recorded (the turn was cancelled by a barge-in) does not wedge the
    breaker: another probe is allowed once probe_interval_s has passed since it was granted.
    """

    def __init__(self, failure_threshold: int = 1, probe_interval_s: float = 30.0,
                 clock: Callable[[], float] = trio.current_time) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if probe_interval_s < 0:
            raise ValueError(f"probe_interval_s must be >= 0, got {probe_interval_s}")
        self.failure_threshold = failure_threshold
        self.probe_interval_s = probe_interval_s
        self._clock = clock
        self._state = "closed"
        self._failures = 0
        self._since = 0.0  # when it opened, or when the probe was granted
        self.opened = 0    # how many times it has opened (for the process's metrics)

    @property
    def state(self) -> str:
        """ "closed", "open" or "half_open"."""
        return self._state

    def allow(self) -> bool:
        """May this request use the provider? True when closed; when open, False until
        probe_interval_s has passed, then True once (the probe) and half_open."""
        if self._state == "closed":
            return True
        if self._clock() - self._since < self.probe_interval_s:
            return False
        self._state = "half_open"
        self._since = self._clock()
        return True

    def record_success(self) -> None:
        """The provider served a request: close (a half-open probe succeeded) and forget failures."""
        self._state = "closed"
        self._failures = 0

    def record_failure(self) -> None:
        """The provider failed a request: open once failure_threshold failures come in a row, and at
        once when the half-open probe failed."""
        self._failures += 1
        if self._state == "half_open" or (self._state == "closed" and self._failures >= self.failure_threshold):
            self._state = "open"
            self._since = self._clock()
            self.opened += 1

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state!r}, failures={self._failures})"
