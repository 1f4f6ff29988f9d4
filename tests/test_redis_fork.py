"""``fork()`` after use (gunicorn ``--preload``): every connection is made again in the child.

The parent uses a limiter (and a shared breaker) on every path, so each pool and connection holds
a live socket, then forks. Children decide on the sync path, the direct asyncio path and the
tokio path, while the parent keeps deciding on its own connections; each checks that every
decision came from Redis and that every ``remaining`` is the one its own key should have. A
socket shared with the parent would cross replies between the processes. Each child reports
through a pipe and ends with ``os._exit``; the parent waits a bounded time for it (a hang
detector, not a timing assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import time
from collections.abc import Callable
from typing import Any

from seawall import CircuitBreaker, RedisLimiter

PATIENT: dict[str, Any] = {"on_error": "deny", "connect_timeout": 5.0, "command_timeout": 5.0}
N = 60  # decisions per key; the limit is far above, so remaining counts down from 999
HANG = 60.0


def fork_child(body: Callable[[], dict[str, Any]]) -> tuple[int, int]:
    """Fork; the child runs ``body`` and writes its JSON result to a pipe. (pid, read end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            out = body()
        except BaseException as e:
            out = {"exception": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    return pid, r


def collect(pid: int, r: int) -> dict[str, Any]:
    data = b""
    deadline = time.monotonic() + HANG
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} hung")
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data) if data else {"exception": "no result"}
    return result


def wrong(decisions: list[tuple[bool, int]]) -> list[tuple[int, bool, int]]:
    """The decisions that are not the n-th hit on a fresh key of 1000/minute."""
    return [
        (i, allowed, remaining)
        for i, (allowed, remaining) in enumerate(decisions)
        if not allowed or remaining != 999 - i
    ]


def use_every_path(lim: RedisLimiter, key: str) -> None:
    """Leave a connection on the sync pool, the direct asyncio path and the tokio path."""

    async def both_loops() -> None:
        for _ in range(3):
            await lim.ahit(key)

    for _ in range(3):
        lim.hit(key)
    asyncio.run(both_loops())  # the first loop owns the direct connection from its 2nd call
    asyncio.run(both_loops())  # a second loop takes the tokio path


def test_children_after_use_decide_on_their_own_connections(
    redis_url: str, redis_prefix: str
) -> None:
    lim = RedisLimiter("1000/minute", store=redis_url, key_prefix=redis_prefix, **PATIENT)
    use_every_path(lim, "parent-warm")

    def child(i: int) -> Callable[[], dict[str, Any]]:
        def body() -> dict[str, Any]:
            sync = [(d.allowed, d.remaining) for d in (lim.hit(f"s{i}") for _ in range(N))]

            async def direct() -> list[tuple[bool, int]]:
                return [((d := await lim.ahit(f"a{i}")).allowed, d.remaining) for _ in range(N)]

            async def concurrent() -> list[int]:
                ds = await asyncio.gather(*(lim.ahit(f"c{i}") for _ in range(N)))
                return sorted(d.remaining for d in ds if d.allowed)

            a = asyncio.run(asyncio.wait_for(direct(), HANG / 2))
            c = asyncio.run(asyncio.wait_for(concurrent(), HANG / 2))
            return {"sync": wrong(sync), "async": wrong(a), "concurrent": c, "stats": lim.stats()}

        return body

    children = [fork_child(child(i)) for i in range(3)]
    # The parent keeps deciding on its connections while the children run.
    parent = [(d.allowed, d.remaining) for d in (lim.hit("parent") for _ in range(N))]

    async def parent_async() -> list[tuple[bool, int]]:
        return [((d := await lim.ahit("parent-a")).allowed, d.remaining) for _ in range(N)]

    parent_a = asyncio.run(asyncio.wait_for(parent_async(), HANG / 2))
    results = [collect(pid, r) for pid, r in children]
    for res in results:
        assert "exception" not in res, res
        assert res["sync"] == [] and res["async"] == [], res
        assert res["concurrent"] == list(range(1000 - N, 1000)), res
        assert res["stats"]["errors"] == 0 and res["stats"]["fallbacks"] == 0, res
    assert wrong(parent) == [] and wrong(parent_a) == []
    assert lim.stats()["errors"] == 0


def test_child_of_a_parent_that_was_connecting(redis_url: str, redis_prefix: str) -> None:
    """Forked right after the first ``ahit`` (the direct connection possibly still being made
    on a thread the child does not have): every async decision of the child comes from Redis
    and is its own key's."""
    lim = RedisLimiter("1000/minute", store=redis_url, key_prefix=redis_prefix, **PATIENT)

    async def once() -> None:
        await lim.ahit("warm")

    asyncio.run(once())

    def body() -> dict[str, Any]:
        async def run() -> list[tuple[bool, int]]:
            return [((d := await lim.ahit("k")).allowed, d.remaining) for _ in range(N)]

        out = asyncio.run(asyncio.wait_for(run(), HANG / 2))
        return {"wrong": wrong(out), "stats": lim.stats()}

    res = collect(*fork_child(body))
    assert res.get("wrong") == [] and res["stats"]["errors"] == 0, res


def test_shared_breaker_syncs_in_a_child(redis_url: str, redis_prefix: str) -> None:
    """A shared breaker used in the parent, then forked: the child shares through a connection
    of its own (``sync()`` works), and its background sharing runs (a breaker it opens is seen
    open in Redis by the parent's twin)."""
    settings: dict[str, Any] = {
        "failure_threshold": 2,
        "recovery_timeout": 30.0,
        "jitter": 0.0,
        "store": redis_url,
        "key_prefix": redis_prefix,
        "sync_interval": 0.05,
        "replace": True,
    }
    br = CircuitBreaker("forked", **settings)
    assert br.sync() == 0.0

    def boom() -> None:
        raise RuntimeError("down")

    def body() -> dict[str, Any]:
        synced = br.sync()
        for _ in range(2):
            with contextlib.suppress(RuntimeError):
                br.call(boom)
        # The background task shares the opening at once (poke) and every 50 ms.
        deadline = time.monotonic() + HANG / 2
        while br.stats()["shared"]["syncs"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"synced": synced, "state": br.state, "shared": br.stats()["shared"]}

    res = collect(*fork_child(body))
    assert "exception" not in res, res
    assert res["synced"] == 0.0 and res["state"] == "open", res
    assert res["shared"]["syncs"] >= 3 and res["shared"]["errors"] == 0, res
    # The parent's twin learns it from Redis.
    twin = CircuitBreaker("forked", **settings)
    assert twin.sync() > 0
    assert twin.state == "open"
