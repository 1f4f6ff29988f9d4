"""Time as seawall reports it to people: epoch seconds on a limiter's clock, waits in whole seconds.

The one home of both conversions, for the exceptions, the MCP refusals and the drop-in modules.
"""

from __future__ import annotations

import math
import time
from typing import Any

from seawall._seawall import get_default_clock

__all__ = ["NEVER_SECONDS", "now", "whole_seconds"]

#: What a wait that never ends reads as in whole seconds (the largest ``Retry-After`` an int32
#: holds, which every HTTP client parses).
NEVER_SECONDS = 2**31 - 1


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
    """A wait as a ``Retry-After`` says it: whole seconds, rounded up, at least 1;
    :data:`NEVER_SECONDS` for a wait that never ends (``inf``) or is not a number."""
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else NEVER_SECONDS
