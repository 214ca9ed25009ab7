"""Base class for tasks whose prompt is a message list (and tools) rendered per sample.

lm-eval's ``doc_to_text`` returns one string and ``--apply_chat_template`` would wrap it in the
chat template a second time. These tasks instead override ``fewshot_context`` to return the
message list rendered once through the evaluated model's own template (``chat.render_messages``),
with or without ``--apply_chat_template``, and remember how each prompt was rendered so that
``process_results`` can log it.
"""

from __future__ import annotations

import json
from typing import Any

from lm_eval.api.task import ConfigurableTask

from lm_eval_acbench import data
from lm_eval_acbench.chat import render_messages


class RenderedMessagesTask(ConfigurableTask):
    """A generate_until task over ``doc["messages"]``; subclasses may supply per-sample tools."""

    def __init__(self, config: dict | None = None) -> None:
        # lm-eval passes the YAML's `class:` key along; ConfigurableTask does not accept it.
        config = {k: v for k, v in (config or {}).items() if k != "class"}
        # Scoring is this class's process_results method. Saying so (lm-eval's own marker for
        # it) stops ConfigurableTask from looking each metric name up in the HF `evaluate`
        # library, which retries over the network: about 1.5 s per metric, a minute per group.
        config.setdefault("process_results", "process_results")
        super().__init__(config=config)
        self._renders: dict[str, Any] = {}

    def tools(self, doc: dict) -> list | None:
        """The tool schemas offered with this sample (None: no tools)."""
        return None

    def render(self, doc: dict, system_instruction: str | None = None):
        messages = data.doc_json(doc, "messages", [])
        if system_instruction:
            messages = [{"role": "system", "content": system_instruction}, *messages]
        rendered = render_messages(messages, tools=self.tools(doc), metadata=self.config.metadata)
        self._renders[str(doc.get("id"))] = rendered
        return rendered

    def rendered(self, doc: dict):
        """How this doc's prompt was rendered (rendering it now if it was not yet)."""
        return self._renders.get(str(doc.get("id"))) or self.render(doc)

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
        return self.render(doc, system_instruction).text


def doc_to_text(doc: dict) -> str:
    """The last user message: what lm-eval shows and logs; the real prompt is ``render``'s."""
    messages = data.doc_json(doc, "messages", [])
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


def doc_to_target(doc: dict) -> str:
    gold = doc.get("ground_truth", "")
    return gold if isinstance(gold, str) else json.dumps(gold)
