"""Plain Python models of seawall's adaptive concurrency (src/concurrency/): the AIMD and Gradient
limit algorithms and the limiter's admission with partitions, written from their documentation
for the property tests to compare the native code against. Times are int nanoseconds; the
arithmetic is float64 in the same order as the Rust, so the limits agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WARMUP_SAMPLES = 10


@dataclass
class AimdModel:
    estimate: float = 20.0
    min_limit: int = 1
    max_limit: int = 200
    backoff_ratio: float = 0.9
    increase_by: int = 1
    timeout: int = 5_000_000_000
    last_decrease: int | None = None

    @property
    def limit(self) -> int:
        return int(self.estimate)

    def sample(self, start: int, rtt: int, in_flight: int, dropped: bool) -> int:
        if dropped or rtt > self.timeout:
            if self.last_decrease is not None and start < self.last_decrease:
                return self.limit
            self.estimate = max(self.estimate * self.backoff_ratio, float(self.min_limit))
            self.last_decrease = start + rtt
        elif in_flight * 2 >= self.limit:
            grown = self.estimate + float(self.increase_by) / self.estimate
            self.estimate = min(grown, float(self.max_limit))
        return self.limit


@dataclass
class GradientModel:
    estimate: float = 20.0
    min_limit: int = 1
    max_limit: int = 200
    smoothing: float = 0.2
    rtt_tolerance: float = 1.5
    long_window: int = 600
    queue_size: int = 4
    long_rtt: float = 0.0
    long_sum: float = 0.0
    long_count: int = 0
    last_decrease: int | None = None

    @property
    def limit(self) -> int:
        return int(self.estimate)

    def _add_long(self, rtt: float) -> None:
        if self.long_count < WARMUP_SAMPLES:
            self.long_count += 1
            self.long_sum += rtt
            self.long_rtt = self.long_sum / self.long_count
        else:
            factor = 2.0 / (float(self.long_window) + 1.0)
            self.long_rtt = self.long_rtt * (1.0 - factor) + rtt * factor

    def _smooth(self, target: float, weight: float) -> None:
        smoothed = self.estimate * (1.0 - weight) + target * weight
        self.estimate = min(max(smoothed, float(self.min_limit)), float(self.max_limit))

    def sample(self, start: int, rtt_ns: int, in_flight: int, dropped: bool) -> int:
        if dropped:
            if self.last_decrease is not None and start < self.last_decrease:
                return self.limit
            self._smooth(self.estimate * 0.5, self.smoothing)
            self.last_decrease = start + rtt_ns
            return self.limit
        rtt = float(max(rtt_ns, 1))
        app_limited = float(in_flight) * 2.0 < self.estimate
        low_load = in_flight <= self.min_limit or app_limited
        if self.long_count < WARMUP_SAMPLES or rtt <= self.long_rtt or low_load:
            self._add_long(rtt)
        long = self.long_rtt
        if long > 2.0 * rtt:
            self.long_rtt = long * 0.95
        if app_limited:
            return self.limit
        gradient = min(max(self.rtt_tolerance * long / rtt, 0.5), 1.0)
        target = self.estimate * gradient
        if gradient >= 1.0:
            target += float(self.queue_size)
        self._smooth(target, self.smoothing / max(self.estimate, 1.0))
        return self.limit


@dataclass
class Held:
    partition: str | None
    start: int
    in_flight: int


@dataclass
class LimiterModel:
    """Admission without a queue: permits up to the algorithm's limit, partitions reserved."""

    algorithm: AimdModel | GradientModel | int
    shares: dict[str, float] = field(default_factory=dict)
    held: dict[int, Held] = field(default_factory=dict)
    next_id: int = 1

    @property
    def limit(self) -> int:
        a = self.algorithm
        return a if isinstance(a, int) else a.limit

    def _held_by(self, name: str) -> int:
        return sum(1 for h in self.held.values() if h.partition == name)

    def admissible(self, partition: str | None) -> bool:
        limit, in_flight = self.limit, len(self.held)
        if in_flight >= limit:
            return False
        owed = sum(
            max(0, math.floor(float(limit) * share) - self._held_by(name))
            for name, share in self.shares.items()
            if name != partition
        )
        return limit - in_flight - 1 >= owed

    def try_acquire(self, partition: str | None, now: int) -> int | None:
        if not self.admissible(partition):
            return None
        permit = self.next_id
        self.next_id += 1
        self.held[permit] = Held(partition, now, len(self.held) + 1)
        return permit

    def release(self, permit: int, outcome: str, rtt: int | None, now: int) -> None:
        held = self.held.pop(permit, None)
        if held is None or outcome == "ignore" or isinstance(self.algorithm, int):
            return
        measured = now - held.start if rtt is None else rtt
        self.algorithm.sample(held.start, measured, held.in_flight, outcome == "dropped")
