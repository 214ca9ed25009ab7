"""Studies: models x compression recipes x tasks, run resumably (``acbench run``, ``acbench demo``).

* :mod:`.config`    the typed study file (unknown keys are errors)
* :mod:`.plan`      the cells of a study and their dependencies
* :mod:`.stages`    the four stage functions: compress, evaluate, analyze, report
* :mod:`.runner`    one cell with its done-marker, error record and timing; the study driver
* :mod:`.executors` in-process (one by one) or Ray (one Ray task per cell)

Light on purpose: nothing heavy is imported until a study runs.
"""

from __future__ import annotations

__all__ = ["load_study", "run_study"]


def load_study(*args, **kwargs):
    from lm_eval_acbench.study.config import load_study as _load

    return _load(*args, **kwargs)


def run_study(*args, **kwargs):
    from lm_eval_acbench.study.runner import run_study as _run

    return _run(*args, **kwargs)
