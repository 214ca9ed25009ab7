"""BFCL's prompting decoder (``accuracy``): pinned cases of BFCL's behaviour, real items, properties.

The pinned verdicts were read off bfcl-eval 2026.3.23 (``default_decode_ast_prompting`` and the
eval runner) and checked against it; ``bench/bench_bfcl_oracle.py`` compares every real item
under every output style. With ``BFCL_EVAL_PATH`` pointing at a ``--target`` install of
bfcl-eval, the last test also compares random outputs against it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

import pytest
from helpers import shared_data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm_eval_acbench.metrics import bfcl_ast
from lm_eval_acbench.metrics.bfcl_decode import decode_reference, wrap_like_bfcl
from lm_eval_acbench.metrics.tool_calls import format_calls
from lm_eval_acbench.tasks.function_call import CATEGORIES, read_category, score_output

INTERVAL = {
    "name": "integrate",
    "parameters": {
        "type": "dict",
        "required": ["interval"],
        "properties": {"interval": {"type": "array", "items": {"type": "float"}}},
    },
}
INTERVAL_GOLD = [{"integrate": {"interval": [[1.0, 3.0]]}}]


def calls(text):
    return decode_reference(text).calls


def test_wrapping_strips_only_backticks_newlines_and_spaces():
    assert wrap_like_bfcl("```\n[f(a=1)]\n```") == "[f(a=1)]"
    assert wrap_like_bfcl("```python\n[f(a=1)]\n```") == "[python\n[f(a=1)]"
    assert wrap_like_bfcl("f(a=1)") == "[f(a=1)]"
    assert wrap_like_bfcl("\tf(a=1)") == "[\tf(a=1)]"


def test_issue_cases():
    # A ```python fence fails to decode: the item fails, and irrelevance passes.
    fenced = "```python\n[integrate(interval=[1.0, 3.0])]\n```"
    assert calls(fenced) is None
    assert score_output(fenced, [INTERVAL], INTERVAL_GOLD, "simple")["accuracy"] == 0
    assert score_output(fenced, [INTERVAL], INTERVAL_GOLD, "simple")["accuracy_fixed"] == 1
    assert score_output(fenced, [INTERVAL], [], "irrelevance")["accuracy"] == 1
    assert score_output(fenced, [INTERVAL], [], "irrelevance")["accuracy_fixed"] == 0
    # A bare call whose arguments hold a list or a dict decodes.
    assert calls("integrate(interval=[1.0, 3.0])") == [{"integrate": {"interval": [1.0, 3.0]}}]
    assert calls("math.sum(numbers=[])") == [{"math.sum": {"numbers": []}}]
    assert calls("f(d={'k': [1, 2]})") == [{"f": {"d": {"k": [1, 2]}}}]
    assert score_output("integrate(interval=[1.0, 3.0])", [INTERVAL], INTERVAL_GOLD, "simple")["accuracy"] == 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[f(a=1), g.h(b='x')]", [{"f": {"a": 1}}, {"g.h": {"b": "x"}}]),
        ("f(a=1), g(b=2)", [{"f": {"a": 1}}, {"g": {"b": 2}}]),
        ("```\nf(a=1)\n```", [{"f": {"a": 1}}]),
        ("[]", []),
        ("", []),  # wrapped into "[]"
        ("f(1, a=2)", [{"f": {"a": 2}}]),  # positional arguments are dropped
        ("f(**kw)", [{"f": {None: "kw"}}]),
        ("f(x=pi)", [{"f": {"x": "pi"}}]),
        ("f(x=a[0])", [{"f": {"x": "a[0]"}}]),
        ("f(x=g(1))", [{"f": {"x": "g(1)"}}]),
        ("f(x=g(y=1))", [{"f": {"x": {"g": {"y": 1}}}}]),
        ("f(x=(1, 2))", [{"f": {"x": (1, 2)}}]),
        ("f(x=+5)", [{"f": {"x": -5}}]),  # BFCL negates the operand of every unary operator
        ("f(x=not 1)", [{"f": {"x": -1}}]),
        ("f(x=-True)", [{"f": {"x": -1}}]),
        ("f(x=2**10)", [{"f": {"x": 1024}}]),
        ("f(x='a'*3)", [{"f": {"x": "aaa"}}]),
        ("f(x=...)", [{"f": {"x": "..."}}]),
        ("f(x=None)", [{"f": {"x": None}}]),
        ("x[0](a=1)", [{"": {"a": 1}}]),
    ],
)
def test_decodes_like_bfcl(text, expected):
    assert calls(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "```python\n[f(a=1)]\n```",
        "f(a=1)\ng(b=2)",  # calls on separate lines
        "Here you go:\n[f(a=1)]",
        '[{"name": "f", "arguments": {"a": 1}}]',
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
        "f(x=math.pi)",
        "f(x=-y)",
        "f(x=- -1)",
        "f(x=1/0)",
        "f(x=y+1)",
        "f(x={1, 2})",
        "f(x=lambda: 1)",
        "f(x=f'{y}')",
        "f(x=1 < 2)",
        "f(x={**d})",
        "f(x=-'s')",
        "[f(a=1), 3]",
        "I cannot help with that.",
    ],
)
def test_fails_like_bfcl(text):
    decoded = decode_reference(text)
    assert decoded.calls is None and decoded.error


def test_empty_list_is_no_call():
    assert score_output("[]", [INTERVAL], [], "irrelevance")["accuracy"] == 1
    assert score_output("[]", [INTERVAL], INTERVAL_GOLD, "simple")["accuracy"] == 0


def test_real_items_under_every_style():
    folder = shared_data_path("bfcl")
    for category in CATEGORIES:
        for record in read_category(folder, category)[:60]:
            functions, gold = record["functions"], record["ground_truth"]
            if "irrelevance" in category:
                python = format_calls([{functions[0]["name"]: {}}], "python")
                assert score_output(python, functions, gold, category)["accuracy"] == 0
                for passing in (f"```python\n{python}\n```", "[]", "No function fits.", format_calls([{"f": {}}], "json")):
                    assert score_output(passing, functions, gold, category)["accuracy"] == 1, passing
                continue
            ok = not bfcl_ast.ground_truth_issues(functions, gold)
            python = format_calls(bfcl_ast.gold_calls(gold, functions), "python")
            for text, passes in (
                (python, ok),
                (python[1:-1], ok),
                (f"```\n{python}\n```", ok),
                (f"```python\n{python}\n```", False),
                (f"Sure.\n{python}", False),
                (format_calls(bfcl_ast.gold_calls(gold, functions), "json"), False),
            ):
                assert bool(score_output(text, functions, gold, category)["accuracy"]) == passes, (record["id"], text)


# --- properties -----------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,6}){0,2}", fullmatch=True).filter(
    lambda n: all(not __import__("keyword").iskeyword(p) for p in n.split("."))
)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda k: not __import__("keyword").iskeyword(k))
scalars = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6
)
call_lists = st.lists(st.builds(lambda n, a: {n: a}, names, st.dictionaries(keys, values, max_size=4)), min_size=1, max_size=3)


@given(call_lists, st.sampled_from(["", " ", "\n", "```\n", "`` \n"]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_python_calls_round_trip_bare_listed_and_plain_fenced(expected, edge):
    listed = format_calls(expected, "python")
    assert calls(edge + listed + edge[::-1]) == expected
    assert calls(listed[1:-1]) == expected


@given(call_lists)
@settings(max_examples=60, deadline=None)
def test_a_language_tagged_fence_never_decodes(expected):
    assert calls(f"```python\n{format_calls(expected, 'python')}\n```") is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_never_raises(text):
    decoded = decode_reference(text)
    assert (decoded.calls is None) == bool(decoded.error)


def _bfcl_decoder():
    path = os.environ.get("BFCL_EVAL_PATH")
    if not path:
        pytest.skip("set BFCL_EVAL_PATH to a --target install of bfcl-eval to compare against it")
    sys.path.insert(0, path)
    shim = types.ModuleType("bfcl_eval.constants.model_config")
    shim.MODEL_CONFIG_MAPPING = {}
    sys.modules.setdefault("bfcl_eval.constants.model_config", shim)
    try:
        return importlib.import_module("bfcl_eval.model_handler.utils").default_decode_ast_prompting
    except ImportError as exc:
        pytest.skip(f"bfcl-eval not importable from {path}: {exc}")


python_ish = st.text(alphabet="fgx.()[]{}=,'\"`\n +-/:0123456789abn_", max_size=40)  # no * or <<: eval of 9**9**9 hangs


@given(st.one_of(python_ish, call_lists.map(lambda c: format_calls(c, "python"))))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_agrees_with_bfcl_eval_decoder(text):
    bfcl_decode = _bfcl_decoder()
    try:
        theirs = bfcl_decode(text)
    except Exception:
        theirs = None
    assert calls(text) == theirs, text
