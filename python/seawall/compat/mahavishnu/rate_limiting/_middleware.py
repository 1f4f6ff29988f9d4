"""The seed's ``RateLimitMiddleware(app, engine=..., default_rule=..., extract_identifier=...)``:
:class:`seawall.rules.RulesMiddleware` on the drop-in engine's native rules, one native call per
request (selection among the rules, overrides, the decision and its metrics)."""

from __future__ import annotations

from collections.abc import Iterable

from seawall.rules_middleware import ExtractIdentifier, OnQueue, RulesMiddleware
from seawall.types import ASGIApp

from ._engine import RateLimitEngine

__all__ = ["RateLimitMiddleware"]


class RateLimitMiddleware(RulesMiddleware):
    """Applies a drop-in engine (``create_rate_limiter()``) to every request of an ASGI app:
    ``app.add_middleware(RateLimitMiddleware, engine=limiter, default_rule="api_per_user")``.

    A request falls under the highest-priority enabled rule whose filters (``endpoints``,
    ``user_ids``, ``ip_addresses``) all match it, else ``default_rule`` (``None``: it is not
    limited). The response is the rule's strategy's: 429 (HARD), 429 with ``Retry-After``
    (RETRY_AFTER), 202 queued while ``max_queued`` places last (QUEUE), the app's marked
    ``X-RateLimit-Degraded: true`` (GRACEFUL), the app's after the booked slot (THROTTLE).

    ``extract_identifier(request)`` returns the request's identifier (``"user:<id>"`` for
    ``user_ids`` filters and per-user budgets); it must read **verified** claims (a JWT whose
    signature it checked), or a client picks its own budget. Default: ``"ip:<client>"``, the peer
    address unless the peer is one of ``trusted_proxies``. The other options are
    :class:`~seawall.rules.RulesMiddleware`'s. Rules with a custom algorithm and the engine's
    strategy handler are for ``check_limit`` callers: the middleware never applies them.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: RateLimitEngine,
        default_rule: str | None = None,
        extract_identifier: ExtractIdentifier | None = None,
        *,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "x-forwarded-for",
        on_queue: OnQueue | None = None,
        exempt_paths: Iterable[str] = (),
    ) -> None:
        if not isinstance(engine, RateLimitEngine):
            raise TypeError(
                f"engine must be what create_rate_limiter() returns, got {type(engine).__name__}"
            )
        if default_rule is not None and default_rule in engine._custom:
            raise ValueError(
                f"default_rule {default_rule!r} has a custom algorithm, which runs only in "
                "check_limit: the middleware decides natively"
            )
        super().__init__(
            app,
            engine.native,
            default_rule=default_rule,
            extract_identifier=extract_identifier,
            trusted_proxies=trusted_proxies,
            proxy_header=proxy_header,
            on_queue=on_queue,
            exempt_paths=exempt_paths,
        )
