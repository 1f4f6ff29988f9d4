"""``store=`` and ``limiter=`` for the front doors that decide through :class:`seawall.Limiter`
(``seawall.rate_limit`` and ``seawall.mcp``): one place that validates them and builds the
limiter, so every front door takes the same URLs and options as ``Limiter(..., store=...)``."""

from __future__ import annotations

from typing import Any

from seawall import _seawall
from seawall._limiter import Limiter
from seawall._redis import RedisLimiter
from seawall._workers import warn_if_memory_workers

__all__ = [
    "REDIS_OPTIONS",
    "DefaultLimits",
    "build_limiter",
    "is_redis",
    "limiter_for",
    "redis_options",
    "store_options",
]


class DefaultLimits(str):
    """A front door's default ``limits``: the same text as a string a caller might pass, but
    told apart from it (``isinstance``), so that ``limits`` passed beside ``limiter=`` (which
    would be ignored) is refused while the default is not. ``None`` stays a bad value."""

    __slots__ = ()


# The keyword arguments of ``RedisLimiter`` a front door passes through (``max_keys`` becomes
# its ``max_local_keys``, the bound of the ``on_error="local"`` fallback).
REDIS_OPTIONS = (
    "key_prefix",
    "on_error",
    "connect_timeout",
    "command_timeout",
    "log_interval",
    "breaker_failures",
    "breaker_recovery",
)


def redis_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The :data:`REDIS_OPTIONS` among a front door's ``arguments`` (its ``locals()`` on entry,
    whose parameters carry these names), each ``None`` when not given."""
    return {name: arguments[name] for name in REDIS_OPTIONS}


def limiter_for(
    owner: str,
    limits: Any,
    *,
    limiter: Any,
    beside: dict[str, bool],
    store: str | None,
    algorithm: str,
    max_keys: int,
    clock: Any,
    options: dict[str, Any],
    any_limiter: bool = False,
) -> Any:
    """The limiter a front door decides with: ``limiter`` when one is given ready (checked, and
    with nothing beside it that it would ignore: ``beside`` says which of the front door's own
    settings were given), else one built from ``limits`` and ``store`` (:func:`build_limiter`).
    ``any_limiter``: a ready limiter may be any object with ``hit(key)`` (the MCP decorator's
    ``KeyLimiter``), not only a seawall limiter."""
    if limiter is None:
        return build_limiter(
            owner,
            limits,
            store=store,
            algorithm=algorithm,
            max_keys=max_keys,
            clock=clock,
            options=options,
        )
    if not any_limiter and not isinstance(limiter, _seawall.Limiter) and not is_redis(limiter):
        raise TypeError(
            f"limiter must be a seawall.Limiter or RedisLimiter, got {type(limiter).__name__}"
        )
    clash = [name for name, given in beside.items() if given]
    if clash:
        raise ValueError(
            f"{owner}: limiter= brings its own {', '.join(clash)}; pass them to the limiter, "
            "not beside it"
        )
    check_ready_limiter(owner, limiter, store, options)
    return limiter


def is_redis(limiter: object) -> bool:
    """Whether ``limiter`` keeps its state in Redis (its async methods then really wait)."""
    return isinstance(limiter, RedisLimiter)


def is_memory(store: object) -> bool:
    return store is None or store == "memory://"


def build_limiter(
    owner: str,
    limits: Any,
    *,
    store: str | None,
    algorithm: str,
    max_keys: int,
    clock: Any,
    options: dict[str, Any],
) -> Any:
    """A ``Limiter`` (memory) or ``RedisLimiter`` for ``owner`` (the front door, for messages).

    ``options`` maps each of :data:`REDIS_OPTIONS` to its value, ``None`` when not given. Given
    with a memory store they would be ignored, so they are refused, named.
    """
    given = store_options(owner, store, options)
    if given is None:
        limiter = Limiter(_plain(limits), algorithm=algorithm, max_keys=max_keys, clock=clock)
        warn_if_memory_workers(owner)
        return limiter
    return Limiter(
        _plain(limits), store=store, algorithm=algorithm, max_keys=max_keys, clock=clock, **given
    )


def store_options(owner: str, store: Any, options: dict[str, Any]) -> dict[str, Any] | None:
    """The Redis options given (those not ``None``) for a Redis ``store``, or ``None`` for the
    memory store, where any option given would be ignored and is refused, named; a ``store``
    that is not a string is a ``TypeError``."""
    given = {name: value for name, value in options.items() if value is not None}
    if is_memory(store):
        if given:
            raise ValueError(
                f"{owner}: {', '.join(sorted(given))} apply only with a Redis store= "
                f"(got store={store!r}, the memory store)"
            )
        return None
    if not isinstance(store, str):
        raise TypeError(f"store must be a URL string or None, got {type(store).__name__}")
    if store.startswith("host://") and given:
        raise ValueError(
            f"{owner}: {', '.join(sorted(given))} apply only with a Redis store= "
            f"(got store={store!r}, a host store: nothing to time out, nothing to fall back from)"
        )
    return given


def _plain(limits: Any) -> Any:
    return str(limits) if isinstance(limits, DefaultLimits) else limits


def check_ready_limiter(owner: str, limiter: Any, store: Any, options: dict[str, Any]) -> None:
    """``limiter=`` is a limiter already made: a ``store=`` or a Redis option beside it would be
    ignored, so it is refused, named; a memory one warns as a memory store does."""
    given = sorted(name for name, value in options.items() if value is not None)
    if store is not None:
        given.insert(0, "store")
    if given:
        raise ValueError(
            f"{owner}: limiter= is a ready limiter, so {', '.join(given)} would be ignored; "
            "configure the store on the limiter, or pass store= instead of limiter="
        )
    if isinstance(limiter, _seawall.Limiter):
        warn_if_memory_workers(owner)
