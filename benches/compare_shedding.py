"""Load shedding under overload: a slow dependency overloads uvicorn, with and without
``seawall.asgi.ConcurrencyLimitMiddleware``.

The server is uvicorn, one worker on 127.0.0.1, in its own process, serving a Starlette app whose
``/`` calls a simulated dependency: an ``asyncio.sleep`` of ``--base`` seconds while at most
``--capacity`` calls run at once, slower past that. ``--model linear`` (the default) slows it
in proportion, ``base * running / capacity`` (a pool of ``capacity`` workers shared by more
calls: at twice the capacity the latency has doubled); ``--model step`` doubles it as soon as
the capacity is passed, ``2 * base * running / capacity`` (thrashing: past its capacity the
dependency does half the work).

The load generator (this process, httpx) is open-loop: it sends ``--rate`` requests per second
for ``--seconds``, evenly spaced, whatever the answers (as users do), so that a server that
cannot keep up builds a backlog. ``wrk`` (installed here) keeps a fixed number of connections
instead, which bounds the backlog by the connection count: it cannot show unbounded growth, so
it is not used. Rows:

* ``unloaded``: half the capacity's rate, no middleware (the reference p99);
* ``none``: ``--overload`` times the capacity's rate, no middleware;
* ``gradient`` / ``aimd``: the same overload with the middleware and ``GradientLimit()`` (the
  defaults) or ``AIMDLimit(timeout=1.5 * base)``.

Reported per row: requests sent, answered 200 and 503, p50 / p99 latency of the admitted (200)
requests, p99 of those sent in the last quarter of the run, goodput (200s completed within the
run, per second) and the limit at the end. Timings are never tests: this script always exits 0.

``--cost`` measures instead what one admission and release costs (a permit taken and reported
as a success, no contention), next to a bare ``asyncio.Semaphore``.

Run from the repository root (release build: ``maturin develop --release``)::

    .venv/bin/python benches/compare_shedding.py [--seconds 20] [--model linear|step] [--cost]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx


def serve(port: int, mode: str, model: str, base: float, capacity: int) -> None:
    """The server process: uvicorn, one worker, the app with or without the middleware."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from seawall import AIMDLimit, ConcurrencyLimitMiddleware, GradientLimit

    running = 0

    async def dependency() -> None:
        nonlocal running
        running += 1
        try:
            load = max(1.0, running / capacity)
            factor = 2.0 * load if model == "step" and running > capacity else load
            await asyncio.sleep(base * factor)
        finally:
            running -= 1

    async def index(request: Request) -> Response:
        await dependency()
        return PlainTextResponse("ok")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    shedding: list[ConcurrencyLimitMiddleware] = []

    async def metrics(request: Request) -> Response:
        stats = shedding[0].limiter.stats() if shedding else {}
        return JSONResponse({k: v for k, v in stats.items() if k != "partitions"})

    app: Any = Starlette(
        routes=[Route("/", index), Route("/health", health), Route("/metrics", metrics)]
    )
    if mode != "none":
        limit = GradientLimit() if mode == "gradient" else AIMDLimit(timeout=1.5 * base)
        app = ConcurrencyLimitMiddleware(app, limit=limit)
        shedding.append(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", workers=1, backlog=4096)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Row:
    name: str
    sent: int
    ok: int
    shed: int
    other: int
    p50: float
    p99: float
    p99_late: float
    goodput: float
    limit: Any


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url: str, rate: float, seconds: float) -> list[tuple[float, float, int]]:
    """Open-loop load: (sent at, latency, status) per request; status 0 for a transport error."""
    results: list[tuple[float, float, int]] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:

        async def one(sent: float) -> None:
            try:
                response = await client.get("/")
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            results.append((sent, time.perf_counter() - sent, status))

        start = time.perf_counter()
        tasks = []
        n = int(rate * seconds)
        for i in range(n):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(time.perf_counter())))
        await asyncio.gather(*tasks)
    return [(sent - start, latency, status) for sent, latency, status in results]


