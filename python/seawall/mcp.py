"""Rate-limited MCP tools: a decorator for fastmcp and the official SDK; a fastmcp middleware.

``@rate_limit_tool("3/10 seconds")`` limits one tool per MCP client session (or per ``user_id``
argument, per client id, or per any key you compute). Write it below ``@mcp.tool()`` (for the
SDK, ``@server.tool()``), next to the function, so the server registers the limited tool::

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

What ``key="session"`` (the default of both) identifies, for fastmcp and the official SDK:

* Handshake-era ("legacy") connections: the MCP session, stable for the whole connection
  (fastmcp's ``ctx.session_id``: the negotiated ``Mcp-Session-Id`` over HTTP, else one id per
  connection; for the SDK the same header, else one id kept on its per-session connection).
* 2026-07-28 connections, which fastmcp's ``Client`` and the SDK's ``Client`` use by default,
  have no session: every request builds its own connection, so ``ctx.session_id`` is new on
  every call and keying on it would never limit anyone. The key is then the first of: the
  authenticated principal (the access token's client id, issuer and subject, hashed:
  ``user:…``); the ``client_id`` in the request's ``_meta`` (``client:…``); over HTTP, the
  ``Mcp-Session-Id`` header if the client sends one, else the peer address (``peer:<ip>``, so
  clients behind one proxy or NAT share a budget); otherwise ``"process"``. On stdio a server
  process serves exactly one client, so that is per client. In memory (and on the SDK's stdio,
  which does not say which transport it runs) nothing tells two clients apart: they share one
  budget per tool, and ``seawall.mcp`` logs a warning saying so, once per process. Authenticate
  clients or pass a ``key=`` callable to tell them apart.

``RateLimitMiddleware`` limits every tool call of a fastmcp server by session and tool name, with
per-tool limits, without decorating any tool; other requests (``tools/list`` and so on) pass.

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
from collections.abc import Awaitable, Callable, Mapping
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


def _principal(ctx: Any) -> str | None:
    """The authenticated principal (client id, issuer, subject of the access token), hashed."""
    token: Any = None
    if _is_fastmcp_context(ctx):
        try:
            from fastmcp.server.dependencies import get_access_token as fastmcp_token

            token = fastmcp_token()
        except Exception:
            token = None
    if token is None:
        try:
            from mcp.server.auth.middleware.auth_context import get_access_token

            token = get_access_token()
        except Exception:
            token = None
    if token is None:
        return None
    claims = getattr(token, "claims", None) or {}
    parts = (getattr(token, "client_id", None), claims.get("iss"), getattr(token, "subject", None))
    if not any(parts):
        return None
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]
    return f"user:{digest}"


def _legacy_session_key(ctx: Any, rc: Any) -> str:
    if _is_fastmcp_context(ctx):
        return f"session:{ctx.session_id}"
    request = getattr(rc, "request", None)
    header = request.headers.get("mcp-session-id") if request is not None else None
    if header:
        return f"session:{header}"
    session = getattr(rc, "session", None)
    # The SDK builds a ServerSession per request but keeps one Connection per legacy session.
    state = getattr(getattr(session, "_connection", None), "state", None)
    if isinstance(state, dict):
        return cast("str", state.setdefault("_seawall_session_key", f"session:{uuid.uuid4()}"))
    return f"session:{id(session)}"


def _modern_client_key(ctx: Any, rc: Any) -> str:
    principal = _principal(ctx)
    if principal is not None:
        return principal
    meta = getattr(rc, "meta", None)
    client_id = meta.get("client_id") if isinstance(meta, Mapping) else None
    if client_id:
        return f"client:{client_id}"
    request = getattr(rc, "request", None)
    if request is not None:
        header = request.headers.get("mcp-session-id")
        if header:
            return f"session:{header}"
        peer = getattr(getattr(request, "client", None), "host", None)
        if peer:
            return f"peer:{peer}"
    if _is_fastmcp_context(ctx) and ctx.transport == "stdio":
        return "process"  # a stdio server process serves exactly one client
    _warn_once(
        "process",
        "seawall.mcp: a 2026-07-28 MCP request carries no per-client identity (no access "
        "token, no client_id, no HTTP request: an in-memory client, or stdio): every such "
        "client of this server process shares one budget per tool. Authenticate clients, or "
        "pass key=... to rate_limit_tool / RateLimitMiddleware.",
    )
    return "process"


def _session_key(ctx: Any) -> str:
    """The stable identity of the calling client: see the module docstring."""
    if ctx is None:
        _warn_once(
            "no-context",
            "seawall.mcp: a rate-limited tool ran outside any MCP request: all such calls "
            "share one budget per tool.",
        )
        return "no-session"
    try:
        rc = ctx.request_context
    except Exception:
        rc = None
    if rc is None:
        if _is_fastmcp_context(ctx):
            try:  # a background task: fastmcp kept the submitting session's id
                return f"session:{ctx.session_id}"
            except RuntimeError:
                pass
        return "no-session"
    if _is_modern(rc):
        return _modern_client_key(ctx, rc)
    return _legacy_session_key(ctx, rc)


def session_identity(ctx: Any) -> str:
    """The identity ``key="session"`` limits by, for a fastmcp or SDK ``Context`` (or ``None``).

    On handshake-era connections this is the bare MCP session id (fastmcp's ``ctx.session_id``);
    on 2026-07-28 connections, where that id changes on every request, the stable identity
    described in the module docstring (``user:…``, ``client:…``, ``peer:…`` or ``process``).
    """
    key = _session_key(ctx)
    return key.removeprefix("session:")


def _client_key(ctx: Any) -> str:
    try:
        client_id = getattr(ctx, "client_id", None) if ctx is not None else None
    except Exception:
        client_id = None
    return f"client:{client_id}" if client_id else _session_key(ctx)


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
    key: str | KeyFunc, params: list[str], ctx_param: str | None, hidden: bool
) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    """``key_of(args, kwargs)``: whose budget a call spends (the tool's prefix aside). It also
    removes the hidden context from ``kwargs`` (each call's own dict) before the tool sees it."""
    if key == "user_id":
        at = params.index("user_id") if "user_id" in params else len(params)

        def user_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if "user_id" in kwargs:
                return str(kwargs["user_id"])
            return str(args[at]) if at < len(args) else "anonymous"

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

    if key == "session":
        return lambda args, kwargs: _session_key(context(args, kwargs))
    if key == "client":
        return lambda args, kwargs: _client_key(context(args, kwargs))
    func = cast("KeyFunc", key)

    def custom(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        ctx = context(args, kwargs)
        arguments = {**dict(zip(params, args, strict=False)), **kwargs} if args else kwargs
        return str(func(ctx, arguments))

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
    key: Literal["session", "user_id", "client"] | KeyFunc = "session",
    on_limit: Literal["error", "raise"] = "error",
    algorithm: str = "gcra",
    clock: Any = None,
    limiter: KeyLimiter | None = None,
    name: str | None = None,
) -> Callable[[F], F]:
    """Limit one MCP tool, per session by default; write it below ``@mcp.tool()``.

    ``key``: ``"session"`` (the MCP session), ``"user_id"`` (the tool's ``user_id`` argument),
    ``"client"`` (the MCP client id, else the session) or ``key(ctx, arguments) -> str``. Keys
    are ``f"{tool}:{key}"``, so tools sharing a ``limiter`` still have a budget each. ``name``:
    the tool's name for keys and statistics (default: the function's name; pass the name given
    to ``@mcp.tool(name=...)`` if it differs).

    A refused call returns ``{"success": False, "error": "Rate limit exceeded", "rate_limited":
    True, "retry_after": <whole seconds>}`` (``on_limit="error"``), or raises
    :data:`ToolRateLimitedError` (``on_limit="raise"``), which the client sees as ``isError``.

    Raises ``TypeError`` when applied to a function fastmcp has already registered or marked
    (``@rate_limit_tool`` written above ``@mcp.tool()``): see the module docstring.
    """
    if on_limit not in ("error", "raise"):
        raise ValueError(f"on_limit must be 'error' or 'raise', got {on_limit!r}")
    if not callable(key) and key not in ("session", "user_id", "client"):
        raise ValueError(f"key must be 'session', 'user_id', 'client' or a callable, got {key!r}")
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
        key_of = _key_getter(key, list(sig.parameters), ctx_param, hidden)
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
                decision = hit(prefix + key_of(args, kwargs))
                if not decision.allowed:
                    return refused(decision)
                stats.admitted()
                return await afunc(*args, **kwargs)

            wrapper = awrapper
        else:

            @functools.wraps(func)
            def swrapper(*args: Any, **kwargs: Any) -> Any:
                decision = hit(prefix + key_of(args, kwargs))
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
    """Limit every tool call of a fastmcp server, per session and tool.

    ``FastMCP("app", middleware=[RateLimitMiddleware("10/minute", per_tool={"expensive":
    "2/minute"})])``. Each tool has its own budget per key: ``limits``, or its entry in
    ``per_tool``. ``key``: ``"session"`` (the MCP session id), ``"client"`` (the client id, else
    the session), ``"global"`` (one budget per tool for everyone, like fastmcp's
    ``RateLimitingMiddleware(global_limit=True)``) or ``key(middleware_context) -> str``.
    ``global_limits``: an extra server-wide budget over all tools and clients, decided with the
    tool's limit all or nothing (a call refused by either spends neither). Listing tools and
    every other request pass untouched. A refused call raises :data:`ToolRateLimitedError`, a
    ``ToolError`` whose message ends with ``retry after N s``; the client sees ``isError``.
    """

    def __init__(
        self,
        limits: str | Limit | list[str | Limit] = "10/minute",
        *,
        per_tool: Mapping[str, str | Limit | list[str | Limit]] | None = None,
        key: Literal["session", "client", "global"] | Callable[[Any], str] = "session",
        global_limits: str | Limit | list[str | Limit] | None = None,
        algorithm: str = "gcra",
        clock: Any = None,
        max_keys: int = 1_000_000,
    ) -> None:
        if not callable(key) and key not in ("session", "client", "global"):
            raise ValueError(
                f"key must be 'session', 'client', 'global' or a callable, got {key!r}"
            )
        self.key = key
        self.clock = clock
        self._default = Limiter(limits, algorithm=algorithm, clock=clock, max_keys=max_keys)
        self._per_tool = {
            tool: Limiter(lim, algorithm=algorithm, clock=clock, max_keys=max_keys)
            for tool, lim in (per_tool or {}).items()
        }
        self._global = (
            None
            if global_limits is None
            else Limiter(global_limits, algorithm=algorithm, clock=clock)
        )
        # Serialises the two-limiter decision between threads (coroutines of one event loop
        # cannot interleave inside it: it never awaits).
        self._lock = threading.Lock()

    def _client(self, context: Any) -> str:
        if callable(self.key):
            return str(self.key(context))
        if self.key == "global":
            return "*"
        ctx = getattr(context, "fastmcp_context", None)
        return _client_key(ctx) if self.key == "client" else _session_key(ctx)

    def _decide(self, lim: Limiter, key: str) -> Decision:
        """The per-tool and the global limit, all or nothing: a refusal spends neither."""
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

    async def on_call_tool(self, context: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        tool = str(getattr(context.message, "name", "?"))
        decision = self._decide(
            self._per_tool.get(tool, self._default), f"{tool}:{self._client(context)}"
        )
        if not decision.allowed:
            _stats_for(tool).refused(self.clock)
            raise ToolRateLimitedError(decision.retry_after, decision.limit, tool)
        _stats_for(tool).admitted()
        return await call_next(context)
