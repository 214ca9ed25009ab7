"""Resumable studies on the tiny model with real lm-eval: failed cells, killed cells, reruns.

The toy tasks (see test_study.write_toy_tasks) count every scored document in calls.log and
raise while FAIL_<task> exists, so these tests see exactly which cells ran again.
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_study import calls, write_toy_tasks

from lm_eval_acbench.owned_dirs import make_owned_dir
from lm_eval_acbench.study.config import load_study
from lm_eval_acbench.study.runner import run_study


def toy_study(tasks_dir, model_dir, out, **extra):
    return load_study({
        "name": "toy",
        "models": [{"name": "tiny", "path": str(model_dir)}],
        "tasks": ["toy_gen", "toy_ll"],
        "include_path": [str(tasks_dir)],
        "limit": 2,
        "out": str(out),
        "backend": {"device": "cpu"},
        **extra,
    })


def statuses(summary) -> dict[str, str]:
    return {cid: r["status"] for cid, r in summary.results.items()}


def mtime(path) -> int:
    return path.stat().st_mtime_ns


def test_a_failing_cell_is_recorded_the_others_go_on_and_a_rerun_does_only_what_is_missing(
        tiny_model_dir, tmp_path):
    tasks = write_toy_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    study = toy_study(tasks, tiny_model_dir, out)
    (tasks / "FAIL_toy_gen").touch()

    first = run_study(study, progress=False)
    assert statuses(first) == {
        "eval/tiny/base/toy_gen": "failed",
        "eval/tiny/base/toy_ll": "done",
        "report/tiny": "partial",
    }
    assert not first.ok
    error = json.loads((out / "cells/eval/tiny/base/toy_gen/error.json").read_text())
    assert "RuntimeError: toy_gen fails on purpose" in error["error"] and "Traceback" in error["traceback"]
    state = json.loads((out / "state.json").read_text())
    assert state["cells"]["eval/tiny/base/toy_gen"]["status"] == "failed"
    assert "fails on purpose" in state["cells"]["eval/tiny/base/toy_gen"]["error"]
    assert not (out / "cells/eval/tiny/base/toy_gen/done.json").exists()
    # the finished cell left lm-eval's usual files, and its done marker
    ll_dir = out / "evals/tiny/base/toy_ll"
    results = list(ll_dir.glob("results_*.json"))
    assert len(results) == 1 and list(ll_dir.glob("samples_toy_ll_*.jsonl"))
    assert json.loads(results[0].read_text())["results"]["toy_ll"]["acc,none"] in (0.0, 0.5, 1.0)
    ll_marker = out / "cells/eval/tiny/base/toy_ll/done.json"
    stamps = {ll_marker: mtime(ll_marker), results[0]: mtime(results[0])}
    assert calls(tasks) == {"toy_gen": 1, "toy_ll": 2}  # toy_gen raised on its first document

    (tasks / "FAIL_toy_gen").unlink()
    second = run_study(study, progress=False)
    assert statuses(second) == {
        "eval/tiny/base/toy_gen": "done",
        "eval/tiny/base/toy_ll": "cached",
        "report/tiny": "done",
    }
    assert second.ok
    assert calls(tasks) == {"toy_gen": 3, "toy_ll": 2}  # toy_ll was not evaluated again
    assert all(mtime(p) == t for p, t in stamps.items())
    assert not (out / "cells/eval/tiny/base/toy_gen/error.json").exists()
    state = json.loads((out / "state.json").read_text())
    assert state["cells"]["eval/tiny/base/toy_gen"] == {
        **state["cells"]["eval/tiny/base/toy_gen"], "status": "done", "attempts": 2}
    assert "error" not in state["cells"]["eval/tiny/base/toy_gen"]
    report = second.reports[0]
    assert report == out / "reports/tiny/report.md" and report.is_file()
    text = report.read_text()
    assert "toy_gen" in text and "toy_ll" in text
    timings = (out / "timings.md").read_text()
    assert "| evaluate | 2 | 1 | 1 | 0 |" in timings
    assert (out / "reports/tiny/timings.md").read_text() == timings

    third = run_study(study, progress=False)
    assert set(statuses(third).values()) == {"cached"}
    assert calls(tasks) == {"toy_gen": 3, "toy_ll": 2}


def test_a_cell_killed_before_its_marker_is_redone_and_changed_settings_rerun_their_cells(
        tiny_model_dir, tmp_path):
    tasks = write_toy_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    study = toy_study(tasks, tiny_model_dir, out, report={"enabled": False})
    assert set(statuses(run_study(study, progress=False)).values()) == {"done"}
    assert calls(tasks) == {"toy_gen": 2, "toy_ll": 2}

    # A kill after toy_ll's outputs were published but before its marker, with a half-written
    # staging folder of another attempt lying around (made as the stages make it: marked first).
    gen_marker = out / "cells/eval/tiny/base/toy_gen/done.json"
    gen_stamp = mtime(gen_marker)
    (out / "cells/eval/tiny/base/toy_ll/done.json").unlink()
    junk = make_owned_dir(out / ".staging/eval/tiny/base/toy_ll", root=out)
    (junk / "results_half.json").write_text("{")
    again = run_study(study, progress=False)
    assert statuses(again) == {"eval/tiny/base/toy_gen": "cached", "eval/tiny/base/toy_ll": "done"}
    assert calls(tasks) == {"toy_gen": 2, "toy_ll": 4}
    assert mtime(gen_marker) == gen_stamp
    assert not junk.exists()
    assert len(list((out / "evals/tiny/base/toy_ll").glob("results_*.json"))) == 1

    # A changed setting that evaluation depends on makes those cells stale.
    fewer = toy_study(tasks, tiny_model_dir, out, report={"enabled": False}, limit=1)
    assert set(statuses(run_study(fewer, progress=False)).values()) == {"done"}
    assert calls(tasks) == {"toy_gen": 3, "toy_ll": 5}


@pytest.mark.slow
def test_killing_the_command_halfway_loses_no_finished_cell(tiny_model_dir, tmp_path):
    """`acbench run` killed with SIGKILL after its first cell; the rerun skips that cell."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tasks = write_toy_tasks(tmp_path / "tasks")
    study_file = tmp_path / "study.yaml"
    study_file.write_text(json.dumps({
        "models": [{"name": "tiny", "path": str(tiny_model_dir)}], "tasks": ["toy_gen", "toy_ll"],
        "include_path": [str(tasks)], "limit": 2, "out": "out", "backend": {"device": "cpu"},
        "report": {"enabled": False},
    }))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lm_eval_acbench.cli", "run", str(study_file), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first_marker = out / "cells/eval/tiny/base/toy_gen/done.json"
    deadline = time.time() + 240
    while not first_marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first_marker.exists(), "the first cell never finished"
    stamp = mtime(first_marker)
    assert not (out / "cells/eval/tiny/base/toy_ll/done.json").exists()
    gen_calls = calls(tasks)["toy_gen"]

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert mtime(first_marker) == stamp
    assert calls(tasks)["toy_gen"] == gen_calls == 2
    assert calls(tasks)["toy_ll"] >= 2  # its first attempt may have scored docs before the kill
    assert (out / "cells/eval/tiny/base/toy_ll/done.json").exists()
    shutil.rmtree(out)


