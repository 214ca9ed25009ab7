"""T-Eval scores: each dimension's rule, gold-derived outputs on our sample set, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_acbench.metrics import teval_scores as ts
from lm_eval_acbench.paths import SAMPLES_DIR

STR_T = {
    "thought_start": "Thought:",
    "thought_end": "\n",
    "action_start": "Action:",
    "action_end": "\n",
    "args_start": "Action Input:",
    "args_end": "\n",
}
GOLD = {"thought": "t", "action": "Weather.get", "args": {"city": "Lyon", "days": 3}}


def test_instruct_json_and_string():
    good = json.dumps({"thought": "x", "name": "Weather.get", "args": {"city": "Lyon", "days": 3}})
    assert (
        ts.instruct_score(good, GOLD, {"thought": "thought", "action": "name", "args": "args"}, "json")[
            "score"
        ]
        == 1
    )
    half = json.dumps({"thought": "x", "name": "Weather.get", "args": {"city": "Lyon", "days": 4}})
    parts = ts.instruct_score("```json\n" + half + "\n```", GOLD, {}, "json")
    assert (
        parts["format"] == 1
        and parts["args_em"] == pytest.approx(2 / 3)
        and parts["score"] == pytest.approx(5 / 6)
    )
    assert ts.instruct_score("no json here", GOLD, {}, "json") == {
        "score": 0.0,
        "format": 0.0,
        "args_em": 0.0,
        "parsed": False,
        "score_fixed": 0.0,
        "parsed_fixed": False,
        "score_lenient": 0.0,
        "parsed_lenient": False,
        "format_lenient": "none",
        "reason_lenient": "no function call found (prose or malformed)",
    }
    text = 'Thought: look it up\nAction: Weather.get\nAction Input: {"city": "Lyon", "days": 3}\n'
    assert ts.instruct_score(text, GOLD, STR_T, "str")["score"] == 1
    wrong_action = text.replace("Weather.get", "Weather.put")
    assert ts.instruct_score(wrong_action, GOLD, STR_T, "str")["args_em"] == pytest.approx(2 / 3)
    unparsable_args = "Thought: x\nAction: Weather.get\nAction Input: city=Lyon\n"
    assert ts.instruct_score(unparsable_args, GOLD, STR_T, "str")["score"] == pytest.approx((1 + 1 / 3) / 2)
    assert ts.instruct_score("Action: Weather.get", GOLD, STR_T, "str")["format"] == 0


def test_instruct_string_reference_rules_and_fixed():
    # T-Eval's parse_string needs the final args_end ("\n"); the fixed rule does not.
    no_newline = 'Thought: x\nAction: Weather.get\nAction Input: {"city": "Lyon", "days": 3}'
    parts = ts.instruct_score(no_newline, GOLD, STR_T, "str")
    assert parts["score"] == 0 and not parts["parsed"] and parts["score_fixed"] == 1
    # args are read with ast.literal_eval only: JSON true is not a Python literal -> no args
    gold = {"action": "A.b", "args": {"on": True}}
    json_true = "Thought: x\nAction: A.b\nAction Input: {\"on\": true}\n"
    parts = ts.instruct_score(json_true, gold, STR_T, "str")
    assert parts["args_em"] == pytest.approx(1 / 2) and parts["score_fixed"] == 1
    # the template pieces are a regular expression there, unescaped: "(" cannot compile
    template = dict(STR_T, args_start="Args(")
    text = "Thought: x\nAction: Weather.get\nArgs({'city': 'Lyon', 'days': 3}\n"
    parts = ts.instruct_score(text, GOLD, template, "str")
    assert parts["score"] == 0 and parts["score_fixed"] == 1


def test_plan_matching_and_lis():
    identity = np.eye(3)
    assert ts.plan_scores(identity, identity)["f1"] == 1
    # Predicted in reverse order: every action matches, but only one is in increasing order.
    reversed_plan = identity[::-1]
    scores = ts.plan_scores(reversed_plan, reversed_plan)
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    # Below the threshold nothing matches (0.75 * 1 + 0.25 * 0.1 = 0.775 <= 0.8): the reference's
    # LIS still counts one correct action (P = R = 1/2); the fixed score counts none.
    assert ts.plan_scores(np.ones((2, 2)), np.full((2, 2), 0.1))["f1"] == pytest.approx(0.5)
    assert ts.plan_scores_fixed(np.ones((2, 2)), np.full((2, 2), 0.1))["f1"] == 0
    # a one-action plan with the wrong action: full marks in the reference
    assert ts.plan_scores(np.zeros((1, 1)), np.zeros((1, 1)))["f1"] == 1
    assert ts.plan_scores_fixed(np.zeros((1, 1)), np.zeros((1, 1)))["f1"] == 0
    # Negative cosines are clipped to 0, extra predicted steps lower precision only.
    name = np.array([[1.0, -1.0], [-1.0, 1.0], [0.2, 0.1]])
    scores = ts.plan_scores(name, np.ones((3, 2)))
    assert scores["recall"] == 1 and scores["precision"] == pytest.approx(2 / 3)
    assert ts.plan_scores(np.zeros((0, 2)), np.zeros((0, 2)))["f1"] == 0
    assert ts.plan_scores_fixed(reversed_plan, reversed_plan)["precision"] == pytest.approx(1 / 3)
    assert ts.lis_length([2, 0, 1, 3]) == 3 and ts.lis_length([]) == 0


def test_plan_parsers():
    plan = [
        {"id": 1, "name": "B.b", "args": {"x": 1}},
        {"id": 0, "name": "A.a", "args": "{}"},
        {"id": 2, "name": "FinishAction", "args": {}},
    ]
    parsed = ts.parse_plan_json("Here:\n```json\n" + json.dumps(plan) + "\n```")
    assert [a["name"] for a in parsed] == ["A.a", "B.b", "FinishAction"] and parsed[1]["args"] == "{'x': 1}"
    assert ts.drop_finish(parsed)[-1]["name"] == "B.b"
    assert ts.parse_plan_json('[{"id": 0, "args": {}}]') == [] and ts.parse_plan_json("prose") == []
    # the reference needs name, args and an int()-convertible id on every action
    no_id = '[{"name": "A.a", "args": {}}, {"name": "B.b", "args": {}}]'
    assert ts.parse_plan_json(no_id, reference=True) == [] and len(ts.parse_plan_json(no_id)) == 2
    string_ids = '[{"id": "1", "name": "B.b", "args": {}}, {"id": "0", "name": "A.a", "args": {}}]'
    assert [a["name"] for a in ts.parse_plan_json(string_ids, reference=True)] == ["A.a", "B.b"]
    assert ts.parse_plan_json('[{"id": 0, "name": "A.a"}]', reference=True) == []
    text = "1. Call A.a with x. 2. Then B.b and A.a\n3. FinishAction"
    assert [a["name"] for a in ts.parse_plan_str(text, ["A.a", "B.b"])] == ["A.a", "B.b"]


def test_reason_retrieve_understand_review():
    assert ts.thought_score(-0.3) == 0 and ts.thought_score(0.7) == pytest.approx(0.7)
    assert ts.retrieve_json("A.b", "A.b") == 1 and ts.retrieve_json("A.c", "A.b") == 0
    assert ts.retrieve_str("I will call Hotel.get_price next.", "Hotel.get_price") == 1
    assert ts.retrieve_str("Hotel.get_price, then FinishAction", "Hotel.get_price") == 0
    assert ts.retrieve_str("Hotel.search or Hotel.get_price", "Hotel.get_price") == 0
    # the reference divides by |gold args| + 1e-5, so a perfect answer scores just below 1
    half = ts.understand_json({"a": 1, "b": "x"}, {"a": "1", "b": "y"})
    assert half == pytest.approx(1 / (2 + 1e-5), abs=0)
    assert ts.understand_json({"a": 1, "b": "x"}, {"a": "1", "b": "y"}, fixed=True) == 0.5
    assert ts.understand_json({"a": 1}, {"a": 1}) < 1
    assert ts.understand_json({"a": 1}, {"a": 1}, fixed=True) == 1
    assert (
        ts.understand_json({}, {}) == 1
        and ts.understand_json({"a": 1}, {}) == 0
        and ts.understand_json({}, {"a": 1}) == 0
    )
    # reference: quotes stripped from the ends ("'" then '"'), no whitespace; a gold object is
    # compared as its Python str
    assert ts.understand_str('"Lyon"', "Lyon") == 1 and ts.understand_str(' "Lyon" ', "Lyon") == 0
    assert ts.understand_str_fixed(' "Lyon" ', "Lyon") == 1 and ts.understand_str_fixed("Paris", "Lyon") == 0
    gold_obj = {"hotel_id": 77, "nights": 2}
    assert ts.understand_str("{'hotel_id': 77, 'nights': 2}", gold_obj) == 1
    assert ts.understand_str('{"hotel_id": 77, "nights": 2}', gold_obj) == 0
    assert ts.understand_str_fixed('{"hotel_id": 77, "nights": 2}', gold_obj) == 1
    assert ts.understand_str_fixed('{"hotel_id": 78, "nights": 2}', gold_obj) == 0
    text = 'noise {"thought": "t", "name": "A.b", "args": "{\\"k\\": 1}"} tail'
    assert ts.parse_rru_json(text) == {"thought": "t", "name": "A.b", "args": {}}  # the reference
    assert ts.parse_rru_json(text, lenient=True) == {"thought": "t", "name": "A.b", "args": {"k": 1}}
    assert ts.parse_rru_json("[1, 2]") is None
    assert ts.review_score("Answer: B", "B") == 1 and ts.review_score("Answer: b", "B") == 0
    assert ts.review_score("Answer: F", "F") == 0 and ts.review_letter("B") == "B"


def test_format_balanced_mean():
    items = [
        {"format": "json", "value": 1.0},
        {"format": "json", "value": 1.0},
        {"format": "json", "value": 1.0},
        {"format": "str", "value": 0.0},
    ]
    assert ts.format_balanced_mean(items) == pytest.approx(0.5)
    assert ts.format_balanced_mean([0.2, 0.4]) == pytest.approx(0.3)
    assert ts.format_balanced_mean([]) == 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parsers_never_raise(text):
    assert ts.instruct_score(text, GOLD, STR_T, "str")["score"] <= 1
    assert ts.instruct_score(text, GOLD, {}, "json")["score"] <= 1
    assert isinstance(ts.parse_plan_json(text), list)
    assert isinstance(ts.parse_plan_str(text, ["A.a"]), list)
    ts.parse_rru_json(text)
    assert 0 <= ts.understand_str(text, {"a": 1}) <= 1 and 0 <= ts.retrieve_str(text, "A.a") <= 1
    assert 0 <= ts.understand_str_fixed(text, {"a": 1}) <= 1
    assert ts.instruct_score(text, GOLD, dict(STR_T, args_start="(("), "str")["score"] <= 1
    ts.parse_rru_json(text, lenient=True)
    assert isinstance(ts.parse_plan_json(text, reference=True), list)
    ts.review_letter(text)


def test_huge_and_deep_inputs():
    assert ts.load_structured("[" * 100000 + "]" * 100000) is None
    assert ts.parse_plan_json("[" * 50000) == []
    assert ts.instruct_score("{" * 10**6, GOLD, {}, "json")["score"] == 0


# --- gold-derived outputs on our sample set (no embeddings needed for these dimensions) -----


def _sample(name):
    return json.loads((SAMPLES_DIR / "teval" / f"{name}.json").read_text())


def test_sample_instruct_gold_outputs_score_one():
    for item in _sample("instruct_v2").values():
        gold, fmt = item["ground_truth"], item["meta_data"]["response_format"]
        if fmt == "json":
            text = json.dumps({"thought": gold["thought"], "name": gold["action"], "args": gold["args"]})
            assert ts.instruct_score(text, gold, item["template"], fmt)["score"] == 1
        else:
            # the reference reads a Python literal and needs the final "\n"; the fixed rule also
            # takes JSON without it
            head = f"Thought: {gold['thought']}\nAction: {gold['action']}\nAction Input: "
            assert ts.instruct_score(head + f"{gold['args']!r}\n", gold, item["template"], fmt)["score"] == 1
            parts = ts.instruct_score(head + json.dumps(gold["args"]), gold, item["template"], fmt)
            assert parts["score_fixed"] == 1


def test_sample_retrieve_understand_review_gold_outputs():
    for item in _sample("retrieve_str_v2").values():
        assert ts.retrieve_str(item["ground_truth"]["name"], item["ground_truth"]["name"]) == 1
    for item in _sample("understand_str_v2").values():
        gold_args = item["ground_truth"]["args"]
        assert ts.understand_str(str(gold_args), gold_args) == 1
        assert ts.understand_str_fixed(json.dumps(gold_args), gold_args) == 1
    for item in _sample("reason_retrieve_understand_json_v2").values():
        pred = ts.parse_rru_json(json.dumps(item["ground_truth"]))
        assert ts.retrieve_json(pred["name"], item["ground_truth"]["name"]) == 1
        gold_args = item["ground_truth"]["args"]
        assert ts.understand_json(pred["args"], gold_args, fixed=True) == 1
        expected = 1.0 if not gold_args else len(gold_args) / (len(gold_args) + 1e-5)
        assert ts.understand_json(pred["args"], gold_args) == pytest.approx(expected, abs=1e-15)
    letters = set()
    for item in _sample("review_str_v2").values():
        letters.add(item["ground_truth"]["answer"])
        assert (
            ts.review_score(f"Answer: {item['ground_truth']['answer']}", item["ground_truth"]["answer"]) == 1
        )
    assert len(letters) >= 3
