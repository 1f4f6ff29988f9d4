"""seawall's exceptions: the base class :class:`SeawallError`, and what limiters and breakers raise.

Bad arguments are ``ValueError`` / ``TypeError`` as everywhere in Python; these are for the
decisions themselves.
"""

from __future__ import annotations

from seawall._time import whole_seconds

__all__ = ["CircuitOpenError", "Dropped", "Overloaded", "RateLimitExceeded", "SeawallError"]


class SeawallError(Exception):
    """Base class of every exception seawall raises for its own decisions."""


class CircuitOpenError(SeawallError):
    """A call was rejected by a circuit breaker (open, or half-open with every probe slot busy).

    ``name``: the breaker's name. ``retry_after``: seconds until it could admit a call (exact, not
    rounded; ``inf`` while it is forced open).
    """

    name: str
    retry_after: float

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` in whole seconds, rounded up, at least 1 (for a ``Retry-After``)."""
        return whole_seconds(self.retry_after)

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open; retry after {self.retry_after:.3f} s"


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
        return whole_seconds(self.retry_after)

    def __str__(self) -> str:
        return (
            f"rate limit exceeded for {self.key!r} (limit {self.limit}); "
            f"retry after {self.retry_after:.3f} s"
        )


class Overloaded(SeawallError):
    """Work was refused because the service is at its capacity (load shedding).

    ``reason``: why (``"limit"``: every permit busy and no queue; ``"queue_full"``;
    ``"timeout"``: it waited in the queue longer than allowed). ``retry_after``: seconds after
    which trying again is reasonable, or ``None``.
    """

    reason: str
    retry_after: float | None

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Dropped(Overloaded):
    """Work that was accepted, then dropped before it ran (a waiting item displaced)."""
