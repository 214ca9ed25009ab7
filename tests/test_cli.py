"""The one `acbench` CLI: subcommands listed, each --help works, errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lm_eval_acbench.cli import SUBCOMMANDS, main


def acbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lm_eval_acbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_lists_every_subcommand_without_heavy_imports():
    code = (
        "import sys, contextlib, io\n"
        "from lm_eval_acbench.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(out.getvalue())\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    for name in ("model", "compress", "analyze", "report", "demo", "run", "logits"):
        assert name in done.stdout
    assert "HEAVY []" in done.stdout


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: acbench " + name in capsys.readouterr().out


def test_bad_model_name_is_one_clear_line(tmp_path):
    done = acbench("model", "fetch", "not a model name", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "neither a local folder nor a hub id" in done.stderr


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    done = acbench("model", "fetch", str(tmp_path))
    assert done.returncode == 1
    assert "no weights" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_subcommand_prints_help():
    done = acbench()
    assert done.returncode == 2
    assert "COMMAND" in done.stdout
