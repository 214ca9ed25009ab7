"""Quick profile of the fuzz harness (``tests/fuzz_harness.py``; the long run is
``bench/fuzz_parsers.py``): every parser and scoring hook takes hostile model outputs and data
rows without raising, with finite metrics and a samples-log record lm-eval can write.

The ``@example`` inputs are the minimised crashing or stalling inputs found while fuzzing.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fuzz_harness as fh
from lm_eval_acbench.logsafe import log_safe
from lm_eval_acbench.metrics import longgenbench as lgb
from lm_eval_acbench.metrics import teval_scores as ts
from lm_eval_acbench.metrics.longcontext_longbench import lcs_length

STALL_S = 5.0  # the bench holds inputs to 1 s; here a generous bound only catches stalls
PROFILE_INPUTS = 40


@pytest.fixture(scope="module")
def plain_targets():
    """The targets that need no lm-eval task object (all but the Python task classes)."""
    return {t.name: t for t in fh.targets(with_tasks=False)}


def _timed_check(target, value):
    started = time.perf_counter()
    fh.check(target, value)
    elapsed = time.perf_counter() - started
    assert elapsed < STALL_S, f"{target.name} took {elapsed:.1f} s"


def test_quick_profile_every_plain_target(plain_targets):
    """A few dozen seeded inputs per target, plus one of each pathological shape."""
    shapes = [fh.shape(name, 1) for name in sorted(set(fh.SHAPES) - fh._LARGE)]
    inputs = [value for _, value in fh.hostile_inputs(PROFILE_INPUTS, seed=7)]
    for target in plain_targets.values():
        for value in inputs + shapes:
            _timed_check(target, value)


def test_quick_profile_task_classes():
    """lm-eval's own task objects (our sample data): function calling and T-Eval."""
    from fuzz_harness import _load_tasks, _task_target

    tasks = _load_tasks(["acbench_function_call_simple", "acbench_function_call_native_simple",
                         "acbench_teval_instruct", "acbench_teval_understand"])
    hard = ["{'':'','args':{():3}}", "f(a=0x" + "f" * 3600 + ")", "\ud800", 10**5000, float("nan"), None,
            '{"name": "f", "arguments": {"a": ' + "9" * 5000 + "}}", "Thought:x\nAction:y\n" * 3000]
    inputs = hard + [value for _, value in fh.hostile_inputs(PROFILE_INPUTS, seed=3)]
    for name, task in tasks.items():
        target = _task_target(name, task)
        for value in inputs:
            _timed_check(target, value)


@pytest.mark.parametrize("name", [
    "tool_calls.parse_tool_calls", "teval.score_doc(ground truth/template)", "teval_scores.plan (parse + score)",
    "teval_scores.reason (parse + score)", "workflow.score_batch + process_results", "workflow.score_batch(gold)",
    "longbench.process_results", "longcontext_longbench.best_over_golds(golds)", "longgenbench.process_results",
    "longgenbench.align + zip_accuracy(golds)", "niah.process_results", "realworld.process_results",
    "progress.score_transcript", "progress.regex/pattern_progress_trace(subgoals)", "episodes.extract_action",
    "tools.ToolEnv.step", "tools.answer_matches(expected)", "data.doc_json", "bfcl_ast.check_item(functions/ground truth)",
])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(value=fh.model_outputs())
@example(value="{'':'','args':{():3}}")  # T-Eval: a tuple key aborted the run in the JSON encoder
@example(value="f(a=0x" + "f" * 3600 + ")")  # function calling: int-to-string limit in the verdict
@example(value='{"name": "f", "arguments": {"a": ' + "9" * 5000 + "}}")  # the same through JSON
@example(value=10**5000)  # NIAH / LongBench / real world: str() of the response
@example(value="\ud800")  # lone surrogate: UTF-8 cannot write it into the samples log
@example(value=[])  # LongBench / LongGenBench: a non-string result
@example(value=0)  # golds that are not a list
@example(value=np.array([1.0, float("nan")]))  # T-Eval: truth value of an array as ground truth
@example(value="a{9999999999}")  # subgoal pattern: OverflowError in re.compile
@example(value="(" * 5000 + ")" * 5000)  # subgoal pattern / JSON: RecursionError
@example(value="Answer_1: x answer is (B " * 2000)  # LongGenBench zip rule: cubic regex (minutes)
@example(value="Answer_12345678901:" * 5000)  # the zip rule again: each marker rescanned its line
@example(value="Thought:x\nAction:y\n" * 3000)  # T-Eval string template: cubic regex (minutes)
@example(value="*" * 50_000)  # extract_action: quadratic on runs of *
@example(value=" ".join(["the", "cat"] * 16_000))  # LongBench ROUGE-L: 32k-word LCS
@example(value="Node:\n" + "".join(f"{i}: same\n" for i in range(1, 400)))  # WorfBench: hundreds of nodes
@example(value={"trajectory": [{"progress": float("inf")}]})  # a malformed trajectory
@example(value='{"trajectory": ' + "[" * 10_000 + "]" * 10_000 + "}")  # deep JSON transcript
@example(value="\\")  # BFCL function docs that are not a list of objects
def test_hypothesis_inputs(plain_targets, name, value):
    _timed_check(plain_targets[name], value)


