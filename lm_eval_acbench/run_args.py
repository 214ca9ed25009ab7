"""Values of the lm-eval run in progress that lm-eval does not hand to tasks.

* ``--gen_kwargs``: lm-eval applies it to task configs only after the tasks (and their data sets)
  are built, but LongBench's middle truncation and NIAH's length grid are fixed at data-set
  build time and must leave room for ``max_gen_toks`` (:func:`max_gen_toks`).
* ``--apply_chat_template NAME``: tasks get only ``bool(NAME)``; the name selects the template
  message-list prompts are rendered with (:func:`chat_template_name`).

``episodes.patch_evaluator`` (the start-up hook) records them around ``simple_evaluate`` and
``evaluate``; outside a run both are unset.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

_run: dict[str, Any] = {"gen_kwargs": None, "chat_template": None}


@contextmanager
def recorded(**values: Any) -> Iterator[None]:
    """Record ``gen_kwargs`` / ``chat_template`` for the duration of a call (nested calls restore)."""
    unknown = set(values) - set(_run)
    if unknown:
        raise TypeError(f"unknown run values: {sorted(unknown)}")
    previous = {key: _run[key] for key in values}
    _run.update(values)
    try:
        yield
    finally:
        _run.update(previous)


def gen_kwargs() -> dict:
    """This run's ``--gen_kwargs`` as a dict (lm-eval's ``key=value,...`` string parsed)."""
    value = _run["gen_kwargs"]
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str) and value.strip():
        from lm_eval.utils import simple_parse_args_string

        return simple_parse_args_string(value)
    return {}


def max_gen_toks(default: int) -> int:
    """``max_gen_toks`` as lm-eval will send it: ``--gen_kwargs``' value, else the task's ``default``."""
    value = gen_kwargs().get("max_gen_toks")
    try:
        return int(value) if value is not None else int(default)
    except (TypeError, ValueError):
        return int(default)


def chat_template_name() -> str | None:
    """The chat template named by ``--apply_chat_template NAME`` in this run, if any."""
    value = _run["chat_template"]
    return value if isinstance(value, str) and value.strip() else None
