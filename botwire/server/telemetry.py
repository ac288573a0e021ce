"""Tracing on ``botwire serve`` (:mod:`botwire.telemetry`): a server span per request, in the
trace of the client's ``traceparent``, and a span per store batch inside it. Set up only when
tracing is on; the server then exports as the standard variables say (``OTEL_TRACES_EXPORTER``:
``otlp``, the default, or ``console``; ``OTEL_SERVICE_NAME``, default ``botwire``), unless the
program running it has set up OpenTelemetry itself."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from botwire import telemetry
from botwire.errors import InvalidRequest, MissingExtra
from botwire.server.context import ASGIApp, Receive, Send


def setup_tracing() -> Any:
    """Export spans as the environment says, where no tracer provider is set yet; return the
    provider made (to flush at shutdown), or ``None``."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise MissingExtra("tracing needs OpenTelemetry's SDK", "otel") from exc
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None  # the program set one up
    provider = TracerProvider(resource=Resource.create({"service.name": _service_name()}))
    for name in telemetry.exporters():
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                raise MissingExtra("exporting spans over OTLP needs its exporter", "otel") from exc
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name != "none":
            raise InvalidRequest(
                f"OTEL_TRACES_EXPORTER names {name!r}: botwire serve exports otlp or console"
            )
    trace.set_tracer_provider(provider)
    return provider


def _service_name() -> str:
    return os.environ.get("OTEL_SERVICE_NAME") or "botwire"


class TraceRequests:
    """A server span around each HTTP request, continuing the trace its headers carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not telemetry.ENABLED:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = propagate.extract(carrier)
        method = scope.get("method", "")
        attributes = {"http.request.method": method, "url.path": scope.get("path", "")}
        with telemetry.span(method, attributes, "SERVER", context=parent) as current:

            async def send_status(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    current.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
