"""The backpressure handler's settings (3.4's dataclasses, fields exactly as listed).

Kept apart so that ``resilience_config`` can build configs without the handler;
``backpressure_handler`` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["BackpressureConfig", "BackpressureStrategy"]


class BackpressureStrategy(str, Enum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"
    ADAPTIVE = "adaptive"


@dataclass
class BackpressureConfig:
    """Bounds of one handler (B14): ``max_queue_size`` waiting items, ``max_memory_mb`` MiB held
    by admitted items, ``max_concurrency`` running at once; ``size_of(args, kwargs)`` estimates
    an item's bytes (default: the summed ``len()`` of its bytes-like and ``str`` arguments)."""

    max_queue_size: int = 1000
    max_memory_mb: int = 100
    strategy: BackpressureStrategy = BackpressureStrategy.ADAPTIVE
    timeout_seconds: float = 30.0
    warning_threshold: float = 0.8
    adaptive_threshold: float = 0.9
    max_concurrency: int = 10
    size_of: Callable[[tuple[Any, ...], dict[str, Any]], int] | None = None
