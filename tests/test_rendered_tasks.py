"""The message-list task classes (T-Eval, function calling) as lm-eval builds them."""

from __future__ import annotations

import pytest

from lm_eval_acbench.paths import task_dir


def test_building_the_groups_never_looks_metrics_up_in_hf_evaluate(monkeypatch):
    # Our metrics come from the classes' process_results; lm-eval's fallback lookup of unknown
    # metric names goes to the network (HF `evaluate`) and costs ~1.5 s per metric offline.
    import lm_eval.api.task
    from lm_eval.tasks import TaskManager

    def no_lookup(name, *args, **kwargs):
        pytest.fail(f"lm-eval looked metric {name!r} up instead of using process_results")

    monkeypatch.setattr(lm_eval.api.task, "get_metric", no_lookup)
    manager = TaskManager(include_path=str(task_dir()), include_defaults=False,
                          metadata={"data_source": "sample"})
    loaded = manager.load(["acbench_function_call_simple", "acbench_teval_instruct"])
    for name, task in loaded["tasks"].items():
        doc = next(iter(task.test_docs()))
        scores = task.process_results(doc, ["not a tool call"])
        # every declared metric is produced (T-Eval hands per-sample records to its aggregations)
        assert set(scores) == {m["metric"] for m in task.config.metric_list}, name
