"""Seed 004 (FastMCP + Starlette example), ``RateLimiterService``, on seawall's native sliding log.

Same constructor, same ``check_and_record(client_id, limit=None, window=None) -> (allowed, info)``
and the same admissions as the original's list of timestamps per client: one log per client,
pruned by the window of each call. The original rebuilt that list on every call, O(limit) time;
here each call costs amortised O(1) whatever the limit, and the log never holds more entries than
the largest limit used. A denied request is logged at DEBUG, not WARNING: under a flood, a log
record per denial costs more than the decision and fills the disk.
"""

from __future__ import annotations

import logging
from typing import Any

from seawall import _seawall

__all__ = ["RateLimiterService"]

logger = logging.getLogger("seawall.compat.fastmcp_example")


class RateLimiterService:
    """Sliding-window limits per client: ``default_limit`` per ``default_window`` seconds."""

    def __init__(
        self,
        default_limit: int = 10,
        default_window: int = 60,
        *,
        max_clients: int = 1_000_000,
        clock: Any = None,
    ) -> None:
        if isinstance(default_limit, bool) or not isinstance(default_limit, int):
            raise TypeError(f"default_limit must be an int, got {type(default_limit).__name__}")
        if default_limit < 1:
            raise ValueError(f"default_limit must be at least 1, got {default_limit}")
        if not isinstance(default_window, (int, float)) or not default_window > 0:
            raise ValueError(
                f"default_window must be a positive number of seconds, got {default_window!r}"
            )
        self.default_limit = default_limit
        self.default_window = default_window
        self._log = _seawall.SlidingLogService(max_keys=max_clients, clock=clock)
        logger.info("RateLimiterService initialized: %d req/%ss", default_limit, default_window)

    def check_and_record(
        self, client_id: str, limit: int | None = None, window: float | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Admit one request for ``client_id`` if fewer than ``limit`` were admitted in the last
        ``window`` seconds, and record it if so.

        ``info`` holds ``limit``, ``window``, ``remaining``, ``reset_time`` (epoch seconds when the
        window is clear again) and ``retry_after`` (whole seconds, rounded up; 0 when allowed).
        """
        allowed, info = self._log.check_and_record(
            client_id,
            self.default_limit if limit is None else limit,
            self.default_window if window is None else window,
        )
        if not allowed:
            # DEBUG, not the original's WARNING: one log record per denied request is what an
            # attacker would like most (each costs microseconds and a line of output).
            logger.debug("Rate limit exceeded for client '%s'", client_id)
        return allowed, info

    def reset(self, client_id: str) -> bool:
        """Forget ``client_id``'s log; ``False`` if none was held."""
        return self._log.reset(client_id)

    def cleanup(self) -> int:
        """Drop every client whose log is empty (lossless); returns how many."""
        return self._log.cleanup()

    def __len__(self) -> int:
        return len(self._log)
