"""The ``botwire`` command, run as users run it: a real process on a real store."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botwire import InvalidRequest, Memory
from botwire._transfer import progress_bar

from .helpers import Server, child_env


def botwire(
    *args: str, stdin: str | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = child_env()
    if url:
        env["BOTWIRE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_set_get_keys_rm(url: str) -> None:
    assert botwire("set", "bot", "greeting", '"hello"', "--url", url).returncode == 0
    assert botwire("set", "bot", "n", "5", "--url", url).returncode == 0
    assert botwire("set", "bot", "text", '"[1,2]"', "--url", url).returncode == 0
    assert botwire("get", "bot", "greeting", "--url", url).stdout == '"hello"\n'
    assert botwire("get", "bot", "n", url=url).stdout == "5\n"
    assert Memory("bot", url).get("text") == "[1,2]"
    assert botwire("keys", "bot", "--url", url).stdout.split() == ["greeting", "n", "text"]
    assert botwire("keys", "bot", "--prefix", "g", "--url", url).stdout.split() == ["greeting"]
    assert botwire("namespaces", "--url", url).stdout.split() == ["bot"]
    assert botwire("rm", "bot", "n", "--url", url).returncode == 0
    assert botwire("rm", "bot", "n", "--url", url).returncode == 1
    missing = botwire("get", "bot", "n", "--url", url)
    assert missing.returncode == 1 and "not in" in missing.stderr


def test_set_with_ttl(url: str) -> None:
    assert botwire("set", "bot", "k", "1", "--ttl", "60", "--url", url).returncode == 0
    remaining = Memory("bot", url).ttl("k")
    assert remaining is not None and 55 < remaining <= 60


def test_bad_input_is_a_clear_error_and_writes_nothing(url: str) -> None:
    result = botwire("set", "bot", "k", "hello", "--url", url)
    assert result.returncode == 2 and "not JSON" in result.stderr
    result = botwire("set", "bot", "bad\nkey", "1", "--url", url)
    assert result.returncode == 1 and "control character" in result.stderr
    result = botwire("set", "a/b", "k", "1", "--url", url)
    assert result.returncode == 1 and "'/'" in result.stderr
    assert Memory("bot", url).keys() == []


def test_export_import_round_trip(tmp_path: Path, url: str) -> None:
    mem = Memory("chat:42", url)
    mem.set("prefs", {"lang": "en", "n": 5})
    mem.set("text", "[1,2]", ttl=3600)
    mem.append("history", {"role": "user"}, "two", 3)
    Memory("other", url).set("big", 2**80)
    dump = botwire("export", "--url", url)
    assert dump.returncode == 0 and "exported 4 keys" in dump.stderr
    lines = dump.stdout.splitlines()
    assert [(json.loads(x)["namespace"], json.loads(x)["key"]) for x in lines] == [
        ("chat:42", "history"),
        ("chat:42", "prefs"),
        ("chat:42", "text"),
        ("other", "big"),
    ]
    second = f"sqlite:///{tmp_path / 'copy.db'}"
    loaded = botwire("import", "--url", second, stdin=dump.stdout)
    assert loaded.returncode == 0 and "imported 4 keys" in loaded.stderr
    copy = Memory("chat:42", second)
    assert copy.get("history") == [{"role": "user"}, "two", 3]
    assert copy.get("text") == "[1,2]"
    remaining = copy.ttl("text")
    assert remaining is not None and 3500 < remaining <= 3600
    assert Memory("other", second).get("big") == 2**80
    assert botwire("export", "--url", second).stdout == dump.stdout  # nothing lost or changed
    only = botwire("export", "other", "--url", url).stdout
    assert only.count("\n") == 1


def test_import_reads_a_file_and_refuses_garbage(tmp_path: Path, url: str) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"namespace":"n","key":"k","value":1}\n\n', encoding="utf-8")
    assert botwire("import", str(dump), "--url", url).returncode == 0
    assert Memory("n", url).get("k") == 1
    dump.write_text('{"namespace":"n","key":"k2","value":1}\nnot json\n', encoding="utf-8")
    result = botwire("import", str(dump), "--url", url)
    assert result.returncode == 1 and "line 2" in result.stderr
    assert "k2" not in Memory("n", url)


def test_progress_bar_draws_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with progress_bar("exporting", screen) as progress:
        progress.total = 200
        progress.update(100)
    assert "exporting:  50%" in screen.getvalue() and "100/200" in screen.getvalue()
    quiet = io.StringIO()
    with progress_bar("exporting", quiet) as progress:
        progress.update(10)
    assert quiet.getvalue() == ""


def test_version_and_python_dash_m() -> None:
    from botwire import __version__

    assert botwire("--version").stdout == f"botwire {__version__}\n"
    as_module = subprocess.run(
        [sys.executable, "-m", "botwire", "--version"],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert as_module.returncode == 0 and as_module.stdout == f"botwire {__version__}\n"


def test_messages_read_as_a_person_writes(url: str) -> None:
    missing = botwire("rm", "bot", "nothing-here", "--url", url)
    assert missing.returncode == 1
    assert missing.stderr == "botwire: 'nothing-here' is not in 'bot'; nothing removed\n"
    Memory("one", url).set("k", 1)
    assert botwire("export", "one", "--url", url).stderr == "botwire: exported 1 key\n"
    assert botwire("export", "none", "--url", url).stderr == "botwire: exported 0 keys\n"


def test_a_missing_extra_is_one_line_saying_what_to_install(url: str) -> None:
    """Without FastAPI (the server extra), ``botwire serve`` says what to install, and no
    traceback."""
    code = (
        "import sys; sys.modules['fastapi'] = None; from botwire.cli import main; sys.exit(main())"
    )
    for command in (["serve"], ["mcp", "--url", url]):
        missing = "mcp.server.lowlevel" if command[0] == "mcp" else "fastapi"
        done = subprocess.run(
            [sys.executable, "-c", code.replace("fastapi", missing), *command],
            capture_output=True, text=True, env=child_env(), timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 1
        extra = "mcp" if command[0] == "mcp" else "server"
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"pip install -e '.[{extra}]'" in done.stderr
        assert "not on the package index yet" in done.stderr


def test_serve_says_what_it_serves_and_who_may_come_in(tmp_path: Path) -> None:
    from .helpers import Server

    db = f"sqlite:///{tmp_path / 'announced.db'}"
    with Server(db) as server:
        assert server.log is not None
        log = Path(server.log).read_text()
    assert f"botwire serve: store {db}\n" in log
    assert f"botwire serve: listening on http://127.0.0.1:{server.port} (1 worker)\n" in log
    assert "botwire serve: no token required (loopback only;" in log


def _record(key: str, value: object = 1, **times: str) -> str:
    return json.dumps({"namespace": "n", "key": key, "value": value, **times}) + "\n"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('{"namespace":"n","key":"deep","value":' + "[" * 100_000 + "]" * 100_000 + "}\n",
         "nests too deeply"),
        ('{"namespace":"n","key":"s","value":"\\ud800"}\n', "lone surrogate"),
        ('{"namespace":"n","key":"\\ud800","value":1}\n', "lone surrogate"),
        ('{"namespace":"n","key":"k","value":NaN}\n', "NaN is not JSON"),
        ("not json\n", "is not JSON"),
        ('{"namespace":"n","key":"k"}\n', "namespace, key and value"),
        ('{"namespace":"n","key":"big","value":"' + "x" * (2 * 1024 * 1024) + '"}\n',
         "the limit is 1048576 bytes"),
        (_record("t", created_at="2026-01-02T00:00:00Z", updated_at="2026-01-01T00:00:00Z"),
         "before created_at"),
        (_record("t", created_at="2026-01-01T00:00:00Z", updated_at="9999-12-31T00:00:00Z"),
         "in the future"),
        (_record("t", created_at="9999-12-31T00:00:00Z"), "in the future"),
        (b'{"namespace":"n","key":"\xff","value":1}\n'.decode("latin-1"), "line 601"),
    ],
)  # fmt: skip
def test_import_checks_every_record_before_it_writes_any(
    tmp_path: Path, url: str, bad: str, says: str
) -> None:
    """A dump whose line 601 is bad writes nothing (not the 600 good lines before it) and
    says which line and why, without a traceback."""
    dump = tmp_path / "dump.jsonl"
    good = "".join(_record(f"k{n}", n) for n in range(600))
    if bad.startswith('{"namespace":"n","key":"\xff'):
        dump.write_bytes(good.encode() + b'{"namespace":"n","key":"\xff","value":1}\n')
    else:
        dump.write_text(good + bad, encoding="utf-8")
    result = botwire("import", str(dump), "--url", url)
    assert result.returncode == 1, result.stderr
    assert "line 601" in result.stderr and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert Memory("n", url).keys() == []


def test_import_reports_what_it_wrote_and_continues_where_it_stopped(
    tmp_path: Path, url: str
) -> None:
    dump = tmp_path / "dump.jsonl"
    lines = [_record(f"k{n}", n) for n in range(1200)]
    lines[3] = _record("gone", 1, expires_at="2001-01-01T00:00:00Z")
    dump.write_text("".join(lines), encoding="utf-8")
    result = botwire("import", str(dump), "--url", url)
    assert result.returncode == 0
    assert "imported 1,199 keys (1 expired key skipped)" in result.stderr
    Memory("n", url).clear()
    resumed = botwire("import", str(dump), "--from-line", "1001", "--url", url)
    assert "imported 200 keys" in resumed.stderr
    assert sorted(Memory("n", url).keys()) == sorted(f"k{n}" for n in range(1000, 1200))


def test_an_import_the_store_stops_says_where_to_continue(tmp_path: Path) -> None:
    """A server's quota refuses the second batch: the first 500 keys stay, and the message
    names the line to continue from."""
    from .helpers import Server

    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(_record(f"k{n}", n) for n in range(1200)), encoding="utf-8")
    with Server(f"sqlite:///{tmp_path / 'q.db'}", "--quota-writes-per-day", "700") as server:
        result = botwire("import", str(dump), "--url", server.url)
        assert result.returncode == 1
        assert "from line 501 on" in result.stderr and "500 keys written" in result.stderr
        assert "--from-line 501" in result.stderr
        assert len(Memory("n", server.url).keys()) == 500


def test_the_batch_route_refuses_restored_times_that_could_not_happen(tmp_path: Path) -> None:
    from botwire.backends.base import Restore
    from botwire.backends.http import HTTPBackend

    from .helpers import Server

    with Server(f"sqlite:///{tmp_path / 'r.db'}") as server:
        backend = HTTPBackend(server.url)
        for created, updated, says in [(2, 1, "before created_at"),
                                       (1, 253_402_300_000_000_000, "in the future")]:  # fmt: skip
            with pytest.raises(InvalidRequest, match=says):
                backend.execute([Restore("n", "k", "1", created, updated)])
        assert Memory("n", server.url).keys() == []
        backend.close()


def _commands(parser: Any, path: str = "botwire") -> Iterator[tuple[str, Any]]:
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def test_every_command_and_argument_has_help_and_one_language_for_stores() -> None:
    import argparse

    from botwire.cli import build_parser

    parser = build_parser()
    for path, command in _commands(parser):
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), path
                continue
            assert action.help, f"{path}: {action.dest} has no help"
        options = {s for a in command._actions for s in a.option_strings}
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
        if leaf and path != "botwire":
            assert "--url" in options, f"{path} has no --url"
    server_side = ("botwire serve", "botwire token create", "botwire token list",
                   "botwire webhook add", "botwire auth status")  # fmt: skip
    for path, command in _commands(parser):
        options = {s for a in command._actions for s in a.option_strings}
        if path in server_side:
            assert "--db" in options  # kept as the other name of --url
        elif path.split()[-1] in ("get", "set", "keys", "search", "history", "watch", "mcp"):
            assert "--token" in options
            token = next(a for a in command._actions if "--token" in a.option_strings)
            assert "BOTWIRE_TOKEN" in token.help


def test_the_token_option_reaches_a_server(tmp_path: Path) -> None:
    from botwire.backends.sqlite import SQLiteBackend
    from botwire.server.auth import create_token

    backend = SQLiteBackend(tmp_path / "t.db")
    token = create_token(backend, "cli", ["cli"])
    backend.close()
    with Server(f"sqlite:///{tmp_path / 't.db'}") as server:
        base = ["--url", server.url]
        refused = botwire("set", "cli", "k", "1", *base)
        assert refused.returncode == 1 and "token" in refused.stderr
        assert botwire("set", "cli", "k", "1", *base, "--token", token).returncode == 0
        got = botwire("get", "cli", "k", *base, "--token", token)
        assert got.returncode == 0 and got.stdout.strip() == "1"
        via_db = botwire("token", "list", "--db", f"sqlite:///{tmp_path / 't.db'}")
        assert via_db.returncode == 0 and "cli" in via_db.stdout
