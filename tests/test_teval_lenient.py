"""T-Eval's ``score_lenient``: the model tool-call formats read beside T-Eval's own parsers.

``score`` stays T-Eval's reference reading (none of these formats is read there); ``score_lenient``
reads each format the lenient decoder knows, written the way the model family emits it: Mistral
``[TOOL_CALLS]`` (v3 JSON list, v11+ ``name[ARGS]{...}``), Llama 3 ``<|python_tag|>`` (JSON, and
the built-in ``name.call(...)``), Qwen/Hermes ``<tool_call>`` tags, DeepSeek's tool-call tokens
(V3/R1 with a ```json fence, V3.1 without), a pythonic list after a line of prose, JSON followed
by prose with braces, OpenAI's ``function`` object. A positional argument is no call, with a reason.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_acbench import data
from lm_eval_acbench.metrics import teval_scores as ts
from lm_eval_acbench.tasks.teval import score_doc

STR_T = {"thought_start": "Thought:", "thought_end": "\n", "action_start": "Action:", "action_end": "\n",
         "args_start": "Action Input:", "args_end": "\n"}
JSON_T = {"thought": "thought", "action": "name", "args": "args"}
DS_BEGIN, DS_CALL, DS_SEP, DS_END, DS_ENDS = (
    "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>",
)

_ident = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(lambda n: not __import__("keyword").iskeyword(n))
# T-Eval's actions are mostly ``Tool.method``; the built-in python_tag form takes plain names only.
actions = st.one_of(_ident, st.builds(lambda a, b: f"{a.capitalize()}.{b}", _ident, _ident))
scalars = st.one_of(st.integers(-10**6, 10**6), st.text(alphabet="abcXYZ 019-_", max_size=12), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
arguments = st.dictionaries(_ident.filter(lambda k: k != "function"), scalars, min_size=1, max_size=4)


def _py(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _obj(name, args, key="arguments"):
    return {"name": name, key: args}


# One writer per format: (name, args) -> a completion as that model family writes it.
FORMATS = {
    "mistral_v3": lambda n, a: f"[TOOL_CALLS] {json.dumps([_obj(n, a)])}</s>",
    "mistral_v11": lambda n, a: f"[TOOL_CALLS]{n}[CALL_ID]a1B2c3D4e[ARGS]{json.dumps(a)}",
    "llama3_json": lambda n, a: f"<|python_tag|>{json.dumps(_obj(n, a, 'parameters'))}<|eom_id|>",
    "tool_call_tags": lambda n, a: f"<tool_call>\n{json.dumps(_obj(n, a))}\n</tool_call>",
    "deepseek_v3": lambda n, a: (f"{DS_BEGIN}{DS_CALL}function{DS_SEP}{n}\n```json\n{json.dumps(a)}\n```"
                                 f"{DS_END}{DS_ENDS}<｜end▁of▁sentence｜>"),
    "deepseek_v31": lambda n, a: f"{DS_BEGIN}{DS_CALL}{n}{DS_SEP}{json.dumps(a)}{DS_END}{DS_ENDS}",
    "python_after_prose": lambda n, a: f"I will look it up now.\n[{_py(n, a)}]\nLet me know.",
    "json_then_prose": lambda n, a: f"{json.dumps(_obj(n, a))}\nNote: the result is {{x}} or [y].",
    "openai_function": lambda n, a: json.dumps({"type": "function", "function": _obj(n, json.dumps(a))}),
    "bare_python": lambda n, a: _py(n, a),
}


def _instruct(text, name, args, fmt):
    return ts.instruct_score(text, {"thought": "t", "action": name, "args": args}, STR_T if fmt == "str" else JSON_T, fmt)


@pytest.mark.parametrize("style", sorted(FORMATS))
@given(name=actions, args=arguments, fmt=st.sampled_from(["json", "str"]))
@settings(max_examples=40, deadline=None)
def test_instruct_reads_every_format_leniently_and_the_reference_reads_none(style, name, args, fmt):
    parts = _instruct(FORMATS[style](name, args), name, args, fmt)
    assert parts["score_lenient"] == 1.0 and parts["parsed_lenient"], parts
    assert parts["format_lenient"] not in ("teval", "none")
    assert parts["score"] == 0.0 and parts["score_fixed"] == 0.0 and not parts["parsed"]


@given(name=_ident, args=arguments)
@settings(max_examples=60, deadline=None)
def test_instruct_llama3_builtin_python_tag(name, args):
    parts = _instruct(f"<|python_tag|>{name}.call(" + _py("", args)[1:] + "<|eom_id|>", name, args, "json")
    assert parts["score_lenient"] == 1.0 and parts["format_lenient"] == "python_tag+python"
    assert parts["score"] == 0.0


@given(name=actions, args=arguments, positional=st.lists(scalars, min_size=1, max_size=2), fmt=st.sampled_from(["json", "str"]))
@settings(max_examples=60, deadline=None)
def test_positional_arguments_are_no_call_with_a_reason(name, args, positional, fmt):
    call = f"{name}(" + ", ".join([repr(p) for p in positional] + [f"{k}={v!r}" for k, v in args.items()]) + ")"
    for text in (call, f"Calling it.\n[{call}]", f"<|python_tag|>{call}"):
        parts = _instruct(text, name, args, fmt)
        assert parts["score_lenient"] == 0.0 and not parts["parsed_lenient"], (text, parts)
        assert parts["format_lenient"] == "none" and "positional" in parts["reason_lenient"], parts


def test_instruct_hand_cases():
    gold_args = {"city": "Lyon", "days": 3}
    # T-Eval's own shape wins: read the way score_fixed reads it.
    teval_json = json.dumps({"thought": "x", "name": "Weather.get", "args": gold_args})
    parts = _instruct(teval_json, "Weather.get", gold_args, "json")
    assert parts["score"] == parts["score_fixed"] == parts["score_lenient"] == 1.0 and parts["format_lenient"] == "teval"
    # A wrong argument value costs its share, in every format.
    parts = _instruct('[TOOL_CALLS] [{"name": "Weather.get", "arguments": {"city": "Lyon", "days": 4}}]',
                      "Weather.get", gold_args, "json")
    assert parts["args_em"] == 0.0 and parts["score_lenient"] == pytest.approx((1 + 2 / 3) / 2)
    # Two calls: the first is the action.
    two = '<tool_call>{"name": "Weather.get", "arguments": {"city": "Lyon", "days": 3}}</tool_call>\n' \
          '<tool_call>{"name": "Other.x", "arguments": {}}</tool_call>'
    assert _instruct(two, "Weather.get", gold_args, "str")["score_lenient"] == 1.0
    # Prose is no call, with the decoder's reason; a truncated call is not a call either.
    parts = _instruct("I cannot help with that.", "Weather.get", gold_args, "json")
    assert parts["score_lenient"] == 0.0 and parts["format_lenient"] == "none" and parts["reason_lenient"]
    assert _instruct('[TOOL_CALLS] [{"name": "Weather.get", "arguments": {"city": ', "Weather.get", gold_args,
                     "json")["score_lenient"] == 0.0
    # A reasoning block is removed by the task before any parser (thinking.answer), not here.
    assert _instruct("f(x=1)", "f", {"x": 1}, "str")["score_lenient"] == 1.0


# --- retrieve / understand (JSON items) and plans ------------------------------------------------


def _rru_doc(dimension, gold):
    record = {"id": "rru/1", "dimension": dimension, "file": "reason_retrieve_understand_json_v2",
              "response_format": "json", "messages": [{"role": "user", "content": "q"}],
              "ground_truth": gold, "meta_data": {}, "template": {}}
    return data.as_split([record])["test"][0]


@pytest.mark.parametrize("style", sorted(FORMATS))
@given(name=actions, args=arguments)
@settings(max_examples=25, deadline=None)
def test_retrieve_and_understand_read_every_format_leniently(style, name, args):
    gold = {"thought": "t", "name": name, "args": args}
    text = FORMATS[style](name, args)
    retrieve = score_doc(_rru_doc("retrieve", gold), text)
    understand = score_doc(_rru_doc("understand", gold), text)
    assert retrieve["score_lenient"] == 1.0 and understand["score_lenient"] == 1.0, (retrieve, understand)
    assert understand["score"] < 1.0  # the reference reads no args from these formats
    assert retrieve["detail"]["format_lenient"] not in ("teval", "none")


def test_retrieve_understand_hand_cases():
    gold = {"thought": "t", "name": "Hotel.book", "args": {"hotel_id": 77}}
    teval_json = json.dumps(gold)
    scored = score_doc(_rru_doc("understand", gold), teval_json)
    assert scored["score_lenient"] == scored["score_fixed"] == 1.0 and scored["detail"]["format_lenient"] == "teval"
    # name + arguments: the reference reads the name but no args; lenient reads both.
    other = json.dumps({"thought": "t", "name": "Hotel.book", "arguments": {"hotel_id": 77}})
    scored = score_doc(_rru_doc("understand", gold), other)
    assert scored["score"] == 0.0 and scored["score_lenient"] == 1.0
    assert score_doc(_rru_doc("retrieve", gold), other)["score"] == 1.0
    scored = score_doc(_rru_doc("understand", gold), "Hotel.book(77)")
    assert scored["score_lenient"] == 0.0 and "positional" in scored["detail"]["reason_lenient"]
    scored = score_doc(_rru_doc("retrieve", gold), "no idea")
    assert scored == {"score": 0.0, "score_fixed": 0.0, "score_lenient": 0.0, "parsed": False,
                      "detail": {"reason": "response is not a JSON object", "format_lenient": "none",
                                 "reason_lenient": scored["detail"]["reason_lenient"]}}
    assert scored["detail"]["reason_lenient"]


plans = st.lists(st.tuples(actions, arguments), min_size=1, max_size=4)


@pytest.mark.parametrize("style", ["python_list", "tool_call_tags", "mistral_v3", "mistral_v11", "deepseek_v31"])
@given(plan=plans)
@settings(max_examples=30, deadline=None)
def test_plan_reads_tool_call_formats_in_order(style, plan):
    objects = [_obj(n, a) for n, a in plan]
    text = {
        "python_list": "Here is my plan:\n[" + ", ".join(_py(n, a) for n, a in plan) + "]",
        "tool_call_tags": "\n".join(f"<tool_call>{json.dumps(o)}</tool_call>" for o in objects),
        "mistral_v3": f"[TOOL_CALLS] {json.dumps(objects)}",
        "mistral_v11": "".join(f"[TOOL_CALLS]{n}[ARGS]{json.dumps(a)}" for n, a in plan),
        "deepseek_v31": DS_BEGIN + "".join(f"{DS_CALL}{n}{DS_SEP}{json.dumps(a)}{DS_END}" for n, a in plan) + DS_ENDS,
    }[style]
    read, how = ts.parse_plan_lenient(text)
    # the gold's args are compared as their str(), which is what T-Eval's plan loader makes of them
    assert read == [{"name": n, "args": str(a)} for n, a in plan] and how != "teval"
    assert ts.parse_plan_json(text, reference=True) == [] or style == "mistral_v3"


def test_plan_lenient_keeps_teval_json_and_rejects_positional():
    teval_plan = json.dumps([{"id": 1, "name": "A.b", "args": {"x": 1}}, {"id": 0, "name": "C.d", "args": {}}])
    assert ts.parse_plan_lenient(teval_plan) == ([{"name": "C.d", "args": "{}"}, {"name": "A.b", "args": "{'x': 1}"}], "teval")
    read, how = ts.parse_plan_lenient("[A.b(1), C.d(y=2)]")
    assert read == [] and "positional" in how


def test_plan_lenient_reuses_the_fixed_result_when_both_read_the_same_plan(monkeypatch):
    """A plan T-Eval's own parse reads gets the same score_lenient as score_fixed, and its texts are
    embedded once for both (the reference reading is the only other embedding call)."""
    import numpy as np

    from lm_eval_acbench import embeddings

    calls = []

    def trigram_vectors(texts, model=None, batch_size=None):
        calls.append(list(texts))
        rows = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for j in range(max(1, len(text) - 2)):
                rows[i, hash(text[j:j + 3]) % 64] += 1.0
        return rows

    monkeypatch.setattr(embeddings, "embed", trigram_vectors)
    plan = [{"id": 0, "name": "Hotel.search", "args": {"city": "Rome"}}, {"id": 1, "name": "Hotel.book", "args": {"n": 2}}]
    record = {"id": "plan/1", "dimension": "plan", "file": "plan_json_v2", "response_format": "json",
              "messages": [{"role": "user", "content": "q"}], "ground_truth": plan, "meta_data": {}, "template": {}}
    doc = data.as_split([record])["test"][0]
    scored = score_doc(doc, json.dumps(plan), "stand-in")
    assert scored["score_lenient"] == scored["score_fixed"] > 0
    assert len(calls) == 2  # score, score_fixed; score_lenient reused score_fixed's
    other = score_doc(doc, "[Hotel.search(city='Rome'), Hotel.book(n=2)]", "stand-in")
    assert other["score_fixed"] == 0 and other["score_lenient"] > 0 and len(calls) == 3
