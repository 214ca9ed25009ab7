"""``acbench-chat-completions``: lm-eval's chat-completions client with native function calling.

BFCL scores a model in two modes: *prompting* (functions described in the prompt, calls parsed
from the reply text) and *native function calling* (FC: the functions go to the server as the
request's ``tools`` and the server's parsed ``tool_calls`` are scored). lm-eval's
``local-chat-completions`` sends messages only and returns only the reply's text. This model
type is that client (same arguments, ``--apply_chat_template`` required) plus:

* :meth:`tools_prompt` -- what ``acbench_function_call_native_*`` tasks hand lm-eval as the
  prompt: lm-eval's ``JsonChatStr`` holding ``{"messages": [...], "tools": [...]}``;
* the request then carries ``tools`` and ``tool_choice: "auto"`` beside the messages (other
  prompts are sent exactly as ``local-chat-completions`` sends them);
* a reply with ``tool_calls`` becomes the text :func:`calls_text` writes -- a JSON list of
  ``{"name": ..., "arguments": {...}}``, the form ``metrics.tool_calls.parse_tool_calls`` reads;
  arguments a server returns as non-JSON text stay a string (the scorer then rejects the call
  with a reason); a reply without tool calls is its text, as in lm-eval.

The server must parse tool calls itself (``vllm serve ... --enable-auto-tool-choice
--tool-call-parser hermes`` for Qwen/Hermes-style models).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion

log = logging.getLogger(__name__)

TOOLS_KEY = "acbench_tools_request"  # marks a prompt object that carries tools


def calls_text(tool_calls: Any) -> str:
    """The OpenAI ``tool_calls`` of one reply as a JSON list of ``{"name", "arguments"}``."""
    calls = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                pass  # kept as the server's text: scored as a malformed call, with the reason
        calls.append({"name": function.get("name"), "arguments": arguments})
    return json.dumps(calls, ensure_ascii=False)


class ToolCallingChatCompletion(LocalChatCompletion):
    """``local-chat-completions`` that can send tools and return the server's tool calls."""

    def tools_prompt(self, messages: list[dict], tools: list[dict]) -> JsonChatStr:
        """The prompt of a native function-calling request (see the module docstring)."""
        return JsonChatStr(json.dumps({TOOLS_KEY: True, "messages": messages, "tools": tools},
                                      ensure_ascii=False))

    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None,
                        **kwargs) -> dict:
        # lm-eval's create_message has decoded the JsonChatStr: a tools prompt is a dict here
        tools = None
        if isinstance(messages, dict) and messages.get(TOOLS_KEY):
            tools = messages.get("tools") or None
            messages = messages.get("messages")
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed,
                                          eos=eos, **kwargs)
        if tools:
            payload["tools"] = tools
            payload["tool_choice"] = "auto"
        return payload

    def parse_generations(self, outputs, **kwargs) -> list[str]:
        texts = super().parse_generations(outputs, **kwargs)
        replies = []
        for out in outputs if isinstance(outputs, list) else [outputs]:
            choices = out.get("choices") if isinstance(out, dict) else None
            if not isinstance(choices, list) or not choices:
                replies.append(None)
                continue
            ordered = [None] * len(choices)
            for position, choice in enumerate(choices):
                index = choice.get("index", position) if isinstance(choice, dict) else position
                message = choice.get("message") if isinstance(choice, dict) else None
                if isinstance(index, int) and 0 <= index < len(ordered) and isinstance(message, dict):
                    ordered[index] = message.get("tool_calls")
            replies.extend(ordered)
        if len(replies) != len(texts):  # lm-eval's parser fell back on a malformed reply
            return texts
        return [calls_text(calls) if calls else text for text, calls in zip(texts, replies)]
