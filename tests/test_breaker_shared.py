"""Circuit breakers shared through a real Redis: ``CircuitBreaker(..., store=url)``.

Two breakers of one name stand for two worker processes (``replace=True`` keeps both alive in
one process; one test uses real subprocesses). ``sync()`` shares at once, so these tests decide
when state moves; the background interval is set long enough not to interfere, except where the
background sharing itself is under test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from seawall import CircuitBreaker
from seawall.testing import ManualClock

LONG = 3600.0  # a sync_interval that never fires during a test


def boom() -> None:
    raise RuntimeError("downstream failed")


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(RuntimeError):
            breaker.call(boom)


def pair(
    redis_url: str, prefix: str, clock: ManualClock | None = None, **kw: Any
) -> tuple[CircuitBreaker, CircuitBreaker]:
    settings: dict[str, Any] = {
        "failure_threshold": 3,
        "recovery_timeout": 10.0,
        "jitter": 0.0,
        "store": redis_url,
        "key_prefix": prefix,
        "sync_interval": LONG,
        "clock": clock,
        **kw,
    }
    a = CircuitBreaker("shared", replace=True, **settings)
    b = CircuitBreaker("shared", replace=True, **settings)
    return a, b


def test_failures_in_two_workers_count_together(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = pair(redis_url, redis_prefix, clock)
    fail(a, 2)
    assert a.sync() == 0.0
    assert a.state == "closed"
    fail(b, 2)  # 4 in a row across both, 2 in each: neither opens alone
    assert b.state == "closed"
    assert b.sync() == pytest.approx(10.0)
    assert b.state == "open"
    assert a.sync() == pytest.approx(10.0)
    assert a.state == "open"
    assert a.stats()["shared"]["errors"] == 0


def test_a_success_between_breaks_the_run(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = pair(redis_url, redis_prefix, clock)
    fail(a, 2)
    a.sync()
    b.call(lambda: None)
    fail(b, 1)
    # Three failures across the two, but b's success came between: no run of three.
    assert b.sync() == 0.0
    assert b.stats()["shared"]["consecutive_failures"] == 1
    assert a.sync() == 0.0
    assert a.state == b.state == "closed"


def test_a_breaker_opened_anywhere_is_open_everywhere(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = pair(redis_url, redis_prefix, clock)
    fail(a, 3)
    assert a.state == "open"
    a.sync()
    assert b.state == "closed"
    assert b.sync() == pytest.approx(10.0)
    assert b.state == "open"
    assert b.retry_after == pytest.approx(10.0)
    # After the shared open time, each process probes on its own.
    clock.advance(10.0)
    assert b.state == "half_open"
    b.call(lambda: None)
    assert b.state == "closed"
    assert b.stats()["last_transition"]["reason"] == "probes_succeeded"


def test_closing_by_probes_starts_the_counts_afresh(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = pair(redis_url, redis_prefix, clock)
    fail(a, 3)
    a.sync()
    clock.advance(10.0)
    a.call(lambda: None)  # the probe closes it
    assert a.sync() == 0.0
    fail(b, 2)
    assert b.sync() == 0.0
    assert b.stats()["shared"]["consecutive_failures"] == 2


def rate_pair(
    redis_url: str, prefix: str, clock: ManualClock, window: float
) -> tuple[CircuitBreaker, CircuitBreaker]:
    """Two workers' breakers that trip on half of at least 4 calls failing within ``window`` s."""
    return pair(
        redis_url,
        prefix,
        clock,
        failure_threshold=100,
        failure_rate_threshold=0.5,
        minimum_calls=4,
        window_type="time",
        window_duration=window,
    )


def test_failure_rate_over_the_shared_time_window(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = rate_pair(redis_url, redis_prefix, clock, window=30.0)
    a.call(lambda: None)
    a.call(lambda: None)
    a.sync()
    fail(b, 1)
    assert b.sync() == 0.0  # 1 of 3 failed, and fewer than 4 calls
    fail(b, 1)
    assert b.sync() == pytest.approx(10.0)  # 2 of 4 failed
    shared = a.stats()["shared"]
    assert shared["syncs"] >= 1


def test_old_calls_leave_the_shared_window(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = rate_pair(redis_url, redis_prefix, clock, window=5.0)
    fail(a, 3)
    a.sync()
    clock.advance(6.0)
    fail(b, 1)
    b.call(lambda: None)
    assert b.sync() == 0.0
    assert b.stats()["shared"]["window_calls"] == 2


def test_redis_down_the_breaker_works_alone_and_catches_up(redis_server: Any) -> None:
    clock = ManualClock(1_700_000_000.0)
    a, b = pair(redis_server.url, "down:", clock)
    redis_server.kill()
    fail(a, 2)
    with pytest.raises(OSError, match="Redis sync failed"):
        a.sync()
    assert a.stats()["shared"]["errors"] >= 1
    assert a.stats()["shared"]["last_error"]
    fail(a, 1)  # local threshold: it still opens on its own
    assert a.state == "open"
    redis_server.restart()
    deadline = time.monotonic() + 10
    while True:
        try:
            a.sync()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # What it could not send arrived with its opening: the other worker adopts it.
    assert b.sync() == pytest.approx(10.0)
    assert b.state == "open"


def test_the_background_sharing_opens_other_workers(redis_url: str, redis_prefix: str) -> None:
    a, b = pair(redis_url, redis_prefix, None, sync_interval=0.05)
    fail(a, 3)  # opens here, and is sent at once
    deadline = time.monotonic() + 10
    while b.state == "closed":
        assert time.monotonic() < deadline, "the other breaker never opened"
        time.sleep(0.01)
    assert b.state == "open"


WORKER = textwrap.dedent(
    """
    import sys, time
    from seawall import CircuitBreaker
    url, prefix, failures = sys.argv[1], sys.argv[2], int(sys.argv[3])
    br = CircuitBreaker("svc", failure_threshold=3, recovery_timeout=30, store=url,
                        key_prefix=prefix, sync_interval=3600)
    def boom():
        raise RuntimeError("x")
    for _ in range(failures):
        try:
            br.call(boom)
        except RuntimeError:
            pass
    br.sync()
    print(br.state)
    """
)


def test_processes_share_one_breaker(redis_url: str, redis_prefix: str) -> None:
    run: Callable[[int], str] = lambda n: subprocess.run(  # noqa: E731
        [sys.executable, "-c", WORKER, redis_url, redis_prefix, str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert run(2) == "closed"
    assert run(2) == "open"  # its 2 and the first process's 2 make 4 in a row
    assert run(0) == "open"  # a process that saw nothing adopts the open breaker


def test_bad_shared_settings() -> None:
    with pytest.raises(ValueError, match="sync_interval"):
        CircuitBreaker("bad1", store="redis://127.0.0.1:1", sync_interval=0)
    with pytest.raises(ValueError, match="store"):
        CircuitBreaker("bad2", store="memcached://x")
    with pytest.raises(ValueError, match="callable"):
        CircuitBreaker("bad3", store="redis://127.0.0.1:1", clock=lambda: 0.0)
    with pytest.raises(ValueError, match="no store"):
        CircuitBreaker("bad4").sync()