# --- the linear-time rewrites give what the regexes they replace give ---------------------------

_ZIP_TEXT = st.lists(st.sampled_from(["Answer_1:", "Answer_", "2:", " ", "\n", "answer is ", "(", ")", "B", "7",
                                      "x", "answer is (", "\t", "\r"]), max_size=30).map("".join)


@settings(max_examples=150, deadline=None)
@given(_ZIP_TEXT)
def test_zip_matches_equal_the_original_findall(text):
    assert lgb.zip_matches(text, "number") == lgb._ZIP_NUMBER.findall(text)
    assert lgb.zip_matches(text, "letter") == lgb._ZIP_LETTER.findall(text)


_ORIGINAL_NUMBER = re.compile(r"answer\s+is\s*:?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_ORIGINAL_LETTER = re.compile(r"(?i:answer\s+is)\s*:?\s*(?:\(\s*([A-Ja-j])\s*\)|([A-J])(?![A-Za-z]))")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["answer is", " ", ":", "$", "(", "b", ")", "B", "1", ",", ".", "Bx", "\n"]),
                max_size=14).map("".join))
def test_unambiguous_answer_patterns_match_like_the_originals(text):
    assert [m.groups() for m in lgb._NUMBER_ANSWER.finditer(text)] == [m.groups() for m in _ORIGINAL_NUMBER.finditer(text)]
    assert [m.groups() for m in lgb._LETTER_ANSWER.finditer(text)] == [m.groups() for m in _ORIGINAL_LETTER.finditer(text)]


_TEMPLATES = [
    {"thought_start": "<t>", "thought_end": "</t>", "action_start": "<a>", "action_end": "</a>",
     "args_start": "<g>", "args_end": "</g>"},
    {"thought_start": "Thought:", "thought_end": "\n", "action_start": "Action:", "action_end": "\n",
     "args_start": "Action Input:", "args_end": ""},
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["<t>", "</t>", "<a>", "</a>", "<g>", "</g>", "x", "\n", "Thought:", "Action:",
                                 "Action Input:", "<", "/"]), max_size=25).map("".join), st.sampled_from(_TEMPLATES))
def test_template_groups_equal_teval_regex(text, template):
    found = re.findall(ts.template_pattern(template), text, re.S)
    assert ts._template_groups(text, template) == (found[0] if found else None)


def _lcs_table(a, b):
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1] if a and b else 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from("abcd"), max_size=40), st.lists(st.sampled_from("abcd"), max_size=70))
def test_bit_parallel_lcs_equals_the_table(a, b):
    assert lcs_length(a, b) == _lcs_table(a, b)


