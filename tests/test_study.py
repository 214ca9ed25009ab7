"""Study files, plans and the `acbench run --dry-run` command line (fast: no model runs)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.study.config import CAPABILITIES, load_study
from lm_eval_acbench.study.plan import build_cells, cell_fingerprint, make_plan, resolve_tasks

TOY_DOCS = [
    {"question": "2+2", "answer": "4"},
    {"question": "capital of France", "answer": "Paris"},
    {"question": "3+3", "answer": "6"},
]

# process_results hook of the toy tasks: counts its calls in calls.log beside it, and raises
# while a file FAIL_<task> exists there (a cell that fails on purpose).
TOY_HOOKS = '''
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _record(task, doc):
    with open(HERE / "calls.log", "a") as fh:
        fh.write(json.dumps({"task": task, "q": doc["question"]}) + "\\n")
    if (HERE / f"FAIL_{task}").exists():
        raise RuntimeError(f"{task} fails on purpose")


def gen_results(doc, results):
    _record("toy_gen", doc)
    return {"hit": float(doc["answer"] in results[0])}


def ll_results(doc, results):
    _record("toy_ll", doc)
    loglik, greedy = results[0]
    return {"acc": float(greedy), "loglik": float(loglik)}
'''


def write_toy_tasks(folder: Path) -> Path:
    """Two lm-eval tasks over a local JSON-lines file: a generate_until and a loglikelihood one."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "toy.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in TOY_DOCS))
    (folder / "hooks.py").write_text(TOY_HOOKS)
    common = textwrap.dedent(f"""\
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        doc_to_text: "Q: {{{{question}}}}\\nA:"
        """)
    (folder / "toy_gen.yaml").write_text("task: toy_gen\n" + common + textwrap.dedent("""\
        output_type: generate_until
        doc_to_target: "{{answer}}"
        generation_kwargs:
          until: ["\\n"]
          max_gen_toks: 6
          do_sample: false
        process_results: !function hooks.gen_results
        metric_list:
          - metric: hit
            aggregation: mean
            higher_is_better: true
        """))
    (folder / "toy_ll.yaml").write_text("task: toy_ll\n" + common + textwrap.dedent("""\
        output_type: loglikelihood
        doc_to_target: " {{answer}}"
        process_results: !function hooks.ll_results
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
          - metric: loglik
            aggregation: mean
            higher_is_better: true
        """))
    return folder


def calls(folder: Path) -> dict[str, int]:
    """How many documents each toy task has scored so far (from its hook's log)."""
    counts: dict[str, int] = {}
    log = folder / "calls.log"
    if log.exists():
        for line in log.read_text().splitlines():
            task = json.loads(line)["task"]
            counts[task] = counts.get(task, 0) + 1
    return counts


@pytest.fixture(scope="module")
def toy_tasks(tmp_path_factory) -> Path:
    return write_toy_tasks(tmp_path_factory.mktemp("toy-tasks"))


# ---- config ----------------------------------------------------------------------------------

def test_unknown_keys_are_errors_that_name_the_key_and_a_fix():
    with pytest.raises(UserError) as err:
        load_study({"models": ["default"], "tasks": ["x"], "limt": 2})
    assert "limt: unknown key; did you mean 'limit'?" in str(err.value)
    with pytest.raises(UserError) as err:
        load_study({"models": ["default"], "tasks": ["x"], "backend": {"tpye": "vllm"}})
    assert "backend.tpye: unknown key; did you mean 'type'?" in str(err.value)
    with pytest.raises(UserError) as err:
        load_study({"models": [{"path": "a", "nmae": "b"}], "tasks": ["x"]})
    assert "models.0.nmae: unknown key" in str(err.value)


@pytest.mark.parametrize("bad, message", [
    ({"models": ["default"]}, "name some 'tasks' or 'capabilities'"),
    ({"models": [], "tasks": ["x"]}, "models"),
    ({"models": ["default"], "tasks": ["x"], "recipes": [{"recipe": {"steps": []}}]}, "needs a 'name'"),
    ({"models": ["default"], "tasks": ["x"], "recipes": ["base"]}, "uncompressed model's label"),
    ({"models": ["a/m", "b/m"], "tasks": ["x"]}, "share the label 'm'"),
    ({"models": ["m"], "tasks": ["x"], "recipes": ["gptq_w4a16"],
      "backend": {"type": "local-completions"}}, "cannot compress"),
    ({"models": ["m"], "tasks": ["x"], "backend": {"type": "vllm"}, "logits": {"enabled": True}},
     "needs the hf backend"),
    ({"models": ["m"], "tasks": ["x"], "limit": 2.5}, "whole number"),
    ({"models": ["m"], "tasks": ["x"], "capabilities": ["planning"]}, "capabilities.0"),
])
def test_inconsistent_studies_are_rejected(bad, message):
    with pytest.raises(UserError) as err:
        load_study(bad)
    assert message in str(err.value)