def run_row(name: str, mode: str, rate: float, args: argparse.Namespace) -> Row:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            mode,
            "--port",
            str(port),
            "--model",
            args.model,
            "--base",
            str(args.base),
            "--capacity",
            str(args.capacity),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # polling until the server listens
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.05)
        results = asyncio.run(load(url, rate, args.seconds))
        limit = json.loads(httpx.get(f"{url}/metrics", timeout=5).text).get("limit", "-")
    finally:
        server.terminate()
        server.wait(timeout=10)
    admitted = [latency for _, latency, status in results if status == 200]
    late = [lat for sent, lat, status in results if status == 200 and sent >= 0.75 * args.seconds]
    in_window = sum(
        1 for sent, lat, status in results if status == 200 and sent + lat <= args.seconds
    )
    return Row(
        name=name,
        sent=len(results),
        ok=len(admitted),
        shed=sum(1 for r in results if r[2] == 503),
        other=sum(1 for r in results if r[2] not in (200, 503)),
        p50=percentile(admitted, 0.50),
        p99=percentile(admitted, 0.99),
        p99_late=percentile(late, 0.99),
        goodput=in_window / args.seconds,
        limit=limit,
    )


def cost() -> None:
    """Admission + release per call, best of 5: the limiter against a bare asyncio.Semaphore."""
    from seawall import ConcurrencyLimiter, GradientLimit

    n = 200_000
    limiter = ConcurrencyLimiter(GradientLimit())
    semaphore = asyncio.Semaphore(20)

    async def with_semaphore() -> None:
        for _ in range(n):
            await semaphore.acquire()
            semaphore.release()

    async def with_acquire() -> None:
        for _ in range(n):
            permit = await limiter.acquire()
            permit.success()

    def with_try_acquire() -> None:
        for _ in range(n):
            permit = limiter.try_acquire()
            assert permit is not None
            permit.success()

    def best(run: Any) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter_ns()
            run()
            times.append((time.perf_counter_ns() - start) / n)
        return min(times)

    rows = [
        ("asyncio.Semaphore acquire/release", lambda: asyncio.run(with_semaphore())),
        ("ConcurrencyLimiter.try_acquire + success", with_try_acquire),
        ("await ConcurrencyLimiter.acquire + success", lambda: asyncio.run(with_acquire())),
    ]
    print("| admission + release | ns per call |")
    print("|---|---:|")
    for name, run in rows:
        print(f"| {name} | {best(run):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=["none", "gradient", "aimd"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=["linear", "step"], default="linear")
    parser.add_argument("--base", type=float, default=0.1, help="unloaded latency, seconds")
    parser.add_argument("--capacity", type=int, default=20, help="concurrent calls")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--overload", type=float, default=1.5, help="times the capacity's rate")
    parser.add_argument("--rows", default="unloaded,none,gradient,aimd")
    parser.add_argument("--cost", action="store_true", help="admission + release cost only")
    args = parser.parse_args()
    if args.cost:
        cost()
        return
    if args.serve:
        serve(args.port, args.serve, args.model, args.base, args.capacity)
        return
    capacity_rate = args.capacity / args.base
    plan = {
        "unloaded": ("none", 0.5 * capacity_rate),
        "none": ("none", args.overload * capacity_rate),
        "gradient": ("gradient", args.overload * capacity_rate),
        "aimd": ("aimd", args.overload * capacity_rate),
    }
    print(
        f"dependency: {args.model}, base {args.base * 1000:.0f} ms, capacity {args.capacity} "
        f"calls ({capacity_rate:.0f} req/s); overload {args.overload}x = "
        f"{args.overload * capacity_rate:.0f} req/s for {args.seconds:.0f} s; uvicorn, 1 worker"
    )
    print()
    print(
        "| row | req/s | sent | 200 | 503 | other | p50 ms | p99 ms | p99 last quarter ms "
        "| goodput 200/s | limit at end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name in args.rows.split(","):
        mode, rate = plan[name]
        row = run_row(name, mode, rate, args)
        rows.append(row)
        print(
            f"| {name} | {rate:.0f} | {row.sent} | {row.ok} | {row.shed} | {row.other} "
            f"| {row.p50 * 1000:.0f} | {row.p99 * 1000:.0f} | {row.p99_late * 1000:.0f} "
            f"| {row.goodput:.0f} | {row.limit} |",
            flush=True,
        )
    unloaded = next((r for r in rows if r.name == "unloaded"), None)
    if unloaded is not None:
        print()
        for r in rows:
            if r.name != "unloaded":
                print(f"{r.name}: p99 of admitted = {r.p99 / unloaded.p99:.2f}x the unloaded p99")


if __name__ == "__main__":
    main()
