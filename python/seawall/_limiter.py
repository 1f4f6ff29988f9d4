"""``seawall.Limiter``: several limits per key, each with its algorithm, decided together.

Every decision is one call into Rust. The ``a``-prefixed methods (``ahit``, ``aallow``, ``atest``,
``areset``) are the ``async`` forms: thin ``async def`` functions over the sync calls, which never
wait, since the in-memory state answers at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from seawall import _seawall
from seawall._metrics_registry import track

if TYPE_CHECKING:
    from seawall._redis import RedisLimiter


class Limiter(_seawall.Limiter):
    """Limits per key: ``Limiter("10/second; 1000/day", algorithm="gcra", max_keys=1_000_000)``.

    ``limits`` is a limit string (several joined by ``;``), a :class:`seawall.Limit` (to choose the
    algorithm or burst of one limit), or a list of either. A request is admitted only if every
    limit admits it, and only then counted by all of them.

    ``set_override(key, limits)`` gives one key other limits; at most ``max_keys`` keys have
    them, and ``clear_override(key)`` frees one. ``memory_bytes()`` counts the keys, their states
    and the overrides (the README's Performance section gives the figures per key).

    ``store``: where the state lives. ``None`` (or ``"memory://"``): this process's memory, as
    above. A Redis URL (``redis://``, ``rediss://``, ``redis+cluster://``, ``redis+sentinel://``)
    returns a :class:`seawall.RedisLimiter` with the same limits, shared by every process that
    names that Redis; the keyword arguments it takes besides these (``key_prefix``, ``on_error``,
    the timeouts) pass through, and ``max_keys`` bounds its local fallback. ``"host://NAME"``
    returns a :class:`seawall.HostLimiter`: the same limits shared by every process of this
    machine through a shared-memory segment, at memory speed (``max_keys`` is its capacity).
    (Type checkers read any other ``store`` string as a Redis URL: typed code that uses a host
    store builds :class:`seawall.HostLimiter` itself, with the same arguments.)

    ``top_keys``: who is being limited. The limiter counts the keys it refuses in a bounded
    space-saving top-K of ``top_keys`` keys (default 100; 0 turns it off), on the refused path
    only: ``top_limited(n=10)`` returns the ``n`` keys refused most as ``(key, refusals)``,
    ``top_limited_summary()`` each count's error bound, ``reset_top_limited()`` forgets them.
    The counts are estimates: a key's true count is between ``count - error`` and ``count``
    (``error`` is 0, the count exact, for a key held since its first refusal), and every key
    refused more than ``total / top_keys`` times is held. Keys longer than 128 bytes are kept as
    their SHA-256. Client keys are never exported as metric labels.
    """

    __slots__ = ("__weakref__",)

    @overload
    def __new__(
        cls,
        limits: Any,
        *,
        store: Literal["memory://"] | None = None,
        algorithm: str = "gcra",
        max_keys: int = 1_000_000,
        clock: Any = None,
        top_keys: int = 100,
    ) -> Limiter: ...
    @overload
    def __new__(  # type: ignore[misc]
        cls,
        limits: Any,
        *,
        store: str,
        algorithm: str = "gcra",
        max_keys: int = 1_000_000,
        clock: Any = None,
        top_keys: int = 100,
        **options: Any,
    ) -> RedisLimiter: ...
    def __new__(
        cls,
        limits: Any,
        *,
        store: str | None = None,
        algorithm: str = "gcra",
        max_keys: int = 1_000_000,
        clock: Any = None,
        top_keys: int = 100,
        **options: Any,
    ) -> Any:
        if store is None or store == "memory://":
            if options:
                raise TypeError(
                    f"Limiter() got unexpected keyword arguments {sorted(options)}; they "
                    "apply only with a Redis store"
                )
            limiter = super().__new__(
                cls, limits, algorithm=algorithm, max_keys=max_keys, clock=clock, top_keys=top_keys
            )
            track(limiter)
            return limiter
        if not isinstance(store, str):
            raise TypeError(f"store must be a URL string or None, got {type(store).__name__}")
        if store.startswith("host://"):
            if options:
                raise TypeError(
                    f"Limiter() got unexpected keyword arguments {sorted(options)}; they "
                    "apply only with a Redis store"
                )
            from seawall._host import HostLimiter

            return HostLimiter(
                limits,
                store=store,
                algorithm=algorithm,
                max_keys=max_keys,
                clock=clock,
                top_keys=top_keys,
            )
        from seawall._redis import RedisLimiter

        return RedisLimiter(
            limits,
            store=store,
            algorithm=algorithm,
            max_local_keys=max_keys,
            clock=clock,
            top_keys=top_keys,
            **options,
        )

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
