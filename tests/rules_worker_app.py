"""The app that tests/test_rules_workers.py serves with ``uvicorn --workers 4`` (issue 15's bar:
a rule or override added through the CLI is in force in every worker within a second).

Each worker builds its own :class:`seawall.rules.RulesEngine` on the shared Redis store
(``SEAWALL_WORKERS_STORE``) under this server's key prefix (``SEAWALL_RULES_PREFIX``), and serves
every path behind :class:`seawall.rules.RulesMiddleware` with the default rule ``DEFAULT_RULE``
(which the test adds to the store before the server starts). The middleware's
``X-RateLimit-Limit`` says which rule decided a request; ``X-Worker-Pid`` which worker answered.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from worker_apps import ASGIApp, with_pid

from seawall.rules import RulesEngine, RulesMiddleware

DEFAULT_RULE = "open"
#: The default rule: per client, far above what the test sends.
OPEN: dict[str, object] = {
    "name": DEFAULT_RULE,
    "scope": "per_ip",
    "rate": 1_000_000,
    "window_seconds": 3600,
}


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def app() -> ASGIApp:
    """``uvicorn --factory rules_worker_app:app``: one engine per worker, on the shared store."""
    engine = RulesEngine(
        store=os.environ["SEAWALL_WORKERS_STORE"], key_prefix=os.environ["SEAWALL_RULES_PREFIX"]
    )
    inner = Starlette(routes=[Route("/{path:path}", _ok, methods=["GET"])])
    return with_pid(RulesMiddleware(inner, engine, default_rule=DEFAULT_RULE))
