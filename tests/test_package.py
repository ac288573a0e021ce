"""The package's public surface, its weight at import, and its debug log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import botwire
from botwire import Memory

from .helpers import run_python


def test_public_names() -> None:
    assert botwire.__all__ == [
        "AsyncMemory",
        "BackendUnavailable",
        "BotWireError",
        "Change",
        "ChangesPage",
        "Entry",
        "Forbidden",
        "Hit",
        "InvalidKey",
        "InvalidRequest",
        "InvalidValue",
        "Item",
        "Memory",
        "MissingExtra",
        "Overloaded",
        "QuotaExceeded",
        "Unauthorized",
        "ValueTooLarge",
        "VersionConflict",
        "WrongType",
        "__version__",
        "alist_namespaces",
        "asearch_namespaces",
        "list_namespaces",
        "search_namespaces",
    ]
    for name in botwire.__all__:
        assert hasattr(botwire, name)


def test_every_error_is_a_botwire_error() -> None:
    for name in botwire.__all__:
        obj = getattr(botwire, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, botwire.BotWireError)
    assert issubclass(botwire.InvalidKey, ValueError)
    assert issubclass(botwire.InvalidValue, TypeError)
    assert issubclass(botwire.WrongType, TypeError)


def test_import_botwire_imports_no_framework_and_no_server() -> None:
    out = run_python(
        """
        import json, sys
        import botwire
        from botwire import Memory
        print(json.dumps(sorted(sys.modules)))
        """
    )
    modules = json.loads(out)
    heavy = (
        "langchain",
        "langchain_core",
        "crewai",
        "autogen",
        "autogen_core",
        "autogen_agentchat",
        "autogen_ext",
        "langgraph",
        "mcp",
        "fastapi",
        "starlette",
        "uvicorn",
        "pydantic",
        "httpx",
        "psycopg",
        "numpy",
        "wordllama",
        "botwire.server",
    )
    loaded = [m for m in modules if m.split(".")[0] in heavy or m.startswith("botwire.server")]
    assert loaded == []


def test_debug_logs_every_operation_with_its_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOTWIRE_DEBUG", "1")
    mem = Memory("dbg", f"sqlite:///{tmp_path / 'd.db'}")
    with caplog.at_level(logging.DEBUG, logger="botwire"):
        mem.set("k", 1)
        mem.get("k")
        with pytest.raises(botwire.WrongType):
            mem.append("k", 2)
    messages = [r.getMessage() for r in caplog.records if r.name == "botwire"]
    assert len(messages) == 3
    assert "Put" in messages[0] and "'k'" in messages[0] and " ms" in messages[0]
    assert "Get" in messages[1]
    assert "Append" in messages[2] and "failed" in messages[2]


def test_no_debug_log_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("BOTWIRE_DEBUG", raising=False)
    mem = Memory("dbg", f"sqlite:///{tmp_path / 'd.db'}")
    with caplog.at_level(logging.DEBUG, logger="botwire"):
        mem.set("k", 1)
    assert [r for r in caplog.records if r.name == "botwire"] == []


def test_repr_masks_passwords() -> None:
    from botwire.config import mask_url

    assert mask_url("postgresql://bob:secret@db/x") == "postgresql://bob:***@db/x"
    assert mask_url("http://host:8765") == "http://host:8765"


MINIMUM_VERSIONS = {
    "langchain-core": "0.3",
    "langchain-classic": "1.0",
    "crewai": "1.0",
    "autogen-core": "0.7",
    "autogen-agentchat": "0.7",
    "autogen-ext": "0.7",
    "pyautogen": "0.10",
    "langgraph": "1.0",
    "langgraph-checkpoint": "3.0",
    "mcp": "1.30",
    "autogen": "0.14",
    "ag2": "1.2",
}
"""The frameworks the dev extras install, at versions the adapters are written for. A resolver
that meets conflicting extras can fall back to an ancient placeholder release silently."""


def test_the_all_extra_holds_every_integration_and_dev_installs_it() -> None:
    """CI installs the dev extra, so a resolver that could not settle ``all`` fails CI."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    (everything,) = extras["all"]
    assert everything.startswith("botwire[") and everything.endswith("]")
    not_integrations = {"all", "dev", "notebooks", "examples"}
    assert set(everything[len("botwire[") : -1].split(",")) == set(extras) - not_integrations
    assert "botwire[all,notebooks,examples]" in extras["dev"]
    assert extras["mcp"] == ["mcp>=1.30,<3"]  # 1.x and 2.x; beside crewai (mcp<2), 1.x


@pytest.mark.parametrize(("distribution", "minimum"), sorted(MINIMUM_VERSIONS.items()))
def test_installed_framework_versions(distribution: str, minimum: str) -> None:
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version(distribution)) >= Version(minimum)


def test_both_ag2_lines_install_beside_autogen_0_7() -> None:
    """AG2 1.x installs as the ``ag2`` package, its classic API (0.14) as ``autogen``, beside
    Microsoft's AutoGen 0.7 (``autogen_core``, ``autogen_agentchat``): all import, each at its
    own series."""
    from importlib.metadata import version

    import ag2
    import autogen
    import autogen_agentchat

    assert version("ag2").startswith("1.") and ag2.Agent.__module__.startswith("ag2")
    assert version("autogen").startswith("0.14.") and autogen.__version__.startswith("0.14.")
    assert version("autogen-core").startswith("0.7.")
    assert autogen_agentchat.__name__ == "autogen_agentchat"


@pytest.mark.parametrize("distribution", ["autogen-core", "autogen-agentchat", "autogen-ext"])
def test_autogen_is_the_0_7_series(distribution: str) -> None:
    """Beside crewai, a resolver without bounds settles on autogen-core 0.0.2, an empty
    placeholder; botwire.autogen is written for AutoGen 0.7."""
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version(distribution)).release[:2] == (0, 7)


NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs() -> None:
    assert [path.stem for path in NOTEBOOKS] == [
        "01_quickstart", "02_langchain", "03_crewai", "04_autogen", "05_self_hosting",
        "06_performance",
    ]  # fmt: skip
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        assert notebook["metadata"]["kernelspec"]["name"] == "python3"
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


def test_the_readme_links_every_notebook_and_example() -> None:
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    for path in [*NOTEBOOKS, *sorted((root / "examples").glob("*.py"))]:
        assert f"]({path.relative_to(root)})" in readme, path.name


def test_words_are_stemmed_by_snowballs_c_build_as_its_python_one_stems_them() -> None:
    """On CPython the index stems with PyStemmer (Snowball in C: a word the index has not seen
    costs under a microsecond rather than tens, which ids and hashes make frequent), and a
    process with the pure-Python stemmer alone, on the same store, stems every word the same."""
    import re

    import snowballstemmer
    import Stemmer  # type: ignore[import-not-found]
    from snowballstemmer.english_stemmer import EnglishStemmer

    from botwire.backends.search.text import IRREGULAR, stem

    assert isinstance(snowballstemmer.stemmer("english"), Stemmer.Stemmer)
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    words = sorted(set(re.findall(r"[a-z0-9]+", readme.lower())) | set(IRREGULAR))
    assert len(words) > 2000
    python = EnglishStemmer()
    assert [stem(word) for word in words] == [
        python.stemWord(IRREGULAR.get(word, word)) for word in words
    ]
