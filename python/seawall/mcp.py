"""Rate-limited MCP tools: a decorator for fastmcp and the official SDK; a fastmcp middleware.

``@rate_limit_tool("3/10 seconds")`` limits one tool per MCP client (by default the
authenticated principal, else the client's address; see "Keys" below). Write it below
``@mcp.tool()`` (for the SDK, ``@server.tool()``), next to the function, so the server
registers the limited tool::

    @mcp.tool()
    @rate_limit_tool("3/10 seconds")
    async def search(query: str, ctx: Context) -> dict: ...

The wrapped tool keeps its signature, so the framework generates the same input schema and still
injects its ``Context``; sync and async tools alike. A tool without a ``Context`` parameter needs
none: the wrapper's signature gains a hidden keyword-only ``seawall_ctx`` parameter annotated
with the installed frameworks' ``Context`` classes, which each framework leaves out of the input
schema and fills with its context, and which the wrapper removes before calling the tool (so such
a tool then costs fastmcp what a tool declaring ``ctx: Context`` costs it: its dependency
injection, some tens of µs per call). A refused call returns seed 004's dict
(``on_limit="error"``; the tool's declared return type must admit it, else ``TypeError``) or
raises a tool error (``on_limit="raise"``) that both frameworks turn into an ``isError`` result
carrying ``retry after N s``.

The other order, ``@rate_limit_tool`` above ``@mcp.tool()``, cannot work: the server registered
the undecorated function before the limit was applied, and neither framework's decorator returns
anything that leads back to the registered tool. fastmcp marks the function it registered
(``__fastmcp__``), so with fastmcp that order raises ``TypeError`` at import time, naming the
order to write (so does a function marked with fastmcp's standalone ``@tool``, or registered
unlimited on another fastmcp server: apply the limit before either). The official SDK's
``@server.tool()`` returns the function untouched and records nothing on it, so nothing can
tell, and that order silently leaves the tool unlimited: with the SDK, always write
``@rate_limit_tool`` below ``@server.tool()``.

Keys: whose budget a call spends, by who writes it (``key=`` of both; keys are namespaced by
their source, ``principal:…``, ``ip:…``, ``conn:…``, ``session:…``, ``client-id:…``,
``user_id:…``, ``key:…``, so that a value one source yields never spends another's budget):

* ``"auto"`` (default), what a client cannot choose: the authenticated principal when the
  server has auth (the access token's client id, issuer and subject, hashed: ``principal:…``);
  else, over HTTP (streamable HTTP, SSE), the client address: the peer, or the address that
  ``trusted_proxies=`` report in the one ``proxy_header=`` they write (default
  ``X-Forwarded-For``; believed only from those peers, exactly as ``seawall.RateLimitMiddleware``
  does; IPv6 per /64), so
  clients behind one NAT or untrusted proxy share a budget; else (stdio, in memory) the
  connection, one per connected client object (a stdio server process serves one client). A
  client that reconnects in memory gets a fresh budget: in-process clients are your own code.
* ``"principal"``: the same, and a warning (once) if a request is not authenticated.
* ``"address"``: the client address (or the connection), even for authenticated requests.
* ``"session"``: the session the server issued, on handshake-era connections it keeps: the
  ``Mcp-Session-Id`` it handed out over stateful streamable HTTP (the SDK answers 404 to any
  other), else one id per connection (SSE, stdio, in memory). A client resets its budget by
  opening a new session, so use it where sessions are costly to open or clients trusted.
  2026-07-28 connections (fastmcp's and the SDK's default) and ``stateless_http=True`` have no
  server-issued session (``ctx.session_id`` is new on every request, or the client's own
  header): there the key is ``"auto"``'s, and a warning says so once.
* ``"client-id"`` (alias ``"client"``): the ``client_id`` in the request's ``_meta``, which
  the client writes (rotating it resets the budget): only for clients you trust. Without one,
  ``"auto"``'s key. ``"user_id"`` (decorator): the tool's ``user_id`` argument, client-written
  too. A callable ``key``: whatever it returns.

A tool run as a fastmcp background task has no request: unless the access token is still known
there, its calls share one budget per tool (a warning says so once; pass a ``key`` callable).

Keys longer than ``max_key_length`` (default 256 characters) are replaced by ``sha256:`` and
their digest (71 characters), as the HTTP middleware does, so that a client writing huge ids
cannot make the limiter store them, and two different long ids never share a budget.

``RateLimitMiddleware`` limits every tool call of a fastmcp server by client and tool name, with
per-tool limits, without decorating any tool; other requests (``tools/list`` and so on) pass.
A call of a tool name the server does not have spends the client's budget of ``"<unknown>"``.

Refusals raised as errors (``on_limit="raise"``, the middleware) carry fastmcp's ``log_level``
DEBUG, so fastmcp does not log every refused call at ERROR. (The official SDK logs every tool
error at INFO, refusals included.)

``tool_stats()`` / ``reset_tool_stats()``: total calls, limited calls and the time of the last
refusal, per tool, for both.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import itertools
import json
import logging
import operator
import re
import sys
import threading
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from seawall._limiter import Limiter
from seawall.compat._util import now, whole_seconds
from seawall.errors import RateLimitExceeded

if TYPE_CHECKING:
    from seawall._seawall import Decision, Limit

__all__ = [
    "RateLimitMiddleware",
    "ToolRateLimitedError",
    "rate_limit_tool",
    "reset_tool_stats",
    "session_identity",
    "tool_stats",
]

F = TypeVar("F", bound=Callable[..., Any])
KeyFunc = Callable[[Any, dict[str, Any]], str]


# --------------------------------------------------------------------------------------------
# The error both frameworks turn into an isError result


def _tool_error_bases() -> tuple[type[Exception], ...]:
    bases: list[type[Exception]] = []
    try:
        from fastmcp.exceptions import ToolError as FastMCPToolError

        bases.append(FastMCPToolError)
    except ImportError:
        pass
    for module in ("mcp.server.mcpserver.exceptions", "mcp.server.fastmcp.exceptions"):
        try:
            sdk = __import__(module, fromlist=["ToolError"])
        except ImportError:
            continue
        bases.append(sdk.ToolError)
        break
    bases.append(RateLimitExceeded)
    return tuple(bases)


class _ToolRateLimitedBase(RateLimitExceeded):
    def __init__(self, retry_after: float, limit: int, key: str) -> None:
        super().__init__(retry_after, limit, key)
        # fastmcp logs a ToolError at its ``log_level`` (ERROR by default) for every call that
        # raises one: a refusal is the limit working, and a client hammering a limited tool
        # must not flood the error log.
        self.log_level = logging.DEBUG

    def __str__(self) -> str:
        return (
            f"Rate limit exceeded for {self.key!r} (limit {self.limit}); "
            f"retry after {self.retry_after_seconds} s"
        )


# A ``ToolError`` of fastmcp *and* of the SDK (whichever are installed) and a
# ``seawall.RateLimitExceeded``: either framework reports it to the client as an ``isError``
# result whose text is ``str(error)``, which ends with ``retry after N s``.
ToolRateLimitedError: type[RateLimitExceeded] = cast(
    "type[RateLimitExceeded]",
    type(
        "ToolRateLimitedError",
        (_ToolRateLimitedBase, *_tool_error_bases()[:-1]),
        {"__module__": __name__, "__doc__": "A tool call refused by a seawall rate limit."},
    ),
)


# --------------------------------------------------------------------------------------------
# Per-tool statistics

_stats_lock = threading.Lock()


class _ToolStats:
    """One tool's counters; decorators hold theirs, so a reset zeroes it in place.

    An admitted call is counted without a lock: ``next()`` on an ``itertools.count`` is one C
    call, atomic under the GIL, so no call is lost (``total_calls`` stores the latest count; a
    reader racing with two threads may see it one behind, until the next call).
    """

    __slots__ = ("_calls", "last_limited", "limited_calls", "total_calls")

    def __init__(self) -> None:
        self._calls = itertools.count(1)
        self.total_calls = 0
        self.limited_calls = 0
        self.last_limited: float | None = None

    def admitted(self) -> None:
        self.total_calls = next(self._calls)

    def refused(self, clock: Any) -> None:
        at = now(clock)
        with _stats_lock:
            self.total_calls = next(self._calls)
            self.limited_calls += 1
            self.last_limited = at

    def reset(self) -> None:
        self._calls = itertools.count(1)
        self.total_calls = self.limited_calls = 0
        self.last_limited = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_calls": self.total_calls,
            "limited_calls": self.limited_calls,
            "last_limited": self.last_limited,
        }


_stats: dict[str, _ToolStats] = {}


def _stats_for(tool: str) -> _ToolStats:
    entry = _stats.get(tool)
    if entry is None:
        with _stats_lock:
            entry = _stats.setdefault(tool, _ToolStats())
    return entry


def tool_stats(name: str | None = None) -> dict[str, dict[str, Any]]:
    """``{tool: {"total_calls", "limited_calls", "last_limited"}}`` (epoch seconds or ``None``),
    for every tool called since it was last reset, or only ``name`` (zeros if never called)."""
    with _stats_lock:
        if name is None:
            return {k: v.as_dict() for k, v in _stats.items() if v.total_calls}
        return {name: _stats.get(name, _ToolStats()).as_dict()}


def reset_tool_stats(name: str | None = None) -> None:
    """Forget the statistics of ``name``, or of every tool."""
    with _stats_lock:
        entries = _stats.values() if name is None else [_stats.get(name) or _ToolStats()]
        for entry in entries:
            entry.reset()


# --------------------------------------------------------------------------------------------
# The MCP context of the current call


def _is_fastmcp_context(obj: object) -> bool:
    return type(obj).__module__.startswith("fastmcp.")


@functools.cache
def _context_classes() -> tuple[type, ...]:
    """The ``Context`` classes of the installed frameworks: fastmcp's, then the SDK's."""
    classes: list[type] = []
    for modules in (("fastmcp",), ("mcp.server.mcpserver", "mcp.server.fastmcp")):
        for module in modules:  # the SDK's server: v2's ``mcpserver``, else v1's ``fastmcp``
            try:
                classes.append(importlib.import_module(module).Context)
            except Exception:  # not installed, or broken: then it cannot serve the tool either
                continue
            break
    return tuple(classes)


_get_fastmcp_context: Callable[[], Any] | None = None


def _ambient_context() -> Any:
    """fastmcp's context of the request running now (its context variable), else ``None``.

    Only for a wrapper called without the context its framework injects (called directly from
    code running inside a fastmcp request, say): the SDK has no such variable.
    """
    global _get_fastmcp_context
    if _get_fastmcp_context is None:
        if "fastmcp" not in sys.modules:
            return None
        try:
            from fastmcp.server.dependencies import get_context
        except ImportError:
            return None
        _get_fastmcp_context = get_context
    try:
        return _get_fastmcp_context()
    except RuntimeError:  # no fastmcp request is running
        return None


_MODERN: frozenset[str]
try:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    _MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
except ImportError:  # an SDK without the 2026-07-28 protocol: every version is handshake-era
    _MODERN = frozenset()

_log = logging.getLogger("seawall.mcp")
_warned: set[str] = set()
_warn_lock = threading.Lock()


def _warn_once(what: str, message: str) -> None:
    with _warn_lock:
        if what in _warned:
            return
        _warned.add(what)
    _log.warning(message)


def _is_modern(rc: Any) -> bool:
    version = getattr(rc, "protocol_version", None)
    return isinstance(version, str) and (version in _MODERN or version >= "2026-07-28")


# --------------------------------------------------------------------------------------------
# Whose budget a call spends: the key sources, each namespaced by who writes it


KeyName = Literal["auto", "principal", "address", "session", "client-id", "client"]
_KEY_NAMES: tuple[str, ...] = typing.get_args(KeyName)

# A key longer than ``max_key_length`` is replaced by this prefix and the SHA-256 of the key:
# 71 characters, which is why ``max_key_length`` may not be smaller.
_DIGEST_PREFIX = "sha256:"
_DIGEST_LENGTH = len(_DIGEST_PREFIX) + 64
# The tool name under which the middleware counts calls of tools the server does not have
# (not a valid MCP tool name, so no real tool can collide with it).
_UNKNOWN_TOOL = "<unknown>"


def _digest(key: str) -> str:
    """A fixed-length stand-in for a key over the cap: distinct keys keep distinct budgets."""
    return _DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _check_max_key_length(max_key_length: int) -> int:
    if isinstance(max_key_length, bool) or not isinstance(max_key_length, int):
        raise TypeError(f"max_key_length must be an int, got {type(max_key_length).__name__}")
    if max_key_length < _DIGEST_LENGTH:
        raise ValueError(
            f"max_key_length must be at least {_DIGEST_LENGTH} (the length of the digest that "
            f"replaces a longer key), got {max_key_length}"
        )
    return max_key_length


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


def _check_trusted_proxies(
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


def _request_context(ctx: Any) -> Any:
    try:
        return ctx.request_context
    except Exception:
        return None


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
    if rc is None or _is_modern(rc):
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


class _Keys:
    """Computes a call's identity for one decorator or middleware: see the module docstring."""

    __slots__ = ("address_of", "source")

    def __init__(
        self,
        source: str,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
    ) -> None:
        self.source = source
        self.address_of = _check_trusted_proxies(trusted_proxies, proxy_header)

    def __call__(self, ctx: Any) -> str:
        source = self.source
        if ctx is None:
            _warn_once(
                "no-context",
                "seawall.mcp: a rate-limited tool ran outside any MCP request: all such calls "
                "share one budget per tool.",
            )
            return "none"
        rc = _request_context(ctx)
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
            if _is_fastmcp_context(ctx):
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
        if _is_fastmcp_context(ctx) and ctx.transport == "stdio":
            return "process"  # a stdio server process serves exactly one client
        _warn_once(
            "process",
            "seawall.mcp: an MCP request carries no per-client identity (no access token, no "
            "HTTP request, no connection seawall can tell apart): every such client of this "
            "server process shares one budget per tool. Authenticate clients, or pass key=... "
            "to rate_limit_tool / RateLimitMiddleware.",
        )
        return "process"


