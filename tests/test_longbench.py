"""LongBench: scorers, middle truncation, reuse of lm-eval's task definitions (fast tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lm_eval_acbench import data
from lm_eval_acbench.metrics import longcontext_longbench as lb
from lm_eval_acbench.tasks import longbench as task

YAML_DIR = Path(__file__).resolve().parent.parent / "task_yamls" / "longcontext" / "longbench"


# ----------------------------------------------------------------------------- middle truncation

def test_middle_truncation_keeps_both_ends():
    assert lb.middle_truncate(list(range(10)), 4) == [0, 1, 8, 9]
    assert lb.middle_truncate(list(range(10)), 5) == [0, 1, 7, 8, 9]
    assert lb.middle_truncate(list(range(3)), 5) == [0, 1, 2]
    assert lb.middle_truncate(list(range(3)), 0) == []


@given(st.lists(st.integers(), max_size=200), st.integers(min_value=1, max_value=250))
def test_property_middle_truncation(tokens, budget):
    kept = lb.middle_truncate(tokens, budget)
    assert len(kept) == min(len(tokens), budget)
    head = budget // 2
    if len(tokens) > budget:
        assert kept[:head] == tokens[:head]
        assert kept[head:] == tokens[len(tokens) - (budget - head):]
    else:
        assert kept == tokens


def test_prompts_are_cut_in_the_middle_by_the_model_tokenizer(smollm2_dir):
    from lm_eval_acbench.tasks.niah import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_dir))
    context = "Paragraph 1: " + "filler words here. " * 300
    row = {"input": "Which paragraph?", "context": context, "answers": ["Paragraph 1"]}
    full = task.render_prompt("passage_retrieval_en", row)
    (record,) = task.build_records("passage_retrieval_en", [row], tokenizer, budget=100)
    assert record["truncated"] and record["prompt_tokens"] > 100 and record["prompt_tokens_kept"] == 100
    kept = record["prompt"]
    assert len(tokenizer(kept, add_special_tokens=False)["input_ids"]) <= 102
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert kept.startswith(tokenizer.decode(ids[:40]))  # the instruction at the start survives
    assert kept.endswith(tokenizer.decode(ids[-40:]))  # and so does the question at the end
    (short,) = task.build_records("passage_retrieval_en", [row], tokenizer, budget=10_000)
    assert not short["truncated"] and short["prompt"] == full


def test_truncation_budget_from_window_or_setting(smollm2_dir):
    assert task.truncation_budget({"max_length": 4096}, None, 64) == 4096 - 64 - 64
    assert task.truncation_budget({"max_length": 4096, "longbench_max_length": 3500}, None, 64) == 3500
    assert task.truncation_budget({"pretrained": str(smollm2_dir)}, None, 512) == 8192 - 512 - 64


# ----------------------------------------------------------------------------- scorers

def test_qa_f1():
    assert lb.qa_f1("The Stone Mill.", "the stone mill") == 1.0
    # pred tokens [stone, mill, library], gold [stone, mill]: P=2/3, R=1
    assert lb.qa_f1("stone mill library", "Stone Mill") == pytest.approx(0.8)
    assert lb.qa_f1("nothing", "Prague") == 0.0


def test_best_over_golds_and_first_line():
    golds = ["the Bright Anna", "x"]
    assert lb.best_over_golds("triviaqa", "qa_f1", "\nBright Anna\nextra words", golds) == 1.0
    # without the first-line rule, the second line counts
    assert lb.best_over_golds("hotpotqa", "qa_f1", "Prague\nBrno", ["Prague"]) == pytest.approx(2 / 3)
    assert lb.best_over_golds("hotpotqa", "qa_f1", "", ["Prague"]) == 0.0


def test_rouge_l():
    assert lb.rouge_l("a b c d", "a b c d") == 1.0
    # LCS("a x c y", "a b c d") = 2 -> P = R = 0.5
    assert lb.rouge_l("a x c y", "a b c d") == pytest.approx(0.5)
    assert lb.rouge_l("", "a b") == 0.0


def test_classification():
    classes = ["City", "Country", "Number of something", "Other location"]
    assert lb.classification("City", "City", all_classes=classes) == 1.0
    assert lb.classification("City or Country", "City", all_classes=classes) == 0.5
    assert lb.classification("Country", "City", all_classes=classes) == 0.0
    # a class that is a proper substring of the gold is not counted against it
    assert lb.classification("Other location", "Other location", all_classes=classes + ["location"]) == 1.0


def test_retrieval_and_count():
    assert lb.retrieval("Paragraph 2", "Paragraph 2") == 1.0
    assert lb.retrieval("Paragraph 2 or 3", "Paragraph 2") == 0.5
    assert lb.retrieval("no idea", "Paragraph 2") == 0.0
    assert lb.retrieval_zh("段落3", "段落3") == 1.0
    assert lb.count("There are 3 unique paragraphs", "3") == 1.0
    assert lb.count("3 or 4", "3") == 0.5


def test_code_sim():
    assert lb.code_sim("        total += 1\n", "        total += 1") == 1.0
    # comment lines and fences are skipped, the first code line is compared
    assert lb.code_sim("```python\n# next\n        total += 1", "        total += 1") == 1.0
    assert lb.code_sim("", "x = 1") == 0.0
    assert 0 < lb.code_sim("total += 2", "total += 1") < 1


def test_chinese_scorers():
    assert lb.qa_f1_zh("镇图书馆。", "镇图书馆") == 1.0
    assert lb.rouge_l_zh("会议决定周六开放", "会议决定周六开放") == 1.0
    assert lb.qa_f1_zh("完全无关", "镇图书馆") == 0.0


@given(st.text(max_size=200), st.text(max_size=200))
def test_property_scorers_in_unit_interval(prediction, gold):
    for name, scorer in lb.SCORERS.items():
        value = scorer(prediction, gold, all_classes=["A", "B"])
        assert 0.0 <= value <= 1.0, name


# ----------------------------------------------------------------------------- task definitions

def test_twenty_one_tasks_and_lm_eval_reuse():
    assert len(task.DATASETS) == 21
    yamls = sorted(p.name for p in YAML_DIR.glob("longbench_*.yaml"))
    assert len(yamls) == 21
    for name, (_, max_gen) in task.DATASETS.items():
        upstream = task.lm_eval_config(name)
        assert upstream["generation_kwargs"]["max_gen_toks"] == max_gen, name
        text = (YAML_DIR / f"longbench_{name.replace('-', '_')}.yaml").read_text()
        assert f"task: {task.task_name(name)}" in text and f"max_gen_toks: {max_gen}" in text


def test_sample_set_covers_all_data_sets_and_renders():
    for name in task.DATASETS:
        rows = task._read_folder(data.sample_dir("longbench"), name)
        assert rows, name
        records = task.build_records(name, rows)
        assert records and all(r["prompt"] for r in records)
        # the prompt is lm-eval's template filled with the row (question from `input`)
        if rows[0]["input"]:
            assert rows[0]["input"] in records[0]["prompt"], name
        assert rows[0]["context"][:30] in records[0]["prompt"], name


def test_hooks_score_gold_answers_fully():
    ds = task.load(longbench_dataset="trec", data_source="sample", max_length=4096)["test"]
    assert set(ds["acbench_data_source"]) == {"sample:longbench"}
    doc = ds[0]
    out = task.process_results(doc, [task.doc_to_target(doc)])
    assert out == {"score": 1.0, "classification_score": 1.0}
