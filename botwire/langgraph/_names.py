"""LangGraph names (thread ids, checkpoint namespaces, namespace labels) inside botwire names,
losslessly: ``%``, the characters that separate parts, and control characters (which botwire
names do not hold) are escaped as ``%XX``."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPED = re.compile(r"%([0-9A-F]{2})")


def escape(text: str, *special: str) -> str:
    """``text`` with ``%``, each of ``special`` and control characters escaped."""
    if "%" not in text and not any(char in text for char in special) and not _CONTROL.search(text):
        return text
    text = text.replace("%", "%25")
    for char in special:
        text = text.replace(char, f"%{ord(char):02X}")
    return _CONTROL.sub(lambda found: f"%{ord(found.group()):02X}", text)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    if "%" not in text:
        return text
    return _ESCAPED.sub(lambda found: chr(int(found.group(1), 16)), text)
