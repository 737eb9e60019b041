"""Circuit breaker: after a primary failure later turns skip it until one probe finds it healthy."""
import pytest
import trio
from trio.testing import MockClock

from offhook.agent.breaker import CircuitBreaker


def run(fn):
    return trio.run(fn, clock=MockClock(autojump_threshold=0))


def test_one_failure_opens_and_a_probe_is_allowed_once_after_the_interval():
    async def main():
        b = CircuitBreaker()
        assert b.state == "closed" and b.allow() and b.allow()
        b.record_failure()
        assert b.state == "open" and b.opened == 1
        assert not b.allow()
        await trio.sleep(29.9)
        assert not b.allow()
        await trio.sleep(0.1)
        assert b.allow()                       # the probe
        assert b.state == "half_open"
        assert not b.allow() and not b.allow()  # nobody else while it is out
        b.record_success()
        assert b.state == "closed" and b.allow() and b.allow()
    run(main)


def test_failed_probe_reopens_for_a_full_interval():
    async def main():
        b = CircuitBreaker(probe_interval_s=10)
        b.record_failure()
        await trio.sleep(10)
        assert b.allow()
        await trio.sleep(2)
        b.record_failure()
        assert b.state == "open" and b.opened == 2
        await trio.sleep(9.5)
        assert not b.allow()
        await trio.sleep(0.5)
        assert b.allow() and b.state == "half_open"
    run(main)


def test_threshold_counts_consecutive_failures_only():
    async def main():
        b = CircuitBreaker(failure_threshold=3)
        b.record_failure()
        b.record_failure()
        b.record_success()           # the streak is broken
        b.record_failure()
        b.record_failure()
        assert b.state == "closed" and b.allow()
        b.record_failure()
        assert b.state == "open" and not b.allow()
    run(main)


def test_a_probe_that_never_reports_does_not_wedge_the_breaker():
    async def main():
        b = CircuitBreaker(probe_interval_s=5)
        b.record_failure()
        await trio.sleep(5)
        assert b.allow()             # probe granted, then its turn is cancelled: no outcome
        await trio.sleep(4)
        assert not b.allow()
        await trio.sleep(1)
        assert b.allow() and b.state == "half_open"
    run(main)


def test_injected_clock_works_outside_trio():
    now = [100.0]
    b = CircuitBreaker(probe_interval_s=1.0, clock=lambda: now[0])
    b.record_failure()
    assert not b.allow()
    now[0] += 1.0
    assert b.allow()


@pytest.mark.parametrize("kwargs", [dict(failure_threshold=0), dict(probe_interval_s=-1)])
def test_bad_settings_are_clear_errors(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)
