"""Whose budget an MCP tool call spends: the key sources, each namespaced by who writes it.

See :mod:`seawall.mcp` for what each ``key=`` means; :class:`Keys` computes a call's identity for
one decorator or middleware, :func:`session_identity` is the ``key="session"`` identity for
callers of their own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, cast

from seawall.mcp._context import is_fastmcp_context, is_modern, request_context

__all__ = ["KEY_NAMES", "KeyName", "Keys", "check_trusted_proxies", "session_identity"]

KeyName = Literal["auto", "principal", "address", "session", "client-id", "client"]
KEY_NAMES: tuple[str, ...] = typing.get_args(KeyName)

_log = logging.getLogger("seawall.mcp")
_warned: set[str] = set()
_warn_lock = threading.Lock()


def _warn_once(what: str, message: str) -> None:
    with _warn_lock:
        if what in _warned:
            return
        _warned.add(what)
    _log.warning(message)


@functools.lru_cache(maxsize=64)
def _address_resolver(trusted_proxies: tuple[str, ...], proxy_header: str) -> Callable[[Any], str]:
    """``key_for(scope) -> "ip:<addr>"``: the HTTP middleware's own client-address logic
    (peer address; ``proxy_header`` only from ``trusted_proxies``; IPv6 grouped per /64)."""
    from seawall._seawall import HttpLimiter

    # Only its key_for is used: the limit is there because a limiter must limit something.
    resolver = HttpLimiter(
        limits="1/second",
        key="ip",
        trusted_proxies=list(trusted_proxies),
        proxy_header=proxy_header,
    )
    return resolver.key_for


def check_trusted_proxies(
    trusted_proxies: Iterable[str], proxy_header: str = "X-Forwarded-For"
) -> Callable[[Any], str]:
    if isinstance(trusted_proxies, (str, bytes)):
        raise TypeError(
            "trusted_proxies must be a list of IP addresses or CIDR networks, not a single "
            f"{type(trusted_proxies).__name__}"
        )
    try:
        proxies = tuple(trusted_proxies)
    except TypeError:
        raise TypeError(
            "trusted_proxies must be an iterable of IP addresses or CIDR networks, got "
            f"{type(trusted_proxies).__name__}"
        ) from None
    for proxy in proxies:
        if not isinstance(proxy, str):
            raise TypeError(
                f"trusted_proxies must hold strings, got {type(proxy).__name__}: {proxy!r}"
            )
    if not isinstance(proxy_header, str):
        raise TypeError(f"proxy_header must be a str, got {type(proxy_header).__name__}")
    return _address_resolver(proxies, proxy_header)  # the native parser raises ValueError


_auth: tuple[type, Any] | None = None


def _access_token(rc: Any) -> Any:
    """The verified access token of the current request, or ``None``: what fastmcp's
    ``get_access_token`` reads (the HTTP request's authenticated user, else the SDK's auth
    context variable), for both frameworks, without raising when there is no HTTP request."""
    global _auth
    if _auth is None:
        try:
            from mcp.server.auth.middleware.auth_context import auth_context_var
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        except Exception:  # the SDK's auth is not installed: no request is authenticated
            return None
        _auth = (AuthenticatedUser, auth_context_var)
    authenticated_user, auth_var = _auth
    request = getattr(rc, "request", None)
    if request is not None:
        user = getattr(request, "scope", {}).get("user")
        if isinstance(user, authenticated_user):
            return getattr(user, "access_token", None)
    user = auth_var.get()
    return getattr(user, "access_token", None) if user is not None else None


@functools.lru_cache(maxsize=4096)
def _principal_key(parts: tuple[Any, ...]) -> str:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]
    return f"principal:{digest}"


def _principal(rc: Any) -> str | None:
    """``principal:<hash>`` of the access token's client id, issuer and subject, if any."""
    token = _access_token(rc)
    if token is None:
        return None
    claims = getattr(token, "claims", None) or {}
    parts = (getattr(token, "client_id", None), claims.get("iss"), getattr(token, "subject", None))
    if not any(parts):
        return None
    try:
        return _principal_key(parts)
    except TypeError:  # an unhashable claim
        return _principal_key.__wrapped__(parts)


def _tag(obj: object) -> str | None:
    """A server-generated id stored on ``obj`` (made on first use), or ``None`` if it takes none."""
    try:
        attrs = vars(obj)
    except TypeError:
        return None
    tag = attrs.get("_seawall_connection")
    if tag is None:
        tag = attrs.setdefault("_seawall_connection", uuid.uuid4().hex)
    return cast("str", tag)


def _connection_tag(rc: Any) -> str | None:
    """The transport connection of a stdio or in-memory request, as a server-generated id.

    Handshake-era connections and 2026-07-28 ones over a stream pair (stdio, fastmcp's in-memory
    transport) keep one outbound channel per connection; the SDK's in-memory ``Client`` in
    2026-07-28 mode has none, but one transport context per client.
    """
    session = getattr(rc, "session", None)
    connection = getattr(session, "_connection", None)
    if connection is not None and getattr(connection, "has_standalone_channel", False):
        return _tag(connection.outbound)
    inner = getattr(getattr(session, "_request_outbound", None), "_inner", None)
    transport = getattr(inner, "transport", None)
    if transport is not None and getattr(transport, "kind", None) == "direct":
        return _tag(transport)
    return None


