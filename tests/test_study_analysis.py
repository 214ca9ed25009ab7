"""A study's analysis cell over episode-step logs: what it counts as left out, and per task.

The logs are written with the real ``LogWriter`` from full random logit matrices (so every
metric can be recomputed by brute force here) into the folders a study's evaluation cells log
to; the analysis cell (``stages.analyze``) then merges and analyses them as in ``acbench demo``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from lm_eval_acbench.analysis.logio import LogWriter, summarize_rows, write_meta
from lm_eval_acbench.study.config import load_study
from lm_eval_acbench.study.plan import Cell, Layout
from lm_eval_acbench.study.stages import StageContext, analyze
from test_analysis_metrics import brute_erank

V, N = 40, 6  # vocabulary, logged positions per step
# (task, step) -> how the recipe's run has that step: "same" prompt as the base's, "other" prompt
# (its episode took another action before), "base only" (its episode ended earlier), "recipe only"
STEPS = {
    ("acbench_realworld_pddl", 1): "same", ("acbench_realworld_pddl", 2): "other",
    ("acbench_realworld_pddl", 3): "other",
    ("acbench_realworld_babyai", 1): "same", ("acbench_realworld_babyai", 2): "same",
    ("acbench_realworld_babyai", 3): "recipe only",
    ("acbench_realworld_tool_query", 1): "same", ("acbench_realworld_tool_query", 2): "base only",
    ("acbench_realworld_tool_query", 3): "base only",
}


def _write(folder, steps: dict, model: str):
    write_meta(folder, {"model": model, "tokenizer": "t", "tokenizer_hash": "t", "top_k": V,
                        "temperatures": [1.0], "source": "lm_eval"})
    writer = LogWriter(folder, flush_every=2)
    for (task, step), (ids, z) in steps.items():
        writer.add(task=task, doc_id=0, request_type="generate_until", request_idx=0, episode=0, step=step,
                   input_ids=ids, positions=np.arange(len(ids) - N, len(ids)), **summarize_rows(z, V, [1.0]))
    writer.close()


@pytest.fixture(scope="module")
def study_out(tmp_path_factory):
    """A demo-shaped study folder whose two real-world cells (base, rtn_w4a16) finished."""
    tmp_path = tmp_path_factory.mktemp("study-analysis")
    rng = np.random.default_rng(0)
    base, recipe = {}, {}
    for (task, step), how in STEPS.items():
        ids = rng.integers(0, V, size=10 + step)
        z = rng.normal(size=(N, V)) * 2
        if how != "recipe only":
            base[(task, step)] = (ids, z)
        if how != "base only":
            other = rng.integers(0, V, size=10 + step) if how == "other" else ids
            recipe[(task, step)] = (other, z + rng.normal(scale=0.5, size=z.shape))
    study = load_study({"name": "demo-like", "models": [{"name": "m", "path": "unused"}], "recipes": ["rtn_w4a16"],
                        "tasks": ["acbench_realworld"], "out": str(tmp_path / "out"), "logits": {"enabled": True},
                        "analysis": {"settings": {"ks": [3]}}})
    layout = Layout(tmp_path / "out")
    for variant, steps in (("base", base), ("rtn_w4a16", recipe)):
        _write(layout.logits_dir("m", variant, "acbench_realworld"), steps, variant)
        marker = layout.done_marker(f"eval/m/{variant}/acbench_realworld")
        marker.parent.mkdir(parents=True)
        marker.write_text("{}")
    ctx = StageContext(study, layout, ("acbench_realworld",))
    analyze(ctx, Cell(id="analyze/m", kind="analyze", model="m"))
    summary = json.loads((layout.analysis_dir("m") / "summary.json").read_text())
    return layout, summary, base, recipe


def test_steps_the_recipe_played_from_another_prompt_count_as_different_prompts(study_out):
    """An episode step both models played, after different actions, is a different-prompt key, not a
    base-only one: the merged logs keep the recipe's record so the overlap says what happened."""
    layout, summary, _, _ = study_out
    logs = json.loads((layout.analysis_dir("m") / "acbench_logs.json").read_text())
    assert logs["rtn_w4a16"] == {"tasks": ["acbench_realworld"], "records": 7, "same_prompt_as_base": 4,
                                 "other_prompt": 2, "not_in_base": 1}
    overlap = summary["pairs"]["rtn_w4a16"]["overlap"]
    assert overlap["n_common"] == 4
    assert overlap["n_different_prompt"] == 2
    assert overlap["n_only_base"] == 2
    assert overlap["n_only_compressed"] == 1
    assert sorted(overlap["different_prompt_keys"]) == [
        "acbench_realworld_pddl|0|generate_until|0|episode0|step2",
        "acbench_realworld_pddl|0|generate_until|0|episode0|step3"]
    assert overlap["only_base_keys"] == [
        "acbench_realworld_tool_query|0|generate_until|0|episode0|step2",
        "acbench_realworld_tool_query|0|generate_until|0|episode0|step3"]


