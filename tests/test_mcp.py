"""The MCP server (botwire.mcp) driven by the MCP SDK's own client: in process, as a real
``botwire mcp`` stdio subprocess, and at ``/mcp/{namespace}`` on a live ``botwire serve``."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_client_server_memory_streams

from botwire.mcp._compat import McpError

try:  # the HTTP client the SDK's transport takes: httpx2 on mcp 2.x, httpx on 1.x
    import httpx2 as mcp_httpx
except ImportError:
    mcp_httpx = httpx  # type: ignore[no-redef]

from botwire import Memory
from botwire.backends import create_backend
from botwire.mcp import Served, create_server, resource_uri
from botwire.server.auth import create_token
from botwire.tools import SPECS, MemoryTools

from .conftest import Store
from .helpers import Server, child_env, run_python

ALL_TOOLS = [
    "remember", "recall", "list_memory", "forget", "search_memory", "append_note", "read_memory"
]  # fmt: skip


@asynccontextmanager
async def session(
    store: Store, namespace: str = "claude", **options: Any
) -> AsyncIterator[ClientSession]:
    served = Served(store.backend, namespace, options.pop("read_only", False))
    server = create_server(lambda: served, **options)
    async with (
        create_client_server_memory_streams() as (client_streams, server_streams),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(server.run, *server_streams, server.create_initialization_options())
        async with ClientSession(*client_streams) as client:
            await client.initialize()
            yield client
        tg.cancel_scope.cancel()


def field(model: Any, name: str) -> Any:
    """A field by its wire name: mcp 1.x models have camelCase attributes, 2.x snake_case."""
    if hasattr(model, name):
        return getattr(model, name)
    return getattr(model, re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower())


def capabilities(client: ClientSession) -> Any:
    get = getattr(client, "get_server_capabilities", None)  # 1.x; 2.x: a property
    return get() if get is not None else client.server_capabilities


def text(result: types.CallToolResult) -> str:
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    return content.text


def resource_text(result: types.ReadResourceResult) -> tuple[str, str | None]:
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents)
    return content.text, field(content, "mimeType")


# -- in process --------------------------------------------------------------------------------


async def test_tools_are_listed_with_schemas_a_model_can_follow(store: Store) -> None:
    async with session(store) as client:
        listed = (await client.list_tools()).tools
        init = capabilities(client)
    assert init is not None and init.tools is not None and init.resources is not None
    assert [tool.name for tool in listed] == ALL_TOOLS
    by_name = {tool.name: tool for tool in listed}
    for spec in SPECS:
        tool = by_name[spec.name]
        assert tool.description == spec.description
        assert field(tool, "inputSchema")["type"] == "object"
        assert set(field(tool, "inputSchema")["properties"]) == set(spec.arguments)
        for name, arg in spec.arguments.items():
            assert field(tool, "inputSchema")["properties"][name]["description"] == arg.description
        assert tool.annotations is not None
        assert field(tool.annotations, "readOnlyHint") is (not spec.writes)
    assert field(by_name["remember"], "inputSchema")["required"] == ["key", "value"]
    assert field(by_name["append_note"], "inputSchema")["required"] == ["key", "text"]
    limit = field(by_name["search_memory"], "inputSchema")["properties"]["limit"]
    assert (limit["type"], limit["default"], limit["minimum"], limit["maximum"]) == (
        "integer", 5, 1, 20
    )  # fmt: skip
    assert "required" not in field(by_name["list_memory"], "inputSchema")
    assert by_name["forget"].annotations is not None
    assert field(by_name["forget"].annotations, "destructiveHint") is True


async def test_each_tool_answers_as_the_crewai_tools_do(store: Store) -> None:
    """The MCP results are the words of botwire.tools, call for call."""
    twin = MemoryTools(store.memory("twin"))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("remember", {"key": "budget", "value": {"amount": 5000, "currency": "EUR"}}),
        ("remember", {"key": "city", "value": "Lisbon in May"}),
        ("recall", {"key": "budget"}),
        ("recall", {"key": "nope"}),
        ("append_note", {"key": "log", "text": "booked the Lisbon flights"}),
        ("append_note", {"key": "log", "text": "hotel still open"}),
        ("list_memory", {}),
        ("list_memory", {"prefix": "b"}),
        ("search_memory", {"query": "what about Lisbon?", "limit": 1}),
        ("search_memory", {"query": "hotel"}),
        ("forget", {"key": "city"}),
        ("forget", {"key": "city"}),
    ]
    async with session(store) as client:
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert field(result, "isError") is False
            assert text(result) == twin.call(name, arguments), name
    memory = store.memory("claude")
    assert memory.keys() == ["budget", "log"]
    assert memory.get("log") == ["booked the Lisbon flights", "hotel still open"]
    assert memory.get("budget") == {"amount": 5000, "currency": "EUR"}


async def test_every_tool_declares_an_output_schema_its_answers_fit(store: Store) -> None:
    """Structured content beside the text, valid against the tool's outputSchema, for every
    tool (a refusal is an error result, with text only)."""
    import jsonschema

    namespace = "claude-structured"
    async with session(store, namespace) as client:
        schemas = {
            tool.name: field(tool, "outputSchema") for tool in (await client.list_tools()).tools
        }
        assert sorted(schemas) == sorted(ALL_TOOLS) and all(schemas.values())
        calls = [
            ("remember", {"key": "city", "value": json.dumps({"name": "Lisbon"}), "as_json": True}),
            ("append_note", {"key": "log", "text": "moved to Lisbon"}),
            ("recall", {"key": "city"}),
            ("recall", {"key": "nowhere"}),
            ("list_memory", {}),
            ("search_memory", {"query": "Lisbon"}),
            ("search_memory", {"query": "zebra"}),
            ("read_memory", {}),
            ("forget", {"key": "city"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert not field(result, "isError"), (name, result)
            data = field(result, "structuredContent")
            jsonschema.validate(data, schemas[name])
            if name == "recall" and arguments["key"] == "city":
                assert data == {"key": "city", "found": True, "value": {"name": "Lisbon"}}
        assert data == {"key": "city", "forgot": True}
        refused = await client.call_tool("remember", {"key": "", "value": "x"})
        assert field(refused, "isError") and field(refused, "structuredContent") is None


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("remember", {"key": "", "value": "x"}, "key must not be empty"),
        ("remember", {"key": "a\nb", "value": "x"}, "control character"),
        ("append_note", {"key": "log\x00", "text": "x"}, "control character"),
        ("remember", {"key": "big", "value": "x" * 300}, "the value is too long"),
        ("append_note", {"key": "big", "text": "x" * 300}, "the value is too long"),
        ("remember", {"key": 7, "value": "x"}, "key: Input should be a valid string"),
        ("remember", {"key": "k"}, "value: Field required"),
        ("append_note", {"key": "k", "text": " "}, "the note is empty"),
        ("search_memory", {"query": ""}, "the query is empty"),
        ("search_memory", {"query": "x", "limit": 0}, "greater than or equal to 1"),
        ("drop_everything", {}, "there is no tool 'drop_everything' here"),
    ],
)
async def test_bad_input_from_a_model_is_an_error_result_and_writes_nothing(
    store: Store, name: str, arguments: dict[str, Any], problem: str
) -> None:
    async with session(store, max_value_bytes=200) as client:
        result = await client.call_tool(name, arguments)
        assert field(result, "isError") is True
        assert problem in text(result)
        after = await client.call_tool("list_memory", {})  # the session goes on
        assert text(after) == "the memory is empty"
    assert store.memory("claude").keys() == []


@pytest.mark.parametrize("query", ['budget" OR (*', "budget AND -x NEAR/2", "budget:* ^ {}"])
async def test_a_query_with_search_syntax_is_plain_text(store: Store, query: str) -> None:
    store.memory("claude").set("budget", "5000 EUR")
    async with session(store) as client:
        result = await client.call_tool("search_memory", {"query": query})
    assert field(result, "isError") is False
    assert text(result).splitlines()[1:] == ["- 'budget' = 5000 EUR  (matched: budget)"]
    assert store.memory("claude").keys() == ["budget"]


async def test_read_only_offers_and_runs_only_the_reading_tools(store: Store) -> None:
    store.memory("claude").set("budget", 5000)
    async with session(store, read_only=True) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == ["recall", "list_memory", "search_memory", "read_memory"]
        for name in ("remember", "forget", "append_note"):
            refused = await client.call_tool(name, {"key": "budget", "value": 1, "text": "x"})
            assert field(refused, "isError") is True and "there is no tool" in text(refused)
        assert text(await client.call_tool("recall", {"key": "budget"})) == "'budget' = 5000"
    assert store.memory("claude").get("budget") == 5000


async def test_resources_reach_the_served_namespace_only(store: Store) -> None:
    """``botwire mcp --namespace claude --read-only`` must not read another namespace."""
    store.memory("private-hr").set("salaries", {"ana": 100})
    store.memory("claude").set("note", "hi")
    async with session(store, "claude", read_only=True) as client:
        for uri in ("botwire://private-hr/salaries", "botwire://private-hr"):
            with pytest.raises(McpError, match="serves the namespace 'claude' only"):
                await client.read_resource(uri)
        assert resource_text(await client.read_resource("botwire://claude/note"))[0] == "hi"
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
    assert listed == ["botwire://claude", "botwire://claude/note"]


def test_the_stdio_server_reads_no_other_namespace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hr.db'}"
    Memory("private-hr", url).set("salaries", {"ana": 100})
    out = run_python(
        f"""
        import anyio, sys
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        from botwire.mcp._compat import McpError

        async def main():
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "botwire", "mcp", "--namespace", "claude", "--read-only",
                      "--url", {url!r}],
            )
            async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                try:
                    await s.read_resource("botwire://private-hr/salaries")
                    print("read it")
                except McpError as exc:
                    print("refused:", exc)

        anyio.run(main)
        """
    )
    assert "refused: this server serves the namespace 'claude' only" in out, out


async def test_resources_read_values_and_list_keys(store: Store) -> None:
    memory = store.memory("claude")
    memory.set_many({"budget": {"amount": 5000}, "name": "Ana", "client:acme/contact": "Bob"})
    store.memory("other").set("x", 1)
    async with session(store) as client:
        listed = (await client.list_resources()).resources
        templates = field(await client.list_resource_templates(), "resourceTemplates")
        value = await client.read_resource("botwire://claude/budget")
        name = await client.read_resource(resource_uri("claude", "name"))
        odd = await client.read_resource(resource_uri("claude", "client:acme/contact"))
        listing = await client.read_resource("botwire://claude")
        with pytest.raises(McpError, match="no memory under 'missing' in 'claude'"):
            await client.read_resource("botwire://claude/missing")
        with pytest.raises(McpError, match=r"botwire://\{namespace\}/\{key\}"):
            await client.read_resource("file:///etc/passwd")
        with pytest.raises(McpError, match="control character"):
            await client.read_resource("botwire://claude/a%0Ab")
    assert [str(r.uri) for r in listed] == [
        "botwire://claude",
        "botwire://claude/budget",
        "botwire://claude/client%3Aacme%2Fcontact",
        "botwire://claude/name",
    ]
    assert [r.name for r in listed[1:]] == ["budget", "client:acme/contact", "name"]
    assert [field(t, "uriTemplate") for t in templates] == [
        "botwire://claude/{key}",
        "botwire://claude",
    ]
    assert resource_text(value) == ('{"amount": 5000}', "application/json")
    assert resource_text(name) == ("Ana", "text/plain")
    assert resource_text(odd) == ("Bob", "text/plain")
    keys, mime = resource_text(listing)
    assert mime == "application/json"
    assert json.loads(keys) == {
        "namespace": "claude", "keys": ["budget", "client:acme/contact", "name"], "more": False
    }  # fmt: skip


async def test_the_resource_list_comes_a_page_at_a_time(store: Store) -> None:
    store.memory("claude").set_many({f"k{n:03}": n for n in range(250)})
    seen: list[str] = []
    pages = 0
    async with session(store) as client:
        cursor = None
        while True:
            page = await client.list_resources(
                params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
            )
            seen += [str(r.uri) for r in page.resources]
            pages += 1
            if field(page, "nextCursor") is None:
                break
            cursor = field(page, "nextCursor")
    assert pages == 3
    assert seen == ["botwire://claude"] + [f"botwire://claude/k{n:03}" for n in range(250)]


# -- botwire mcp over stdio ----------------------------------------------------------------------


@asynccontextmanager
async def stdio_session(
    db: str, *args: str
) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    """``botwire mcp --url db *args`` as a subprocess, driven by the SDK's stdio client."""
    command = StdioServerParameters(
        command=sys.executable,
        args=["-m", "botwire.cli", "mcp", "--url", db, *args],
        env=child_env(),
    )
    async with stdio_client(command) as streams, ClientSession(*streams) as client:
        yield client, await client.initialize()


