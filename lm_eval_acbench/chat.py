"""Render a message list (and tool schemas) into one prompt string, the way the model expects.

lm-eval's prompt hooks return a string, and ``--apply_chat_template`` would template that string
again; tasks whose documents are whole dialogues (T-Eval) or carry tools (function calling)
therefore render their messages here and hand lm-eval the finished prompt (the task classes
override ``fewshot_context``, so nothing is templated twice, with or without
``--apply_chat_template``).

:func:`render_messages` uses the evaluated model's own tokenizer, found in task metadata
(lm-eval merges ``--model_args`` into it: ``tokenizer``, else ``pretrained``). It returns the
text and the way it was made, one of :data:`MODES`:

* ``template+tools`` -- the chat template rendered the tools passed as its ``tools`` argument;
* ``template+system_tools`` -- the template ignores ``tools`` (detected by rendering a probe
  with and without a tool and comparing), so the schemas went into the system message in the
  format of :func:`tools_system_text`;
* ``template`` -- the chat template, no tools involved;
* ``plain`` / ``plain+system_tools`` -- no tokenizer or no chat template (or the template
  failed on every variant below): ``System: ...`` / ``User: ...`` blocks ending in
  ``Assistant:``, tools in the system block;
* ``messages`` / ``messages+system_tools`` / ``messages+native_tools`` -- a chat API renders the
  prompt on its server: the message list is sent (:func:`api_messages`), tools in the system
  message or, for native function calling, as the request's ``tools`` (see ``prompting.py``).

``template_kwargs`` (the evaluated model's ``chat_template_args``, a named template, vLLM's
resolved template) go to every ``apply_chat_template`` call, the tools probe included.

Roles the template may not know are handled by trying variants in order and keeping the first
that renders without error and keeps every message's content: the messages as given; ``function``
messages as ``tool`` messages; ``function``/``tool`` messages as user messages prefixed with
``Function result:``; then the same with the system message folded into the first user message
and consecutive same-role messages merged (templates that demand strict alternation).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable

log = logging.getLogger(__name__)

MODES = ("template+tools", "template+system_tools", "template", "plain", "plain+system_tools",
         "messages", "messages+system_tools", "messages+native_tools")
FUNCTION_PREFIX = "Function result:\n"
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "acbench_probe_tool",
        "description": "probe",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
    },
}

_lock = threading.Lock()
_tokenizers: dict[str, Any] = {}
_tool_support: dict[tuple, bool] = {}


@dataclass(frozen=True)
class Rendered:
    text: str
    mode: str
    roles: str = "as_given"  # which role variant rendered: as_given | function_as_tool | ...
    note: str = ""


def tokenizer_name(metadata: dict | None) -> str | None:
    """The tokenizer named by task metadata: ``tokenizer``, else ``pretrained`` (strings only)."""
    metadata = metadata or {}
    for key in ("tokenizer", "pretrained"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def load_tokenizer(metadata: dict | None):
    """The evaluated model's tokenizer from metadata, cached per name; None when unavailable."""
    name = tokenizer_name(metadata)
    if name is None:
        return None
    with _lock:
        if name in _tokenizers:
            return _tokenizers[name]
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(name)
        except Exception as exc:  # missing folder, offline hub, odd tokenizer: fall back to plain
            log.warning("acbench: cannot load tokenizer %r (%s); prompts use the plain format", name, exc)
            tokenizer = None
        _tokenizers[name] = tokenizer
        return tokenizer


def has_chat_template(tokenizer) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def openai_tool(schema: dict) -> dict:
    """A BFCL/JSON-schema function doc as an OpenAI-style tool, the shape chat templates expect.

    BFCL's non-standard types are mapped (``dict`` -> ``object``, ``float`` -> ``number``,
    ``tuple`` -> ``array``, ``any`` -> no type); names are kept as they are (dots included).
    """
    if schema.get("type") == "function" and isinstance(schema.get("function"), dict):
        return schema

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: fix(value) for key, value in node.items()}
            kind = out.get("type")
            if kind == "dict":
                out["type"] = "object"
            elif kind == "float":
                out["type"] = "number"
            elif kind == "tuple":
                out["type"] = "array"
            elif kind == "any":
                out.pop("type")
            return out
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    function = {"name": schema.get("name", ""), "description": schema.get("description", "")}
    function["parameters"] = fix(schema.get("parameters") or {"type": "object", "properties": {}})
    return {"type": "function", "function": function}


def tools_system_text(tools: Iterable[dict]) -> str:
    """How tools are described when the template cannot take them (documented in docs/tooluse.md).

    One JSON schema per line between ``<tools>`` tags, then the expected reply format: BFCL's
    prompting format, a Python list of keyword-argument calls, which is what BFCL's decoder
    (the reference ``accuracy``) reads.
    """
    lines = "\n".join(json.dumps(openai_tool(t)["function"], ensure_ascii=False) for t in tools)
    return (
        "You can call the functions described below (JSON schemas, one per line).\n"
        f"<tools>\n{lines}\n</tools>\n"
        "To call functions, reply with only a Python list of calls with keyword arguments and "
        "no other text, e.g. [function_name(argument=\"value\"), other_function(n=1)]. "
        "If no function fits the request, say so in plain words and call nothing."
    )


