"""``seawall.otel``: seawall's metrics through the OpenTelemetry metrics API.

``seawall.otel.instrument()`` registers one asynchronous instrument per family of
``seawall._metrics_model`` (the model ``seawall.prometheus`` translates too) on a meter of the
given (or the global) ``MeterProvider``: counters as ``ObservableCounter``, additive gauges (items
in flight or queued, keys held) as ``ObservableUpDownCounter``, the other gauges as
``ObservableGauge``. Names are the Prometheus base names (``seawall_limiter_decisions``), so an
OpenTelemetry Collector exporting to Prometheus gives back the same ``seawall_…_total`` series
the dashboard queries. Attributes are the labels: object names, never a client key.

A collection cycle reads every live object once: the first callback of a cycle takes a snapshot
(``collect()``) and the other instruments read it. The OpenTelemetry API has no asynchronous
histogram, so a histogram family is exported as three observable counters: ``<name>_bucket``
(cumulative counts, attribute ``le``), ``<name>_sum`` and ``<name>_count``.
Needs the ``otel`` extra (``opentelemetry-api``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from seawall import __version__
from seawall._metrics_model import Family, Histogram, collect

__all__ = ["Instrumentation", "instrument"]

# Gauges that add up across processes and objects (an OpenTelemetry UpDownCounter): a name ending
# so. Others (a limit, a breaker's state) are gauges.
_ADDITIVE = ("_in_flight", "_queued", "_keys")
# Prometheus base units in names → UCUM units, which a Collector turns back into the suffix.
_UNITS = {"seconds": "s", "bytes": "By", "": ""}

Read = Callable[[Family], Iterable[Observation]]


class _Snapshot:
    """The families of one collection cycle, shared by its callbacks: an instrument asking a
    second time means a new cycle began (another export, or another reader), so it collects
    anew. One ``collect()`` per cycle whatever the number of instruments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, Family] = {}
        self._read: set[str] = set()

    def family(self, instrument: str, name: str) -> Family | None:
        with self._lock:
            if not self._families or instrument in self._read:
                self._families = {f.name: f for f in collect()}
                self._read.clear()
            self._read.add(instrument)
            return self._families.get(name)


@dataclass(frozen=True, slots=True)
class _Instrument:
    name: str
    family: str
    read: Read


def _attributes(family: Family, values: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(family.labels, values, strict=True))


def _values(family: Family) -> Iterable[Observation]:
    for values, v in family.samples:
        if not isinstance(v, Histogram):
            yield Observation(v, _attributes(family, values))


def _buckets(family: Family) -> Iterable[Observation]:
    for values, h in family.samples:
        if isinstance(h, Histogram):
            for bound, count in h.buckets:
                le = "+Inf" if bound == float("inf") else repr(bound)
                yield Observation(count, {**_attributes(family, values), "le": le})


def _sums(family: Family) -> Iterable[Observation]:
    for values, h in family.samples:
        if isinstance(h, Histogram):
            yield Observation(h.sum, _attributes(family, values))


def _counts(family: Family) -> Iterable[Observation]:
    for values, h in family.samples:
        if isinstance(h, Histogram):
            yield Observation(h.count, _attributes(family, values))


class Instrumentation:
    """The instruments :func:`instrument` registered on one meter provider. ``stop()`` makes
    them report nothing from the next collection on (the OpenTelemetry API cannot remove an
    instrument); ``instrument()`` with the same provider starts them again."""

    def __init__(self, provider: MeterProvider) -> None:
        self._active = True
        self._snapshot = _Snapshot()
        meter = provider.get_meter("seawall", __version__)
        names = []
        for family in collect():
            for inst, kind, unit in self._plan(family):
                callback = self._callback(inst)
                make = {
                    "counter": meter.create_observable_counter,
                    "updown": meter.create_observable_up_down_counter,
                    "gauge": meter.create_observable_gauge,
                }[kind]
                make(inst.name, callbacks=[callback], unit=unit, description=family.doc)
                names.append(inst.name)
        #: The names of the instruments registered.
        self.instruments: tuple[str, ...] = tuple(names)

    @staticmethod
    def _plan(family: Family) -> list[tuple[_Instrument, str, str]]:
        unit = _UNITS.get(family.unit, family.unit)
        if family.kind == "counter":
            return [(_Instrument(family.name, family.name, _values), "counter", unit)]
        if family.kind == "gauge":
            kind = "updown" if family.name.endswith(_ADDITIVE) else "gauge"
            return [(_Instrument(family.name, family.name, _values), kind, unit)]
        return [
            (_Instrument(f"{family.name}_bucket", family.name, _buckets), "counter", ""),
            (_Instrument(f"{family.name}_sum", family.name, _sums), "counter", unit),
            (_Instrument(f"{family.name}_count", family.name, _counts), "counter", ""),
        ]

    def _callback(self, inst: _Instrument) -> Callable[[CallbackOptions], Iterable[Observation]]:
        ref = weakref.ref(self)

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            me = ref()
            if me is None or not me._active:
                return []
            family = me._snapshot.family(inst.name, inst.family)
            return [] if family is None else list(inst.read(family))

        return observe

    @property
    def active(self) -> bool:
        """Whether the instruments report (until :meth:`stop`)."""
        return self._active

    def stop(self) -> None:
        """The instruments report nothing from the next collection on. Idempotent."""
        self._active = False

    def _start(self) -> None:
        self._active = True


_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[MeterProvider, Instrumentation] = (
    weakref.WeakKeyDictionary()
)
_global: Instrumentation | None = None


def instrument(meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Registers seawall's instruments on ``meter_provider`` (default: the global one,
    ``opentelemetry.metrics.get_meter_provider()``, which may be set before or after) and
    returns their handle.

    Calling it again with the same provider (or again without one) returns the same handle,
    started again if it was stopped: instruments are never registered twice, so nothing is
    counted twice."""
    global _global
    if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
        raise TypeError(
            f"meter_provider must be an opentelemetry MeterProvider or None, "
            f"got {type(meter_provider).__name__}"
        )
    with _lock:
        # The global provider is one key whether it is still the API's proxy (instruments made
        # on it move to the SDK provider set later) or that provider.
        handle = _global if meter_provider is None else _by_provider.get(meter_provider)
        if handle is not None:
            handle._start()
        elif meter_provider is None:
            handle = _global = Instrumentation(metrics.get_meter_provider())
        else:
            handle = _by_provider[meter_provider] = Instrumentation(meter_provider)
        return handle