@pytest.mark.slow
@pytest.mark.parametrize("client", ["claude-desktop", "claude-code"])
async def test_the_printed_config_starts_the_server_from_a_desktop_apps_path(
    tmp_path: Path, client: str
) -> None:
    """A desktop app starts the command with its own bare PATH, no virtual environment on it:
    the configuration names this Python by its absolute path, and the server it starts works."""
    import shlex
    import subprocess

    db = f"sqlite:///{tmp_path / 'desktop.db'}"
    printed = subprocess.run(
        [sys.executable, "-m", "botwire", "mcp", "--url", db, "--namespace", "desk",
         "--print-config", client],
        capture_output=True, text=True, check=True, env=child_env(),
    ).stdout  # fmt: skip
    if client == "claude-desktop":
        entry = json.loads(printed)["mcpServers"]["botwire"]
        command, args = entry["command"], entry["args"]
    else:
        words = shlex.split(printed)
        assert words[:4] == ["claude", "mcp", "add", "botwire"]
        end = words.index("--")
        command, args = words[end + 1], words[end + 2 :]
    assert Path(command).is_absolute() and Path(command).exists()
    desktop = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    server = StdioServerParameters(command=command, args=args, env=desktop)
    async with stdio_client(server) as streams, ClientSession(*streams) as session:
        await session.initialize()
        stored = await session.call_tool("remember", {"key": "editor", "value": "vim"})
        assert text(stored) == "stored 'editor'"
    assert Memory("desk", db).get("editor") == "vim"


