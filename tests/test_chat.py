"""Rendering message lists and tools through real chat templates (and without one)."""

from __future__ import annotations

import json

import pytest

from lm_eval_acbench.chat import (
    FUNCTION_PREFIX,
    openai_tool,
    render_messages,
    template_uses_tools,
    tokenizer_name,
    tools_system_text,
)

TOOL = {
    "name": "geo.area",
    "description": "Area of a shape.",
    "parameters": {
        "type": "dict",
        "required": ["w"],
        "properties": {"w": {"type": "float"}, "tags": {"type": "tuple", "items": {"type": "any"}}},
    },
}
DIALOGUE = [
    {"role": "system", "content": "You are a planner."},
    {"role": "user", "content": "Find a flat in Berlin."},
    {"role": "assistant", "content": '{"name": "search", "args": {"place": "Berlin"}}'},
    {"role": "function", "content": "{'results': ['flat 1']}"},
]
STRICT_TEMPLATE = (
    "{%- for m in messages %}"
    "{%- if m['role'] not in ['system', 'user', 'assistant'] %}{{ raise_exception('unknown role ' + m['role']) }}{%- endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}\n"
    "{%- endfor %}{%- if add_generation_prompt %}[assistant] {%- endif %}"
)


@pytest.fixture(scope="module")
def tiny_tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_tools_go_through_a_tools_aware_template(tiny_tok, tiny_model_dir):
    assert template_uses_tools(tiny_tok)
    out = render_messages(
        [{"role": "user", "content": "area of 2?"}],
        tools=[TOOL],
        metadata={"pretrained": str(tiny_model_dir)},
    )
    assert out.mode == "template+tools"
    assert (
        '"name": "geo.area"' in out.text and '"type": "object"' in out.text and '"type": "number"' in out.text
    )
    assert out.text.rstrip().endswith("<|im_start|>assistant")


def test_template_that_ignores_tools_gets_them_in_the_system_message(smollm2_dir):
    out = render_messages(
        [{"role": "user", "content": "area of 2?"}], tools=[TOOL], metadata={"pretrained": str(smollm2_dir)}
    )
    assert out.mode == "template+system_tools"
    assert "<tools>" in out.text and "geo.area" in out.text and out.text.startswith("<|im_start|>system\n")
    assert "SmolLM" not in out.text  # our system message replaced the template's default one


def test_no_tokenizer_gives_the_plain_format():
    out = render_messages(DIALOGUE, metadata={})
    assert (
        out.mode == "plain"
        and out.text.startswith("System: You are a planner.")
        and out.text.endswith("Assistant:")
    )
    with_tools = render_messages(
        DIALOGUE[:2], tools=[TOOL], metadata={"pretrained": "/nonexistent/model/folder"}
    )
    assert with_tools.mode == "plain+system_tools" and tools_system_text([TOOL]) in with_tools.text


def test_function_role_falls_back_when_the_template_rejects_it(tiny_tok):
    from transformers import AutoTokenizer

    strict = AutoTokenizer.from_pretrained(tiny_tok.name_or_path)
    strict.chat_template = STRICT_TEMPLATE
    out = render_messages(DIALOGUE, tokenizer=strict)
    assert out.mode == "template" and out.roles == "function_as_user"
    assert "[user] " + FUNCTION_PREFIX + "{'results': ['flat 1']}" in out.text
    # A permissive template keeps the role as given.
    kept = render_messages(DIALOGUE, tokenizer=tiny_tok)
    assert kept.roles == "as_given" and "<|im_start|>function\n" in kept.text


def test_openai_tool_shape_and_metadata_lookup():
    tool = openai_tool(TOOL)
    assert (
        tool["type"] == "function" and tool["function"]["parameters"]["properties"]["tags"]["type"] == "array"
    )
    assert "type" not in tool["function"]["parameters"]["properties"]["tags"]["items"]
    assert openai_tool(tool) is tool
    assert json.loads(json.dumps(tool)) == tool
    assert tokenizer_name({"pretrained": "a", "tokenizer": "b"}) == "b"
    assert tokenizer_name({"pretrained": object()}) is None
