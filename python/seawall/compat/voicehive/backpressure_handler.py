"""Drop-in for the VoiceHive service's ``backpressure_handler`` module (seed 003, 3.4, B14).

On :class:`seawall.Backpressure`: a handler runs at most ``max_concurrency`` items, the others
wait (at most ``max_queue_size``, oldest first) and the strategy handles the rest; memory held
is the estimated bytes of every admitted, unfinished item (waiting or running), at most
``max_memory_mb`` MiB. Fixed against the service (defect 15): items wait for a slot instead of
all starting at once, DROP_OLDEST really fails waiting items, memory is the items' own size (not
the process RSS), BLOCK waits for room without polling, duplicate ``task_id`` values all run,
and nothing is swallowed: every item ends processed, failed, dropped or blocked, counted once.
See docs/drop-ins/voicehive-manager.md.
"""

from __future__ import annotations

from seawall.compat.voicehive._backpressure_config import BackpressureConfig, BackpressureStrategy
from seawall.compat.voicehive._backpressure_core import BackpressureHandler
from seawall.compat.voicehive._backpressure_manager import BackpressureManager, with_backpressure
from seawall.compat.voicehive._backpressure_types import BackpressureDroppedError, BackpressureStats

__all__ = [
    "BackpressureConfig",
    "BackpressureDroppedError",
    "BackpressureHandler",
    "BackpressureManager",
    "BackpressureStats",
    "BackpressureStrategy",
    "with_backpressure",
]
