"""The backpressure handler's statistics, its error, and the checks of its config (3.4, B14).

Private to ``seawall.compat.voicehive``; ``backpressure_handler`` re-exports the public names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from seawall._args import check_int, check_optional_callable
from seawall.compat.voicehive._backpressure_config import BackpressureConfig, BackpressureStrategy
from seawall.errors import Overloaded

__all__ = ["BackpressureDroppedError", "BackpressureStats", "check_config"]


@dataclass
class BackpressureStats:
    """One handler's counts. ``current_queue_size``: items waiting for a slot (running ones are
    ``in_flight``); ``current_memory_mb``: the estimated MiB of every admitted, unfinished item
    (waiting or running); ``average_processing_time``: seconds, over the items processed."""

    current_queue_size: int
    max_queue_size: int
    current_memory_mb: float
    max_memory_mb: float
    total_processed: int
    total_dropped: int
    total_blocked: int
    average_processing_time: float
    strategy: BackpressureStrategy
    in_flight: int = 0
    total_failed: int = 0

    def model_dump(self, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """A dict, ``strategy`` as its value (e.g. ``"drop_oldest"``); ``mode`` is accepted for
        pydantic's signature (every field is JSON already)."""
        out = dataclasses.asdict(self)
        out["strategy"] = self.strategy.value
        return out

    def dict(self) -> dict[str, Any]:
        """``model_dump()`` (pydantic v1's name, which the service's router called)."""
        return self.model_dump()


class BackpressureDroppedError(Overloaded):
    """An item a handler dropped (strategy, shutdown): its task ends with this error, and a call
    through ``with_backpressure`` that was refused raises it. ``reason`` says why (``"dropped"``,
    ``"memory"``, ``"closed"``, ...); catchable as :class:`seawall.Overloaded`."""

    def __init__(self, name: str | None, reason: str = "dropped") -> None:
        super().__init__(reason, None, name)


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be above 0 and at most 1, got {value!r}")


def check_config(config: Any) -> BackpressureConfig:
    """``config`` if its fields are usable; else a ``TypeError`` / ``ValueError`` naming the
    field (the service took anything and failed later)."""
    if not isinstance(config, BackpressureConfig):
        raise TypeError(f"config must be a BackpressureConfig, got {type(config).__name__}")
    check_int("max_queue_size", config.max_queue_size, 1)
    check_int("max_concurrency", config.max_concurrency, 1)
    mb = config.max_memory_mb
    if isinstance(mb, bool) or not isinstance(mb, int | float):
        raise TypeError(f"max_memory_mb must be a number, got {type(mb).__name__}")
    if not (math.isfinite(mb) and mb > 0):
        raise ValueError(f"max_memory_mb must be a finite number above 0, got {mb!r}")
    t = config.timeout_seconds
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise TypeError(f"timeout_seconds must be a number, got {type(t).__name__}")
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"timeout_seconds must be a finite number above 0, got {t!r}")
    _fraction("warning_threshold", config.warning_threshold)
    _fraction("adaptive_threshold", config.adaptive_threshold)
    try:
        BackpressureStrategy(config.strategy)
    except ValueError:
        raise ValueError(
            f"strategy must be a BackpressureStrategy, got {config.strategy!r}"
        ) from None
    check_optional_callable("size_of", config.size_of)
    return config
