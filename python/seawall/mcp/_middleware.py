"""``ToolRateLimitMiddleware``: every tool call of a fastmcp server limited per client and tool,
without decorating any tool (see :mod:`seawall.mcp` for the keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from seawall._host import HostLimiter
from seawall._keys import check_max_key_length, digest
from seawall._limiter import Limiter
from seawall._redis import RedisLimiter
from seawall._stores import DefaultLimits, build_limiter, is_redis, limiter_for, redis_options
from seawall.mcp._errors import ToolRateLimitedError
from seawall.mcp._identity import KEY_NAMES, KeyName, Keys, check_trusted_proxies
from seawall.mcp._stats import stats_for

if TYPE_CHECKING:
    from seawall._seawall import Decision, Limit

__all__ = ["ToolRateLimitMiddleware"]

# The default limits (told apart from the same string passed beside ``limiter=``).
_DEFAULT_LIMITS = DefaultLimits("10/minute")

# The tool name under which the middleware counts calls of tools the server does not have
# (not a valid MCP tool name, so no real tool can collide with it).
_UNKNOWN_TOOL = "<unknown>"


def _middleware_base() -> type:
    try:
        from fastmcp.server.middleware import Middleware

        return cast("type", Middleware)
    except ImportError:
        return object


class ToolRateLimitMiddleware(_middleware_base()):  # type: ignore[misc]
    """Limit every tool call of a fastmcp server, per client and tool.

    ``FastMCP("app", middleware=[ToolRateLimitMiddleware("10/minute", per_tool={"expensive":
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

    ``store``: where the budgets live, as for ``seawall.Limiter(..., store=...)``: memory
    (default) or a Redis URL shared by every worker and host; ``key_prefix``, ``on_error``, the
    timeouts, ``log_interval`` and the breaker options pass through to
    :class:`seawall.RedisLimiter` (a ``ValueError`` with the memory store). Redis decisions are
    awaited (``ahit``), never blocking the event loop. ``limiter``: a ``seawall.Limiter`` or
    ``RedisLimiter`` already made, for the default budget (then ``limits``, ``store=`` and the
    Redis options are its own: passing them too is a ``ValueError``); a ``per_tool`` value may
    also be a ready limiter, and must be one when ``limiter=`` is given.

    ``global_limits`` and the tool's limit are decided together, all or nothing: in memory by
    one native call (``Limiter.hit_with``), on Redis by one script call
    (``RedisLimiter.ahit_with``: the global budget lives in the same ``store=``, and every key
    of a call shares the global key's Cluster hash tag). On Redis the budgets must be built
    from ``store=`` (a ready ``limiter=`` or ``per_tool`` limiter on Redis beside
    ``global_limits`` is a ``ValueError``: the global budget needs the same store URL).
    """

    def __init__(
        self,
        limits: str | Limit | list[str | Limit] = _DEFAULT_LIMITS,
        *,
        per_tool: Mapping[str, str | Limit | list[str | Limit] | Limiter | RedisLimiter]
        | None = None,
        key: KeyName | Literal["global"] | Callable[[Any], str] = "auto",
        global_limits: str | Limit | list[str | Limit] | None = None,
        algorithm: str = "gcra",
        clock: Any = None,
        max_keys: int = 1_000_000,
        trusted_proxies: Iterable[str] = (),
        proxy_header: str = "X-Forwarded-For",
        max_key_length: int = 256,
        store: str | None = None,
        limiter: Limiter | RedisLimiter | None = None,
        key_prefix: str | None = None,
        on_error: str | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        log_interval: float | None = None,
        breaker_failures: int | None = None,
        breaker_recovery: float | None = None,
    ) -> None:
        if not callable(key) and key not in (*KEY_NAMES, "global"):
            raise ValueError(
                f"key must be one of {', '.join(map(repr, (*KEY_NAMES, 'global')))} or a "
                f"callable, got {key!r}"
            )
        self.key = key
        self.clock = clock
        self._cap = check_max_key_length(max_key_length)
        self._keys = (
            None if callable(key) or key == "global" else Keys(key, trusted_proxies, proxy_header)
        )
        if self._keys is None:
            check_trusted_proxies(trusted_proxies, proxy_header)
        owner = "seawall.mcp.ToolRateLimitMiddleware"
        options = redis_options(locals())

        def build(name: str, spec: Any) -> Any:
            if isinstance(spec, Limiter) or is_redis(spec):
                return spec
            if limiter is not None:
                raise ValueError(
                    f"{name}: with limiter=, give ready limiters here too (a limit string "
                    "would be kept in memory while the default budget is the limiter's)"
                )
            return build_limiter(
                owner,
                spec,
                store=store,
                algorithm=algorithm,
                max_keys=max_keys,
                clock=clock,
                options=options,
            )

        self._default: Any = limiter_for(
            owner,
            limits,
            limiter=limiter,
            beside={
                "limits": not isinstance(limits, DefaultLimits),
                "max_keys": max_keys != 1_000_000,
                # With limiter=, per_tool holds ready limiters: only global_limits uses it.
                "algorithm": algorithm != "gcra" and global_limits is None,
            },
            store=store,
            algorithm=algorithm,
            max_keys=max_keys,
            clock=clock,
            options=options,
        )
        self._per_tool: dict[str, Any] = {
            tool: build(f"per_tool[{tool!r}]", lim) for tool, lim in (per_tool or {}).items()
        }
        limiters = [self._default, *self._per_tool.values()]
        # Whether any decision must be awaited (a Redis one); memory decisions never are.
        self._redis = any(is_redis(lim) for lim in limiters)
        # Names of tools the server was seen to have (or configured in ``per_tool``): only
        # these get budgets and statistics of their own.
        self._known: set[str] = set(self._per_tool)
        self._global: Any = None
        if global_limits is not None:
            self._global = self._global_limiter(
                owner, global_limits, limiters, store, algorithm, clock, options, max_keys
            )
        try:
            from fastmcp.exceptions import NotFoundError

            self._not_found: tuple[type[Exception], ...] = (NotFoundError,)
        except ImportError:
            self._not_found = ()

    def _global_limiter(
        self,
        owner: str,
        global_limits: Any,
        limiters: list[Any],
        store: str | None,
        algorithm: str,
        clock: Any,
        options: dict[str, Any],
        max_keys: int,
    ) -> Any:
        """The server-wide budget: in memory beside memory limiters, in ``store`` beside Redis
        ones (one script call decides a tool's limit and it together), in a host store of its
        own beside host ones (both slots locked together)."""
        if any(isinstance(lim, HostLimiter) for lim in limiters):
            if store is None or not all(isinstance(lim, HostLimiter) for lim in limiters):
                raise ValueError(
                    f"{owner}: global_limits on a host store needs store= (the budgets built "
                    "here, all in host stores)"
                )
            # The same segment: its registry keeps these limits apart from the tools'.
            return Limiter(
                global_limits,
                store=store,
                algorithm=algorithm,
                max_keys=max_keys,
                clock=clock,
            )
        if not self._redis:
            return Limiter(global_limits, algorithm=algorithm, clock=clock)
        if store is None or any(
            not is_redis(lim) or lim.store != limiters[0].store for lim in limiters
        ):
            raise ValueError(
                f"{owner}: global_limits on Redis needs store= (the budgets built here, all "
                "in one Redis): a ready limiter= or per_tool limiter beside it may name "
                "another store, and one script call must decide both"
            )
        return build_limiter(
            f"{owner} global_limits",
            global_limits,
            store=store,
            algorithm=algorithm,
            max_keys=1,
            clock=clock,
            options=options,
        )

    def _client(self, context: Any) -> str:
        if self._keys is not None:
            return self._keys(getattr(context, "fastmcp_context", None))
        if self.key == "global":
            return "*"
        return f"key:{cast('Callable[[Any], str]', self.key)(context)}"

    def _decide(self, lim: Limiter, key: str) -> Decision:
        """The per-tool and the global limit, all or nothing: a refusal spends neither."""
        if len(key) > self._cap:
            key = digest(key)
        if self._global is None:
            return lim.hit(key)
        # One native call: both limits decided all or nothing, the binding decision back.
        return lim.hit_with(key, self._global, "*")

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
        lim = self._per_tool.get(name, self._default)
        key = f"{name}:{self._client(context)}"
        if self._redis and is_redis(lim):
            key = key if len(key) <= self._cap else digest(key)
            if self._global is None:
                decision = await lim.ahit(key)
            else:
                decision = await lim.ahit_with(key, self._global, "*")
        else:
            decision = self._decide(lim, key)
        if not decision.allowed:
            stats_for(name).refused(self.clock)
            raise ToolRateLimitedError(decision.retry_after, decision.limit, name)
        if known:
            stats_for(name).admitted()
            return await call_next(context)
        try:
            result = await call_next(context)
        except Exception as error:
            # fastmcp answers a name it has no tool for with NotFoundError; anything else came
            # from a tool that exists after all (one resolved by other means than its name).
            found = not isinstance(error, self._not_found)
            stats_for(tool if found else _UNKNOWN_TOOL).admitted()
            if found:
                self._known.add(tool)
            raise
        self._known.add(tool)
        stats_for(tool).admitted()
        return result
