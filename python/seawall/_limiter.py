"""``seawall.Limiter``: several limits per key, each with its algorithm, decided together.

Every decision is one call into Rust. The ``a``-prefixed methods (``ahit``, ``aallow``, ``atest``,
``areset``) are the ``async`` forms: thin ``async def`` functions over the sync calls, which never
wait, since the in-memory state answers at once.
"""

from __future__ import annotations

from seawall import _seawall


class Limiter(_seawall.Limiter):
    """Limits per key: ``Limiter("10/second; 1000/day", algorithm="gcra", max_keys=1_000_000)``.

    ``limits`` is a limit string (several joined by ``;``), a :class:`seawall.Limit` (to choose the
    algorithm or burst of one limit), or a list of either. A request is admitted only if every
    limit admits it, and only then counted by all of them.
    """

    __slots__ = ()

    async def ahit(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``hit``, awaitable."""
        return self.hit(key, cost)

    async def aallow(self, key: str, cost: int = 1) -> bool:
        """``allow``, awaitable."""
        return self.allow(key, cost)

    async def atest(self, key: str, cost: int = 1) -> _seawall.Decision:
        """``test``, awaitable."""
        return self.test(key, cost)

    async def areset(self, key: str) -> bool:
        """``reset``, awaitable."""
        return self.reset(key)
