"""The start-up hook: plain lm-eval finds our tasks and model types, fails safe, can be switched off.

These run in subprocesses because the hook acts at interpreter start. They are the tests that
fail the day lm-eval changes under the hook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from lm_eval_acbench import _hook
from lm_eval_acbench.paths import task_dir


def python(code: str, cwd, **env) -> dict:
    """Run ``code`` in a fresh interpreter (so .pth hooks run) and parse the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


INDEX_PROBE = """
import json
import lm_eval.models  # what the CLI imports before it looks a model type up
from lm_eval.tasks import TaskManager
from lm_eval.api.registry import model_registry
tm = TaskManager()
ours = sorted(n for n in tm.all_tasks if n.startswith("acbench"))
print(json.dumps({
    "ours": ours,
    # tags have no file of their own; tasks and groups do
    "paths": {n: str(tm._index[n].yaml_path) for n in ours if tm._index[n].yaml_path is not None},
    "has_acbench_hf": "acbench-hf" in model_registry,
    "has_hf": "hf" in model_registry,
    "has_vllm": "vllm" in model_registry,
}))
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return python(INDEX_PROBE, cwd=tmp_path_factory.mktemp("anywhere"))


def test_plain_task_manager_indexes_acbench_tasks_from_any_directory(index):
    assert index["ours"], "lm-eval's TaskManager does not see any acbench task: the start-up hook broke"
    for group in ("acbench_workflow", "acbench_teval", "acbench_function_call", "acbench_longcontext",
                  "acbench_realworld"):
        assert group in index["ours"]
    for name, path in index["paths"].items():
        assert path.startswith(str(task_dir())), (name, path)


def test_model_types_registered_without_hiding_builtins(index):
    assert index["has_acbench_hf"]
    assert index["has_hf"] and index["has_vllm"]


def test_off_switch_disables_everything(tmp_path):
    result = python(INDEX_PROBE, cwd=tmp_path, ACBENCH_DISABLE_HOOK="1")
    assert result["ours"] == []
    assert not result["has_acbench_hf"]
    assert result["has_hf"]


def test_user_include_path_overrides_ours(tmp_path, index):
    name = index["ours"][0]
    user_tasks = tmp_path / "mine"
    user_tasks.mkdir()
    (user_tasks / "override.yaml").write_text(
        textwrap.dedent(
            f"""\
            task: {name}
            dataset_path: json
            output_type: generate_until
            doc_to_text: "{{{{q}}}}"
            doc_to_target: "{{{{a}}}}"
            """
        )
    )
    code = f"""
    import json
    from lm_eval.tasks import TaskManager
    tm = TaskManager(include_path={str(user_tasks)!r})
    print(json.dumps({{"path": str(tm._index[{name!r}].yaml_path),
                      "still_ours": sorted(n for n in tm.all_tasks if n.startswith("acbench"))}}))
    """
    result = python(code, cwd=tmp_path)
    assert result["path"] == str(user_tasks / "override.yaml")
    assert set(result["still_ours"]) == set(index["ours"])


def test_failing_callback_warns_and_leaves_the_module_usable(tmp_path, monkeypatch):
    (tmp_path / "acbench_probe_target.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def broken(module):
        raise RuntimeError("simulated incompatibility")

    finder = _hook._PostImportFinder({"acbench_probe_target": broken})
    sys.meta_path.insert(0, finder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import acbench_probe_target  # noqa: F401

        assert acbench_probe_target.VALUE == 42
        assert any("simulated incompatibility" in str(w.message) for w in caught)
        assert finder not in sys.meta_path, "a finder with nothing left to hook must remove itself"
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        sys.modules.pop("acbench_probe_target", None)


def test_callback_runs_after_the_module_body(tmp_path, monkeypatch):
    (tmp_path / "acbench_probe_order.py").write_text("STATE = ['body']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = _hook._PostImportFinder({"acbench_probe_order": lambda m: m.STATE.append("callback")})
    sys.meta_path.insert(0, finder)
    try:
        import acbench_probe_order

        assert acbench_probe_order.STATE == ["body", "callback"]
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        sys.modules.pop("acbench_probe_order", None)


def test_import_is_light(tmp_path):
    result = python(
        """
        import json, sys
        import lm_eval_acbench, lm_eval_acbench.cli
        heavy = [m for m in ("torch", "transformers", "lm_eval", "datasets", "numpy") if m in sys.modules]
        print(json.dumps({"heavy": heavy}))
        """,
        cwd=tmp_path,
    )
    assert result["heavy"] == []
