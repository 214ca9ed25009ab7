"""Plain helpers for tests (import with ``from helpers import ...``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ACBENCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when that real data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


def served_env() -> dict:
    """Environment for ``lm_eval`` against ``tests/openai_server.py`` on 127.0.0.1 (no proxy, offline)."""
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    return {"OPENAI_API_KEY": "dummy", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "NO_PROXY": no_proxy, "no_proxy": no_proxy}


def run_lm_eval(args: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> dict:
    """Run the real ``lm_eval`` command line in ``cwd``; return results and logged samples.

    Returns ``{"results": <results json>, "samples": {task: [sample, ...]}, "stdout": str}``.
    Fails the test with lm_eval's output when the command fails.
    """
    out_dir = cwd / "lm_eval_out"
    cmd = [sys.executable, "-m", "lm_eval", *args, "--output_path", str(out_dir), "--log_samples"]
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if done.returncode != 0:
        pytest.fail(f"lm_eval failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    results_files = sorted(out_dir.rglob("results_*.json"))
    assert results_files, f"no results file under {out_dir}:\n{done.stderr[-3000:]}"
    samples: dict[str, list[dict]] = {}
    for path in out_dir.rglob("samples_*.jsonl"):
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {
        "results": json.loads(results_files[-1].read_text()),
        "samples": samples,
        "stdout": done.stdout,
        "stderr": done.stderr,
    }
