"""Type stubs for the native module ``seawall._seawall``."""

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Protocol, final, overload

from typing_extensions import Self

__all__ = [
    "ALGORITHMS",
    "AIMDLimit",
    "AsgiEntry",
    "BackpressureCore",
    "BreakerCore",
    "Bridge",
    "ClientRateLimiter",
    "ConcurrencyCore",
    "Decision",
    "GradientLimit",
    "HeaderSend",
    "HostLimiter",
    "HttpLimiter",
    "Limit",
    "Limiter",
    "ManualClock",
    "RedisLimiter",
    "RuleDecision",
    "RulesEngine",
    "RulesGate",
    "SlidingLogService",
    "SystemClock",
    "TokenBucket",
    "TokenBucketConfig",
    "__version__",
    "_flush_logs",
    "_reset_log_throttles",
    "get_default_clock",
    "remove_host_store",
    "set_default_clock",
]

__version__: str
ALGORITHMS: tuple[str, ...]

class _NowMethod(Protocol):
    def now(self) -> float: ...

@final
class ManualClock:
    """A clock that moves only when told to; starts at the system clock's reading."""

    def __new__(cls, start: float | None = None) -> Self: ...
    def now(self) -> float:
        """Seconds since the Unix epoch."""
    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (≥ 0)."""
    def set(self, seconds: float) -> None:
        """Set the reading to ``seconds`` since the epoch (may move backwards)."""

@final
class SystemClock:
    """The wall clock at start-up, advanced by the monotonic clock: never goes backwards."""

    def __new__(cls) -> Self: ...
    def now(self) -> float: ...

def set_default_clock(clock: ManualClock | None) -> ManualClock | None:
    """Install ``clock`` as the default clock; returns the previous one."""

def get_default_clock() -> ManualClock | None:
    """The manual clock installed as the default, if any."""

_ClockArg = ManualClock | SystemClock | _NowMethod | Any | None

@final
class TokenBucketConfig:
    """``capacity`` tokens, refilled at ``refill_rate`` per second, ``initial_tokens`` at start."""

    def __new__(cls, capacity: int, refill_rate: float, initial_tokens: int) -> Self: ...
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
    ) -> Self: ...
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
        top_keys: int = 100,
    ) -> Self: ...
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
    def top_limited(self, n: int = 10) -> list[tuple[str, int]]:
        """The client ids refused most, most first: ``(id, refusals)``, each an upper bound."""
    def top_limited_summary(self) -> dict[str, Any]: ...
    def reset_top_limited(self) -> None: ...

_Algorithm = Literal[
    "gcra",
    "token_bucket",
    "leaky_bucket",
    "fixed_window",
    "sliding_window_log",
    "sliding_window_counter",
    "sliding_log",
    "sliding_counter",
    "moving_window",
]

@final
class Limit:
    """One limit ("10/second") and the algorithm that enforces it."""

    def __new__(
        cls, limit: str, algorithm: _Algorithm | str = "gcra", burst: int | None = None
    ) -> Self: ...
    @property
    def count(self) -> int: ...
    @property
    def period(self) -> float: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def burst(self) -> int | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Decision:
    """A limiter's answer; true when allowed. Times in seconds (``inf``: never)."""

    @property
    def allowed(self) -> bool: ...
    @property
    def limited(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def window(self) -> float: ...
    @property
    def fallback(self) -> bool:
        """Whether a Redis limiter's ``on_error`` made this decision (Redis failed, or the
        breaker around it was open): no budget stands behind its numbers. False in memory."""
    def __bool__(self) -> bool: ...

_Limits = str | Limit | Sequence[str | Limit]

class Limiter:
    def __new__(
        cls,
        limits: _Limits,
        *,
        algorithm: _Algorithm | str = "gcra",
        max_keys: int = 1_000_000,
        clock: _ClockArg = None,
        top_keys: int = 100,
    ) -> Self: ...
    def hit(self, key: str, cost: int = 1) -> Decision: ...
    def hit_with(self, key: str, other: Limiter, other_key: str, cost: int = 1) -> Decision: ...
    def allow(self, key: str, cost: int = 1) -> bool: ...
    def test(self, key: str, cost: int = 1) -> Decision: ...
    def reset(self, key: str) -> bool: ...
    def set_override(
        self, key: str, limits: _Limits, *, algorithm: _Algorithm | str | None = None
    ) -> None: ...
    def clear_override(self, key: str) -> None: ...
    def cleanup(self) -> int: ...
    def key_stats(self, key: str) -> dict[str, Any] | None: ...
    def usage(self, key: str) -> list[dict[str, Any]]: ...
    def stats(self) -> dict[str, Any]: ...
    def memory_bytes(self) -> int: ...
    @property
    def limits(self) -> list[Limit]: ...
    @property
    def max_keys(self) -> int: ...
    def __len__(self) -> int: ...
    def top_limited(self, n: int = 10) -> list[tuple[str, int]]:
        """The keys refused most, most first: ``(key, refusals)``, each an upper bound."""
    def top_limited_summary(self) -> dict[str, Any]: ...
    def reset_top_limited(self) -> None: ...

class RedisLimiter:
    """Limits per key with state in Redis (see ``seawall.RedisLimiter``)."""

    def __new__(
        cls,
        limits: _Limits,
        *,
        store: str,
        algorithm: _Algorithm | str = "gcra",
        key_prefix: str = "seawall:",
        on_error: Literal["allow", "deny", "local"] | str = "allow",
        connect_timeout: float = 1.0,
        command_timeout: float = 0.25,
        log_interval: float = 60.0,
        max_local_keys: int = 100_000,
        breaker_failures: int = 3,
        breaker_recovery: float = 1.0,
        clock: _ClockArg = None,
        top_keys: int = 100,
    ) -> Self: ...
    def hit(self, key: str, cost: int = 1) -> Decision: ...
    def allow(self, key: str, cost: int = 1) -> bool: ...
    def test(self, key: str, cost: int = 1) -> Decision: ...
    def reset(self, key: str) -> bool: ...
    def _submit(
        self, bridge: Bridge, future: Any, key: str, cost: int, commit: bool
    ) -> Decision | None: ...
    def _submit_reset(self, bridge: Bridge, future: Any, key: str) -> None: ...
    def hit_with(self, key: str, other: RedisLimiter, other_key: str, cost: int = 1) -> Decision:
        """``hit`` of ``key`` here and ``other_key`` in ``other`` at once, all or nothing, in
        one script call (both on the same Redis); the binding decision."""
    def _submit_with(
        self,
        bridge: Bridge,
        future: Any,
        key: str,
        other: RedisLimiter,
        other_key: str,
        cost: int,
    ) -> Decision | None: ...
    def redis_keys(self, key: str) -> list[str]: ...
    def usage(self, key: str) -> list[dict[str, Any]]: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def limits(self) -> list[Limit]: ...
    @property
    def store(self) -> str: ...
    @property
    def on_error(self) -> str: ...
    @property
    def key_prefix(self) -> str: ...
    def top_limited(self, n: int = 10) -> list[tuple[str, int]]:
        """The keys refused most, most first: ``(key, refusals)``, each an upper bound."""
    def top_limited_summary(self) -> dict[str, Any]: ...
    def reset_top_limited(self) -> None: ...

class HostLimiter:
    """Limits per key in a shared-memory segment of this machine (``seawall.HostLimiter``)."""

    def __new__(
        cls,
        limits: _Limits,
        *,
        store: str,
        algorithm: _Algorithm | str = "gcra",
        max_keys: int = 100_000,
        clock: _ClockArg = None,
        top_keys: int = 100,
    ) -> Self: ...
    def hit(self, key: str, cost: int = 1) -> Decision: ...
    def allow(self, key: str, cost: int = 1) -> bool: ...
    def test(self, key: str, cost: int = 1) -> Decision: ...
    def reset(self, key: str) -> bool: ...
    def hit_with(self, key: str, other: HostLimiter, other_key: str, cost: int = 1) -> Decision:
        """``hit`` of ``key`` here and ``other_key`` in ``other`` at once, all or nothing."""
    def stats(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...
    @property
    def limits(self) -> list[Limit]: ...
    @property
    def store(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def path(self) -> str: ...
    def top_limited(self, n: int = 10) -> list[tuple[str, int]]:
        """The keys refused most, most first: ``(key, refusals)``, each an upper bound."""
    def top_limited_summary(self) -> dict[str, Any]: ...
    def reset_top_limited(self) -> None: ...

def remove_host_store(name: str) -> bool: ...

@final
class Bridge:
    """Carries async Redis results back to one asyncio loop (see ``seawall._redis``)."""

    def __new__(cls) -> Self: ...
    def fileno(self) -> int: ...
    def drain(self) -> int: ...

@final
class SlidingLogService:
    """Per-client sliding logs decided with the limit and window of each call (seed 004)."""

    def __new__(cls, *, max_keys: int = 1_000_000, clock: _ClockArg = None) -> Self: ...
    def check_and_record(
        self, client_id: str, limit: int, window: float
    ) -> tuple[bool, dict[str, Any]]: ...
    def reset(self, client_id: str) -> bool: ...
    def cleanup(self) -> int: ...
    def __len__(self) -> int: ...

_Rule = (
    tuple[str, _Limits]
    | tuple[str, _Limits, Sequence[str] | None]
    | tuple[str, _Limits, Sequence[str] | None, str | None]
)

#: ``(allowed, headers to add or of the refusal, refusal body, status: 200, 429 or 503)``.
_HttpResult = tuple[bool, list[tuple[bytes, bytes]], bytes | None, int]

_Receive = Callable[[], Awaitable[Any]]
_Send = Callable[[Any], Awaitable[None]]

class AsgiEntry:
    """The native base of :class:`seawall.RateLimitMiddleware`: once ``_fast_path`` is set, an
    in-memory HTTP request is decided natively and ``__call__`` returns the app's own awaitable
    (the refusal's from ``_deny``); anything else goes to the subclass's ``_call``. Called with
    the scope alone (ASGI 2, as servers call a native ``__call__``), it returns
    ``functools.partial(self, scope)``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...
    def _fast_path(self, app: Callable[..., Awaitable[None]], limiter: HttpLimiter) -> None: ...
    @overload
    def __call__(
        self, scope: Mapping[str, Any], receive: _Receive, send: _Send
    ) -> Awaitable[None]: ...
    @overload
    def __call__(
        self, scope: Mapping[str, Any]
    ) -> Callable[[_Receive, _Send], Awaitable[None]]: ...

@final
class HeaderSend:
    """An ASGI ``send`` adding an admitted request's rate-limit headers to
    ``http.response.start`` (in a new message and list; the app's are left as they are), every
    other message passed through. Made by ``HttpLimiter.check_send``, or from Python for the
    drop-in middlewares."""

    def __new__(
        cls, send: Callable[[Any], Awaitable[None]], headers: Iterable[tuple[bytes, bytes]]
    ) -> Self: ...
    def __call__(self, message: Any) -> Awaitable[None]: ...
    def send(self, message: Any) -> Awaitable[None]:
        """The same as calling the object; cheaper to call (its arguments are not packed)."""

@final
class HttpLimiter:
    """Per-request decisions for the ASGI middleware: one call per request. Arguments left
    ``None`` take the defaults of :class:`seawall.RateLimitMiddleware`."""

    def __new__(
        cls,
        *,
        limits: _Limits | None = None,
        rules: Sequence[_Rule] | None = None,
        global_limits: _Limits | None = None,
        algorithm: _Algorithm | str | None = None,
        key: str | None = None,
        trusted_proxies: Sequence[str] | None = None,
        proxy_header: str | None = None,
        ipv6_prefix: int | None = None,
        max_key_length: int | None = None,
        exempt_ips: Sequence[str] | None = None,
        exempt_clients: Sequence[str] | None = None,
        bypass_header: str | None = None,
        bypass_secret: str | None = None,
        headers: str | None = None,
        draft_version: int | None = None,
        max_keys: int | None = None,
        clock: _ClockArg = None,
        store: str | None = None,
        key_prefix: str = "seawall:",
        on_error: str = "allow",
        connect_timeout: float = 1.0,
        command_timeout: float = 0.25,
        log_interval: float = 60.0,
        breaker_failures: int = 3,
        breaker_recovery: float = 1.0,
        top_keys: int = 100,
    ) -> Self: ...
    @property
    def needs_body(self) -> bool: ...
    @property
    def learns_sessions(self) -> bool: ...
    @property
    def is_async(self) -> bool:
        """Whether decisions wait for a store (Redis): async code then uses ``_submit``."""
    @property
    def store(self) -> str:
        """The store URL, password hidden (``memory://`` in this process)."""
    def store_stats(self) -> dict[str, Any] | None:
        """What the Redis store did (``None`` in memory)."""
    def stats(self) -> dict[str, Any]:
        """``routes`` (per route budget: ``route``, ``allowed``, ``denied``, ``store_ok``,
        ``store_fallback``, ``store_error``) and ``store`` (``store_stats()``), in one call."""
    def issue_session(self, session_id: bytes) -> None: ...
    def __len__(self) -> int: ...
    def check_send(
        self, scope: Mapping[str, Any], send: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]] | _HttpResult | None:
        """``check`` for the middleware's in-memory path: ``None`` (call the app untouched),
        the send to call the app with when admitted (``send`` itself, or a :class:`HeaderSend`
        adding the headers), or the refusal as ``check`` gives it. On Redis, a ``TypeError``."""
    def check(
        self, scope: Mapping[str, Any], key: str | None = None, body: bytes | None = None
    ) -> _HttpResult | None:
        """The response for a request: ``None`` (call the app untouched) or ``(allowed,
        headers, body, status)``; on Redis it waits for Redis on this thread."""
    def _submit(
        self,
        bridge: Bridge,
        future: Any,
        scope: Mapping[str, Any],
        key: str | None = None,
        body: bytes | None = None,
    ) -> _HttpResult | Any | None: ...
    def key_for(self, scope: Mapping[str, Any], body: bytes | None = None) -> str: ...
    def reset(self, key: str) -> None: ...
    def top_limited(self, n: int = 10) -> list[tuple[str, int]]:
        """The keys refused most, most first: ``(key, refusals)``, each an upper bound."""
    def top_limited_summary(self) -> dict[str, Any]: ...
    def reset_top_limited(self) -> None: ...

@final
class BreakerCore:
    """The circuit breaker's state machine; ``seawall.CircuitBreaker`` wraps it."""

    def __new__(
        cls,
        *,
        failure_threshold: int = 5,
        success_threshold: int = 1,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        probe_timeout: float | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        window_type: str = "count",
        window_size: int = 100,
        window_duration: float = 60.0,
        minimum_calls: int = 10,
        backoff_multiplier: float = 2.0,
        max_recovery_timeout: float = 600.0,
        jitter: float = 0.1,
        clock: _ClockArg = None,
        store: str | None = None,
        store_key: str | None = None,
        sync_interval: float = 0.5,
        connect_timeout: float = 1.0,
        command_timeout: float = 0.25,
    ) -> Self: ...
    def sync(self) -> float: ...
    def _set_log_name(self, name: str) -> None: ...
    def try_acquire(self) -> int: ...
    def record(self, permit: int, outcome: int, duration: float = 0.0) -> None: ...
    @property
    def state(self) -> str: ...
    def retry_after(self) -> float: ...
    @property
    def transitions(self) -> int: ...
    def last_transition(self) -> tuple[str, str, str, float] | None: ...
    def stats(self) -> dict[str, Any]: ...
    def reset(self) -> None: ...
    def force_open(self) -> None: ...
    def force_closed(self) -> None: ...

@final
class RuleDecision:
    """A rule's decision: the limiter's verdict, the rule and its strategy."""

    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def rule(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def override_id(self) -> int | None: ...
    @property
    def delay(self) -> float: ...
    @property
    def degraded(self) -> bool: ...
    @property
    def queued(self) -> bool: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def retry_after_header(self) -> int: ...
    @property
    def _needs_follow_up(self) -> bool: ...
    def __bool__(self) -> bool: ...

class RulesEngine:
    """Named rules chosen per request (``seawall.rules``)."""

    def __new__(
        cls,
        *,
        default_algorithm: str = "token_bucket",
        default_strategy: str = "retry_after",
        max_keys: int = 100_000,
        clock: _ClockArg = None,
        store: str = "memory://",
        key_prefix: str = "seawall:rules:",
        on_error: str = "deny",
        connect_timeout: float = 1.0,
        command_timeout: float = 0.25,
        log_interval: float = 60.0,
        breaker_failures: int = 3,
        breaker_recovery: float = 1.0,
        sync_interval: float = 0.25,
    ) -> Self: ...
    @property
    def store(self) -> str: ...
    @property
    def is_async(self) -> bool: ...
    def sync(self) -> int: ...
    def decide(
        self,
        identifier: str | None = None,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        default: str | None = None,
        cost: int = 1,
        user_id: str | None = None,
    ) -> RuleDecision | None: ...
    def _submit(
        self,
        bridge: Bridge,
        future: Any,
        rule_name: str | None,
        identifier: str | None,
        endpoint: str | None,
        ip_address: str | None,
        default: str | None,
        cost: int,
        user_id: str | None = None,
    ) -> tuple[bool, RuleDecision | None]: ...
    def _submit_follow(
        self, bridge: Bridge, future: Any, decision: RuleDecision
    ) -> tuple[bool, RuleDecision | None]: ...
    def add_rule(self, rule: Mapping[str, Any]) -> None: ...
    def remove_rule(self, name: str) -> bool: ...
    def rules(self) -> list[dict[str, Any]]: ...
    def get_rule(self, name: str) -> dict[str, Any]: ...
    def select(
        self,
        *,
        identifier: str | None = None,
        endpoint: str | None = None,
        ip_address: str | None = None,
        default: str | None = None,
    ) -> str | None: ...
    def check(
        self,
        rule_name: str,
        identifier: str | None = None,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
        cost: int = 1,
        user_id: str | None = None,
    ) -> RuleDecision: ...
    def reset(
        self,
        rule_name: str,
        identifier: str | None = None,
        *,
        endpoint: str | None = None,
        ip_address: str | None = None,
    ) -> bool: ...
    def add_override(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    def remove_override(self, override_id: int, admin_id: str = "") -> bool: ...
    def check_override(
        self, user_id: str | None = None, ip_address: str | None = None
    ) -> dict[str, Any] | None: ...
    def overrides(self) -> list[dict[str, Any]]: ...
    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]: ...
    def get_metrics(self, rule_name: str) -> dict[str, Any]: ...
    def get_all_metrics(self) -> dict[str, dict[str, Any]]: ...
    def reset_metrics(self, rule_name: str | None = None) -> None: ...

class RulesGate:
    """A rules engine applied to ASGI requests (``seawall.rules``)."""

    def __new__(
        cls,
        engine: RulesEngine,
        *,
        default_rule: str | None = None,
        trusted_proxies: Sequence[str] = ...,
        proxy_header: str = "x-forwarded-for",
    ) -> Self: ...
    @property
    def engine(self) -> RulesEngine: ...
    @property
    def default_rule(self) -> str | None: ...
    @property
    def is_async(self) -> bool: ...
    def client_ip(self, scope: Mapping[str, Any]) -> str | None: ...
    def decide(
        self, scope: Mapping[str, Any], identifier: str | None = None
    ) -> RuleDecision | None: ...
    def _submit(
        self,
        bridge: Bridge,
        future: Any,
        scope: Mapping[str, Any],
        identifier: str | None = None,
    ) -> tuple[bool, RuleDecision | None]: ...

@final
class BackpressureCore:
    """The backpressure handler's state machine; ``seawall.Backpressure`` wraps it."""

    def __new__(
        cls,
        *,
        max_concurrency: int | AIMDLimit | GradientLimit,
        max_queue: int,
        max_queue_bytes: int | None,
        strategy: str,
        queue_timeout: float | None,
        order: str,
        adaptive_threshold: float,
        clock: _ClockArg = None,
    ) -> Self: ...
    def try_admit(
        self, size: int = 0
    ) -> int | tuple[int, list[int] | None] | tuple[str, float | None]: ...
    def release(self, ticket: int, outcome: int) -> list[int] | None: ...
    def cancel(self, ticket: int) -> list[int] | None: ...
    def expire(self) -> list[int]: ...
    def next_timeout(self) -> float | None: ...
    def start_ready(self) -> list[int]: ...
    def close(self) -> list[int]: ...
    def stats(self) -> dict[str, Any]: ...
    def now(self) -> float: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def queued_bytes(self) -> int: ...
    @property
    def limit(self) -> int: ...

@final
class AIMDLimit:
    """Loss-based adaptive limit settings: +``increase_by`` per success (when at least half the
    limit is in use), times ``backoff_ratio`` per dropped call or call slower than ``timeout``."""

    def __new__(
        cls,
        initial: int = 20,
        *,
        min_limit: int = 1,
        max_limit: int = 200,
        backoff_ratio: float = 0.9,
        increase_by: int = 1,
        timeout: float = 5.0,
    ) -> Self: ...
    @property
    def initial(self) -> int: ...
    @property
    def min_limit(self) -> int: ...
    @property
    def max_limit(self) -> int: ...
    @property
    def backoff_ratio(self) -> float: ...
    @property
    def increase_by(self) -> int: ...
    @property
    def timeout(self) -> float: ...

@final
class GradientLimit:
    """Delay-based adaptive limit settings (Netflix's Gradient2, with guards)."""

    def __new__(
        cls,
        initial: int = 20,
        *,
        min_limit: int = 1,
        max_limit: int = 200,
        smoothing: float = 0.2,
        rtt_tolerance: float = 1.5,
        long_window: int = 600,
        queue_size: int = 4,
    ) -> Self: ...
    @property
    def initial(self) -> int: ...
    @property
    def min_limit(self) -> int: ...
    @property
    def max_limit(self) -> int: ...
    @property
    def smoothing(self) -> float: ...
    @property
    def rtt_tolerance(self) -> float: ...
    @property
    def long_window(self) -> int: ...
    @property
    def queue_size(self) -> int: ...

@final
class ConcurrencyCore:
    """The concurrency limiter's native state (``seawall.ConcurrencyLimiter`` wraps it)."""

    def __new__(
        cls,
        limit: GradientLimit | AIMDLimit | int,
        *,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        partitions: Mapping[str, float] | None = None,
        clock: Any = None,
    ) -> Self: ...
    def try_acquire(self, partition: str | None = None) -> int:
        """A permit id, or 0 when refused."""
    def acquire(
        self, partition: str | None = None, timeout: float | None = None
    ) -> tuple[int, list[int]]:
        """``(code, expired tickets)``: code > 0 a permit, < 0 minus a queued ticket, 0 refused."""
    def release(
        self, permit: int, outcome: int, rtt: float | None = None
    ) -> tuple[list[tuple[int, int]], list[int]] | None:
        """Returns a permit; ``None`` or ``(granted [(ticket, permit)], expired tickets)``."""
    def cancel(self, ticket: int, timed_out: bool = False) -> bool:
        """Removes a queued waiter; ``False`` if it is no longer queued."""
    @property
    def limit(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...

def _flush_logs() -> None: ...
def _reset_log_throttles() -> None: ...