def _server_session(rc: Any) -> str | None:
    """``session:<id>`` of a session the server issued, else ``None``.

    Only handshake-era connections the server keeps have one: the ``Mcp-Session-Id`` it issued
    over streamable HTTP (the SDK answers 404 to one it did not), else one id per connection
    (stdio, SSE, in memory). 2026-07-28 connections and ``stateless_http`` have none.
    """
    if rc is None or is_modern(rc):
        return None
    connection = getattr(getattr(rc, "session", None), "_connection", None)
    if connection is None or not getattr(connection, "has_standalone_channel", False):
        return None  # stateless HTTP: a connection per request
    session_id = connection.session_id
    if session_id:
        return f"session:{session_id}"
    tag = _tag(connection.outbound)
    return None if tag is None else f"session:{tag}"


def _meta_client_id(rc: Any) -> str | None:
    params = getattr(rc, "params", None)  # the SDK's raw params; fastmcp lifts ``meta``
    raw = params.get("_meta") if isinstance(params, Mapping) else None
    for meta in (getattr(rc, "meta", None), raw):
        if isinstance(meta, Mapping):
            value = meta.get("client_id")
            if value is not None and value != "":
                return value if isinstance(value, str) else json.dumps(value, default=str)
    return None


class Keys:
    """Computes a call's identity for one decorator or middleware: see the module docstring."""

    __slots__ = ("address_of", "source")

    def __init__(
        self,
        source: str,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
    ) -> None:
        self.source = source
        self.address_of = check_trusted_proxies(trusted_proxies, proxy_header)

    def __call__(self, ctx: Any) -> str:
        source = self.source
        if ctx is None:
            _warn_once(
                "no-context",
                "seawall.mcp: a rate-limited tool ran outside any MCP request: all such calls "
                "share one budget per tool.",
            )
            return "none"
        rc = request_context(ctx)
        if source == "session":
            session = _server_session(rc)
            if session is not None:
                return session
            _warn_once(
                "no-session",
                "seawall.mcp: key='session', but this connection has no session the server "
                "issued (a 2026-07-28 connection, or stateless_http): limiting by the "
                "authenticated principal or the client address instead.",
            )
        elif source in ("client-id", "client"):
            client_id = _meta_client_id(rc) if rc is not None else None
            if client_id is not None:
                return f"client-id:{client_id}"
        if source != "address":
            principal = _principal(rc)
            if principal is not None:
                return principal
            if source == "principal":
                _warn_once(
                    "no-principal",
                    "seawall.mcp: key='principal', but a request is not authenticated: "
                    "limiting it by the client address instead.",
                )
        return self.address(ctx, rc)

    def address(self, ctx: Any, rc: Any) -> str:
        """The client address over HTTP, else the connection (stdio, in memory)."""
        if rc is None:
            if is_fastmcp_context(ctx):
                _warn_once(
                    "background",
                    "seawall.mcp: a rate-limited tool ran as a background task, without its "
                    "client's request: unauthenticated background calls share one budget per "
                    "tool. Pass key=... to tell them apart.",
                )
                return "background"
            return "none"
        request = getattr(rc, "request", None)
        if request is not None:
            scope = getattr(request, "scope", None)
            if isinstance(scope, Mapping) and scope.get("client"):
                return self.address_of(scope)
            _warn_once(
                "no-address",
                "seawall.mcp: an HTTP request without a client address (a unix socket?): "
                "every such client shares one budget per tool. Authenticate clients, or pass "
                "key=... to tell them apart.",
            )
            return "ip:unknown"
        tag = _connection_tag(rc)
        if tag is not None:
            return f"conn:{tag}"
        if is_fastmcp_context(ctx) and ctx.transport == "stdio":
            return "process"  # a stdio server process serves exactly one client
        _warn_once(
            "process",
            "seawall.mcp: an MCP request carries no per-client identity (no access token, no "
            "HTTP request, no connection seawall can tell apart): every such client of this "
            "server process shares one budget per tool. Authenticate clients, or pass key=... "
            "to rate_limit_tool / ToolRateLimitMiddleware.",
        )
        return "process"


_session_keys = Keys("session")


def session_identity(ctx: Any) -> str:
    """The identity ``key="session"`` limits by, for a fastmcp or SDK ``Context`` (or ``None``).

    The bare id of the session the server issued (the ``Mcp-Session-Id`` it handed out over
    streamable HTTP, else an id it generated for the connection). Where it issued none
    (2026-07-28 connections, ``stateless_http``), the ``key="auto"`` identity: ``principal:…``,
    ``ip:…`` (the peer address) or ``conn:…``; never a value the client wrote.
    """
    return _session_keys(ctx).removeprefix("session:")
