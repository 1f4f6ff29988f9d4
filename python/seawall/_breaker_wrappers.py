"""The wrappers ``@breaker`` puts around a function: generated, compiled once per shape.

For a plain function, the wrapper takes the function's own parameters and passes them on
(``def guarded(a, b=_sw_d1, *, c): ... _sw_func(a, b, c=c)``), so that a call packs no ``*args``
tuple and no ``**kwargs`` dict; anything else (callable objects, partials, ``*args`` /
``**kwargs`` functions) gets ``(*_sw_args, **_sw_kwargs)``.
One template makes every variant: sync / async, timed (slow calls) or not, timeout or not.

:func:`wrapper_factory` is what :meth:`seawall.CircuitBreaker.__call__` uses; the breaker binds its
own methods into the factory's closure.
"""

from __future__ import annotations

import asyncio
import inspect
import linecache
import threading
from collections.abc import Callable
from typing import Any, cast

from seawall._breaker_outcomes import DEFERRED, FAILURE, SUCCESS, timed_out

__all__ = ["is_async", "wrapper_factory"]


def is_async(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` makes a coroutine: an ``async def``, or an object whose
    ``__call__`` is one."""
    if inspect.iscoroutinefunction(func):
        return True
    return not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__)


class _CallShape:
    """How a wrapper takes and passes on its arguments."""

    __slots__ = ("call", "defaults", "params", "reject")

    def __init__(self, params: str, call: str, reject: str, defaults: tuple[object, ...]) -> None:
        self.params = params  # the wrapper's parameter list
        self.call = call  # the arguments of the guarded call
        self.reject = reject  # ``args, kwargs`` for the fallback
        self.defaults = defaults  # bound to ``_sw_d0``, ``_sw_d1``, ...


_GENERIC = _CallShape(
    "*_sw_args, **_sw_kwargs", "*_sw_args, **_sw_kwargs", "_sw_args, _sw_kwargs", ()
)


def _call_shape(func: Callable[..., Any]) -> _CallShape:
    """The exact shape of a plain function's parameters, or the generic one."""
    if (
        not inspect.isfunction(func)
        or hasattr(func, "__wrapped__")
        or hasattr(func, "__signature__")
    ):
        return _GENERIC
    try:
        parameters = list(inspect.signature(func, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return _GENERIC
    params: list[str] = []
    call: list[str] = []
    positional: list[str] = []
    keywords: list[str] = []
    defaults: list[object] = []
    kind = inspect.Parameter
    previous = None
    for p in parameters:
        if p.kind in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD) or p.name.startswith("_sw_"):
            return _GENERIC
        if previous is kind.POSITIONAL_ONLY and p.kind is not kind.POSITIONAL_ONLY:
            params.append("/")
        if p.kind is kind.KEYWORD_ONLY and previous is not kind.KEYWORD_ONLY:
            params.append("*")
        text = p.name
        if p.default is not p.empty:
            text += f"=_sw_d{len(defaults)}"
            defaults.append(p.default)
        params.append(text)
        if p.kind is kind.KEYWORD_ONLY:
            call.append(f"{p.name}={p.name}")
            keywords.append(f"{p.name!r}: {p.name}")
        else:
            call.append(p.name)
            positional.append(p.name)
        previous = p.kind
    if previous is kind.POSITIONAL_ONLY:
        params.append("/")
    reject = f"({''.join(f'{n}, ' for n in positional)}), {{{', '.join(keywords)}}}"
    return _CallShape(", ".join(params), ", ".join(call), reject, tuple(defaults))


def _wrapper_source(shape: _CallShape, is_async: bool, timed: bool, timeout: bool) -> str:
    """The source of ``_sw_make(...)``, which returns the wrapper (its arguments become the
    wrapper's closure variables: the fastest to read).

    An async wrapper bounds the call with ``asyncio.wait_for`` when there is a ``timeout``. A
    sync call cannot be cut off: with a ``timeout`` it is timed, and one that lasted at least
    ``timeout`` is a failure. A sync call whose result is a coroutine, a future or a generator
    is handed to ``_sw_defer`` with its permit, to be counted when its outcome is known."""
    call = f"_sw_func({shape.call})"
    measured = timed or (timeout and not is_async)
    duration = ", _sw_now() - _sw_start" if timed else ""
    if is_async:
        aw = "await "
        outcome = "_sw_classify(_sw_exc)"
        if timeout:  # the breaker's own timeout is a failure, whatever the classification says
            call = f"_sw_wait_for({call}, _sw_timeout)"
            outcome = f"{FAILURE} if _sw_timed_out(_sw_exc) else {outcome}"
        failed = f"_sw_record(_sw_permit, {outcome}{duration})"
        succeeded = f"_sw_record(_sw_permit, {SUCCESS}{duration})"
        deferred = ""
    else:
        aw = ""
        if timeout:
            failed = (
                "_sw_elapsed = _sw_now() - _sw_start\n            _sw_record(_sw_permit, "
                f"{FAILURE} if _sw_elapsed >= _sw_timeout else _sw_classify(_sw_exc), _sw_elapsed)"
            )
            succeeded = (
                "_sw_elapsed = _sw_now() - _sw_start\n        _sw_record(_sw_permit, "
                f"{FAILURE} if _sw_elapsed >= _sw_timeout else {SUCCESS}, _sw_elapsed)"
            )
        else:
            failed = f"_sw_record(_sw_permit, _sw_classify(_sw_exc){duration})"
            succeeded = f"_sw_record(_sw_permit, {SUCCESS}{duration})"
        deferred = f"""        if type(_sw_result) in _sw_deferred:
            return _sw_defer(_sw_result, _sw_permit, {"_sw_start" if measured else "0.0"})
"""
    defaults = "".join(f", _sw_d{i}" for i in range(len(shape.defaults)))
    reject = (
        """            _sw_result = _sw_reject({reject})
            if _sw_isawaitable(_sw_result):
                _sw_result = await _sw_result
            return _sw_result"""
        if is_async
        else "            return _sw_reject({reject})"
    ).format(reject=shape.reject)
    start = "        _sw_start = _sw_now()\n" if measured else ""
    return f"""\
def _sw_make(_sw_func, _sw_acquire, _sw_record, _sw_classify, _sw_reject, _sw_listeners,
             _sw_observe, _sw_admitted, _sw_defer, _sw_now, _sw_timeout{defaults}):
    {"async " if is_async else ""}def guarded({shape.params}):
        _sw_permit = _sw_acquire()
        if _sw_permit < 0:
{reject}
        if _sw_listeners:
            _sw_admitted(_sw_permit)
{start}        try:
            _sw_result = {aw}{call}
        except BaseException as _sw_exc:
            {failed}
            if _sw_listeners:
                _sw_observe()
            raise
{deferred}        {succeeded}
        if _sw_listeners:
            _sw_observe()
        return _sw_result
    return guarded
"""


_wrapper_cache: dict[str, Callable[..., Callable[..., Any]]] = {}
_wrapper_cache_lock = threading.Lock()


def _compile_wrapper(source: str) -> Callable[..., Callable[..., Any]]:
    """The ``_sw_make`` factory of ``source``, compiled once per distinct source."""
    with _wrapper_cache_lock:
        make = _wrapper_cache.get(source)
        if make is None:
            filename = f"<seawall.breaker wrapper {len(_wrapper_cache)}>"
            # Tracebacks through a wrapper show its lines.
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            namespace: dict[str, Any] = {
                "_sw_isawaitable": inspect.isawaitable,
                "_sw_wait_for": asyncio.wait_for,
                "_sw_timed_out": timed_out,
                "_sw_deferred": DEFERRED,
            }
            exec(compile(source, filename, "exec"), namespace)
            make = cast(Callable[..., Callable[..., Any]], namespace["_sw_make"])
            _wrapper_cache[source] = make
    return make


def wrapper_factory(
    func: Callable[..., Any], is_async: bool, timed: bool, timeout: bool
) -> tuple[Callable[..., Callable[..., Any]], tuple[object, ...]]:
    """``(make, defaults)``: ``make(func, acquire, record, classify, reject, listeners, observe,
    admitted, defer, now, timeout, *defaults)`` returns the wrapper of ``func`` (see
    :func:`_wrapper_source` for what each is)."""
    shape = _call_shape(func)
    return _compile_wrapper(_wrapper_source(shape, is_async, timed, timeout)), shape.defaults