def test_study_file_paths_are_relative_to_the_file_and_overrides_win(tmp_path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "r.yaml").write_text("steps: [{method: rtn}]\n")
    study_file = tmp_path / "s.yaml"
    study_file.write_text(textwrap.dedent("""\
        models: [models/mine, org/hub-model]
        recipes: [gptq_w4a16, r.yaml]
        tasks: [t1]
        out: results
        include_path: [tasks]
        limit: 3
        """))
    study = load_study(study_file, {"limit": 1, "generation.max_gen_toks": 16, "executor.type": "ray"})
    assert study.models[0].path == str(tmp_path / "models" / "mine")
    assert study.models[1].path == "org/hub-model"  # not a folder here: a hub id
    assert [m.label for m in study.models] == ["mine", "hub-model"]
    assert study.recipes[1].recipe == str(tmp_path / "r.yaml")
    assert study.variants == ["base", "gptq_w4a16", "r"]
    assert study.out == tmp_path / "results"
    assert study.include_path == [tmp_path / "tasks"]
    assert study.limit == 1 and isinstance(study.limit, int)
    assert study.generation.gen_kwargs() == {"max_gen_toks": 16}
    assert study.executor.type == "ray"


def test_gpus_per_cell_follow_the_backend():
    def gpus(backend):
        study = load_study({"models": ["m"], "tasks": ["t"], "recipes": ["rtn_w4a16"], "backend": backend})
        cells = build_cells(study, ["t"])
        return {c.kind: c.num_gpus for c in cells if c.kind in ("compress", "evaluate")}

    assert gpus({"type": "hf", "device": "cpu"}) == {"compress": 0, "evaluate": 0}
    assert gpus({"type": "hf", "device": "cuda"}) == {"compress": 1, "evaluate": 1}
    assert gpus({"type": "vllm", "model_args": {"tensor_parallel_size": 2, "data_parallel_size": 2}}) == {
        "compress": 1, "evaluate": 4}
    assert gpus({"type": "vllm", "num_gpus": 0.5}) == {"compress": 1, "evaluate": 0.5}


def test_the_packaged_demo_study_is_valid():
    from lm_eval_acbench.compress import load_recipe
    from lm_eval_acbench.paths import PACKAGE_DIR

    for name, variants in (("demo", ["base", "rtn_w4a16", "magnitude_2of4"]),
                           ("smoke", ["base", "gptq_w4a16", "awq_w4a16", "wanda_50", "sparsegpt_2of4"])):
        study = load_study(PACKAGE_DIR / "studies" / f"{name}.yaml", {"out": "/tmp/x"})
        assert study.variants == variants
        for names in CAPABILITIES.values():  # all four capabilities, by group or by task
            assert set(names) & set(study.tasks) or study.capabilities == list(CAPABILITIES)
        assert study.logits.enabled and study.runs_analysis
        for recipe in study.recipes:  # the built-in names exist
            load_recipe(recipe.recipe)


# ---- plan ------------------------------------------------------------------------------------

def test_plan_cells_and_dependency_order(toy_tasks, tmp_path):
    study = load_study({
        "models": [{"name": "a", "path": "x/a"}, {"name": "b", "path": "x/b"}],
        "recipes": ["rtn_w4a16", "wanda_50"], "tasks": ["toy_gen", "toy_ll"],
        "include_path": [str(toy_tasks)], "out": str(tmp_path), "logits": {"enabled": True},
    })
    plan = make_plan(study)
    assert plan.tasks == ["toy_gen", "toy_ll"] and plan.skipped == [] and not plan.builtin_tasks
    # per model: 2 compress, 3 variants x 2 tasks evaluations, 1 analysis, 1 report
    assert plan.counts() == {"compress": 4, "evaluate": 12, "analyze": 2, "report": 2}
    position = {c.id: i for i, c in enumerate(plan.cells)}
    for cell in plan.cells:
        assert all(position[d] < position[cell.id] for d in cell.deps), cell.id
    cells = plan.by_id()
    # a recipe's eval cell logs against the base's log of the same task, so it comes after it
    assert cells["eval/a/wanda_50/toy_ll"].deps == ("compress/a/wanda_50", "eval/a/base/toy_ll")
    assert cells["eval/a/wanda_50/toy_ll"].reference == "eval/a/base/toy_ll"
    assert cells["eval/a/base/toy_ll"].deps == () and cells["eval/a/base/toy_ll"].reference is None
    assert set(cells["analyze/b"].deps) == {f"eval/b/{v}/{t}" for v in study.variants for t in plan.tasks}
    assert "analyze/b" in cells["report/b"].deps and cells["report/b"].soft_deps
    text = plan.describe()
    assert "cells: 4 compress, 12 evaluate, 2 analyze, 2 report (20 in all)" in text


