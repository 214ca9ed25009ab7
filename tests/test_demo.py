"""`acbench demo`: the packaged study, its plan, and its command-line overrides (no model runs)."""

from __future__ import annotations

import re

from lm_eval_acbench.cli import main
from lm_eval_acbench.study.config import CAPABILITIES, load_study
from lm_eval_acbench.study.plan import resolve_tasks

VARIANTS = ["base", "rtn_w4a16", "magnitude_2of4"]
SMOKE_VARIANTS = ["base", "gptq_w4a16", "awq_w4a16", "wanda_50", "sparsegpt_2of4"]


def test_demo_plans_the_acting_model_harmless_and_harmful_on_every_installed_task(tmp_path, capsys):
    from lm_eval_acbench.paths import PACKAGE_DIR

    assert main(["demo", "--out", str(tmp_path / "demo"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"variants: {', '.join(VARIANTS)}" in err
    study = load_study(PACKAGE_DIR / "studies" / "demo.yaml", {"out": str(tmp_path / "demo")})
    tasks, skipped, builtin = resolve_tasks(study)
    assert not builtin  # only acbench's own tasks: no indexing of lm-eval's task folder
    assert sorted(tasks + [t for t, _ in skipped]) == sorted(study.tasks)
    for capability, names in CAPABILITIES.items():  # every capability is evaluated
        assert set(names) & set(study.tasks), capability
    assert f"tasks:    {', '.join(tasks)}" in err
    for task, _ in skipped:
        assert f"skipped:  {task}" in err
    n = len(tasks)
    assert f"cells: 2 compress, {3 * n} evaluate, 1 analyze, 1 report ({2 + 3 * n + 2} in all)" in err
    assert study.models[0].path == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert "logits logged" in err
    assert str(tmp_path / "demo") in err and not (tmp_path / "demo").exists()


def test_demo_flags_override_the_packaged_study(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "--dry-run", "--recipes", "rtn_w4a16",
                 "--capabilities", "workflow", "--limit", "1", "--no-logits", "--executor", "ray"])
    assert code == 0
    err = capsys.readouterr().err
    assert "variants: base, rtn_w4a16" in err
    assert "backend:  hf, limit 1, executor ray" in err and "logits logged" not in err
    cells = re.search(r"cells: (\d+) compress, (\d+) evaluate, (\d+) analyze, (\d+) report", err)
    assert cells and cells.groups()[0] == "1" and cells.groups()[2] == "0"  # no logits, no analysis


def test_smoke_study_keeps_smollm2_fast(tmp_path, capsys):
    assert main(["demo", "--smoke", "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"variants: {', '.join(SMOKE_VARIANTS)}" in err
    assert "backend:  hf, limit 1," in err
