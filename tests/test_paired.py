"""The report's answer: paired bootstrap intervals, detectable change, pairing by doc id, the
function-calling split, and the answer section on lm-eval-shaped samples logs."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_eval_acbench.analysis import paired
from lm_eval_acbench.analysis.report import write_report


def test_constant_paired_difference_has_a_zero_width_interval():
    base = [0.2, 0.5, 0.9, 0.0, 1.0]
    stat = paired.paired_bootstrap([(base, [b - 0.1 for b in base])], seed=3)
    assert stat["diff"] == pytest.approx(-0.1)
    assert stat["low"] == pytest.approx(-0.1) and stat["high"] == pytest.approx(-0.1)
    assert stat["excludes_zero"]
    assert stat["drop_pct"] == pytest.approx(0.1 / statistics.mean(base) * 100)


def test_interval_matches_the_normal_approximation_on_a_symmetric_case():
    # Differences +1 and -1, 200 each: mean 0, sd ~1, so the 95 % interval is about +-1.96/sqrt(400).
    base = [0.0] * 200 + [1.0] * 200
    comp = [1.0] * 200 + [0.0] * 200
    stat = paired.paired_bootstrap([(base, comp)], resamples=4000, seed=0)
    half = 1.96 * statistics.stdev([c - b for b, c in zip(base, comp)]) / math.sqrt(400)
    assert stat["low"] == pytest.approx(-half, abs=0.015) and stat["high"] == pytest.approx(half, abs=0.015)
    assert not stat["excludes_zero"]
    assert stat == paired.paired_bootstrap([(base, comp)], resamples=4000, seed=0)  # seeded


def test_strata_are_averaged_by_task_not_pooled_by_item():
    stat = paired.paired_bootstrap([([1.0] * 10, [0.0] * 10), ([0.0] * 2, [0.0] * 2)], seed=0)
    assert stat["base"] == pytest.approx(0.5) and stat["diff"] == pytest.approx(-0.5)


def test_detectable_effect_follows_its_formula():
    base = [0.0, 1.0] * 50
    expected = (1.959963984540054 + 0.8416212335729143) * math.sqrt(2 * statistics.variance(base) / len(base))
    assert paired.detectable_effect([base]) == pytest.approx(expected)
    assert paired.detectable_effect([[0.5]]) is None
    assert paired.detectable_effect([[1.0, 1.0, 1.0]]) is None  # no variance, no claim
    # More items, smaller detectable change.
    assert paired.detectable_effect([base * 4]) < paired.detectable_effect([base])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30), st.integers(0, 10))
def test_interval_holds_the_observed_difference(pairs, seed):
    base, comp = [b for b, _ in pairs], [c for _, c in pairs]
    stat = paired.paired_bootstrap([(base, comp)], resamples=300, seed=seed)
    assert stat["low"] - 1e-9 <= stat["high"] + 1e-9
    assert min(c - b for b, c in pairs) - 1e-9 <= stat["low"] and stat["high"] <= max(c - b for b, c in pairs) + 1e-9


def test_function_calling_irrelevance_is_its_own_headline_row():
    assert paired.headline_group("acbench_function_call_simple", "function_call") == "function_call: calls"
    assert paired.headline_group("acbench_function_call_live_irrelevance", "function_call") == "function_call: irrelevance"
    assert paired.headline_group("acbench_workflow_os", "workflow") == "workflow"


def _samples(folder, task, rows, *, metric="accuracy", source="hf:x", stamp="2026-01-01T00-00-00"):
    """An lm-eval samples log: rows are (doc_id, doc_hash, score)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"doc_id": doc, "doc": {"acbench_data_source": source}, "filter": "none",
                         "metrics": [metric, "parse_rate"], "doc_hash": h, metric: score, "parse_rate": 1.0})
             for doc, h, score in rows]
    lines.append(json.dumps({"doc_id": 0, "filter": "other", "metrics": [metric], metric: 99.0}))
    (folder / f"samples_{task}_{stamp}.jsonl").write_text("\n".join(lines) + "\n")


