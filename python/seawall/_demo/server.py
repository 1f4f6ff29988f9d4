"""The demo's server: a Starlette app behind ``seawall.RateLimitMiddleware``, served by uvicorn.

``GET /api/quote`` asks a flaky dependency through a ``seawall.CircuitBreaker``: 200 with the
answer, 502 when the dependency failed, 503 while the breaker is open (the dependency is not even
asked). ``POST /login`` always answers 401 (nobody in the demo knows the password) under its own,
stricter route rule. Every answer says which key the middleware charged (``"key"``), so the clients
can show that a forged ``X-Forwarded-For`` did not change it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from seawall import CircuitBreaker, CircuitOpenError, RateLimitMiddleware, Rule

#: Every client's budget on every path but the login.
LIMITS = "10/second"
#: The route rule: logins are few, whoever you are.
LOGIN_RULE = Rule("/login", "5/minute", methods=["POST"], name="login")
#: Failures in a row that open the breaker.
FAILURE_THRESHOLD = 5
BREAKER_NAME = "demo-upstream"


class UpstreamError(Exception):
    """The flaky dependency failed."""


@dataclass
class Upstream:
    """A dependency that is down through the middle of the run (from ``down_from`` to
    ``down_until`` seconds after :meth:`start`), and answers in a couple of milliseconds otherwise.

    It stays down past ``down_until`` until it has failed ``FAILURE_THRESHOLD`` times, so that
    however slowly the machine sends traffic, the breaker sees the outage (and opens) every run.
    """

    down_from: float
    down_until: float
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    calls: int = 0
    failures: int = 0

    def start(self) -> None:
        self.started = self.clock()

    def is_down(self) -> bool:
        t = self.clock() - self.started
        return t >= self.down_from and (t < self.down_until or self.failures < FAILURE_THRESHOLD)

    async def quote(self) -> dict[str, float]:
        self.calls += 1
        await asyncio.sleep(0.002)  # the round trip to the dependency
        if self.is_down():
            self.failures += 1
            raise UpstreamError("the quote service is down")
        return {"price": 100.0 + self.calls % 7}


@dataclass
class Transition:
    """A change of the breaker's state, ``at`` seconds into the run."""

    at: float
    old: str
    new: str


@dataclass
class DemoServer:
    """The app, its middleware and its breaker, for one run of ``seconds``."""

    seconds: float
    key: str = "ip"
    upstream: Upstream = field(init=False)
    breaker: CircuitBreaker = field(init=False)
    middleware: RateLimitMiddleware = field(init=False)
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.upstream = Upstream(down_from=0.35 * self.seconds, down_until=0.65 * self.seconds)
        self.breaker = CircuitBreaker(
            BREAKER_NAME,
            failure_threshold=FAILURE_THRESHOLD,
            # Short enough that the breaker probes (and fails, and backs off) during the outage.
            recovery_timeout=max(0.4, self.seconds / 10),
            jitter=0.0,
            expected_exceptions=(UpstreamError,),
            replace=True,
        )
        self.breaker.add_listener(self._record_transition)
        app = Starlette(
            routes=[
                Route("/api/quote", self._quote, methods=["GET"]),
                Route("/login", self._login, methods=["POST"]),
            ]
        )
        # Served as it is (not app.add_middleware) so that the demo can read the middleware's keys.
        self.middleware = RateLimitMiddleware(
            app,
            limits=LIMITS,
            rules=[LOGIN_RULE],
            key=self.key,
            # Nobody's X-Forwarded-For is believed: no proxy stands in front of this server, so
            # the header is whatever the client wrote. (Behind one, name it: ["10.0.0.5"].)
            trusted_proxies=(),
        )

    def start(self) -> None:
        self.upstream.start()

    def _record_transition(self, _: CircuitBreaker, old: str, new: str, reason: str) -> None:
        self.transitions.append(Transition(self.upstream.clock() - self.upstream.started, old, new))

    def _key(self, request: Request) -> str:
        return self.middleware.limiter.key_for(request.scope)

    async def _quote(self, request: Request) -> JSONResponse:
        key = self._key(request)
        try:
            answer = await self.breaker.acall(self.upstream.quote)
        except CircuitOpenError as exc:
            return JSONResponse(
                {"error": "the quote service is unavailable", "key": key},
                status_code=503,
                headers={"Retry-After": str(exc.retry_after_seconds)},
            )
        except UpstreamError as exc:
            return JSONResponse({"error": str(exc), "key": key}, status_code=502)
        return JSONResponse({**answer, "key": key})

    async def _login(self, request: Request) -> JSONResponse:
        return JSONResponse({"error": "wrong password", "key": self._key(request)}, 401)


class Served:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread of its own."""

    def __init__(self, app: RateLimitMiddleware) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 itself and rewrite
            # the peer address before seawall sees it; seawall decides whom to believe.
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="demo-uvicorn", daemon=True)

    def start(self) -> str:
        """Starts the server; returns its base URL."""
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:  # waiting for the server to listen
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
