"""Where function-calling records come from: a BFCL folder or our sample set."""

from __future__ import annotations

import json

import pytest
from helpers import shared_data_path

from lm_eval_acbench import data
from lm_eval_acbench.tasks.function_call import category_files, load_category, read_category


def test_sample_set_records_are_tagged():
    split = load_category("parallel", data_source="sample")["test"]
    assert len(split) >= 2
    row = split[0]
    assert row["acbench_data_source"] == "sample:bfcl" and row["category"] == "parallel"
    assert isinstance(data.doc_json(row, "functions"), list) and len(data.doc_json(row, "ground_truth")) >= 2


def test_real_folder_through_data_dir():
    root = shared_data_path("bfcl").parent
    split = load_category("live_parallel", data_dir=str(root))["test"]
    assert len(split) == 16 and split[0]["acbench_data_source"].startswith("local:")
    assert category_files(root / "bfcl", "simple")[0].name == "BFCL_v4_simple_python.json"


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(data.DataUnavailable, match="no BFCL_v4_multiple.json"):
        read_category(tmp_path, "multiple")
    (tmp_path / "BFCL_v4_multiple.json").write_text(
        json.dumps({"id": "m0", "question": [[{"role": "user", "content": "hi"}]], "function": []})
        + "\n{broken\n"
    )
    with pytest.raises(data.DataUnavailable, match="missing"):
        read_category(tmp_path, "multiple")
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "possible_answer" / "BFCL_v4_multiple.json").write_text(
        json.dumps({"id": "m0", "ground_truth": [{"f": {}}]}) + "\n"
    )
    assert [r["id"] for r in read_category(tmp_path, "multiple")] == ["m0"]
    # v3 names are read too; irrelevance needs no answers.
    (tmp_path / "BFCL_v3_irrelevance.json").write_text(
        json.dumps({"id": "i0", "question": [[{"role": "user", "content": "hi"}]], "function": [{"name": "f"}]})
    )
    assert read_category(tmp_path, "irrelevance")[0]["ground_truth"] == []
