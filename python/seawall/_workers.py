"""The worker trap: a memory store in one of several worker processes.

A limiter whose state is in memory is exact in one process. Served by several workers
(gunicorn ``-w N``, ``uvicorn --workers N``, a platform setting ``WEB_CONCURRENCY``), each worker
keeps its own budget, so a client spreading requests over them gets up to N times the limit.
:func:`warn_if_memory_workers` logs that once per process, on the ``seawall`` logger, when a
front door (``RateLimitMiddleware``, ``seawall.fastapi.limit``, ``seawall.rate_limit``,
``seawall.mcp``) is made with a memory store in such a process.

What is detected, in this order (the first that answers wins):

- uvicorn's supervisor (``--workers N`` or ``uvicorn.run(..., workers=N)``): each worker is a
  spawned process that runs the server from ``uvicorn._subprocess.subprocess_started(config,
  ...)``, which stays on the call stack for the life of the worker; its ``config.workers`` is N.
- gunicorn: each worker is forked from the arbiter inside ``Arbiter.spawn_worker`` (and with
  ``--preload`` the app is loaded inside the arbiter itself), so an ``Arbiter`` is on the call
  stack; its ``cfg.workers`` is N whether it came from ``-w``, a config file or
  ``WEB_CONCURRENCY``.
- Otherwise the ``WEB_CONCURRENCY`` environment variable (the default of both servers' worker
  count, and what platforms such as Heroku set).

Kubernetes replicas or several hosts cannot be seen from inside one process; the docs say so.
"""

from __future__ import annotations

import logging
import os
import sys
from types import FrameType

__all__ = ["warn_if_memory_workers", "worker_count"]

logger = logging.getLogger("seawall")

_warned = False


def _reset_after_fork() -> None:
    # A forked worker is a process of its own: it warns for itself.
    global _warned
    _warned = False


os.register_at_fork(after_in_child=_reset_after_fork)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _from_stack(frame: FrameType | None) -> tuple[int, str] | None:
    uvicorn_sub = sys.modules.get("uvicorn._subprocess")
    uvicorn_code = getattr(getattr(uvicorn_sub, "subprocess_started", None), "__code__", None)
    arbiter_mod = sys.modules.get("gunicorn.arbiter")
    arbiter_cls = getattr(arbiter_mod, "Arbiter", None)
    if uvicorn_code is None and arbiter_cls is None:
        return None
    while frame is not None:
        if uvicorn_code is not None and frame.f_code is uvicorn_code:
            n = _int(getattr(frame.f_locals.get("config"), "workers", None))
            if n is not None:
                return n, "uvicorn --workers"
        if arbiter_cls is not None:
            this = frame.f_locals.get("self")
            if isinstance(this, arbiter_cls):
                n = _int(getattr(getattr(this, "cfg", None), "workers", None))
                if n is not None:
                    return n, "gunicorn workers"
        frame = frame.f_back
    return None


def worker_count() -> tuple[int, str]:
    """How many worker processes serve this app, as far as this process can tell, and how it
    was told (``(1, "")`` when nothing says several)."""
    found = _from_stack(sys._getframe(1))
    if found is not None:
        return found
    n = _int(os.environ.get("WEB_CONCURRENCY", ""))
    if n is not None and n > 1:
        return n, "WEB_CONCURRENCY"
    return 1, ""


def warn_if_memory_workers(front_door: str) -> None:
    """Log one WARNING per process when ``front_door`` keeps its limits in memory while this
    process is one of several workers. Called when a front door is made, never per request."""
    global _warned
    if _warned:
        return
    n, source = worker_count()
    if n <= 1:
        return
    _warned = True
    logger.warning(
        "%s keeps its limits in this process's memory, and this process (pid %d) is one of %d "
        "workers (%s): each of %d workers keeps its own budget: a client gets up to %d times "
        "(%dx) the limit. Pass store='redis://...' to share one budget across workers.",
        front_door,
        os.getpid(),
        n,
        source,
        n,
        n,
        n,
    )