def test_without_a_logit_analysis_recipe_cells_do_not_wait_for_the_base(toy_tasks, tmp_path):
    for extra in ({"logits": {"enabled": False}}, {"logits": {"enabled": True}, "analysis": {"enabled": False}}):
        study = load_study({"models": [{"name": "a", "path": "x/a"}], "recipes": ["rtn_w4a16"],
                            "tasks": ["toy_ll"], "include_path": [str(toy_tasks)], "out": str(tmp_path), **extra})
        cell = make_plan(study).by_id()["eval/a/rtn_w4a16/toy_ll"]
        assert cell.deps == ("compress/a/rtn_w4a16",) and cell.reference is None


def test_capability_tasks_not_installed_are_skipped_with_a_reason(toy_tasks, tmp_path):
    study = load_study({"models": ["m"], "tasks": ["toy_ll"], "capabilities": list(CAPABILITIES),
                        "include_path": [str(toy_tasks)], "out": str(tmp_path)})
    tasks, skipped, _ = resolve_tasks(study)
    from lm_eval.tasks import TaskManager

    installed = set(TaskManager(include_defaults=False).all_tasks)
    expected = [t for names in CAPABILITIES.values() for t in names]
    assert tasks == [t for t in expected if t in installed] + ["toy_ll"]
    assert [t for t, _ in skipped] == [t for t in expected if t not in installed]
    plan = make_plan(study)
    for task, why in skipped:
        assert f"skipped:  {task} ({why})" in plan.describe()


@pytest.mark.slow  # a named task not in acbench's folders makes lm-eval index its own ~15k tasks
def test_an_unknown_named_task_is_an_error_with_a_suggestion(toy_tasks, tmp_path):
    study = load_study({"models": ["m"], "tasks": ["toy_lll"], "include_path": [str(toy_tasks)],
                        "out": str(tmp_path)})
    with pytest.raises(UserError, match=r"unknown lm-eval task\(s\): toy_lll \(did you mean toy_ll"):
        resolve_tasks(study)


def test_fingerprints_change_with_the_settings_a_cell_depends_on():
    base = {"models": ["m"], "tasks": ["t"], "recipes": ["rtn_w4a16"], "limit": 2}
    study = load_study(base)
    cells = {c.kind: c for c in build_cells(study, ["t"])}

    def fp(overrides, kind):
        return cell_fingerprint(load_study(base, overrides), cells[kind])

    assert fp({}, "evaluate") == cell_fingerprint(study, cells["evaluate"])
    assert fp({"limit": 3}, "evaluate") != fp({}, "evaluate")
    assert fp({"limit": 3}, "compress") == fp({}, "compress")
    assert fp({"compression.num_samples": 8}, "compress") != fp({}, "compress")
    assert fp({"executor.type": "ray", "out": "/elsewhere"}, "evaluate") == fp({}, "evaluate")


# ---- command line ----------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_writes_nothing(toy_tasks, tmp_path, capsys):
    from lm_eval_acbench.cli import main

    study_file = tmp_path / "study.yaml"
    study_file.write_text(textwrap.dedent(f"""\
        models: [{{name: tiny, path: some/model}}]
        recipes: [rtn_w4a16]
        tasks: [toy_gen]
        include_path: [{toy_tasks}]
        out: out
        """))
    code = main(["run", str(study_file), "--dry-run", "--tasks", "toy_gen,toy_ll", "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "cells: 1 compress, 4 evaluate, 0 analyze, 1 report (6 in all)" in err
    assert "todo  eval/tiny/rtn_w4a16/toy_ll" in err
    assert "limit 1" in err
    assert not (tmp_path / "out").exists()


def test_bad_study_file_is_one_clear_error(tmp_path, capsys):
    from lm_eval_acbench.cli import main

    study_file = tmp_path / "study.yaml"
    study_file.write_text("models: [m]\ntasks: [t]\nbackend: {type: hf, gpus: 2}\n")
    assert main(["run", str(study_file)]) == 1
    err = capsys.readouterr().err
    assert "backend.gpus: unknown key" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "study file not found" in capsys.readouterr().err
