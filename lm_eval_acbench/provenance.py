"""Per-task data provenance in lm-eval's results file, and sample runs that never look real.

acbench's loaders attach a provenance dict to each dataset they return (see
:func:`lm_eval_acbench.data.as_split`): source (``local``, ``hub``, ``package`` or ``sample``),
folder / repo id / distribution, revision, rows read, rows dropped by reason (first ids), the
sources passed over and why, and the benchmark's prompt files where it has any. This module
wraps ``lm_eval.evaluator.evaluate`` (installed by the start-up hook, beside the episode loop) so
that

* before the run, each acbench task's config metadata gets ``acbench_data_source`` (shown in the
  results file's ``configs``), and a task that runs on acbench's sample set gets its
  ``version`` suffixed with ``+sample`` (so ``versions`` differ from benchmark runs);
* after the run, the results dict (and so the results file) gets ``acbench_data``:
  ``{task: provenance + the embedding model that scored it}`` (``embedding_model`` is null for
  tasks that do not embed; ``embedding_stand_in`` is true when the stand-in was used).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

RESULTS_KEY = "acbench_data"
SAMPLE_VERSION_SUFFIX = "+sample"
EMBEDDING_TASK_PREFIXES = ("acbench_workflow", "acbench_teval_plan", "acbench_teval_reason")


def iter_tasks(task_dict: Any):
    """``(name, task)`` for every task object in lm-eval's task dict (new or nested layout)."""
    if not isinstance(task_dict, dict):
        return
    if isinstance(task_dict.get("tasks"), dict):
        yield from task_dict["tasks"].items()
        return
    for key, value in task_dict.items():
        if isinstance(value, dict):
            yield from iter_tasks(value)
        elif hasattr(value, "config"):
            yield str(getattr(value.config, "task", None) or key), value


def task_provenance(task) -> dict | None:
    """The provenance attached to a task's evaluation split, if acbench loaded it."""
    from lm_eval_acbench.data import provenance_of

    dataset = getattr(task, "dataset", None)
    if not isinstance(dataset, dict):
        return None
    split = getattr(task.config, "test_split", None) or getattr(task.config, "validation_split", None)
    for name in ([split] if split else []) + list(dataset):
        found = provenance_of(dataset.get(name))
        if found is not None:
            return dict(found)
    return None


def embedding_used(task_name: str, task) -> dict:
    """The embedding model a task's scores came from (null when the task does not embed)."""
    if not task_name.startswith(EMBEDDING_TASK_PREFIXES):
        return {"embedding_model": None}
    try:
        from lm_eval_acbench import embeddings
    except Exception:  # pragma: no cover - numpy missing
        return {"embedding_model": None}
    metadata = getattr(task.config, "metadata", None) or {}
    requested = metadata.get("embedding_model") or os.environ.get(embeddings.EMBEDDING_MODEL_ENV) \
        or embeddings.DEFAULT_MODEL
    reported = embeddings.resolved_models().get(str(requested))
    return {"embedding_model": reported,
            "embedding_stand_in": bool(reported and reported == embeddings.STAND_IN_MODEL
                                       and str(requested) in embeddings.DEFAULT_NAMES)}


def mark_tasks(task_dict: Any) -> dict[str, dict]:
    """Tag each acbench task's metadata with its data source; ``{task: provenance}``."""
    found = {}
    for name, task in iter_tasks(task_dict):
        provenance = task_provenance(task)
        if provenance is None:
            continue
        found[name] = provenance
        metadata = getattr(task.config, "metadata", None)
        if isinstance(metadata, dict):
            metadata["acbench_data_source"] = provenance.get("source")
            if provenance.get("is_sample"):
                version = str(metadata.get("version", getattr(task, "VERSION", "")) or "")
                if not version.endswith(SAMPLE_VERSION_SUFFIX):
                    metadata["version"] = version + SAMPLE_VERSION_SUFFIX
                    task.VERSION = metadata["version"]
    return found


def patch_evaluator(module) -> None:
    """Start-up hook for ``lm_eval.evaluator``: record data provenance around ``evaluate``."""
    original = module.evaluate
    if getattr(original, "_acbench_provenance", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def evaluate(*args, **kwargs):
        try:
            task_dict = signature.bind_partial(*args, **kwargs).arguments.get("task_dict")
            found = mark_tasks(task_dict)
        except Exception as exc:  # provenance must never cost a run
            log.warning("acbench: could not read data provenance (%s: %s)", type(exc).__name__, exc)
            task_dict, found = None, {}
        results = original(*args, **kwargs)
        if isinstance(results, dict) and found:
            tasks = dict(iter_tasks(task_dict))
            results[RESULTS_KEY] = {name: dict(prov, **embedding_used(name, tasks[name]))
                                    for name, prov in found.items()}
        return results

    evaluate._acbench_provenance = True  # type: ignore[attr-defined]
    module.evaluate = evaluate
