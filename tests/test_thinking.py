"""``<think>`` handling: the stripping rules, the setting, and every task's parser reading answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_acbench import data, thinking
from lm_eval_acbench.data import DataUnavailable
from lm_eval_acbench.episodes import LoopSettings, run_episodes
from lm_eval_acbench.envs.base import Step
from lm_eval_acbench.paths import task_dir
from lm_eval_acbench.tasks import longbench, longgenbench, niah
from lm_eval_acbench.tasks import workflow as wf
from lm_eval_acbench.thinking import FIELD, strip_thinking

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
KEEP = {FIELD: False}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>1. plan\n2. more</think>\nAnswer", "Answer"),
        ("<think>never closed\n1. step", ""),
        ("Answer first <think>then a thought", "Answer first"),
        ("thought opened by the prompt\n</think>\n\nAnswer", "Answer"),
        ("<think>a</think>x<think>b</think>y", "xy"),
        ("```python\n<think>hm</think>\n[f(a=1)]\n```", "```python\n\n[f(a=1)]\n```"),
        ("<think>a</think> b </think> c", "b  c"),
        ("no tags at all \n", "no tags at all \n"),  # unchanged, whitespace included
        ("<think>x</think>\n\nThought: a\nAction: f\nAction Input: {}\n", "Thought: a\nAction: f\nAction Input: {}\n"),
        ("Answer\n<think>x</think>\n ", "Answer"),
        ("<THINK>case matters</THINK>", "<THINK>case matters</THINK>"),
    ],
)
def test_strip_rules(text, expected):
    assert strip_thinking(text) == expected


tagless = st.text(max_size=80).filter(lambda t: "<think>" not in t and "</think>" not in t)


@given(tagless, tagless, tagless)
@settings(max_examples=200, deadline=None)
def test_strip_properties(thought, answer, before):
    # The answer's own trailing whitespace stays (T-Eval's string template ends in a new line).
    assert strip_thinking(f"<think>{thought}</think>{answer}") == answer.lstrip()
    assert strip_thinking(f"{thought}</think>{answer}") == answer.lstrip()
    assert strip_thinking(f"{answer}<think>{thought}") == answer.strip()  # ends in a thought
    both = before + answer
    assert strip_thinking(f"{before}<think>{thought}</think>{answer}") == (both.lstrip() if answer.strip() else both.strip())
    assert strip_thinking(answer) == answer
    once = strip_thinking(f"{before}<think>{thought}</think>{answer}<think>{thought}")
    assert strip_thinking(once) == once and "<think>" not in once and "</think>" not in once


def test_setting(monkeypatch):
    monkeypatch.delenv(thinking.ENV, raising=False)
    assert thinking.enabled({}) and thinking.enabled(None)
    assert not thinking.enabled({"strip_thinking": False})
    assert not thinking.enabled({"strip_thinking": "false"})
    monkeypatch.setenv(thinking.ENV, "0")
    assert not thinking.enabled({})
    assert thinking.enabled({"strip_thinking": True})  # metadata wins over the environment
    with pytest.raises(DataUnavailable, match="strip_thinking must be true or false"):
        thinking.enabled({"strip_thinking": "sometimes"})
    assert thinking.answer(KEEP, "<think>x</think>y") == "<think>x</think>y"
    assert thinking.answer({}, "<think>x</think>y") == "y"
    assert thinking.answer({}, None) == ""


def test_loaders_stamp_the_setting():
    on = longgenbench.load_mmlu(data_source="sample")["test"][0]
    off = longgenbench.load_mmlu(data_source="sample", strip_thinking=False)["test"][0]
    assert on[FIELD] is True and off[FIELD] is False
    lb = longbench.load(longbench_dataset="trec", data_source="sample", strip_thinking=False)["test"][0]
    assert lb[FIELD] is False
    from lm_eval_acbench.episodes import EPISODE_FIELD
    from lm_eval_acbench.tasks import realworld

    episode = realworld.load_tool_query(data_source="sample", strip_thinking=False)["test"][0]
    assert json.loads(episode[EPISODE_FIELD])[FIELD] is False  # the loop reads the episode record


# --- every task's parser --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_tasks():
    from lm_eval.tasks import TaskManager

    def load(**metadata):
        manager = TaskManager(include_path=str(task_dir()), include_defaults=False,
                              metadata={"data_source": "sample", **metadata})
        return manager.load(["acbench_function_call_simple", "acbench_teval_instruct", "acbench_teval_review",
                             "acbench_teval_retrieve", "acbench_teval_understand"])["tasks"]

    return load(), load(strip_thinking=False)


def _task(tasks, prefix):
    return next(t for name, t in tasks.items() if name.startswith(prefix))


def test_function_calling_reads_the_answer_after_the_thought(rendered_tasks):
    on, off = rendered_tasks
    task = _task(on, "acbench_function_call_simple")
    doc = next(iter(task.test_docs()))
    from lm_eval_acbench.metrics import bfcl_ast
    from lm_eval_acbench.metrics.tool_calls import format_calls

    gold = format_calls(bfcl_ast.gold_calls(data.doc_json(doc, "ground_truth"), data.doc_json(doc, "functions")), "python")
    decoy = "<think>\n1. maybe [wrong_function(x=1)]\n```json\n[{\"name\": \"nope\"}]\n```\n</think>\n"
    assert task.process_results(dict(doc), [decoy + gold])["accuracy"] == 1
    assert task.process_results(dict(doc), ["<think>\n" + gold])["accuracy"] == 0  # unclosed: all thought
    fenced = f"```python\n<think>check the units</think>\n{gold}\n```"
    assert task.process_results(dict(doc), [fenced])["accuracy_fixed"] == 1
    kept = _task(off, "acbench_function_call_simple")
    doc_off = next(iter(kept.test_docs()))
    assert doc_off[FIELD] is False
    assert kept.process_results(dict(doc_off), [decoy + gold])["accuracy"] == 0


def test_teval_reads_the_answer_after_the_thought(rendered_tasks):
    on, off = rendered_tasks
    task = _task(on, "acbench_teval_instruct")
    doc = next(d for d in task.test_docs() if d["response_format"] == "json")
    gold = data.doc_json(doc, "ground_truth")
    answer = json.dumps({"thought": gold["thought"], "name": gold["action"], "args": gold["args"]})
    thought = '<think>{"name": "other", "args": {}} 1. first</think>'
    assert task.process_results(dict(doc), [thought + answer])["score"]["value"] == 1
    assert task.process_results(dict(doc), ["<think>" + answer])["score"]["value"] == 0
    fenced = f"```json\n<think>{{\"name\": \"other\"}}</think>\n{answer}\n```"
    assert task.process_results(dict(doc), [fenced])["score"]["value"] == 1
    kept = _task(off, "acbench_teval_instruct")
    doc_off = next(d for d in kept.test_docs() if d["response_format"] == "json")
    assert kept.process_results(dict(doc_off), [thought + answer])["score"]["value"] < 1


def _scores(task, doc, text):
    out = task.process_results(dict(doc), [text])
    return {k: v["value"] if isinstance(v, dict) else v for k, v in out.items()}


@pytest.mark.parametrize("dimension", ["instruct", "review", "retrieve", "understand"])
def test_every_teval_parser_reads_the_answer_after_the_thought(rendered_tasks, dimension):
    from test_teval_task import _gold_output

    on, off = rendered_tasks
    task, kept = _task(on, f"acbench_teval_{dimension}"), _task(off, f"acbench_teval_{dimension}")
    # A thought that would change every parser's reading: another letter, another API, other args.
    decoy = '<think>Answer: E\nOther.api {"name": "Other.api", "args": {"zz": 1}} \'q\'</think>'
    leaked = 0
    for doc in task.test_docs():
        answer = _gold_output(dict(doc, ground_truth=data.doc_json(doc, "ground_truth")))
        alone = _scores(task, doc, answer)
        assert alone["score_fixed"] == 1, (doc["id"], alone)
        assert _scores(task, doc, decoy + "\n" + answer) == alone, doc["id"]
        assert _scores(task, doc, "<think>\n" + answer) == _scores(task, doc, ""), doc["id"]  # unclosed
        fenced = f"```\n{decoy}\n{answer}\n```"
        assert _scores(task, doc, fenced) == _scores(task, doc, f"```\n\n{answer}\n```"), doc["id"]
        doc_off = next(d for d in kept.test_docs() if d["id"] == doc["id"])
        leaked += _scores(kept, doc_off, decoy + "\n" + answer)["score_fixed"] < 1
    assert leaked  # with strip_thinking off the decoy is read, so the test can tell


def test_longgenbench_unclosed_and_fenced_thoughts():
    lg = longgenbench.load_mmlu(data_source="sample")["test"][0]
    gold = longgenbench.doc_to_target(lg)
    wrong = "\n\n".join(f"Answer_{i}:\nThe answer is (A)." for i in range(1, 4))
    assert longgenbench.process_results(lg, [f"<think>{gold}"]) == longgenbench.process_results(lg, [""])
    fenced = longgenbench.process_results(lg, [f"```\n<think>{wrong}</think>\n{gold}\n```"])
    assert fenced == longgenbench.process_results(lg, [f"```\n\n{gold}\n```"])
    assert fenced["acc_label_aligned"] == 1.0


def test_workflow_parsers_never_see_numbered_lines_of_a_thought():
    from lm_eval_acbench.metrics.workflow import parse_lenient, parse_reference

    gold = "Node:\n1: open the fridge\n2: take the milk\nEdge: (START,1) (1,2) (2,END)"
    thought = "<think>\nNode:\n1: go to the moon\n2: open the sky\n3: jump\n</think>\n"
    for text in (thought + gold, f"```\n{thought}{gold}\n```"):
        answer = thinking.answer({}, text)
        assert parse_reference(gold) is not None and parse_reference(answer) == parse_reference(gold)
        assert "go to the moon" not in str(parse_lenient(answer))
    assert "go to the moon" in str(parse_lenient(thinking.answer(KEEP, thought + gold)))
    assert parse_reference(thinking.answer({}, "<think>\n" + gold)) is None  # unclosed: no workflow


@pytest.mark.slow  # loads a sentence-embedding model
def test_workflow_numbered_lines_in_a_thought_are_not_nodes():
    docs = list(wf.load_worfbench(subset="alfworld", data_source="sample", embedding_model=MINILM)["test"])
    doc = docs[1]
    gold = wf.doc_to_target(doc)
    thought = "<think>\nNode:\n1. go to the moon\n2. open the sky\nEdge: (START,1) (1,2) (2,END)\n</think>\n"
    fenced = f"```\n<think>\nNode:\n1. go to the moon\n</think>\n{gold}\n```"
    results = wf.score_responses([[thought + gold], ["<think>\n" + gold], [fenced]], [doc, doc, doc])
    assert results[0]["node_f1"] == pytest.approx(1.0) and results[0]["graph_f1"] == pytest.approx(1.0)
    assert results[1]["parse_rate"] == 0.0 and results[1]["node_f1"] == 0.0
    assert results[2]["node_f1_fixed"] == pytest.approx(1.0)
    kept = wf.score_responses([[thought + gold]], [dict(doc, **KEEP)])
    assert kept[0]["node_f1"] < 1.0


def test_longbench_longgenbench_niah_read_the_answer():
    lb = longbench.load(longbench_dataset="trec", data_source="sample")["test"][0]
    gold = longbench.doc_to_target(lb)
    assert longbench.process_results(lb, [f"<think>Type: none\n</think>{gold}"])["score"] == 1.0
    assert longbench.process_results(lb, [f"<think>{gold}"])["score"] == 0.0
    # inside a fence the thought goes and the fence stays: scored as the fence without it
    fenced = longbench.process_results(lb, [f"Type: {gold}\n```\n<think>Type: none</think>{gold}\n```"])
    assert fenced == longbench.process_results(lb, [f"Type: {gold}\n```\n{gold}\n```"]) and fenced["score"] == 1.0

    lg = longgenbench.load_mmlu(data_source="sample")["test"][0]
    gold = longgenbench.doc_to_target(lg)
    wrong = "\n\n".join(f"Answer_{i}:\nThe answer is (A)." for i in range(1, 4))
    assert longgenbench.process_results(lg, [f"<think>{wrong}</think>{gold}"])["acc_label_aligned"] == 1.0
    assert longgenbench.process_results(dict(lg, **KEEP), [f"<think>{wrong}</think>{gold}"])["score"] < 1.0

    cell = {"context_length": 2000, "depth_percent": 33}
    needle_answer = "eat a sandwich and sit in Dolores Park on a sunny day"
    assert niah.process_results(cell, [f"<think>{needle_answer}"])["recall"] == 0.0
    assert niah.process_results(cell, [f"<think>hmm</think>{needle_answer}"])["recall"] == 1.0
    assert niah.process_results(dict(cell, **KEEP), [f"<think>{needle_answer}"])["recall"] == 1.0
    assert niah.process_results(cell, [f"```\n<think>{needle_answer}</think>\n```"])["recall"] == 0.0


class _Door:
    """One-step environment: the episode succeeds when the action is exactly ``open door``."""

    instructions = "Reply with one action."
    goal = "Open the door."

    def __init__(self, record):
        self.opened = False

    def reset(self):
        return "A closed door."

    def progress(self):
        return 1.0 if self.opened else 0.0

    def step(self, action):
        self.opened = action == "open door"
        return Step("It opens." if self.opened else "Nothing happens.", self.progress(), valid=self.opened)

    def close(self):
        pass


def test_episode_actions_come_after_the_thought():
    answers = ["<think>\n1. look around\n2. maybe jump\n</think>\nopen door"]
    out = run_episodes([{"id": 0}, {"id": 1, **KEEP}], lambda requests: answers * len(requests),
                       make_env=_Door, settings=LoopSettings(max_steps=1))
    assert out[0]["end_reason"] == "success"
    assert out[1]["end_reason"] != "success"
    unclosed = run_episodes([{"id": 0}], lambda requests: ["<think>open door"] * len(requests),
                            make_env=_Door, settings=LoopSettings(max_steps=1))
    assert unclosed[0]["end_reason"] != "success"
    fenced = run_episodes([{"id": 0}], lambda requests: ["```\n<think>jump</think>open door\n```"] * len(requests),
                          make_env=_Door, settings=LoopSettings(max_steps=1))
    assert fenced[0]["end_reason"] == "success"