def test_the_analysis_is_broken_down_per_task_with_its_coverage(study_out):
    """Per task: the pair's metrics over that task's steps only (brute force), and its overlap."""
    _, summary, base, recipe = study_out
    per_task = summary["pairs"]["rtn_w4a16"]["per_task"]
    assert sorted(per_task) == ["acbench_realworld_babyai", "acbench_realworld_pddl", "acbench_realworld_tool_query"]
    want_overlap = {"acbench_realworld_pddl": (1, 0, 0, 2), "acbench_realworld_babyai": (2, 0, 1, 0),
                    "acbench_realworld_tool_query": (1, 2, 0, 0)}
    for task, stats_ in per_task.items():
        ov = stats_["overlap"]
        assert (ov["n_common"], ov["n_only_base"], ov["n_only_compressed"], ov["n_different_prompt"]) == \
            want_overlap[task], task
        keys = [k for k, how in STEPS.items() if k[0] == task and how == "same"]
        assert stats_["sequences"] == len(keys) and stats_["positions"] == N * len(keys)
        eb = np.array([brute_erank(base[k][1]) for k in keys])
        ec = np.array([brute_erank(recipe[k][1]) for k in keys])
        assert stats_["erank"]["erank_base"] == pytest.approx(eb.mean(), rel=1e-6)
        assert stats_["erank"]["diff_erank"] == pytest.approx((ec - eb).mean(), rel=1e-6, abs=1e-12)
        taus = []
        for k in keys:
            for x, y in zip(base[k][1], recipe[k][1]):
                s = np.lexsort((np.arange(V), -x))[:3]
                taus.append(stats.kendalltau(x[s], y[s]).statistic)
        assert stats_["rank_correlation"]["3"]["tau_mean_over_positions"] == pytest.approx(np.mean(taus), rel=1e-6)
        assert stats_["rank_correlation"]["3"]["not_covered_share"] == 0
        e_b = np.concatenate([-np.log(np.exp(base[k][1]).sum(1)) for k in keys])
        e_c = np.concatenate([-np.log(np.exp(recipe[k][1]).sum(1)) for k in keys])
        assert stats_["energy"]["mean_shift"] == pytest.approx(e_c.mean() - e_b.mean(), rel=1e-6)
        assert stats_["energy"]["wasserstein1"] == pytest.approx(stats.wasserstein_distance(e_b, e_c), rel=1e-6)
    pair = summary["pairs"]["rtn_w4a16"]
    assert sum(s["positions"] for s in per_task.values()) == pair["positions"]
    assert sum(s["overlap"]["n_different_prompt"] for s in per_task.values()) == pair["overlap"]["n_different_prompt"]


def test_the_report_counts_different_prompts_as_left_out_and_shows_each_task(study_out, tmp_path):
    from lm_eval_acbench.analysis.report import analysis_sections

    layout, _, _, _ = study_out
    notes: list[str] = []
    sections = analysis_sections(layout.analysis_dir("m"), tmp_path, notes)
    table = sections[0]["table"]
    row = table[table["model"] == "rtn_w4a16"].iloc[0]
    assert row["keys left out"] == 2 + 1 + 2  # base-only + recipe-only + different prompt
    tasks = [s for s in sections if "per task" in s["title"]]
    assert tasks, [s["title"] for s in sections]
    per_task = tasks[0]["table"]
    assert sorted(per_task["task"]) == ["acbench_realworld_babyai", "acbench_realworld_pddl",
                                        "acbench_realworld_tool_query"]
    pddl = per_task[per_task["task"] == "acbench_realworld_pddl"].iloc[0]
    assert pddl["sequences"] == 1 and pddl["different prompt"] == 2
    assert any("2 different-prompt" in n for n in notes)
