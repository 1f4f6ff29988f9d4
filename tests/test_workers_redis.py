"""Every front door on Redis, served by real worker processes (issue 13, item 5).

``uvicorn --workers 4`` and gunicorn ``-w 4`` with uvicorn workers run the apps of
tests/worker_apps.py on 127.0.0.1, all sharing one real redis-server. Bursts of requests, each on
a new connection and fired at once from threads, reach several workers (every response names its
worker's pid; a burst that one worker answered alone is retried on a fresh budget, a bounded
number of times), and exactly the limit is admitted across the workers: per client, per route,
globally, through the FastAPI dependency, the decorator and an MCP server over streamable HTTP
(the SDK's client). Then Redis is killed (SIGKILL) under load and each ``on_error`` policy is
checked as an HTTP client sees it. The start-up warning of several workers on a memory store is
tested with real servers in tests/test_worker_warning.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import worker_apps as apps
from redis_servers import RedisServer, free_port, redis_server_binary

import seawall.host

WORKERS = 4
BURST = 40  # requests per burst: four times the usual limit, so every worker gets some
START = 90.0  # seconds four workers may take to start on a loaded machine
TIMEOUT = 10.0  # a request taking longer hangs: seawall's Redis timeouts are far shorter
TESTS = Path(__file__).parent

pytestmark = pytest.mark.skipif(
    redis_server_binary() is None, reason="redis-server is not installed (Debian redis-server)"
)


# ------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    """A running server: its base URL and the pids of its workers (from their start-up log)."""

    url: str
    pids: set[int]
    log: Path


STARTED = re.compile(r"Started server process \[(\d+)\]")


def _env(store: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])),
        SEAWALL_WORKERS_STORE=store,
        SEAWALL_WORKERS_PREFIX=f"w:{uuid.uuid4().hex[:12]}:",
        SEAWALL_WORKERS_HOST=f"w-{uuid.uuid4().hex[:12]}",
    )
    return env


def _answers(url: str) -> bool:
    try:
        httpx.get(url, trust_env=False, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def serve(argv: list[str], store: str, log: Path, ready_path: str = "/pid") -> Iterator[Server]:
    """Run ``python -m <argv>`` (its own process group), wait until all its workers have started
    and it answers HTTP, yield it, then stop it (SIGTERM, then SIGKILL)."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    env = _env(store)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=TESTS,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START
        while True:  # waiting for the server to start, not for any rate-limit behaviour
            text = log.read_text(errors="replace")
            pids = {int(pid) for pid in STARTED.findall(text)}
            if (
                text.count("Application startup complete") >= WORKERS
                and len(pids) >= WORKERS
                and _answers(url + ready_path)
            ):
                break
            if proc.poll() is not None:
                pytest.fail(f"{argv[0]} exited ({proc.returncode}):\n{text[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} did not start {WORKERS} workers in {START} s:\n{text}")
            time.sleep(0.1)
        yield Server(url, pids, log)
    finally:
        _stop(proc)
        # The server's host stores outlive it (as they outlive any worker): remove them.
        for segment in Path("/dev/shm").glob(f"seawall-{env['SEAWALL_WORKERS_HOST']}-*"):
            seawall.host.remove(segment.name.removeprefix("seawall-"))


