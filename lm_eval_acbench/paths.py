"""Where the package's own files live, in a wheel install and in a source checkout."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = PACKAGE_DIR / "samples"


def task_dir() -> Path:
    """The folder of acbench's lm-eval YAML tasks (inside the wheel, or the checkout's root)."""
    installed = PACKAGE_DIR / "task_yamls"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "task_yamls"


def cache_dir() -> Path:
    """Per-user cache for fetched models and derived files (``$ACBENCH_CACHE`` overrides)."""
    override = os.environ.get("ACBENCH_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lm_eval_acbench"
