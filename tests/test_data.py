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


def test_unreachable_hub_switches_to_offline_and_still_reads_the_cache(sample_root, monkeypatch):
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    monkeypatch.setattr(hub, "unreachable_reason", lambda: "cannot connect to huggingface.co:443")
    seen = []

    def cache_reader():
        seen.append(hub.offline_requested())
        return [{"id": "cached"}]

    records, source = load({}, from_hub=cache_reader)
    assert seen == [True]  # asked once, in offline mode (cache only)
    assert (records[0]["id"], source.kind) == ("cached", "hub")


def test_offline_cache_miss_falls_back_to_the_sample_and_names_why(sample_root, caplog):
    def cache_miss():
        raise FileNotFoundError("not in the HF cache")

    records, source = load({}, from_hub=cache_miss)
    assert source.is_sample
    assert source.tried == ["hub org/bench: FileNotFoundError: not in the HF cache"]
    assert "SAMPLE" in caplog.text and "not in the HF cache" in caplog.text


def test_data_dir_without_the_benchmark_falls_through_to_the_hub(tmp_path, sample_root):
    make_folder(tmp_path / "root", "other", [{"id": "x"}])
    records, source = load({"data_dir": str(tmp_path / "root")}, from_hub=lambda: ([{"id": "hub"}], "abc123"))
    assert (records[0]["id"], str(source), source.revision) == ("hub", "hub:org/bench", "abc123")
    assert source.tried and source.tried[0].startswith(f"local {tmp_path / 'root'}")


def test_broken_benchmark_folder_is_an_error_not_a_fall_through(tmp_path, sample_root):
    folder = tmp_path / "root" / "bench"
    folder.mkdir(parents=True)
    (folder / "items.json").write_text("{broken")
    with pytest.raises(data.DataUnavailable, match="not valid JSON"):
        load({"data_dir": str(tmp_path / "root")}, from_hub=lambda: [{"id": "hub"}])


def test_per_benchmark_folder_wins_over_data_dir(tmp_path, sample_root, monkeypatch):
    make_folder(tmp_path / "shared", "bench", [{"id": "shared"}])
    own = make_folder(tmp_path / "mine", "bench", [{"id": "mine"}])
    records, _ = load({"data_dir": str(tmp_path / "shared"), "data_dirs": {"bench": str(own)}})
    assert records[0]["id"] == "mine"
    monkeypatch.setenv("ACBENCH_BENCH_DIR", str(own))
    records, _ = load({"data_dir": str(tmp_path / "shared")})
    assert records[0]["id"] == "mine"


def make_package(root, version="1.2.3", items=({"id": "pkg"},)):
    """An installed distribution ``bench-data`` (dist-info + data folder), as pip --target lays it out."""
    info = root / f"bench_data-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bench-data\nVersion: {version}\n")
    make_folder(root / "bench_data", "bench", list(items))
    (info / "RECORD").write_text("")
    return root


def test_installed_package_comes_after_the_hub_and_before_the_sample(tmp_path, sample_root, monkeypatch):
    monkeypatch.setenv(data.DATA_PACKAGES_ENV, str(make_package(tmp_path / "site")))

    def cache_miss():
        raise OSError("offline")

    records, source = data.load_records("bench", {}, from_folder=folder_reader, from_hub=cache_miss,
                                        hub_id="org/bench", package=("bench-data", "bench_data/bench"))
    assert (records[0]["id"], str(source), source.revision) == ("pkg", "package:bench-data", "1.2.3")
    assert [t.split(":")[0] for t in source.tried] == ["hub org/bench"]
    records, source = data.load_records("bench", {"data_source": "sample"}, from_folder=folder_reader,
                                        from_hub=None, hub_id="org/bench", package=("bench-data", "bench_data/bench"))
    assert source.is_sample


def test_missing_package_is_named_when_the_sample_stands_in(sample_root, monkeypatch):
    monkeypatch.delenv(data.DATA_PACKAGES_ENV, raising=False)
    records, source = data.load_records("bench", {}, from_folder=folder_reader, from_hub=None,
                                        hub_id="org/bench", package=("no-such-dist", "x"))
    assert source.is_sample and "package no-such-dist: not installed" in source.tried[0]
    with pytest.raises(data.DataUnavailable, match="no-such-dist is not installed"):
        data.load_records("bench", {"data_source": "package"}, from_folder=folder_reader, from_hub=None,
                          hub_id="org/bench", package=("no-such-dist", "x"))


def test_dropped_rows_are_counted_named_and_reported_once(tmp_path, sample_root, caplog):
    def reader(folder):
        kept = []
        for row in data.read_json(folder / "items.json"):
            if "q" not in row:
                data.drop(row["id"], "without a question")
                continue
            kept.append(row)
        return kept

    make_folder(tmp_path, "bench", [{"id": f"r{i}", **({"q": 1} if i % 3 == 0 else {})} for i in range(9)])
    records, source = data.load_records("bench", {"data_dir": str(tmp_path)}, from_folder=reader,
                                        from_hub=None, hub_id="org/bench")
    assert len(records) == source.rows == 3
    assert source.dropped == {"without a question": 6}
    assert source.dropped_ids["without a question"] == ["r1", "r2", "r4", "r5", "r7"]
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 1 and "6 of 9 rows" in lines[0] and "r1, r2" in lines[0]


def test_data_unavailable_is_a_user_error():
    from lm_eval_acbench.errors import UserError

    assert issubclass(data.DataUnavailable, UserError)


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"data_source": "local"}, "no local copy"),
        ({"data_source": "elsewhere"}, "must be one of"),
        ({"data_dir": "/nonexistent/acbench"}, "does not exist"),
    ],
)
def test_bad_settings_give_clear_errors(sample_root, metadata, message):
    with pytest.raises(data.DataUnavailable, match=message):
        load(metadata)


def test_broken_jsonl_rows_are_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1, 2]\n\n{"a": 2}\n')
    with data.dropped_rows("rows") as drops:
        assert [row["a"] for row in data.iter_jsonl(path)] == [1, 2]
    assert drops == {"not valid JSON": ["rows.jsonl:2"], "not a JSON object": ["rows.jsonl:3"]}
    assert "rows: dropped 2 rows" in caplog.text
    with pytest.raises(data.DataUnavailable, match="missing data file"):
        list(data.iter_jsonl(tmp_path / "absent.jsonl"))


def test_as_split_stores_nested_values_as_json_and_reads_them_back():
    split = data.as_split([{"id": 1, "tools": [{"name": "f"}]}, {"id": 2, "tools": {"odd": [1, "x"]}}])
    docs = list(split["test"])
    assert data.doc_json(docs[0], "tools") == [{"name": "f"}]
    assert data.doc_json(docs[1], "tools") == {"odd": [1, "x"]}
    with pytest.raises(data.DataUnavailable):
        data.as_split([])


def test_as_split_loads_mixed_scalar_types_and_keeps_provenance():
    source = data.DataSource("local", "/x", rows=3)
    split = data.as_split([{"id": 1, "flag": True}, {"id": "b2", "flag": 1}, {"id": 3.5, "flag": None}],
                          provenance=source)
    docs = list(split["test"])
    assert [d["id"] for d in docs] == ["1", "b2", "3.5"]
    assert [d["flag"] for d in docs] == ["True", "1", None]
    assert data.provenance_of(split["test"])["source"] == "local:/x"
    assert data.provenance_of(split["test"])["docs"] == 3


def test_as_split_keeps_ints_and_floats_numeric():
    docs = list(data.as_split([{"x": 1}, {"x": 2.5}])["test"])
    assert [d["x"] for d in docs] == [1.0, 2.5]
