"""How ``RedisLimiter`` calls its decision script on real redis-servers (nothing mocked).

Where Redis allows it the script is a Redis 7 function, loaded on first use (``FUNCTION LOAD``)
and called by ``FCALL``; a server that lost it (``FUNCTION FLUSH``, a restart) gets it again. A
server without ``FCALL`` (renamed away here, as Redis < 7 lacks it), or whose ACL denies
``FCALL`` or ``FUNCTION LOAD``, is called by ``EVALSHA`` and the script's source. Shown for the
sync path (blocking connections), the async path (the first call over tokio while the direct
connection is made, then the direct connection), and concurrent calls batched in one script
call: every decision comes from Redis, with the key's state intact, and nothing falls back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis_servers import RedisServer

from seawall import RedisLimiter

PATIENT = {"on_error": "deny", "connect_timeout": 5.0, "command_timeout": 5.0}


def calls(r: redis.Redis, command: str) -> int:
    """How many times Redis ran ``command`` (``INFO commandstats``), 0 if never."""
    stats = r.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def libraries(r: redis.Redis) -> list[str]:
    """The names of the seawall function libraries the server holds."""
    names = []
    for lib in r.function_list():
        fields = dict(zip(lib[::2], lib[1::2], strict=True))
        name = fields[b"library_name"].decode()
        if name.startswith("seawall_decide_"):
            names.append(name)
    return names


async def exercise(lim: RedisLimiter, flush: redis.Redis | None = None) -> None:
    """Sync, async and batched async decisions on a fresh ``10/minute`` limiter, flushing the
    server's functions and scripts between them when ``flush`` is given."""

    def lost() -> None:
        if flush is not None:
            flush.function_flush()
            flush.script_flush()

    assert lim.hit("k").remaining == 9
    lost()
    assert lim.hit("k").remaining == 8
    lost()
    assert (await lim.ahit("k")).remaining == 7
    assert (await lim.ahit("k")).remaining == 6
    lost()
    ds = await asyncio.gather(*(lim.ahit("k") for _ in range(4)))
    assert sorted(d.remaining for d in ds) == [2, 3, 4, 5]
    stats = lim.stats()
    assert stats["errors"] == 0 and stats["fallbacks"] == 0, stats


def test_function_flush_is_recovered(redis_url: str, redis_prefix: str) -> None:
    r = redis.Redis.from_url(redis_url)
    try:
        lim = RedisLimiter("10/minute", store=redis_url, key_prefix=redis_prefix, **PATIENT)
        asyncio.run(exercise(lim, flush=r))
        assert len(libraries(r)) == 1, "loaded again after the last flush"
    finally:
        r.close()


@pytest.fixture
def without_fcall() -> Iterator[RedisServer]:
    """A redis-server without FCALL, as before Redis 7."""
    with RedisServer(extra_args=["--rename-command", "FCALL", ""]) as server:
        yield server


def test_a_server_without_fcall_is_called_by_evalsha(without_fcall: RedisServer) -> None:
    r = redis.Redis.from_url(without_fcall.url)
    try:
        lim = RedisLimiter("10/minute", store=without_fcall.url, key_prefix="nofcall:", **PATIENT)
        asyncio.run(exercise(lim, flush=r))
        assert calls(r, "evalsha") > 0
        assert libraries(r) == []
    finally:
        r.close()


@pytest.mark.parametrize("denied", ["-fcall", "-function"])
def test_an_acl_without_functions_is_called_by_evalsha(
    redis_server: RedisServer, denied: str
) -> None:
    r = redis.Redis.from_url(redis_server.url)
    user = f"u{uuid.uuid4().hex[:8]}"
    try:
        r.acl_setuser(
            user,
            enabled=True,
            passwords=["+pw"],
            keys=["~*"],
            channels=["&*"],
            commands=["+@all", denied],
        )
        url = f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0"
        lim = RedisLimiter("10/minute", store=url, key_prefix="acl:", **PATIENT)
        asyncio.run(exercise(lim))
        assert calls(r, "evalsha") > 0
        assert libraries(r) == []
    finally:
        r.close()
