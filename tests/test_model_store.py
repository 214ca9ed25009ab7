"""`acbench model fetch`: local folders as they are, the offline SmolLM2 build, caching, atomicity."""

from __future__ import annotations

import json

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
