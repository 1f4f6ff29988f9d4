"""seawall's exceptions: one base class, :class:`SeawallError`, and what the limiters raise.

Bad arguments are ``ValueError`` / ``TypeError`` as everywhere in Python; these are for the
decisions themselves.
"""

from __future__ import annotations

import math

__all__ = ["RateLimitExceeded", "SeawallError"]


class SeawallError(Exception):
    """Base class of every exception seawall raises for its own decisions."""


class RateLimitExceeded(SeawallError):
    """A call was refused by a rate limit.

    ``retry_after``: seconds until the same call would be admitted (exact, not rounded; ``inf``
    when it never would be). ``limit``: the count of the limit that refused it. ``key``: whose
    budget it was.
    """

    retry_after: float
    limit: int
    key: str

    def __init__(self, retry_after: float, limit: int, key: str) -> None:
        super().__init__(retry_after, limit, key)
        self.retry_after = retry_after
        self.limit = limit
        self.key = key

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` in whole seconds, rounded up, at least 1 (for a ``Retry-After``)."""
        if not math.isfinite(self.retry_after):
            return 2**31 - 1
        return max(1, math.ceil(self.retry_after))

    def __str__(self) -> str:
        return (
            f"rate limit exceeded for {self.key!r} (limit {self.limit}); "
            f"retry after {self.retry_after:.3f} s"
        )
