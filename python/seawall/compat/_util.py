"""Small helpers the compat modules share: the time a limiter's clock reads, whole seconds."""

from __future__ import annotations

import math
import time
from typing import Any

from seawall.testing import get_default_clock


def now(clock: Any) -> float:
    """Seconds since the epoch on ``clock`` as a limiter built with ``clock=clock`` reads it
    (``None``: the default clock, see :func:`seawall.testing.use_clock`), for epoch headers."""
    if clock is None:
        clock = get_default_clock()
        if clock is None:
            return time.time()
    if hasattr(clock, "now"):
        return float(clock.now())
    return float(clock())


def whole_seconds(seconds: float) -> int:
    """A wait as a ``Retry-After`` says it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else 2**31 - 1
