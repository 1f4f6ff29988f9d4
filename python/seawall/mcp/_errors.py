"""``ToolRateLimitedError``: the error both MCP frameworks turn into an ``isError`` result."""

from __future__ import annotations

import logging
from typing import cast

from seawall.errors import RateLimitExceeded

__all__ = ["ToolRateLimitedError"]


def _tool_error_bases() -> tuple[type[Exception], ...]:
    bases: list[type[Exception]] = []
    try:
        from fastmcp.exceptions import ToolError as FastMCPToolError

        bases.append(FastMCPToolError)
    except ImportError:
        pass
    for module in ("mcp.server.mcpserver.exceptions", "mcp.server.fastmcp.exceptions"):
        try:
            sdk = __import__(module, fromlist=["ToolError"])
        except ImportError:
            continue
        bases.append(sdk.ToolError)
        break
    bases.append(RateLimitExceeded)
    return tuple(bases)


class _ToolRateLimitedBase(RateLimitExceeded):
    def __init__(self, retry_after: float, limit: int, key: str) -> None:
        super().__init__(retry_after, limit, key)
        # fastmcp logs a ToolError at its ``log_level`` (ERROR by default) for every call that
        # raises one: a refusal is the limit working, and a client hammering a limited tool
        # must not flood the error log.
        self.log_level = logging.DEBUG

    def __str__(self) -> str:
        return (
            f"Rate limit exceeded for {self.key!r} (limit {self.limit}); "
            f"retry after {self.retry_after_seconds} s"
        )


# A ``ToolError`` of fastmcp *and* of the SDK (whichever are installed) and a
# ``seawall.RateLimitExceeded``: either framework reports it to the client as an ``isError``
# result whose text is ``str(error)``, which ends with ``retry after N s``.
ToolRateLimitedError: type[RateLimitExceeded] = cast(
    "type[RateLimitExceeded]",
    type(
        "ToolRateLimitedError",
        (_ToolRateLimitedBase, *_tool_error_bases()[:-1]),
        {"__module__": "seawall.mcp", "__doc__": "A tool call refused by a seawall rate limit."},
    ),
)
