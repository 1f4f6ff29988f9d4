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
    """Work was refused or ended by a :class:`seawall.Backpressure` handler, or refused by a
    :class:`seawall.ConcurrencyLimiter` (``name`` ``"concurrency limiter"``).

    ``reason``: ``"queue_full"`` (the queue holds ``max_queue`` items), ``"memory"`` (the byte
    budget has no room), ``"limit"`` (every slot busy and no queue), ``"timeout"`` (it waited
    longer than ``queue_timeout``), ``"dropped"`` (see :class:`Dropped`) or ``"closed"``.
    ``retry_after``: an estimate, in seconds, of when room may appear (the mean run time times
    the waiters ahead, per slot), or ``None`` when there is none yet. ``name``: the handler's.
    """

    reason: str
    retry_after: float | None
    name: str | None

    def __init__(self, reason: str, retry_after: float | None = None, name: str | None = None):
        super().__init__(reason, retry_after, name)
        self.reason = reason
        self.retry_after = retry_after
        self.name = name

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` in whole seconds, rounded up, at least 1 (for a ``Retry-After``)."""
        return whole_seconds(1.0 if self.retry_after is None else self.retry_after)

    def __str__(self) -> str:
        if self.name == "concurrency limiter":
            return f"concurrency limiter: overloaded ({self.reason})"
        who = f"backpressure {self.name!r}" if self.name else "backpressure"
        return f"{who}: overloaded ({self.reason})"


class Dropped(Overloaded):
    """An item dropped by its handler's strategy: a waiter displaced by ``drop_oldest`` (or
    ``adaptive``), or the new item refused by ``drop_newest``. ``reason`` is ``"dropped"``."""
