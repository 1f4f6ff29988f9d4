# Longer than 450 lines: one test per strategy's response, per selection filter, and the edges
# (websockets, lifespan, configuration errors, a real uvicorn), each on a real app.
"""``seawall.rules.RulesMiddleware`` on real Starlette and FastAPI apps (httpx's ASGI transport,
Starlette's TestClient for websockets) and one real uvicorn server: every strategy's response,
selection through the middleware, overrides, metrics and exempt paths (issue 15)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn_thread import serving

from seawall.rules import RulesEngine, RulesMiddleware
from seawall.testing import ManualClock
from seawall.types import Message, Scope

CLIENT = ("203.0.113.7", 1234)
T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=T0)


def engine_with(clock: ManualClock, *rules: dict[str, Any]) -> RulesEngine:
    engine = RulesEngine(clock=clock)
    for rule in rules:
        engine.add_rule(rule)
    return engine


def rule(name: str, rate: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "scope": "per_ip", "rate": rate, "window_seconds": 60, **fields}


# 100 per second, no burst: a slot every 10 ms.
THROTTLE = {
    "name": "slow",
    "scope": "per_ip",
    "rate": 100,
    "window_seconds": 1,
    "burst": 1,
    "strategy": "throttle",
}


def starlette_app(calls: list[str], engine: RulesEngine, **options: Any) -> Starlette:
    """Every path answers what the app saw: its path, ``request.state``'s rate-limit marks."""

    async def seen(request: Request) -> Response:
        calls.append(request.url.path)
        return JSONResponse(
            {
                "path": request.url.path,
                "degraded": getattr(request.state, "rate_limit_degraded", False),
                "delay": getattr(request.state, "rate_limit_delay", None),
            }
        )

    async def echo(request: Request) -> Response:
        calls.append(request.url.path)
        return Response(await request.body(), media_type="application/octet-stream")

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        degraded = getattr(websocket.state, "rate_limit_degraded", False)
        await websocket.send_text("hello, degraded" if degraded else "hello")
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            WebSocketRoute("/ws", socket),
            Route("/{path:path}", seen, methods=["GET", "POST"]),
        ]
    )
    app.add_middleware(RulesMiddleware, engine=engine, **options)
    return app