def test_the_printed_config_carries_the_shells_store_and_token(tmp_path: Path) -> None:
    """A desktop app sees neither this shell's environment nor its working directory."""
    import subprocess

    env = child_env(BOTWIRE_URL="sqlite:///relative/memory.db", BOTWIRE_TOKEN="bw_secret")

    def printed(client: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "botwire", "mcp", "--print-config", client],
            capture_output=True, text=True, check=True, env=env, cwd=tmp_path,
        ).stdout  # fmt: skip

    entry = json.loads(printed("claude-desktop"))["mcpServers"]["botwire"]
    absolute = f"sqlite:///{tmp_path / 'relative' / 'memory.db'}"
    assert entry["args"][-2:] == ["--url", absolute]
    assert entry["env"] == {"BOTWIRE_TOKEN": "bw_secret"}
    assert f"-e BOTWIRE_TOKEN=bw_secret -- {sys.executable}" in printed("claude-code")


@pytest.mark.slow
async def test_botwire_mcp_remembers_across_server_processes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'claude.db'}"
    async with stdio_session(db, "--namespace", "claude") as (client, info):
        assert field(info, "serverInfo").name == "botwire"
        assert info.instructions is not None and "Long-term memory" in info.instructions
        stored = await client.call_tool("remember", {"key": "editor", "value": "vim"})
        assert text(stored) == "stored 'editor'"
        await client.call_tool("append_note", {"key": "log", "text": "prefers short answers"})
        await client.call_tool("remember", {"key": "language", "value": "The user prefers Python"})
    async with stdio_session(db, "--namespace", "claude", "--read-only") as (client, _):
        assert text(await client.call_tool("recall", {"key": "editor"})) == "'editor' = vim"
        found = await client.call_tool("search_memory", {"query": "short answers"})
        assert text(found).endswith("- 'log'[0] = prefers short answers  (matched: short, answers)")
        # a question that shares no word with any memory: the model sees the newest ones
        found = await client.call_tool("search_memory", {"query": "What should I learn next?"})
        assert "- 'language' = The user prefers Python" in text(found).splitlines()
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert "remember" not in listed
    assert Memory("claude", db).get("editor") == "vim"


