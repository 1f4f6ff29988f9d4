"""``store="host://NAME"``: limits shared by the processes of one machine through shared memory.

Real processes (multiprocessing, spawned) with threads and asyncio tasks in each, on one key;
the front doors that decide through ``seawall.Limiter`` on a host store; and the errors a user
meets: bad names, options that mean nothing here, another process's other limits or capacity,
a file that is not a segment.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from test_front_door_stores import global_limits_are_all_or_nothing
from test_middleware_redis import STEPS, answers_as_memory_does, client

import seawall
import seawall.host
from seawall import HostLimiter, Limiter, RateLimitExceeded
from seawall.testing import ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ALGORITHMS = ["gcra", "token_bucket", "leaky_bucket", "fixed_window", "sliding_counter"]


@pytest.fixture
def name() -> Iterator[str]:
    n = f"test-{uuid.uuid4().hex[:12]}"
    yield n
    seawall.host.remove(n)


def test_limiter_with_a_host_store_is_a_host_limiter(name: str) -> None:
    clock = ManualClock(1_000)
    a = Limiter("3/minute", store=f"host://{name}", max_keys=1000, clock=clock)
    b = Limiter("3/minute", store=f"host://{name}", max_keys=1000, clock=clock)
    assert isinstance(a, HostLimiter) and a.store == f"host://{name}"
    assert [a.hit("k").allowed, b.hit("k").allowed, a.hit("k").allowed] == [True] * 3
    refused = b.hit("k")
    assert not refused.allowed and refused.retry_after == pytest.approx(20)
    clock.advance(20)
    assert b.allow("k") and not a.allow("k")
    assert a.test("other").remaining == 3
    assert a.reset("k") and b.allow("k")
    assert len(a) == 1 and a.capacity == 1024
    stats = a.stats()
    assert stats["keys"] == 1 and stats["bytes"] == 16384 + 1024 * 72


async def test_async_methods_answer_at_once(name: str) -> None:
    lim = Limiter("2/minute", store=f"host://{name}", max_keys=1000)
    assert (await lim.ahit("k")).allowed and await lim.aallow("k")
    assert not (await lim.atest("k")).allowed
    assert await lim.areset("k")


def _worker(store: str, algorithm: str, attempts: int, out: Any) -> None:
    lim = Limiter("500/hour", store=store, algorithm=algorithm, max_keys=1000)
    admitted = 0
    lock = threading.Lock()

    def thread() -> None:
        nonlocal admitted
        n = sum(lim.hit("hot").allowed for _ in range(attempts))
        with lock:
            admitted += n

    async def tasks() -> int:
        async def one() -> int:
            n = 0
            for _ in range(attempts):
                n += (await lim.ahit("hot")).allowed
                await asyncio.sleep(0)
            return n

        return sum(await asyncio.gather(*(one() for _ in range(3))))

    threads = [threading.Thread(target=thread) for _ in range(3)]
    for t in threads:
        t.start()
    from_tasks = asyncio.run(tasks())
    for t in threads:
        t.join()
    out.put(admitted + from_tasks)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_processes_threads_and_tasks_on_one_key_admit_exactly_the_limit(
    name: str, algorithm: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    store = f"host://{name}"
    procs = [ctx.Process(target=_worker, args=(store, algorithm, 100, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(out.get(timeout=5) for _ in procs) == 500


def test_front_doors_take_a_host_store(name: str) -> None:
    store = f"host://{name}"
    calls = []
    workers = []
    for _ in range(2):

        @seawall.rate_limit("2/minute", store=store, max_keys=1000)
        def endpoint() -> str:
            calls.append(1)
            return "ok"

        workers.append(endpoint)
    workers[0]()
    workers[1]()
    with pytest.raises(RateLimitExceeded):
        workers[0]()
    assert len(calls) == 2


def test_bad_names_and_options_are_named(name: str) -> None:
    for bad in ["", "a/b", "..", ".x", "x y", "ü"]:
        with pytest.raises(ValueError, match="host://NAME"):
            Limiter("1/second", store=f"host://{bad}")
    with pytest.raises(TypeError, match="Redis"):
        Limiter("1/second", store=f"host://{name}", on_error="deny")
    with pytest.raises(ValueError, match="on_error"):
        seawall.rate_limit("1/second", store=f"host://{name}", max_keys=10, on_error="deny")
    with pytest.raises(ValueError, match="sliding_log"):
        Limiter("1/second", store=f"host://{name}", algorithm="sliding_log")
    with pytest.raises(ValueError, match="too many"):
        Limiter("1/second; 2/minute; 3/hour; 4/day", store=f"host://{name}")
    with pytest.raises(ValueError, match="max_keys"):
        Limiter("1/second", store=f"host://{name}", max_keys=0)


def test_one_store_holds_every_front_doors_limits(name: str) -> None:
    """Limiters of other limits share a store (as they share a Redis): each limit set keeps its
    own budgets there, and every process must agree on the capacity."""
    store = f"host://{name}"
    five = Limiter("5/minute", store=store, max_keys=1000)
    one = Limiter("1/minute", store=store, algorithm="fixed_window", max_keys=1000)
    assert one.hit("k").allowed and not one.hit("k").allowed
    assert all(five.hit("k").allowed for _ in range(5)) and not five.hit("k").allowed
    with pytest.raises(ValueError, match="max_keys"):
        Limiter("5/minute", store=store, max_keys=5000)


async def test_mcp_global_limits_on_a_host_store(name: str) -> None:
    await global_limits_are_all_or_nothing(store=f"host://{name}", max_keys=1000)


def test_a_file_that_is_not_a_segment_is_refused_not_read(name: str) -> None:
    path = f"/dev/shm/seawall-{name}" if os.path.isdir("/dev/shm") else None
    if path is None:
        pytest.skip("no /dev/shm here")
    with open(path, "wb") as f:
        f.write(b"not a segment" * 1000)
    with pytest.raises(ValueError, match="not a seawall segment"):
        Limiter("5/minute", store=f"host://{name}", max_keys=10)
    assert seawall.host.remove(name)
    assert not seawall.host.remove(name)
    with pytest.raises(TypeError, match="name"):
        seawall.host.remove(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The middleware and the FastAPI dependency on a host store


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_the_middleware_on_a_host_store_answers_as_memory_does(
    steps: list[tuple[str, str, str, int]],
) -> None:
    """Every status and rate-limit header the same, request by request, on one clock: global,
    route and per-client budgets, decided together in shared memory."""
    name = f"test-eq-{uuid.uuid4().hex[:12]}"
    try:
        answers_as_memory_does(steps, store=f"host://{name}", max_keys=1000)
    finally:
        seawall.host.remove(name)


async def test_the_fastapi_dependency_on_a_host_store_is_shared(name: str) -> None:
    from fastapi import Depends, FastAPI

    from seawall.fastapi import limit

    apps = []
    for _ in range(2):
        app = FastAPI()
        dependency = limit("3/minute", store=f"host://{name}", max_keys=1000)

        @app.get("/search", dependencies=[Depends(dependency)])
        async def search() -> dict[str, str]:
            return {"ok": "yes"}

        apps.append(app)
    statuses = []
    for i in range(5):
        async with client(apps[i % 2]) as c:
            statuses.append((await c.get("/search")).status_code)
    assert statuses == [200, 200, 200, 429, 429]


# --------------------------------------------------------------------------------------------
# CircuitBreaker on a host store


def _fail(breaker: seawall.CircuitBreaker, times: int) -> None:
    def boom() -> None:
        raise RuntimeError("down")

    for _ in range(times):
        with pytest.raises(RuntimeError):
            breaker.call(boom)


def _breaker_in_a_process(store: str, out: Any) -> None:
    """Another worker: one failure, then what the shared breaker says."""
    breaker = seawall.CircuitBreaker(
        name="payments", failure_threshold=3, recovery_timeout=30, store=store
    )
    _fail(breaker, 1)
    out.put((breaker.sync(), breaker.state))


def test_a_breaker_on_a_host_store_is_shared_by_the_processes(name: str) -> None:
    store = f"host://{name}"
    here = seawall.CircuitBreaker(
        name="payments", failure_threshold=3, recovery_timeout=30, store=store, replace=True
    )
    _fail(here, 2)
    assert here.sync() == 0.0 and here.state == "closed"  # two failures in a row so far
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    worker = ctx.Process(target=_breaker_in_a_process, args=(store, out))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    open_for, state = out.get(timeout=5)
    # The third failure in a row, in the other process, opened it for everyone.
    assert open_for == pytest.approx(30, abs=1) and state == "open"
    assert here.sync() > 0 and here.state == "open"
    stats = here.stats()["shared"]
    assert stats["errors"] == 0 and stats["syncs"] >= 2
    assert seawall.host.remove(name)  # the segment's breaker files go with it
    assert not seawall.host.remove(name)


# --------------------------------------------------------------------------------------------
# Opened before a fork (gunicorn --preload), other versions, other users


def _hit_in_forked_child(limiter: HostLimiter, out: Any) -> None:
    out.put(sum(limiter.hit("hot").allowed for _ in range(200)))


def test_a_store_opened_before_fork_is_shared_by_the_children(name: str) -> None:
    limiter = Limiter("300/hour", store=f"host://{name}", max_keys=1000)
    assert limiter.hit("hot").allowed  # used in the parent first, as a preloaded app may
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_hit_in_forked_child, args=(limiter, out)) for _ in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join(60)
        assert c.exitcode == 0
    assert 1 + sum(out.get(timeout=5) for _ in children) == 300


def test_a_segment_of_another_version_is_refused(name: str) -> None:
    limiter = Limiter("5/minute", store=f"host://{name}", max_keys=10)
    with open(limiter.path, "r+b") as f:
        f.seek(8)  # the layout version, after the magic
        f.write((999).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="layout version 999"):
        Limiter("5/minute", store=f"host://{name}", max_keys=10)


def _open_as_nobody(store: str, out: Any) -> None:
    os.setuid(65534)
    try:
        Limiter("5/minute", store=store, max_keys=10)
    except PermissionError as error:
        out.put(("PermissionError", str(error)))
    except Exception as error:  # reported, so that the test names it
        out.put((type(error).__name__, str(error)))
    else:
        out.put(("opened", ""))


def test_another_users_segment_is_a_permission_error(name: str) -> None:
    store = f"host://{name}"
    limiter = Limiter("5/minute", store=store, max_keys=10)
    if os.geteuid() != 0:
        os.chmod(limiter.path, 0)
        with pytest.raises(PermissionError, match="another user"):
            Limiter("5/minute", store=store, max_keys=10)
        return
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_open_as_nobody, args=(store, out))
    child.start()
    child.join(60)
    kind, message = out.get(timeout=5)
    assert kind == "PermissionError" and "another user" in message, message
