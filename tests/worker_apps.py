"""The apps that real worker processes serve in tests/test_workers_redis.py (issue 13, item 5).

Each factory builds its limiters from the environment, in every worker that imports it:

- ``SEAWALL_WORKERS_STORE``: the Redis URL every limiter shares;
- ``SEAWALL_WORKERS_PREFIX``: this server's key prefix (unique per server start); each limiter
  adds its own part, so no two budgets meet.

:func:`http_app` serves one case per path prefix, each under its own limiter, so that one server
(uvicorn ``--workers 4`` or gunicorn ``-w 4``) answers every HTTP case. Every case exists
``ATTEMPTS`` times (``/<case>/<attempt>/...``), each with a fresh budget, so that a test can
retry a burst when the kernel happened to hand every connection to one worker. The paths:

- ``/client/<a>/...``: ``RateLimitMiddleware(limits=CLIENT)`` (per client IP);
- ``/rules/<a>/limited`` and ``/rules/<a>/other``: ``RateLimitMiddleware(limits=RULE_DEFAULT,
  rules=[("/rules/<a>/limited", RULE)])``: the rule replaces the default for its path;
- ``/global/<a>/...``: ``RateLimitMiddleware(limits=GLOBAL_PER_CLIENT, global_limits=GLOBAL,
  key="header:X-Client")``: one budget for every client;
- ``/fastapi/<a>/...``: a FastAPI route with ``Depends(seawall.fastapi.limit(DEPENDENCY))``;
- ``/decorator/<a>/...``: a Starlette endpoint under ``@seawall.rate_limit(DECORATOR)``, keyed
  by the client address;
- ``/fail/allow``, ``/fail/deny``, ``/fail/local``: ``RateLimitMiddleware`` with that
  ``on_error`` and short timeouts, for the Redis-killed tests (``/fail/local`` keyed by
  ``X-Client``, limit ``LOCAL``);
- ``/host-client/<a>/...`` and ``/host-global/<a>/...``: the client and global cases on a host
  store (``host://<SEAWALL_WORKERS_HOST>-…``, shared memory) instead of Redis;
- ``/pid``: no limit (readiness).

Every response, a refusal included, carries the answering worker's pid in ``X-Worker-Pid``.

:func:`mcp_app` is a stateless FastMCP server over streamable HTTP whose tools ``deco_<a>``
(``@rate_limit_tool(MCP_LIMIT)``) and ``mw_<a>`` (``ToolRateLimitMiddleware(per_tool=...)``)
return the pid of the worker that ran them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import seawall
from seawall import RateLimitMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ATTEMPTS = 3
CLIENT = 10
RULE = 5
RULE_DEFAULT = 20
GLOBAL = 8
GLOBAL_PER_CLIENT = 100
DEPENDENCY = 10
DECORATOR = 10
LOCAL = 3
MCP_LIMIT = 10
# Short, so that no request waits long on a dead Redis (a killed one resets its connections and
# refuses new ones at once), yet far above a Redis round trip on a loaded machine.
TIMEOUTS: dict[str, Any] = {"connect_timeout": 0.5, "command_timeout": 0.5}


def _store() -> str:
    return os.environ["SEAWALL_WORKERS_STORE"]


def _prefix(part: str) -> str:
    return f"{os.environ['SEAWALL_WORKERS_PREFIX']}{part}:"


def _host(part: str) -> str:
    """A host store (shared memory) of this server's own (``SEAWALL_WORKERS_HOST``)."""
    return f"host://{os.environ['SEAWALL_WORKERS_HOST']}-{part}"


def _hour(n: int) -> str:
    return f"{n}/hour"


