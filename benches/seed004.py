"""Seed 004's ``RateLimiterService`` in pure Python, the seed's way, for benchmarks.

The seed (a FastMCP + Starlette rate-limiting example) keeps a sliding window as a list of
timestamps per client (``defaultdict(list)``). Every ``check_and_record`` call

1. removes old timestamps (rebuilds the client's list, keeping ``now - t < window``),
2. checks whether the limit is exceeded (``len(log) >= limit``: denied, nothing recorded),
3. records the request (appends ``now``) if allowed,
4. returns ``(is_allowed, rate_info)`` with ``limit``, ``remaining``, ``reset_time`` and
   ``retry_after``.

So each call costs O(entries in the client's log), allowed or denied. Logging is at the levels the
seed names: INFO once at initialisation, DEBUG for each allowed request, WARNING on each violation.
The seed shows only the messages, not the call style; they are written here with lazy ``%`` args
(no formatting unless a handler takes the record), the cheaper choice for this implementation.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RateLimiterService"]


class RateLimiterService:
    """Centralised sliding-window rate limiting: ``default_limit`` per ``default_window`` s."""

    def __init__(self, default_limit: int = 10, default_window: int = 60) -> None:
        self.default_limit = default_limit
        self.default_window = default_window
        # Sliding window: {client_id: [timestamp1, timestamp2, ...]}
        self._request_log: dict[str, list[float]] = defaultdict(list)
        logger.info("RateLimiterService initialized: %d req/%ds", default_limit, default_window)

    def check_and_record(
        self, client_id: str, limit: int | None = None, window: int | float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Admit and record one request for ``client_id`` if fewer than ``limit`` were recorded
        in the last ``window`` seconds; returns ``(is_allowed, rate_info)``."""
        limit = self.default_limit if limit is None else limit
        window = self.default_window if window is None else window
        now = time.time()

        # 1. Remove old timestamps
        log = [t for t in self._request_log[client_id] if now - t < window]
        self._request_log[client_id] = log

        # 2. Check if limit exceeded
        if len(log) >= limit:
            oldest = log[0]
            retry_after = int(oldest + window - now) + 1
            logger.warning("Rate limit exceeded for client '%s'", client_id)
            return False, {
                "limit": limit,
                "remaining": 0,
                "reset_time": int(oldest + window),
                "retry_after": retry_after,
            }

        # 3. Record new request if allowed
        log.append(now)
        logger.debug(
            "Request allowed for client '%s': %d/%d requests used", client_id, len(log), limit
        )

        # 4. Return (is_allowed, rate_info)
        return True, {
            "limit": limit,
            "remaining": limit - len(log),
            "reset_time": int(log[0] + window),
            "retry_after": 0,
        }
