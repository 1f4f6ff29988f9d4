"""``seawall.HostLimiter``: the limits of :class:`seawall.Limiter`, shared exactly by every
process of one machine through a named shared-memory segment (``store="host://NAME"``).

Every decision is one call into Rust on the caller's thread, at memory speed: there is no server
and no wait, so the ``a``-prefixed methods answer at once, as ``Limiter``'s do.
"""

from __future__ import annotations

from typing import Any

from seawall import _seawall
from seawall._metrics_registry import track

__all__ = ["HostLimiter"]


class HostLimiter(_seawall.HostLimiter):
    """Limits per key, shared by the workers of one machine:
    ``Limiter("10/second; 1000/day", store="host://myapp")`` (or ``HostLimiter(...)`` with the
    same arguments).

    The first process to name ``myapp`` creates the segment (``/dev/shm/seawall-myapp``, room for
    ``max_keys`` keys, 72 bytes each, reserved at once); the others open it and must give the
    same ``max_keys`` (a mismatch is a ``ValueError`` naming it). Like a Redis, one store serves
    every limiter of an app: each limit set (up to 96 per store) keeps its own budgets in it, and
    limiters of the same limits in any process share theirs. Names are 1 to 100 letters, digits,
    ``-``, ``_`` and ``.``. The segment outlives the
    processes, so limits survive rolling and full restarts; ``seawall.host.remove("myapp")``
    removes it (when no worker runs). A worker killed mid-decision loses at most that decision,
    and no key admits more than its limit afterwards. Every algorithm but ``sliding_log`` (one
    entry per request has no fixed size), up to three limits per key. ``stats()`` counts this
    process's decisions and the segment's keys.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        track(self)  # for seawall.prometheus; the native __new__ took the arguments

    async def ahit(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``hit``, awaitable."""
        return self.hit(key, cost)

    async def ahit_with(
        self, key: str, other: HostLimiter, other_key: str, cost: int = 1
    ) -> _seawall.Decision:
        """``hit_with``, awaitable."""
        return self.hit_with(key, other, other_key, cost)

    async def aallow(self, key: str, cost: int = 1) -> bool:
        """``allow``, awaitable."""
        return self.allow(key, cost)

    async def atest(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``test``, awaitable."""
        return self.test(key, cost)

    async def areset(self, key: str) -> bool:
        """``reset``, awaitable."""
        return self.reset(key)
