"""seawall's ``RateLimitMiddleware`` vs slowapi vs a seed-004-style limiter, in front of a
Starlette hello-world: served requests/s under uvicorn + wrk, and the in-process cost per request.

Part 1 (served): ``PlainTextResponse("Hello, world!")`` on ``/``, served by uvicorn (uvloop +
httptools, one worker, log level warning, no access log) on 127.0.0.1, one fresh server process per
variant and round, pinned to CPU 0 (``taskset -c 0``); wrk drives it from CPU 1
(``taskset -c 1 wrk -t1 -c32 -d<secs>s``). Each slot is a warm-up run, then a measured run;
rounds are interleaved (round-robin over the variants, each round starting one variant later) and
every variant reports its best and median round. A variant with any non-2xx/3xx response
(a 429 or a 5xx) is invalid: every limiter here is configured to admit everything, so this
measures the cost of an admitted request, not of a denial.

Part 2 (in-process): each middleware wrapped around a trivial inner ASGI app (sends start + body)
and called directly with a fixed ``http`` scope (shallow-copied per call: Starlette's ``Request``
writes ``scope["state"]``), N calls in a plain loop inside one ``asyncio.run`` (default loop),
best of 5 repeats, GC off while timing; the bare inner app's time is subtracted.

Variants: no middleware; a pure-ASGI pass-through (the floor of any middleware); a pure-ASGI
middleware adding three constant ``X-RateLimit-*`` headers in Python (the floor of any middleware
that adds them); seawall
``RateLimitMiddleware(limits="1000000000/second")`` (key: client IP, X-RateLimit headers on);
slowapi ``SlowAPIMiddleware`` and, when installed, ``SlowAPIASGIMiddleware`` (default limit
``1000000000/second``, headers on); a seed-004-style ``BaseHTTPMiddleware`` keeping a per-client
list of timestamps (``benches/seed004.py``, limit 1e9 per ``--seed-window`` s, DEBUG log per
admitted request, dropped by Python's default level).

``--store redis`` (served only; the memory mode above is unchanged): the script starts its own
redis-server (``tests/redis_servers.py``: a free 127.0.0.1 port, no persistence) and every limiter
keeps its state there: seawall ``RateLimitMiddleware(limits=LIMIT, store=url, on_error="deny")``
(``deny``: a failed Redis call answers 503, which invalidates the row, so every admitted request
was decided on Redis) and slowapi's middlewares (the same shapes as above) with
``Limiter(..., storage_uri=url)`` (``limits``' sync redis-py storage: a fixed-window ``EVALSHA`` to
count, then ``TTL`` and ``GET`` for the headers), against no middleware. uvicorn runs with 1 worker
and with 4 (``--workers 4``: a supervisor and 4 spawned processes; the app is built by the factory
``compare_asgi:redis_app``), wrk at 64 connections. Pinning on 2 CPUs: with 1 worker uvicorn has
CPU 0 to itself and wrk and redis-server share CPU 1; with 4 workers nothing is pinned (the
workers, wrk and redis-server share both CPUs under the OS scheduler: a server of 4 processes
cannot be held to one CPU without measuring 1 CPU's worth of workers), and a fresh redis-server
serves that phase. Redis is flushed (``FLUSHALL``) before each server starts.

Redis use per request, from ``INFO commandstats`` read before and after each measured run (its
own ``INFO`` not counted), divided by the requests wrk completed: "commands executed" is every
command Redis ran, those run inside a script included (commandstats counts both alike: limits'
script shows as ``EVALSHA`` plus ``INCRBY``); "Redis calls" is what the server's Redis clients
sent: a script call counts 1 whatever it runs, a redis-py pipeline of N commands counts N. The
commands run inside scripts are told apart by a ``MONITOR`` sample (``[0 lua]`` lines) of 8
sequential requests per variant, spread over more than a second, before its first warm-up (a
command not seen there counts as a call, and is named under the table). "script calls" are
``EVALSHA``/``EVAL`` (and their ``_RO`` forms, ``FCALL``). One request is one decision for every
limiter here (one limit, one key), so "decisions/script call" is requests / script calls:
seawall batches the decisions of the requests in flight into one ``EVALSHA`` (one ``TIME``, then
a ``GET`` and a ``SET`` per decision inside it), slowapi makes one per request plus its header
reads. Requests still in flight when wrk stops are decided but not counted (at most 64 a run),
which puts slowapi's counts about 1% above 1 per request. Server CPU counts every process of the
server (supervisor and workers); Redis CPU is redis-server's. Ctrl-C stops every server this
script started and exits 130.

Only 127.0.0.1 is contacted; every loop is bounded in count and time; servers are always stopped.
Timings are never tests: this script always exits 0.

Run from the repository root::

    .venv/bin/python benches/compare_asgi.py [--quick]
    .venv/bin/python benches/compare_asgi.py --store redis [--quick | --smoke]

``--metrics`` (memory store): seawall's rows without and with metrics (issue 17's bar: within
5%). In process, each seawall variant is timed without and with a ``SeawallCollector`` scraped
every second by a background thread (``benches/metrics_overhead.py``: long runs, alternating,
medians); served, a ``seawall_metrics`` server (seawall's middleware, its process scraping the
collector every second on a thread) is interleaved with the ``none`` and ``seawall`` ones.

    .venv/bin/python benches/compare_asgi.py --metrics [--quick] [--no-served]

The server processes are this script: ``compare_asgi.py --serve <variant> --port <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import seed004
import slowapi.middleware
from limits.storage import MemoryStorage
from metrics_overhead import BAR, Paired, describe, metrics_table, paired
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from timing import plan_units, print_header, stop_timer, table

from seawall import RateLimitMiddleware

AsyncTimer = Callable[[int], Coroutine[Any, Any, int]]

LIMIT = "1000000000/second"
SEED_LIMIT = 1_000_000_000
HELLO = b"Hello, world!"
CLIENT = ("203.0.113.7", 1234)
# Response headers a limiter variant must add to an admitted response (lower-case).
RATELIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
NEED_SERVED_FRACTION = 0.90
NEED_ADDED_US = 3.0
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------------------------
# The app and the variants


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


class PassThrough:
    """A pure-ASGI middleware that does nothing: the floor of any middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# The values seawall sends at LIMIT on a fresh key: the same names and byte lengths.
CONSTANT_HEADERS = [
    (b"x-ratelimit-limit", b"1000000000"),
    (b"x-ratelimit-remaining", b"999999999"),
    (b"x-ratelimit-reset", b"1"),
]


