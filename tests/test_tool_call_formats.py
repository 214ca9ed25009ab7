"""Model-native tool-call formats of the lenient decoder (``accuracy_fixed``, episode tool actions).

Each format is written the way the model family's chat template / tokenizer emits it: Mistral
``[TOOL_CALLS]`` (v3 JSON list; v11+ ``name[ARGS]{...}``), Llama 3 ``<|python_tag|>`` built-in
tools (``brave_search.call(query=...)``), DeepSeek's ``<｜tool▁call▁begin｜>`` tokens (V3/R1 with a
```json fence; V3.1 without), a pythonic list after a line of prose, JSON followed by prose.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_acbench.episodes import LoopSettings, run_episodes, tool_action
from lm_eval_acbench.envs.tools import make_query_env
from lm_eval_acbench.metrics.tool_calls import parse_tool_calls
from lm_eval_acbench.paths import SAMPLES_DIR
from lm_eval_acbench.tasks.function_call import score_output

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in {"function"} and not __import__("keyword").iskeyword(n))
keys = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda k: not __import__("keyword").iskeyword(k))
scalars = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=10),
    st.booleans(),
    st.none(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=5)
arguments = st.dictionaries(keys, values, max_size=4)
call_lists = st.lists(st.builds(lambda n, a: {n: a}, names, arguments), min_size=1, max_size=3)
prose = st.text(alphabet="abcdefghij klmnop,.:!?'", min_size=1, max_size=40).filter(lambda t: t.strip())

DS_BEGIN, DS_CALL, DS_SEP, DS_END, DS_ENDS = (
    "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>",
)


def _items(call_list):
    return [(name, args) for call in call_list for name, args in call.items()]


def _python(call_list):
    return "[" + ", ".join(f"{n}(" + ", ".join(f"{k}={v!r}" for k, v in a.items()) + ")" for n, a in _items(call_list)) + "]"


@given(call_lists, st.sampled_from(["", "Sure.\n", "I'll check. "]), st.sampled_from(["", "</s>"]))
@settings(max_examples=100, deadline=None)
def test_mistral_v3_json_list(call_list, before, after):
    objects = [{"name": n, "arguments": a} for n, a in _items(call_list)]
    parsed = parse_tool_calls(f"{before}[TOOL_CALLS] {json.dumps(objects)}{after}")
    assert parsed.calls == call_list and parsed.format == "mistral"


@given(call_lists, st.booleans())
@settings(max_examples=100, deadline=None)
def test_mistral_v11_name_args(call_list, with_ids):
    call_id = "[CALL_ID]a1B2c3D4e" if with_ids else ""
    text = "".join(f"[TOOL_CALLS]{n}{call_id}[ARGS]{json.dumps(a)}" for n, a in _items(call_list))
    parsed = parse_tool_calls(text)
    assert parsed.calls == call_list and parsed.format == "mistral"


def test_mistral_errors_have_reasons():
    assert "not JSON" in parse_tool_calls("[TOOL_CALLS]f[ARGS]{oops").error
    assert "not an object" in parse_tool_calls("[TOOL_CALLS]f[ARGS][1]").error
    assert "neither" in parse_tool_calls("[TOOL_CALLS] I could not").error


@given(call_lists, st.sampled_from(["<|eom_id|>", "<|eot_id|>", ""]))
@settings(max_examples=100, deadline=None)
def test_llama3_builtin_python_tag(call_list, end):
    (name, args), *_ = _items(call_list)
    call = f"{name}.call(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
    parsed = parse_tool_calls(f"<|python_tag|>{call}{end}")
    assert parsed.calls == [{name: args}] and parsed.format == "python_tag+python"
    json_call = json.dumps({"name": name, "parameters": args})
    assert parse_tool_calls(f"<|python_tag|>{json_call}{end}").calls == [{name: args}]


@given(call_lists, st.booleans())
@settings(max_examples=100, deadline=None)
def test_deepseek_tokens_both_forms(call_list, v31):
    if v31:
        blocks = [f"{DS_CALL}{n}{DS_SEP}{json.dumps(a)}{DS_END}" for n, a in _items(call_list)]
    else:
        blocks = [f"{DS_CALL}function{DS_SEP}{n}\n```json\n{json.dumps(a)}\n```{DS_END}" for n, a in _items(call_list)]
    parsed = parse_tool_calls(f"Let me look.{DS_BEGIN}{''.join(blocks)}{DS_ENDS}<｜end▁of▁sentence｜>")
    assert parsed.calls == call_list and parsed.format == "deepseek"


def test_deepseek_broken_call_is_an_error():
    assert "tool▁sep" in parse_tool_calls(f"{DS_BEGIN}{DS_CALL}function get_weather{DS_END}").error
    assert parse_tool_calls(f"{DS_BEGIN}{DS_CALL}function{DS_SEP}f\n```json\n{{bad\n```").error


@given(call_lists, prose, st.sampled_from(["", "\nLet me know if you need more.", "\n(done)"]))
@settings(max_examples=150, deadline=None)
def test_pythonic_list_after_a_line_of_prose(call_list, before, after):
    parsed = parse_tool_calls(f"{before}\n{_python(call_list)}{after}")
    assert parsed.calls == call_list and parsed.format == "python_after_prose"


@given(call_lists, st.text(alphabet="abc {}[]:,.\"", max_size=40))
@settings(max_examples=150, deadline=None)
def test_json_followed_by_prose_with_braces(call_list, tail):
    objects = [{"name": n, "arguments": a} for n, a in _items(call_list)]
    parsed = parse_tool_calls(f"{json.dumps(objects)}\nNote: {{x}} {tail}")
    assert parsed.calls == call_list and parsed.format == "json"


def test_a_truncated_call_never_becomes_a_call_of_its_arguments():
    assert parse_tool_calls('{"name": "f", "arguments": {"a": {"b": 1}}').calls == []
    assert parse_tool_calls('Here:\n{"name": "f", "arguments": {"q": {"b": 1}}').calls == []


@given(names, st.lists(scalars, min_size=1, max_size=3), arguments)
@settings(max_examples=100, deadline=None)
def test_positional_arguments_are_an_error_with_a_reason(name, positional, keywords):
    text = f"{name}(" + ", ".join([repr(p) for p in positional] + [f"{k}={v!r}" for k, v in keywords.items()]) + ")"
    parsed = parse_tool_calls(text)
    assert parsed.calls == [] and "positional" in parsed.error
    assert parse_tool_calls(f"[{text}]").calls == []


def test_nested_call_with_positional_arguments_keeps_its_source():
    assert parse_tool_calls("f(x=g(1, y=2))").calls == [{"f": {"x": "g(1, y=2)"}}]


@given(st.lists(st.sampled_from(["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|python_tag|>", DS_BEGIN, DS_CALL, DS_SEP, DS_END,
                                 "<tool_call>", "{", "}", "[", "]", "f(", ")", "a=1", '"x"', "\n", ":", ","]), max_size=20))
@settings(max_examples=300, deadline=None)
def test_marker_soup_never_raises(pieces):
    parsed = parse_tool_calls("".join(pieces))
    assert parsed.calls or parsed.error
    assert all(isinstance(c, dict) and len(c) == 1 and isinstance(next(iter(c.values())), dict) for c in parsed.calls)


# --- where the decoder is used ----------------------------------------------------------------

AREA = {"name": "area", "parameters": {"type": "dict", "required": ["r"], "properties": {"r": {"type": "integer"}}}}
AREA_GOLD = [{"area": {"r": [2]}}]


@pytest.mark.parametrize(
    "text",
    [
        '[TOOL_CALLS] [{"name": "area", "arguments": {"r": 2}}]',
        '[TOOL_CALLS]area[ARGS]{"r": 2}',
        "<|python_tag|>area.call(r=2)<|eom_id|>",
        f'{DS_BEGIN}{DS_CALL}function{DS_SEP}area\n```json\n{{"r": 2}}\n```{DS_END}{DS_ENDS}',
        "I will compute it.\n[area(r=2)]",
        '{"name": "area", "arguments": {"r": 2}}\nThe {r} is the radius.',
    ],
)
def test_accuracy_fixed_reads_native_formats_and_accuracy_stays_bfcl(text):
    scored = score_output(text, [AREA], AREA_GOLD, "simple")
    assert scored["accuracy_fixed"] == 1 and scored["accuracy"] == 0
    assert score_output("area(1, r=2)", [AREA], AREA_GOLD, "simple")["accuracy_fixed"] == 0


def _query_row():
    rows = [json.loads(line) for line in (SAMPLES_DIR / "agentboard" / "data" / "tool-query" / "test.jsonl").read_text().splitlines()]
    return next(r for r in rows if any("call" in c for c in r["checks"]))


def test_episode_tool_actions_from_native_formats():
    row = _query_row()
    check = next(c for c in row["checks"] if "call" in c)
    name, args = check["call"], check["args"]
    native = f"I need data first.\n[TOOL_CALLS]{name}[ARGS]{json.dumps(args)}"
    assert tool_action(native) == f"{name}({json.dumps(args)})"
    assert tool_action(f"{name}({json.dumps(args)})") is None  # a plain line: the env reads it itself
    assert tool_action("Just prose.") is None
    env = make_query_env(row)
    assert env.step(tool_action(native)).valid

    out = run_episodes([dict(row, env="tool-query")], lambda requests: [native] * len(requests),
                       make_env=make_query_env, settings=LoopSettings(max_steps=1))
    step = out[0]["trajectory"][0] if "trajectory" in out[0] else out[0]["steps"][0]
    assert step["action"] == f"{name}({json.dumps(args)})" and step["valid"]
