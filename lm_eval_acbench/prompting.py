"""How a message-list prompt (and its tools) reaches the lm-eval model being evaluated.

Under ``--apply_chat_template`` lm-eval hands each task's ``fewshot_context`` the model's own
``apply_chat_template`` method as ``chat_template``. What that method returns says how the model
takes prompts:

* a string -- the model renders locally (``hf``, ``acbench-hf``, ``vllm``, ``local-completions``
  with an HF tokenizer). The messages are rendered here through :mod:`lm_eval_acbench.chat` with
  the model's own tokenizer and its template settings (:func:`template_kwargs`:
  ``--chat_template_args`` / ``enable_thinking``, vLLM's resolved template, a template named by
  ``--apply_chat_template NAME``), so tools reach templates that take them and templates that
  reject a role get the fallbacks of ``chat.py`` instead of losing the message;
* lm-eval's ``JsonChatStr`` or a message list -- a chat API renders on its server. The task hands
  lm-eval the message list from that same method (tools described in the system message,
  ``function`` results as user messages, :func:`lm_eval_acbench.chat.api_messages`), or, for
  native function calling, from ``lm.tools_prompt`` of ``acbench-chat-completions``
  (:mod:`lm_eval_acbench.tool_chat`), which sends the tools as the request's ``tools``.

Without ``--apply_chat_template`` tasks render through the tokenizer named in task metadata, as
before (``chat.render_messages``).
"""

from __future__ import annotations

import json
import weakref
from functools import partial
from typing import Any, Callable

from lm_eval_acbench import chat, run_args

_PROBE = [{"role": "user", "content": "ping"}]
_local: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


def model_of(chat_template: Callable | None):
    """The lm-eval model whose bound ``apply_chat_template`` is ``chat_template`` (or None)."""
    while isinstance(chat_template, partial):
        chat_template = chat_template.func
    return getattr(chat_template, "__self__", None)


def renders_locally(lm, chat_template: Callable) -> bool:
    """Whether the model's ``apply_chat_template`` returns prompt text (checked once per model).

    Such a model's tokenizer renders here (``chat.render_messages``), which also covers a
    tokenizer without a chat template (the plain format) instead of failing."""
    try:
        return _local[lm]
    except (KeyError, TypeError):
        pass
    try:
        local = isinstance(chat_template(_PROBE), str)
    except Exception:  # a local tokenizer without a chat template fails on any message list
        local = getattr(lm, "tokenizer", None) is not None
    try:
        _local[lm] = local
    except TypeError:  # not weak-referenceable: probe again next time
        pass
    return local


def template_kwargs(lm) -> dict:
    """The keyword arguments the model itself gives its tokenizer's ``apply_chat_template``.

    ``chat_template_args`` (hf, vllm; includes ``enable_thinking``), vLLM's ``enable_thinking``
    and resolved ``hf_chat_template``, and the template named by ``--apply_chat_template NAME``
    (resolved by the model's own ``chat_template(name)``, which rejects unknown names)."""
    kwargs = dict(getattr(lm, "chat_template_args", None) or {})
    thinking = getattr(lm, "enable_thinking", None)
    if thinking is not None and "enable_thinking" not in kwargs and hasattr(lm, "hf_chat_template"):
        kwargs["enable_thinking"] = thinking
    resolved = getattr(lm, "hf_chat_template", None)
    if isinstance(resolved, str) and resolved:
        kwargs["chat_template"] = resolved
    name = run_args.chat_template_name()
    if name and callable(getattr(lm, "chat_template", None)):
        selected = lm.chat_template(name)
        if isinstance(selected, str) and selected:
            kwargs["chat_template"] = selected
    return kwargs


def for_model(messages: list[dict], tools: list | None, chat_template: Callable | None, *,
              metadata: dict | None = None, native_tools: bool = False) -> tuple[chat.Rendered, Any]:
    """(how it was rendered, the prompt to hand lm-eval) for ``messages`` and ``tools``.

    ``chat_template`` is what lm-eval passed ``fewshot_context`` (None without
    ``--apply_chat_template``). ``native_tools``: the tools must go to the server as ``tools=``
    (raises ValueError when the model cannot do that).
    """
    lm = model_of(chat_template) if chat_template is not None else None
    if native_tools and not callable(getattr(lm, "tools_prompt", None)):
        raise ValueError(
            "native function calling sends the functions as the request's tools and needs "
            "--model acbench-chat-completions with --apply_chat_template"
        )
    if chat_template is None:
        rendered = chat.render_messages(messages, tools=tools, metadata=metadata)
        return rendered, rendered.text
    if lm is not None and not native_tools and renders_locally(lm, chat_template):
        rendered = chat.render_messages(messages, tools=tools, tokenizer=lm.tokenizer,
                                        template_kwargs=template_kwargs(lm))
        return rendered, rendered.text
    sent = chat.api_messages(messages)
    tool_schemas = [chat.openai_tool(t) for t in tools] if tools else []
    if native_tools:
        prompt = lm.tools_prompt(sent, tool_schemas)
        mode = "messages+native_tools"
    else:
        if tool_schemas:
            sent = chat.with_system_text(sent, chat.tools_system_text(tool_schemas))
        prompt = chat_template(sent)
        mode = "messages+system_tools" if tool_schemas else "messages"
    return chat.Rendered(loggable(prompt), mode, roles="function_as_user"), prompt


def loggable(prompt: Any) -> str:
    """A prompt as text for logs: a string as is; lm-eval's ``JsonChatStr`` (a NamedTuple holding
    JSON, which ``json.dumps`` would write as a one-element list) as its JSON; else JSON."""
    if isinstance(prompt, str):
        return prompt
    text = getattr(prompt, "prompt", None)
    if isinstance(text, str):
        return text
    return json.dumps(prompt, ensure_ascii=False, default=str)
