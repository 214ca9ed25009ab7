"""SmolLM2 through the real ``lm_eval`` command line on acbench_workflow (slow).

One CLI call: the seven-subset group with the chat template, one item per subset, from our
sample set. Checks that every subtask and the group report every metric, and that the samples
log carries each item's node F1, equal to a fresh scoring of the logged response.
"""

from __future__ import annotations

import pytest
from helpers import run_lm_eval

from lm_eval_acbench import embeddings
from lm_eval_acbench.metrics.workflow import score_batch
from lm_eval_acbench.tasks import workflow as T

pytestmark = pytest.mark.slow


def run_group_and_check_samples(model_dir, tmp_path):
    out = run_lm_eval(
        [
            "--tasks", "acbench_workflow",
            "--model", "hf",
            "--model_args", f"pretrained={model_dir}",
            "--apply_chat_template",
            "--limit", "1",
            "--gen_kwargs", "max_gen_toks=40",
            "--metadata", '{"data_source": "sample", "embedding_model": "all-MiniLM-L6-v2"}',
        ],
        cwd=tmp_path,
        timeout=1800,  # a loaded shared CPU; unloaded the run takes a minute or two
    )
    results = out["results"]["results"]
    group = results["acbench_workflow"]
    for metric in T.METRICS:
        assert 0.0 <= group[f"{metric},none"] <= 1.0
    encode, resolved = T.cached_encoder("all-MiniLM-L6-v2")
    assert resolved == embeddings.STAND_IN_MODEL
    for subset in T.GROUP_SUBSETS:
        task = f"acbench_workflow_{subset}"
        assert task in results and task in out["samples"]
        (sample,) = out["samples"][task]
        assert sample["doc"][T.data.SOURCE_FIELD] == "sample:worfbench"
        prompt = sample["arguments"]["gen_args_0"]["arg_0"]
        assert "<|im_start|>assistant" in prompt and "Now it's your turn.\n" in prompt
        response = sample["resps"][0][0]
        (fresh,) = score_batch([response], [sample["target"]], encode)
        assert isinstance(sample["node_f1"], float)
        assert sample["node_f1"] == pytest.approx(fresh["node_f1"], abs=1e-6)
        assert sample["node_f1_fixed"] == pytest.approx(fresh["node_f1_fixed"], abs=1e-6)
        assert sample["parse_rate"] == fresh["parse_rate"]
        assert results[task]["node_f1,none"] == pytest.approx(sample["node_f1"], abs=1e-6)
    return out


def test_smollm2_workflow_group_samples_log(smollm2_dir, tmp_path):
    out = run_group_and_check_samples(smollm2_dir, tmp_path)
    responses = [s["resps"][0][0] for samples in out["samples"].values() for s in samples]
    assert any("Node" in r or "1" in r for r in responses)  # a real model answers in kind


def test_tiny_model_workflow_group_samples_log(tiny_model_dir, tmp_path):
    """The same run with the tiny random model: the logging path, whatever the output."""
    run_group_and_check_samples(tiny_model_dir, tmp_path)
