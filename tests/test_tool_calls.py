"""Tool-call decoding: the formats models emit, bad input, and hypothesis properties."""

from __future__ import annotations

import json
import keyword
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lm_eval_acbench.metrics.tool_calls import MAX_CHARS, MAX_DEPTH, parse_tool_calls

WEATHER = [{"get_weather": {"city": "Paris", "unit": "celsius"}}]


def test_json_object_and_list_and_fence():
    assert (
        parse_tool_calls('{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}').calls
        == WEATHER
    )
    listed = parse_tool_calls('[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {}}]')
    assert listed.calls == [{"a": {"x": 1}}, {"b": {}}] and listed.format == "json"
    fenced = parse_tool_calls(
        'Sure!\n```json\n[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]\n```'
    )
    assert fenced.calls == WEATHER


def test_llama3_openai_and_bfcl_shapes():
    llama = parse_tool_calls(
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}'
    )
    assert llama.calls == WEATHER
    openai = parse_tool_calls(
        json.dumps(
            {
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": json.dumps({"city": "Paris", "unit": "celsius"}),
                        },
                    }
                ]
            }
        )
    )
    assert openai.calls == WEATHER
    assert parse_tool_calls('{"get_weather": {"city": "Paris", "unit": "celsius"}}').calls == WEATHER
    several = parse_tool_calls('{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {"y": 2}}')
    assert several.calls == [{"a": {"x": 1}}, {"b": {"y": 2}}]


def test_tool_call_tags():
    text = (
        '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {"y": "z"}}\n</tool_call>'
    )
    parsed = parse_tool_calls(text)
    assert parsed.calls == [{"a": {"x": 1}}, {"b": {"y": "z"}}] and parsed.format == "tool_call_tags"
    assert parse_tool_calls('<tool_call>{"name": "a", "arguments": {"x": 1}}').calls == [{"a": {"x": 1}}]
    broken = parse_tool_calls("<tool_call>{not json</tool_call>")
    assert not broken.calls and "block 1" in broken.error


def test_python_call_syntax_is_parsed_not_evaluated():
    parsed = parse_tool_calls(
        '[math.hypot(x=4, y=-5.5), lookup(name="Ada", tags=["a", "b"], opts={"k": None})]'
    )
    assert parsed.format == "python"
    assert parsed.calls == [
        {"math.hypot": {"x": 4, "y": -5.5}},
        {"lookup": {"name": "Ada", "tags": ["a", "b"], "opts": {"k": None}}},
    ]
    assert parse_tool_calls("f(n=2**10, area=pi, t=(1, 2))").calls == [
        {"f": {"n": 1024, "area": "pi", "t": (1, 2)}}
    ]
    # Anything executable stays text: no call of __import__ happens, its source is the value.
    sneaky = parse_tool_calls('f(x=__import__("os").system("echo hi"))')
    assert sneaky.calls == [{"f": {"x": "__import__('os').system('echo hi')"}}]
    assert parse_tool_calls("f(x=10**10**10)").calls == [{"f": {"x": "10 ** 10 ** 10"}}]


def test_prose_malformed_and_not_calls_give_reasons():
    for text in [
        "The capital of France is Paris.",
        '{"name": "f", "arguments": {"x": 1}',
        "[1, 2, 3]",
        "",
        '{"name": "f", "arguments": "not json"}',
        '{"name": "f", "arguments": [1, 2]}',
    ]:
        parsed = parse_tool_calls(text)
        assert parsed.calls == [] and parsed.error, text
    assert parse_tool_calls(None).error and parse_tool_calls(12).error


def test_huge_and_deep_inputs_do_not_raise():
    assert "longer" in parse_tool_calls("x" * (MAX_CHARS + 1)).error
    deep_json = '{"name": "f", "arguments": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert parse_tool_calls(deep_json).calls == []
    nested_ok = '{"name": "f", "arguments": {"x": ' + "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3) + "}}"
    assert parse_tool_calls(nested_ok).calls
    deep_py = "f(x=" + "[" * 3000 + "]" * 3000 + ")"
    assert parse_tool_calls(deep_py).calls == []
    assert parse_tool_calls("f(x=" + "(" * 100000 + ")").calls == []


# --- properties ---------------------------------------------------------------------------

names = st.builds(
    lambda parts: ".".join(parts),
    st.lists(
        st.text(string.ascii_lowercase + "_", min_size=1, max_size=8).filter(lambda s: s.isidentifier()),
        min_size=1,
        max_size=3,
    ),
).filter(lambda n: all(not part.startswith("__") and not keyword.iskeyword(part) for part in n.split(".")))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
arg_names = st.text(string.ascii_lowercase, min_size=1, max_size=6).filter(
    lambda s: s.isidentifier() and not keyword.iskeyword(s)
)
calls = st.lists(
    st.builds(lambda n, a: {n: a}, names, st.dictionaries(arg_names, values, max_size=4)),
    min_size=1,
    max_size=3,
)


def _openai(call_list):
    return [{"name": name, "arguments": args} for call in call_list for name, args in call.items()]


@settings(max_examples=150, deadline=None)
@given(calls)
@example([{"_": {"a": "```"}}])  # a fence marker inside a string value, not a fence (found in CI)
def test_json_formats_round_trip(call_list):
    objects = _openai(call_list)
    assert parse_tool_calls(json.dumps(objects)).calls == call_list
    assert parse_tool_calls("```json\n" + json.dumps(objects, indent=2) + "\n```").calls == call_list
    tags = "\n".join(f"<tool_call>\n{json.dumps(o)}\n</tool_call>" for o in objects)
    assert parse_tool_calls(tags).calls == call_list
    llama = "; ".join(json.dumps({"name": o["name"], "parameters": o["arguments"]}) for o in objects)
    assert parse_tool_calls(llama).calls == call_list


@settings(max_examples=150, deadline=None)
@given(calls)
def test_python_syntax_round_trip(call_list):
    text = (
        "["
        + ", ".join(
            f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
            for call in call_list
            for name, args in call.items()
        )
        + "]"
    )
    assert parse_tool_calls(text).calls == call_list


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    parsed = parse_tool_calls(text)
    assert isinstance(parsed.calls, list)
    assert parsed.calls or parsed.error


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}()\"':,=fx0123 \n<>/tool_cal", max_size=200))
def test_bracket_soup_never_raises(text):
    parsed = parse_tool_calls(text)
    assert all(isinstance(c, dict) and len(c) == 1 for c in parsed.calls)
