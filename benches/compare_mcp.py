"""The added cost of rate-limiting an MCP tool: seawall's decorator and middleware vs seed 004.

Prints markdown tables of the cost per tool call of:

1. **In process, sync**: the tool function called directly (``f(user_id="u")``), undecorated,
   through ``@seawall.mcp.rate_limit_tool(key="user_id")``, and through a seed-004-style
   decorator (seed 004's ``RateLimiterService``: a list of timestamps per client, pruned on every
   call; ``benches/seed004.py``). The decorator's own cost, with no MCP request around it.
2. **Inside a live fastmcp request**: timed inside a real tool call of a real ``FastMCP`` server
   (reached through fastmcp's in-memory client, ``mode="legacy"``), so ``ctx`` is that request's
   real ``Context`` and the session is real: ``await t(x=1, ctx=ctx)`` undecorated, with
   ``@rate_limit_tool()`` (``key="auto"``, the default: the principal, else the client address,
   else the connection) and with the seed-004-style decorator
   keyed on ``ctx.session_id``; then the middlewares' tool hooks called directly around the same
   tool (``await mw.on_call_tool(context, call_next)``) against ``await call_next(context)``:
   seawall's ``ToolRateLimitMiddleware`` (default key, per tool) and fastmcp's own
   ``RateLimitingMiddleware`` (its default: one global bucket). The precise added cost of each.
3. **Through fastmcp's in-memory client**: ``await client.call_tool("t", {"x": 1})`` end to end
   against servers set up like those of table 2, plus a tool without a ``ctx`` parameter, bare and
   decorated (seawall then gives it a hidden ``Context`` parameter, which fastmcp fills through
   its dependency injection). ``mode="legacy"`` (one session per client, as seed 004 assumed);
   ``--modern`` uses fastmcp's default 2026-07-28 protocol, where every request builds its own
   connection and costs several times more. A call costs about a millisecond here, so added
   costs of microseconds are within run-to-run spread: table 2 is the one that resolves them.

Every limit is far above the call rate, so every call is admitted: this measures the cost of
checking, not of refusing. seawall uses GCRA (its default): O(1) state per key whatever the call
rate. Seed 004 prunes and rebuilds its client's list on every call, so its cost grows with the
calls in its window: two rows each, a 2 µs window (the log holds a call or two: its best case,
like a client far below its limit) and a 1 s window (the log holds one second of this loop's
calls: what it costs a client calling this fast).

Timing: ``time.perf_counter_ns`` around N iterations of a plain ``for`` loop (all async rows in
one ``asyncio.run``), best of 5 repeats (3 with ``--quick``), cyclic GC disabled while timing. N
is calibrated per row so that a repeat takes about ``--target-ms``. The repeats of a table are
interleaved (each repeat times every row once), so a slow spell of a shared machine slows all of
its rows alike instead of one. Timings are never tests: this script always exits 0.

Run from the repository root::

    .venv/bin/python benches/compare_mcp.py [--quick] [--modern]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from seed004 import RateLimiterService
from timing import AsyncTimer, SyncTimer, abest_of, best_of, ns, plan_units, print_header, table

import seawall
from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool

try:
    from fastmcp import Context  # module-level: tool annotations are resolved from here
except ImportError:  # only the in-process rows run
    Context = Any

HUGE = "1000000000/second"
SHORT = 2e-6  # seed 004's window for its best case: the log holds at most a call or two


@dataclass(frozen=True)
class Settings:
    target_ns: int
    repeats: int


@dataclass(frozen=True)
class Row:
    label: str
    ns: float
    added: float | None  # ns over this row's baseline; None for a baseline row


# --------------------------------------------------------------------------------------------
# Seed 004's decorator: a list of timestamps per client


def seed004_tool(limit: int = 10**9, window: float = 1.0) -> Callable[[Any], Any]:
    service = RateLimiterService(limit, window)

    def decorator(func: Any) -> Any:
        def client_of(kwargs: dict[str, Any]) -> str:
            ctx = kwargs.get("ctx")
            if ctx is not None:
                return str(ctx.session_id)
            return str(kwargs.get("user_id", "anonymous"))

        def refused(info: dict[str, Any]) -> dict[str, Any]:
            return {
                "success": False,
                "error": "Rate limit exceeded",
                "rate_limited": True,
                "retry_after": info["retry_after"],
            }

        if asyncio.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                allowed, info = service.check_and_record(client_of(kwargs), limit, window)
                if not allowed:
                    return refused(info)
                return await func(*args, **kwargs)

            return awrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            allowed, info = service.check_and_record(client_of(kwargs), limit, window)
            if not allowed:
                return refused(info)
            return func(*args, **kwargs)

        return wrapper

    return decorator


# --------------------------------------------------------------------------------------------
# Timers


def t_direct(fn: Callable[..., object]) -> SyncTimer:
    def timer(n: int) -> int:
        f = fn
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(user_id="u")
        return time.perf_counter_ns() - t0

    return timer


def t_client(call: Callable[[str, dict[str, Any]], Awaitable[object]]) -> AsyncTimer:
    async def timer(n: int) -> int:
        c = call
        args = {"x": 1}
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await c("t", args)
        return time.perf_counter_ns() - t0

    return timer


def t_tool(fn: Callable[..., Awaitable[object]], ctx: Any) -> AsyncTimer:
    async def timer(n: int) -> int:
        f, c = fn, ctx
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await f(x=1, ctx=c)
        return time.perf_counter_ns() - t0

    return timer


def t_hook(hook: Callable[[Any, Any], Awaitable[object]], context: Any, nxt: Any) -> AsyncTimer:
    async def timer(n: int) -> int:
        h, c, x = hook, context, nxt
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await h(c, x)
        return time.perf_counter_ns() - t0

    return timer


def t_next(nxt: Callable[[Any], Awaitable[object]], context: Any) -> AsyncTimer:
    async def timer(n: int) -> int:
        x, c = nxt, context
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await x(c)
        return time.perf_counter_ns() - t0

    return timer


def after_filling(timer: SyncTimer, seconds: float) -> SyncTimer:
    """``timer``, run untimed for ``seconds`` first: a seed 004 log then holds that long's calls
    when the timing starts (interleaved repeats would otherwise each start on an empty log)."""

    def filled(n: int) -> int:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            timer(100)
        return timer(n)

    return filled


def aafter_filling(timer: AsyncTimer, seconds: float) -> AsyncTimer:
    """:func:`after_filling` for a timer that must be awaited."""

    async def filled(n: int) -> int:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await timer(100)
        return await timer(n)

    return filled


def measure_all(timers: list[SyncTimer], s: Settings) -> list[float]:
    """ns per call of each timer. The repeats are interleaved (each repeat times every row once)
    so that a slow spell of the machine slows every row alike; the best repeat of each is kept."""
    units = []
    for timer in timers:
        timer(1_000)
        units.append(plan_units(timer(10_000), 10_000, s.target_ns))
    best = [float("inf")] * len(timers)
    for _ in range(s.repeats):
        for i, (timer, n) in enumerate(zip(timers, units, strict=True)):
            best[i] = min(best[i], best_of(timer, n, 1) / n)
    return best


async def ameasure_all(timers: list[AsyncTimer], s: Settings, probe: int = 50) -> list[float]:
    """:func:`measure_all` for timers that must be awaited."""
    units = []
    for timer in timers:
        await timer(max(1, probe // 2))
        units.append(plan_units(await timer(probe), probe, s.target_ns))
    best = [float("inf")] * len(timers)
    for _ in range(s.repeats):
        for i, (timer, n) in enumerate(zip(timers, units, strict=True)):
            best[i] = min(best[i], await abest_of(timer, n, 1) / n)
    return best


def rows_from(measured: list[tuple[str, float, str | None]]) -> list[Row]:
    """Rows from ``(label, ns, baseline label or None)``."""
    by_label = {label: t for label, t, _ in measured}
    return [
        Row(label, t, None if base is None else t - by_label[base]) for label, t, base in measured
    ]


# --------------------------------------------------------------------------------------------
# Subjects


def direct_rows(s: Settings) -> list[Row]:
    def tool(user_id: str) -> dict[str, Any]:
        return {"user": user_id}

    base = "undecorated `f(user_id=...)`"
    subjects = [
        (base, tool),
        ('seawall `@rate_limit_tool(key="user_id")`', rate_limit_tool(HUGE, key="user_id")(tool)),
        ("seed 004 decorator, short log", seed004_tool(window=SHORT)(tool)),
        ("seed 004 decorator, 1 s log", seed004_tool(window=1.0)(tool)),
    ]
    timers = [t_direct(fn) for _, fn in subjects]
    timers[-1] = after_filling(timers[-1], 1.0)  # the 1 s log, full
    times = measure_all(timers, s)
    return rows_from(
        [
            (label, t, None if label == base else base)
            for (label, _), t in zip(subjects, times, strict=True)
        ]
    )


def make() -> Callable[..., Awaitable[dict[str, Any]]]:
    # A fresh function per server: seawall refuses a function fastmcp has registered
    # (``@rate_limit_tool`` above ``@mcp.tool()``), and each server registers its own.
    async def t(x: int, ctx: Context) -> dict[str, Any]:
        return {"x": x}

    return t


def make_bare() -> Callable[..., Awaitable[dict[str, Any]]]:
    async def t(x: int) -> dict[str, Any]:
        return {"x": x}

    return t


def fastmcp_middleware() -> Any:
    try:
        from fastmcp.server.middleware.rate_limiting import RateLimitingMiddleware
    except ImportError:
        return None
    return RateLimitingMiddleware(max_requests_per_second=1e9)


async def live_rows(s: Settings) -> list[Row]:
    """Table 2: timed inside a real tool call, with that request's own ``Context``."""
    from fastmcp import Client, FastMCP
    from fastmcp.server.middleware import MiddlewareContext
    from mcp_types import CallToolRequestParams

    measured: list[tuple[str, float, str | None]] = []

    async def run(ctx: Context) -> dict[str, Any]:
        tool = make()
        base = "undecorated `await t(x=1, ctx=ctx)`"
        subjects: list[tuple[str, Callable[..., Awaitable[object]]]] = [
            (base, tool),
            ("seawall `@rate_limit_tool()` (default key)", rate_limit_tool(HUGE, name="t")(tool)),
            ("seed 004 decorator, short log", seed004_tool(window=SHORT)(tool)),
            ("seed 004 decorator, 1 s log", seed004_tool(window=1.0)(tool)),
        ]
        context = MiddlewareContext(
            message=CallToolRequestParams(name="t", arguments={"x": 1}),
            fastmcp_context=ctx,
            method="tools/call",
        )

        async def call_next(context: Any) -> object:
            return await tool(x=1, ctx=ctx)

        rows: list[tuple[str, AsyncTimer, str | None]] = [
            (label, t_tool(fn, ctx), None if label == base else base) for label, fn in subjects
        ]
        rows[-1] = (rows[-1][0], aafter_filling(rows[-1][1], 1.0), base)  # the 1 s log, full
        nbase = "`await call_next(context)` (the tool, no middleware)"
        rows.append((nbase, t_next(call_next, context), None))
        ours = ToolRateLimitMiddleware(HUGE)
        label = "seawall `ToolRateLimitMiddleware.on_call_tool` (default key)"
        rows.append((label, t_hook(ours.on_call_tool, context, call_next), nbase))
        theirs = fastmcp_middleware()
        if theirs is not None:
            label = "fastmcp `RateLimitingMiddleware.on_request` (global)"
            rows.append((label, t_hook(theirs.on_request, context, call_next), nbase))
        times = await ameasure_all([timer for _, timer, _ in rows], s, probe=2_000)
        measured.extend((label, t, b) for (label, _, b), t in zip(rows, times, strict=True))
        return {"rows": len(measured)}

    server = FastMCP("live")
    server.tool(name="run")(run)
    async with Client(server, mode="legacy") as c:
        await c.call_tool("run", {})
    return rows_from(measured)