def test_items_pair_by_doc_id_and_document(tmp_path):
    _samples(tmp_path / "b", "t", [(0, "h0", 1.0), (1, "h1", 0.0), (2, "h2", 1.0), (3, "h3", 1.0)])
    _samples(tmp_path / "c", "t", [(3, "h3", 0.0), (2, "CHANGED", 0.0), (0, "h0", 1.0), (1, "h1", 1.0)])
    base, notes_b = paired.read_item_scores(tmp_path / "b")
    comp, _ = paired.read_item_scores(tmp_path / "c")
    assert notes_b == [] and base["t"].metric == "accuracy" and 99.0 not in base["t"].scores.values()
    b, c, unpaired = paired.pair_items(base["t"], comp["t"])
    assert (b, c, unpaired) == ([1.0, 0.0, 1.0], [1.0, 1.0, 0.0], 1)


def test_report_opens_on_the_answer_with_intervals_in_the_csv(tmp_path):
    good = [(i, f"h{i}", 1.0 if i % 4 else 0.0) for i in range(40)]
    broken = [(i, f"h{i}", 0.0) for i in range(40)]
    for label, call_rows in (("base", good), ("w4", good), ("pruned", broken)):
        run = tmp_path / label
        _samples(run, "acbench_function_call_simple", call_rows, source="sample:bfcl")
        # Never calling passes irrelevance: every model scores 1 there.
        _samples(run, "acbench_function_call_irrelevance", [(i, f"i{i}", 1.0) for i in range(10)], source="sample:bfcl")
        results = {t: {"accuracy,none": 0.0} for t in ("acbench_function_call_simple", "acbench_function_call_irrelevance")}
        (run / "results_2026-01-01T00-00-00.json").write_text(json.dumps({"results": results}))
    report = write_report({"base": tmp_path / "base", "w4": tmp_path / "w4", "pruned": tmp_path / "pruned"},
                          tmp_path / "rep")
    md = report.read_text()
    assert md.index("## Answer") < md.index("## Models")
    rows = {(r["capability"], r["model"]): r for r in csv.DictReader((tmp_path / "rep" / "paired.csv").open())}
    calls = rows[("function_call: calls", "pruned")]
    assert float(calls["diff"]) == pytest.approx(-0.75) and calls["excludes 0"] == "True"
    assert float(calls["ci_high"]) < 0 and float(calls["drop %"]) == pytest.approx(100.0)
    assert calls["data"] == "sample set" and int(calls["items"]) == 40
    same = rows[("function_call: calls", "w4")]
    assert float(same["diff"]) == 0.0 and same["excludes 0"] == "False"
    assert float(rows[("function_call: irrelevance", "pruned")]["diff"]) == 0.0
    assert float(calls["MDE (95 %, 80 % power)"]) == pytest.approx(paired.detectable_effect([[r[2] for r in good]]))
    assert (tmp_path / "rep" / "paired_drops.png").stat().st_size > 1000
    assert "sample set" in md and "-0.750 [" in md


def test_native_tool_calls_are_scored_by_accuracy_fixed():
    names = ["accuracy", "accuracy_fixed", "parse_rate", "tools_in_template"]
    native = {"accuracy": 0.0, "accuracy_fixed": 1.0, "tools_in_template": 1.0}
    prompted = {"accuracy": 0.0, "accuracy_fixed": 1.0, "tools_in_template": 0.0}
    assert paired.primary_score(native, names) == (paired.NATIVE_CALLS, 1.0)
    assert paired.primary_score(prompted, names) == (paired.NATIVE_CALLS, 0.0)
    assert paired.primary_score({"node_f1": 0.5}, ["node_f1", "parse_rate"]) == ("node_f1", 0.5)
