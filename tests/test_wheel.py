"""A built wheel: our sub-packages inside lm_eval_acbench, the start-up hook at the top, nothing
generic at the top level, and plain lm-eval finding our tasks from the installed files."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

from helpers import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("lm_eval_acbench-*.whl")
    return path


@pytest.mark.slow
def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"lm_eval_acbench", "lm_eval_acbench_hook.pth"}
    for inside in ("lm_eval_acbench/compress/__init__.py", "lm_eval_acbench/analysis/__init__.py"):
        assert inside in names
    assert any(n.startswith("lm_eval_acbench/task_yamls/") and n.endswith(".yaml") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[lm_eval.tasks]" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_installed_wheel_hooks_plain_lm_eval(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # -S: no site processing, so the development install's .pth files stay out; the wheel's
    # own directory is added as a site dir (which runs its .pth hook), the dependencies by path.
    code = textwrap.dedent(
        f"""
        import json, site, sys
        site.addsitedir({str(target)!r})
        sys.path.append({sysconfig.get_paths()["purelib"]!r})
        import lm_eval_acbench, lm_eval_acbench.compress
        from lm_eval.tasks import TaskManager
        tm = TaskManager()
        ours = [n for n in tm.all_tasks if n.startswith("acbench")]
        print(json.dumps({{"pkg": lm_eval_acbench.__file__, "compress": lm_eval_acbench.compress.__file__,
                          "ours": ours, "yaml": str(tm._index[ours[0]].yaml_path) if ours else None}}))
        """
    )
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["pkg"].startswith(str(target))
    assert result["compress"].startswith(str(target / "lm_eval_acbench" / "compress"))
    assert result["ours"], "no acbench task visible from the installed wheel"
    assert result["yaml"].startswith(str(target / "lm_eval_acbench" / "task_yamls"))