def servers() -> list[tuple[str, Any, str | None]]:
    from fastmcp import FastMCP

    out: list[tuple[str, Any, str | None]] = []
    base = "undecorated tool"
    plain = FastMCP("plain")
    plain.tool(name="t")(make())
    out.append((base, plain, None))

    dec = FastMCP("decorated")
    dec.tool(name="t")(rate_limit_tool(HUGE, name="t")(make()))
    out.append(("seawall `@rate_limit_tool()` (default key)", dec, base))

    for window, what in ((SHORT, "short log"), (1.0, "1 s log")):
        seed = FastMCP("seed004")
        seed.tool(name="t")(seed004_tool(window=window)(make()))
        out.append((f"seed 004 decorator, {what} (per `ctx.session_id`)", seed, base))

    mw = FastMCP("middleware", middleware=[ToolRateLimitMiddleware(HUGE)])
    mw.tool(name="t")(make())
    out.append(("seawall `ToolRateLimitMiddleware` (default key)", mw, base))

    theirs = fastmcp_middleware()
    if theirs is not None:
        fmw = FastMCP("fastmcp-mw", middleware=[theirs])
        fmw.tool(name="t")(make())
        out.append(("fastmcp `RateLimitingMiddleware` (global)", fmw, base))

    bare_base = "undecorated tool without `ctx`"
    bare = FastMCP("bare")
    bare.tool(name="t")(make_bare())
    out.append((bare_base, bare, None))

    bare_dec = FastMCP("bare-decorated")
    bare_dec.tool(name="t")(rate_limit_tool(HUGE, name="t")(make_bare()))
    out.append(("seawall `@rate_limit_tool()` on it (hidden `Context`)", bare_dec, bare_base))
    return out


