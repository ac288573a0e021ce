"""The HTTP client's wire format, pinned by a recorded cassette.

Each request the client sends must match the recorded one byte for byte, and the client must
read the recorded responses into the same results. An accidental change to either side of the
protocol fails here. To record anew (after a deliberate change): delete the cassette and run
this test twice: it records against the session's live server, then replays.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import vcr

from botwire import Memory, VersionConflict, WrongType
from botwire.backends.http import HTTPBackend

from .helpers import Server

CASSETTE = Path(__file__).parent / "cassettes" / "client_wire.yaml"

recorder = vcr.VCR(
    record_mode="once",
    match_on=["method", "path", "query", "body"],
    decode_compressed_response=True,
)


def test_client_requests_and_responses_are_pinned(http_server: Server) -> None:
    backend = HTTPBackend(http_server.url)
    mem = Memory("wire", backend=backend)
    with recorder.use_cassette(str(CASSETTE)) as cassette:
        mem.clear()
        version = mem.set("prefs", {"lang": "en", "n": 5}, ttl=3600)
        assert mem.get("prefs") == {"lang": "en", "n": 5}
        assert mem.get("text", "default") == "default"
        mem.set("text", "[1,2]")
        assert mem.get("text") == "[1,2]"
        assert mem.append("chat", {"role": "user"}, "hi", max_len=10) == 2
        assert mem.incr("count", 3) == 3
        assert mem.get_many(["prefs", "chat", "missing"]) == {
            "prefs": {"lang": "en", "n": 5},
            "chat": [{"role": "user"}, "hi"],
        }
        assert mem.keys() == ["chat", "count", "prefs", "text"]
        assert "prefs" in mem
        entry = mem.entry("prefs")
        assert entry is not None and entry.version == version
        assert entry.expires_at is not None
        with pytest.raises(VersionConflict):
            mem.set("prefs", {}, if_version=version + 1)
        with pytest.raises(WrongType):
            mem.incr("text")
        assert mem.delete_many(["text", "missing"]) == 1
        assert mem.update("count", lambda n: n * 2) == 6
    assert cassette.all_played, "every recorded exchange is replayed (after recording, run again)"
    backend.close()


def test_newer_fields_travel_only_when_they_differ_from_their_defaults() -> None:
    """A server from before a field understands every request that leaves it at its default."""
    from botwire.backends.base import Append, Put
    from botwire.backends.wire import op_to_json

    assert "searchable" not in op_to_json(Put("ns", "k", "1"))
    assert op_to_json(Put("ns", "k", "1", searchable=False))["searchable"] is False
    assert "searchable" not in op_to_json(Append("ns", "k", ("1",)))
    assert op_to_json(Append("ns", "k", ("1",), searchable=False))["searchable"] is False
    assert "vectors" not in op_to_json(Put("ns", "k", "1"))
