"""An AutoGen ``AssistantAgent`` on botwire memory and model context, with a scripted model:
what the tests run in this process and in a second one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from botwire.autogen import BotWireChatCompletionContext, BotWireMemory

MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny in {city}, 24°C"


def call_weather(city: str) -> CreateResult:
    """The model's turn that calls the ``weather`` tool."""
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id="call-1", name="weather", arguments=json.dumps({"city": city}))],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def agent(url: str, replies: Sequence[str | CreateResult]) -> tuple[AssistantAgent, Any]:
    """An agent that remembers the user in namespace ``user-7`` and keeps conversation
    ``chat-7``, and the replay client whose ``create_calls`` show what the model was sent."""
    client = ReplayChatCompletionClient(list(replies), model_info=MODEL_INFO)
    assistant = AssistantAgent(
        "assistant",
        model_client=client,
        tools=[weather],
        reflect_on_tool_use=True,
        system_message="You are a travel assistant.",
        memory=[BotWireMemory("user-7", url=url)],
        model_context=BotWireChatCompletionContext("chat-7", url=url),
    )
    return assistant, client


def sent(client: Any, call: int = 0) -> list[dict[str, Any]]:
    """The messages of one of the model's calls, as JSON data."""
    messages: list[LLMMessage] = client.create_calls[call]["messages"]
    return [message.model_dump(mode="json") for message in messages]