def template_uses_tools(tokenizer, template_kwargs: dict | None = None) -> bool:
    """Whether the chat template renders its ``tools`` argument (probe with and without one)."""
    template_kwargs = template_kwargs or {}
    key = (id(tokenizer), str(getattr(tokenizer, "chat_template", "")), repr(sorted(template_kwargs.items())))
    with _lock:
        if key in _tool_support:
            return _tool_support[key]
    messages = [{"role": "user", "content": "hello"}]
    try:
        with_tool = tokenizer.apply_chat_template(
            messages, tools=[_PROBE_TOOL], tokenize=False, add_generation_prompt=True, **template_kwargs
        )
        without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                **template_kwargs)
        uses = with_tool != without and "acbench_probe_tool" in with_tool
    except Exception:
        uses = False
    with _lock:
        _tool_support[key] = uses
    return uses


def _content(message: dict) -> str:
    content = message.get("content", "")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False)


def _normalise(messages: Iterable[dict]) -> list[dict]:
    out = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        item = {"role": role, "content": _content(message)}
        if message.get("name"):
            item["name"] = str(message["name"])
        out.append(item)
    return out


def _variants(messages: list[dict]) -> list[tuple[str, list[dict]]]:
    as_tool = [dict(m, role="tool") if m["role"] == "function" else m for m in messages]
    as_user = [
        (
            {"role": "user", "content": FUNCTION_PREFIX + m["content"]}
            if m["role"] in ("function", "tool")
            else m
        )
        for m in messages
    ]
    return [
        ("as_given", messages),
        ("function_as_tool", as_tool),
        ("function_as_user", as_user),
        ("merged", _merge(as_user)),
    ]


def _merge(messages: list[dict]) -> list[dict]:
    """System folded into the first user message; consecutive same-role messages joined."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        else:
            rest.insert(0, {"role": "user", "content": system})
    merged: list[dict] = []
    for message in rest:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] += "\n\n" + message["content"]
        else:
            merged.append({"role": message["role"], "content": message["content"]})
    return merged


def _keeps_content(text: str, messages: list[dict]) -> bool:
    return all(m["content"].strip() in text for m in messages if m["content"].strip())


def api_messages(messages: Iterable[dict]) -> list[dict]:
    """Messages as a chat API accepts them from a recorded dialogue: ``function``/``tool``
    results become user messages prefixed with ``Function result:`` (an API's ``tool`` role
    needs the ``tool_call_id`` of a call the dialogue never made); other roles as given."""
    return [
        {"role": "user", "content": FUNCTION_PREFIX + m["content"]} if m["role"] in ("function", "tool")
        else {"role": m["role"], "content": m["content"]}
        for m in _normalise(messages)
    ]


def plain_text(messages: list[dict]) -> str:
    """The no-template format: ``Role: content`` blocks, ending with ``Assistant:``."""
    blocks = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(blocks + ["Assistant:"])


def with_system_text(messages: list[dict], extra: str) -> list[dict]:
    """``extra`` appended to the system message (one is added first when there is none)."""
    messages = [dict(m) for m in messages]
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{extra}" if messages[0]["content"] else extra
    else:
        messages.insert(0, {"role": "system", "content": extra})
    return messages


def render_messages(
    messages: Iterable[dict],
    tools: list[dict] | None = None,
    *,
    metadata: dict | None = None,
    tokenizer=None,
    add_generation_prompt: bool = True,
    template_kwargs: dict | None = None,
) -> Rendered:
    """Render ``messages`` (and ``tools``) for the model named in ``metadata`` (module docstring).

    ``tokenizer`` overrides the metadata lookup (tests, callers that hold one already);
    ``template_kwargs`` go to every ``apply_chat_template`` call.
    """
    template_kwargs = dict(template_kwargs or {})
    msgs = _normalise(messages)
    tools = [openai_tool(t) for t in tools] if tools else None
    tok = tokenizer if tokenizer is not None else load_tokenizer(metadata)
    if not has_chat_template(tok):
        note = "no tokenizer in metadata" if tok is None else "tokenizer has no chat template"
        if tools:
            return Rendered(
                plain_text(with_system_text(msgs, tools_system_text(tools))), "plain+system_tools", note=note
            )
        return Rendered(plain_text(msgs), "plain", note=note)

    use_tools_arg = bool(tools) and template_uses_tools(tok, template_kwargs)
    if tools and not use_tools_arg:
        msgs = with_system_text(msgs, tools_system_text(tools))
    mode = "template+tools" if use_tools_arg else ("template+system_tools" if tools else "template")
    errors = []
    for label, variant in _variants(msgs):
        kwargs = dict(template_kwargs, tools=tools) if use_tools_arg else template_kwargs
        try:
            text = tok.apply_chat_template(
                variant, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
            )
        except Exception as exc:  # jinja raise_exception, unknown roles, strict alternation
            errors.append(f"{label}: {type(exc).__name__}")
            continue
        if isinstance(text, str) and _keeps_content(text, variant):
            return Rendered(text, mode, roles=label)
        errors.append(f"{label}: content dropped")
    note = "chat template failed (" + "; ".join(errors) + ")"
    log.warning("acbench: %s; using the plain format", note)
    if tools:
        plain_msgs = msgs if not use_tools_arg else with_system_text(msgs, tools_system_text(tools))
        return Rendered(plain_text(plain_msgs), "plain+system_tools", note=note)
    return Rendered(plain_text(msgs), "plain", note=note)
