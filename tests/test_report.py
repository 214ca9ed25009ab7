"""``acbench report`` / write_report on lm-eval-shaped results folders and an analysis folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lm_eval_acbench.analysis.report import write_report


def _run(folder, scores: dict, source="sample:worfbench", nested=True, extra_task=True):
    sub = folder / "model__name" if nested else folder
    sub.mkdir(parents=True)
    results = {t: {"alias": t, "node_f1,none": v, "node_f1_stderr,none": 0.01, "parse_rate,none": 1.0}
               for t, v in scores.items()}
    (sub / "results_2026-01-01T00-00-00.json").write_text(json.dumps({
        "results": results, "group_subtasks": {}, "configs": {}}))
    for task in scores:
        line = {"doc_id": 0, "doc": {"acbench_data_source": source, "x": 1}, "node_f1": 0.5}
        (sub / f"samples_{task}_2026-01-01T00-00-00.jsonl").write_text(json.dumps(line) + "\n")
    if extra_task:  # a second results file for another task (merged)
        (sub / "results_2026-01-02T00-00-00.json").write_text(json.dumps({
            "results": {"acbench_realworld_babyai": {"alias": "b", "progress_rate,none": 0.4}}}))
    return folder


def test_tables_changes_drops_and_notes(tmp_path):
    base = _run(tmp_path / "base", {"acbench_workflow_os": 0.8, "acbench_workflow_alfworld": 0.5})
    comp = _run(tmp_path / "gptq", {"acbench_workflow_os": 0.6}, extra_task=False)
    report = write_report({"base": base, "gptq_w4": comp}, tmp_path / "rep")
    md = report.read_text()
    rows = list(csv.DictReader((tmp_path / "rep" / "scores.csv").open()))
    os_row = next(r for r in rows if r["task"] == "acbench_workflow_os" and r["metric"] == "node_f1,none")
    assert os_row["data"] == "sample:worfbench (SAMPLE)"
    assert float(os_row["base"]) == 0.8 and float(os_row["gptq_w4"]) == 0.6
    assert float(os_row["gptq_w4 change"]) == pytest.approx(-0.2)
    assert float(os_row["gptq_w4 drop %"]) == pytest.approx(25.0)
    assert os_row["capability"] == "workflow"
    alf = next(r for r in rows if r["task"] == "acbench_workflow_alfworld" and r["metric"] == "node_f1,none")
    assert alf["gptq_w4"] == "" and alf["gptq_w4 drop %"] == ""  # missing cell stays blank
    assert "acbench_workflow_alfworld: no node_f1,none for gptq_w4" in md
    assert "ran on acbench's sample set (sample:worfbench)" in md
    assert "| realworld | acbench_realworld_babyai | progress_rate,none |" in md  # merged 2nd results file
    assert any(r["task"] == "acbench_realworld_babyai" and r["capability"] == "realworld" for r in rows)
    caps = list(csv.DictReader((tmp_path / "rep" / "capabilities.csv").open()))
    wf = next(r for r in caps if r["capability"] == "workflow")
    assert float(wf["base"]) == pytest.approx(0.65) and wf["gptq_w4"] == ""  # incomplete: blank
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<table>" in html and "+25.0" in html


def test_report_with_analysis_embeds_images(tmp_path):
    from lm_eval_acbench.analysis import analyze_runs
    from lm_eval_acbench.analysis.logio import write_synthetic

    rng = np.random.default_rng(0)
    logits = {("t", d): rng.normal(size=(10, 60)) for d in range(4)}
    noisy = {k: z + rng.normal(scale=0.5, size=z.shape) for k, z in logits.items()}
    write_synthetic(tmp_path / "lb", logits, model="b", top_k=24)
    write_synthetic(tmp_path / "lc", noisy, model="c", top_k=24)
    an = analyze_runs(tmp_path / "lb", {"noisy": tmp_path / "lc"}, tmp_path / "an")
    base = _run(tmp_path / "base", {"acbench_workflow_os": 0.8}, source="local")
    report = write_report({"base": base, "noisy": base}, tmp_path / "rep", analysis_dir=an)
    md = report.read_text()
    for png in ("analysis_erank.png", "analysis_rankcorr.png", "analysis_energy_position.png", "analysis_energy.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
        assert f"({png})" in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "Diff-eRank" in md and "sample set" not in md
    rows = list(csv.DictReader((tmp_path / "rep" / "analysis.csv").open()))
    assert rows[0]["model"] == "noisy" and -1 <= float(rows[0]["tau@10"]) <= 1


def test_report_cli_errors_and_missing_results(tmp_path, capsys):
    from lm_eval_acbench.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["report", f"base={tmp_path / 'empty'}", "--out", str(tmp_path / "r")]) == 0
    assert "no results_*.json" in (tmp_path / "r" / "report.md").read_text()
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty"), "--base", "zzz", "--out", str(tmp_path / "r3")]) == 1


def test_niah_heatmap_is_drawn_from_the_samples_log(tmp_path):
    run = _run(tmp_path / "base", {"acbench_niah": 0.5}, source="sample:niah", extra_task=False)
    lines = [json.dumps({"doc_id": i, "doc": {"context_length": length, "depth_percent": depth,
                                              "acbench_data_source": "sample:niah"},
                         "recall": float(depth < 50), "resps": [["x"]], "filtered_resps": ["x"]})
             for i, (length, depth) in enumerate([(1000, 0), (1000, 50), (2000, 0), (2000, 50)])]
    path = next((run / "model__name").glob("samples_acbench_niah_*.jsonl"))
    path.write_text("\n".join(lines) + "\n")
    (run / "model__name" / "samples_acbench_niah_2026-01-03T00-00-00.jsonl").write_text("not json\n")
    report = write_report({"base": run}, tmp_path / "rep")
    md = report.read_text()
    assert "## Needle in a haystack" in md
    pngs = sorted((tmp_path / "rep").glob("niah_base_acbench_niah*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000
    assert "NIAH heatmap for base/acbench_niah not drawn" in md  # the broken log: a note, no crash


def test_data_column_reads_the_results_files_provenance(tmp_path):
    run = _run(tmp_path / "base", {"acbench_function_call_simple": 0.5}, source="", extra_task=False)
    results = next((run / "model__name").glob("results_*.json"))
    content = json.loads(results.read_text())
    content["acbench_data"] = {"acbench_function_call_simple": {"source": "package:bfcl-eval", "rows": 400}}
    results.write_text(json.dumps(content))
    for log in (run / "model__name").glob("samples_*.jsonl"):
        log.unlink()  # a run without --log_samples still says where its data came from
    write_report({"base": run}, tmp_path / "rep")
    rows = list(csv.DictReader((tmp_path / "rep" / "scores.csv").open()))
    assert {r["data"] for r in rows} == {"package:bfcl-eval"}
    assert "SAMPLE" not in (tmp_path / "rep" / "report.md").read_text()
