"""The worker trap (issue 13, item 4): one WARNING per worker process when a front door keeps its
limits in memory while several workers serve the app, and none with one worker or Redis. Real
processes: ``uvicorn --workers``, gunicorn ``-w``, ``WEB_CONCURRENCY``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_servers import free_port

from seawall._workers import worker_count

WARNING = re.compile(r"pid (\d+)\) is one of (\d+) workers \(([^)]*)\)")
START = 60.0  # seconds a server may take to start its workers on a loaded machine


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    env.update(extra)
    return env


def _run(code: str, **extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


FRONT_DOORS = """
    from starlette.applications import Starlette
    import seawall
    from seawall import RateLimitMiddleware
    from seawall.fastapi import limit
    from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool

    RateLimitMiddleware(Starlette(), limits="5/minute")
    limit("5/minute")
    seawall.rate_limit("5/minute")
    seawall.rate_limit("5/minute")
    rate_limit_tool("5/minute")
    ToolRateLimitMiddleware("5/minute")
"""


def test_web_concurrency_warns_once_per_process_naming_the_fix() -> None:
    stderr = _run(FRONT_DOORS, WEB_CONCURRENCY="3")
    found = WARNING.findall(stderr)
    assert len(found) == 1, stderr  # six front doors, one process: one warning
    assert found[0][1:] == ("3", "WEB_CONCURRENCY")
    assert "a client gets up to 3 times" in stderr
    assert "store=" in stderr


@pytest.mark.parametrize("value", ["1", "", "several"])
def test_one_worker_or_no_count_does_not_warn(value: str) -> None:
    assert WARNING.search(_run(FRONT_DOORS, WEB_CONCURRENCY=value)) is None


def test_redis_store_does_not_warn(redis_url: str) -> None:
    stderr = _run(
        f"""
        import seawall
        from seawall.mcp import ToolRateLimitMiddleware, rate_limit_tool
        seawall.rate_limit("5/minute", store={redis_url!r})
        rate_limit_tool("5/minute", store={redis_url!r})
        ToolRateLimitMiddleware("5/minute", store={redis_url!r})
        seawall.rate_limit(limiter=seawall.Limiter("5/minute", store={redis_url!r}))
        """,
        WEB_CONCURRENCY="3",
    )
    assert WARNING.search(stderr) is None, stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], Path]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> tuple[subprocess.Popen[str], Path]:
        log = tmp_path / f"server{len(started)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=tmp_path,
                env=_env(PYTHONPATH=str(tmp_path)),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        started.append(proc)
        return proc, log

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_for(proc: subprocess.Popen[str], log: Path, ready: Callable[[str], bool]) -> str:
    """The server's output once ``ready`` says so (the server is waited for, not timed)."""
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        text = log.read_text()
        if ready(text):
            return text
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}):\n{text}")
        time.sleep(0.1)
    pytest.fail(f"the server did not get ready in {START} s:\n{log.read_text()}")


ASGI_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from seawall import RateLimitMiddleware

async def home(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/", home)])
app.add_middleware(RateLimitMiddleware, limits="5/minute")
"""


def test_uvicorn_workers_each_warn_once(
    tmp_path: Path, server: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    port = str(free_port())
    proc, log = server("uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", port,
                       "--workers", "2")  # fmt: skip
    # Starlette builds the middleware at the lifespan start-up, before the worker says so.
    text = _wait_for(proc, log, lambda t: t.count("Application startup complete") >= 2)
    found = WARNING.findall(text)
    assert len(found) == 2, text
    pids = {int(pid) for pid, _, _ in found}
    assert len(pids) == 2 and proc.pid not in pids  # each worker, not the supervisor
    assert all(n == "2" and how == "uvicorn --workers" for _, n, how in found)


def test_uvicorn_one_worker_does_not_warn(
    tmp_path: Path, server: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    port = str(free_port())
    proc, log = server("uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", port,
                       "--workers", "1")  # fmt: skip
    text = _wait_for(proc, log, lambda t: "Application startup complete" in t)
    assert WARNING.search(text) is None, text


WSGI_APP = """
import sys
import seawall

@seawall.rate_limit("5/minute")
def handle() -> bytes:
    return b"ok"

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [handle()]

print("app loaded", flush=True, file=sys.stderr)
"""


@pytest.mark.parametrize("workers", [2, 1])
def test_gunicorn_workers_warn_only_when_several(
    tmp_path: Path, server: Callable[..., tuple[subprocess.Popen[str], Path]], workers: int
) -> None:
    pytest.importorskip("gunicorn")
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    proc, log = server("gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{free_port()}",
                       "wsgi_app:app")  # fmt: skip
    text = _wait_for(proc, log, lambda t: t.count("app loaded") >= workers)
    found = WARNING.findall(text)
    if workers == 1:
        assert found == [], text
    else:
        assert len(found) == 2 and len({pid for pid, _, _ in found}) == 2, text
        assert all(n == "2" and how == "gunicorn workers" for _, n, how in found)


def test_gunicorn_preload_warns_once_in_the_arbiter(
    tmp_path: Path, server: Callable[..., tuple[subprocess.Popen[str], Path]]
) -> None:
    """With ``--preload`` the app (and its limiter) is made once, in the arbiter, and forked:
    one process made it, so one warning, from the arbiter."""
    pytest.importorskip("gunicorn")
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    proc, log = server("gunicorn", "-w", "3", "--preload", "-b", f"127.0.0.1:{free_port()}",
                       "wsgi_app:app")  # fmt: skip
    text = _wait_for(proc, log, lambda t: t.count("Booting worker") >= 3)
    found = WARNING.findall(text)
    assert found == [(str(proc.pid), "3", "gunicorn workers")], text


@settings(max_examples=50, deadline=None)
@given(value=st.text(max_size=6) | st.integers(-5, 64).map(str))
def test_web_concurrency_counts_as_the_servers_read_it(value: str) -> None:
    """Any value: several workers exactly when the servers themselves would read a number > 1
    (both do ``int(os.environ["WEB_CONCURRENCY"])``)."""
    if "\x00" in value:
        return  # not a value an environment can hold
    saved = os.environ.get("WEB_CONCURRENCY")
    os.environ["WEB_CONCURRENCY"] = value
    try:
        n, source = worker_count()
    finally:
        if saved is None:
            del os.environ["WEB_CONCURRENCY"]
        else:
            os.environ["WEB_CONCURRENCY"] = saved
    try:
        expected = int(value)
    except ValueError:
        expected = 1
    if expected > 1:
        assert (n, source) == (expected, "WEB_CONCURRENCY")
    else:
        assert (n, source) == (1, "")
