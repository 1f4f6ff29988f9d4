"""``seawall.Backpressure``'s argument checks and its default item size: each error names the
parameter (``TypeError`` for a wrong type, ``ValueError`` for a wrong value)."""

from __future__ import annotations

import math
import sys
from typing import Any

from seawall._args import check_int, check_optional_callable, check_optional_str
from seawall._seawall import AIMDLimit, GradientLimit

__all__ = ["ORDERS", "STRATEGIES", "checked", "default_size", "size_error"]

STRATEGIES = ("reject", "block", "drop_newest", "drop_oldest", "adaptive")
ORDERS = ("fifo", "lifo")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _bounded_int(name: str, value: Any, minimum: int) -> int:
    n = check_int(name, value, minimum)
    if n > sys.maxsize:
        raise ValueError(f"{name} must be at most {sys.maxsize}, got {n}")
    return n


def checked(
    name: Any,
    max_concurrency: Any,
    max_queue: Any,
    max_queue_bytes: Any,
    strategy: Any,
    queue_timeout: Any,
    order: Any,
    adaptive_threshold: Any,
    size_of: Any,
) -> dict[str, Any]:
    """The constructor's arguments, checked, as the native core takes them."""
    check_optional_str("name", name)
    timeout = None
    if queue_timeout is not None:
        timeout = _number("queue_timeout", queue_timeout)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(
                f"queue_timeout must be a finite number of seconds above 0 (or None), "
                f"got {queue_timeout!r}"
            )
    threshold = _number("adaptive_threshold", adaptive_threshold)
    if not 0 < threshold <= 1:
        raise ValueError(
            f"adaptive_threshold must be a fraction above 0 and at most 1, got {threshold!r}"
        )
    check_optional_callable("size_of", size_of)
    return {
        "max_concurrency": max_concurrency
        if isinstance(max_concurrency, AIMDLimit | GradientLimit)
        else _bounded_int("max_concurrency", max_concurrency, 1),
        "max_queue": _bounded_int("max_queue", max_queue, 0),
        "max_queue_bytes": None
        if max_queue_bytes is None
        else _bounded_int("max_queue_bytes", max_queue_bytes, 1),
        "strategy": _choice("strategy", strategy, STRATEGIES),
        "queue_timeout": timeout,
        "order": _choice("order", order, ORDERS),
        "adaptive_threshold": threshold,
    }


def default_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What an item weighs unless ``size_of`` says: the summed lengths of its ``bytes``,
    ``bytearray``, ``memoryview`` (in bytes) and ``str`` arguments."""
    total = 0
    for a in (*args, *kwargs.values()):
        if isinstance(a, bytes | bytearray | str):
            total += len(a)
        elif isinstance(a, memoryview):
            total += a.nbytes
    return total


def size_error(param: str, value: Any) -> Exception:
    """The error for a size that is not an int of at least 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        return TypeError(f"{param} must be an int (bytes), got {type(value).__name__}")
    return ValueError(f"{param} must be at least 0 and at most 2**64 - 1, got {value}")