_session_keys = _Keys("session")


def session_identity(ctx: Any) -> str:
    """The identity ``key="session"`` limits by, for a fastmcp or SDK ``Context`` (or ``None``).

    The bare id of the session the server issued (the ``Mcp-Session-Id`` it handed out over
    streamable HTTP, else an id it generated for the connection). Where it issued none
    (2026-07-28 connections, ``stateless_http``), the ``key="auto"`` identity: ``principal:…``,
    ``ip:…`` (the peer address) or ``conn:…``; never a value the client wrote.
    """
    return _session_keys(ctx).removeprefix("session:")


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    """``func``'s signature with its annotations evaluated when they can be (as the SDK does)."""
    try:
        return inspect.signature(func, eval_str=True)
    except Exception:
        return inspect.signature(func)


def _is_context_annotation(annotation: Any, classes: tuple[type, ...]) -> bool:
    if isinstance(annotation, str):  # not evaluable: judge by the name, as a reader would
        return re.search(r"\bContext\b", annotation) is not None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_context_annotation(typing.get_args(annotation)[0], classes)
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_context_annotation(a, classes) for a in typing.get_args(annotation))
    return inspect.isclass(annotation) and issubclass(annotation, classes)


def _context_param(sig: inspect.Signature, classes: tuple[type, ...]) -> str | None:
    """The parameter the framework injects its ``Context`` into, if the tool declares one."""
    for name, param in sig.parameters.items():
        if param.annotation is not param.empty and _is_context_annotation(
            param.annotation, classes
        ):
            return name
    return None


