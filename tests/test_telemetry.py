"""Opt-in tracing: off (and OpenTelemetry never imported) unless asked for; when on, spans for
memory operations, adapter calls and MCP tools, recorded with the SDK's in-memory exporter, and
the trace carried from the Python client to a real ``botwire serve``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from botwire import Memory, WrongType, telemetry

from .helpers import Server, run_python


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # the suite turns the SDK off elsewhere
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable(provider)
    yield exporter
    telemetry.disable()


def test_off_unless_asked_and_nothing_of_opentelemetry_is_imported(tmp_path: Path) -> None:
    code = f"""
import sys
from botwire import Memory, telemetry
mem = Memory("quiet", "sqlite:///{tmp_path / "q.db"}")
mem.set("k", 1)
assert mem.get("k") == 1
print(telemetry.ENABLED, any(m.startswith("opentelemetry") for m in sys.modules))
"""
    assert run_python(code, OTEL_SDK_DISABLED="", OTEL_TRACES_EXPORTER="").split() == [
        "False",
        "False",
    ]
    asked = run_python(
        "from botwire import telemetry; print(telemetry.ENABLED)",
        OTEL_SDK_DISABLED="",
        OTEL_TRACES_EXPORTER="otlp",
    )
    assert asked.strip() == "True"
    none = run_python(
        "from botwire import telemetry; print(telemetry.ENABLED)",
        OTEL_SDK_DISABLED="",
        OTEL_TRACES_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
    )
    assert none.strip() == "False"  # traces off; the endpoint may be for metrics
    disabled = run_python(
        "from botwire import telemetry; print(telemetry.ENABLED)",
        OTEL_SDK_DISABLED="true",
        OTEL_TRACES_EXPORTER="otlp",
    )
    assert disabled.strip() == "False"


def test_memory_operations_make_spans_without_values(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    mem = Memory("traced", f"sqlite:///{tmp_path / 't.db'}")
    mem.set("prefs", {"secret": "do-not-record"})
    mem.get("prefs")
    mem.append("chat", "hello there")
    mem.search("hello")
    mem.delete("prefs")
    mem.set("text", "abc")
    with pytest.raises(WrongType):
        mem.incr("text")
    found = spans.get_finished_spans()
    names = [span.name for span in found]
    assert names[:5] == [
        "upsert_memory traced", "get_memory traced", "update_memory traced",
        "search_memory traced", "delete_memory traced",
    ]  # fmt: skip
    first = found[0].attributes
    assert first is not None
    assert first["gen_ai.operation.name"] == "upsert_memory"
    assert first["gen_ai.memory.store.id"] == "traced"
    assert first["gen_ai.memory.record.id"] == "prefs"
    assert all("do-not-record" not in json.dumps(dict(s.attributes or {})) for s in found)
    assert all("hello" not in json.dumps(dict(s.attributes or {})) for s in found)
    failed = found[-1]
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "WrongType"


def test_adapter_calls_and_mcp_tools_have_spans_around_their_memory_spans(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    from botwire.langchain import BotWireStore
    from botwire.tools import MemoryTools

    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = BotWireStore("adapter", url=url)
    store.mset([("a", 1)])
    MemoryTools(Memory("tools", url)).call("remember", {"key": "k", "value": "v"})
    found = {span.name: span for span in spans.get_finished_spans()}
    outer = found["botwire.langchain.store.mset"]
    inner = found["upsert_memory adapter"]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    tool = found["execute_tool remember"]
    assert (tool.attributes or {})["gen_ai.tool.name"] == "remember"
    assert found["upsert_memory tools"].parent.span_id == tool.context.span_id  # type: ignore[union-attr]


def _server_spans(log: str) -> list[dict[str, Any]]:
    """The spans a server's console exporter printed (JSON objects, one after another)."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r"^\{", log, re.M):
        try:
            value, _ = decoder.raw_decode(log, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and "context" in value:
            found.append(value)
    return found


def test_the_trace_goes_on_from_the_client_into_the_server(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    env = {"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console",
           "OTEL_SERVICE_NAME": "memory-server"}  # fmt: skip
    with Server(f"sqlite:///{tmp_path / 's.db'}", **env) as server:
        Memory("remote", server.url).set("k", "v")
        (client,) = [s for s in spans.get_finished_spans() if s.name == "upsert_memory remote"]
    assert server.log is not None
    printed = _server_spans(Path(server.log).read_text())
    trace_id = f"0x{client.context.trace_id:032x}"
    mine = [s for s in printed if s["context"]["trace_id"] == trace_id]
    request = next(s for s in mine if s["name"] == "POST /v1/batch")
    assert request["kind"] == "SpanKind.SERVER"
    assert request["parent_id"] == f"0x{client.context.span_id:016x}"
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["resource"]["attributes"]["service.name"] == "memory-server"
    batch = next(s for s in mine if s["name"] == "upsert_memory remote")
    assert batch["parent_id"] == request["context"]["span_id"]
