"""The ``botwire`` command: read and write a store from the shell, dump and load it.

    botwire set NS KEY JSON [--ttl S]     botwire get NS KEY       botwire rm NS KEY
    botwire keys NS [--prefix P]          botwire namespaces       botwire export [NS ...]
    botwire import [FILE]                 botwire mcp [--namespace NS] [--read-only]

Every command takes ``--url`` (default ``$BOTWIRE_URL``, else the embedded store).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence

from botwire import __version__, config
from botwire._memory import Memory, list_namespaces
from botwire._values import format_time
from botwire.backends import Backend, open_backend
from botwire.backends.base import Changes, Stats
from botwire.errors import BotWireError

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False))


@command("get")
def _get(args: argparse.Namespace) -> int:
    missing = object()
    value = Memory(args.namespace, args.url, token=args.token).get(args.key, missing)
    if value is missing:
        print(f"botwire: {args.key!r} is not in {args.namespace!r}", file=sys.stderr)
        return 1
    _print_json(value)
    return 0


@command("set")
def _set(args: argparse.Namespace) -> int:
    try:
        value = json.loads(args.value)
    except ValueError:
        print(
            f"botwire: {args.value!r} is not JSON; quote text as JSON, e.g. '\"hello\"'",
            file=sys.stderr,
        )
        return 2
    Memory(args.namespace, args.url, token=args.token).set(args.key, value, ttl=args.ttl)
    return 0


@command("rm")
def _rm(args: argparse.Namespace) -> int:
    if Memory(args.namespace, args.url, token=args.token).delete(args.key):
        return 0
    print(f"botwire: {args.key!r} is not in {args.namespace!r}; nothing removed", file=sys.stderr)
    return 1


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@command("keys")
def _keys(args: argparse.Namespace) -> int:
    for key in Memory(args.namespace, args.url, token=args.token).keys(args.prefix):
        print(key)
    return 0


@command("watch")
def _watch(args: argparse.Namespace) -> int:
    memory = Memory(args.namespace, args.url, token=args.token)
    for change in memory.watch(args.since, prefix=args.prefix):
        line = {"seq": change.seq, "at": change.at.isoformat(), "actor": change.actor,
                "op": change.op, "key": change.key, "version": change.version,
                "value": change.value}  # fmt: skip
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return 0


@command("history")
def _history(args: argparse.Namespace) -> int:
    memory = Memory(args.namespace, args.url, token=args.token)
    for change in memory.history(args.key, limit=args.limit):
        shown = "" if change.op in ("delete", "clear", "expired") else _snippet(change.value)
        print(f"{change.at.isoformat()}  v{change.version or '-'}  {change.actor}  "
              f"{change.op}  {shown}".rstrip())  # fmt: skip
    return 0


@command("stats")
def _stats(args: argparse.Namespace) -> int:
    (held,) = open_backend(config.resolve_url(args.url), token=args.token).execute([Stats()])
    oldest = held["oldest_change"]
    print(f"{_count(held['namespaces'], 'namespace')}, {_count(held['keys'], 'key')}, "
          f"{_count(held['bytes'], 'byte')} of values")  # fmt: skip
    print(f"change log: {_count(held['changes'], 'change')}, "
          f"{_count(held['change_bytes'], 'byte')} of values, oldest "
          f"{'none' if oldest is None else format_time(oldest)}")  # fmt: skip
    vectors = held.get("vectors") or {}  # a server of an older botwire has none
    models = [f"{_count(count, 'vector')} of {model}" for model, count in sorted(vectors.items())]
    print("vectors: " + (", ".join(models) or "none"))
    return 0


@command("audit")
def _audit(args: argparse.Namespace) -> int:
    from botwire.backends.changes import audit_span, token_actor

    backend = open_backend(config.resolve_url(args.url), token=args.token)
    start, end = audit_span(args.since, args.until, backend.now())
    actor = token_actor(args.actor)
    op = Changes(None, 0, "", 1000, args.ns_prefix, args.values, actor, start, end)
    while True:
        (page,) = backend.execute([op])
        for change in page.changes:
            where = change.ns if change.key is None else f"{change.ns}/{change.key}"
            line = f"{format_time(change.at)}  {change.actor}  {change.op}  {where}"
            line += f"  v{change.version}" if change.version is not None else ""
            line += f"  request={change.request_id}" if change.request_id else ""
            print(line + (f"  {change.value}" if args.values else ""))
        if len(page.changes) < op.limit:
            return 0
        op = op._replace(since=page.cursor)


@command("search")
def _search(args: argparse.Namespace) -> int:
    found = Memory(args.namespace, args.url, token=args.token).search(
        args.query, limit=args.limit, match="any" if args.any else "all"
    )
    for hit in found:
        shown = [(hit.key, hit.value)] if hit.items is None else [
            (f"{hit.key}[{item.position}]", item.value) for item in hit.items]  # fmt: skip
        for name, value in shown:
            print(f"{hit.score:8.3f}  {name}  {_snippet(value)}")
    if not found:
        print(f"botwire: nothing in {args.namespace!r} matches {args.query!r}", file=sys.stderr)
        return 1
    return 0


def _snippet(value: object, width: int = 72) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@command("namespaces")
def _namespaces(args: argparse.Namespace) -> int:
    for name in list_namespaces(args.prefix, url=args.url, token=args.token):
        print(name)
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from botwire._transfer import export_lines, progress_bar

    backend = open_backend(config.resolve_url(args.url), token=args.token)
    written = 0
    with progress_bar("exporting") as progress:
        for line in export_lines(backend, args.namespaces, progress, history=args.with_history):
            sys.stdout.write(line)
            written += 1
    sys.stdout.flush()
    print(f"botwire: exported {_count(written, 'key')}", file=sys.stderr)
    return 0


@command("import")
def _import(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from botwire._transfer import ImportStopped, import_dump, progress_bar

    backend = open_backend(config.resolve_url(args.url), token=args.token)
    with contextlib.ExitStack() as stack:
        if args.file:
            path = args.file
        else:  # standard input is read once: keep it for the second pass
            spool = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".jsonl"))
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            path = spool.name

        def lines() -> Iterator[str]:
            with open(path, encoding="utf-8", errors="surrogateescape") as source:
                yield from source

        try:
            with progress_bar("importing") as progress:
                report = import_dump(
                    backend, lines, from_line=args.from_line, progress=progress,
                    history=args.with_history,
                )  # fmt: skip
        except ImportStopped as stopped:
            print(
                f"botwire: {stopped}. Run again with --from-line {stopped.next_line} to continue.",
                file=sys.stderr,
            )
            return 1
    skipped = f" ({_count(report.expired, 'expired key')} skipped)" if report.expired else ""
    print(f"botwire: imported {_count(report.written, 'key')}{skipped}", file=sys.stderr)
    return 0


@command("mcp")
def _mcp(args: argparse.Namespace) -> int:
    if args.print_config:
        print(_mcp_config(args))
        return 0
    from botwire.mcp import run_stdio

    run_stdio(args.namespace, args.url, read_only=args.read_only, token=args.token)
    return 0


def _mcp_config(args: argparse.Namespace) -> str:
    """This MCP server as a client's configuration starts it: this Python by its absolute path
    (a desktop app's PATH holds no virtual environment), ``-m botwire mcp`` and the options."""
    command = sys.executable
    options = ["-m", "botwire", "mcp", "--namespace", args.namespace]
    url = args.url or os.environ.get("BOTWIRE_URL")  # the app does not see this shell's
    if url:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            path, _, query = url[len("sqlite:///") :].partition("?")  # the app's working
            url = "sqlite:///" + os.path.abspath(path) + (f"?{query}" if query else "")  # dir
        options += ["--url", url]
    if args.read_only:
        options.append("--read-only")
    token = args.token or os.environ.get("BOTWIRE_TOKEN")
    env = {"BOTWIRE_TOKEN": token} if token else {}
    if args.print_config == "claude-code":
        flags = [flag for name, value in env.items() for flag in ("-e", f"{name}={value}")]
        return shlex.join(["claude", "mcp", "add", "botwire", *flags, "--", command, *options])
    server: dict[str, object] = {"command": command, "args": options}
    if env:
        server["env"] = env
    return json.dumps({"mcpServers": {"botwire": server}}, indent=2)


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from botwire.server import Settings, serve

    settings = Settings.from_env(
        db=args.db,
        host=args.host,
        port=args.port,
        workers=args.workers,
        quota_writes_per_day=args.quota_writes_per_day,
        quota_bytes=args.quota_bytes,
        allow_anonymous=args.allow_anonymous or None,
        max_body_bytes=args.max_body_bytes,
        metrics_token=args.metrics_token,
        access_log=args.access_log or None,
        require_tokens=args.require_tokens or None,
        jwks=args.jwks,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        jwt_prefixes_claim=args.jwt_prefixes_claim,
        log_format=args.log_format,
        store_wait_seconds=args.store_wait_seconds,
        allowed_hosts=",".join(args.allowed_host) if args.allowed_host else None,
        embedder=args.embedder,
    )
    serve(settings)
    return 0


def _token_store(args: argparse.Namespace) -> Backend:
    from botwire.server import Settings
    from botwire.server.app import open_server_backend

    return open_server_backend(Settings.from_env(db=args.db))


@command("token")
def _token(args: argparse.Namespace) -> int:
    from botwire.server.auth import create_token, list_tokens, revoke_token

    backend = _token_store(args)
    if args.action == "create":
        token = create_token(
            backend, args.name, args.prefix, read_only=args.read_only, ttl=args.ttl,
            admin=args.admin,
        )  # fmt: skip
        print(token)
        print("botwire: keep this token now; it is not shown again", file=sys.stderr)
    elif args.action == "list":
        for info in list_tokens(backend):
            rights = "read" if info["read_only"] else "read,write"
            rights += ",admin" if info["admin"] else ""
            expires = format_time(info["expires_at"]) or "never"
            prefixes = ",".join(repr(p) for p in info["prefixes"])
            print(f"{info['id']}  {info['name']}  {rights}  prefixes={prefixes}  expires={expires}")
    else:
        count = revoke_token(backend, args.name)
        print(f"botwire: revoked {_count(count, 'token')}", file=sys.stderr)
        return 0 if count else 1
    return 0


@command("webhook")
def _webhook(args: argparse.Namespace) -> int:
    from botwire.server.auth import OPERATOR
    from botwire.server.webhooks import add_webhook, list_webhooks, remove_webhook

    backend = _token_store(args)
    if args.action == "add":
        made = add_webhook(backend, args.target, args.ns_prefix, args.secret, OPERATOR)
        print(f"{made['id']}  {made['url']}  ns_prefix={made['ns_prefix']!r}")
        if args.secret is None:
            print(f"secret: {made['secret']}")
            print("botwire: keep this secret now; it is not shown again", file=sys.stderr)
    elif args.action == "list":
        for hook in list_webhooks(backend):
            print(f"{hook['id']}  {hook['url']}  ns_prefix={hook['ns_prefix']!r}  "
                  f"by={hook['creator']}  at={hook['at']}")  # fmt: skip
    else:
        if not remove_webhook(backend, args.id):
            print(f"botwire: no webhook {args.id!r}", file=sys.stderr)
            return 1
    return 0


@command("auth")
def _auth(args: argparse.Namespace) -> int:
    from botwire.server import Settings
    from botwire.server.auth import disable_auth, tokens_required

    backend = _token_store(args)
    if args.action == "status":
        required = tokens_required(backend)
        print("tokens required" if required else "tokens not required")
        return 0
    left = disable_auth(backend)
    within = Settings.from_env().token_cache_seconds
    print(
        "botwire: this store no longer requires tokens: servers on it answer requests without "
        f"one (on loopback, or everywhere with --allow-anonymous) within {within:g} s. "
        f"Live tokens ({left:,}) still work when sent; revoke them with "
        "`botwire token revoke`. "
        "Creating a token requires tokens again.",
        file=sys.stderr,
    )
    return 0


@command("migrate")
def _migrate(args: argparse.Namespace) -> int:
    from botwire._transfer import progress_bar
    from botwire.backends import create_backend

    backend = create_backend(config.resolve_url(args.url))
    with progress_bar("indexing") as progress:

        def advance(done: int, total: int) -> None:
            progress.total = total
            progress.update(done - progress.n)

        ran = backend.migrate(progress=advance)
    print(f"botwire: {config.mask_url(backend.url)} is up to date ({_count(ran, 'migration')} run)")
    return 0


@command("reindex")
def _reindex(args: argparse.Namespace) -> int:
    from botwire._transfer import progress_bar

    url = config.resolve_url(args.url)
    names = args.namespace or list_namespaces(url=url)
    stored = 0
    with progress_bar("embedding") as progress:

        def advance(read: int) -> None:
            progress.update(read)

        for name in names:
            stored += Memory(name, url, embedder=args.embedder).reindex(advance)
    print(f"botwire: {_count(stored, 'vector')} stored in {_count(len(names), 'namespace')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help="the store: sqlite:///path, postgresql://... or a botwire serve's http(s)://host:port "
        "(default: $BOTWIRE_URL, else the embedded store)",
    )
    common.add_argument(
        "--token", help="bearer token for a botwire serve URL (default: $BOTWIRE_TOKEN)"
    )
    parser = argparse.ArgumentParser(prog="botwire", description="Persistent memory for AI agents.")
    parser.add_argument("--version", action="version", version=f"botwire {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("get", parents=[common], help="print a key's value as JSON")
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("key", help="the key")
    p = sub.add_parser("set", parents=[common], help="store a JSON value")
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("key", help="the key")
    p.add_argument("value", help="a JSON value: 5, '\"text\"', '{\"a\": 1}'")
    p.add_argument("--ttl", type=float, help="seconds until the key expires")
    p = sub.add_parser("rm", parents=[common], help="delete a key (exit 1 if it was missing)")
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("key", help="the key")
    p = sub.add_parser("keys", parents=[common], help="list a namespace's keys")
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("--prefix", help="only keys that start with this")
    p = sub.add_parser(
        "search", parents=[common], help="full-text search of a namespace: score, key, snippet"
    )
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("query", help='words to find; "quoted words" match as a phrase')
    p.add_argument("--limit", type=int, default=10, help="most keys to show (default 10)")
    p.add_argument("--any", action="store_true", help="any word is enough (best matches first)")
    p = sub.add_parser(
        "watch", parents=[common], help="print a namespace's changes as they commit (JSON lines)"
    )
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("--prefix", help="only keys that start with this")
    p.add_argument("--since", type=int, help="from after this position (default: from now)")
    p = sub.add_parser("history", parents=[common], help="a key's recorded changes, newest first")
    p.add_argument("namespace", help="the namespace (the memory's name)")
    p.add_argument("key", help="the key")
    p.add_argument("--limit", type=int, default=20, help="most changes to show (default 20)")
    sub.add_parser(
        "stats", parents=[common], help="what the store holds: keys, bytes, the change log"
    )
    p = sub.add_parser(
        "audit", parents=[common], help="who changed what, when: the change log, oldest first"
    )
    p.add_argument("--ns-prefix", default="", help="only namespaces that start with this")
    p.add_argument("--actor", help="a token's name, or an actor as the log names it")
    p.add_argument("--since", help="a span back from now (30m, 1h, 2d) or an ISO time")
    p.add_argument("--until", help="as --since: the end of the range")
    p.add_argument("--values", action="store_true", help="show what each change wrote")
    p = sub.add_parser("namespaces", parents=[common], help="list namespaces with live keys")
    p.add_argument("--prefix", help="only namespaces that start with this")
    p = sub.add_parser("export", parents=[common], help="write namespaces as JSON lines to stdout")
    p.add_argument("namespaces", nargs="*", help="namespaces to export (default: all)")
    p.add_argument(
        "--with-history", action="store_true", help="each key with its changes from the log"
    )
    p = sub.add_parser("import", parents=[common], help="load JSON lines written by export")
    p.add_argument("file", nargs="?", help="the dump (default: stdin)")
    p.add_argument(
        "--from-line",
        type=int,
        default=1,
        help="start at this line of the dump (to continue an import the store stopped)",
    )
    p.add_argument(
        "--with-history",
        action="store_true",
        help="add each key's changes (export --with-history) to the change log",
    )

    sub.add_parser("migrate", parents=[common], help="bring a store's schema up to date")
    p = sub.add_parser(
        "reindex",
        parents=[common],
        help="embed what has no vector of a model (written before it, or by another one)",
    )
    p.add_argument("namespace", nargs="*", help="the namespaces (default: all)")
    p.add_argument(
        "--embedder",
        required=True,
        help="the model, as module:function (botwire.embedders:wordllama)",
    )
    p = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve a namespace to an MCP client over stdio (botwire[mcp])",
        description="An MCP server over stdin/stdout: memory tools (remember, recall, forget, "
        "list_memory, search_memory, append_note, read_memory) and botwire:// resources, for "
        "a client's "
        "config (--print-config writes one that starts this Python by its absolute path). A "
        "server URL takes its token from $BOTWIRE_TOKEN.",
    )
    p.add_argument("--namespace", default="default", help="the memory to serve (default: default)")
    p.add_argument("--read-only", action="store_true", help="offer only the tools that read")
    p.add_argument(
        "--print-config",
        choices=["claude-desktop", "claude-code"],
        help="print the configuration that starts this server: claude_desktop_config.json's "
        "mcpServers entry, or the `claude mcp add` command; then exit",
    )

    db = argparse.ArgumentParser(add_help=False)
    db.add_argument(
        "--url",
        "--db",
        dest="db",
        help="the server's store: sqlite:///path or postgresql://... (default: $BOTWIRE_DB, "
        "else the embedded store; --db is the same)",
    )
    p = sub.add_parser("serve", parents=[db], help="run the HTTP server (botwire[server])")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument(
        "--embedder",
        help="recall by meaning: the embedder of what clients write, as module:function "
        "(botwire.embedders:wordllama, with pip install wordllama)",
    )
    p.add_argument("--quota-writes-per-day", type=int, help="writes per namespace per UTC day")
    p.add_argument("--quota-bytes", type=int, help="bytes of values per namespace")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 8 MiB)")
    p.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve requests without tokens on a non-loopback address",
    )
    p.add_argument(
        "--metrics-token", help="a bearer token that may read /metrics once tokens are on"
    )
    p.add_argument(
        "--jwks",
        help="also accept JWTs signed by a key of this JWKS (a URL or a file); with "
        "--jwt-issuer and --jwt-audience",
    )
    p.add_argument("--jwt-issuer", help="the iss a JWT must carry")
    p.add_argument("--jwt-audience", help="the audience a JWT must be for")
    p.add_argument(
        "--jwt-prefixes-claim",
        help="the claim listing a JWT's namespace prefixes (default botwire_prefixes)",
    )
    p.add_argument(
        "--require-tokens",
        action="store_true",
        help="require tokens from the start, before any exists (as the container image does)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default), or json: one object per line, with request ids",
    )
    p.add_argument(
        "--store-wait-seconds",
        type=float,
        help="at start, how long to wait for the store to answer (default 60)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        help="on loopback, a host name (besides 127.0.0.1 and localhost) that MCP clients may "
        "reach this server by, such as the name a TLS proxy forwards (repeatable)",
    )

    p = sub.add_parser("token", help="create, list and revoke the server's bearer tokens")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser(
        "create",
        parents=[db],
        help="create a token and print it once",
        description="Create a bearer token and print it once. From then on the store requires "
        "tokens (until `botwire auth disable`).",
        epilog="A prefix matches at a word boundary: --prefix user-1 grants user-1, user-1:chat, "
        "user-1.x and user-1-x, but not user-10, user-1x or user-1 followed by an accent or an "
        "invisible joiner. A prefix that ends in punctuation or a symbol (user-, team:) grants "
        "every namespace that starts with it. --prefix '*' grants every namespace.",
    )
    t.add_argument("name", help="a name for the token (shown in the change log as token:NAME)")
    t.add_argument(
        "--prefix", action="append", required=True, help="namespace prefix (repeatable; '*' = all)"
    )
    t.add_argument("--read-only", action="store_true", help="reads only")
    t.add_argument(
        "--admin",
        action="store_true",
        help="may read the audit (GET /v1/audit); with --prefix '*', manage tokens over HTTP",
    )
    t.add_argument("--ttl", type=float, help="seconds until the token expires (up to 100 years)")
    actions.add_parser("list", parents=[db], help="list live tokens (never the tokens themselves)")
    t = actions.add_parser("revoke", parents=[db], help="revoke tokens by name or id")
    t.add_argument("name", help="a token's name or id (from `botwire token list`)")

    p = sub.add_parser("webhook", help="add, list and remove the server's webhooks")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("add", parents=[db], help="POST the changes of a prefix to a URL")
    t.add_argument("target", metavar="URL", help="where the changes are POSTed")
    t.add_argument("--ns-prefix", default="", help="namespaces that start with this (all)")
    t.add_argument("--secret", help="what deliveries are signed with (16+ chars; default: new)")
    actions.add_parser("list", parents=[db], help="list webhooks (never their secrets)")
    t = actions.add_parser("remove", parents=[db], help="remove a webhook by id")
    t.add_argument("id", help="the webhook's id (from `botwire webhook list`)")

    p = sub.add_parser("auth", help="whether the server's store requires tokens")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("status", parents=[db], help="say whether tokens are required")
    actions.add_parser(
        "disable",
        parents=[db],
        help="stop requiring tokens (requests without one are served again)",
        description="Stop requiring tokens on this store. Once a token has been created, a "
        "store requires tokens for good, even when none is left; this turns that off. Live "
        "tokens keep working when sent.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``botwire`` command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BotWireError as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
