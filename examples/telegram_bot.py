"""A Telegram bot that remembers each chat across restarts, deploys and machines.

    pip install 'botwire[examples]'
    TELEGRAM_BOT_TOKEN=123:ABC python examples/telegram_bot.py   # the real bot (long polling)
    python examples/telegram_bot.py                               # offline demo: no token needed

Each chat gets the botwire namespace ``telegram:{chat_id}``: its newest 20 messages under
``history`` (one atomic append per message, whatever the chat's length) and what the user asked
the bot to keep under ``facts``. Commands: ``/remember <fact>`` and ``/reset`` (forget the
conversation, keep the facts). Every worker of the bot that points at the same store
(``BOTWIRE_URL``) shares the memory.

The model is one function, :func:`complete`: it calls Claude when ``ANTHROPIC_API_KEY`` is set
and the ``anthropic`` package is installed, and otherwise answers from memory without a model.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters
from telegram.request import BaseRequest, RequestData

from botwire import Memory

WINDOW = 20
"""The newest messages of a chat the bot keeps and shows the model."""


def memory(chat_id: int) -> Memory:
    return Memory(f"telegram:{chat_id}")


def complete(system: str, messages: list[dict[str, str]]) -> str:
    """The model's answer to a conversation (replace this to use another model)."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        try:
            import anthropic
        except ImportError:
            pass
        else:
            reply = anthropic.Anthropic().messages.create(
                model="claude-sonnet-4-5", max_tokens=500, system=system, messages=messages
            )
            return "".join(block.text for block in reply.content if block.type == "text")
    earlier = sum(1 for message in messages[:-1] if message["role"] == "user")
    return f"You said {messages[-1]['content']!r}. ({earlier} earlier messages; {system})"


def system_prompt(facts: list[str]) -> str:
    if not facts:
        return "I know no facts about you yet."
    return "Facts about the user: " + "; ".join(facts)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message: into the chat's history, then the model's answer, kept too."""
    assert update.effective_chat and update.effective_message and update.effective_message.text
    mem = memory(update.effective_chat.id)
    mem.append("history", {"role": "user", "content": update.effective_message.text},
               max_len=WINDOW)  # fmt: skip
    facts, history = mem.get("facts", []), mem.get("history")
    answer = await asyncio.to_thread(complete, system_prompt(facts), history)
    mem.append("history", {"role": "assistant", "content": answer}, max_len=WINDOW)
    await update.effective_message.reply_text(answer)


async def on_remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/remember <fact>``: a fact the model sees in every later conversation of this chat."""
    assert update.effective_chat and update.effective_message
    fact = " ".join(context.args or []).strip()
    if not fact:
        await update.effective_message.reply_text("Usage: /remember <something about you>")
        return
    count = memory(update.effective_chat.id).append("facts", fact, max_len=100)
    known = f"{count} fact{'s' if count != 1 else ''}"
    await update.effective_message.reply_text(f"I will remember that ({known} about you).")


async def on_reset(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/reset``: forget the conversation; the facts stay."""
    assert update.effective_chat and update.effective_message
    memory(update.effective_chat.id).delete("history")
    await update.effective_message.reply_text("Conversation forgotten. Your facts are kept.")


def build(
    token: str, request: BaseRequest | None = None
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot's application; ``request`` replaces the connection to Telegram (tests, demo)."""
    builder = Application.builder().token(token)
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    app.add_handler(CommandHandler("remember", on_remember))
    app.add_handler(CommandHandler("reset", on_reset))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    return app


# -- offline: Telegram's side played on this machine --------------------------------------------


class OfflineTelegram(BaseRequest):
    """Telegram's Bot API as seen by the bot, without the network: it knows who the bot is and
    keeps what the bot sends (``sent``)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    @property
    def read_timeout(self) -> float:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:  # fmt: skip
        endpoint = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        bot = {"id": 1, "is_bot": True, "first_name": "Memory bot", "username": "memory_bot"}
        if endpoint == "getMe":
            result: Any = bot
        elif endpoint == "sendMessage":
            self.sent.append(params)
            chat = {"id": int(params["chat_id"]), "type": "private"}
            result = {"message_id": len(self.sent), "date": 0, "chat": chat, "from": bot,
                      "text": params["text"]}  # fmt: skip
        else:
            result = True
        return 200, json.dumps({"ok": True, "result": result}).encode()


def text_update(chat_id: int, text: str, update_id: int = 1) -> dict[str, Any]:
    """A Telegram update of a user's text message, as the Bot API sends it."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Ana"}
    message: dict[str, Any] = {
        "message_id": update_id, "date": 0, "chat": {"id": chat_id, "type": "private"},
        "from": user, "text": text,
    }  # fmt: skip
    if text.startswith("/"):
        command = text.split()[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"update_id": update_id, "message": message}


async def demo() -> None:
    telegram = OfflineTelegram()
    app = build("123:offline-demo", telegram)
    memory(4242).clear()
    async with app:
        for n, text in enumerate(
            [
                "/remember I am vegetarian",
                "Hi! Any dinner ideas in Lisbon?",
                "/reset",
                "Hello again",
            ]
        ):
            await app.process_update(Update.de_json(text_update(4242, text, n), app.bot))
            print(f"> {text}\n  {telegram.sent[-1]['text']}")
    print("stored:", memory(4242).get_many(["facts", "history"]))


def main() -> None:
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    if token:
        build(token).run_polling()
    else:
        print("No TELEGRAM_BOT_TOKEN: an offline demo with a simulated chat.\n")
        asyncio.run(demo())


if __name__ == "__main__":
    main()
