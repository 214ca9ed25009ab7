"""BFCL AST checker: rules, reference quirks, the fixed variant, gold and perturbed real items."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import shared_data_path

from lm_eval_acbench.metrics import bfcl_ast
from lm_eval_acbench.metrics.bfcl_ast import FIXED, REFERENCE, check_item, gold_calls, ground_truth_issues
from lm_eval_acbench.metrics.tool_calls import format_calls
from lm_eval_acbench.paths import SAMPLES_DIR
from lm_eval_acbench.tasks.function_call import CATEGORIES, read_category, score_output

AREA = {
    "name": "area",
    "description": "",
    "parameters": {
        "type": "dict",
        "required": ["base", "height"],
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "float"},
            "unit": {"type": "string"},
            "sides": {"type": "array", "items": {"type": "float"}},
            "opts": {"type": "dict"},
        },
    },
}
GOLD = [
    {"area": {"base": [10], "height": [5.0], "unit": ["cm", ""], "sides": ["", [1.5, 2.0]], "opts": [""]}}
]


def verdict(call_args, category="simple", rules=REFERENCE, gold=GOLD, functions=(AREA,)):
    return check_item(list(functions), [{"area": call_args}], gold, category, rules)


def test_simple_rules():
    assert verdict({"base": 10, "height": 5}).valid  # int for float is promoted
    assert verdict({"base": 10, "height": 5.0, "unit": " C-M "}).valid  # string normal form
    assert verdict({"base": 10, "height": 5.0, "unit": "CM"}).valid
    assert verdict({"base": 10, "height": 5.0}).error_type == ""
    assert verdict({"base": 10}).error_type == "missing_required"
    assert verdict({"base": 10, "height": 5, "colour": "red"}).error_type == "unexpected_param"
    assert verdict({"base": 10.0, "height": 5}).error_type == "type_error:simple"
    assert verdict({"base": True, "height": 5}).error_type == "type_error:simple"  # bool is not int
    assert verdict({"base": "10", "height": 5}).error_type == "type_error:simple"
    assert verdict({"base": 11, "height": 5}).error_type == "value_error:others"
    assert verdict({"base": 10, "height": 5, "unit": "mm"}).error_type == "value_error:string"
    assert verdict({"base": 10, "height": 5, "sides": [1.5, 2.0]}).valid
    assert verdict({"base": 10, "height": 5, "sides": [2.0, 1.5]}).error_type == "value_error:list"
    wrong_name = check_item([AREA], [{"volume": {"base": 10, "height": 5}}], GOLD, "simple")
    assert wrong_name.error_type == "wrong_func_name"
    assert (
        check_item([AREA], [{"area": {"base": 10, "height": 5}}] * 2, GOLD, "simple").error_type
        == "wrong_count"
    )
    assert check_item([AREA], [], GOLD, "simple").error_type == "no_call"


def test_optional_and_dict_rules():
    gold = [{"area": {"base": [10], "height": [5.0], "opts": [{"mode": ["fast", ""], "level": [1]}]}}]
    assert verdict({"base": 10, "height": 5, "opts": {"level": 1}}, gold=gold).valid
    assert verdict({"base": 10, "height": 5, "opts": {"level": 1, "mode": "FAST"}}, gold=gold).valid
    assert (
        verdict({"base": 10, "height": 5, "opts": {"level": 2}}, gold=gold).error_type
        == "value_error:dict_value"
    )
    assert (
        verdict({"base": 10, "height": 5, "opts": {"mode": "fast"}}, gold=gold).error_type
        == "value_error:dict_key"
    )
    assert verdict({"base": 10, "height": 5}, gold=gold).error_type == "missing_optional"


def test_reference_quirks_and_fixed_variant():
    # An empty list matches the optional marker "" (BFCL's list checker iterates over "").
    assert verdict({"base": 10, "height": 5, "sides": []}).valid
    # Ints inside a float array fail the reference's nested type check; the fixed rules accept them.
    gold = [{"area": {"base": [10], "height": [5.0], "sides": [[1.0, 2.5]]}}]
    assert verdict({"base": 10, "height": 5, "sides": [1, 2.5]}, gold=gold).error_type == "type_error:nested"
    assert verdict({"base": 10, "height": 5, "sides": [1, 2.5]}, gold=gold, rules=FIXED).valid
    # Dots written as underscores: reference fails, fixed accepts.
    dotted = dict(AREA, name="geo.area")
    gold_dotted = [{"geo.area": {"base": [10], "height": [5.0]}}]
    call = [{"geo_area": {"base": 10, "height": 5}}]
    assert not check_item([dotted], call, gold_dotted, "simple").valid
    assert check_item([dotted], call, gold_dotted, "simple", FIXED).valid


def test_parallel_greedy_matching_quirk():
    """Gold call 0 accepts either value, gold call 1 only one: greedy takes the wrong one first."""
    fn = {
        "name": "f",
        "parameters": {"type": "dict", "required": ["x"], "properties": {"x": {"type": "integer"}}},
    }
    gold = [{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}]
    calls = [{"f": {"x": 1}}, {"f": {"x": 2}}]
    assert check_item([fn], calls, gold, "parallel").error_type == "parallel:no_match"
    assert check_item([fn], calls, gold, "parallel", FIXED).valid
    assert check_item([fn], list(reversed(calls)), gold, "parallel").valid
    # "parallel" is tested before "multiple": parallel_multiple uses the order-free checker.
    assert check_item([fn], list(reversed(calls)), gold, "parallel_multiple").valid
    assert check_item([fn], calls[:1], gold, "parallel").error_type == "wrong_count"


def test_irrelevance_passes_without_a_call():
    assert (
        score_output("I cannot help with that using these tools.", [AREA], [], "irrelevance")["accuracy"] == 1
    )
    assert score_output("[area(base=1, height=2)]", [AREA], [], "irrelevance")["accuracy"] == 0
    # An undecodable call counts as no call, so it passes irrelevance (reference behaviour);
    # to BFCL's decoder JSON is undecodable.
    assert (
        score_output('{"name": "area", "arguments": {"base": 1', [AREA], [], "live_irrelevance")["accuracy"]
        == 1
    )


def test_score_output_never_raises_and_gives_reasons():
    for output in [
        "",
        "prose",
        "[" * 10000,
        '{"name": "area", "arguments": {"base": "ten"}}',
        "area(base=1e999)",
        json.dumps([{"name": "area", "arguments": {"base": [[[[1]]]]}}]),
        "\x00\x01",
        "<tool_call></tool_call>",
    ]:
        scored = score_output(output, [AREA], GOLD, "simple")
        assert scored["accuracy"] == 0 and scored["verdict"]["reason"], output


# --- gold-derived and perturbed outputs on real and sample items ---------------------------

SCORED = [
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
]


def _items(folder):
    for category in SCORED:
        for record in read_category(folder, category):
            yield category, record


# The output styles models use for a call list; the lenient decoder reads them all.
OUTPUT_STYLES = ("json", "tags", "python", "bare", "fence", "python_fence", "json_fence", "lines")


def _styled(calls, style):
    if style in ("json", "tags", "python"):
        return format_calls(calls, style)
    listed = format_calls(calls, "python")
    return {
        "bare": listed[1:-1],  # f(a=1), g(b=2)
        "fence": f"```\n{listed}\n```",
        "python_fence": f"```python\n{listed}\n```",
        "json_fence": f"```json\n{format_calls(calls, 'json')}\n```",
        "lines": "\n".join(format_calls([call], "python")[1:-1] for call in calls),
    }[style]


def _bfcl_reads(style, calls):
    """BFCL's prompting decoder (``default_decode_ast_prompting``): it strips backticks, new lines and
    spaces from both ends, adds the brackets and parses Python, so it reads a list, bare calls and a
    plain fence; the word ``python`` of a ```python fence stays in front, calls on separate lines are
    a syntax error, and JSON and tags are not Python calls."""
    return style in ("python", "bare", "fence") or (style == "lines" and len(calls) == 1)


def _check_gold_and_perturbations(folder):
    counts = {"items": 0, "never_pass": 0}
    for category, record in _items(folder):
        functions, gold = record["functions"], record["ground_truth"]
        issues = ground_truth_issues(functions, gold)
        calls = gold_calls(gold, functions)
        counts["items"] += 1
        for style in OUTPUT_STYLES:
            scored = score_output(_styled(calls, style), functions, gold, category)
            assert bool(scored["accuracy_fixed"]) == (not issues), (record["id"], style, scored["verdict"], issues)
            assert bool(scored["accuracy"]) == ((not issues) and _bfcl_reads(style, calls)), (
                record["id"], style, scored["verdict"], issues)
        if issues:
            counts["never_pass"] += 1
            continue
        name = next(iter(calls[0]))
        # Wrong function name.
        bad = copy.deepcopy(calls)
        bad[0] = {name + "_x": bad[0][name]}
        assert score_output(format_calls(bad, "python"), functions, gold, category)["accuracy"] == 0, record["id"]
        # Unknown parameter.
        bad = copy.deepcopy(calls)
        bad[0][name]["zz_unknown"] = 1
        assert score_output(format_calls(bad, "python"), functions, gold, category)["accuracy"] == 0, record["id"]
        # A required parameter dropped.
        required = next(f for f in functions if f["name"] == name)["parameters"].get("required") or []
        if required:
            bad = copy.deepcopy(calls)
            bad[0][name].pop(required[0], None)
            assert score_output(format_calls(bad, "python"), functions, gold, category)["accuracy"] == 0, record[
                "id"
            ]
        # One call too many.
        assert score_output(format_calls(calls + calls[:1], "python"), functions, gold, category)["accuracy"] == 0
        # Prose.
        assert score_output("I would call a function here.", functions, gold, category)["accuracy"] == 0
        # Parallel calls in reverse order pass under the fixed rules (order-free matching).
        if "parallel" in category:
            scored = score_output(format_calls(list(reversed(calls)), "json"), functions, gold, category)
            assert scored["accuracy_fixed"] == 1, record["id"]
    return counts


def test_gold_and_perturbations_on_the_sample_set():
    counts = _check_gold_and_perturbations(SAMPLES_DIR / "bfcl")
    assert counts["items"] >= 15 and counts["never_pass"] == 0


def test_gold_and_perturbations_on_real_bfcl():
    folder = shared_data_path("bfcl")
    counts = _check_gold_and_perturbations(folder)
    assert counts["items"] > 2000
    assert counts["never_pass"] < 10  # a handful of ground truths contradict their schemas


def test_value_perturbations_on_real_bfcl():
    """A changed number or string fails unless the changed value is itself allowed."""
    folder = shared_data_path("bfcl")
    changed = 0
    for category, record in _items(folder):
        functions, gold = record["functions"], record["ground_truth"]
        if ground_truth_issues(functions, gold):
            continue
        calls = gold_calls(gold, functions)
        name = next(iter(calls[0]))
        allowed = gold[0][name]
        for param, value in calls[0][name].items():
            if type(value) is int:
                new = value + 7
            elif type(value) is str and value.strip():
                new = value + " zq"
            else:
                continue
            bad = copy.deepcopy(calls)
            bad[0][name][param] = new
            scored = score_output(format_calls(bad, "python"), functions, gold, category)
            still_allowed = new in allowed[param] or (
                isinstance(new, str)
                and bfcl_ast.standardize_string(new)
                in [bfcl_ast.standardize_string(a) for a in allowed[param] if isinstance(a, str)]
            )
            if "parallel" not in category:
                assert bool(scored["accuracy"]) == still_allowed, (record["id"], param, new)
            changed += 1
            break
    assert changed > 1000


def test_sample_set_covers_every_category():
    for category in CATEGORIES:
        assert read_category(SAMPLES_DIR / "bfcl", category), category


@pytest.mark.parametrize("category", ["simple", "parallel"])
def test_type_perturbation(category):
    fn = {
        "name": "f",
        "parameters": {"type": "dict", "required": ["n"], "properties": {"n": {"type": "integer"}}},
    }
    gold = [{"f": {"n": [3]}}]
    for accuracy in ("accuracy", "accuracy_fixed"):
        assert score_output("[f(n='3')]", [fn], gold, category)[accuracy] == 0
        assert score_output("[f(n=3.0)]", [fn], gold, category)[accuracy] == 0
        assert score_output("[f(n=3)]", [fn], gold, category)[accuracy] == 1
    assert score_output('[{"name": "f", "arguments": {"n": 3}}]', [fn], gold, category)["accuracy_fixed"] == 1
