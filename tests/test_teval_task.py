"""T-Eval data loading and item scoring with real sentence embeddings (our sample set)."""

from __future__ import annotations

import json

import pytest

from lm_eval_acbench import data
from lm_eval_acbench.paths import SAMPLES_DIR
from lm_eval_acbench.tasks.teval import DIMENSIONS, read_dimension, score_doc

FOLDER = SAMPLES_DIR / "teval"
# The small model keeps these tests quick; the default (all-mpnet-base-v2) scores the same way.
MINI = "sentence-transformers/all-MiniLM-L6-v2"


def _doc(record):
    """A record as lm-eval hands it to the task (nested values stored as JSON strings)."""
    return data.as_split([dict(record)])["test"][0]


def _gold_output(record):
    gold, fmt, dim = record["ground_truth"], record["response_format"], record["dimension"]
    if dim == "instruct":
        if fmt == "json":
            return json.dumps({"thought": gold["thought"], "name": gold["action"], "args": gold["args"]})
        # the reference's string template: args as a Python literal, the final "\n" present
        return f"Thought: {gold['thought']}\nAction: {gold['action']}\nAction Input: {gold['args']!r}\n"
    if dim == "plan":
        if fmt == "json":
            return json.dumps([{"id": a["id"], "name": a["name"], "args": a["args"]} for a in gold])
        return "\n".join(f"{i + 1}. Call {a['name']} with {a['args']}" for i, a in enumerate(gold))
    if dim == "review":
        return f"Answer: {gold['answer']}"
    if fmt == "json":
        return json.dumps(gold)
    return {
        "reason": gold.get("thought"),
        "retrieve": gold.get("name"),
        "understand": str(gold.get("args")),  # the reference compares with str(gold args)
    }[dim]


def test_every_dimension_loads_both_formats():
    for dimension, files in DIMENSIONS.items():
        records = read_dimension(FOLDER, dimension)
        formats = {r["response_format"] for r in records}
        assert records and {r["file"] for r in records} == {stem for stem, _ in files}
        assert formats == {"json", "str"} or dimension == "review", (dimension, formats)
        assert all(r["messages"][0]["role"] == "system" for r in records)


def test_broken_files_give_a_clear_error(tmp_path):
    (tmp_path / "review_str_v2.json").write_text("[1, 2]")
    with pytest.raises(data.DataUnavailable, match="keyed by item id"):
        read_dimension(tmp_path, "review")
    with pytest.raises(data.DataUnavailable, match="missing data file"):
        read_dimension(tmp_path, "plan")


@pytest.fixture(scope="module")
def records():
    return [r for dimension in DIMENSIONS for r in read_dimension(FOLDER, dimension)]


EMBEDDING_DIMS = ("plan", "reason")


def test_gold_outputs_score_one(records):
    for record in records:
        if record["dimension"] in EMBEDDING_DIMS:
            continue
        scored = score_doc(_doc(record), _gold_output(record))
        assert scored["parsed"] and scored["score_fixed"] == 1, (record["id"], scored)
        # JSON understand: the reference divides by |gold args| + 1e-5
        assert scored["score"] == pytest.approx(1, abs=1e-5), (record["id"], scored)


@pytest.mark.slow  # loads a sentence-embedding model
def test_gold_outputs_score_one_with_embeddings(records):
    for record in records:
        if record["dimension"] not in EMBEDDING_DIMS:
            continue
        scored = score_doc(_doc(record), _gold_output(record), MINI)
        assert scored["parsed"], record["id"]
        if record["dimension"] == "plan" and record["response_format"] == "str":
            assert scored["score"] == 1, (record["id"], scored)  # names match, args text differs a little
        else:
            assert scored["score"] == pytest.approx(1, abs=1e-5), (record["id"], scored)


@pytest.mark.slow  # loads a sentence-embedding model
def test_perturbed_outputs_score_lower(records):
    by_id = {r["id"]: r for r in records}
    plan = next(r for r in records if r["dimension"] == "plan" and r["response_format"] == "json")
    reversed_plan = json.dumps(
        list(reversed([{"id": 0, "name": a["name"], "args": a["args"]} for a in plan["ground_truth"][:-1]]))
    )
    assert score_doc(_doc(plan), reversed_plan, MINI)["score"] < 1
    reason = next(r for r in records if r["dimension"] == "reason" and r["response_format"] == "str")
    assert score_doc(_doc(reason), "Penguins live in the southern hemisphere.", MINI)["score"] < 0.5
    rru = next(r for r in records if r["dimension"] == "retrieve" and r["response_format"] == "json")
    wrong = dict(rru["ground_truth"], name="Other.tool")
    assert score_doc(_doc(rru), json.dumps(wrong), MINI)["score"] == 0
    for record in by_id.values():
        scored = score_doc(_doc(record), "I am not sure what to do.", MINI)
        assert scored["score"] < 0.6, record["id"]
