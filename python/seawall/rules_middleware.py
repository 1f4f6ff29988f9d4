"""``seawall.rules.RulesMiddleware``: a :class:`~seawall.rules.RulesEngine` in front of an ASGI app.

Pure ASGI, not ``BaseHTTPMiddleware``. Per request there is one call into Rust,
``RulesGate.decide(scope, identifier)``: it reads the client address from the scope (through
``trusted_proxies`` only), takes the path as the endpoint, selects the rule (filters, priority,
else ``default_rule``), applies overrides, decides, and counts the rule's metrics. This module
turns the decision into the response of the rule's strategy (seed 002's, SEEDS-002-003.md A6):

- allowed: the app's response, with ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``;
- ``hard``: 429, no ``Retry-After``; ``retry_after``: 429 with ``Retry-After``;
- ``queue``: 202 with ``Retry-After`` and ``{"status": "queued", "retry_after": n}`` while the
  rule's ``max_queued`` places last (``on_queue`` hears of each), then 429;
- ``graceful``: the app's response, the app told by ``request.state.rate_limit_degraded`` and the
  client by ``X-RateLimit-Degraded: true``;
- ``throttle``: the slot the engine booked is waited for once (``decision.delay``, at most the
  rule's ``max_delay``), then the app's response; no slot within ``max_delay``: 429.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from seawall import _log
from seawall._args import check_optional_callable, check_strings
from seawall._asgi_streams import ReadAhead
from seawall._send import Headers, send_with_headers
from seawall.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.requests import Request

    from seawall._seawall import RuleDecision, RulesEngine
    from seawall.rules import RulesGate

__all__ = ["ExtractIdentifier", "OnQueue", "RulesMiddleware"]

logger = logging.getLogger("seawall.rules")

ExtractIdentifier = Callable[["Request"], "str | Awaitable[str | None] | None"]
OnQueue = Callable[[dict[str, Any]], "Awaitable[None] | None"]

_RATE_LIMITED_CLOSE_CODE = 1008  # policy violation: the close code for a refused websocket
_TRY_AGAIN_LATER_CLOSE_CODE = 1013  # the store cannot decide (on_error="deny")
_JSON = (b"content-type", b"application/json")
_DEGRADED = (b"x-ratelimit-degraded", b"true")


class RulesMiddleware:
    """Applies a :class:`~seawall.rules.RulesEngine` to every request of an ASGI app.

    ``app.add_middleware(RulesMiddleware, engine=engine, default_rule="api")``. Arguments:

    - ``engine``: the rules; changes to them (``add_rule``, overrides) apply to the next request.
    - ``default_rule``: the rule of a request no filtered rule matches (``None``: such requests
      reach the app unlimited). A name the engine does not know is a ``KeyError`` here if the
      engine has rules already; otherwise the first request raises ``LookupError`` (logged
      once).
    - ``extract_identifier``: a function of a Starlette ``Request`` (sync or async) returning the
      request's identifier (``"user:<id>"`` for ``user_ids`` filters and per-user budgets), or
      ``None`` (or ``""``) for the default. It must use **verified** claims (a session, a JWT whose
      signature it checked): an identifier read from an unverified token lets a client pick a
      fresh budget per request or claim another user's. Default: ``"ip:<client address>"``.
    - ``trusted_proxies`` (IPs / CIDRs) and ``proxy_header`` (default ``X-Forwarded-For``): the
      client address is the peer's, unless the peer is a trusted proxy, whose header is then
      read. No proxy is trusted by default.
    - ``on_queue``: called (sync or async) with ``{"method", "path", "identifier", "rule",
      "retry_after"}`` for each request a ``queue`` rule answers 202, before the answer is sent
      (if it raises, the request fails with the error and no 202 is sent).
    - ``exempt_paths``: paths never limited (exact, or a prefix with a trailing ``*``).

    With a Redis store the decision is awaited (``gate.adecide``). When Redis cannot answer, the
    engine's ``on_error`` decides: a refusal it makes is a 503 with ``Retry-After`` (not the
    client's doing, so not a 429), an admission carries no rate-limit header.

    Websocket handshakes are decided too: a refused one is closed with code 1008 (1013 when
    Redis could not decide; a ``graceful`` or ``throttle`` rule lets it through as for HTTP).
    Other scopes (lifespan) pass untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: RulesEngine,
        *,
        default_rule: str | None = None,
        extract_identifier: ExtractIdentifier | None = None,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "x-forwarded-for",
        on_queue: OnQueue | None = None,
        exempt_paths: Iterable[str] = (),
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {type(app).__name__}")
        if default_rule is not None and not isinstance(default_rule, str):
            raise TypeError(
                f"default_rule must be a str or None, got {type(default_rule).__name__}"
            )
        check_optional_callable("extract_identifier", extract_identifier)
        check_optional_callable("on_queue", on_queue)
        exempt = check_strings("exempt_paths", exempt_paths)
        for path in exempt:
            if not path.startswith("/"):
                raise ValueError(
                    f"exempt_paths: {path!r} must start with '/' (it would never match)"
                )
        if default_rule is not None:
            try:
                names = [rule["name"] for rule in engine.rules()]
            except Exception:  # a store that cannot answer now (Redis down): the first request
                names = []
            if names and default_rule not in names:
                raise KeyError(f"default_rule {default_rule!r} is not a rule of the engine")
        # seawall.rules defines the gate (with ``adecide``) and re-exports this class.
        from seawall.rules import RulesGate

        self.app = app
        self.engine = engine
        self.default_rule = default_rule
        self.gate: RulesGate = RulesGate(
            engine,
            default_rule=default_rule,
            trusted_proxies=tuple(check_strings("trusted_proxies", trusted_proxies)),
            proxy_header=proxy_header,
        )
        self.extract_identifier = extract_identifier
        self.on_queue = on_queue
        self._decide = self.gate.decide
        # On Redis a decision is awaited (batched on the loop); elsewhere it is known at once.
        self._remote = self.gate.is_async
        self._exact = frozenset(p for p in exempt if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in exempt if p.endswith("*"))
        self._exempt = bool(exempt)
        self._reported = False
        self._request_class: type[Request] | None = None
        if extract_identifier is not None:
            from starlette.requests import Request

            self._request_class = Request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if self._exempt and self._exempted(scope["path"]):
            await self.app(scope, receive, send)
            return
        identifier = None
        if self.extract_identifier is not None:
            identifier, receive = await self._identify(scope, receive)
        try:
            if self._remote:
                decision = await self.gate.adecide(scope, identifier)
            else:
                decision = self._decide(scope, identifier)
        except LookupError:
            self._report()
            raise
        if decision is None:
            await self.app(scope, receive, send)
        elif decision.allowed:
            if self._remote and decision.fallback:
                # Redis could not decide and on_error let it through: no budget is known.
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, send_with_headers(send, _rate_headers(decision)))
        else:
            await self._refused(scope, receive, send, decision, identifier)

    def _exempted(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    async def _identify(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        """The identifier ``extract_identifier`` returns, and the ``receive`` the app must use
        (one that hands over first whatever the function read of the body)."""
        assert self.extract_identifier is not None and self._request_class is not None
        ahead = ReadAhead(receive)
        value = self.extract_identifier(self._request_class(scope, ahead.read))
        if inspect.isawaitable(value):
            value = await value
        if ahead.pending:
            receive = ahead.receive
        if value is None or value == "":
            return None, receive
        if not isinstance(value, str):
            raise TypeError(
                f"extract_identifier must return a str or None, got {type(value).__name__}"
            )
        return value, receive

    def _report(self) -> None:
        if not self._reported:
            self._reported = True
            logger.exception(
                "RulesMiddleware cannot decide: default_rule %r is not a rule of the engine "
                "(a configuration error; every request fails until it is added)",
                self.default_rule,
            )

    async def _refused(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: RuleDecision,
        identifier: str | None,
    ) -> None:
        if decision.degraded:
            _set_state(scope, "rate_limit_degraded", True)
            headers = _rate_headers(decision)
            headers.append(_DEGRADED)
            await self.app(scope, receive, send_with_headers(send, headers))
            return
        retry = decision.retry_after_header
        if decision.fallback:
            # Redis could not decide and on_error="deny": not the client's doing, so not a 429.
            body = b'{"error":{"code":503,"message":"Rate limit store unavailable"}}'
            await _respond(send, 503, body, [(b"retry-after", b"%d" % retry)])
            return
        delay = decision.delay
        if delay > 0:
            _set_state(scope, "rate_limit_delay", delay)
            await asyncio.sleep(delay)
            await self.app(scope, receive, send_with_headers(send, _rate_headers(decision)))
            return
        if decision.queued:
            if self.on_queue is not None:
                info = {
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "identifier": self._identifier(scope, identifier),
                    "rule": decision.rule,
                    "retry_after": retry,
                }
                result = self.on_queue(info)
                if inspect.isawaitable(result):
                    await result
            body = b'{"status":"queued","retry_after":%d}' % retry
            await _respond(send, 202, body, [(b"retry-after", b"%d" % retry)])
            return
        if logger.isEnabledFor(logging.DEBUG):
            _log.event(
                logger,
                logging.DEBUG,
                "rate_limited",
                "Rate limited by rule %r: %s %s",
                decision.rule,
                scope.get("method"),
                scope["path"],
                site=decision.rule,
                rule=decision.rule,
            )
        if decision.strategy == "hard":
            body = b'{"error":{"code":429,"message":"Rate limit exceeded"}}'
            await _respond(send, 429, body, [])
            return
        body = b'{"error":{"code":429,"message":"Rate limit exceeded","retry_after":%d}}' % retry
        headers = _rate_headers(decision)
        headers.append((b"retry-after", b"%d" % retry))
        await _respond(send, 429, body, headers)

    def _identifier(self, scope: Scope, identifier: str | None) -> str | None:
        """The identifier the gate used: the given one, else ``ip:<client>``."""
        if identifier is not None:
            return identifier
        client = self.gate.client_ip(scope)
        return None if client is None else f"ip:{client}"

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._exempt and self._exempted(scope["path"]):
            await self.app(scope, receive, send)
            return
        identifier = None
        if self.extract_identifier is not None:
            # The handshake is an HTTP GET in all that matters to a Request.
            handshake = dict(scope)
            handshake["type"] = "http"
            handshake["method"] = "GET"
            identifier, _ = await self._identify(handshake, _no_body)
        try:
            if self._remote:
                decision = await self.gate.adecide(scope, identifier)
            else:
                decision = self._decide(scope, identifier)
        except LookupError:
            self._report()
            raise
        if decision is None or decision.allowed:
            await self.app(scope, receive, send)
            return
        if decision.degraded:
            _set_state(scope, "rate_limit_degraded", True)
            await self.app(scope, receive, send)
            return
        if decision.delay > 0:
            _set_state(scope, "rate_limit_delay", decision.delay)
            await asyncio.sleep(decision.delay)
            await self.app(scope, receive, send)
            return
        if logger.isEnabledFor(logging.DEBUG):
            _log.event(
                logger,
                logging.DEBUG,
                "websocket_rate_limited",
                "Rate limited websocket by rule %r: %s",
                decision.rule,
                scope["path"],
                site=decision.rule,
                rule=decision.rule,
            )
        message = await receive()
        if message["type"] == "websocket.connect":
            await send(
                {
                    "type": "websocket.close",
                    "code": _TRY_AGAIN_LATER_CLOSE_CODE
                    if decision.fallback
                    else _RATE_LIMITED_CLOSE_CODE,
                    "reason": "Rate limit store unavailable"
                    if decision.fallback
                    else "Rate limit exceeded",
                }
            )


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _rate_headers(decision: RuleDecision) -> Headers:
    """``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (whole seconds from now, rounded up)."""
    return [
        (b"x-ratelimit-limit", b"%d" % decision.limit),
        (b"x-ratelimit-remaining", b"%d" % decision.remaining),
        (b"x-ratelimit-reset", b"%d" % math.ceil(decision.reset_after)),
    ]


def _set_state(scope: Scope, name: str, value: object) -> None:
    """``request.state.<name> = value`` for the app: Starlette reads ``scope["state"]``, the
    request's own dict (servers copy the lifespan state per request), shared by every layer."""
    scope.setdefault("state", {})[name] = value


async def _respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
