"""One real, offline ``lm_eval`` run of the three long-context tasks on SmolLM2 (slow).

NIAH (a 2 x 2 grid), LongGenBench GSM8K and a LongBench data set, all from our sample sets,
in a single lm_eval call; then the NIAH heatmap is drawn from the samples log it wrote.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_lm_eval

from lm_eval_acbench.metrics import longcontext_longbench as lb
from lm_eval_acbench.metrics import longgenbench as lg
from lm_eval_acbench.metrics import needle

pytestmark = pytest.mark.slow

TASKS = [
    "acbench_niah",
    "acbench_longgenbench_gsm8k",
    "acbench_longbench_passage_retrieval_en",
]


@pytest.fixture(scope="module")
def run(smollm2_dir, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("longcontext-run")
    metadata = {
        "niah_context_lengths": [384, 768],
        "niah_depth_percents": [0, 100],
        "longgenbench_gsm8k_k": 12,
        "longbench_max_length": 120,
        "data_source": "sample",
    }
    out = run_lm_eval(
        [
            "--model", "hf",
            "--model_args", f"pretrained={smollm2_dir},dtype=float32",
            "--tasks", ",".join(TASKS),
            "--metadata", json.dumps(metadata),
            "--gen_kwargs", "max_gen_toks=32",
            "--limit", "4",
            "--batch_size", "1",
        ],
        cwd,
    )
    out["cwd"] = cwd
    return out


def test_all_tasks_report_scores(run):
    results = run["results"]["results"]
    for name in TASKS:
        assert 0.0 <= results[name]["score,none"] <= 1.0, name
    assert "recall_len_384,none" in results["acbench_niah"]
    assert "recall_depth_100,none" in results["acbench_niah"]
    assert "acc_label_aligned,none" in results["acbench_longgenbench_gsm8k"]


def test_niah_cells_scores_and_heatmap(run):
    from analysis.niah_heatmap import niah_heatmap

    samples = run["samples"]["acbench_niah"]
    assert sorted((s["doc"]["context_length"], s["doc"]["depth_percent"]) for s in samples) == [
        (384, 0), (384, 100), (768, 0), (768, 100)
    ]
    for sample in samples:
        assert sample["doc"]["acbench_data_source"] == "sample:niah"
        assert sample["recall"] == pytest.approx(needle.word_set_recall(sample["filtered_resps"][0]))
    log = next(run["cwd"].rglob("samples_acbench_niah_*.jsonl"))
    png = run["cwd"] / "niah.png"
    grid = niah_heatmap(log, png)
    assert grid["lengths"] == [384, 768] and grid["depths"] == [0, 100]
    assert grid["overall"] == pytest.approx(run["results"]["results"]["acbench_niah"]["recall,none"])
    assert png.stat().st_size > 1000


def test_longgenbench_scores_match_the_aligner(run):
    (sample,) = run["samples"]["acbench_longgenbench_gsm8k"]
    golds = json.loads(sample["doc"]["golds"])
    assert len(golds) == 12
    assert sample["acc_label_aligned"] == lg.align(sample["filtered_resps"][0], golds, "number").accuracy
    assert sample["score"] == lg.reference_zip_accuracy(sample["filtered_resps"][0], golds, "number")
    prompt = sample["arguments"]["gen_args_0"]["arg_0"]
    assert "Question_12:" in prompt and "Answer_i:" in prompt  # system instruction + questions


def test_longbench_prompts_reach_the_model_cut_in_the_middle(run, smollm2_dir):
    from lm_eval_acbench.tasks.niah import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_dir))
    for sample in run["samples"]["acbench_longbench_passage_retrieval_en"]:
        doc = sample["doc"]
        prompt = sample["arguments"]["gen_args_0"]["arg_0"]
        assert doc["truncated"] and doc["prompt_tokens"] > 120
        assert len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 122
        assert prompt.startswith("Here are 30 paragraphs from Wikipedia")  # lm-eval's template start
        assert prompt.endswith("The answer is:")  # ... and its end, with the abstract before it
        assert doc["prompt"] == prompt
        answers = json.loads(doc["answers"])
        assert sample["score"] == lb.best_over_golds(
            "passage_retrieval_en", "retrieval", sample["filtered_resps"][0], answers
        )
