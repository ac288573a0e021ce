"""CrewAI's own memory (``crewai.Memory``) on ``BotWireStorage``: its real class, driven by a
scripted LLM and a deterministic embedder, on every store and across processes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from crewai import Memory as CrewMemory
from crewai.memory.storage.backend import EmbeddingDimensionMismatchError, StorageBackend
from crewai.memory.types import MemoryRecord

from botwire.crewai import BotWireStorage

from .helpers import Server, run_python
from .scripted import ScriptedCrewLLM, word_embedder


@pytest.fixture(autouse=True)
def crewai_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where CrewAI would put its own LanceDB files."""
    folder = tmp_path / "crewai-data"
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(folder))
    return folder


def crew_memory(url: str, namespace: str = "crew") -> CrewMemory:
    return CrewMemory(
        storage=BotWireStorage(namespace, url=url),
        embedder=word_embedder,
        llm=ScriptedCrewLLM(model="scripted"),
    )


def test_it_is_a_crewai_storage_backend(tmp_path: Path) -> None:
    assert isinstance(BotWireStorage(url=f"sqlite:///{tmp_path / 'm.db'}"), StorageBackend)


def test_crewai_memory_remembers_recalls_and_forgets_in_botwire(
    url: str, crewai_data: Path
) -> None:
    memory = crew_memory(url)
    ana = memory.remember("Ana is vegetarian and loves hiking", scope="/users/ana",
                          categories=["preference"], importance=0.8)  # fmt: skip
    memory.remember("Bo prefers trains to planes", scope="/users/bo",
                    categories=["travel"], importance=0.6)  # fmt: skip
    memory.remember("The quarterly budget is 5000 EUR", scope="/team",
                    categories=["budget"], importance=0.9)  # fmt: skip
    assert ana is not None
    found = memory.recall("what does Ana eat, is she vegetarian", depth="shallow", limit=2)
    assert found[0].record.content == "Ana is vegetarian and loves hiking"
    within = memory.recall("prefers trains", scope="/users/bo", depth="shallow")
    assert [m.record.content for m in within] == ["Bo prefers trains to planes"]
    assert memory.list_scopes("/users") == ["/users/ana", "/users/bo"]
    assert memory.list_categories() == {"preference": 1, "travel": 1, "budget": 1}
    info = memory.info("/users")
    assert info.record_count == 2 and info.child_scopes == ["/users/ana", "/users/bo"]
    assert [r.content for r in memory.list_records("/team")] == ["The quarterly budget is 5000 EUR"]
    assert memory.forget(record_ids=[ana.id]) == 1
    assert memory.recall("vegetarian hiking", scope="/users/ana", depth="shallow") == []
    memory.reset("/users")
    assert [r.content for r in memory.list_records()] == ["The quarterly budget is 5000 EUR"]
    assert not (crewai_data / "memory").exists()  # nothing went to CrewAI's LanceDB files


def test_scopes_are_paths_not_string_prefixes(tmp_path: Path) -> None:
    storage = BotWireStorage(url=f"sqlite:///{tmp_path / 'scopes.db'}")
    storage.save([
        MemoryRecord(content="a", scope="/team", embedding=[1.0, 0.0]),
        MemoryRecord(content="b", scope="/teams", embedding=[1.0, 0.0]),
        MemoryRecord(content="c", scope="/team/x", embedding=[0.0, 1.0],
                     created_at=datetime.utcnow() - timedelta(days=2)),
    ])  # fmt: skip
    assert sorted(r.content for r, _ in storage.search([1.0, 0.0], "/team")) == ["a", "c"]
    assert storage.count("/team") == 2 and storage.count() == 3
    assert storage.delete(older_than=datetime.utcnow() - timedelta(days=1)) == 1
    with pytest.raises(EmbeddingDimensionMismatchError):
        storage.search([1.0, 0.0, 0.0])


@pytest.mark.slow
def test_a_crew_memory_is_shared_by_processes_through_a_server(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'served.db'}") as server:
        code = (
            "import sys\n"
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from crewai import Memory\n"
            "from botwire.crewai import BotWireStorage\n"
            "from scripted import ScriptedCrewLLM, word_embedder\n"
            f"memory = Memory(storage=BotWireStorage('shared', url={server.url!r}),"
            " embedder=word_embedder, llm=ScriptedCrewLLM(model='s'))\n"
        )
        run_python(code + "memory.remember('The client is Acme in Lisbon', scope='/clients',"
                   " categories=['client'], importance=0.7)\n")  # fmt: skip
        out = run_python(code + "print(memory.recall('who is the client', depth='shallow')"
                         "[0].record.content)\n")  # fmt: skip
        assert out.strip() == "The client is Acme in Lisbon"


def test_touching_a_deleted_record_brings_nothing_back(tmp_path: Path) -> None:
    storage = BotWireStorage(url=f"sqlite:///{tmp_path / 'touch.db'}")
    record = MemoryRecord(content="a", scope="/", embedding=[1.0, 0.0])
    storage.save([record])
    storage.touch_records([record.id, "deleted-meanwhile"])
    assert storage.count() == 1
    touched = storage.get_record(record.id)
    assert touched is not None and touched.last_accessed >= record.last_accessed
    assert [r.content for r, _ in storage.search([1.0, 0.0])] == ["a"]
