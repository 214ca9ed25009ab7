"""lm_eval_acbench.embeddings: model resolution, the chunk assembly, and embed()'s contract."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest

from lm_eval_acbench import embeddings

MINILM = embeddings.STAND_IN_MODEL


@pytest.fixture
def fresh_resolution(monkeypatch):
    """Forget earlier resolutions (the cache is per process) and restore them afterwards."""
    monkeypatch.setattr(embeddings, "_resolved", {})
    monkeypatch.delenv(embeddings.EMBEDDING_MODEL_ENV, raising=False)
    yield


def test_resolution_order(fresh_resolution, monkeypatch, tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert embeddings.resolve_embedding_model(str(folder)) == str(folder)
    monkeypatch.setenv(embeddings.EMBEDDING_MODEL_ENV, "all-MiniLM-L6-v2")
    assert embeddings.resolve_embedding_model() == MINILM
    assert embeddings.resolve_embedding_model("some-org/other-model") == "some-org/other-model"


@pytest.fixture
def no_default_model(fresh_resolution, monkeypatch, tmp_path):
    """No chunk packages, an empty acbench cache and HF cache, hub offline."""
    from lm_eval_acbench import data

    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path / "acbench-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(embeddings, "_MPNET_PARTS", ["no-such-dist-part-001"])
    monkeypatch.setattr(embeddings, "_hub_snapshot", lambda repo, download: None)
    monkeypatch.setattr(data, "_fallback_allowed_by_run", False)
    monkeypatch.delenv(data.ALLOW_FALLBACK_ENV, raising=False)


def test_missing_default_fails_with_one_line_unless_allowed(no_default_model):
    with pytest.raises(embeddings.EmbeddingModelUnavailable, match="allow_fallback") as caught:
        embeddings.resolve_embedding_model()
    assert "\n" not in str(caught.value)
    assert embeddings.resolved_models() == {}  # nothing was silently chosen


def test_allowed_default_falls_back_to_stand_in_with_warning(no_default_model, monkeypatch):
    from lm_eval_acbench import data

    monkeypatch.setenv(data.ALLOW_FALLBACK_ENV, "1")
    with pytest.warns(RuntimeWarning, match="stand-in"):
        chosen = embeddings.resolve_embedding_model()
    assert chosen == MINILM
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert embeddings.resolve_embedding_model() == MINILM  # warned once, then cached
    assert embeddings.resolved_models() == {embeddings.DEFAULT_MODEL: MINILM}


def test_assemble_chunks_into_model_folder(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("all-mpnet-base-v2/modules.json", "[]")
        bundle.writestr("all-mpnet-base-v2/1_Pooling/config.json", '{"a": 1}')
        bundle.writestr("all-mpnet-base-v2/desktop.ini", "junk")
        bundle.writestr("all-mpnet-base-v2/model.safetensors", b"\x00" * 5000)
    data = buffer.getvalue()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for i in range(3):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(data[cut[i]:cut[i + 1]])
        parts.append(part)
    target = tmp_path / "cache" / "all-mpnet-base-v2"
    embeddings._assemble_mpnet(parts, target)
    assert (target / "modules.json").read_text() == "[]"
    assert (target / "1_Pooling" / "config.json").read_text() == '{"a": 1}'
    assert (target / "model.safetensors").stat().st_size == 5000
    assert not (target / "desktop.ini").exists()
    assert not list(target.parent.glob(".assemble-*"))  # the scratch folder is gone


def test_embed_contract_with_stand_in():
    texts = ["Open the fridge", "Take out the milk", "Open the fridge", "Pour a glass", ""]
    calls = []
    encoder = embeddings._load(embeddings._resolve(MINILM)[1])
    original = encoder.encode

    def counting_encode(sentences, **kwargs):
        calls.append(list(sentences))
        return original(sentences, **kwargs)

    encoder.encode = counting_encode
    try:
        vectors = embeddings.embed(texts, model=MINILM, batch_size=2)
    finally:
        del encoder.encode
    assert calls == [["Open the fridge", "Take out the milk", "Pour a glass", ""]]
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    similarity = vectors @ vectors.T
    assert similarity[0, 1] < 0.99 and similarity[0, 3] < 0.99
    alone = embeddings.embed(["Pour a glass"], model=MINILM)
    np.testing.assert_allclose(alone[0], vectors[3], atol=1e-5)
    assert embeddings.embed([], model=MINILM).shape == (0, 384)


def test_stored_embed_keeps_rows_on_disk_and_never_trusts_a_wrong_file(tmp_path, monkeypatch):
    texts = ["Open the fridge", "Take out the milk", "Open the fridge", "Pour a glass"]
    calls = []
    real_embed = embeddings.embed

    def counting_embed(batch, model=None, batch_size=embeddings.BATCH_SIZE):
        calls.append(list(batch))
        return real_embed(batch, model=model, batch_size=batch_size)

    monkeypatch.setattr(embeddings, "embed", counting_embed)
    first = embeddings.stored_embed(texts, model=MINILM, root=tmp_path)
    np.testing.assert_array_equal(first, real_embed(["Open the fridge", "Take out the milk", "Pour a glass"],
                                                    model=MINILM)[[0, 1, 0, 2]])
    (stored,) = tmp_path.rglob("*.npz")
    assert calls == [["Open the fridge", "Take out the milk", "Pour a glass"]]
    again = embeddings.stored_embed(texts, model=MINILM, root=tmp_path)
    assert len(calls) == 1  # read back, not embedded
    np.testing.assert_array_equal(again, first)
    # Another set of texts is another file; a file whose texts differ, or a broken one, is redone.
    embeddings.stored_embed(["Pour a glass"], model=MINILM, root=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.rglob("*.npz"))) == 2
    stored.write_bytes(b"not a zip")
    np.testing.assert_array_equal(embeddings.stored_embed(texts, model=MINILM, root=tmp_path), first)
    assert len(calls) == 3
    (other,) = [f for f in tmp_path.rglob("*.npz") if f != stored]
    other.replace(stored)  # rows of other texts under this file's name
    np.testing.assert_array_equal(embeddings.stored_embed(texts, model=MINILM, root=tmp_path), first)
    assert len(calls) == 4
    # A changed model file is another model key; off with ACBENCH_VECTOR_STORE=0; a hub name is
    # never stored (what it loads can change under the same name).
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    key = embeddings._store_folder(str(folder), tmp_path)
    (folder / "config.json").write_text('{"changed": 1}')
    assert embeddings._store_folder(str(folder), tmp_path) != key
    assert embeddings._store_folder("some-org/some-model", tmp_path) is None
    monkeypatch.setenv(embeddings.VECTOR_STORE_ENV, "0")
    assert embeddings._store_folder(str(folder), None) is None
    monkeypatch.setenv(embeddings.VECTOR_STORE_ENV, str(tmp_path / "elsewhere"))
    assert embeddings._store_folder(str(folder), None).parent == tmp_path / "elsewhere"


@pytest.mark.slow
def test_default_model_from_pypi_chunks():
    if embeddings._mpnet_dir() is None:
        pytest.skip("all-mpnet-base-v2 chunk packages not installed")
    assert embeddings.resolve_embedding_model(embeddings.DEFAULT_MODEL) == embeddings.DEFAULT_MODEL
    vectors = embeddings.embed(["Boil the water", "Heat the water", "File a tax return"],
                               model=embeddings.DEFAULT_MODEL)
    assert vectors.shape == (3, 768)
    assert vectors[0] @ vectors[1] > 0.6 > vectors[0] @ vectors[2]
