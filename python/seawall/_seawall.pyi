"""Type stubs for the native module ``seawall._seawall``."""

from datetime import timedelta
from typing import Any, Protocol, final

__all__ = [
    "ClientRateLimiter",
    "ManualClock",
    "SystemClock",
    "TokenBucket",
    "TokenBucketConfig",
    "__version__",
    "get_default_clock",
    "set_default_clock",
]

__version__: str

class _NowMethod(Protocol):
    def now(self) -> float: ...

@final
class ManualClock:
    """A clock that moves only when told to; starts at the system clock's reading."""

    def __new__(cls, start: float | None = None) -> ManualClock: ...
    def now(self) -> float:
        """Seconds since the Unix epoch."""
    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (≥ 0)."""
    def set(self, seconds: float) -> None:
        """Set the reading to ``seconds`` since the epoch (may move backwards)."""

@final
class SystemClock:
    """The wall clock at start-up, advanced by the monotonic clock: never goes backwards."""

    def __new__(cls) -> SystemClock: ...
    def now(self) -> float: ...

def set_default_clock(clock: ManualClock | None) -> ManualClock | None:
    """Install ``clock`` as the default clock; returns the previous one."""

def get_default_clock() -> ManualClock | None:
    """The manual clock installed as the default, if any."""

_ClockArg = ManualClock | SystemClock | _NowMethod | Any | None

@final
class TokenBucketConfig:
    """``capacity`` tokens, refilled at ``refill_rate`` per second, ``initial_tokens`` at start."""

    def __new__(
        cls, capacity: int, refill_rate: float, initial_tokens: int
    ) -> TokenBucketConfig: ...
    @property
    def capacity(self) -> int: ...
    @property
    def refill_rate(self) -> float: ...
    @property
    def initial_tokens(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

class TokenBucket:
    def __new__(
        cls,
        config: TokenBucketConfig,
        client_id: str | None = None,
        *,
        clock: _ClockArg = None,
    ) -> TokenBucket: ...
    def try_consume(self, tokens: int = 1) -> bool: ...
    def peek_sync(self) -> float: ...
    def reset_sync(self) -> None: ...
    def get_stats(self) -> dict[str, Any]: ...
    @property
    def client_id(self) -> str: ...
    @property
    def config(self) -> TokenBucketConfig: ...
    @config.setter
    def config(self, config: TokenBucketConfig) -> None: ...

class ClientRateLimiter:
    def __new__(
        cls,
        default_config: TokenBucketConfig,
        cleanup_interval: timedelta | None = None,
        *,
        max_clients: int = 1_000_000,
        clock: _ClockArg = None,
    ) -> ClientRateLimiter: ...
    def try_consume(self, client_id: str, tokens: int = 1) -> bool: ...
    def check_limit_sync(self, client_id: str, tokens: int = 1) -> bool: ...
    def peek_sync(self, client_id: str) -> float: ...
    def set_client_config_sync(self, client_id: str, config: TokenBucketConfig) -> None: ...
    def get_client_stats_sync(self, client_id: str) -> dict[str, Any] | None: ...
    def get_all_stats_sync(self) -> dict[str, Any]: ...
    def reset_client_sync(self, client_id: str) -> bool: ...
    def cleanup(self) -> int:
        """Drop every bucket that is full again (lossless); returns how many."""
    def memory_bytes(self) -> int:
        """Heap bytes held for the buckets."""
    @property
    def default_config(self) -> TokenBucketConfig: ...
    @property
    def cleanup_interval(self) -> timedelta: ...
    @property
    def max_clients(self) -> int: ...
    def __len__(self) -> int: ...
