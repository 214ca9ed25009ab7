"""SmolLM2 plays acbench_realworld through the real `lm_eval --model hf` command line."""

from __future__ import annotations

import json

import pytest

from helpers import run_lm_eval

pytestmark = pytest.mark.slow
ENVS = ("pddl", "babyai", "scienceworld", "tool_query", "tool_operation")


def transcripts(out, task):
    return [json.loads(sample["resps"][0][0]) for sample in out["samples"][task]]


def test_smollm2_group_with_chat_template(tmp_path, smollm2_dir):
    out = run_lm_eval(["--tasks", "acbench_realworld", "--model", "hf",
                       "--model_args", f"pretrained={smollm2_dir},dtype=float32", "--device", "cpu",
                       "--batch_size", "8", "--limit", "1", "--apply_chat_template",
                       "--gen_kwargs", "max_gen_toks=16",
                       "--metadata", json.dumps({"max_steps": 2, "max_invalid": 3})], tmp_path, timeout=1800)
    results = out["results"]["results"]
    assert 0.0 <= results["acbench_realworld"]["progress_rate,none"] <= 1.0
    for env in ENVS:
        task = f"acbench_realworld_{env}"
        assert 0.0 <= results[task]["success_rate,none"] <= 1.0
        for transcript in transcripts(out, task):
            steps = transcript["trajectory"]
            assert 1 <= len(steps) <= 2
            assert all("<|im_start|>assistant" in s["prompt"] for s in steps)  # SmolLM2's template
            assert all(isinstance(s["output"], str) and "observation" in s for s in steps)


def test_smollm2_without_chat_template(tmp_path, smollm2_dir):
    out = run_lm_eval(["--tasks", "acbench_realworld_tool_query", "--model", "hf",
                       "--model_args", f"pretrained={smollm2_dir},dtype=float32", "--device", "cpu",
                       "--limit", "1", "--gen_kwargs", "max_gen_toks=16",
                       "--metadata", json.dumps({"max_steps": 2, "memory": 1})], tmp_path, timeout=1800)
    (transcript,) = transcripts(out, "acbench_realworld_tool_query")
    assert all(s["prompt"].endswith("\nAction:") for s in transcript["trajectory"])
    assert transcript["settings"]["memory"] == 1
