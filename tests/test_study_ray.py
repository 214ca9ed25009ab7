"""The Ray executor on a local Ray instance (2 CPUs): a two-cell study of the tiny model."""

from __future__ import annotations

import json

import pytest
from test_study import calls, write_toy_tasks

from lm_eval_acbench.study.config import load_study
from lm_eval_acbench.study.runner import run_study

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture
def local_ray():
    """A local Ray instance with 2 CPUs, shared by both runs of the test (starting one is slow)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # starting Ray and its workers (each imports torch and lm-eval) takes a minute here
def test_a_two_cell_study_runs_as_ray_tasks_and_resumes(tiny_model_dir, tmp_path, local_ray):
    tasks = write_toy_tasks(tmp_path / "tasks")
    (tasks / "FAIL_toy_gen").touch()
    study = load_study({
        "models": [{"name": "tiny", "path": str(tiny_model_dir)}],
        "tasks": ["toy_gen", "toy_ll"], "include_path": [str(tasks)], "limit": 2,
        "out": str(tmp_path / "out"), "backend": {"device": "cpu"}, "report": {"enabled": False},
        "executor": {"type": "ray", "num_cpus": 2},
    })
    summary = run_study(study, progress=False)
    assert {c: r["status"] for c, r in summary.results.items()} == {
        "eval/tiny/base/toy_gen": "failed", "eval/tiny/base/toy_ll": "done"}
    assert "fails on purpose" in summary.results["eval/tiny/base/toy_gen"]["error"]
    assert ray.is_initialized()  # the executor leaves an instance it did not start running
    results = list((tmp_path / "out/evals/tiny/base/toy_ll").glob("results_*.json"))
    assert json.loads(results[0].read_text())["results"]["toy_ll"]["acc,none"] in (0.0, 0.5, 1.0)
    marker = tmp_path / "out/cells/eval/tiny/base/toy_ll/done.json"
    stamp = marker.stat().st_mtime_ns

    (tasks / "FAIL_toy_gen").unlink()
    again = run_study(study, progress=False)
    assert {c: r["status"] for c, r in again.results.items()} == {
        "eval/tiny/base/toy_gen": "done", "eval/tiny/base/toy_ll": "cached"}
    assert marker.stat().st_mtime_ns == stamp
    assert calls(tasks) == {"toy_gen": 3, "toy_ll": 2}
