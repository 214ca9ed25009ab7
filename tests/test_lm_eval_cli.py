"""The real `lm_eval` command line on acbench tasks, from an unrelated directory, on the tiny model."""

from __future__ import annotations

from helpers import run_lm_eval

TASKS = ["acbench_workflow_os", "acbench_function_call_simple"]


def test_lm_eval_cli_runs_acbench_tasks_anywhere(tiny_model_dir, tmp_path):
    run = run_lm_eval(
        [
            "--model", "hf",
            "--model_args", f"pretrained={tiny_model_dir}",
            "--tasks", ",".join(TASKS),
            "--limit", "1",
            "--gen_kwargs", "max_gen_toks=8",
        ],
        cwd=tmp_path,
    )
    results = run["results"]["results"]
    for task in TASKS:
        assert task in results, sorted(results)
        scores = {key: value for key, value in results[task].items() if key.endswith(",none")}
        assert scores, f"{task} reported no metric under the shared filter name 'none'"
        assert all(isinstance(v, (int, float)) for k, v in scores.items() if not k.endswith("_stderr,none"))
        (sample,) = run["samples"][task]
        provenance = run["results"]["acbench_data"][task]
        assert sample["doc"]["acbench_data_source"] == provenance["source"]
        assert provenance["rows"] >= 1 and provenance["kind"] in ("sample", "package")
        assert run["results"]["configs"][task]["metadata"]["acbench_data_source"] == provenance["source"]
        if provenance["is_sample"]:  # offline without data, runs must say they used a sample
            assert str(run["results"]["versions"][task]).endswith("+sample")
        assert sample["resps"] and isinstance(sample["resps"][0][0], str)