async def client_rows(s: Settings, modern: bool) -> list[Row]:
    """Table 3: one client per server, all connected at once, their repeats interleaved."""
    from fastmcp import Client

    subjects = servers()
    async with contextlib.AsyncExitStack() as stack:
        timers = []
        for _label, server, _base in subjects:
            client = Client(server) if modern else Client(server, mode="legacy")
            timers.append(t_client((await stack.enter_async_context(client)).call_tool))
        times = await ameasure_all(timers, s)
    return rows_from(
        [(label, t, base) for (label, _, base), t in zip(subjects, times, strict=True)]
    )


async def async_rows(s: Settings, modern: bool) -> tuple[list[Row], list[Row]]:
    return await live_rows(s), await client_rows(s, modern)


# --------------------------------------------------------------------------------------------
# Output


def kind(label: str) -> str:
    """What a row measures: a decorator or a middleware (compared with seawall's of its kind)."""
    return "middleware" if "iddleware" in label else "decorator"


def seawall_rows(rows: list[Row]) -> dict[str, Row]:
    ours: dict[str, Row] = {}
    for r in rows:
        if r.label.startswith("seawall") and r.added is not None:
            ours.setdefault(kind(r.label), r)
    return ours


def rows_table(rows: list[Row], unit: str, scale: float) -> str:
    """Each row's added cost, and that over the added cost of seawall's row of its kind."""
    ours = seawall_rows(rows)
    out: list[list[str]] = []
    for r in rows:
        if r.added is None:
            out.append([r.label, ns(r.ns / scale), "(baseline)", ""])
            continue
        mine = ours[kind(r.label)].added if kind(r.label) in ours else None
        # A ratio of spreads (an added cost at or below zero) would mean nothing.
        times = f"{r.added / mine:.1f}x" if mine and mine > 0 and r.added > 0 else "n/a"
        out.append([r.label, ns(r.ns / scale), ns(r.added / scale), times])
    return table(
        ["call", f"{unit}/call", f"added {unit}", "added vs seawall's"],
        out,
        right={1, 2, 3},
    )


