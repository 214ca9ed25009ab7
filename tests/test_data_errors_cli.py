"""Under plain ``lm_eval``: data and scorer errors are one line, never a traceback or zeros."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def lm_eval(args: list[str], cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ACBENCH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "lm_eval", *args, "--output_path", str(cwd / "out")],
                          cwd=cwd, capture_output=True, text=True, timeout=600, env=full_env)


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_data_unavailable_is_one_line(tiny_model_dir, tmp_path):
    done = lm_eval(["--model", "hf", "--model_args", f"pretrained={tiny_model_dir}", "--tasks",
                    "acbench_workflow_os", "--limit", "1", "--metadata", '{"data_source": "local"}'], tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert last_line(done).startswith("error: worfbench/os: data_source=local but no local copy")


@pytest.mark.slow
def test_teval_without_sentence_transformers_fails_with_one_line(tiny_model_dir, tmp_path):
    hidden = tmp_path / "shadow" / "sentence_transformers"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("sentence_transformers hidden by the test")\n')
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])}
    args = ["--model", "hf", "--model_args", f"pretrained={tiny_model_dir}", "--tasks", "acbench_teval_plan",
            "--limit", "1", "--gen_kwargs", "max_gen_toks=4", "--metadata", '{"data_source": "sample"}']
    done = lm_eval(args, tmp_path, env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert last_line(done).startswith("error: similarity scoring needs sentence-transformers")
    assert not list((tmp_path / "out").rglob("results_*.json"))  # no results file of zeros


@pytest.mark.slow
def test_logits_dir_in_use_is_one_line(tiny_model_dir, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "meta.json").write_text('{"format": "acbench-logits/2"}')
    args = ["--model", "acbench-hf", "--model_args", f"pretrained={tiny_model_dir},logits_dir={logs}",
            "--tasks", "acbench_workflow_os", "--limit", "1", "--metadata", '{"data_source": "sample"}']
    done = lm_eval(args, tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert last_line(done).startswith(f"error: {logs} already holds a logit log (meta.json)")
    assert (logs / "meta.json").read_text() == '{"format": "acbench-logits/2"}'  # the old log is kept


@pytest.mark.slow
@pytest.mark.parametrize("extra, expected", [
    ("logits_reference={missing}", "error: logits_reference: {missing} is not a logit log"),
    ("logits_top_k=many", "error: acbench-hf: a logits_* model argument is not a number"),
])
def test_bad_logging_arguments_are_one_line(tiny_model_dir, tmp_path, extra, expected):
    missing = tmp_path / "no_such_log"
    args = ["--model", "acbench-hf", "--model_args",
            f"pretrained={tiny_model_dir},logits_dir={tmp_path / 'logs'}," + extra.format(missing=missing),
            "--tasks", "acbench_workflow_os", "--limit", "1", "--metadata", '{"data_source": "sample"}']
    done = lm_eval(args, tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert last_line(done).startswith(expected.format(missing=missing))
