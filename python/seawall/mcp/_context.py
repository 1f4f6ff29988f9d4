"""The MCP context of the current call: the frameworks' ``Context`` classes, the context of the
fastmcp request running now, a context's request, and the protocol era of that request."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "ambient_context",
    "context_classes",
    "is_fastmcp_context",
    "is_modern",
    "request_context",
]


def is_fastmcp_context(obj: object) -> bool:
    """Whether ``obj`` is a fastmcp ``Context`` (not the SDK's)."""
    return type(obj).__module__.startswith("fastmcp.")


@functools.cache
def context_classes() -> tuple[type, ...]:
    """The ``Context`` classes of the installed frameworks: fastmcp's, then the SDK's."""
    classes: list[type] = []
    for modules in (("fastmcp",), ("mcp.server.mcpserver", "mcp.server.fastmcp")):
        for module in modules:  # the SDK's server: v2's ``mcpserver``, else v1's ``fastmcp``
            try:
                classes.append(importlib.import_module(module).Context)
            except Exception:  # not installed, or broken: then it cannot serve the tool either
                continue
            break
    return tuple(classes)


_get_fastmcp_context: Callable[[], Any] | None = None


def ambient_context() -> Any:
    """fastmcp's context of the request running now (its context variable), else ``None``.

    Only for a wrapper called without the context its framework injects (called directly from
    code running inside a fastmcp request, say): the SDK has no such variable.
    """
    global _get_fastmcp_context
    if _get_fastmcp_context is None:
        if "fastmcp" not in sys.modules:
            return None
        try:
            from fastmcp.server.dependencies import get_context
        except ImportError:
            return None
        _get_fastmcp_context = get_context
    try:
        return _get_fastmcp_context()
    except RuntimeError:  # no fastmcp request is running
        return None


_MODERN: frozenset[str]
try:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    _MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
except ImportError:  # an SDK without the 2026-07-28 protocol: every version is handshake-era
    _MODERN = frozenset()


def is_modern(rc: Any) -> bool:
    """Whether the request ``rc`` speaks the 2026-07-28 protocol (no server-issued session)."""
    version = getattr(rc, "protocol_version", None)
    return isinstance(version, str) and (version in _MODERN or version >= "2026-07-28")


def request_context(ctx: Any) -> Any:
    """``ctx.request_context``, or ``None`` where there is none (a background task, no request)."""
    try:
        return ctx.request_context
    except Exception:
        return None
