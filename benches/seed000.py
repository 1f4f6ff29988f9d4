"""A pure-Python token bucket and client limiter equivalent to seed 000's, for benchmarks.

Same logic as the seed's ``snowflake_mcp_server/rate_limiting/token_bucket.py``: one
``asyncio.Lock`` per bucket and one per limiter, ``time.time()``, float tokens, a refill on every
``consume``, the same statistics counters, the same per-client configurations and cleanup loop.

The seed's per-call ``logger.debug`` / ``logger.warning`` calls are kept as written: their
f-strings are formatted on every call even when the log level drops the record, and that is part of
what the seed costs. With logging left at Python's default configuration (as in the benchmark),
nothing is printed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class TokenBucketConfig:
    """Configuration for token bucket rate limiter."""

    capacity: int  # Maximum tokens in bucket
    refill_rate: float  # Tokens per second refill rate
    initial_tokens: int  # Initial tokens when bucket is created

    def __post_init__(self) -> None:
        if self.initial_tokens > self.capacity:
            self.initial_tokens = self.capacity


class TokenBucket:
    """Token bucket rate limiter for individual clients."""

    def __init__(self, config: TokenBucketConfig, client_id: str = "unknown") -> None:
        self.config = config
        self.client_id = client_id

        self._tokens = float(config.initial_tokens)
        self._last_refill = time.time()
        self._lock = asyncio.Lock()

        # Statistics
        self._total_requests = 0
        self._rejected_requests = 0
        self._last_rejection_time: float | None = None

    async def consume(self, tokens: int = 1) -> bool:
        """Attempt to consume tokens from bucket; ``True`` if consumed, ``False`` if rejected."""
        async with self._lock:
            await self._refill()

            self._total_requests += 1

            if self._tokens >= tokens:
                self._tokens -= tokens
                logger.debug(
                    f"Client {self.client_id}: Consumed {tokens} tokens, "
                    f"{self._tokens:.1f} remaining"
                )
                return True
            else:
                self._rejected_requests += 1
                self._last_rejection_time = time.time()
                logger.warning(
                    f"Client {self.client_id}: Rate limit exceeded, "
                    f"{self._tokens:.1f} tokens available"
                )
                return False

    async def peek(self) -> float:
        """Get current token count without consuming."""
        async with self._lock:
            await self._refill()
            return self._tokens

    async def _refill(self) -> None:
        """Refill tokens based on elapsed time."""
        now = time.time()
        elapsed = now - self._last_refill

        if elapsed > 0:
            tokens_to_add = elapsed * self.config.refill_rate
            self._tokens = min(self.config.capacity, self._tokens + tokens_to_add)
            self._last_refill = now

    def get_stats(self) -> dict[str, Any]:
        """Get rate limiting statistics."""
        rejection_rate = (
            self._rejected_requests / self._total_requests if self._total_requests > 0 else 0
        )

        return {
            "client_id": self.client_id,
            "current_tokens": self._tokens,
            "capacity": self.config.capacity,
            "refill_rate": self.config.refill_rate,
            "total_requests": self._total_requests,
            "rejected_requests": self._rejected_requests,
            "rejection_rate": rejection_rate,
            "last_rejection_time": self._last_rejection_time,
        }

    async def reset(self) -> None:
        """Reset bucket to initial state."""
        async with self._lock:
            self._tokens = float(self.config.initial_tokens)
            self._last_refill = time.time()
            self._total_requests = 0
            self._rejected_requests = 0
            self._last_rejection_time = None


class ClientRateLimiter:
    """Manage rate limiting for multiple clients."""

    def __init__(
        self,
        default_config: TokenBucketConfig,
        cleanup_interval: timedelta = timedelta(hours=1),
    ) -> None:
        self.default_config = default_config
        self.cleanup_interval = cleanup_interval

        self._client_buckets: dict[str, TokenBucket] = {}
        self._client_configs: dict[str, TokenBucketConfig] = {}
        self._lock = asyncio.Lock()

        # Background cleanup
        self._cleanup_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Number of buckets held (an addition for the benchmark; the seed has none)."""
        return len(self._client_buckets)

    async def start(self) -> None:
        """Start rate limiter background tasks."""
        self._cleanup_task = asyncio.create_task(self._cleanup_loop())
        logger.info("Client rate limiter started")

    async def stop(self) -> None:
        """Stop rate limiter."""
        if self._cleanup_task:
            self._cleanup_task.cancel()
        logger.info("Client rate limiter stopped")

    async def set_client_config(self, client_id: str, config: TokenBucketConfig) -> None:
        """Set custom rate limit configuration for client."""
        async with self._lock:
            self._client_configs[client_id] = config

            # Update existing bucket if present
            if client_id in self._client_buckets:
                self._client_buckets[client_id].config = config

        logger.info("Updated rate limit config for client %s", client_id)

    async def consume(self, client_id: str, tokens: int = 1) -> bool:
        """Consume tokens for client."""
        bucket = await self._get_or_create_bucket(client_id)
        return await bucket.consume(tokens)

    async def check_limit(self, client_id: str, tokens: int = 1) -> bool:
        """Check if client can consume tokens without actually consuming."""
        bucket = await self._get_or_create_bucket(client_id)
        current_tokens = await bucket.peek()
        return current_tokens >= tokens

    async def get_client_stats(self, client_id: str) -> dict[str, Any] | None:
        """Get rate limiting stats for specific client."""
        async with self._lock:
            if client_id in self._client_buckets:
                return self._client_buckets[client_id].get_stats()
            return None

    async def get_all_stats(self) -> dict[str, Any]:
        """Get rate limiting stats for all clients."""
        async with self._lock:
            client_stats = {}
            total_requests = 0
            total_rejected = 0

            for client_id, bucket in self._client_buckets.items():
                stats = bucket.get_stats()
                client_stats[client_id] = stats
                total_requests += stats["total_requests"]
                total_rejected += stats["rejected_requests"]

            return {
                "total_clients": len(self._client_buckets),
                "total_requests": total_requests,
                "total_rejected": total_rejected,
                "global_rejection_rate": (
                    total_rejected / total_requests if total_requests > 0 else 0
                ),
                "clients": client_stats,
            }

    async def reset_client(self, client_id: str) -> bool:
        """Reset rate limit for specific client."""
        async with self._lock:
            if client_id in self._client_buckets:
                await self._client_buckets[client_id].reset()
                logger.info("Reset rate limit for client %s", client_id)
                return True
            return False

    async def _get_or_create_bucket(self, client_id: str) -> TokenBucket:
        """Get existing bucket or create new one for client."""
        async with self._lock:
            if client_id not in self._client_buckets:
                config = self._client_configs.get(client_id, self.default_config)
                self._client_buckets[client_id] = TokenBucket(config, client_id)
                logger.debug(f"Created rate limit bucket for client {client_id}")

            return self._client_buckets[client_id]

    async def _cleanup_loop(self) -> None:
        """Background cleanup of unused client buckets."""
        while True:
            try:
                await asyncio.sleep(self.cleanup_interval.total_seconds())
                await self._cleanup_inactive_buckets()
            except asyncio.CancelledError:
                break
            except Exception as e:
                logger.error("Error in rate limiter cleanup: %s", e)

    async def _cleanup_inactive_buckets(self) -> None:
        """Remove buckets for inactive clients."""
        inactive_threshold = time.time() - self.cleanup_interval.total_seconds()

        async with self._lock:
            inactive_clients = []

            for client_id, bucket in self._client_buckets.items():
                # Remove if no recent rejections and no recent activity
                if (
                    bucket._last_rejection_time is None
                    or bucket._last_rejection_time < inactive_threshold
                ):
                    inactive_clients.append(client_id)

            for client_id in inactive_clients:
                self._client_buckets.pop(client_id, None)
