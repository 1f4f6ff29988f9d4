"""Rate-limited records on ``seawall.*`` loggers, the Python side of ``src/logs.rs``.

:func:`event` writes at most one record per :data:`INTERVAL` seconds for each (logger, event,
site), so a log line written where a request is refused or a call fails does not become one
record per request under attack. Each record carries structured fields in ``extra`` (JSON log
formatters pick them up as attributes): ``event``, ``suppressed`` (records of that event held
back since the previous one) and the caller's fields, object names only (a breaker, a handler,
a rule), never a client key, IP or user.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from seawall import _seawall

#: Least seconds between two records of one (logger, event, site).
INTERVAL = 10.0
# Sites are object names: few. Beyond this many the table starts again (a record may then
# come early, never late).
_MAX_SITES = 4096

_lock = threading.Lock()
# (logger, event, site) -> [time of the last record, records held back since]
_sites: dict[tuple[str, str, str], list[float]] = {}


def event(
    logger: logging.Logger,
    level: int,
    name: str,
    msg: str,
    *args: object,
    site: str = "",
    exc_info: bool = False,
    **fields: Any,
) -> bool:
    """Logs ``msg % args`` on ``logger`` with ``extra={"event": name, "suppressed": n,
    **fields}`` unless a record of ``name`` for ``site`` was written less than
    :data:`INTERVAL` seconds ago (then counts it as held back). Whether it was written."""
    if not logger.isEnabledFor(level):
        return False
    now = time.monotonic()
    key = (logger.name, name, site)
    with _lock:
        entry = _sites.get(key)
        if entry is not None and now - entry[0] < INTERVAL:
            entry[1] += 1
            return False
        suppressed = 0 if entry is None else int(entry[1])
        if entry is None and len(_sites) >= _MAX_SITES:
            _sites.clear()
        _sites[key] = [now, 0]
    extra = {"event": name, "suppressed": suppressed, **fields}
    logger.log(level, msg, *args, exc_info=exc_info, extra=extra, stacklevel=2)
    return True


def reset() -> None:
    """Every site, Python and native, writes its next record (tests start clean)."""
    with _lock:
        _sites.clear()
    _seawall._reset_log_throttles()


def flush() -> None:
    """Hands the native records queued so far to ``logging`` now (they are otherwise handed
    over at the main thread's next bytecode boundary, or after the next Redis call)."""
    _seawall._flush_logs()