# The keyword-only parameter a tool without a ``Context`` parameter gets, so that the framework
# injects its ``Context`` (annotated with every installed framework's class: each excludes it
# from the input schema and fills it); the wrapper removes it before calling the tool.
# (Not ``_``-prefixed: the SDK rejects tool parameters whose names start with one.)
_HIDDEN_CTX = "seawall_ctx"


def _with_hidden_context(
    wrapper: Callable[..., Any], func: Callable[..., Any], classes: tuple[type, ...]
) -> None:
    sig = _signature(func)
    if _HIDDEN_CTX in sig.parameters:
        raise TypeError(
            f"{func.__name__!r} has a parameter named {_HIDDEN_CTX!r}, the name seawall gives "
            "the Context it asks for: rename it, or give the tool a Context parameter"
        )
    params = list(sig.parameters.values())
    hidden = inspect.Parameter(
        _HIDDEN_CTX,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=functools.reduce(operator.or_, classes, type(None)),
    )
    at = len(params)
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        at -= 1
    params.insert(at, hidden)
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    # Both frameworks find ``Context`` parameters through ``typing.get_type_hints``, which reads
    # ``__annotations__`` (functools.wraps shares ``func``'s dict: replace it, don't mutate it).
    annotations = dict(getattr(func, "__annotations__", {}))
    annotations[_HIDDEN_CTX] = hidden.annotation
    wrapper.__annotations__ = annotations


