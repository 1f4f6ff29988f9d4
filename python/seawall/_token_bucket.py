"""The token-bucket API of seed 000 (``TokenBucket``, ``ClientRateLimiter``) on the native core.

Every decision is made by one call into Rust. The ``async`` methods exist because the seed's API is
``async``; they are thin ``async def`` functions over the sync native calls (the fastest awaitable
measured, and a real coroutine), and they never wait: the in-memory state answers at once. Each has
a sync twin for code that is not async: ``consume`` / ``try_consume``, ``peek`` / ``peek_sync``, and
so on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from seawall import _seawall

logger = logging.getLogger("seawall.token_bucket")


class TokenBucket(_seawall.TokenBucket):
    """A token bucket for one client: ``capacity`` tokens, refilled at ``refill_rate`` per second.

    ``TokenBucket(config, client_id="unknown", *, clock=None)``. Without ``clock`` it follows the
    default clock (see :func:`seawall.testing.use_clock`).
    """

    __slots__ = ()

    async def consume(self, tokens: int = 1) -> bool:
        """Take ``tokens`` if they are all there; ``True`` if taken."""
        return self.try_consume(tokens)

    async def peek(self) -> float:
        """The tokens there now, fractions included; takes none."""
        return self.peek_sync()

    async def reset(self) -> None:
        """Back to ``initial_tokens``, counters zeroed."""
        self.reset_sync()


class ClientRateLimiter(_seawall.ClientRateLimiter):
    """A token bucket per client id, bounded to ``max_clients`` buckets.

    ``ClientRateLimiter(default_config, cleanup_interval=timedelta(hours=1), *,
    max_clients=1_000_000, clock=None)``.

    ``start()`` runs a background task that, every ``cleanup_interval``, drops the buckets that are
    full again: a full bucket grants nothing a new one would not, so this loses nothing. Without
    ``start()`` memory is still bounded by ``max_clients``.

    ``top_keys`` (default 100, 0: off): the client ids refused most, counted on the refused path
    only in a bounded space-saving top-K, as :class:`seawall.Limiter` counts its keys:
    ``top_limited(n=10)``, ``top_limited_summary()``, ``reset_top_limited()``.
    """

    __slots__ = ("_cleanup_task",)
    _cleanup_task: asyncio.Task[None] | None

    async def start(self) -> None:
        """Start the background cleanup (idempotent)."""
        task: asyncio.Task[None] | None = getattr(self, "_cleanup_task", None)
        if task is not None and not task.done():
            return
        self._cleanup_task = asyncio.create_task(self._cleanup_loop())
        logger.info("Client rate limiter started")

    async def stop(self) -> None:
        """Stop the background cleanup and wait for it to end."""
        task: asyncio.Task[None] | None = getattr(self, "_cleanup_task", None)
        self._cleanup_task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        logger.info("Client rate limiter stopped")

    async def _cleanup_loop(self) -> None:
        interval = self.cleanup_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                removed = self.cleanup()
                logger.debug("Cleaned up %d full rate limit buckets", removed)
            except Exception:
                logger.exception("Error in rate limiter cleanup")

    async def consume(self, client_id: str, tokens: int = 1) -> bool:
        """Take ``tokens`` from ``client_id``'s bucket if they are all there."""
        return self.try_consume(client_id, tokens)

    async def check_limit(self, client_id: str, tokens: int = 1) -> bool:
        """Whether ``client_id`` could take ``tokens`` now; takes none."""
        return self.check_limit_sync(client_id, tokens)

    async def peek(self, client_id: str) -> float:
        """The tokens in ``client_id``'s bucket now."""
        return self.peek_sync(client_id)

    async def set_client_config(self, client_id: str, config: _seawall.TokenBucketConfig) -> None:
        """Give ``client_id`` its own configuration; a held bucket keeps its tokens.

        At most ``max_clients`` clients have their own (one more raises ``ValueError``); setting
        a client back to ``default_config`` frees its entry. ``memory_bytes()`` counts them.
        """
        self.set_client_config_sync(client_id, config)
        logger.info("Updated rate limit config for client %s", client_id)

    async def get_client_stats(self, client_id: str) -> dict[str, Any] | None:
        """``client_id``'s bucket statistics, or ``None`` if no bucket is held for it."""
        return self.get_client_stats_sync(client_id)

    async def get_all_stats(self) -> dict[str, Any]:
        """Statistics of every bucket held, with totals."""
        return self.get_all_stats_sync()

    async def reset_client(self, client_id: str) -> bool:
        """Refill ``client_id``'s bucket and zero its counters; ``False`` if none is held."""
        reset = self.reset_client_sync(client_id)
        if reset:
            logger.info("Reset rate limit for client %s", client_id)
        return reset
