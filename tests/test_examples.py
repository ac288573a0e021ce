"""The examples: each runs top to bottom with no key and no network, and its handlers, driven
with fake updates and a fake model, keep what they should in botwire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from botwire import Memory

from .helpers import ROOT, assert_stayed_local, child_env

EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the examples' memories open by default (``BOTWIRE_URL``)."""
    url = f"sqlite:///{tmp_path / 'examples.db'}"
    monkeypatch.setenv("BOTWIRE_URL", url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return url


@pytest.mark.parametrize(
    ("example", "says"),
    [
        ("quickstart", "this bot has started 1 time(s)"),
        ("telegram_bot", "Conversation forgotten. Your facts are kept."),
        ("whatsapp_webhook", "This is message 2 of our conversation"),
        ("claude_agent", 'From memory: diet: "vegetarian"; home city: "Porto"'),
    ],
)
def test_each_example_runs_top_to_bottom_without_a_key(
    tmp_path: Path, example: str, says: str
) -> None:
    env = child_env(BOTWIRE_URL=f"sqlite:///{tmp_path / 'run.db'}")
    for secret in ("ANTHROPIC_API_KEY", "TELEGRAM_BOT_TOKEN", "TWILIO_AUTH_TOKEN"):
        env.pop(secret, None)
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-W", "always::FutureWarning",
         str(EXAMPLES / f"{example}.py")],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert says in done.stdout
    assert "DeprecationWarning" not in done.stderr and "FutureWarning" not in done.stderr
    assert_stayed_local(done.stderr)


# -- telegram_bot.py ----------------------------------------------------------------------------


