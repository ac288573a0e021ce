"""Opt-in OpenTelemetry tracing (the ``otel`` extra).

Off unless turned on, and then nothing of OpenTelemetry is imported and nothing is done: each
instrumented place checks one flag. It is on when the standard variables ask for traces
(``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; never with ``OTEL_SDK_DISABLED=true``), or when a
program calls :func:`enable` (having set up its own tracer provider).

Spans follow the GenAI memory conventions where they apply: a client span per batch a memory
sends, named ``"<operation> <namespace>"`` (``gen_ai.operation.name``: ``get_memory``,
``upsert_memory``, ``update_memory``, ``delete_memory``, ``search_memory``), with the
namespace as ``gen_ai.memory.store.id`` and a single key as ``gen_ai.memory.record.id``; a span
per adapter call and per MCP tool; and on ``botwire serve`` a server span per request, in the
trace the client's ``traceparent`` header carries. Values and search words are never recorded.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_TRACE_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporters() -> list[str]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` names (comma-separated; default ``otlp``)."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "")
    return [name.strip().lower() for name in raw.split(",") if name.strip()] or ["otlp"]


def _asked_by_environment() -> bool:
    """Whether the standard variables ask for traces, and OpenTelemetry is there to make them
    (without it, tracing stays off rather than break every call)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if exporters() == ["none"]:
        return False
    asked = bool(os.environ.get("OTEL_TRACES_EXPORTER")) or any(
        os.environ.get(name) for name in _TRACE_VARIABLES
    )
    if not asked:
        return False
    import importlib.util

    return importlib.util.find_spec("opentelemetry") is not None


ENABLED = _asked_by_environment()
"""Whether botwire traces (read once, at import; :func:`enable` turns it on later)."""


def enable(tracer_provider: Any = None) -> None:
    """Trace botwire's operations, whatever the environment says: into ``tracer_provider``,
    or the one the program has set up (``opentelemetry.trace.set_tracer_provider``).

    Raises:
        MissingExtra: OpenTelemetry is not installed (``pip install 'botwire[otel]'``).
    """
    global ENABLED, _provider
    _provider = tracer_provider
    _tracer.cache_clear()
    _tracer()  # fails now, with the install hint, if OpenTelemetry is missing
    ENABLED = True


_provider: Any = None


def disable() -> None:
    """Stop tracing."""
    global ENABLED
    ENABLED = False


@functools.lru_cache(maxsize=1)
def _tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        from botwire.errors import MissingExtra

        raise MissingExtra("tracing needs OpenTelemetry", "otel") from exc
    from botwire._version import __version__

    if _provider is not None:
        return _provider.get_tracer("botwire", __version__)
    return trace.get_tracer("botwire", __version__)


_OPERATIONS = {
    "Put": "upsert_memory", "Restore": "upsert_memory", "AddChange": "upsert_memory",
    "Append": "update_memory", "Incr": "update_memory", "Expire": "update_memory",
    "Delete": "delete_memory", "Clear": "delete_memory", "Search": "search_memory",
}  # fmt: skip
"""The GenAI memory operation each op (by its class) is; every other op reads
(``get_memory``)."""


def operation(op_names: Sequence[str]) -> str:
    """The GenAI memory operation a batch is: its writing kind, if it writes."""
    kinds = {_OPERATIONS.get(name, "get_memory") for name in op_names}
    for kind in ("delete_memory", "upsert_memory", "update_memory", "search_memory"):
        if kind in kinds:
            return kind
    return "get_memory"


def batch_attributes(ops: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """A batch's span name and attributes (never a value or a search's words)."""
    names = [type(op).__name__ for op in ops]
    kind = operation(names)
    spaces = {getattr(op, "ns", None) for op in ops} - {None}
    keys = {getattr(op, "key", None) for op in ops} - {None}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": kind,
        "gen_ai.provider.name": "botwire",
        "botwire.ops": names if len(names) <= 32 else [*names[:32], "..."],
        "botwire.op_count": len(names),
    }
    namespace = next(iter(spaces)) if len(spaces) == 1 else None
    if namespace is not None:
        attributes["gen_ai.memory.store.id"] = namespace
    if len(keys) == 1:
        attributes["gen_ai.memory.record.id"] = next(iter(keys))
    return (f"{kind} {namespace}" if namespace else kind), attributes


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any] | None = None, kind: str = "INTERNAL",
         context: Any = None) -> Iterator[Any]:  # fmt: skip
    """A span of botwire's tracer (only call where :data:`ENABLED`); an error escaping it is
    recorded on it, with ``error.type``."""
    from opentelemetry import trace

    with _tracer().start_as_current_span(
        name, context=context, kind=getattr(trace.SpanKind, kind), attributes=attributes,
        record_exception=True, set_status_on_exception=True,
    ) as current:  # fmt: skip
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            raise


def client_span(ops: Sequence[Any]) -> contextlib.AbstractContextManager[Any]:
    """The span of one batch a memory sends."""
    name, attributes = batch_attributes(ops)
    return span(name, attributes, "CLIENT")


def trace_headers() -> dict[str, str] | None:
    """The ``traceparent`` (and ``tracestate``) of the current span, for a request to a
    server; ``None`` when tracing is off."""
    if not ENABLED:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def traced(name: str) -> Callable[[F], F]:
    """Decorate an adapter's method: a span named ``name`` around each call (sync or async)
    while tracing is on; the bare call while it is off."""

    def wrap(function: F) -> F:
        import inspect

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                if not ENABLED:
                    return await function(*args, **kwargs)
                with span(name, {"botwire.adapter.call": name}):
                    return await function(*args, **kwargs)

            return acall  # type: ignore[return-value]

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not ENABLED:
                return function(*args, **kwargs)
            with span(name, {"botwire.adapter.call": name}):
                return function(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
