"""A real uvicorn serving an ASGI app on 127.0.0.1 (a free port) in a thread of the test process,
stopped and joined on exit: the one helper behind every suite's ``serve``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


@contextmanager
def serving(
    app: Any,
    *,
    lifespan: Literal["on", "off"] = "off",
    proxy_headers: bool = False,
    interface: Literal["auto", "asgi3", "asgi2"] = "auto",
) -> Iterator[int]:
    """Serves ``app`` until the block ends; yields the port. ``proxy_headers=False`` by default:
    uvicorn itself believes X-Forwarded-For from 127.0.0.1 (``--forwarded-allow-ips``), which
    would rewrite the peer before seawall sees it. ``interface``: uvicorn's ASGI version, told
    from the app by default."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan=lifespan,
        proxy_headers=proxy_headers,
        interface=interface,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:  # waiting for the server to listen, not for a time behaviour
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(15)