def test_a_recipe_cell_logs_against_the_base_only_when_the_base_cell_finished(tmp_path):
    from lm_eval_acbench.study.plan import make_plan
    from lm_eval_acbench.study.stages import StageContext, lm_eval_model

    tasks = write_toy_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    study = toy_study(tasks, tmp_path / "model", out, recipes=["rtn_w4a16"], logits={"enabled": True})
    plan = make_plan(study)
    ctx = StageContext(study, plan.layout, tuple(plan.tasks))
    cell = plan.by_id()["eval/tiny/rtn_w4a16/toy_ll"]
    base_log = plan.layout.logits_dir("tiny", "base", "toy_ll")
    assert "logits_reference" not in lm_eval_model(ctx, cell)[1]  # nothing logged yet
    base_log.mkdir(parents=True)
    (base_log / "meta.json").write_text("{}")
    assert "logits_reference" not in lm_eval_model(ctx, cell)[1]  # a log of a base cell that did not finish
    plan.layout.done_marker(cell.reference).parent.mkdir(parents=True)
    plan.layout.done_marker(cell.reference).write_text("{}")
    name, args = lm_eval_model(ctx, cell)
    assert name == "acbench-hf" and args["logits_reference"] == str(base_log)
    assert args["logits_dir"] == str(plan.layout.logits_dir("tiny", "rtn_w4a16", "toy_ll"))