def with_pid(app: ASGIApp) -> ASGIApp:
    """``app``, every HTTP response of which says which worker process answered."""
    pid = str(os.getpid()).encode()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-worker-pid", pid)]
            await send(message)

        await app(scope, receive, send_with_pid)

    return wrapped


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def _dispatch(routes: dict[str, ASGIApp]) -> ASGIApp:
    """Send each request to the app of its path's first two segments (``/client/0``), with the
    scope untouched (the limiters see the full path), or of its whole path (``/fail/deny``)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        target = routes.get(path) or routes.get("/".join(path.split("/")[:3]))
        if target is None:
            await PlainTextResponse("no such case", status_code=404)(scope, receive, send)
        else:
            await target(scope, receive, send)

    return app


def _fastapi_app() -> ASGIApp:
    from fastapi import Depends, FastAPI

    from seawall.fastapi import limit

    app = FastAPI()
    for a in range(ATTEMPTS):
        dependency = limit(_hour(DEPENDENCY), store=_store(), key_prefix=_prefix(f"fastapi-{a}"))

        @app.get(f"/fastapi/{a}/x", dependencies=[Depends(dependency)])
        async def endpoint() -> dict[str, str]:
            return {"ok": "yes"}

    return app


def _refused(error: seawall.RateLimitExceeded) -> Response:
    return PlainTextResponse(
        "limited", status_code=429, headers={"Retry-After": str(error.retry_after_seconds)}
    )


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _decorated_app() -> ASGIApp:
    routes = []
    for a in range(ATTEMPTS):
        limited = seawall.rate_limit(
            _hour(DECORATOR),
            key=_client_address,
            on_limit=_refused,
            store=_store(),
            key_prefix=_prefix(f"decorator-{a}"),
        )
        routes.append(Route(f"/decorator/{a}/x", limited(_ok)))
    return Starlette(routes=routes)


def http_app() -> ASGIApp:
    """Every HTTP case on one server (``uvicorn --factory worker_apps:http_app``)."""
    store = _store()
    inner = Starlette(routes=[Route("/{path:path}", _ok, methods=["GET"])])
    routes: dict[str, ASGIApp] = {}

    def middleware(part: str, **options: Any) -> ASGIApp:
        return RateLimitMiddleware(inner, store=store, key_prefix=_prefix(part), **options)

    fastapi = _fastapi_app()
    decorated = _decorated_app()
    for a in range(ATTEMPTS):
        routes[f"/client/{a}"] = middleware(f"client-{a}", limits=_hour(CLIENT))
        routes[f"/rules/{a}"] = middleware(
            f"rules-{a}",
            limits=_hour(RULE_DEFAULT),
            rules=[(f"/rules/{a}/limited", _hour(RULE))],
        )
        routes[f"/global/{a}"] = middleware(
            f"global-{a}",
            limits=_hour(GLOBAL_PER_CLIENT),
            global_limits=_hour(GLOBAL),
            key="header:X-Client",
        )
        routes[f"/fastapi/{a}"] = fastapi
        routes[f"/decorator/{a}"] = decorated
        # The same on the host store (shared memory): no Redis involved.
        routes[f"/host-client/{a}"] = RateLimitMiddleware(
            inner, limits=_hour(CLIENT), store=_host(f"client-{a}"), max_keys=1000
        )
        routes[f"/host-global/{a}"] = RateLimitMiddleware(
            inner,
            limits=_hour(GLOBAL_PER_CLIENT),
            global_limits=_hour(GLOBAL),
            key="header:X-Client",
            store=_host(f"global-{a}"),
            max_keys=1000,
        )
    for policy in ("allow", "deny"):
        routes[f"/fail/{policy}"] = middleware(
            f"fail-{policy}", limits=_hour(1000), on_error=policy, **TIMEOUTS
        )
    routes["/fail/local"] = middleware(
        "fail-local", limits=_hour(LOCAL), key="header:X-Client", on_error="local", **TIMEOUTS
    )
    routes["/pid"] = inner
    return with_pid(_dispatch(routes))


def mcp_app() -> ASGIApp:
    """A stateless FastMCP server over streamable HTTP (``uvicorn --factory
    worker_apps:mcp_app``): any worker can answer any request."""
    from fastmcp import FastMCP

    from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool

    store = _store()
    per_tool: dict[str, Any] = {f"mw_{a}": _hour(MCP_LIMIT) for a in range(ATTEMPTS)}
    middleware = ToolRateLimitMiddleware(
        _hour(100_000), per_tool=per_tool, store=store, key_prefix=_prefix("mcp-mw")
    )
    mcp = FastMCP("workers", middleware=[middleware])
    # One decorator object, one limiter: each tool keeps its own budget (its name is in the key).
    limited = rate_limit_tool(_hour(MCP_LIMIT), store=store, key_prefix=_prefix("mcp-deco"))

    def pid() -> dict[str, Any]:
        return {"pid": os.getpid()}

    for a in range(ATTEMPTS):
        mcp.tool(name=f"mw_{a}")(_named(pid, f"mw_{a}"))
        mcp.tool(name=f"deco_{a}")(limited(_named(pid, f"deco_{a}")))
    app: ASGIApp = mcp.http_app(path="/mcp", stateless_http=True, json_response=True)
    return with_pid(app)


def _named(func: Callable[[], dict[str, Any]], name: str) -> Callable[[], dict[str, Any]]:
    """A copy of ``func`` called ``name`` (the decorator keys a tool by its function's name)."""

    def tool() -> dict[str, Any]:
        return func()

    tool.__name__ = tool.__qualname__ = name
    return tool
