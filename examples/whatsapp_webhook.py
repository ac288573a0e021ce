"""A WhatsApp bot behind a Twilio webhook that remembers each phone number.

    pip install 'botwire[examples]'
    python examples/whatsapp_webhook.py --serve   # the webhook on :8000; point Twilio at /whatsapp
    python examples/whatsapp_webhook.py           # offline demo: simulated messages, no network

Twilio posts each incoming message as a form (``From=whatsapp:+1234567890``, ``Body=...``) and
sends the TwiML ``<Message>`` the webhook answers. Each phone number is a botwire namespace of
its own, ``whatsapp:+1234567890``, holding the newest 20 messages under ``history``: every
worker of the webhook (``uvicorn --workers 4``, or several machines on one ``BOTWIRE_URL``)
shares it. With ``TWILIO_AUTH_TOKEN`` set, a request without a valid ``X-Twilio-Signature`` is
refused.

The model is one function, :func:`complete`: Claude when ``ANTHROPIC_API_KEY`` is set and the
``anthropic`` package is installed, otherwise an answer from memory without a model.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import sys
from xml.sax.saxutils import escape

from fastapi import FastAPI, Form, HTTPException, Request, Response

from botwire import AsyncMemory

WINDOW = 20
"""The newest messages of a conversation the webhook keeps and shows the model."""

app = FastAPI(title="WhatsApp bot with botwire memory")


def complete(messages: list[dict[str, str]]) -> str:
    """The model's answer to a conversation (replace this to use another model)."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        try:
            import anthropic
        except ImportError:
            pass
        else:
            reply = anthropic.Anthropic().messages.create(
                model="claude-sonnet-4-5", max_tokens=300, messages=messages,
                system="You are a helpful assistant on WhatsApp. Answer in a few lines.",
            )  # fmt: skip
            return "".join(block.text for block in reply.content if block.type == "text")
    turn = sum(1 for message in messages if message["role"] == "user")
    return f"This is message {turn} of our conversation; you said {messages[-1]['content']!r}."


def signature(url: str, form: dict[str, str], auth_token: str) -> str:
    """Twilio's request signature: HMAC-SHA1 of the URL and the sorted form fields."""
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def check_signature(request: Request) -> None:
    auth_token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not auth_token:
        return
    form = {name: str(value) for name, value in (await request.form()).items()}
    expected = signature(str(request.url), form, auth_token)
    if not hmac.compare_digest(expected, request.headers.get("x-twilio-signature", "")):
        raise HTTPException(403, "invalid Twilio signature")


@app.post("/whatsapp")
async def whatsapp(request: Request, From: str = Form(...), Body: str = Form("")) -> Response:
    """An incoming WhatsApp message; the answer goes back as TwiML."""
    await check_signature(request)
    memory = AsyncMemory(From)  # the namespace is the sender: whatsapp:+1234567890
    await memory.append("history", {"role": "user", "content": Body}, max_len=WINDOW)
    answer = await asyncio.to_thread(complete, await memory.get("history"))
    await memory.append("history", {"role": "assistant", "content": answer}, max_len=WINDOW)
    return Response(twiml(answer), media_type="application/xml")


def twiml(answer: str) -> str:
    """The reply Twilio sends to the user."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(answer)}</Message></Response>"
    )


def demo() -> None:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    for sender, text in [
        ("whatsapp:+351912345678", "Olá! Is the museum open on Monday?"),
        ("whatsapp:+15551234567", "Hi, what's the weather tomorrow?"),
        ("whatsapp:+351912345678", "And on Tuesday?"),
    ]:
        answer = client.post("/whatsapp", data={"From": sender, "Body": text})
        print(f"{sender} > {text}\n  {answer.text}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=8000)
    else:
        print("An offline demo with simulated messages (--serve runs the webhook).\n")
        demo()
