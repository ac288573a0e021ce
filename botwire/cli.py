"""The ``botwire`` command: read and write a store from the shell, dump and load it.

    botwire set NS KEY JSON [--ttl S]     botwire get NS KEY       botwire rm NS KEY
    botwire keys NS [--prefix P]          botwire namespaces       botwire export [NS ...]
    botwire import [FILE]

Every command takes ``--url`` (default ``$BOTWIRE_URL``, else the embedded store).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from botwire import config
from botwire.backends import open_backend
from botwire.errors import BotWireError
from botwire.memory import Memory, list_namespaces

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
    value = Memory(args.namespace, args.url).get(args.key, missing)
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
    Memory(args.namespace, args.url).set(args.key, value, ttl=args.ttl)
    return 0


@command("rm")
def _rm(args: argparse.Namespace) -> int:
    return 0 if Memory(args.namespace, args.url).delete(args.key) else 1


@command("keys")
def _keys(args: argparse.Namespace) -> int:
    for key in Memory(args.namespace, args.url).keys(args.prefix):
        print(key)
    return 0


@command("namespaces")
def _namespaces(args: argparse.Namespace) -> int:
    for name in list_namespaces(args.url, args.prefix):
        print(name)
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from botwire._transfer import Progress, export_lines

    progress = Progress("exporting")
    out = sys.stdout
    for line in export_lines(open_backend(config.resolve_url(args.url)), args.namespaces, progress):
        out.write(line)
    out.flush()
    progress.close()
    print(f"botwire: exported {progress.done:,} keys", file=sys.stderr)
    return 0


@command("import")
def _import(args: argparse.Namespace) -> int:
    from botwire._transfer import Progress, import_lines

    progress = Progress("importing")
    backend = open_backend(config.resolve_url(args.url))
    if args.file:
        with open(args.file, encoding="utf-8") as source:
            count = import_lines(backend, source, progress)
    else:
        count = import_lines(backend, sys.stdin, progress)
    progress.close()
    print(f"botwire: imported {count:,} keys", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="store URL (default: $BOTWIRE_URL, else the embedded store)")
    parser = argparse.ArgumentParser(prog="botwire", description="Persistent memory for AI agents.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("get", parents=[common], help="print a key's value as JSON")
    p.add_argument("namespace")
    p.add_argument("key")
    p = sub.add_parser("set", parents=[common], help="store a JSON value")
    p.add_argument("namespace")
    p.add_argument("key")
    p.add_argument("value", help="a JSON value: 5, '\"text\"', '{\"a\": 1}'")
    p.add_argument("--ttl", type=float, help="seconds until the key expires")
    p = sub.add_parser("rm", parents=[common], help="delete a key (exit 1 if it was missing)")
    p.add_argument("namespace")
    p.add_argument("key")
    p = sub.add_parser("keys", parents=[common], help="list a namespace's keys")
    p.add_argument("namespace")
    p.add_argument("--prefix")
    p = sub.add_parser("namespaces", parents=[common], help="list namespaces with live keys")
    p.add_argument("--prefix")
    p = sub.add_parser("export", parents=[common], help="write namespaces as JSON lines to stdout")
    p.add_argument("namespaces", nargs="*", help="namespaces to export (default: all)")
    p = sub.add_parser("import", parents=[common], help="load JSON lines written by export")
    p.add_argument("file", nargs="?", help="the dump (default: stdin)")
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
