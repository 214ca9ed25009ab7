"""A miniature study end to end on the tiny model: compress, evaluate with logits, analyse, report."""

from __future__ import annotations

import json

import pytest
from test_study import write_toy_tasks

from lm_eval_acbench.study.config import load_study
from lm_eval_acbench.study.runner import run_study


@pytest.mark.slow  # two compressions and six lm-eval runs of the tiny model
def test_miniature_study_compresses_evaluates_analyses_and_reports(tiny_model_dir, tmp_path):
    tasks = write_toy_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    study = load_study({
        "name": "mini",
        "models": [{"name": "tiny", "path": str(tiny_model_dir)}],
        "recipes": ["rtn_w4a16", "magnitude_50"],
        "tasks": ["toy_gen", "toy_ll"],
        "include_path": [str(tasks)],
        "limit": 2,
        "out": str(out),
        "backend": {"device": "cpu"},
        "logits": {"enabled": True},
    })
    summary = run_study(study, progress=False)
    failed = {c: r.get("error") for c, r in summary.results.items() if r["status"] != "done"}
    assert not failed
    assert summary.plan.counts() == {"compress": 2, "evaluate": 6, "analyze": 1, "report": 1}

    # compressed checkpoints with their manifest, evaluated from those folders
    for recipe in ("rtn_w4a16", "magnitude_50"):
        ckpt = out / "checkpoints/tiny" / recipe
        assert (ckpt / "acbench_manifest.json").is_file()
        results = json.loads(next((out / "evals/tiny" / recipe / "toy_ll").glob("results_*.json")).read_text())
        assert results["config"]["model"] == "acbench-hf"
        assert str(ckpt) in str(results["config"]["model_args"])
        assert (out / "logits/tiny" / recipe / "toy_ll" / "meta.json").is_file()

    analysis = json.loads((out / "analysis/tiny/summary.json").read_text())
    assert set(analysis["pairs"]) == {"rtn_w4a16", "magnitude_50"}
    logs = json.loads((out / "analysis/tiny/acbench_logs.json").read_text())
    assert logs["base"]["tasks"] == ["toy_gen", "toy_ll"] and logs["base"]["records"] > 0

    report = out / "reports/tiny/report.md"
    assert summary.reports == [report]
    text = report.read_text()
    for label in ("base", "rtn_w4a16", "magnitude_50"):
        assert label in text
    assert (out / "reports/tiny/timings.md").is_file()
    timings = {row["stage"]: row for row in summary.timings}
    assert timings["compress"]["ran"] == 2 and timings["evaluate"]["ran"] == 6
    assert timings["total"]["wall_s"] >= timings["evaluate"]["wall_s"] > 0

    # all finished: a second run recomputes nothing
    again = run_study(study, progress=False)
    assert {r["status"] for r in again.results.values()} == {"cached"}
