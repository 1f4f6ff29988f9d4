"""Per-tool statistics of the MCP decorator and middleware: ``tool_stats()`` /
``reset_tool_stats()`` read and zero them; :func:`stats_for` is each tool's counters."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from seawall._time import now

__all__ = ["ToolStats", "reset_tool_stats", "stats_for", "tool_stats"]

_stats_lock = threading.Lock()


class ToolStats:
    """One tool's counters; decorators hold theirs, so a reset zeroes it in place.

    An admitted call is counted without a lock: ``next()`` on an ``itertools.count`` is one C
    call, atomic under the GIL, so no call is lost (``total_calls`` stores the latest count; a
    reader racing with two threads may see it one behind, until the next call).
    """

    __slots__ = ("_calls", "last_limited", "limited_calls", "total_calls")

    def __init__(self) -> None:
        self._calls = itertools.count(1)
        self.total_calls = 0
        self.limited_calls = 0
        self.last_limited: float | None = None

    def admitted(self) -> None:
        self.total_calls = next(self._calls)

    def refused(self, clock: Any) -> None:
        at = now(clock)
        with _stats_lock:
            self.total_calls = next(self._calls)
            self.limited_calls += 1
            self.last_limited = at

    def reset(self) -> None:
        self._calls = itertools.count(1)
        self.total_calls = self.limited_calls = 0
        self.last_limited = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_calls": self.total_calls,
            "limited_calls": self.limited_calls,
            "last_limited": self.last_limited,
        }


_stats: dict[str, ToolStats] = {}


def stats_for(tool: str) -> ToolStats:
    entry = _stats.get(tool)
    if entry is None:
        with _stats_lock:
            entry = _stats.setdefault(tool, ToolStats())
    return entry


def tool_stats(name: str | None = None) -> dict[str, dict[str, Any]]:
    """``{tool: {"total_calls", "limited_calls", "last_limited"}}`` (epoch seconds or ``None``),
    for every tool called since it was last reset, or only ``name`` (zeros if never called)."""
    with _stats_lock:
        if name is None:
            return {k: v.as_dict() for k, v in _stats.items() if v.total_calls}
        return {name: _stats.get(name, ToolStats()).as_dict()}


def reset_tool_stats(name: str | None = None) -> None:
    """Forget the statistics of ``name``, or of every tool."""
    with _stats_lock:
        entries = _stats.values() if name is None else [_stats.get(name) or ToolStats()]
        for entry in entries:
            entry.reset()