def ratios(title: str, rows: list[Row]) -> None:
    ours = seawall_rows(rows)
    for r in rows:
        if r.added is None:
            continue
        if r.label.startswith("seawall"):
            print(f"- {title}: {r.label} costs {r.ns / (r.ns - r.added):.3f}x its baseline")
            continue
        peer = ours.get(kind(r.label))
        if peer is not None and peer.added and peer.added > 0 and r.added > 0:
            print(f"- {title}: {r.label} adds {r.added / peer.added:.1f}x what {peer.label} adds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short repeats")
    parser.add_argument("--target-ms", type=float, default=None, help="time per repeat")
    parser.add_argument(
        "--modern", action="store_true", help="2026-07-28 client (default: mode='legacy')"
    )
    args = parser.parse_args()
    target_ms = args.target_ms or (40.0 if args.quick else 300.0)
    s = Settings(int(target_ms * 1e6), 3 if args.quick else 5)
    logging.getLogger("seawall.mcp").setLevel(logging.ERROR)  # the in-memory shared-key note

    started = time.perf_counter()
    versions = {"seawall": getattr(seawall, "__version__", "?")}
    for dist in ("fastmcp", "mcp"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    print_header("# MCP tool rate limiting: added cost per call", versions)
    print(f"- best of {s.repeats}, about {target_ms:.0f} ms per repeat; every call admitted")
    print(flush=True)

    direct = direct_rows(s)
    print("## 1. In process: the tool function called directly (sync)")
    print()
    print(rows_table(direct, "ns", 1.0))
    print(flush=True)

    if versions["fastmcp"] == "not installed":
        print("fastmcp is not installed: the MCP rows are left out")
        return 0
    live, clients = asyncio.run(async_rows(s, args.modern))
    print("## 2. Inside a live fastmcp request (legacy session): async tool with `ctx: Context`")
    print()
    print(rows_table(live, "ns", 1.0))
    print()
    mode = "2026-07-28 (fastmcp's default)" if args.modern else '`mode="legacy"`'
    print(f"## 3. Through fastmcp's in-memory `Client` ({mode}), end to end")
    print()
    print(rows_table(clients, "µs", 1000.0))
    print()
    print(
        "An in-memory call costs about a millisecond of fastmcp and SDK work: added costs of a "
        "few µs are within its run-to-run spread (negative ones are that spread); table 2 "
        "measures them."
    )
    print()

    print("## Ratios")
    print()
    ratios("in process", direct)
    ratios("in a live request", live)
    ratios("through the client", clients)
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
