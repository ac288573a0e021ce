"""Where the store is (URL resolution), and the settings read from ``BOTWIRE_*`` variables."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from botwire._values import DEFAULT_MAX_VALUE_BYTES, MAX_INT64, check_int
from botwire.errors import InvalidRequest


def default_path() -> Path:
    """The embedded store's file when no URL is given.

    Linux: ``$XDG_DATA_HOME/botwire/memory.db`` (``~/.local/share/botwire/memory.db``);
    macOS: ``~/Library/Application Support/botwire/memory.db``;
    Windows: ``%LOCALAPPDATA%\\botwire\\memory.db``.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "botwire" / "memory.db"


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$BOTWIRE_URL``, else the embedded store in the user data directory."""
    return url or os.environ.get("BOTWIRE_URL") or "sqlite:///" + str(default_path())


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def debug_enabled() -> bool:
    """``BOTWIRE_DEBUG=1``: log every operation with its duration."""
    return os.environ.get("BOTWIRE_DEBUG", "") not in ("", "0", "false", "no")


def max_value_bytes(value: int | None = None) -> int:
    """``value``, else ``$BOTWIRE_MAX_VALUE_BYTES``, else 1 MiB: a positive number of bytes.

    Raises:
        InvalidRequest: the limit is not a positive integer (``0`` does not mean "default").
    """
    if value is None:
        raw = os.environ.get("BOTWIRE_MAX_VALUE_BYTES")
        if not raw:
            return DEFAULT_MAX_VALUE_BYTES
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(
                f"BOTWIRE_MAX_VALUE_BYTES must be a number of bytes, not {raw!r}"
            ) from None
    return check_int(value, "max_value_bytes", 1, MAX_INT64)


def embedder_name() -> str | None:
    """``$BOTWIRE_EMBEDDER``: the embedder (``"module:function"``) of every memory not given
    one, for recall by meaning without a change to code (see :mod:`botwire.embedders`)."""
    return os.environ.get("BOTWIRE_EMBEDDER") or None