def uvicorn(factory: str) -> list[str]:
    return ["uvicorn", f"worker_apps:{factory}", "--factory", "--workers", str(WORKERS),
            "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]  # fmt: skip


GUNICORN = ["gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", str(WORKERS),
            "-b", "127.0.0.1:{port}", "worker_apps:http_app()"]  # fmt: skip


@pytest.fixture(scope="module")
def uvicorn_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serve(uvicorn("http_app"), redis_url, log) as server:
        yield server


@pytest.fixture(scope="module")
def gunicorn_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("gunicorn")
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with serve(GUNICORN, redis_url, log) as server:
        yield server


@pytest.fixture(scope="module", params=["uvicorn", "gunicorn"])
def http_server(request: pytest.FixtureRequest) -> Server:
    """The middleware's server: uvicorn ``--workers 4``, then gunicorn ``-w 4``."""
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server


# ------------------------------------------------------------------------------------------
# Bursts


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    pid: int


def burst(
    server: Server,
    path: str,
    n: int = BURST,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> list[Reply]:
    """``n`` GETs of ``path`` fired at once from ``n`` threads, each on a new connection."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    with httpx.Client(base_url=server.url, trust_env=False, timeout=TIMEOUT, limits=limits) as c:

        def one(i: int) -> Reply:
            extra = headers(i) if headers is not None else {}
            r = c.get(path, headers={"Connection": "close", **extra})
            return Reply(r.status_code, r.headers, int(r.headers["x-worker-pid"]))

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))


def assert_exactly(
    server: Server,
    path: Callable[[int], str],
    limit: int,
    *,
    headers: Callable[[int], dict[str, str]] | None = None,
    rate_limit_headers: bool = True,
) -> None:
    """A burst at ``path(attempt)`` (a fresh budget each attempt) admits exactly ``limit`` and
    refuses the rest with 429 + Retry-After, and some burst is answered by several workers."""
    seen: list[set[int]] = []
    for attempt in range(apps.ATTEMPTS):
        replies = burst(server, path(attempt), headers=headers)
        statuses = Counter(r.status for r in replies)
        assert statuses == {200: limit, 429: BURST - limit}, (path(attempt), statuses)
        refused = [r for r in replies if r.status == 429]
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        if rate_limit_headers:
            # One budget: each admitted request saw its own place in it, across the workers.
            remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in replies
                               if r.status == 200)  # fmt: skip
            assert remaining == list(range(limit)), remaining
            assert {r.headers["x-ratelimit-limit"] for r in replies} == {str(limit)}
        pids = {r.pid for r in replies}
        assert pids <= server.pids, (pids, server.pids)
        seen.append(pids)
        if len(pids) > 1:
            return
    pytest.fail(f"every burst was answered by one worker: {seen}")


# ------------------------------------------------------------------------------------------
# 1 and 5. RateLimitMiddleware(store=redis) under uvicorn --workers 4 and gunicorn -w 4


def test_middleware_per_client_limit_is_exact_across_workers(http_server: Server) -> None:
    assert_exactly(http_server, lambda a: f"/client/{a}/x", apps.CLIENT)


def test_middleware_route_rule_is_exact_across_workers(http_server: Server) -> None:
    assert_exactly(http_server, lambda a: f"/rules/{a}/limited", apps.RULE)
    # The rule replaced the default for its path: the default budget is still whole.
    assert_exactly(http_server, lambda a: f"/rules/{a}/other", apps.RULE_DEFAULT)


def test_host_store_middleware_is_exact_across_workers(http_server: Server) -> None:
    """The same cases on a host store (shared memory, no Redis): per client, and global."""
    assert_exactly(http_server, lambda a: f"/host-client/{a}/x", apps.CLIENT)
    assert_exactly(
        http_server,
        lambda a: f"/host-global/{a}/x",
        apps.GLOBAL,
        headers=lambda i: {"X-Client": f"client-{i}"},
        rate_limit_headers=False,
    )


def test_middleware_global_limit_is_exact_across_workers_and_clients(http_server: Server) -> None:
    # Forty clients, one request each: only the global budget can refuse.
    assert_exactly(
        http_server,
        lambda a: f"/global/{a}/x",
        apps.GLOBAL,
        headers=lambda i: {"X-Client": f"client-{i}"},
        rate_limit_headers=False,
    )


# ------------------------------------------------------------------------------------------
# 2 and 3. The FastAPI dependency and the decorator on Redis, uvicorn --workers 4


def test_fastapi_dependency_is_exact_across_workers(uvicorn_server: Server) -> None:
    assert_exactly(uvicorn_server, lambda a: f"/fastapi/{a}/x", apps.DEPENDENCY)


def test_decorator_is_exact_across_workers(uvicorn_server: Server) -> None:
    assert_exactly(
        uvicorn_server, lambda a: f"/decorator/{a}/x", apps.DECORATOR, rate_limit_headers=False
    )


# ------------------------------------------------------------------------------------------
# 4. An MCP server over streamable HTTP, uvicorn --workers 4, the SDK's client


@pytest.fixture(scope="module")
def mcp_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("fastmcp")
    log = tmp_path_factory.mktemp("mcp") / "server.log"
    with serve(uvicorn("mcp_app"), redis_url, log, ready_path="/mcp") as server:
        yield server


@dataclass
class ToolCall:
    admitted: bool
    pids: list[int] = field(default_factory=list)  # of every HTTP response of its session


async def _call_tool(url: str, tool: str) -> ToolCall:
    """One tool call in a session of its own, on connections of its own."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    pids: list[int] = []

    async def record(response: Any) -> None:
        pids.append(int(response.headers["x-worker-pid"]))

    limits = httpx2.Limits(max_keepalive_connections=0)
    async with (
        httpx2.AsyncClient(timeout=TIMEOUT, limits=limits, event_hooks={"response": [record]}) as h,
        streamable_http_client(url, http_client=h) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, {})
    data = result.structured_content
    admitted = not result.is_error and isinstance(data, dict) and "pid" in data
    refused = result.is_error or (isinstance(data, dict) and data.get("rate_limited") is True)
    assert admitted != refused, result  # one or the other, never some other failure
    if admitted:
        assert isinstance(data, dict)
        pids.append(int(data["pid"]))
    return ToolCall(admitted, pids)


@pytest.mark.parametrize("kind", ["deco", "mw"])
def test_mcp_tool_limit_is_exact_across_workers(mcp_server: Server, kind: str) -> None:
    seen: list[set[int]] = []
    for attempt in range(apps.ATTEMPTS):

        async def calls(tool: str = f"{kind}_{attempt}") -> list[ToolCall]:
            url = f"{mcp_server.url}/mcp"
            return list(await asyncio.gather(*(_call_tool(url, tool) for _ in range(BURST))))

        results = asyncio.run(calls())
        assert sum(r.admitted for r in results) == apps.MCP_LIMIT
        pids = {pid for r in results for pid in r.pids}
        assert pids <= mcp_server.pids, (pids, mcp_server.pids)
        seen.append(pids)
        if len(pids) > 1:
            return
    pytest.fail(f"every burst was answered by one worker: {seen}")


# ------------------------------------------------------------------------------------------
# 6. kill -9 of Redis under load: on_error="allow", "deny", "local"


@dataclass
class Load:
    """Threads sending requests to ``paths`` in turn, on new connections, until stopped;
    every answer (or error: a timeout is a hang) is kept, in order."""

    server: Server
    paths: list[str]
    threads: int = 8
    replies: list[tuple[str, Reply | BaseException]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for t in range(self.threads):
            thread = threading.Thread(target=self._run, args=(t,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _run(self, t: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        url = self.server.url
        with httpx.Client(base_url=url, trust_env=False, timeout=TIMEOUT, limits=limits) as c:
            i = t
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                i += 1
                reply: Reply | BaseException
                try:
                    r = c.get(path, headers={"Connection": "close"})
                    reply = Reply(r.status_code, r.headers, int(r.headers["x-worker-pid"]))
                except Exception as e:
                    reply = e
                with self._lock:
                    self.replies.append((path, reply))

    def count(self) -> int:
        with self._lock:
            return len(self.replies)

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while self.count() < n:  # waiting for requests to be answered, not for time to pass
            if time.monotonic() > deadline:
                pytest.fail(f"the load got {self.count()} answers, not {n}, in 60 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(TIMEOUT + 5)


@dataclass
class Killed:
    """What clients saw before and after Redis was killed under load."""

    server: Server
    before: dict[str, list[Reply]]
    load: list[tuple[str, Reply | BaseException]]
    killed_at: int  # the load's answers before the kill
    after: dict[str, list[Reply]]
    local_after: list[list[Reply]]  # fresh clients' bursts at /fail/local, after the kill


def _client(name: str) -> Callable[[int], dict[str, str]]:
    return lambda i: {"X-Client": name}


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killed]:
    redis = RedisServer().start()
    try:
        log = tmp_path_factory.mktemp("killed") / "server.log"
        with serve(uvicorn("http_app"), redis.url, log) as server:
            before = {p: burst(server, f"/fail/{p}") for p in ("allow", "deny")}
            before["local"] = burst(server, "/fail/local", headers=_client("before"))
            # The load's /fail/local requests carry no X-Client: keyed by the client address.
            load = Load(server, ["/fail/allow", "/fail/deny", "/fail/local"]).start()
            try:
                load.wait_for(40)
                killed_at = load.count()
                redis.kill()  # SIGKILL: connections reset, nothing closed cleanly
                load.wait_for(killed_at + 180)
            finally:
                load.stop()
            after = {p: burst(server, f"/fail/{p}") for p in ("allow", "deny")}
            local_after = []
            for attempt in range(apps.ATTEMPTS):
                local_after.append(burst(server, "/fail/local", headers=_client(f"after{attempt}")))
                if len({r.pid for r in local_after[-1]}) > 1:
                    break
            yield Killed(server, before, load.replies, killed_at, after, local_after)
    finally:
        redis.close()


def _rate_limit_headers(reply: Reply) -> list[str]:
    return [name for name in reply.headers if name.lower().startswith(("x-ratelimit", "ratelimit"))]


def test_before_the_kill_redis_decides(killed: Killed) -> None:
    for policy in ("allow", "deny"):
        assert {r.status for r in killed.before[policy]} == {200}
        assert all(r.headers["x-ratelimit-limit"] == "1000" for r in killed.before[policy])
    assert Counter(r.status for r in killed.before["local"]) == {
        200: apps.LOCAL,
        429: BURST - apps.LOCAL,
    }


def test_no_request_hangs_or_fails_while_redis_dies(killed: Killed) -> None:
    errors = [reply for _, reply in killed.load if isinstance(reply, BaseException)]
    assert errors == []
    statuses = {f"/fail/{policy}": Counter[int]() for policy in ("allow", "deny", "local")}
    for path, reply in killed.load:
        assert isinstance(reply, Reply)
        statuses[path][reply.status] += 1
    assert set(statuses["/fail/allow"]) == {200}, statuses
    assert set(statuses["/fail/deny"]) <= {200, 503}, statuses
    assert set(statuses["/fail/local"]) <= {200, 429}, statuses
    for _, reply in killed.load:
        assert isinstance(reply, Reply)
        if reply.status in (429, 503):
            assert int(reply.headers["retry-after"]) >= 1
        if reply.status == 503:
            assert _rate_limit_headers(reply) == []
    # Requests decided after the kill were refused: some of the load saw it.
    later = [r for path, r in killed.load[killed.killed_at :] if path == "/fail/deny"]
    assert any(isinstance(r, Reply) and r.status == 503 for r in later), statuses


def test_allow_admits_every_request_with_no_rate_limit_headers(killed: Killed) -> None:
    replies = killed.after["allow"]
    assert {r.status for r in replies} == {200}
    assert [_rate_limit_headers(r) for r in replies] == [[]] * BURST
    assert len({r.pid for r in replies}) > 1


def test_deny_answers_503_with_retry_after(killed: Killed) -> None:
    replies = killed.after["deny"]
    assert {r.status for r in replies} == {503}
    assert all(int(r.headers["retry-after"]) >= 1 for r in replies)
    assert [_rate_limit_headers(r) for r in replies] == [[]] * BURST
    assert len({r.pid for r in replies}) > 1


def test_local_limits_each_worker_on_its_own(killed: Killed) -> None:
    for replies in killed.local_after:
        assert {r.status for r in replies} <= {200, 429}
        served = Counter(r.pid for r in replies)
        admitted = Counter(r.pid for r in replies if r.status == 200)
        # Each worker's own memory: the limit each, whatever the others admitted.
        assert admitted == {pid: min(apps.LOCAL, n) for pid, n in served.items()}, served
        assert sum(admitted.values()) <= apps.LOCAL * WORKERS
        ok = [r for r in replies if r.status == 200]
        assert [_rate_limit_headers(r) for r in ok] == [[]] * len(ok)
        assert all(int(r.headers["retry-after"]) >= 1 for r in replies if r.status == 429)
    assert len({r.pid for r in killed.local_after[-1]}) > 1
