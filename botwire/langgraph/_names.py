"""LangGraph names (thread ids, checkpoint namespaces, namespace labels) inside botwire names,
losslessly: ``%`` and the characters that separate parts are escaped as ``%XX``."""

from __future__ import annotations


def escape(text: str, *special: str) -> str:
    """``text`` with ``%`` and each of ``special`` escaped."""
    text = text.replace("%", "%25")
    for char in special:
        text = text.replace(char, f"%{ord(char):02X}")
    return text


def unescape(text: str) -> str:
    """The inverse of :func:`escape` (for ``/`` and ``|``)."""
    return text.replace("%2F", "/").replace("%7C", "|").replace("%25", "%")
