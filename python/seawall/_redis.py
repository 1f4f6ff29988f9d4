"""``seawall.RedisLimiter``: the limits of :class:`seawall.Limiter`, shared through Redis.

Every worker and host that names the same Redis shares each key's budget exactly: one Lua script
decides all of a key's limits atomically, on the server's clock. ``hit`` / ``allow`` / ``test`` /
``reset`` block without holding the GIL; ``ahit`` / ``aallow`` / ``atest`` / ``areset`` are
awaited on asyncio. An async decision that needs Redis runs on seawall's own I/O thread, and its
result comes back through a pipe the event loop watches (one wake-up per batch of results, no GIL
taken off the loop's thread); one known at once (the breaker around Redis is open) is returned
without touching either.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from seawall import _seawall
from seawall._metrics_registry import track

__all__ = ["RedisLimiter", "bridge_for"]

_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _seawall.Bridge] = (
    weakref.WeakKeyDictionary()
)
# The last loop seen, so that the common case (one loop) skips the dictionary.
_last: tuple[asyncio.AbstractEventLoop | None, _seawall.Bridge | None] = (None, None)


def _bridge(loop: asyncio.AbstractEventLoop) -> _seawall.Bridge:
    global _last
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _seawall.Bridge()
        os.set_blocking(bridge.fileno(), False)
        loop.add_reader(bridge.fileno(), bridge.drain)
        _bridges[loop] = bridge
    _last = (loop, bridge)
    return bridge


def bridge_for(loop: asyncio.AbstractEventLoop) -> _seawall.Bridge:
    """The bridge that brings results of Redis calls made on seawall's I/O thread back to
    ``loop`` (made on first use; the last one is kept at hand)."""
    last_loop, bridge = _last
    if last_loop is loop and bridge is not None:
        return bridge
    return _bridge(loop)


class RedisLimiter(_seawall.RedisLimiter):
    """Limits per key with state in Redis.

    ``RedisLimiter("10/second; 1000/day", store="redis://127.0.0.1:6379/0")``; also reached as
    ``seawall.Limiter(limits, store=url)``. ``store`` takes ``redis://``, ``rediss://``,
    ``unix://``, ``redis+cluster://h1:p1,h2:p2`` and ``redis+sentinel://h:p/service`` URLs, with
    ``user:password@``; a malformed one (a port outside 1-65535, a missing or bad host, a
    database that is not a whole number, or not 0 on a Cluster) is a ``ValueError`` naming the
    part, with the password hidden.

    When Redis fails or is slower than ``command_timeout``, ``on_error`` decides: ``"allow"``
    (admit), ``"deny"`` (refuse, ``retry_after`` until the next probe) or ``"local"`` (an
    in-memory limiter with the same limits). After ``breaker_failures`` failures in a row, no
    call is made for ``breaker_recovery`` seconds (doubling while Redis stays down), so an
    outage costs one timeout per probe, not one per request; failures are logged on
    ``seawall.redis`` at most once per ``log_interval`` seconds. A store that can never work as
    configured (refused credentials, an ACL without the script or the keys) is not an outage:
    each call then raises ``PermissionError`` (logged at ERROR) whatever ``on_error`` says.
    ``reset`` and ``areset`` raise ``OSError`` when Redis fails or the breaker is open.

    Connections are per process: after ``fork()`` (gunicorn ``--preload``) a child makes its
    own at first use.

    Any ``str`` is a key: all of one key's Redis keys (``redis_keys(key)``) share one Cluster
    hash tag, a key that would break it (empty, or holding ``}``) being escaped inside it.

    The time is Redis's ``TIME``, so hosts with skewed clocks agree; a ``ManualClock`` (or an
    installed default one) is sent instead, for tests.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        track(self)  # for seawall.prometheus; the native __new__ took the arguments

    # Each async method is written out in full: one coroutine per decision, not two.

    async def ahit(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``hit``, awaitable."""
        loop = asyncio.get_running_loop()
        last_loop, bridge = _last
        if last_loop is not loop or bridge is None:
            bridge = _bridge(loop)
        future: asyncio.Future[_seawall.Decision] = loop.create_future()
        decision = self._submit(bridge, future, key, cost, True)
        if decision is not None:
            return decision
        return await future

    async def ahit_with(
        self, key: str, other: RedisLimiter, other_key: str, cost: int = 1
    ) -> _seawall.Decision:
        """``hit_with``, awaitable: ``key`` here and ``other_key`` in ``other`` (on the same
        Redis) decided at once, all or nothing, in one script call; the binding decision."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_seawall.Decision] = loop.create_future()
        decision = self._submit_with(bridge_for(loop), future, key, other, other_key, cost)
        if decision is not None:
            return decision
        return await future

    async def aallow(self, key: str, cost: int = 1) -> bool:
        """``allow``, awaitable."""
        return (await self.ahit(key, cost)).allowed

    async def atest(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``test``, awaitable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_seawall.Decision] = loop.create_future()
        decision = self._submit(_bridge(loop), future, key, cost, False)
        if decision is not None:
            return decision
        return await future

    async def ausage(self, key: str) -> list[dict[str, Any]]:
        """``usage``, awaitable (in a worker thread: one script call)."""
        return await asyncio.to_thread(self.usage, key)

    async def areset(self, key: str) -> bool:
        """``reset``, awaitable: whether Redis held any state for ``key``; ``OSError`` (Redis
        failed, or the breaker around it is open) and ``PermissionError`` as ``reset``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._submit_reset(_bridge(loop), future, key)
        return await future
