"""Through the real `acbench` entry point: bad inputs are one line on stderr and a non-zero exit,
and no command deletes or replaces a folder acbench did not make."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from test_study import write_toy_tasks

from lm_eval_acbench.analysis.logio import META, shards, write_synthetic
from lm_eval_acbench.cli import main
from lm_eval_acbench.owned_dirs import MARKER, make_owned_dir


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line(code: int, err: str, *needles: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work")
    return path


def survives(folder) -> bool:
    return sorted(p.name for p in folder.iterdir()) == ["thesis.txt"] and \
        (folder / "thesis.txt").read_text() == "three years of work"


# ---- compress --------------------------------------------------------------------------------

MAGNITUDE = ("--method", "magnitude", "--no-ppl")


@pytest.mark.parametrize("flags", [(), ("--overwrite",)])
def test_compress_never_replaces_a_folder_it_did_not_make(tiny_model_dir, tmp_path, capsys, flags):
    theirs = user_folder(tmp_path / "theirs")
    code, err = run_cli(capsys, "compress", tiny_model_dir, *MAGNITUDE, "--out", theirs, *flags)
    one_line(code, err, str(theirs), "not a checkpoint acbench made")
    assert survives(theirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]  # no staging left behind


def test_compress_overwrite_replaces_its_own_checkpoint(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert run_cli(capsys, "compress", tiny_model_dir, *MAGNITUDE, "--sparsity", "0.5", "--out", out)[0] == 0
    assert (out / MARKER).is_file()
    (out / "stale.txt").write_text("from the old checkpoint")
    code, err = run_cli(capsys, "compress", tiny_model_dir, *MAGNITUDE, "--sparsity", "0.6", "--out", out)
    one_line(code, err, "other settings", "--overwrite")
    code, _ = run_cli(capsys, "compress", tiny_model_dir, *MAGNITUDE, "--sparsity", "0.6", "--out", out,
                      "--overwrite")
    assert code == 0
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    assert manifest["steps"][0]["sparsity"] == 0.6
    assert (out / MARKER).is_file() and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("config, needle", [
    ("{oops", "not a readable JSON file"),
    ("[1, 2]", "expected a JSON object"),
    ("{}", "has no model_type"),
    ('{"model_type": "llama", "hidden_size": "wide"}', "transformers cannot build a causal LM"),
    ('{"model_type": "no-such-model"}', "transformers cannot build a causal LM"),
])
def test_compress_on_a_model_folder_with_a_bad_config(tiny_model_dir, tmp_path, capsys, config, needle):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text(config)
    code, err = run_cli(capsys, "compress", model, *MAGNITUDE, "--out", tmp_path / "out")
    one_line(code, err, "config.json", needle)
    assert not (tmp_path / "out").exists()


# ---- analyze ---------------------------------------------------------------------------------

@pytest.fixture
def two_logs(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("base", "comp"):
        write_synthetic(tmp_path / name, {("t", i): rng.normal(size=(5, 40)) for i in range(3)},
                        model=name, top_k=8)
    return tmp_path / "base", tmp_path / "comp"


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _garbage(path):
    path.write_bytes(b"PAR1 this is not parquet at all")


def _foreign(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"other": [1, 2]}), path)


@pytest.mark.parametrize("damage, needle", [
    (_truncate, "not a readable Parquet shard"),
    (_garbage, "not a readable Parquet shard"),
    (_foreign, "not a readable Parquet shard"),
])
def test_analyze_on_a_damaged_shard(two_logs, tmp_path, capsys, damage, needle):
    base, comp = two_logs
    shard = shards(comp)[0]
    damage(shard)
    code, err = run_cli(capsys, "analyze", base, comp, "--out", tmp_path / "out", "--k", "3")
    one_line(code, err, str(shard), needle)


@pytest.mark.parametrize("meta, needle", [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"format": "acbench-logits/1", "tokenizer_hash": "synthetic"}', "top_k must be a positive integer"),
    ('{"tokenizer_hash": "synthetic", "top_k": 8, "temperatures": "hot"}', "temperatures must be"),
    ('{"tokenizer_hash": "synthetic", "top_k": 7, "temperatures": [1.0]}', "do not match the log's top_k"),
])
def test_analyze_on_a_corrupt_meta_json(two_logs, tmp_path, capsys, meta, needle):
    base, comp = two_logs
    (comp / META).write_text(meta)
    code, err = run_cli(capsys, "analyze", base, comp, "--out", tmp_path / "out", "--k", "3")
    one_line(code, err, "comp", needle)


# ---- report ----------------------------------------------------------------------------------

def _run_folder(path, results) -> str:
    (path / "task").mkdir(parents=True)
    (path / "task" / "results_2026.json").write_text(results)
    return str(path)


@pytest.mark.parametrize("summary, needle", [
    ("{bad", "not readable JSON"),
    ("[]", "expected a JSON object"),
    ('{"pairs": {"c": 5}}', "pairs.c is not an object"),
    ('{"pairs": {}, "energy_files": {"c": "../../elsewhere.npz"}}', "energy_files.c"),
])
def test_report_on_a_corrupt_analysis_summary(tmp_path, capsys, summary, needle):
    run = _run_folder(tmp_path / "base", '{"results": {"t": {"acc,none": 0.5}}}')
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / "summary.json").write_text(summary)
    code, err = run_cli(capsys, "report", f"base={run}", "--analysis", analysis, "--out", tmp_path / "out")
    one_line(code, err, "summary.json", needle)


def test_report_names_a_results_file_that_is_not_lm_evals_and_leaves_it_out(tmp_path, capsys):
    good = _run_folder(tmp_path / "base", '{"results": {"t": {"acc,none": 0.5}}}')
    bad = _run_folder(tmp_path / "comp", '{"results": {"t": [0.5]}}')
    (tmp_path / "comp" / "task" / "samples_t_2026.jsonl").write_bytes(b'\xff{"doc": {}}\n')
    code, err = run_cli(capsys, "report", f"base={good}", f"comp={bad}", "--out", tmp_path / "out")
    assert code == 0, err
    text = (tmp_path / "out" / "report.md").read_text()
    assert "results_2026.json: unreadable (not an lm-eval results file)" in text


# ---- run -------------------------------------------------------------------------------------

def write_study(tmp_path, **body) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


@pytest.mark.parametrize("command, flag, text, needle", [
    ("run", None, "models: [a\ntasks: [b]\n", "study.yaml: not valid YAML (line 2, column 6:"),
    ("run", None, "a: 1\n\tb: 2\n", "study.yaml: not valid YAML (line 2, column 1:"),
    ("compress", "--recipe", ": : bad\n  - [", "recipe.yaml: not valid YAML (line 1, column 1:"),
])
def test_a_yaml_syntax_error_is_one_line_with_its_place(tiny_model_dir, tmp_path, capsys, command, flag, text,
                                                         needle):
    name = "study.yaml" if command == "run" else "recipe.yaml"
    (tmp_path / name).write_text(text)
    argv = [command, tmp_path / name] if command == "run" else [
        command, tiny_model_dir, flag, tmp_path / name, "--out", tmp_path / "out"]
    code, err = run_cli(capsys, *argv)
    one_line(code, err, needle)


@pytest.mark.parametrize("body, needle", [
    ({"models": {"path": "default"}, "tasks": ["t"]}, "models: expected a list"),
    ({"models": "default", "tasks": ["t"]}, "models: expected a list"),
    ({"models": ["default"], "tasks": {"a": "t"}}, "tasks: expected a list"),
    ({"models": ["default"], "recipes": {"recipe": "gptq_w4a16"}, "tasks": ["t"]}, "recipes: expected a list"),
    ({"models": [{"path": "default", "model_args": {"logits_dir": "/tmp/mine"}}], "tasks": ["t"]},
     "models.0.model_args: logits_dir is set by the study"),
    ({"models": ["default"], "backend": {"model_args": {"logits_dir": "x"}}, "tasks": ["t"]},
     "backend.model_args: logits_dir"),
])
def test_run_rejects_a_study_file_with_one_line_naming_file_and_key(tmp_path, capsys, body, needle):
    study = write_study(tmp_path, **body)
    code, err = run_cli(capsys, "run", study, "--dry-run")
    one_line(code, err, "study.yaml", needle)


@pytest.mark.parametrize("out_is", ["folder", "file"])
def test_run_never_takes_a_users_folder_or_file_as_its_out(tmp_path, capsys, out_is):
    out = tmp_path / "mine"
    if out_is == "folder":
        user_folder(out)
        (out / "study.yaml").write_text("the user's own study file")
    else:
        out.write_text("a file")
    study = write_study(tmp_path, models=["default"], tasks=["acbench_niah"], out=str(out))
    code, err = run_cli(capsys, "run", study, "--no-progress")
    one_line(code, err, "study out: refusing to write into", str(out))
    if out_is == "folder":
        assert (out / "study.yaml").read_text() == "the user's own study file"
        (out / "study.yaml").unlink()
        assert survives(out)
    else:
        assert out.read_text() == "a file"


def test_run_never_deletes_or_replaces_a_users_folder_inside_its_out(tiny_model_dir, tmp_path, capsys):
    """A study's own out that holds someone's folders where the study would write: the cells
    that would replace them fail with one line each, the folders keep their files."""
    tasks = write_toy_tasks(tmp_path / "tasks")
    out = make_owned_dir(tmp_path / "out", root=tmp_path)
    their_logits = user_folder(out / "logits/tiny/base/toy_ll")
    their_evals = user_folder(out / "evals/tiny/base/toy_gen")
    study = write_study(tmp_path, models=[{"name": "tiny", "path": str(tiny_model_dir)}],
                        tasks=["toy_gen", "toy_ll"], include_path=[str(tasks)], limit=1, out=str(out),
                        backend={"device": "cpu"}, logits={"enabled": True}, report={"enabled": False})
    code, _ = run_cli(capsys, "run", study, "--no-progress")
    assert code == 1
    assert survives(their_logits) and survives(their_evals)
    for task, action in (("toy_ll", "delete"), ("toy_gen", "replace")):
        error = json.loads((out / f"cells/eval/tiny/base/{task}/error.json").read_text())["error"]
        assert f"refusing to {action}" in error and "did not make it" in error
    # its own folders it made on the way are marked, so a rerun may replace them
    assert (out / "logits/tiny/base/toy_gen" / MARKER).is_file()


# ---- model fetch -----------------------------------------------------------------------------

def test_model_fetch_force_never_replaces_a_cache_folder_it_did_not_make(tmp_path, capsys, monkeypatch):
    from lm_eval_acbench.model_store import DEFAULT_MODEL, cached_path

    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path / "cache"))
    theirs = user_folder(cached_path(DEFAULT_MODEL))
    code, err = run_cli(capsys, "model", "fetch", "--force")
    one_line(code, err, f"refusing to replace {theirs}")
    assert survives(theirs)
