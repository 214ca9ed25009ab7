"""Where task records come from: settings precedence, local folders, hub fallback, broken rows."""

from __future__ import annotations

import json

import pytest

from lm_eval_acbench import data, hub


def folder_reader(path):
    return [dict(row) for row in data.read_json(path / "items.json")]


def make_folder(root, benchmark, items):
    folder = root / benchmark
    folder.mkdir(parents=True)
    (folder / "items.json").write_text(json.dumps(items))
    return folder


@pytest.fixture
def sample_root(tmp_path, monkeypatch):
    root = tmp_path / "samples"
    make_folder(root, "bench", [{"id": "s1"}])
    monkeypatch.setattr(data, "SAMPLES_DIR", root)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(data.DATA_SOURCE_ENV, raising=False)
    return root


def load(metadata, from_hub=None):
    return data.load_records("bench", metadata, from_folder=folder_reader, from_hub=from_hub, hub_id="org/bench")


def test_metadata_data_dir_wins_over_environment(tmp_path, sample_root, monkeypatch):
    make_folder(tmp_path / "env", "bench", [{"id": "env"}])
    make_folder(tmp_path / "meta", "bench", [{"id": "meta"}])
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    records, source = load({"data_dir": str(tmp_path / "meta")})
    assert [r["id"] for r in records] == ["meta"]
    assert source.kind == "local"
    assert records[0][data.SOURCE_FIELD] == f"local:{tmp_path / 'meta' / 'bench'}"


def test_data_dir_may_be_the_benchmark_folder_itself(tmp_path, sample_root):
    folder = make_folder(tmp_path, "bench", [{"id": "direct"}])
    records, _ = load({"data_dir": str(folder)})
    assert records[0]["id"] == "direct"


def test_hub_failure_falls_back_to_the_sample_and_says_so(sample_root, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(hub, "unreachable_reason", lambda: None)  # reachable, but the request fails

    def unreachable():
        raise ConnectionError("no route to hub")

    records, source = load({}, from_hub=unreachable)
    assert source.is_sample
    assert records[0][data.SOURCE_FIELD] == "sample:bench"
    assert "SAMPLE" in caplog.text


def test_hub_is_used_when_reachable(sample_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(hub, "unreachable_reason", lambda: None)
    records, source = load({}, from_hub=lambda: [{"id": "hub"}])
    assert (records[0]["id"], str(source)) == ("hub", "hub:org/bench")


def test_explicit_hub_source_reports_failure_instead_of_falling_back(sample_root):
    def unreachable():
        raise ConnectionError("down")

    with pytest.raises(data.DataUnavailable, match="cannot load org/bench"):
        load({"data_source": "hub"}, from_hub=unreachable)


def test_unreachable_hub_is_not_asked(sample_root, monkeypatch):
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    monkeypatch.setattr(hub, "unreachable_reason", lambda: "cannot connect to huggingface.co:443")

    def must_not_be_called():
        raise AssertionError("hub contacted although the probe failed")

    records, source = load({}, from_hub=must_not_be_called)
    assert source.is_sample


def test_offline_auto_goes_straight_to_the_sample(sample_root):
    def must_not_be_called():
        raise AssertionError("hub contacted while HF_HUB_OFFLINE=1")

    records, source = load({}, from_hub=must_not_be_called)
    assert source.is_sample


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"data_source": "local"}, "needs a folder"),
        ({"data_source": "elsewhere"}, "must be one of"),
        ({"data_dir": "/nonexistent/acbench"}, "does not exist"),
    ],
)
def test_bad_settings_give_clear_errors(sample_root, metadata, message):
    with pytest.raises(data.DataUnavailable, match=message):
        load(metadata)


def test_broken_jsonl_rows_are_skipped(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1, 2]\n\n{"a": 2}\n')
    assert [row["a"] for row in data.iter_jsonl(path)] == [1, 2]
    assert "broken row" in caplog.text
    with pytest.raises(data.DataUnavailable, match="missing data file"):
        list(data.iter_jsonl(tmp_path / "absent.jsonl"))


def test_as_split_stores_nested_values_as_json_and_reads_them_back():
    split = data.as_split([{"id": 1, "tools": [{"name": "f"}]}, {"id": 2, "tools": {"odd": [1, "x"]}}])
    docs = list(split["test"])
    assert data.doc_json(docs[0], "tools") == [{"name": "f"}]
    assert data.doc_json(docs[1], "tools") == {"odd": [1, "x"]}
    with pytest.raises(data.DataUnavailable):
        data.as_split([])