class ConstantHeaders:
    """A pure-ASGI middleware that adds three constant ``X-RateLimit-*`` headers and decides
    nothing: the floor of any middleware that adds them (a new start message and list, as
    ASGI asks, and the server's own work on three more headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                extended = [*message.get("headers", ()), *CONSTANT_HEADERS]
                message = message.copy()  # type: ignore[attr-defined]
                message["headers"] = extended
            return send(message)

        await self.app(scope, receive, send_with_headers)


class SeedRateLimitMiddleware(BaseHTTPMiddleware):
    """Seed 004's HTTP limiter: ``BaseHTTPMiddleware``, key ``http_{client ip}``, its
    ``RateLimiterService`` (a list of timestamps per client, rebuilt on every call), a 429
    ``JSONResponse`` on denial and ``X-RateLimit-*`` headers on the response when admitted."""

    def __init__(
        self, app: ASGIApp, limiter: seed004.RateLimiterService, limit: int, window: float
    ) -> None:
        super().__init__(app)
        self.limiter = limiter
        self.limit = limit
        self.window = window

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        client_id = f"http_{request.client.host if request.client else 'unknown'}"
        is_allowed, rate_info = self.limiter.check_and_record(client_id, self.limit, self.window)
        if not is_allowed:
            return JSONResponse(
                {
                    "error": "Rate limit exceeded",
                    "message": f"Too many requests. Limit: {self.limit} per {self.window}s",
                    "retry_after": rate_info["retry_after"],
                },
                status_code=429,
                headers={"Retry-After": str(rate_info["retry_after"])},
            )
        response = await call_next(request)
        response.headers["X-RateLimit-Limit"] = str(rate_info["limit"])
        response.headers["X-RateLimit-Remaining"] = str(rate_info["remaining"])
        response.headers["X-RateLimit-Reset"] = str(rate_info["reset_time"])
        return response


SLOWAPI_ASGI: Callable[[ASGIApp], ASGIApp] | None = getattr(
    slowapi.middleware, "SlowAPIASGIMiddleware", None
)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    limiter: bool  # a rate limiter: must add X-RateLimit-* headers to an admitted response


VARIANTS: list[Variant] = [
    Variant("none", "no middleware", False),
    Variant("passthrough", "pure-ASGI pass-through", False),
    Variant("passthrough_headers", "pure-ASGI, 3 constant X-RateLimit headers", True),
    Variant("seawall", "seawall `RateLimitMiddleware`", True),
    Variant("seawall_noheaders", 'seawall `RateLimitMiddleware(headers="none")`', False),
    Variant("slowapi", "slowapi `SlowAPIMiddleware`", True),
    *(
        [Variant("slowapi_asgi", "slowapi `SlowAPIASGIMiddleware`", True)]
        if SLOWAPI_ASGI is not None
        else []
    ),
    Variant("seed004", "seed-004-style `BaseHTTPMiddleware`", True),
]
# --metrics only: seawall's middleware in a process that scrapes its collector every second.
METRICS_VARIANTS: list[Variant] = [
    Variant("seawall_metrics", "seawall `RateLimitMiddleware`, collector scraped every 1 s", True)
]
BY_KEY = {v.key: v for v in VARIANTS + METRICS_VARIANTS}


@dataclass
class Built:
    """One variant's middleware (``None``: no middleware) and the state it needs on the app."""

    middleware: Middleware | None
    slowapi_limiter: Limiter | None = None
    seed_service: seed004.RateLimiterService | None = None


def build(key: str, seed_window: float) -> Built:
    """A fresh middleware (fresh limiter state) for variant ``key``."""
    if key == "none":
        return Built(None)
    if key == "passthrough":
        return Built(Middleware(PassThrough))
    if key == "passthrough_headers":
        return Built(Middleware(ConstantHeaders))
    if key == "seawall":
        return Built(Middleware(RateLimitMiddleware, limits=LIMIT))
    if key == "seawall_noheaders":
        return Built(Middleware(RateLimitMiddleware, limits=LIMIT, headers="none"))
    if key in ("slowapi", "slowapi_asgi"):
        limiter = Limiter(key_func=get_remote_address, default_limits=[LIMIT], headers_enabled=True)
        cls = slowapi.middleware.SlowAPIMiddleware if key == "slowapi" else SLOWAPI_ASGI
        assert cls is not None
        return Built(Middleware(cls), slowapi_limiter=limiter)
    if key == "seed004":
        service = seed004.RateLimiterService(default_limit=20, default_window=60)
        mw = Middleware(
            SeedRateLimitMiddleware, limiter=service, limit=SEED_LIMIT, window=seed_window
        )
        return Built(mw, seed_service=service)
    raise ValueError(f"unknown variant {key!r}")


def make_app(built: Built) -> Starlette:
    """The hello-world app with the variant's middleware added the documented way."""
    app = Starlette(routes=[Route("/", homepage)])
    if built.slowapi_limiter is not None:
        app.state.limiter = built.slowapi_limiter
        app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    if built.middleware is not None:
        cls, args, kwargs = built.middleware
        app.add_middleware(cls, *args, **kwargs)
    return app


def serve(key: str, port: int, seed_window: float) -> int:
    import uvicorn

    if key == "seawall_metrics":
        from metrics_overhead import Scraper

        Scraper().__enter__()  # a daemon thread, for the life of the server
        key = "seawall"
    app = make_app(build(key, seed_window))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


# The --store redis variants: each server process builds its app with ``redis_app`` (an import
# string, so that ``--workers 4`` can spawn it), told the variant and the URL in the environment.

REDIS_VARIANTS: list[Variant] = [
    Variant("none", "no middleware", False),
    Variant("seawall_redis", "seawall `RateLimitMiddleware` on Redis", True),
    Variant("slowapi_redis", "slowapi `SlowAPIMiddleware` on Redis", True),
    *(
        [Variant("slowapi_asgi_redis", "slowapi `SlowAPIASGIMiddleware` on Redis", True)]
        if SLOWAPI_ASGI is not None
        else []
    ),
]
REDIS_BY_KEY = {v.key: v for v in REDIS_VARIANTS}
SLOWAPI_REDIS_KEYS = ("slowapi_redis", "slowapi_asgi_redis")
ENV_VARIANT = "COMPARE_ASGI_VARIANT"
ENV_REDIS_URL = "COMPARE_ASGI_REDIS_URL"


def build_redis(key: str, url: str) -> Built:
    """A fresh middleware for ``--store redis`` variant ``key``, its state in Redis at ``url``."""
    if key == "none":
        return Built(None)
    if key == "seawall_redis":
        return Built(Middleware(RateLimitMiddleware, limits=LIMIT, store=url, on_error="deny"))
    if key in SLOWAPI_REDIS_KEYS:
        limiter = Limiter(
            key_func=get_remote_address,
            default_limits=[LIMIT],
            storage_uri=url,
            headers_enabled=True,
        )
        cls = slowapi.middleware.SlowAPIMiddleware if key == "slowapi_redis" else SLOWAPI_ASGI
        assert cls is not None
        return Built(Middleware(cls), slowapi_limiter=limiter)
    raise ValueError(f"unknown --store redis variant {key!r}")


def seawall_redis_unavailable(url: str) -> str | None:
    """``None`` if this build's ``RateLimitMiddleware`` takes ``store=``, else why not."""
    try:
        RateLimitMiddleware(homepage, limits=LIMIT, store=url, on_error="deny")
    except TypeError as exc:
        return f"not available in this build ({type(exc).__name__}: {exc})"
    return None


def redis_app() -> Starlette:
    """uvicorn's app factory for the ``--store redis`` servers (one call per worker)."""
    return make_app(build_redis(os.environ[ENV_VARIANT], os.environ[ENV_REDIS_URL]))


