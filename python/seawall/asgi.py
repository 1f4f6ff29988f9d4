"""``seawall.RateLimitMiddleware``: rate limits in front of an ASGI app (Starlette, FastAPI, MCP).

Pure ASGI, not ``BaseHTTPMiddleware``. Per HTTP request there is one call into Rust: it reads the
scope (client, headers, path, method), derives the key (trusted proxies, IPv6 prefixes, hashed
``Authorization``), matches the route rules, decides every limit that applies and renders the
response headers. In memory that call is the middleware's own ``__call__`` (``AsgiEntry``, the
native base class): an admitted request goes to the app's coroutine with a native send that adds
the headers to ``http.response.start`` (streaming untouched). This module sends the 429 itself, and
the app is never called for a denied request.

What only Python can do lives here too: a ``key_func`` taking a Starlette ``Request``, and reading
the request body ahead of the app when the key is a JSON-RPC field, then replaying it to the app
message for message.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from seawall import _log
from seawall._args import (
    check_bool,
    check_int,
    check_iterable,
    check_limits,
    check_optional_callable,
    check_optional_str,
)
from seawall._asgi_streams import ReadAhead, send_learning_sessions
from seawall._http_limiter import http_limiter
from seawall._metrics_registry import track
from seawall._redis import bridge_for
from seawall._route_rule import Rule, rule_tuple
from seawall._seawall import AsgiEntry
from seawall._send import Headers, send_with_headers
from seawall._stores import redis_options
from seawall.shedding import ConcurrencyLimitMiddleware
from seawall.types import ASGIApp, Limits, Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.requests import Request

    from seawall._seawall import HttpLimiter

__all__ = ["ConcurrencyLimitMiddleware", "RateLimitMiddleware", "Rule"]

logger = logging.getLogger("seawall.asgi")

KeyFunc = Callable[["Request"], "str | Awaitable[str | None] | None"]
ErrorBody = Callable[[int], "bytes | Mapping[str, Any]"]

_RATE_LIMITED_CLOSE_CODE = 1008  # policy violation: the close code for a refused websocket
_TRY_AGAIN_LATER_CLOSE_CODE = 1013  # the store cannot decide (on_error="deny")


class RateLimitMiddleware(AsgiEntry):
    """Rate limits for every HTTP request of an ASGI app, decided in one native call.

    ``app.add_middleware(RateLimitMiddleware, limits="100/minute")``. The main arguments:

    - ``limits``: per-client limits for requests no rule matches; ``rules``: per-route limits, as
      :class:`Rule` objects or ``(path, limits, methods, name)`` tuples (the last two optional);
      ``global_limits``: one budget shared by all clients, on every request.
    - ``key``: whose budget a request spends: ``"ip"`` (default), ``"header:<Name>"``
      (``Authorization`` is hashed), ``"query:<name>"``, ``"mcp-session"`` or
      ``"jsonrpc:<dotted.path>"`` (read from the body, at most ``max_body_bytes``); a missing
      source falls back to the client IP. ``"mcp-session"`` keys by an ``Mcp-Session-Id`` only
      if the server issued it (the middleware remembers, up to ``max_keys``, the ids in the app's
      ``mcp-session-id`` response headers); any other request, including every request to a
      stateless server, is keyed by the client IP. A client can still reset such a key by
      opening a new session, which spends its IP budget. ``key_func``: a function of a
      Starlette ``Request`` (sync or async) returning the key, or ``None`` to use ``key``; its
      keys are stored as ``"fn:<value>"``, apart from the ``ip:``/``header:`` keys, so a value
      such as ``"ip:198.51.100.7"`` cannot spend that address's budget (``exempt_clients``
      match the value itself).
    - ``trusted_proxies``: IPs / CIDRs whose proxy header is believed (default: none; IPv4-mapped
      networks such as ``::ffff:10.0.0.0/104`` count as the IPv4 networks they map);
      ``proxy_header``: the one header those proxies write the client into, and the only one
      read: ``"X-Forwarded-For"`` (the default, the one uvicorn reads; written by nginx, AWS
      ALB, Caddy, Traefik), ``"Forwarded"`` (RFC 7239 ``for=``), ``"X-Real-IP"``, or any header
      name (``"CF-Connecting-IP"``). ``ipv6_prefix``: IPv6 clients share a budget per prefix.
    - ``exempt_ips``, ``exempt_clients``: never limited. ``bypass_header`` + ``bypass_secret``:
      a request carrying the secret (compared in constant time) skips the limits.
    - ``headers``: ``"x-ratelimit"``, ``"draft"`` (IETF ``RateLimit`` / ``RateLimit-Policy``,
      ``draft_version`` 11), ``"both"`` or ``"none"``. ``error_body``: ``(retry_after) -> bytes |
      dict`` replacing the default 429 JSON body.
    - ``websockets``: also limit websocket handshakes (a refused one is closed with code 1008).
    - ``max_keys``: the most client keys the whole middleware keeps in memory, one store for the
      default ``limits`` and every rule (a full store forgets the keys that are already fresh
      first). ``len(middleware.limiter)``: the keys held.
    - ``top_keys``: who is being limited: the client keys this process answered 429 most, in a
      bounded space-saving top-K of ``top_keys`` keys (default 100, 0: off), counted on the
      refused path only; ``middleware.limiter.top_limited(n=10)`` returns ``(key, refusals)``
      pairs, estimates as :class:`seawall.Limiter`'s are. Never exported as metric labels.
    - ``store``: where the budgets are kept: this process's memory (``None``, the default, or
      ``"memory://"``; each worker process then has budgets of its own, and a WARNING at start-up
      says so when it is one of several), or Redis (``"redis://host:6379/0"``, ``rediss://``,
      ``unix://``, ``redis+cluster://``, ``redis+sentinel://``), shared exactly by every worker
      and host: a request's global, route and per-client limits are decided in one script call,
      all or nothing, and the requests that arrive while others are in flight share a call.
      With Redis: ``key_prefix`` (default ``"seawall:"``; apps sharing a Redis need their own),
      ``connect_timeout`` / ``command_timeout`` (1.0 / 0.25 s), ``breaker_failures`` /
      ``breaker_recovery`` (the breaker around Redis), ``log_interval`` (failure reports on
      ``seawall.redis``), and ``on_error``, what a client gets while Redis cannot answer:
      ``"allow"`` (default) calls the app with no rate-limit header (no budget is known);
      ``"deny"`` answers 503 with ``Retry-After`` (not 429: the client did nothing wrong);
      ``"local"`` decides with this process's own budgets, adding no rate-limit header when it
      admits and answering 429 with ``Retry-After`` only when it refuses. These options are
      refused with the memory store.
    - ``name``: the ``middleware`` label of its metrics (:meth:`stats`, ``seawall.prometheus``);
      unnamed middlewares are ``default``, ``default#2``...

    At least one of ``limits``, ``rules`` and ``global_limits`` is required. Every argument of
    the wrong type or value is a ``TypeError`` or ``ValueError`` naming it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits | None = None,
        rules: Iterable[Rule | Sequence[Any]] = (),
        global_limits: Limits | None = None,
        algorithm: str = "gcra",
        key: str = "ip",
        key_func: KeyFunc | None = None,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
        ipv6_prefix: int = 64,
        max_key_length: int = 256,
        exempt_ips: Iterable[str] = (),
        exempt_clients: Iterable[str] = (),
        bypass_header: str | None = None,
        bypass_secret: str | None = None,
        headers: Literal["x-ratelimit", "draft", "both", "none"] | str = "x-ratelimit",
        draft_version: int = 11,
        error_body: ErrorBody | None = None,
        max_body_bytes: int = 65536,
        websockets: bool = False,
        max_keys: int = 1_000_000,
        top_keys: int = 100,
        clock: Any = None,
        store: str | None = None,
        key_prefix: str | None = None,
        on_error: Literal["allow", "deny", "local"] | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        log_interval: float | None = None,
        breaker_failures: int | None = None,
        breaker_recovery: float | None = None,
        name: str | None = None,
    ) -> None:
        options = redis_options(locals())
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {type(app).__name__}")
        check_optional_callable("key_func", key_func)
        check_optional_callable("error_body", error_body)
        check_int("max_body_bytes", max_body_bytes, minimum=0)
        check_bool("websockets", websockets)
        self.name = check_optional_str("name", name)
        self.app = app
        self.limiter: HttpLimiter = http_limiter(
            # Checked here too, so that a bad ``limits`` is named before a bad rule.
            limits=None if limits is None else check_limits("limits", limits),
            rules=[rule_tuple(i, rule) for i, rule in enumerate(check_iterable("rules", rules))],
            global_limits=global_limits,
            algorithm=algorithm,
            key=key,
            trusted_proxies=trusted_proxies,
            proxy_header=proxy_header,
            ipv6_prefix=ipv6_prefix,
            max_key_length=max_key_length,
            exempt_ips=exempt_ips,
            exempt_clients=exempt_clients,
            bypass_header=bypass_header,
            bypass_secret=bypass_secret,
            headers=headers,
            draft_version=draft_version,
            max_keys=max_keys,
            top_keys=top_keys,
            clock=clock,
            owner="seawall.RateLimitMiddleware",
            store=store,
            options=options,
        )
        self.key_func = key_func
        self.error_body = error_body
        self.max_body_bytes = max_body_bytes
        self.websockets = websockets
        self._check = self.limiter.check
        self._submit = self.limiter._submit
        # On Redis a decision is awaited (one script call, shared with the other requests of
        # the loop's turn); in memory it is known at once.
        self._remote = self.limiter.is_async
        self._needs_body = self.limiter.needs_body
        # With MCP session keys, the ids the app issues are learnt from its responses.
        self._issue_session = self.limiter.issue_session if self.limiter.learns_sessions else None
        # The fast path: no Python per request at all (``AsgiEntry.__call__``).
        plain = key_func is None and not self._needs_body and self._issue_session is None
        self._fast = plain and not self._remote
        self._fast_remote = plain and self._remote
        self._request_class: type[Request] | None = None
        if key_func is not None:
            from starlette.requests import Request

            self._request_class = Request
        track(self)  # for seawall.prometheus; counting is native, read by stats()
        if self._fast:
            # From here, calling the middleware decides natively (``AsgiEntry.__call__``) and
            # returns the app's own coroutine: no Python frame of the middleware per request.
            self._fast_path(app, self.limiter)

    def stats(self) -> dict[str, Any]:
        """Counts since start, read in one native call: ``routes``, one dict per route budget
        (``route``: the rule's path pattern as written, ``"default"`` for the default limits,
        ``"global"`` for requests only the global limits apply to; ``allowed``, ``denied``,
        and on a Redis store ``store_ok``, ``store_fallback`` (decided by ``on_error``) and
        ``store_error`` (a configuration error, raised)); ``store``: the Redis store's counts,
        round trips and breaker (``None`` in memory). Exempt and bypassed requests are not
        counted."""
        return self.limiter.stats()

    # ``__call__`` is ``AsgiEntry``'s: the native fast path, else this.
    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.websockets:
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if self._fast_remote:
            result = await self._decide_remote(scope, None, None)
        else:
            result, receive, send = await self._decide_with_python(scope, receive, send)
        if result is None:
            await self.app(scope, receive, send)
        elif result[0]:
            await self.app(scope, receive, send_with_headers(send, result[1]))
        else:
            await self._deny(scope, send, result[1], result[2], result[3])

    async def _decide_remote(
        self, scope: Scope, key: str | None, body: bytes | None
    ) -> tuple[bool, Headers, bytes | None, int] | None:
        """The decision on a Redis store: known at once (the breaker around Redis is open, or
        no limit applies), or awaited from the one script call of this request."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        result = self._submit(bridge_for(loop), future, scope, key, body)
        if result is future:
            return await future  # type: ignore[no-any-return]
        return result

    async def _decide(
        self, scope: Scope, key: str | None, body: bytes | None
    ) -> tuple[bool, Headers, bytes | None, int] | None:
        if self._remote:
            return await self._decide_remote(scope, key, body)
        return self._check(scope, key, body)

    async def _decide_with_python(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[tuple[bool, Headers, bytes | None, int] | None, Receive, Send]:
        """The decision when a ``key_func`` or the body is needed, or session ids are learnt:
        returns it with the ``receive`` the app must use (one that hands over first what was
        read ahead) and the ``send`` (one that learns the session ids the app issues)."""
        if self._issue_session is not None:
            send = send_learning_sessions(send, self._issue_session)
        key = None
        if self.key_func is not None:
            ahead = ReadAhead(receive)
            key = await self._call_key_func(scope, ahead.read)
            if ahead.pending:
                receive = ahead.receive
        body = None
        if key is None and self._needs_body:
            body, receive = await self._read_body(receive)
        return await self._decide(scope, key, body), receive, send

    async def _call_key_func(self, scope: Scope, receive: Receive | None) -> str | None:
        assert self.key_func is not None and self._request_class is not None
        if receive is None:
            request = self._request_class(scope)
        else:
            request = self._request_class(scope, receive)
        value = self.key_func(request)
        if inspect.isawaitable(value):
            value = await value
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise TypeError(f"key_func must return a str or None, got {type(value).__name__}")
        return value

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, Receive]:
        """Read the body ahead of the app, at most ``max_body_bytes`` of it.

        Returns the body (``None`` if it is larger than that, or the client left first) and the
        ``receive`` that replays every message read, unchanged, before the rest of the stream.
        """
        ahead = ReadAhead(receive)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await ahead.read()
            if message["type"] != "http.request":  # http.disconnect: the app will see it too
                return None, ahead.receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, ahead.receive
            if chunk:
                parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts), ahead.receive

    async def _deny(
        self, scope: Scope, send: Send, headers: Headers, body: bytes | None, status: int
    ) -> None:
        # A 503 (the store cannot decide, on_error="deny") keeps seawall's own body:
        # ``error_body`` words a rate limit, which this is not.
        if self.error_body is not None and status == 429:
            headers, body = self._custom_error(headers, body)
        if logger.isEnabledFor(logging.DEBUG):
            what = "Rate limited" if status == 429 else "Rate limit store unavailable, refused"
            _log.event(
                logger,
                logging.DEBUG,
                "rate_limited" if status == 429 else "store_unavailable",
                "%s %s %s",
                what,
                scope.get("method"),
                scope.get("path"),
                status=status,
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body or b""})

    def _custom_error(self, headers: Headers, body: bytes | None) -> tuple[Headers, bytes | None]:
        assert self.error_body is not None
        retry_after = _retry_after(headers)
        try:
            content = self.error_body(retry_after)
            if isinstance(content, (bytes, bytearray, memoryview)):
                custom = bytes(content)
            elif isinstance(content, Mapping):
                custom = json.dumps(dict(content), separators=(",", ":")).encode()
            else:
                raise TypeError(
                    f"error_body must return bytes or a dict, got {type(content).__name__}"
                )
        except Exception:
            _log.event(
                logger,
                logging.ERROR,
                "error_body_failed",
                "error_body failed; sending the default 429 body",
                exc_info=True,
            )
            return headers, body
        length = str(len(custom)).encode()
        fixed = [(n, length) if n == b"content-length" else (n, v) for n, v in headers]
        return fixed, custom

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The native check reads HTTP scopes; a handshake is an HTTP GET in all that matters.
        handshake = dict(scope)
        handshake["type"] = "http"
        handshake["method"] = "GET"
        key = None
        if self.key_func is not None:
            key = await self._call_key_func(handshake, None)
        result = await self._decide(handshake, key, None)
        if result is None or result[0]:
            await self.app(scope, receive, send)
            return
        if logger.isEnabledFor(logging.DEBUG):
            _log.event(
                logger,
                logging.DEBUG,
                "websocket_rate_limited",
                "Rate limited websocket %s",
                scope.get("path"),
            )
        message = await receive()
        if message["type"] == "websocket.connect":
            limited = result[3] == 429
            await send(
                {
                    "type": "websocket.close",
                    "code": _RATE_LIMITED_CLOSE_CODE if limited else _TRY_AGAIN_LATER_CLOSE_CODE,
                    "reason": "Rate limit exceeded" if limited else "Rate limit store unavailable",
                }
            )


def _retry_after(headers: Headers) -> int:
    for name, value in headers:
        if name == b"retry-after":
            try:
                return int(value)
            except ValueError:
                break
    return 1