def test_botwire_mcp_refuses_a_bad_namespace_before_it_serves(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    out = run_python(
        f"""
        import subprocess, sys
        done = subprocess.run(
            [sys.executable, "-m", "botwire.cli", "mcp", "--url", {db!r}, "--namespace", "a/b"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        print(done.returncode, done.stdout == "", done.stderr.strip())
        """
    )
    assert out.strip() == "1 True botwire: namespace 'a/b' must not contain '/'"


# -- /mcp in botwire serve ---------------------------------------------------------------------


@asynccontextmanager
async def remote(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        mcp_httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as streams,  # 1.x: 3 items, 2.x: 2
        ClientSession(streams[0], streams[1]) as client,
    ):
        await client.initialize()
        yield client


async def refused_status(url: str, token: str | None) -> int:
    """The HTTP status that stopped the SDK's client from connecting."""
    try:
        async with remote(url, token):
            pass
    except Exception as exc:
        errors: list[BaseException] = [exc]
        while errors:
            error = errors.pop()
            if isinstance(error, (httpx.HTTPStatusError, mcp_httpx.HTTPStatusError)):
                return error.response.status_code
            if isinstance(error, McpError):  # 2.x: the status is not kept; ask again over HTTP
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                hello = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
                accept = {"Accept": "application/json, text/event-stream"}
                async with httpx.AsyncClient() as http:
                    answer = await http.post(url, headers={**headers, **accept}, json=hello)
                return answer.status_code
            errors += getattr(error, "exceptions", ())
        raise
    raise AssertionError(f"{url} let the client in")


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """A live server whose store requires tokens: one for team-a, one read-only for team-b."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    backend = create_backend(db)
    tokens = {
        "a": create_token(backend, "team-a", ["team-a"]),
        "b-read": create_token(backend, "team-b-reader", ["team-b"], read_only=True),
        "all": create_token(backend, "admin", ["*"]),
    }
    backend.close()
    with Server(db, "--quota-writes-per-day", "3") as server:
        yield server, tokens


@pytest.mark.slow
async def test_mcp_on_the_server_is_scoped_by_the_token(served: Any) -> None:
    server, tokens = served
    async with remote(server.url + "/mcp/team-a", tokens["a"]) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ALL_TOOLS
        stored = await client.call_tool("remember", {"key": "plan", "value": "ship on Friday"})
        assert text(stored) == "stored 'plan'"
        assert text(await client.call_tool("recall", {"key": "plan"})) == "'plan' = ship on Friday"
        value = await client.read_resource("botwire://team-a/plan")
        assert resource_text(value) == ("ship on Friday", "text/plain")
        with pytest.raises(McpError, match="serves the namespace 'team-a' only"):
            await client.read_resource("botwire://team-b/plan")
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        assert listed == ["botwire://team-a", "botwire://team-a/plan"]
    async with remote(server.url + "/mcp/team-b", tokens["all"]) as client:
        assert text(await client.call_tool("remember", {"key": "plan", "value": "b's"})) == (
            "stored 'plan'"
        )
    async with remote(server.url + "/mcp/team-a", tokens["all"]) as client:
        with pytest.raises(McpError, match="serves the namespace 'team-a' only"):
            await client.read_resource("botwire://team-b/plan")
    async with remote(server.url + "/mcp/team-b", tokens["b-read"]) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == ["recall", "list_memory", "search_memory", "read_memory"]
        refused = await client.call_tool("remember", {"key": "plan", "value": "overwritten"})
        assert field(refused, "isError") is True and "there is no tool 'remember'" in text(refused)
        assert text(await client.call_tool("recall", {"key": "plan"})) == "'plan' = b's"
    assert await refused_status(server.url + "/mcp/team-b", tokens["a"]) == 403
    async with httpx.AsyncClient() as http:
        other = await http.post(
            server.url + "/mcp/team-b",
            headers={"Authorization": f"Bearer {tokens['a']}"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert other.status_code == 403
        assert other.json()["detail"] == "token 'team-a' may not use namespace 'team-b'"
    assert Memory("team-b", server.url, token=tokens["all"]).get("plan") == "b's"


async def test_an_open_loopback_server_serves_the_namespace_in_its_url_only(
    http_server: Server,
) -> None:
    Memory("team-b", http_server.url).set("secret", "b's")
    async with remote(http_server.url + "/mcp/team-a", None) as client:
        with pytest.raises(McpError, match="serves the namespace 'team-a' only"):
            await client.read_resource("botwire://team-b/secret")
        templates = field(await client.list_resource_templates(), "resourceTemplates")
    assert [field(t, "uriTemplate") for t in templates] == [
        "botwire://team-a/{key}",
        "botwire://team-a",
    ]


@pytest.mark.slow
async def test_mcp_on_the_server_needs_a_token(served: Any) -> None:
    server, _ = served
    async with httpx.AsyncClient() as http:
        for token in (None, "wrong"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = await http.post(
                server.url + "/mcp/team-a",
                headers={**headers, "Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            )
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "detail" in answer.json()
    assert await refused_status(server.url + "/mcp/team-a", None) == 401


@pytest.mark.slow
async def test_a_quota_hit_over_mcp_is_a_tool_error_and_the_session_goes_on(served: Any) -> None:
    server, tokens = served
    async with remote(server.url + "/mcp/team-a", tokens["a"]) as client:
        for n in range(3):
            stored = await client.call_tool("remember", {"key": f"k{n}", "value": n})
            assert field(stored, "isError") is False
        refused = await client.call_tool("append_note", {"key": "log", "text": "one more"})
        assert field(refused, "isError") is True
        assert text(refused).startswith("could not add a note to 'log': the memory takes no more")
        assert text(await client.call_tool("recall", {"key": "k2"})) == "'k2' = 2"
        assert text(await client.call_tool("list_memory", {})) == "3 keys: k0, k1, k2"
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {tokens['a']}"})
    assert 'botwire_quota_rejections_total{quota="writes_per_day"} 1.0' in metrics.text


@pytest.mark.slow
def test_the_mcp_endpoint_answers_odd_requests_with_a_4xx(served: Any) -> None:
    server, tokens = served
    auth = {"Authorization": f"Bearer {tokens['a']}"}
    json_accept = {**auth, "Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=server.url) as http:
        answers = {
            "no namespace": http.post("/mcp", headers=auth, json={}),
            "junk body": http.post(
                "/mcp/team-a", headers={**json_accept, "Content-Type": "application/json"},
                content=b"{not json",
            ),
            "not JSON-RPC": http.post("/mcp/team-a", headers=json_accept, json={"a": 1}),
            "a batch": http.post("/mcp/team-a", headers=json_accept, json=[1, 2]),
            "unknown method": http.post(
                "/mcp/team-a", headers=json_accept,
                json={"jsonrpc": "2.0", "id": 1, "method": "nope/nothing"},
            ),
            "wrong accept": http.post(
                "/mcp/team-a", headers={**auth, "Accept": "text/html"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            ),
            "a GET": http.get("/mcp/team-a", headers=auth),
            "a foreign host": http.post(
                "/mcp/team-a", headers={**json_accept, "Host": "evil.example:80"},
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            ),
        }  # fmt: skip
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert all(400 <= status < 500 or status == 200 for status in statuses.values()), statuses
    assert statuses["no namespace"] == 404
    assert "/mcp/{namespace}" in answers["no namespace"].json()["detail"]
    assert statuses["a foreign host"] == 421
    unknown = answers["unknown method"]
    assert unknown.status_code == 200 and unknown.json()["error"]["code"] < 0
    assert statuses["junk body"] == 400 and statuses["wrong accept"] == 406


@pytest.mark.slow
def test_hostile_json_rpc_gets_a_4xx_and_no_traceback(tmp_path: Path) -> None:
    """A 5,000-digit id, params nested 50,000 deep, a body cut short by a client that hangs
    up: each is refused (or dropped) without a 500 and without a traceback in the log."""
    import socket

    with Server(f"sqlite:///{tmp_path / 'odd.db'}", "--allowed-host", "memory.example.com") as s:
        url = s.url + "/mcp/team-a"
        headers = {"Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json"}  # fmt: skip
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        deep = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":'
        bodies = {
            "huge id": '{"jsonrpc":"2.0","id":' + "9" * 5000 + ',"method":"tools/list"}',
            "deep params": deep + "[" * 50_000 + "]" * 50_000 + "}",
            "100 deep": deep + '{"a":' * 100 + "1" + "}" * 100 + "}",
            "NaN": '{"jsonrpc":"2.0","id":NaN,"method":"tools/list"}',
            "not UTF-8": b'{"jsonrpc":"2.0","id":"\xff","method":"tools/list"}',
        }
        for name, body in bodies.items():
            answer = httpx.post(url, headers=headers, content=body)
            assert answer.status_code == 400, (name, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == -32700, name
        for host in ("127.0.0.1", "localhost", "memory.example.com", f"127.0.0.1:{s.port}"):
            answer = httpx.post(url, headers={**headers, "Host": host}, json=listing)
            assert answer.status_code == 200, (host, answer.text)
        foreign = httpx.post(url, headers={**headers, "Host": "evil.example"}, json=listing)
        assert foreign.status_code == 421
        params = {"name": "list_memory", "arguments": {}}
        call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params})
        call = call.encode()
        for sent in (call[:10], call):  # hang up mid-body, and before the answer
            with socket.create_connection(("127.0.0.1", s.port)) as sock:
                sock.sendall(
                    b"POST /mcp/team-a HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, "
                    b"text/event-stream\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(call)).encode()
                    + b"\r\n\r\n"
                    + sent
                )
        assert httpx.get(s.url + "/healthz").status_code == 200
    assert s.log is not None
    log = Path(s.log).read_text()
    assert "Traceback" not in log and "ERROR" not in log, log