def _admits_error_dict(annotation: Any) -> bool:
    """Whether a tool declared to return ``annotation`` may return the refusal dict (its output
    schema, which both frameworks derive from the annotation and check, accepts one)."""
    if annotation in (inspect.Signature.empty, Any, object, dict, Mapping):
        return True
    if isinstance(annotation, str):  # not evaluable: leave it to the framework
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _admits_error_dict(args[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_admits_error_dict(a) for a in args)
    if origin in (dict, Mapping):  # ``typing.Dict`` and ``typing.Mapping`` too
        return not args or (args[0] in (str, Any) and args[1] in (Any, object))
    return False


def _refuse_registered(func: object) -> None:
    """A TypeError for a function a framework already holds: wrapping it would change nothing."""
    registered = hasattr(func, "__fastmcp__")  # fastmcp's ``@mcp.tool()`` / ``@tool`` marks it
    is_tool = not inspect.isroutine(func) and hasattr(func, "fn") and hasattr(func, "name")
    if not (registered or is_tool):
        return
    what = getattr(func, "__name__", None) or getattr(func, "name", None) or repr(func)
    raise TypeError(
        f"@rate_limit_tool was applied to {what!r} after it became an MCP tool (it carries "
        "fastmcp's tool registration, or is a tool object): the server would keep calling the "
        "undecorated function. Write @rate_limit_tool below @mcp.tool(), next to the "
        "function:\n\n    @mcp.tool()\n    @rate_limit_tool(...)\n    def tool(...): ..."
    )


# --------------------------------------------------------------------------------------------
# The decorator


def _key_getter(
    key: str | KeyFunc,
    keys: _Keys | None,
    params: list[str],
    ctx_param: str | None,
    hidden: bool,
) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    """``key_of(args, kwargs)``: whose budget a call spends (the tool's prefix aside). It also
    removes the hidden context from ``kwargs`` (each call's own dict) before the tool sees it."""
    if key == "user_id":
        at = params.index("user_id") if "user_id" in params else len(params)

        def user_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if "user_id" in kwargs:
                return f"user_id:{kwargs['user_id']}"
            return f"user_id:{args[at]}" if at < len(args) else "user_id:anonymous"

        return user_id

    at = params.index(ctx_param) if ctx_param is not None else len(params)

    def context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if hidden:
            ctx = kwargs.pop(_HIDDEN_CTX, None)
        elif ctx_param is not None:
            ctx = kwargs.get(ctx_param)
            if ctx is None and at < len(args):
                ctx = args[at]
        else:
            ctx = None
        return ctx if ctx is not None else _ambient_context()

    if keys is not None:
        return lambda args, kwargs: keys(context(args, kwargs))
    func = cast("KeyFunc", key)

    def custom(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        ctx = context(args, kwargs)
        arguments = {**dict(zip(params, args, strict=False)), **kwargs} if args else kwargs
        return f"key:{func(ctx, arguments)}"

    return custom


def _limited_dict(retry_after: int) -> dict[str, Any]:
    return {
        "success": False,
        "error": "Rate limit exceeded",
        "rate_limited": True,
        "retry_after": retry_after,
    }


class DecisionLike(Protocol):
    """What :func:`rate_limit_tool` reads of a decision (``seawall.Decision`` has it)."""

    @property
    def allowed(self) -> bool: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def limit(self) -> int: ...


class KeyLimiter(Protocol):
    """What :func:`rate_limit_tool` needs of ``limiter=`` (``seawall.Limiter`` has it)."""

    def hit(self, key: str) -> DecisionLike: ...


def rate_limit_tool(
    limits: str | Limit | list[str | Limit] = "3/10 seconds",
    *,
    key: KeyName | Literal["user_id"] | KeyFunc = "auto",
    on_limit: Literal["error", "raise"] = "error",
    algorithm: str = "gcra",
    clock: Any = None,
    limiter: KeyLimiter | None = None,
    name: str | None = None,
    trusted_proxies: Iterable[str] = (),
    proxy_header: str = "X-Forwarded-For",
    max_key_length: int = 256,
) -> Callable[[F], F]:
    """Limit one MCP tool, per client; write it below ``@mcp.tool()``.

    ``key``, whose budget a call spends (see the module docstring for who writes each):
    ``"auto"`` (the authenticated principal, else the client address, else the stdio or
    in-memory connection), ``"principal"``, ``"address"``, ``"session"`` (a session the server
    issued), ``"client-id"`` (the ``_meta.client_id`` the client writes; ``"client"`` is an
    alias), ``"user_id"`` (the tool's ``user_id`` argument, which the client writes) or
    ``key(ctx, arguments) -> str``. ``trusted_proxies``: IPs / CIDRs whose ``proxy_header``
    (default ``"X-Forwarded-For"``; or ``"Forwarded"``, ``"X-Real-IP"``: the one header your
    proxy writes) is believed for the client address, as for ``seawall.RateLimitMiddleware``
    (default: none). Keys are ``f"{tool}:{source}:{value}"``, so
    tools sharing a ``limiter`` still have a budget each; a key longer than ``max_key_length``
    characters is replaced by ``"sha256:"`` and its digest (71 characters). ``name``: the
    tool's name for keys and statistics (default: the function's name; pass the name given to
    ``@mcp.tool(name=...)`` if it differs).

    A refused call returns ``{"success": False, "error": "Rate limit exceeded", "rate_limited":
    True, "retry_after": <whole seconds>}`` (``on_limit="error"``), or raises
    :data:`ToolRateLimitedError` (``on_limit="raise"``), which the client sees as ``isError``.

    Raises ``TypeError`` when applied to a function fastmcp has already registered or marked
    (``@rate_limit_tool`` written above ``@mcp.tool()``): see the module docstring.
    """
    if on_limit not in ("error", "raise"):
        raise ValueError(f"on_limit must be 'error' or 'raise', got {on_limit!r}")
    if not callable(key) and key not in (*_KEY_NAMES, "user_id"):
        raise ValueError(
            f"key must be one of {', '.join(map(repr, (*_KEY_NAMES, 'user_id')))} or a "
            f"callable, got {key!r}"
        )
    cap = _check_max_key_length(max_key_length)
    keys = None if callable(key) or key == "user_id" else _Keys(key, trusted_proxies, proxy_header)
    if keys is None:
        _check_trusted_proxies(trusted_proxies, proxy_header)
    lim: KeyLimiter = (
        limiter if limiter is not None else Limiter(limits, algorithm=algorithm, clock=clock)
    )

    def decorator(func: F) -> F:
        _refuse_registered(func)
        tool_name = name or func.__name__
        sig = _signature(func)
        if on_limit == "error" and not _admits_error_dict(sig.return_annotation):
            raise TypeError(
                f"on_limit='error' makes {tool_name!r} return a dict when refused, but it is "
                f"declared to return {sig.return_annotation!r}: its output schema would reject "
                "the dict. Use on_limit='raise', or declare the return as dict[str, Any] (or a "
                "union with it)."
            )
        classes = _context_classes() if key != "user_id" else ()
        ctx_param = _context_param(sig, classes) if classes else None
        hidden = bool(classes) and ctx_param is None
        key_of = _key_getter(key, keys, list(sig.parameters), ctx_param, hidden)
        hit = lim.hit
        prefix = f"{tool_name}:"
        stats = _stats_for(tool_name)

        def refused(decision: DecisionLike) -> Any:
            stats.refused(clock)
            if on_limit == "raise":
                raise ToolRateLimitedError(decision.retry_after, decision.limit, tool_name)
            return _limited_dict(whole_seconds(decision.retry_after))

        # The hot path is written out in each wrapper: every nested call costs ~50 ns.
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(func):
            afunc = cast("Callable[..., Awaitable[Any]]", func)

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                k = prefix + key_of(args, kwargs)
                decision = hit(k if len(k) <= cap else _digest(k))
                if not decision.allowed:
                    return refused(decision)
                stats.admitted()
                return await afunc(*args, **kwargs)

            wrapper = awrapper
        else:

            @functools.wraps(func)
            def swrapper(*args: Any, **kwargs: Any) -> Any:
                k = prefix + key_of(args, kwargs)
                decision = hit(k if len(k) <= cap else _digest(k))
                if not decision.allowed:
                    return refused(decision)
                stats.admitted()
                return func(*args, **kwargs)

            wrapper = swrapper

        if hidden:
            _with_hidden_context(wrapper, func, classes)
        setattr(wrapper, "seawall_limiter", lim)  # noqa: B010
        return cast("F", wrapper)

    return decorator


# --------------------------------------------------------------------------------------------
# The fastmcp server middleware


def _middleware_base() -> type:
    try:
        from fastmcp.server.middleware import Middleware

        return cast("type", Middleware)
    except ImportError:
        return object


class RateLimitMiddleware(_middleware_base()):  # type: ignore[misc]
    """Limit every tool call of a fastmcp server, per client and tool.

    ``FastMCP("app", middleware=[RateLimitMiddleware("10/minute", per_tool={"expensive":
    "2/minute"})])``. Each tool has its own budget per key: ``limits``, or its entry in
    ``per_tool``. ``key``: ``"auto"`` (default), ``"principal"``, ``"address"``, ``"session"``,
    ``"client-id"`` (``"client"``), as for :func:`rate_limit_tool` (see the module docstring);
    ``"global"`` (one budget per tool for everyone, like fastmcp's
    ``RateLimitingMiddleware(global_limit=True)``) or ``key(middleware_context) -> str``.
    ``trusted_proxies``, ``proxy_header`` and ``max_key_length`` as for :func:`rate_limit_tool`.
    ``global_limits``: an extra server-wide budget over all tools and clients, decided with the
    tool's limit all or nothing (a call refused by either spends neither). Listing tools and
    every other request pass untouched. A refused call raises :data:`ToolRateLimitedError`, a
    ``ToolError`` whose message ends with ``retry after N s``; the client sees ``isError``.

    Tool names are the client's words: a call of a name the server has no tool for spends the
    client's budget of the ``"<unknown>"`` tool (``limits``) and is counted under that name in
    :func:`tool_stats`, so made-up names cost neither memory nor a budget of their own.
    """

    def __init__(
        self,
        limits: str | Limit | list[str | Limit] = "10/minute",
        *,
        per_tool: Mapping[str, str | Limit | list[str | Limit]] | None = None,
        key: KeyName | Literal["global"] | Callable[[Any], str] = "auto",
        global_limits: str | Limit | list[str | Limit] | None = None,
        algorithm: str = "gcra",
        clock: Any = None,
        max_keys: int = 1_000_000,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
        max_key_length: int = 256,
    ) -> None:
        if not callable(key) and key not in (*_KEY_NAMES, "global"):
            raise ValueError(
                f"key must be one of {', '.join(map(repr, (*_KEY_NAMES, 'global')))} or a "
                f"callable, got {key!r}"
            )
        self.key = key
        self.clock = clock
        self._cap = _check_max_key_length(max_key_length)
        self._keys = (
            None if callable(key) or key == "global" else _Keys(key, trusted_proxies, proxy_header)
        )
        if self._keys is None:
            _check_trusted_proxies(trusted_proxies, proxy_header)
        self._default = Limiter(limits, algorithm=algorithm, clock=clock, max_keys=max_keys)
        self._per_tool = {
            tool: Limiter(lim, algorithm=algorithm, clock=clock, max_keys=max_keys)
            for tool, lim in (per_tool or {}).items()
        }
        # Names of tools the server was seen to have (or configured in ``per_tool``): only
        # these get budgets and statistics of their own.
        self._known: set[str] = set(self._per_tool)
        self._global = (
            None
            if global_limits is None
            else Limiter(global_limits, algorithm=algorithm, clock=clock)
        )
        try:
            from fastmcp.exceptions import NotFoundError

            self._not_found: tuple[type[Exception], ...] = (NotFoundError,)
        except ImportError:
            self._not_found = ()
        # Serialises the two-limiter decision between threads (coroutines of one event loop
        # cannot interleave inside it: it never awaits).
        self._lock = threading.Lock()

    def _client(self, context: Any) -> str:
        if self._keys is not None:
            return self._keys(getattr(context, "fastmcp_context", None))
        if self.key == "global":
            return "*"
        return f"key:{cast('Callable[[Any], str]', self.key)(context)}"

    def _decide(self, lim: Limiter, key: str) -> Decision:
        """The per-tool and the global limit, all or nothing: a refusal spends neither."""
        if len(key) > self._cap:
            key = _digest(key)
        if self._global is None:
            return lim.hit(key)
        with self._lock:
            # A refused ``hit`` spends nothing, and a ``test`` that admits means the ``hit``
            # right after it admits too (time only frees budget, and the lock keeps others out).
            glob = self._global.test("*")
            if not glob.allowed:
                return glob
            decision = lim.hit(key)
            if not decision.allowed:
                return decision
            return self._global.hit("*")

    async def _exists(self, context: Any, tool: str) -> bool:
        """Whether the server has ``tool`` for this request (remembered once it has)."""
        try:
            server = context.fastmcp_context.fastmcp
            found = await server.get_tool(tool) is not None
        except Exception:
            return False
        if found:
            self._known.add(tool)
        return found

    async def on_call_tool(self, context: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        tool = str(getattr(context.message, "name", "?"))
        known = tool in self._known or await self._exists(context, tool)
        name = tool if known else _UNKNOWN_TOOL
        decision = self._decide(
            self._per_tool.get(name, self._default), f"{name}:{self._client(context)}"
        )
        if not decision.allowed:
            _stats_for(name).refused(self.clock)
            raise ToolRateLimitedError(decision.retry_after, decision.limit, name)
        if known:
            _stats_for(name).admitted()
            return await call_next(context)
        try:
            result = await call_next(context)
        except Exception as error:
            # fastmcp answers a name it has no tool for with NotFoundError; anything else came
            # from a tool that exists after all (one resolved by other means than its name).
            found = not isinstance(error, self._not_found)
            _stats_for(tool if found else _UNKNOWN_TOOL).admitted()
            if found:
                self._known.add(tool)
            raise
        self._known.add(tool)
        _stats_for(tool).admitted()
        return result
