"""The native ``HttpLimiter``, built from checked Python arguments: one place for the ASGI
middleware (:class:`seawall.RateLimitMiddleware`) and the FastAPI dependency
(:func:`seawall.fastapi.limit`), so that the two never disagree on what an argument means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seawall import _seawall
from seawall._args import check_int, check_limits, check_optional_str, check_str, check_strings
from seawall._metrics_registry import track
from seawall._stores import store_options
from seawall._workers import warn_if_memory_workers
from seawall.types import Limits

__all__ = ["RuleTuple", "http_limiter"]

#: A route rule as the native limiter takes it: ``(path, limits, methods, name)``.
RuleTuple = tuple[str, Limits, "Sequence[str] | None", "str | None"]

# An argument the caller does not have: the native default (the middleware's) applies.
_UNSET: Any = object()


def http_limiter(
    *,
    limits: Any,
    rules: Sequence[RuleTuple] = _UNSET,
    global_limits: Any = None,
    algorithm: Any,
    key: Any,
    trusted_proxies: Any,
    proxy_header: Any,
    ipv6_prefix: Any,
    max_key_length: Any,
    exempt_ips: Any,
    exempt_clients: Any = _UNSET,
    bypass_header: Any = None,
    bypass_secret: Any = None,
    headers: Any,
    draft_version: Any = _UNSET,
    max_keys: Any,
    clock: Any,
    owner: str,
    top_keys: Any = _UNSET,
    store: Any = None,
    options: dict[str, Any] | None = None,
) -> _seawall.HttpLimiter:
    """A native limiter. Every argument of the wrong type is a ``TypeError`` naming it (checked
    in the order of the parameters), and the native constructor names those of a wrong value.
    ``rules`` are already checked; an argument not passed takes the native default.

    ``store``: ``None`` or ``"memory://"`` (this process; ``owner`` warns when it is one of
    several workers) or a Redis URL, with ``options`` (the Redis options of
    :data:`seawall._stores.REDIS_OPTIONS`, ``None`` when not given; refused with a memory store).
    """
    given = store_options(owner, store, options or {})
    if given is None:
        warn_if_memory_workers(owner)
    native = _seawall.HttpLimiter(
        limits=None if limits is None else check_limits("limits", limits),
        rules=None if rules is _UNSET else list(rules),
        global_limits=(
            None if global_limits is None else check_limits("global_limits", global_limits)
        ),
        algorithm=check_str("algorithm", algorithm),
        key=check_str("key", key),
        trusted_proxies=check_strings("trusted_proxies", trusted_proxies),
        proxy_header=check_str("proxy_header", proxy_header),
        ipv6_prefix=check_int("ipv6_prefix", ipv6_prefix),
        max_key_length=check_int("max_key_length", max_key_length),
        exempt_ips=check_strings("exempt_ips", exempt_ips),
        exempt_clients=(
            None if exempt_clients is _UNSET else check_strings("exempt_clients", exempt_clients)
        ),
        bypass_header=check_optional_str("bypass_header", bypass_header),
        bypass_secret=check_optional_str("bypass_secret", bypass_secret),
        headers=check_str("headers", headers),
        draft_version=(
            None if draft_version is _UNSET else check_int("draft_version", draft_version)
        ),
        max_keys=check_int("max_keys", max_keys),
        clock=clock,
        **({} if top_keys is _UNSET else {"top_keys": top_keys}),
        **({} if given is None else {"store": store, **given}),
    )
    track(native)  # for the opt-in top-keys endpoint of seawall.prometheus.metrics_app
    return native
