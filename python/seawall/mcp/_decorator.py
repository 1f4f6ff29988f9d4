"""``@rate_limit_tool``: one MCP tool limited per client, for fastmcp and the official SDK (see
:mod:`seawall.mcp` for the order to write it in and the keys)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from seawall._keys import check_max_key_length, digest
from seawall._stores import DefaultLimits, is_redis, limiter_for, redis_options
from seawall._time import whole_seconds
from seawall.mcp._context import ambient_context, context_classes
from seawall.mcp._errors import ToolRateLimitedError
from seawall.mcp._identity import KEY_NAMES, KeyName, Keys, check_trusted_proxies
from seawall.mcp._signature import (
    HIDDEN_CTX,
    admits_error_dict,
    context_param,
    refuse_registered,
    signature,
    with_hidden_context,
)
from seawall.mcp._stats import stats_for

if TYPE_CHECKING:
    from seawall._seawall import Limit

__all__ = ["DecisionLike", "KeyFunc", "KeyLimiter", "rate_limit_tool"]

# The default limits (told apart from the same string passed beside ``limiter=``).
_DEFAULT_LIMITS = DefaultLimits("3/10 seconds")

F = TypeVar("F", bound=Callable[..., Any])
KeyFunc = Callable[[Any, dict[str, Any]], str]


def _key_getter(
    key: str | KeyFunc,
    keys: Keys | None,
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
            ctx = kwargs.pop(HIDDEN_CTX, None)
        elif ctx_param is not None:
            ctx = kwargs.get(ctx_param)
            if ctx is None and at < len(args):
                ctx = args[at]
        else:
            ctx = None
        return ctx if ctx is not None else ambient_context()

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
    limits: str | Limit | list[str | Limit] = _DEFAULT_LIMITS,
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
    store: str | None = None,
    max_keys: int = 1_000_000,
    key_prefix: str | None = None,
    on_error: str | None = None,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
    log_interval: float | None = None,
    breaker_failures: int | None = None,
    breaker_recovery: float | None = None,
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

    ``store``: where the budgets live, as for ``seawall.Limiter(..., store=...)``: memory
    (default) or a Redis URL shared by every worker and host; ``key_prefix``, ``on_error``, the
    timeouts, ``log_interval`` and the breaker options pass through to
    :class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store). An async tool
    awaits the Redis decision (``ahit``); a sync tool blocks on it (``hit``). ``limiter``: one
    already made (any object with ``hit(key)``; a ``RedisLimiter`` is awaited in async tools);
    ``limits``, ``algorithm``, ``max_keys``, ``store=`` or a Redis option beside it is a
    ``ValueError`` (they would be the limiter's own).

    Raises ``TypeError`` when applied to a function fastmcp has already registered or marked
    (``@rate_limit_tool`` written above ``@mcp.tool()``): see the module docstring.
    """
    if on_limit not in ("error", "raise"):
        raise ValueError(f"on_limit must be 'error' or 'raise', got {on_limit!r}")
    if not callable(key) and key not in (*KEY_NAMES, "user_id"):
        raise ValueError(
            f"key must be one of {', '.join(map(repr, (*KEY_NAMES, 'user_id')))} or a "
            f"callable, got {key!r}"
        )
    cap = check_max_key_length(max_key_length)
    keys = None if callable(key) or key == "user_id" else Keys(key, trusted_proxies, proxy_header)
    if keys is None:
        check_trusted_proxies(trusted_proxies, proxy_header)
    options = redis_options(locals())
    lim: KeyLimiter = limiter_for(
        "seawall.mcp.rate_limit_tool",
        limits,
        limiter=limiter,
        beside={
            "limits": not isinstance(limits, DefaultLimits),
            "algorithm": algorithm != "gcra",
            "max_keys": max_keys != 1_000_000,
        },
        store=store,
        algorithm=algorithm,
        max_keys=max_keys,
        clock=clock,
        options=options,
        any_limiter=True,
    )
    # Only a Redis decision waits: a memory one is taken without a coroutine.
    ahit = cast("Any", lim).ahit if is_redis(lim) else None

    def decorator(func: F) -> F:
        refuse_registered(func)
        tool_name = name or func.__name__
        sig = signature(func)
        if on_limit == "error" and not admits_error_dict(sig.return_annotation):
            raise TypeError(
                f"on_limit='error' makes {tool_name!r} return a dict when refused, but it is "
                f"declared to return {sig.return_annotation!r}: its output schema would reject "
                "the dict. Use on_limit='raise', or declare the return as dict[str, Any] (or a "
                "union with it)."
            )
        classes = context_classes() if key != "user_id" else ()
        ctx_param = context_param(sig, classes) if classes else None
        hidden = bool(classes) and ctx_param is None
        key_of = _key_getter(key, keys, list(sig.parameters), ctx_param, hidden)
        hit = lim.hit
        prefix = f"{tool_name}:"
        stats = stats_for(tool_name)

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
                if len(k) > cap:
                    k = digest(k)
                decision = hit(k) if ahit is None else await ahit(k)
                if not decision.allowed:
                    return refused(decision)
                stats.admitted()
                return await afunc(*args, **kwargs)

            wrapper = awrapper
        else:

            @functools.wraps(func)
            def swrapper(*args: Any, **kwargs: Any) -> Any:
                k = prefix + key_of(args, kwargs)
                decision = hit(k if len(k) <= cap else digest(k))
                if not decision.allowed:
                    return refused(decision)
                stats.admitted()
                return func(*args, **kwargs)

            wrapper = swrapper

        if hidden:
            with_hidden_context(wrapper, func, classes)
        setattr(wrapper, "seawall_limiter", lim)  # noqa: B010
        return cast("F", wrapper)

    return decorator
