"""Analysis of compressed models: logit logs, ERank, top-k ranking correlation, Energy, reports.

Installed as ``lm_eval_acbench.analysis``. The metric modules (``erank``, ``rankcorr``,
``energy``) are pure numpy/scipy; ``logio`` reads and writes the logit log (pyarrow);
``analyze`` lines runs up and streams them; ``report`` writes tables and plots.
"""

from __future__ import annotations

from pathlib import Path


def analyze_runs(base: Path, compressed: dict, out: Path, **settings) -> Path:
    """Analyse compressed logit logs against a base log; see :func:`.analyze.analyze_runs`."""
    from .analyze import analyze_runs as _analyze_runs

    return _analyze_runs(Path(base), {k: Path(v) for k, v in compressed.items()}, Path(out), **settings)


__all__ = ["analyze_runs"]