def http(app: Any, client: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def limits_of(response: httpx.Response) -> tuple[str, str, str]:
    h = response.headers
    return (h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"])


# --- what each strategy answers ----------------------------------------------------------------


def test_retry_after_answers_429_with_the_exact_wait(clock: ManualClock) -> None:
    calls: list[str] = []
    engine = engine_with(clock, rule("api", 3))
    app = starlette_app(calls, engine, default_rule="api")

    async def scenario() -> None:
        async with http(app) as client:
            got = [limits_of(await client.get("/a")) for _ in range(3)]
            # A token bucket of 3 refilling one per 20 s: full again 20 s per token used.
            assert got == [("3", "2", "20"), ("3", "1", "40"), ("3", "0", "60")]
            denied = await client.get("/a")
            assert denied.status_code == 429
            assert denied.headers["retry-after"] == "20"
            assert denied.headers["content-type"] == "application/json"
            assert int(denied.headers["content-length"]) == len(denied.content)
            assert denied.json() == {
                "error": {"code": 429, "message": "Rate limit exceeded", "retry_after": 20}
            }
            assert limits_of(denied)[:2] == ("3", "0")
            clock.advance(19.5)
            again = await client.get("/a")
            assert again.status_code == 429 and again.headers["retry-after"] == "1"  # rounded up
            clock.advance(0.5)
            assert (await client.get("/a")).status_code == 200

    run(scenario)
    assert calls == ["/a"] * 4  # never called for a refusal


def test_hard_answers_429_without_retry_after(clock: ManualClock) -> None:
    calls: list[str] = []
    engine = engine_with(clock, rule("api", 1, strategy="hard"))
    app = starlette_app(calls, engine, default_rule="api")

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/")).status_code == 200
            denied = await client.get("/")
            assert denied.status_code == 429
            assert "retry-after" not in denied.headers
            assert denied.json() == {"error": {"code": 429, "message": "Rate limit exceeded"}}

    run(scenario)
    assert calls == ["/"]
    refused = engine.check("api", "ip:203.0.113.7", ip_address=CLIENT[0])
    assert refused.retry_after == pytest.approx(60)  # still filled for callers (A7)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_queue_answers_202_while_places_last_then_429(
    clock: ManualClock, asynchronous: bool
) -> None:
    calls: list[str] = []
    queued: list[dict[str, Any]] = []

    def on_queue(info: dict[str, Any]) -> None:
        queued.append(info)

    async def on_queue_async(info: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        queued.append(info)

    engine = engine_with(clock, rule("jobs", 2, strategy="queue", max_queued=2))
    app = starlette_app(
        calls,
        engine,
        default_rule="jobs",
        on_queue=on_queue_async if asynchronous else on_queue,
    )

    async def scenario() -> None:
        async with http(app) as client:
            assert [(await client.post("/job")).status_code for _ in range(2)] == [200, 200]
            for _ in range(2):
                accepted = await client.post("/job")
                assert accepted.status_code == 202
                assert accepted.headers["retry-after"] == "30"
                assert accepted.json() == {"status": "queued", "retry_after": 30}
            full = await client.post("/job")  # the queue's places are taken: refused
            assert full.status_code == 429 and full.headers["retry-after"] == "30"
            assert full.json()["error"]["retry_after"] == 30

    run(scenario)
    assert calls == ["/job", "/job"]
    info = {
        "method": "POST",
        "path": "/job",
        "identifier": "ip:203.0.113.7",
        "rule": "jobs",
        "retry_after": 30,
    }
    assert queued == [info, info]


def test_graceful_calls_the_app_marked_degraded(clock: ManualClock) -> None:
    calls: list[str] = []
    engine = engine_with(clock, rule("soft", 1, strategy="graceful"))
    app = starlette_app(calls, engine, default_rule="soft")

    async def scenario() -> None:
        async with http(app) as client:
            first = await client.get("/page")
            assert first.json()["degraded"] is False
            assert "x-ratelimit-degraded" not in first.headers
            for _ in range(2):
                degraded = await client.get("/page")
                assert degraded.status_code == 200
                assert degraded.json()["degraded"] is True
                assert degraded.headers["x-ratelimit-degraded"] == "true"
                assert limits_of(degraded)[:2] == ("1", "0")

    run(scenario)
    assert calls == ["/page"] * 3
    metrics = engine.get_metrics("soft")  # a degraded request is a refusal in the metrics
    assert (metrics["allowed_requests"], metrics["denied_requests"]) == (1, 2)


def test_throttle_waits_the_booked_slot_once_then_refuses_past_max_delay(
    clock: ManualClock,
) -> None:
    calls: list[str] = []
    # 100 per second, no burst: a slot every 10 ms. The clock does not move, so the booked
    # slots queue up: 10 ms, 20 ms, then 30 ms is past max_delay.
    engine = engine_with(clock, {**THROTTLE, "max_delay": 0.025})
    app = starlette_app(calls, engine, default_rule="slow")

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/t")).json()["delay"] is None
            delays = [(await client.get("/t")).json()["delay"] for _ in range(2)]
            assert delays == [pytest.approx(0.01), pytest.approx(0.02)]
            refused = await client.get("/t")
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"

    run(scenario)
    assert calls == ["/t"] * 3


# --- selection through the middleware ----------------------------------------------------------


def test_endpoint_filter_selects_the_rule(clock: ManualClock) -> None:
    engine = engine_with(
        clock,
        rule("api", 100),
        rule("search", 1, scope="per_endpoint", endpoints=["/api/search*"], strategy="hard"),
    )
    app = starlette_app([], engine, default_rule="api")

    async def scenario() -> None:
        async with http(app) as client:
            assert limits_of(await client.get("/api/search"))[0] == "1"
            again = await client.get("/api/search")
            assert again.status_code == 429 and "retry-after" not in again.headers
        async with http(app, client=("198.51.100.1", 1)) as client:
            # PER_ENDPOINT: one budget per endpoint filter, shared by every client and by every
            # path under the glob (a client varying the path gets no fresh budget).
            assert (await client.get("/api/search")).status_code == 429
            assert (await client.get("/api/search/more")).status_code == 429
            ok = await client.get("/elsewhere")
            assert ok.status_code == 200 and limits_of(ok)[0] == "100"

    run(scenario)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_user_filter_through_extract_identifier(clock: ManualClock, asynchronous: bool) -> None:
    engine = engine_with(
        clock,
        rule("api", 1, scope="per_user"),
        rule("vip", 50, scope="per_user", user_ids=["alice"], priority=10),
    )

    # A test stand-in: a real app reads a verified claim (a session, a checked JWT).
    def user_of(request: Request) -> str | None:
        user = request.headers.get("x-test-user")
        return None if user is None else f"user:{user}" if user else ""

    async def user_of_async(request: Request) -> str | None:
        return user_of(request)

    app = starlette_app(
        [],
        engine,
        default_rule="api",
        extract_identifier=user_of_async if asynchronous else user_of,
    )

    async def scenario() -> None:
        async with http(app) as client:
            alice = [await client.get("/", headers={"x-test-user": "alice"}) for _ in range(3)]
            assert [limits_of(r)[:2] for r in alice] == [("50", "49"), ("50", "48"), ("50", "47")]
            bob = [(await client.get("/", headers={"x-test-user": "bob"})).status_code]
            bob.append((await client.get("/", headers={"x-test-user": "bob"})).status_code)
            assert bob == [200, 429]
            # No user (None or ""): the default identifier, ip:<client>, a budget of its own.
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/", headers={"x-test-user": ""})).status_code == 429

    run(scenario)
    assert engine.get_metrics("vip")["total_requests"] == 3


def test_extract_identifier_may_read_the_body(clock: ManualClock) -> None:
    calls: list[str] = []
    engine = engine_with(clock, rule("api", 1, scope="per_user"))

    async def from_body(request: Request) -> str:
        return f"user:{(await request.json())['user']}"

    app = starlette_app(calls, engine, default_rule="api", extract_identifier=from_body)
    body = json.dumps({"user": "carol", "pad": "x" * 10_000}).encode()

    async def scenario() -> None:
        async with http(app) as client:
            echoed = await client.post("/echo", content=body)
            assert echoed.status_code == 200 and echoed.content == body  # replayed to the app
            assert (await client.post("/echo", content=body)).status_code == 429

    run(scenario)
    assert engine.get_metrics("api")["violations_by_user"]["entries"][0]["key"] == "user:carol"


def test_cidr_filter_believes_only_trusted_proxies(clock: ManualClock) -> None:
    engine = engine_with(
        clock,
        rule("api", 1),
        rule("office", 50, ip_addresses=["198.51.100.0/24"], priority=5),
    )
    app = starlette_app([], engine, default_rule="api", trusted_proxies=["10.0.0.0/8"])
    office = {"x-forwarded-for": "198.51.100.9"}

    async def scenario() -> None:
        async with http(app, client=("10.1.2.3", 5)) as proxied:
            got = [limits_of(await proxied.get("/", headers=office))[:2] for _ in range(2)]
            assert got == [("50", "49"), ("50", "48")]
        # The same header from a peer that is not a trusted proxy is a forgery: not believed.
        async with http(app, client=CLIENT) as forger:
            first = await forger.get("/", headers=office)
            assert first.status_code == 200 and limits_of(first)[0] == "1"
            assert (await forger.get("/", headers=office)).status_code == 429

    run(scenario)
    assert engine.get_metrics("office")["total_requests"] == 2
    assert engine.get_metrics("api")["violations_by_ip"]["entries"][0]["key"] == CLIENT[0]


def test_an_unlimited_override_lets_a_client_through(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("api", 1))
    app = starlette_app([], engine, default_rule="api")
    grant = engine.add_override(
        {"target_ip_address": "203.0.113.0/24", "unlimited": True, "admin_id": "ops"}
    )

    async def scenario() -> None:
        async with http(app) as client:
            assert [(await client.get("/")).status_code for _ in range(5)] == [200] * 5
        async with http(app, client=("192.0.2.1", 1)) as other:
            assert [(await other.get("/")).status_code for _ in range(2)] == [200, 429]
        engine.remove_override(grant["override_id"], "ops")
        async with http(app) as client:
            assert [(await client.get("/")).status_code for _ in range(2)] == [200, 429]

    run(scenario)


def test_the_deciding_rule_counts_middleware_requests(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("api", 2), rule("other", 5, endpoints=["/other"]))
    app = starlette_app([], engine, default_rule="api")

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(3):
                await client.get("/x")
            await client.get("/other")

    run(scenario)
    api = engine.get_metrics("api")
    assert (api["total_requests"], api["allowed_requests"], api["denied_requests"]) == (3, 2, 1)
    assert api["violations_by_endpoint"]["entries"][0]["key"] == "/x"
    assert engine.get_metrics("other")["total_requests"] == 1


def test_exempt_paths_are_never_limited_nor_counted(clock: ManualClock) -> None:
    calls: list[str] = []
    engine = engine_with(clock, rule("api", 1))
    app = starlette_app(calls, engine, default_rule="api", exempt_paths=["/health", "/static/*"])

    async def scenario() -> None:
        async with http(app) as client:
            for path in ("/health", "/static/a.css", "/health", "/static/b/c.js"):
                r = await client.get(path)
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            assert (await client.get("/healthz")).status_code == 200  # exact: not exempt
            assert (await client.get("/health/x")).status_code == 429

    run(scenario)
    assert engine.get_metrics("api")["total_requests"] == 2


def test_no_rule_and_no_default_reaches_the_app_untouched(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("search", 1, endpoints=["/search"]))
    app = starlette_app([], engine)

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(3):
                r = await client.get("/free")
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            assert [(await client.get("/search")).status_code for _ in range(2)] == [200, 429]

    run(scenario)


def test_fastapi_app_reads_the_degraded_flag(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("soft", 1, strategy="graceful"))
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: int, request: Request) -> dict[str, Any]:
        return {"item": item, "degraded": getattr(request.state, "rate_limit_degraded", False)}

    app.add_middleware(RulesMiddleware, engine=engine, default_rule="soft")

    async def scenario() -> None:
        async with http(app) as client:
            assert (await client.get("/items/1")).json() == {"item": 1, "degraded": False}
            second = await client.get("/items/2")
            assert second.json() == {"item": 2, "degraded": True}
            assert second.headers["x-ratelimit-degraded"] == "true"

    run(scenario)


# --- websockets, lifespan, configuration -------------------------------------------------------


def test_websocket_handshakes_are_decided(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("api", 1))
    app = starlette_app([], engine, default_rule="api")
    with TestClient(app, client=CLIENT) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hello"
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws") as ws:
            ws.receive_text()
        assert refused.value.code == 1008
    assert engine.get_metrics("api")["denied_requests"] == 1


def test_a_graceful_websocket_is_let_through_marked(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("soft", 1, strategy="graceful"))
    app = starlette_app([], engine, default_rule="soft")
    with TestClient(app, client=CLIENT) as client:
        texts = []
        for _ in range(2):
            with client.websocket_connect("/ws") as ws:
                texts.append(ws.receive_text())
    assert texts == ["hello", "hello, degraded"]


def test_lifespan_passes_through(clock: ManualClock) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = RulesMiddleware(app, engine_with(clock, rule("api", 1)), default_rule="api")

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    run(lambda: middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert seen == ["lifespan"]


def test_an_unknown_default_rule(clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KeyError, match="nope"):
        RulesMiddleware(
            PlainTextResponse("x"), engine_with(clock, rule("api", 1)), default_rule="nope"
        )
    # Rules not added yet: the first request raises it, logged once however many fail.
    engine = engine_with(clock)
    app = starlette_app([], engine, default_rule="later")

    async def scenario() -> None:
        async with http(app) as client:
            for _ in range(2):
                with pytest.raises(LookupError, match="later"):
                    await client.get("/")
            engine.add_rule(rule("later", 5))
            assert limits_of(await client.get("/"))[0] == "5"

    with caplog.at_level(logging.ERROR, logger="seawall.rules"):
        run(scenario)
    assert len([r for r in caplog.records if "later" in r.getMessage()]) == 1


def test_bad_arguments_are_named(clock: ManualClock) -> None:
    engine = engine_with(clock, rule("api", 1))
    app = PlainTextResponse("x")
    with pytest.raises(TypeError, match="extract_identifier"):
        RulesMiddleware(app, engine, extract_identifier="user")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_queue"):
        RulesMiddleware(app, engine, on_queue=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exempt_paths"):
        RulesMiddleware(app, engine, exempt_paths=[3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="exempt_paths"):
        RulesMiddleware(app, engine, exempt_paths=["health"])  # would never match
    with pytest.raises(TypeError, match="default_rule"):
        RulesMiddleware(app, engine, default_rule=1)  # type: ignore[arg-type]


# --- a real server -----------------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a free port), in a thread; yields its address."""
    with serving(app) as port:
        yield f"127.0.0.1:{port}"


def test_over_real_http(clock: ManualClock) -> None:
    engine = engine_with(
        clock,
        rule("api", 2),
        rule("soft", 1, endpoints=["/soft"], strategy="graceful"),
    )
    app = starlette_app([], engine, default_rule="api")
    with (
        serve(app) as address,
        httpx.Client(base_url=f"http://{address}", trust_env=False, timeout=30) as client,
    ):
        assert [client.get("/").status_code for _ in range(2)] == [200, 200]
        denied = client.get("/")
        assert denied.status_code == 429 and denied.headers["retry-after"] == "30"
        assert denied.json()["error"]["retry_after"] == 30
        client.get("/soft")
        degraded = client.get("/soft")
        assert degraded.json()["degraded"] is True
        assert degraded.headers["x-ratelimit-degraded"] == "true"
    violators = engine.get_metrics("api")["violations_by_ip"]["entries"]
    assert violators[0]["key"] == "127.0.0.1"


# --- on Redis ------------------------------------------------------------------------------------


def test_on_redis_every_strategy_answers_the_same(
    clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    engine = RulesEngine(clock=clock, store=redis_url, key_prefix=redis_prefix)
    for r in (
        rule("api", 2),
        rule("jobs", 1, strategy="queue", max_queued=1, endpoints=["/jobs"], priority=5),
        {**THROTTLE, "endpoints": ["/slow"], "priority": 5},
    ):
        engine.add_rule(r)
    queued: list[dict[str, Any]] = []
    app = starlette_app([], engine, default_rule="api", on_queue=queued.append)

    async def scenario() -> None:
        async with http(app) as client:
            got = [await client.get("/a") for _ in range(3)]
            assert [r.status_code for r in got] == [200, 200, 429]
            assert limits_of(got[0])[:2] == ("2", "1") and got[2].headers["retry-after"] == "30"
            jobs = [(await client.post("/jobs")).status_code for _ in range(3)]
            assert jobs == [200, 202, 429]  # the queue place is a second call, on Redis too
            assert (await client.get("/slow")).json()["delay"] is None
            assert (await client.get("/slow")).json()["delay"] == pytest.approx(0.01)

    run(scenario)
    assert [info["rule"] for info in queued] == ["jobs"]
    assert engine.get_metrics("api")["denied_requests"] == 1


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_with_redis_down_on_error_decides(
    clock: ManualClock, redis_server: Any, on_error: str
) -> None:
    engine = RulesEngine(
        clock=clock,
        store=redis_server.url,
        key_prefix="mw:",
        on_error=on_error,
        connect_timeout=0.2,
        command_timeout=0.2,
    )
    engine.add_rule(rule("api", 100))
    app = starlette_app([], engine, default_rule="api")
    redis_server.kill()

    async def scenario() -> None:
        async with http(app) as client:
            r = await client.get("/a")
            if on_error == "allow":  # the app's response; no budget is known, so no header
                assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
            else:  # not the client's doing: 503, not 429
                assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
                assert r.json()["error"]["code"] == 503

    run(scenario)
    if on_error == "deny":
        with TestClient(app, client=CLIENT) as client:
            with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
                pass
            assert refused.value.code == 1013


def test_built_while_the_store_cannot_answer() -> None:
    """default_rule is checked at the first request then: an app starts while Redis is down."""
    from redis_servers import free_port

    engine = RulesEngine(store=f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2)
    with pytest.raises(OSError, match="could not read the rules"):
        engine.rules()
    middleware = RulesMiddleware(PlainTextResponse("x"), engine, default_rule="api")
    assert middleware.gate.default_rule == "api"
