"""Both groups through the real lm_eval command line on SmolLM2-135M-Instruct (slow)."""

from __future__ import annotations

import json

import pytest
from helpers import run_lm_eval

from lm_eval_acbench.tasks.function_call import CATEGORIES
from lm_eval_acbench.tasks.teval import DIMENSIONS


@pytest.mark.slow
def test_teval_and_function_call_groups_run_on_smollm2(smollm2_dir, tmp_path):
    out = run_lm_eval(
        [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={smollm2_dir},dtype=float32",
            "--tasks",
            "acbench_teval,acbench_function_call",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=24",
            "--apply_chat_template",
            "--metadata",
            json.dumps(
                {"data_source": "sample", "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}
            ),
        ],
        cwd=tmp_path,
        timeout=2400,  # generous: shared CI machines can be slow
    )
    results = out["results"]["results"]

    # T-Eval: six dimensions, each score in [0, 1]; the group's score is their plain mean.
    scores = [results[f"acbench_teval_{d}"]["score,none"] for d in DIMENSIONS]
    assert all(0 <= s <= 1 for s in scores)
    assert results["acbench_teval"]["score,none"] == pytest.approx(sum(scores) / 6)
    fixed = [results[f"acbench_teval_{d}"]["score_fixed,none"] for d in DIMENSIONS]
    assert results["acbench_teval"]["score_fixed,none"] == pytest.approx(sum(fixed) / 6)
    lenient = [results[f"acbench_teval_{d}"]["score_lenient,none"] for d in DIMENSIONS]
    assert results["acbench_teval"]["score_lenient,none"] == pytest.approx(sum(lenient) / 6)
    for dimension in DIMENSIONS:
        samples = out["samples"][f"acbench_teval_{dimension}"]
        assert len(samples) == 2
        for sample in samples:
            prompt = (
                sample["arguments"]["gen_args_0"]["arg_0"]
                if isinstance(sample["arguments"], dict)
                else sample["arguments"][0][0]
            )
            # Rendered once by SmolLM2's template, even with --apply_chat_template.
            assert prompt.startswith("<|im_start|>system\n") and prompt.count("<|im_start|>system") == 1
            assert prompt.endswith("<|im_start|>assistant\n")
            assert sample["doc"]["acbench_render"]["mode"] == "template"
            assert {"score", "score_fixed", "score_lenient"} <= set(sample["doc"]["acbench_verdict"])
            assert sample["doc"]["acbench_data_source"] == "sample:teval"
        if dimension in ("plan", "reason", "retrieve", "understand"):
            assert {s["doc"]["response_format"] for s in samples} == {"json", "str"}

    # Function calling: every category; SmolLM2's template ignores tools -> system message.
    for category in CATEGORIES:
        task = results[f"acbench_function_call_{category}"]
        assert 0 <= task["accuracy,none"] <= 1 and 0 <= task["parse_rate,none"] <= 1
        assert task["tools_in_template,none"] == 0
        for sample in out["samples"][f"acbench_function_call_{category}"]:
            verdict = sample["doc"]["acbench_verdict"]
            assert verdict["valid"] == bool(sample["accuracy"])
            assert verdict["valid"] or verdict["reason"]
            assert sample["doc"]["acbench_render"]["mode"] == "template+system_tools"
    group = results["acbench_function_call"]
    assert set(group) >= {"accuracy,none", "accuracy_fixed,none", "parse_rate,none", "tools_in_template,none"}