def test_a_failed_base_cell_does_not_block_the_recipe_cell_but_leaves_it_partial(tmp_path):
    from lm_eval_acbench.study.plan import make_plan
    from lm_eval_acbench.study.runner import execute_cell
    from lm_eval_acbench.study.stages import StageContext

    tasks = write_toy_tasks(tmp_path / "tasks")
    study = toy_study(tasks, tmp_path / "model", tmp_path / "out", recipes=["rtn_w4a16"], logits={"enabled": True})
    plan = make_plan(study)
    ctx = StageContext(study, plan.layout, tuple(plan.tasks))
    cell = plan.by_id()["eval/tiny/rtn_w4a16/toy_ll"]
    ran = []
    stages = {"evaluate": lambda c, cl: ran.append(cl.id) or {"ok": True}}
    partial = execute_cell(ctx, cell, {"compress/tiny/rtn_w4a16": "done", cell.reference: "failed"}, stages)
    assert partial["status"] == "partial" and cell.reference in partial["error"] and ran == [cell.id]
    assert not plan.layout.done_marker(cell.id).exists()  # so the next run tries it again
    blocked = execute_cell(ctx, cell, {"compress/tiny/rtn_w4a16": "failed", cell.reference: "done"}, stages)
    assert blocked["status"] == "blocked" and "compress/tiny/rtn_w4a16" in blocked["error"] and ran == [cell.id]


@pytest.mark.slow  # one compression and five lm-eval runs of the tiny model
def test_a_rerun_of_the_base_cell_reruns_the_recipe_cell_against_the_new_log(tiny_model_dir, tmp_path):
    tasks = write_toy_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    study = toy_study(tasks, tiny_model_dir, out, recipes=["rtn_w4a16"], logits={"enabled": True},
                      report={"enabled": False})
    (tasks / "FAIL_toy_gen").touch()
    first = run_study(study, progress=False)
    assert statuses(first) == {
        "compress/tiny/rtn_w4a16": "done",
        "eval/tiny/base/toy_gen": "failed",
        "eval/tiny/base/toy_ll": "done",
        "eval/tiny/rtn_w4a16/toy_gen": "failed",  # the toy task fails on purpose for every model
        "eval/tiny/rtn_w4a16/toy_ll": "done",
        "analyze/tiny": "partial",
    }
    meta = json.loads((out / "logits/tiny/rtn_w4a16/toy_ll/meta.json").read_text())
    assert meta["reference"] == str(out / "logits/tiny/base/toy_ll")

    (tasks / "FAIL_toy_gen").unlink()
    (out / "cells/eval/tiny/base/toy_ll/done.json").unlink()  # as if killed before its marker
    second = run_study(study, progress=False)
    assert statuses(second) == {
        "compress/tiny/rtn_w4a16": "cached",
        "eval/tiny/base/toy_gen": "done",
        "eval/tiny/base/toy_ll": "done",
        "eval/tiny/rtn_w4a16/toy_gen": "done",
        "eval/tiny/rtn_w4a16/toy_ll": "done",  # its reference was rewritten: logged again
        "analyze/tiny": "done",
    }
    assert json.loads((out / "logits/tiny/rtn_w4a16/toy_gen/meta.json").read_text())["reference"] == \
        str(out / "logits/tiny/base/toy_gen")
    pair = json.loads((out / "analysis/tiny/summary.json").read_text())["pairs"]["rtn_w4a16"]
    assert pair["sequences_logged_at_base_topk"] == pair["sequences"] > 0
    assert all(s["not_covered_share"] == 0 for s in pair["rank_correlation"].values())
