"""BFCL native function calling (acbench_function_call_native_<category>).

The same items, scorer and metrics as ``acbench_function_call_<category>`` (the *prompting* mode),
but the functions go to a chat API as the request's ``tools`` and the server's parsed
``tool_calls`` are scored: run with ``--model acbench-chat-completions --apply_chat_template``
(:mod:`lm_eval_acbench.tool_chat`); any other model fails with one line saying so. The two modes
are separate task groups, so one run reports both under their own names.

As BFCL does for its FC models, function names that an OpenAI-style API rejects (BFCL's dotted
names such as ``math.factorial``) are sent with ``.`` replaced by ``_``, and the names in the
returned calls are mapped back before scoring (only where the mapping is one-to-one).
"""

from __future__ import annotations

import json
import re

from typing import Any

from lm_eval_acbench import data
from lm_eval_acbench.metrics.bfcl_decode import MAX_CHARS, ReferenceDecode
from lm_eval_acbench.tasks.function_call import FunctionCallTask, load_category  # noqa: F401

_API_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def api_names(functions: list[dict]) -> dict[str, str]:
    """{name sent to the API: BFCL name} for the functions whose names must change."""
    mapping: dict[str, str] = {}
    names = {str(f.get("name", "")) for f in functions if isinstance(f, dict)}
    for name in sorted(names):
        if _API_NAME.match(name):
            continue
        sent = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
        if sent not in names and sent not in mapping:
            mapping[sent] = name
    return mapping


def restore_names(output: str, mapping: dict[str, str]) -> str:
    """``output`` (the JSON list ``acbench-chat-completions`` writes) with BFCL names restored;
    any other text unchanged."""
    if not mapping or not isinstance(output, str) or len(output) > MAX_CHARS:
        return output  # left for decode_tool_calls to refuse with its reason
    try:
        calls = json.loads(output)
    except (ValueError, RecursionError):  # not JSON, an over-long int, nested too deep
        return output
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        return output
    return json.dumps([dict(c, name=mapping.get(c.get("name"), c.get("name"))) for c in calls],
                      ensure_ascii=False)


def decode_tool_calls(output: Any) -> ReferenceDecode:
    """BFCL's decoding for native function-calling models: each returned tool call
    ``{"name": n, "arguments": {...}}`` becomes ``{n: {...}}``, in order. A reply that is not
    such a list (the model answered in text, or an argument string that is not JSON) decodes to
    no calls with the reason, as BFCL's handlers fail to decode it."""
    if not isinstance(output, str):
        return ReferenceDecode(error=f"output is a {type(output).__name__}, not text")
    if len(output) > MAX_CHARS:
        return ReferenceDecode(error=f"output longer than {MAX_CHARS} characters")
    try:
        calls = json.loads(output)
    except (ValueError, RecursionError):  # not JSON (a text answer), an over-long int, nested too deep
        return ReferenceDecode(error="the reply carries no tool calls (text answer or unreadable JSON)")
    if not isinstance(calls, list) or not calls:
        return ReferenceDecode(error="the reply carries no tool calls")
    decoded = []
    for call in calls:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)
                and isinstance(call.get("arguments"), dict)):
            return ReferenceDecode(error="a tool call without a name or with arguments that are not a JSON object")
        decoded.append({call["name"]: call["arguments"]})
    return ReferenceDecode(calls=decoded)


class NativeFunctionCallTask(FunctionCallTask):
    """FunctionCallTask whose tools go to the server as ``tools`` (see the module docstring)."""

    native_tools = True
    reference_decoder = staticmethod(decode_tool_calls)

    def tools(self, doc: dict) -> list:
        functions = data.doc_json(doc, "functions", [])
        sent = {bfcl: api for api, bfcl in api_names(functions).items()}
        return [dict(f, name=sent.get(f.get("name"), f.get("name"))) if isinstance(f, dict) else f
                for f in functions]

    def process_results(self, doc, results):
        mapping = api_names(data.doc_json(doc, "functions", []))
        restored = [restore_names(results[0], mapping)] if results else results
        return super().process_results(doc, restored)