class FakeModel:
    """A model that answers with a counter and keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> str:
        self.calls.append(args)
        return f"answer {len(self.calls)}"


async def test_the_telegram_bot_keeps_a_window_per_chat_and_its_commands_work(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = load("telegram_bot")
    model = FakeModel()
    monkeypatch.setattr(bot, "complete", model)
    telegram = bot.OfflineTelegram()
    app = bot.build("123:test", telegram)
    texts = ["/remember I am vegetarian", *(f"message {n}" for n in range(15)), "/remember"]
    async with app:
        for n, text in enumerate(texts):
            await app.process_update(bot.Update.de_json(bot.text_update(7, text, n), app.bot))
        await app.process_update(bot.Update.de_json(bot.text_update(8, "hi", 99), app.bot))
    replies = [sent["text"] for sent in telegram.sent if int(sent["chat_id"]) == 7]
    assert replies[0] == "I will remember that (1 fact about you)."
    assert replies[1:16] == [f"answer {n}" for n in range(1, 16)]
    assert replies[16] == "Usage: /remember <something about you>"
    chat = Memory("telegram:7", db)
    history = chat.get("history")
    assert len(history) == bot.WINDOW
    assert history[-1] == {"role": "assistant", "content": "answer 15"}
    assert history[0] == {"role": "user", "content": "message 5"}
    system, seen = model.calls[14]
    assert system == "Facts about the user: I am vegetarian"
    assert len(seen) == bot.WINDOW and seen[-1] == {"role": "user", "content": "message 14"}
    assert Memory("telegram:8", db).get("history") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "answer 16"}
    ]  # fmt: skip
    assert model.calls[15][0] == "I know no facts about you yet."

    second_worker = bot.build("123:test", bot.OfflineTelegram())
    async with second_worker:
        reset = bot.text_update(7, "/reset", 100)
        await second_worker.process_update(bot.Update.de_json(reset, second_worker.bot))
    assert chat.get("history") is None and chat.get("facts") == ["I am vegetarian"]


# -- whatsapp_webhook.py ------------------------------------------------------------------------


@pytest.fixture
def webhook(db: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Any, FakeModel]:
    from fastapi.testclient import TestClient

    module = load("whatsapp_webhook")
    model = FakeModel()
    monkeypatch.setattr(module, "complete", model)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    return module, TestClient(module.app), model


def test_the_whatsapp_webhook_keeps_the_last_20_messages_per_number(webhook: Any, db: str) -> None:
    module, client, model = webhook
    for n in range(13):
        answer = client.post("/whatsapp", data={"From": "whatsapp:+1234567890", "Body": f"m{n}"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/xml"
        assert answer.text.endswith(f"<Response><Message>answer {n + 1}</Message></Response>")
    client.post("/whatsapp", data={"From": "whatsapp:+4915112345678", "Body": "Hallo"})
    history = Memory("whatsapp:+1234567890", db).get("history")
    assert len(history) == module.WINDOW == 20
    assert history[0] == {"role": "user", "content": "m3"}
    assert history[-1] == {"role": "assistant", "content": "answer 13"}
    assert model.calls[-1][0] == [{"role": "user", "content": "Hallo"}]
    assert len(model.calls[12][0]) == 20  # the model sees the window, not the whole chat


def test_the_whatsapp_answer_is_escaped_twiml(
    webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, client, _ = webhook
    monkeypatch.setattr(module, "complete", lambda messages: "Fish & <chips>")
    answer = client.post("/whatsapp", data={"From": "whatsapp:+1", "Body": "x"})
    assert "<Message>Fish &amp; &lt;chips&gt;</Message>" in answer.text


def test_the_whatsapp_webhook_checks_twilio_signatures(
    webhook: Any, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client, _ = webhook
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    form = {"From": "whatsapp:+1234567890", "Body": "hi"}
    url = "http://testserver/whatsapp"
    payload = url + "".join(name + form[name] for name in sorted(form))
    good = base64.b64encode(hmac.new(b"secret", payload.encode(), hashlib.sha1).digest()).decode()
    refused = [
        client.post("/whatsapp", data=form),
        client.post("/whatsapp", data=form, headers={"X-Twilio-Signature": "forged"}),
        client.post("/whatsapp", data={**form, "Body": "changed"},
                    headers={"X-Twilio-Signature": good}),
    ]  # fmt: skip
    assert [answer.status_code for answer in refused] == [403, 403, 403]
    assert Memory("whatsapp:+1234567890", db).keys() == []
    accepted = client.post("/whatsapp", data=form, headers={"X-Twilio-Signature": good})
    assert accepted.status_code == 200
    assert len(Memory("whatsapp:+1234567890", db).get("history")) == 2


def test_a_whatsapp_post_without_a_sender_writes_nothing(webhook: Any, db: str) -> None:
    _, client, _ = webhook
    assert client.post("/whatsapp", data={"Body": "who am I?"}).status_code == 422
    assert client.post("/whatsapp", data={"From": "", "Body": "x"}).status_code in (400, 422)


# -- claude_agent.py ----------------------------------------------------------------------------


class ScriptedClaude:
    """Replies with prepared content blocks; keeps each call's system prompt and tools."""

    def __init__(self, *replies: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = []

    def __call__(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        self.calls.append((system, [dict(m) for m in messages], tools))
        return self.replies.pop(0)


def tool_use(name: str, **arguments: Any) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": f"call-{name}", "name": name, "input": arguments}]


def text(answer: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": answer}]


def test_the_claude_agent_stores_facts_and_starts_the_next_conversation_with_them(
    db: str,
) -> None:
    example = load("claude_agent")
    first = ScriptedClaude(
        tool_use("remember", key="diet", value="vegetarian"),
        tool_use("remember", key="trip", value={"city": "Lisbon", "month": "May"}),
        text("Noted both."),
    )
    agent = example.Agent("ana", model=first)
    assert agent.ask("I'm vegetarian and I go to Lisbon in May.") == "Noted both."
    system, _, tools = first.calls[0]
    assert system.endswith("What you know about this user:\nnothing yet")
    assert [tool["name"] for tool in tools] == [
        "remember", "recall", "list_memory", "forget", "search_memory", "append_note", "read_memory"
    ]  # fmt: skip
    assert tools[0]["input_schema"]["required"] == ["key", "value"]
    _, messages, _ = first.calls[1]
    assert messages[-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "call-remember", "content": "stored 'diet'"}
    ]
    stored = Memory("claude-agent:ana", db)
    assert stored.get("trip") == {"city": "Lisbon", "month": "May"}

    later = ScriptedClaude(text("You are vegetarian."))
    assert example.Agent("ana", model=later).ask("What do I eat?") == "You are vegetarian."
    system, messages, _ = later.calls[0]
    assert system.endswith(
        'What you know about this user:\n- diet: "vegetarian"\n'
        '- trip: {"city": "Lisbon", "month": "May"}'
    )
    assert messages == [{"role": "user", "content": "What do I eat?"}]
    assert "nothing yet" in example.Agent("bob", model=later).system_prompt()


def test_bad_tool_input_from_the_model_is_a_tool_result_and_writes_nothing(db: str) -> None:
    example = load("claude_agent")
    model = ScriptedClaude(
        tool_use("remember", key="", value="x"),
        tool_use("remember", key="k"),
        tool_use("drop_database"),
        text("Sorry."),
    )
    assert example.Agent("carol", model=model).ask("hello") == "Sorry."
    results = [call[1][-1]["content"][0]["content"] for call in model.calls[1:]]
    assert "key must not be empty" in results[0]
    assert "value: Field required" in results[1]
    assert results[2].startswith("there is no tool 'drop_database' here")
    assert Memory("claude-agent:carol", db).keys() == []


def test_the_claude_agent_stops_a_model_that_only_calls_tools(db: str) -> None:
    example = load("claude_agent")
    looping = ScriptedClaude(*[tool_use("list_memory") for _ in range(5)])
    answer = example.Agent("dan", model=looping).ask("hi", max_steps=5)
    assert answer == "(stopped: too many tool calls in a row)"
