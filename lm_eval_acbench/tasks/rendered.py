"""Base class for tasks whose prompt is a message list (and tools) rendered per sample.

lm-eval's ``doc_to_text`` returns one string, which ``--apply_chat_template`` would wrap as one
user message. These tasks override ``fewshot_context`` instead and build the prompt from the
document's whole message list through :func:`lm_eval_acbench.prompting.for_model`: rendered once
through the evaluated model's own template (tools included) for local models, the message list
itself (lm-eval's ``JsonChatStr``, from the ``chat_template`` callable lm-eval passes) for chat
APIs. ``--system_instruction`` is prepended to the dialogue's system message. Each prompt's
rendering is remembered so that ``process_results`` can log it.
"""

from __future__ import annotations

import json
from typing import Any

from lm_eval.api.task import ConfigurableTask

from lm_eval_acbench import data, prompting
from lm_eval_acbench.chat import Rendered


class RenderedMessagesTask(ConfigurableTask):
    """A generate_until task over ``doc["messages"]``; subclasses may supply per-sample tools."""

    native_tools = False  # True: the tools go to a chat API as the request's ``tools``

    def __init__(self, config: dict | None = None) -> None:
        # lm-eval passes the YAML's `class:` key along; ConfigurableTask does not accept it.
        config = {k: v for k, v in (config or {}).items() if k != "class"}
        # Scoring is this class's process_results method. Saying so (lm-eval's own marker for
        # it) stops ConfigurableTask from looking each metric name up in the HF `evaluate`
        # library, which retries over the network: about 1.5 s per metric, a minute per group.
        config.setdefault("process_results", "process_results")
        super().__init__(config=config)
        self._renders: dict[str, Rendered] = {}

    def tools(self, doc: dict) -> list | None:
        """The tool schemas offered with this sample (None: no tools)."""
        return None

    def messages(self, doc: dict, system_instruction: str | None = None) -> list[dict]:
        """The dialogue, with ``system_instruction`` first in its system message."""
        messages = [dict(m) for m in data.doc_json(doc, "messages", []) if isinstance(m, dict)]
        if system_instruction:
            if messages and messages[0].get("role") == "system":
                messages[0]["content"] = f"{system_instruction}\n\n{messages[0].get('content') or ''}"
            else:
                messages.insert(0, {"role": "system", "content": system_instruction})
        return messages

    def render(self, doc: dict, system_instruction: str | None = None, chat_template=None):
        """The prompt for lm-eval (text, or a message list for chat APIs); remembers how."""
        rendered, prompt = prompting.for_model(
            self.messages(doc, system_instruction), self.tools(doc), chat_template,
            metadata=self.config.metadata, native_tools=self.native_tools,
        )
        self._renders[str(doc.get("id"))] = rendered
        return prompt

    def rendered(self, doc: dict) -> Rendered:
        """How this doc's prompt was rendered (rendering it now if it was not yet)."""
        key = str(doc.get("id"))
        if key not in self._renders:
            if self.native_tools:  # only a tools-sending chat model can render it
                return Rendered("", "messages+native_tools", note="not rendered in this process")
            self.render(doc)
        return self._renders[key]

    def fewshot_context(
        self,
        doc,
        num_fewshot,
        system_instruction=None,
        apply_chat_template=False,
        fewshot_as_multiturn=False,
        chat_template=None,
        gen_prefix=None,
    ):
        if num_fewshot:
            # Each item is a recorded dialogue with its own instructions (T-Eval, BFCL are
            # zero-shot); silently dropping the request would report a 0-shot score as N-shot.
            raise ValueError(
                f"{self.config.task} is zero-shot (each item is a whole recorded dialogue); "
                f"--num_fewshot {num_fewshot} is not supported for it"
            )
        return self.render(doc, system_instruction, chat_template if apply_chat_template else None)


def doc_to_text(doc: dict) -> str:
    """The last user message: what lm-eval shows and logs; the real prompt is ``render``'s."""
    messages = data.doc_json(doc, "messages", [])
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


def doc_to_target(doc: dict) -> str:
    gold = doc.get("ground_truth", "")
    return gold if isinstance(gold, str) else json.dumps(gold)