# --- log_safe --------------------------------------------------------------------------------


def test_log_safe_values_are_written_by_lm_evals_encoder():
    hostile = {(): 3, "s": "\ud800x", "n": float("nan"), "i": float("-inf"), "big": 10**5000, "b": b"\xff",
               1.5: {1, 2}, None: np.float32(2.0), "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
    with pytest.raises((TypeError, ValueError, UnicodeEncodeError)):
        fh.samples_log_line(hostile)
    line = json.loads(fh.samples_log_line(log_safe(hostile)))
    assert line["()"] == 3 and line["s"] == "\ufffdx" and line["n"] == "nan" and line["i"] == "-inf"
    assert line["big"].startswith("<int of") and line["b"] == "\ufffd" and line["1.5"] == [1, 2]
    assert line["None"] == 2.0


def test_log_safe_keeps_plain_values():
    plain = {"calls": [{"f": {"a": 1, "b": [1.5, "x", None, True]}}], "reason": "ok", "é": "😀"}
    assert log_safe(plain) == plain


def test_log_safe_cuts_long_text_and_says_so():
    text = log_safe("x" * 50_000)
    assert len(text) < 21_000 and text.endswith("[cut: 50000 characters]")


def test_hostile_generator_is_seeded():
    first = [kind for kind, _ in fh.hostile_inputs(200, seed=5)]
    assert first == [kind for kind, _ in fh.hostile_inputs(200, seed=5)]
    assert len(set(first)) > 10


def test_metrics_contract_rejects_non_finite():
    with pytest.raises(fh.ContractBroken):
        fh.check_metrics({"score": math.nan})
    with pytest.raises(fh.ContractBroken):
        fh.check_metrics({"score": "0.5"})


# --- the guards say why ----------------------------------------------------------------------


def test_realworld_deep_answer_is_one_clear_error_not_a_recursion_error():
    from lm_eval_acbench.tasks import realworld

    with pytest.raises(RuntimeError, match="not an episode transcript"):
        realworld.process_results({}, ['{"trajectory": ' + "[" * 100_000 + "]" * 100_000 + "}"])


def test_workflow_over_the_node_limit_scores_zero_with_the_reason():
    from lm_eval_acbench.metrics import workflow as wf

    big = "Node:\n" + "".join(f"{i}: step {i}\n" for i in range(1, wf.MAX_NODES + 2)) + "Edges: (START,1) (1,END)"
    gold = "Node:\n1: step 1\nEdges: (START,1) (1,END)"
    (result,) = wf.score_batch([big], [gold], fh.hashed_vectors)
    assert result["node_f1"] == 0.0 and f"more than {wf.MAX_NODES} nodes" in result["reason"]


def test_subgoal_that_re_cannot_compile_is_matched_literally():
    from lm_eval_acbench.metrics.progress import regex_matches

    assert regex_matches("you see a{9999999999} here", ["a{9999999999}", "(" * 5000]) == [True, False]


def test_bfcl_data_of_the_wrong_shape_is_a_bad_ground_truth_verdict():
    from lm_eval_acbench.metrics import bfcl_ast

    verdict = bfcl_ast.check_item("\\", [{"f": {}}], [{"f": {}}], "simple")
    assert not verdict.valid and verdict.error_type == "bad_ground_truth"


def test_teval_reference_template_with_literal_pieces_is_matched_in_linear_time():
    template = {"thought_start": "Thought:", "thought_end": "\n", "action_start": "Action:", "action_end": "\n",
                "args_start": "Action Input:", "args_end": "\n"}
    started = time.perf_counter()
    assert ts.parse_instruct_str("Thought:x\nAction:y\n" * 3000, template) is None  # the regex: seconds
    assert time.perf_counter() - started < 0.5
    parsed = ts.parse_instruct_str("Thought: hi\nAction: a.b\nAction Input: {'k': 1}\n", template)
    assert parsed == {"thought": " hi", "action": "a.b", "args": {"k": 1}}