def serve_redis(key: str, port: int, url: str, workers: int) -> int:
    import uvicorn

    os.environ[ENV_VARIANT] = key
    os.environ[ENV_REDIS_URL] = url
    uvicorn.run(
        f"{Path(__file__).stem}:redis_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        workers=workers,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


# --------------------------------------------------------------------------------------------
# Part 1: served requests/s


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float | None
    p99_ms: float | None
    error: str | None = None  # set when the run could not be measured
    cpu_us: float | None = None  # server process CPU time (user + system) per request


@dataclass
class ServedRow:
    variant: Variant
    runs: list[WrkResult] = field(default_factory=list)
    headers_seen: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and bool(self.runs)

    @property
    def rps(self) -> list[float]:
        return [r.rps for r in self.runs if r.error is None]


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str, pct: str) -> float | None:
    m = re.search(rf"^\s*{re.escape(pct)}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(m.group(1)) * _UNITS_MS[m.group(2)] if m else None


def parse_wrk(text: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", text, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if rps is None or total is None:
        return WrkResult(0.0, 0, 0, 0, None, None, error="no Requests/sec in wrk output")
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
    )


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    client: list[str]
    note: str


def pinning() -> Pinning:
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if shutil.which("taskset") and {0, 1} <= usable:
        return Pinning(["taskset", "-c", "0"], ["taskset", "-c", "1"], "server CPU 0, wrk CPU 1")
    return Pinning([], [], "NOT pinned (no taskset or CPUs 0 and 1 not both usable)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_root(port: int) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int) -> str | None:
    """``None`` once the server answers on ``port``, else why it did not (bounded in time)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for _ in range(int(STARTUP_TIMEOUT_S / 0.05) + 1):
        if proc.poll() is not None:
            return f"server exited with {proc.returncode} before answering"
        try:
            get_root(port)
            return None
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return f"server not answering after {STARTUP_TIMEOUT_S:g} s"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; else ``None``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_wrk(pin: Pinning, port: int, secs: float, connections: int) -> WrkResult:
    cmd = [
        *pin.client,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{secs:g}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30, check=False)
    except subprocess.TimeoutExpired:
        return WrkResult(0.0, 0, 0, 0, None, None, error="wrk timed out")
    if out.returncode != 0:
        return WrkResult(0.0, 0, 0, 0, None, None, error=f"wrk exit {out.returncode}: {out.stderr}")
    return parse_wrk(out.stdout)


def tail(f: IO[bytes], n: int = 2000) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode(errors="replace")[-n:].strip()


def check_response(row: ServedRow, status: int, headers: dict[str, str], body: bytes) -> None:
    added = sorted(h for h in headers if h.startswith(("x-ratelimit", "ratelimit", "retry-after")))
    row.headers_seen = ", ".join(added) if added else "(none)"
    if status != 200 or body != HELLO:
        row.problems.append(f"GET / answered {status} {body[:80]!r}")
    if row.variant.limiter:
        missing = [h for h in RATELIMIT_HEADERS if h not in headers]
        if missing:
            row.problems.append(f"admitted response lacks {', '.join(missing)}")


def served_slot(
    row: ServedRow, pin: Pinning, a: argparse.Namespace, first: bool
) -> WrkResult | None:
    """One warm-up + measured run of a fresh server for ``row``'s variant."""
    port = free_port()
    cmd = [
        *pin.server,
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        row.variant.key,
        "--port",
        str(port),
        "--seed-window",
        repr(a.seed_window),
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
        try:
            why = wait_ready(proc, port)
            if why is not None:
                row.problems.append(f"{why}: {tail(log)}")
                return None
            if first:
                try:
                    check_response(row, *get_root(port))
                except (OSError, http.client.HTTPException) as exc:
                    row.problems.append(f"GET / failed: {exc!r}")
            warm = run_wrk(pin, port, a.warmup, a.connections)
            cpu0 = process_cpu_s(proc.pid)
            result = run_wrk(pin, port, a.duration, a.connections)
            cpu1 = process_cpu_s(proc.pid)
            if cpu0 is not None and cpu1 is not None and result.requests:
                result = replace(result, cpu_us=(cpu1 - cpu0) * 1e6 / result.requests)
            for r in (warm, result):
                if r.error is not None:
                    row.problems.append(r.error)
                elif r.non_2xx:
                    kind = "warm-up" if r is warm else "measured"
                    row.problems.append(f"{r.non_2xx} non-2xx/3xx responses in a {kind} run")
            if proc.poll() is not None:
                row.problems.append(f"server died during the run: {tail(log)}")
            return result
        finally:
            stop(proc)


def run_served(a: argparse.Namespace) -> tuple[list[ServedRow], Pinning]:
    pin = pinning()
    rows = [ServedRow(v) for v in VARIANTS + METRICS_VARIANTS if v.key in a.variants]
    for rnd in range(a.rounds):
        shift = rnd % len(rows)
        order = rows[shift:] + rows[:shift]
        done = []
        for row in order:
            result = served_slot(row, pin, a, first=rnd == 0)
            if result is not None:
                row.runs.append(result)
                done.append(f"{row.variant.key} {result.rps:,.0f}")
        print(f"round {rnd + 1}/{a.rounds}: " + ", ".join(done), file=sys.stderr, flush=True)
    return rows, pin


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def median_cpu(row: ServedRow) -> float | None:
    cpus = [w.cpu_us for w in row.runs if w.error is None and w.cpu_us is not None]
    return statistics.median(cpus) if cpus else None


def served_table(rows: list[ServedRow]) -> str:
    base = rows[0]  # "none"
    b_best = max(base.rps) if base.rps else 0.0
    b_med = statistics.median(base.rps) if base.rps else 0.0
    b_cpu = median_cpu(base)
    header = [
        "variant",
        "best req/s",
        "median req/s",
        "best vs none",
        "median vs none",
        "rounds req/s (run order)",
        "p50 / p99 ms (median round)",
        "server CPU µs/request (median)",
        "added CPU µs vs none",
        "non-2xx",
        "socket errors",
        "valid",
    ]
    out: list[list[str]] = []
    for r in rows:
        rps = r.rps
        if not rps:
            out.append([r.variant.label, *["-"] * 10, "no"])
            continue
        best, med = max(rps), statistics.median(rps)
        mid = sorted(r.runs, key=lambda w: w.rps)[len(r.runs) // 2]
        cpu = median_cpu(r)
        lat = (
            f"{mid.p50_ms:.2f} / {mid.p99_ms:.2f}"
            if mid.p50_ms is not None and mid.p99_ms is not None
            else "-"
        )
        out.append(
            [
                r.variant.label,
                f"{best:,.0f}",
                f"{med:,.0f}",
                pct(best / b_best) if b_best else "-",
                pct(med / b_med) if b_med else "-",
                " / ".join(f"{x:,.0f}" for x in rps),
                lat,
                "-" if cpu is None else f"{cpu:.1f}",
                "-" if cpu is None or b_cpu is None or r is base else f"{cpu - b_cpu:+.1f}",
                str(sum(w.non_2xx for w in r.runs)),
                str(sum(w.socket_errors for w in r.runs)),
                "yes" if r.valid else "NO",
            ]
        )
    return table(header, out, {1, 2, 3, 4, 6, 7, 8, 9, 10})


# --------------------------------------------------------------------------------------------
# Part 1 on Redis (--store redis): served requests/s and Redis commands per request

# Script calls in INFO commandstats: the calls that can carry several decisions at once.
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
# What this script itself sends during a measured run, never counted.
OWN_COMMANDS = ("info",)
REDIS_SERVER_CPU = 1
BAR_RATIO = 3.0


def redis_servers() -> ModuleType:
    """``tests/redis_servers.py``, shared with the test suite and ``compare_redis.py``."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    import redis_servers as module

    return module


def redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    m = re.search(r"v=(\S+)", out.stdout)
    return m.group(1) if m else "unknown"


def commandstats(server: Any) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``), this script's own commands left out."""
    text = server.command("INFO", "commandstats")
    out: dict[str, int] = {}
    for line in str(text).splitlines():
        name, sep, rest = line.partition(":")
        if not sep or not name.startswith("cmdstat_"):
            continue
        fields = dict(kv.split("=", 1) for kv in rest.strip().split(",") if "=" in kv)
        out[name.removeprefix("cmdstat_")] = int(fields.get("calls", "0"))
    for own in OWN_COMMANDS:
        out.pop(own, None)
    return out


MONITOR_LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"')
MONITOR_MARK = "compare-asgi-monitor-end"
MONITOR_REQUESTS = 8
# The sample's requests are spread over more than a second, so that it sees what a limiter does
# when a new one-second window begins (limits' fixed window: EXPIRE inside its script).
MONITOR_SPACING_S = 0.16


def monitor_sample(
    server: Any, port: int, requests: int = MONITOR_REQUESTS
) -> dict[str, list[int]]:
    """``requests`` sequential ``GET /`` (``MONITOR_SPACING_S`` apart) to the server on ``port``
    while a ``MONITOR`` connection watches Redis: per command, how many a client sent and how many
    ran inside a script (``INFO commandstats`` counts both alike). Bounded: 2 s socket timeout,
    100,000 lines."""
    counts: dict[str, list[int]] = {}
    with socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as sock:
        sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        with sock.makefile("rb") as f:
            if f.readline().strip() != b"+OK":
                raise RuntimeError("MONITOR was refused")
            for i in range(requests):
                if i:
                    time.sleep(MONITOR_SPACING_S)
                get_root(port)
            server.command("ECHO", MONITOR_MARK)
            for _ in range(100_000):
                line = f.readline()
                if not line:
                    raise RuntimeError("MONITOR connection closed before the end mark")
                m = MONITOR_LINE.match(line)
                if m is None:
                    continue
                name = m.group(2).decode(errors="replace").lower()
                if name == "echo" and MONITOR_MARK.encode() in line:
                    return counts
                if name in OWN_COMMANDS:
                    continue
                counts.setdefault(name, [0, 0])[1 if m.group(1) == b"lua" else 0] += 1
    raise RuntimeError("no end mark in 100,000 MONITOR lines")


def group_cpu_s(pgid: int) -> float | None:
    """User + system CPU seconds of the live processes of process group ``pgid`` (a server
    started in a session of its own: uvicorn's supervisor and its workers), from ``/proc``."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0.0, False
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in a session of its own: SIGTERM to its leader (uvicorn's
    supervisor stops its workers), then SIGKILL to whatever of that process group is left."""
    try:
        stop(proc)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class RedisUse:
    """Redis commands per request over a row's measured runs."""

    calls: float  # sent by the server's Redis clients (script calls included, their insides not)
    scripts: float  # EVALSHA / EVAL / FCALL calls
    executed: float  # every command Redis executed (INFO commandstats): scripts' insides too
    text: str  # per command: "evalsha 1.00, get 1.00; in scripts: incrby 1.00"


@dataclass
class RedisRow(ServedRow):
    workers: int = 1
    # Per run, aligned with ``runs``: commands Redis executed during the measured run.
    commands: list[dict[str, int]] = field(default_factory=list)
    redis_cpu_us: list[float] = field(default_factory=list)
    unavailable: str | None = None  # why the variant could not run in this build
    # MONITOR sample of a few requests: per command, [sent by a client, run inside a script].
    sampled: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def totals(self) -> tuple[int, dict[str, int]]:
        """Requests completed and commands executed over the measured runs without errors."""
        requests, commands = 0, {}
        for run, cmds in zip(self.runs, self.commands, strict=True):
            if run.error is not None:
                continue
            requests += run.requests
            for name, n in cmds.items():
                commands[name] = commands.get(name, 0) + n
        return requests, commands

    def in_scripts(self, name: str) -> float:
        """The share of command ``name``'s executions that ran inside a script, as sampled
        (``script|load`` is sampled as ``script``); 0 for a command not seen in the sample."""
        client, lua = self.sampled.get(name.split("|", 1)[0], [0, 0])
        return lua / (client + lua) if client + lua else 0.0

    def use(self) -> RedisUse | None:
        requests, commands = self.totals()
        if not requests:
            return None
        scripts = sum(n for name, n in commands.items() if name in SCRIPT_COMMANDS)
        inside = {name: n * self.in_scripts(name) for name, n in commands.items()}
        sent = {name: n - inside[name] for name, n in commands.items()}

        def listing(counts: dict[str, float]) -> str:
            top = sorted(((n, k) for k, n in counts.items() if n > 0), key=lambda t: -t[0])
            return ", ".join(f"{k} {n / requests:.2f}" for n, k in top[:5])

        text = listing(sent) or "(none)"
        if any(n > 0 for n in inside.values()):
            text += "; in scripts: " + listing(inside)
        return RedisUse(
            calls=sum(sent.values()) / requests,
            scripts=scripts / requests,
            executed=sum(commands.values()) / requests,
            text=text,
        )

    def p(self, which: str) -> float | None:
        """The median over the rounds of wrk's p50 or p99 latency, ms."""
        values = [
            v
            for w in self.runs
            if w.error is None
            for v in [w.p50_ms if which == "50" else w.p99_ms]
            if v is not None
        ]
        return statistics.median(values) if values else None


def redis_pinning(workers: int) -> tuple[Pinning, int | None]:
    """How the server, wrk and redis-server share the CPUs, and redis-server's CPU (if pinned).
    One worker: uvicorn alone on CPU 0, wrk and redis-server on CPU 1. Several workers: nothing
    pinned (pinning them all to one CPU would measure one CPU's worth of workers)."""
    base = pinning()
    if workers == 1 and base.server:
        note = "uvicorn on CPU 0; wrk and redis-server on CPU 1"
        return Pinning(base.server, base.client, note), REDIS_SERVER_CPU
    if workers == 1:
        return base, None
    note = (
        f"nothing pinned: uvicorn's supervisor and {workers} workers, wrk and redis-server "
        f"share the {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} "
        "usable CPUs under the OS scheduler"
    )
    return Pinning([], [], note), None


def redis_slot(
    row: RedisRow, pin: Pinning, a: argparse.Namespace, server: Any, first: bool
) -> None:
    """One fresh server (``row.workers`` workers) for ``row``'s variant on an empty Redis: a
    warm-up run, then a measured run between two reads of ``INFO commandstats``."""
    try:
        server.command("FLUSHALL")
    except (OSError, RuntimeError) as exc:
        row.problems.append(f"FLUSHALL failed: {exc!r}")
        return
    redis_pid = server.process.pid if server.process is not None else None
    port = free_port()
    cmd = [
        *pin.server,
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        row.variant.key,
        "--port",
        str(port),
        "--redis-url",
        server.url,
        "--workers",
        str(row.workers),
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd(), start_new_session=True
        )
        try:
            why = wait_ready(proc, port)
            if why is not None:
                row.problems.append(f"{why}: {tail(log)}")
                return
            if first:
                try:
                    check_response(row, *get_root(port))
                except (OSError, http.client.HTTPException) as exc:
                    row.problems.append(f"GET / failed: {exc!r}")
                try:
                    row.sampled = monitor_sample(server, port)
                except (OSError, RuntimeError, http.client.HTTPException) as exc:
                    row.notes.append(
                        f"MONITOR sample failed ({exc!r}): every command counted as a call"
                    )
            warm = run_wrk(pin, port, a.warmup, a.connections) if a.warmup > 0 else None
            try:
                before = commandstats(server)
                rcpu0 = process_cpu_s(redis_pid) if redis_pid is not None else None
                cpu0 = group_cpu_s(proc.pid)
                result = run_wrk(pin, port, a.duration, a.connections)
                cpu1 = group_cpu_s(proc.pid)
                rcpu1 = process_cpu_s(redis_pid) if redis_pid is not None else None
                after = commandstats(server)
            except (OSError, RuntimeError) as exc:
                row.problems.append(f"INFO commandstats failed: {exc!r}")
                return
            if result.error is None and result.requests:
                if cpu0 is not None and cpu1 is not None:
                    result = replace(result, cpu_us=(cpu1 - cpu0) * 1e6 / result.requests)
                if rcpu0 is not None and rcpu1 is not None:
                    row.redis_cpu_us.append((rcpu1 - rcpu0) * 1e6 / result.requests)
            row.runs.append(result)
            row.commands.append(
                {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
            )
            for r in (warm, result):
                if r is None:
                    continue
                if r.error is not None:
                    row.problems.append(r.error)
                elif r.non_2xx:
                    kind = "warm-up" if r is warm else "measured"
                    row.problems.append(f"{r.non_2xx} non-2xx/3xx responses in a {kind} run")
            if proc.poll() is not None:
                row.problems.append(f"server died during the run: {tail(log)}")
        finally:
            stop_group(proc)


def check_redis_calls(row: RedisRow) -> None:
    """A limiter row that made no Redis call did not decide on Redis: it is invalid."""
    use = row.use() if row.variant.limiter else None
    if use is None:
        return
    if row.variant.key == "seawall_redis" and use.scripts == 0:
        row.problems.append("no Redis script call during the measured runs")
    if use.executed == 0:
        row.problems.append("no Redis command during the measured runs")


def run_redis_phase(
    a: argparse.Namespace, rs: ModuleType, workers: int
) -> tuple[list[RedisRow], str]:
    """Every ``--store redis`` variant served by ``workers`` uvicorn workers, rounds interleaved,
    on a redis-server of its own (always stopped)."""
    pin, redis_cpu = redis_pinning(workers)
    rows = [RedisRow(v, workers=workers) for v in REDIS_VARIANTS if v.key in a.variants]
    server = rs.RedisServer(cpu=redis_cpu)
    try:
        server.start()
        if "seawall_redis" in a.variants:
            unavailable = seawall_redis_unavailable(server.url)
            for row in rows:
                if row.variant.key == "seawall_redis":
                    row.unavailable = unavailable
        active = [r for r in rows if r.unavailable is None]
        for rnd in range(a.rounds):
            shift = rnd % len(active)
            done = []
            for row in active[shift:] + active[:shift]:
                before = len(row.runs)
                redis_slot(row, pin, a, server, first=rnd == 0)
                if len(row.runs) > before and row.runs[-1].error is None:
                    done.append(f"{row.variant.key} {row.runs[-1].rps:,.0f}")
            print(
                f"{workers} worker(s), round {rnd + 1}/{a.rounds}: " + ", ".join(done),
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.close()
    for row in rows:
        check_redis_calls(row)
        unseen = sorted(
            name
            for name in row.totals()[1]
            if row.sampled and name.split("|", 1)[0] not in row.sampled
        )
        if unseen:
            row.notes.append(
                f"not seen in the MONITOR sample, counted as calls: {', '.join(unseen)}"
            )
    return rows, pin.note


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


def redis_table(rows: list[RedisRow]) -> str:
    by = {r.variant.key: r for r in rows}
    base = by.get("none")
    b_med = statistics.median(base.rps) if base is not None and base.rps else 0.0
    sw = by.get("seawall_redis")
    sw_med = statistics.median(sw.rps) if sw is not None and sw.rps else 0.0
    header = [
        "variant",
        "best req/s",
        "median req/s",
        "median vs none",
        "seawall ÷ this (median req/s)",
        "p50 / p99 ms (median of rounds)",
        "Redis calls/request",
        "script calls/request",
        "decisions/script call",
        "commands executed/request",
        "calls per request",
        "server CPU µs/request",
        "Redis CPU µs/request",
        "non-2xx",
        "socket errors",
        "valid",
    ]
    out: list[list[str]] = []
    for r in rows:
        rps = r.rps
        if not rps:
            why = r.unavailable or ("NO: " + "; ".join(r.problems) if r.problems else "no run")
            out.append([r.variant.label, *["-"] * (len(header) - 2), why])
            continue
        med = statistics.median(rps)
        p50, p99 = r.p("50"), r.p("99")
        use = r.use()
        cpu = median_cpu(r)
        out.append(
            [
                r.variant.label,
                f"{max(rps):,.0f}",
                f"{med:,.0f}",
                pct(med / b_med) if b_med else "-",
                _ratio(sw_med / med) if sw_med and r.variant.key in SLOWAPI_REDIS_KEYS else "-",
                f"{p50:.2f} / {p99:.2f}" if p50 is not None and p99 is not None else "-",
                "-" if use is None else f"{use.calls:.3f}",
                "-" if use is None else f"{use.scripts:.3f}",
                "-" if use is None or not use.scripts else f"{1 / use.scripts:.1f}",
                "-" if use is None else f"{use.executed:.2f}",
                "-" if use is None else use.text,
                "-" if cpu is None else f"{cpu:.1f}",
                f"{statistics.median(r.redis_cpu_us):.1f}" if r.redis_cpu_us else "-",
                str(sum(w.non_2xx for w in r.runs)),
                str(sum(w.socket_errors for w in r.runs)),
                "yes" if r.valid else "NO",
            ]
        )
    return table(header, out, {1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14})


def redis_check(rows: list[RedisRow], workers: int) -> str:
    """The issue-13 bar: seawall on Redis >= 3x slowapi-on-Redis req/s, p99 no worse."""
    by = {r.variant.key: r for r in rows}
    what = (
        f"{workers} worker(s): seawall on Redis >= {BAR_RATIO:g}x slowapi-on-Redis req/s "
        "(median of rounds), p99 no worse"
    )
    sw = by.get("seawall_redis")
    if sw is None:
        return f"check: {what}: seawall not run"
    if sw.unavailable is not None:
        return f"check: {what}: seawall {sw.unavailable} NOT MEASURED"
    if not sw.rps:
        return f"check: {what}: no seawall run ({'; '.join(sw.problems)}) FAIL"
    sw_med, sw_p99 = statistics.median(sw.rps), sw.p("99")
    parts, ok = [], sw.valid
    for key in SLOWAPI_REDIS_KEYS:
        sl = by.get(key)
        if sl is None or not sl.rps:
            continue
        sl_med, sl_p99 = statistics.median(sl.rps), sl.p("99")
        ratio = sw_med / sl_med
        p99_ok = sw_p99 is not None and sl_p99 is not None and sw_p99 <= sl_p99
        ok = ok and sl.valid and ratio >= BAR_RATIO and p99_ok
        p99s = "-" if sw_p99 is None or sl_p99 is None else f"{sw_p99:.2f} vs {sl_p99:.2f} ms"
        flag = "" if sl.valid else ", slowapi row INVALID"
        parts.append(f"vs {sl.variant.label}: {_ratio(ratio)}, p99 {p99s}{flag}")
    if not parts:
        return f"check: {what}: no slowapi-on-Redis run to compare FAIL"
    invalid = "" if sw.valid else " [seawall run INVALID: " + "; ".join(sw.problems) + "]"
    return f"check: {what}: {'; '.join(parts)}{invalid} {'PASS' if ok else 'FAIL'}"


def batching_info(rows: list[RedisRow], workers: int) -> str:
    by = {r.variant.key: r for r in rows}
    parts = []
    for key in ("seawall_redis", *SLOWAPI_REDIS_KEYS):
        r = by.get(key)
        use = r.use() if r is not None else None
        if r is None or use is None:
            continue
        per = f"{1 / use.scripts:.1f} decisions per script call" if use.scripts else "no script"
        parts.append(f"{r.variant.label}: {per}, {use.calls:.3f} Redis calls per request")
    return f"info: {workers} worker(s): " + ("; ".join(parts) if parts else "not measured")


def redis_settings(a: argparse.Namespace) -> argparse.Namespace:
    """The ``--store redis`` defaults (``--smoke``: one short round, one worker), bounded."""

    def pick(given: Any, smoke: Any, quick: Any, full: Any) -> Any:
        if given is not None:
            return given
        return smoke if a.smoke else quick if a.quick else full

    a.rounds = max(1, min(pick(a.rounds, 1, 2, 3), 20))
    a.duration = max(1.0, min(pick(a.duration, 1.0, 2.0, 5.0), 120.0))
    a.warmup = max(0.0, min(pick(a.warmup, 0.0, 1.0, 2.0), 60.0))
    a.connections = max(1, min(a.connections if a.connections is not None else 64, 10_000))
    a.workers = [max(1, min(w, 16)) for w in pick(a.workers, [1], [1, 4], [1, 4])][:4] or [1]
    default = ["none", "seawall_redis", "slowapi_redis"] if a.smoke else list(REDIS_BY_KEY)
    chosen = a.variants if a.variants is not None else default
    # "none" first: the ratios are to it.
    a.variants = ["none", *[k for k in chosen if k in REDIS_BY_KEY and k != "none"]]
    return a


def main_redis(a: argparse.Namespace) -> int:
    started = time.perf_counter()
    print_header(
        "# seawall `RateLimitMiddleware` vs slowapi, state in Redis: Starlette hello-world",
        {
            **versions(),
            "redis-py": _version("redis"),
            "redis-server": redis_server_version(),
            "wrk": wrk_version(),
        },
    )
    print(
        "- served: uvicorn `--loop uvloop --http httptools` with "
        f"{' and '.join(map(str, a.workers))} worker(s), log level warning, no access log, on "
        f"127.0.0.1; `wrk -t1 -c{a.connections} "
        f"-d{a.duration:g}s --latency`; per variant and round a fresh server and an empty Redis "
        f"(FLUSHALL), {a.warmup:g} s warm-up then {a.duration:g} s measured; {a.rounds} rounds "
        "interleaved (round-robin, each round starting one variant later); best and median of "
        "the rounds, latencies the median of the rounds' wrk percentiles"
    )
    print(
        f"- every limiter admits everything and keeps its state in Redis: seawall "
        f"`RateLimitMiddleware(limits={LIMIT!r}, store=url, on_error='deny')` (key: client IP, "
        f"X-RateLimit headers); slowapi `Limiter(default_limits=[{LIMIT!r}], storage_uri=url, "
        "headers_enabled=True)` (fixed window, limits' sync redis-py storage)"
    )
    print(
        "- Redis use: `INFO commandstats` read before and after each measured run, divided by "
        "the requests wrk completed. commands executed = every command Redis ran, those a "
        "script runs included; Redis calls = the commands the server's Redis clients sent "
        "(a script call counts 1, a pipeline of N commands N), the commands run inside scripts "
        f"told apart by a MONITOR sample of {MONITOR_REQUESTS} sequential requests per variant "
        "before its first warm-up; script calls = EVALSHA + EVAL (+ _RO, FCALL). One request is "
        "one decision, so decisions/script call = requests / script calls (seawall batches the "
        "decisions of the requests in flight into one EVALSHA)"
    )
    if SLOWAPI_ASGI is None:
        print("- slowapi has no `SlowAPIASGIMiddleware` in this version: that row is left out")
    print(flush=True)

    if shutil.which("wrk") is None:
        print("## Served on Redis: skipped (wrk is not installed: `apt-get install wrk`)")
        return 0
    rs = redis_servers()
    if rs.redis_server_binary() is None:
        print("## Served on Redis: skipped (redis-server is not installed)")
        return 0

    checks: list[str] = []
    for workers in a.workers:
        try:
            rows, note = run_redis_phase(a, rs, workers)
        except KeyboardInterrupt:
            print("interrupted: every server this script started is stopped", file=sys.stderr)
            return 130
        except (rs.RedisUnavailable, OSError, RuntimeError) as exc:
            print(f"## Served on Redis, {workers} worker(s): not measured ({exc!r})")
            print(flush=True)
            continue
        print(f"## Served on Redis: uvicorn, {workers} worker(s), wrk -c{a.connections}")
        print()
        print(f"- pinning: {note}")
        print()
        print(redis_table(rows))
        print()
        for r in rows:
            if r.unavailable is not None:
                print(f"- {r.variant.label}: {r.unavailable}")
                continue
            print(f"- {r.variant.label}: rate-limit headers on `GET /`: {r.headers_seen}")
            for p in r.problems:
                print(f"  - INVALID: {p}")
            for note in r.notes:
                print(f"  - note: {note}")
        print(flush=True)
        checks += [redis_check(rows, workers), batching_info(rows, workers)]

    print("## Checks (informational; timings are never tests)")
    print()
    for line in checks:
        print(line)
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


# --------------------------------------------------------------------------------------------
# Part 2: in-process cost


def base_scope(app: Starlette) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # what uvicorn's httptools sends
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": CLIENT,
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"compare_asgi/1"),
            (b"accept", b"*/*"),
        ],
        # Starlette puts the app in the scope; slowapi's middlewares read its state and routes.
        "app": app,
    }


async def inner_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The trivial app: fresh messages each call (slowapi edits the header list in place)."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"13"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": HELLO, "more_body": False})


REQUEST_MESSAGE: Message = {"type": "http.request", "body": b"", "more_body": False}


async def receive_request() -> Message:
    return REQUEST_MESSAGE


@dataclass(frozen=True)
class InprocRow:
    variant: Variant
    ns: float  # best ns per request, inner app included
    calls: int  # requests per timed repeat
    headers_seen: str
    problems: list[str]
    note: str = ""


def wrap_inner(built: Built) -> ASGIApp:
    if built.middleware is None:
        return inner_app
    cls, args, kwargs = built.middleware
    wrapped: ASGIApp = cls(inner_app, *args, **kwargs)
    return wrapped


async def _validate(app: ASGIApp, scope: Scope, variant: Variant) -> tuple[str, list[str]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(scope), receive_request, send)
    problems: list[str] = []
    starts = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if len(starts) != 1 or starts[0]["status"] != 200 or body != HELLO:
        problems.append(f"unexpected response: {sent!r:.200}")
        return "", problems
    names = {bytes(k).decode("latin-1").lower() for k, _ in starts[0]["headers"]}
    added = sorted(h for h in names if h.startswith(("x-ratelimit", "ratelimit", "retry-after")))
    if variant.limiter:
        missing = [h for h in RATELIMIT_HEADERS if h not in names]
        if missing:
            problems.append(f"admitted response lacks {', '.join(missing)}")
    return (", ".join(added) if added else "(none)"), problems


async def _measure_inproc(
    variant: Variant, built: Built, target_ns: int, repeats: int
) -> InprocRow:
    app = wrap_inner(built)
    scope = base_scope(make_app(built))
    headers_seen, problems = await _validate(app, scope, variant)
    bad: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            bad.append(message["status"])

    async def timer(n: int) -> int:
        a, copy, sc, rcv, snd = app, dict, scope, receive_request, send
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await a(copy(sc), rcv, snd)
        return time.perf_counter_ns() - t0

    def prepare() -> None:
        # The seed-style log keeps every admitted request of the window: start each repeat empty.
        if built.seed_service is not None:
            built.seed_service._request_log.clear()

    n0 = 200
    await timer(n0)
    n = plan_units(await timer(n0), n0, target_ns)
    best = sys.maxsize
    log_max = 0
    for _ in range(repeats):
        prepare()
        gc.collect()
        gc.disable()
        try:
            best = min(best, await timer(n))
        finally:
            gc.enable()
        if built.seed_service is not None:
            log_max = max([log_max, *map(len, built.seed_service._request_log.values())])
    if bad:
        problems.append(f"{len(bad)} responses were not 200 (e.g. {bad[0]})")
    note = f"log grows 0 -> {log_max:,} entries per repeat" if built.seed_service else ""
    return InprocRow(variant, best / n, n, headers_seen, problems, note)


def run_inproc(a: argparse.Namespace) -> list[InprocRow]:
    rows: list[InprocRow] = []
    for v in VARIANTS:
        if v.key not in a.variants:
            continue
        built = build(v.key, a.seed_window)
        try:
            rows.append(asyncio.run(_measure_inproc(v, built, int(a.target_ms * 1e6), a.repeats)))
        finally:
            if built.slowapi_limiter is not None:
                storage = built.slowapi_limiter._storage
                if isinstance(storage, MemoryStorage):
                    stop_timer(storage)
    return rows


def _request_timer(app: ASGIApp, scope: Scope, bad: list[int]) -> AsyncTimer:
    """``timer(n)``: ``n`` requests to ``app``, noting any status but 200 in ``bad``."""

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            bad.append(message["status"])

    async def timer(n: int) -> int:
        a_, copy, sc, rcv, snd = app, dict, scope, receive_request, send
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await a_(copy(sc), rcv, snd)
        return time.perf_counter_ns() - t0

    return timer


def run_metrics_inproc(a: argparse.Namespace) -> list[tuple[str, Paired]]:
    """seawall's in-process rows, without and with a scraped collector."""
    rows = []
    target_ns = int(a.metrics_ms * 1e6)
    for v in VARIANTS:
        if not v.key.startswith("seawall"):
            continue
        bad: list[int] = []
        timer = _request_timer(
            wrap_inner(build(v.key, a.seed_window)), base_scope(make_app(Built(None))), bad
        )
        asyncio.run(timer(200))
        n = plan_units(asyncio.run(timer(200)), 200, target_ns)
        p = paired(lambda n=n, timer=timer: asyncio.run(timer(n)) / n, a.metrics_rounds)
        if bad:
            raise RuntimeError(f"{v.key}: {len(bad)} responses were not 200 (e.g. {bad[0]})")
        rows.append((v.label, p))
    return rows


def main_metrics(a: argparse.Namespace) -> int:
    started = time.perf_counter()
    print_header(
        "# seawall `RateLimitMiddleware` without and with metrics (issue 17's bar)",
        {**versions(), "wrk": wrk_version()},
    )
    print(describe(a.metrics_rounds, a.metrics_ms))
    print(flush=True)
    rows = run_metrics_inproc(a)
    print("## In-process cost per request, without and with metrics")
    print()
    print(metrics_table(rows, "ns/request"))
    worst = max(p.ratio() for _, p in rows)
    print()
    verdict = "PASS" if worst <= BAR else "FAIL"
    print(f"check: in process, the worst row with metrics is {worst:.3f}x without (need <= {BAR})")
    print(f"  {verdict}", flush=True)
    if not a.no_served and shutil.which("wrk") is not None:
        a.variants = ["none", "seawall", "seawall_metrics"]
        served, _ = run_served(a)
        print()
        print("## Served requests/s, without and with metrics (uvicorn + wrk, 1 worker)")
        print()
        print(served_table(served))
        for r in served:
            for problem in r.problems:
                print(f"- {r.variant.label}: INVALID: {problem}")
        by = {r.variant.key: r for r in served}
        off, on = by["seawall"], by["seawall_metrics"]
        if off.rps and on.rps:
            ratio = statistics.median(off.rps) / statistics.median(on.rps)
            cpu_off, cpu_on = median_cpu(off), median_cpu(on)
            cpu = f"; server CPU/request {cpu_on / cpu_off:.3f}x" if cpu_off and cpu_on else ""
            print()
            print(f"served: median req/s without / with metrics = {ratio:.3f}x{cpu}")
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


def us(x: float) -> str:
    return f"{x / 1000:.2f}"


def inproc_table(rows: list[InprocRow]) -> str:
    bare = rows[0].ns
    out = [
        [
            r.variant.label,
            us(r.ns),
            "-" if r.variant.key == "none" else us(r.ns - bare),
            f"{r.calls:,}",
            r.headers_seen,
            "yes" if not r.problems else "NO: " + "; ".join(r.problems),
        ]
        for r in rows
    ]
    header = [
        "variant",
        "µs/request",
        "added µs/request",
        "requests/repeat",
        "rate-limit headers added",
        "valid",
    ]
    return table(header, out, {1, 2, 3})


# --------------------------------------------------------------------------------------------
# Output


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    dists = ("seawall", "starlette", "uvicorn", "uvloop", "httptools", "slowapi", "limits")
    return {dist: _version(dist) for dist in dists}


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "not installed"
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def served_check(rows: list[ServedRow]) -> str:
    by = {r.variant.key: r for r in rows}
    base = by["none"]
    what = f"seawall keeps >= {pct(NEED_SERVED_FRACTION)} of no-middleware requests/s"
    if not base.valid or not base.rps:
        return f"check: {what}: no valid no-middleware baseline FAIL"

    def frac(key: str) -> tuple[float, float] | None:
        r = by.get(key)
        if r is None or not r.rps:
            return None
        return (
            statistics.median(r.rps) / statistics.median(base.rps),
            max(r.rps) / max(base.rps),
        )

    others = []
    for key in ("slowapi", "slowapi_asgi", "seed004"):
        f = frac(key)
        if f is not None:
            flag = "" if by[key].valid else ", invalid"
            others.append(f"{BY_KEY[key].label}: {pct(f[0])}{flag}")
    beside = f" (median; {'; '.join(others)})" if others else " (median)"
    sw = frac("seawall")
    if sw is None:
        return f"check: {what}: not measured{beside} FAIL"
    valid = by["seawall"].valid
    verdict = "PASS" if valid and sw[0] >= NEED_SERVED_FRACTION else "FAIL"
    invalid = "" if valid else " [seawall run INVALID: " + "; ".join(by["seawall"].problems) + "]"
    return f"check: {what}: {pct(sw[0])} (best-of-rounds {pct(sw[1])}){beside}{invalid} {verdict}"


def cpu_info(rows: list[ServedRow]) -> str:
    """Informational: the server CPU time each limiter adds per request over no middleware."""
    cpu = {r.variant.key: median_cpu(r) for r in rows}
    base = cpu.get("none")
    parts = [
        f"{BY_KEY[k].label}: {c - base:+.1f} µs"
        for k, c in cpu.items()
        if k != "none" and c is not None and base is not None
    ]
    return "info: server CPU time added per request vs no middleware (median): " + (
        "; ".join(parts) if parts else "not measured"
    )


def inproc_check(rows: list[InprocRow]) -> str:
    bare = rows[0].ns
    by = {r.variant.key: r for r in rows}
    sw = by["seawall"]
    added = (sw.ns - bare) / 1000
    others = "; ".join(
        f"{by[k].variant.label}: {(by[k].ns - bare) / 1000:.2f} µs"
        for k in ("passthrough", "slowapi", "slowapi_asgi", "seed004")
        if k in by
    )
    verdict = "PASS" if not sw.problems and added <= NEED_ADDED_US else "FAIL"
    invalid = "" if not sw.problems else " [seawall INVALID: " + "; ".join(sw.problems) + "]"
    return (
        f"check: seawall adds <= {NEED_ADDED_US:g} µs per request in-process: {added:.2f} µs "
        f"({others}){invalid} {verdict}"
    )


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 s measured runs, shorter repeats")
    parser.add_argument(
        "--store",
        choices=("memory", "redis"),
        default="memory",
        help="memory (default): every row below; redis: served rows only, limiters on a "
        "redis-server this script starts, uvicorn with 1 and 4 workers, wrk -c64",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="with --store redis: one 1 s round, 1 worker, no warm-up (checks it runs)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds (default 3; redis --quick 2)"
    )
    parser.add_argument("--duration", type=float, default=None, help="measured wrk run, s")
    parser.add_argument(
        "--warmup", type=float, default=None, help="warm-up wrk run, s (default 2; redis quick 1)"
    )
    parser.add_argument(
        "--connections", type=int, default=None, help="wrk connections (default 32; redis 64)"
    )
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=None,
        help="with --store redis: comma-separated uvicorn worker counts (default 1,4)",
    )
    parser.add_argument("--target-ms", type=float, default=None, help="in-process repeat, ms")
    parser.add_argument("--repeats", type=int, default=5, help="in-process repeats (best of)")
    parser.add_argument(
        "--seed-window", type=float, default=1.0, help="seed-style log window, s (limit 1e9)"
    )
    parser.add_argument(
        "--variants",
        type=lambda text: [v.strip() for v in text.split(",")],
        default=None,
        help="comma-separated variants to run (default: all; 'none' is always needed for ratios)",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="seawall without and with metrics (memory store)"
    )
    parser.add_argument("--metrics-rounds", type=int, default=None, help="rounds (default 4)")
    parser.add_argument("--metrics-ms", type=float, default=None, help="ms per metrics run")
    parser.add_argument("--no-served", action="store_true", help="skip the uvicorn + wrk part")
    parser.add_argument("--no-inproc", action="store_true", help="skip the in-process part")
    parser.add_argument("--serve", choices=sorted(BY_KEY | REDIS_BY_KEY), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default=None, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.serve is not None:
        if a.redis_url is not None:
            return serve_redis(a.serve, a.port, a.redis_url, (a.workers or [1])[0])
        return serve(a.serve, a.port, a.seed_window)
    if a.store == "redis":
        return main_redis(redis_settings(a))
    a.rounds = a.rounds if a.rounds is not None else 3
    a.warmup = a.warmup if a.warmup is not None else 2.0
    a.connections = a.connections if a.connections is not None else 32
    a.variants = a.variants if a.variants is not None else [v.key for v in VARIANTS]
    a.duration = a.duration if a.duration is not None else (2.0 if a.quick else 5.0)
    a.target_ms = a.target_ms if a.target_ms is not None else (50.0 if a.quick else 250.0)
    a.rounds = max(1, min(a.rounds, 20))
    a.repeats = max(1, min(a.repeats, 20))
    a.duration = max(1.0, min(a.duration, 120.0))
    a.warmup = max(0.0, min(a.warmup, 60.0))
    if a.metrics:
        rounds = a.metrics_rounds or (2 if a.quick else 4)
        run_ms = a.metrics_ms or (1500.0 if a.quick else 3000.0)
        a.metrics_rounds, a.metrics_ms = max(1, min(rounds, 20)), max(100.0, min(run_ms, 60_000.0))
        return main_metrics(a)

    started = time.perf_counter()
    print_header(
        "# seawall `RateLimitMiddleware` vs slowapi vs seed-004-style: Starlette hello-world",
        {**versions(), "wrk": wrk_version()},
    )
    pin = pinning()
    print(
        "- served: uvicorn `--loop uvloop --http httptools`, 1 worker, log level warning, no "
        f"access log, on 127.0.0.1; `wrk -t1 -c{a.connections} -d{a.duration:g}s --latency`; "
        f"{pin.note}; per variant and round a fresh server, {a.warmup:g} s warm-up then "
        f"{a.duration:g} s measured; {a.rounds} rounds interleaved (round-robin, each round "
        "starting one variant later); best and median of the rounds; server CPU µs/request = "
        "the server process's user + system CPU time during the measured run / requests served "
        "(less sensitive than req/s to other load on the machine)"
    )
    print(
        "- in-process: the middleware around a trivial ASGI app (start + body), called directly "
        f"with a fixed http scope (shallow copy per call), client {CLIENT[0]}, in a plain loop "
        f"inside one asyncio.run (default loop), best of {a.repeats} repeats of "
        f"~{a.target_ms:g} ms, GC off while timing; added = minus the bare app"
    )
    print(
        f"- every limiter admits everything: seawall `limits={LIMIT!r}` (key: client IP, "
        f"X-RateLimit headers); slowapi `default_limits=[{LIMIT!r}]`, headers_enabled, "
        f"fixed-window, memory storage; seed-style: limit {SEED_LIMIT:.0e} per {a.seed_window:g} s "
        "window (benches/seed004.py; its per-client log holds every request of the last "
        f"{a.seed_window:g} s), DEBUG log per admitted request dropped by Python's default level"
    )
    if SLOWAPI_ASGI is None:
        print("- slowapi has no `SlowAPIASGIMiddleware` in this version: that row is left out")
    print(flush=True)

    served: list[ServedRow] = []
    if not a.no_served:
        if shutil.which("wrk") is None:
            print("## Served requests/s: skipped (wrk is not installed: `apt-get install wrk`)")
            print()
        else:
            served, _ = run_served(a)
            print("## Served requests/s (uvicorn + httptools + uvloop, 1 worker; wrk)")
            print()
            print(served_table(served))
            print()
            for r in served:
                print(f"- {r.variant.label}: rate-limit headers on `GET /`: {r.headers_seen}")
                for p in r.problems:
                    print(f"  - INVALID: {p}")
            print(flush=True)

    inproc: list[InprocRow] = []
    if not a.no_inproc:
        inproc = run_inproc(a)
        print("## In-process cost per request (ASGI app called directly, no server)")
        print()
        print(inproc_table(inproc))
        notes = [f"{r.variant.label}: {r.note}" for r in inproc if r.note]
        if notes:
            print()
            for note in notes:
                print(f"- {note}")
        print(flush=True)

    print("## Checks (informational; timings are never tests)")
    print()
    if served:
        print(served_check(served))
        print(cpu_info(served))
    if inproc:
        print(inproc_check(inproc))
    print()
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
