"""Every compression method on the tiny model: compress, reload, and check from the weights
that the manifest tells the truth. Slow (llmcompressor's calibration runs for real).

The checks here read the safetensors themselves (with compressed-tensors' unpacker) instead of
trusting lm_eval_acbench.compress.measure, and one test runs the real ``lm_eval`` CLI on the
SparseGPT 2:4 + GPTQ W4A16 checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import run_lm_eval

from lm_eval_acbench.compress import BUILTIN_RECIPES, compress_model, load_recipe

pytestmark = pytest.mark.slow

CALIB = {"calibration": "acbench-sample", "num_samples": 4, "seq_len": 32}


@pytest.fixture(scope="module")
def made(tiny_model_dir, tmp_path_factory):
    """name -> checkpoint folder, each compressed once per test module."""
    root = tmp_path_factory.mktemp("compressed")
    cache: dict[str, Path] = {}

    def get(name: str, **overrides) -> Path:
        key = name + json.dumps(overrides, sort_keys=True)
        if key not in cache:
            recipe = load_recipe(name).model_dump(mode="json")
            recipe["perplexity"] = {"windows": 1, "seq_len": 32}
            for step in recipe["steps"]:
                step.update({k: v for k, v in overrides.items() if k in step})
                if step["method"] == "awq":
                    step["n_grid"] = 5  # a coarser scale search keeps the test short
            cache[key] = compress_model(tiny_model_dir, recipe, root / f"{name}-{len(cache)}", **CALIB)
        return cache[key]

    return get


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for file in folder.glob("*.safetensors"):
        out.update(load_file(str(file)))
    return out


def _linear_weights(folder: Path, bits: int | None) -> dict:
    """name -> (integer or float weight, zero mask, group size or None), read from the files."""
    import torch
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    tensors = _tensors(folder)
    out = {}
    for key, value in tensors.items():
        if key.endswith(".weight_packed"):
            base = key[: -len(".weight_packed")]
            shape = torch.Size(tensors[base + ".weight_shape"].tolist())
            ints = unpack_from_int32(value, bits, shape).to(torch.int32)
            scale = tensors[base + ".weight_scale"]
            assert base + ".weight_zero_point" not in tensors, "symmetric schemes store no zero point"
            out[base] = (ints, ints == 0, shape[1] // scale.shape[1])
        elif key.endswith(".weight") and value.dim() == 2 and "embed" not in key and "lm_head" not in key:
            base = key[: -len(".weight")]
            if value.dtype == torch.float8_e4m3fn:  # fp8 stored as is, one scale per output channel
                out[base] = (value, value.float() == 0, value.shape[1])
            elif base + ".weight_scale" in tensors:  # int8 stored unpacked
                ints = value.to(torch.int32)
                out[base] = (ints, ints == 0, value.shape[1] // tensors[base + ".weight_scale"].shape[1])
            else:
                out[base] = (value, value == 0, None)
    assert out, f"no Linear weights found in {folder}"
    return out


def _reloads_and_runs(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The river carries sediment towards the sea", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
        generated = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert torch.isfinite(logits).all()
    assert generated.shape[1] == ids["input_ids"].shape[1] + 3


def _check(folder: Path, *, bits=None, group=None, sparsity=None, nm=None, fp8=False, nf4_block=None) -> dict:
    import torch

    manifest = json.loads((folder / "acbench_manifest.json").read_text())
    assert manifest["complete"] is True
    summary, layers = manifest["measured"]["summary"], manifest["measured"]["layers"]
    weights = _linear_weights(folder, None if fp8 or nf4_block else bits)
    assert set(layers) == set(weights)
    zeros = total = 0
    for name, (w, zero, group_size) in weights.items():
        if fp8:
            assert w.dtype == torch.float8_e4m3fn and layers[name]["weight_dtype"] == "float8_e4m3fn", name
        elif nf4_block:
            from lm_eval_acbench.analysis.fake_quant import NF4_CODE

            blocks = w.float().reshape(-1, nf4_block)
            absmax = blocks.abs().amax(-1, keepdim=True)
            code = torch.tensor(NF4_CODE)
            gap = (blocks.unsqueeze(-1) - code * absmax.unsqueeze(-1)).abs().amin(-1)
            assert (gap <= 1e-6 * absmax.clamp(min=1)).all(), f"{name}: a value off the NF4 grid"
            most = max(len(set(block.tolist())) for block in blocks)
            assert most <= 16 and layers[name]["max_distinct_per_block"] == most, name
        elif bits is not None:
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            assert lo <= int(w.min()) and int(w.max()) <= hi, name
            assert group_size == group == layers[name]["group_size"], name
            blocks = w.reshape(w.shape[0], -1, group_size)
            most = max(len(set(block.tolist())) for row in blocks for block in row)
            assert most <= 2**bits and most == layers[name]["max_distinct_per_group"], name
        if nm is not None:
            n, m = nm
            assert ((~zero).reshape(zero.shape[0], -1, m).sum(-1) <= n).all(), f"{name} breaks {n}:{m}"
        fraction = zero.float().mean().item()
        assert layers[name]["sparsity"] == pytest.approx(fraction), name
        zeros += int(zero.sum())
        total += zero.numel()
    assert summary["overall_sparsity"] == pytest.approx(zeros / total)
    if sparsity is not None:
        assert zeros / total == pytest.approx(sparsity, abs=0.02)
    if fp8:
        assert summary["bits_found"] == [8] and summary["weight_dtypes_found"] == ["float8_e4m3fn"]
    elif nf4_block:
        assert summary["fake_quant_bits_found"] == [4] and summary["fake_quant_max_distinct_per_block"] <= 16
    elif bits is not None:
        assert summary["bits_found"] == [bits] and summary["group_sizes_found"] == [group]
    if nm is not None:
        assert summary["nm_pattern_holds"] is True
    assert manifest["calibration"].get("tokens_sha256") or manifest["calibration"] == {"used": False}
    ppl = manifest["perplexity"]
    assert math.isfinite(ppl["before"]) and math.isfinite(ppl["after"])
    for key in ("wall_time_s", "memory", "versions", "steps", "recipe"):
        assert manifest[key]
    _reloads_and_runs(folder)
    return manifest


@pytest.mark.parametrize("name", ["rtn_w4a16", "gptq_w4a16", "awq_w4a16"])
def test_quantizers_w4_group128(made, name):
    manifest = _check(made(name), bits=4, group=128)
    assert manifest["calibration"].get("num_samples") == (4 if name != "rtn_w4a16" else None)


def test_gptq_w8_per_group_64(made):
    _check(made("gptq_w8a16", group_size=64), bits=8, group=64)


def _lm_head_sparsity(folder: Path) -> float:
    return float((_tensors(folder)["lm_head.weight"] == 0).float().mean())


@pytest.mark.parametrize("name", ["wanda_50", "sparsegpt_50", "magnitude_50"])
def test_pruners_unstructured_50(made, name):
    manifest = _check(made(name), sparsity=0.5)
    assert _lm_head_sparsity(made(name)) < 0.01  # ignore: [lm_head] holds for llmcompressor's pruners too
    assert manifest["measured"]["summary"]["format"] in ("dense", "sparse-bitmask", None) or manifest["measured"]["summary"]["layers_quantized"] == 0


@pytest.mark.parametrize("name", ["sparsegpt_2of4", "wanda_2of4", "magnitude_2of4"])
def test_pruners_2of4(made, name):
    _check(made(name), sparsity=0.5, nm=(2, 4))


def test_sparsegpt_2of4_then_gptq_keeps_the_pattern(made):
    folder = made("sparsegpt_2of4_gptq_w4a16")
    manifest = _check(folder, bits=4, group=128, nm=(2, 4))
    # GPTQ's error feedback never touched a pruned weight: none needed zeroing afterwards
    assert manifest["pruned_weights_refilled_by_quantization"] == 0
    assert manifest["sparsity_mask_through_quantization"].startswith("gptq error feedback restricted")
    sparsity = json.loads((folder / "config.json").read_text())["quantization_config"]["sparsity_config"]
    assert sparsity["sparsity_structure"] == "2:4"
    assert sparsity["global_sparsity"] == pytest.approx(manifest["measured"]["summary"]["overall_sparsity"])


@pytest.mark.parametrize("name", ["wanda_50", "sparsegpt_2of4", "magnitude_50"])
def test_every_pruner_records_its_sparsity_config(made, name):
    folder = made(name)
    config = json.loads((folder / "config.json").read_text())
    measured = json.loads((folder / "acbench_manifest.json").read_text())["measured"]["summary"]["overall_sparsity"]
    assert config["sparsity_config"]["global_sparsity"] == pytest.approx(measured)
    assert config["sparsity_config"]["sparsity_structure"] == ("2:4" if "2of4" in name else "unstructured")


@pytest.mark.parametrize("name, bits, group", [
    ("gptq_w8a8", 8, 256), ("smoothquant_gptq_w8a8", 8, 256), ("rtn_w2a16", 2, 128), ("rtn_w3a16", 3, 128),
    ("gptq_w3a16", 3, 128), ("rtn_w8a16", 8, 128),
])
def test_int_recipes_measure_the_bits_they_asked_for(made, name, bits, group):
    folder = made(name)
    if name.endswith("w8a8"):  # per output channel: one scale per row; layers differ in width
        manifest = json.loads((folder / "acbench_manifest.json").read_text())
        summary = manifest["measured"]["summary"]
        assert summary["bits_found"] == [8] and summary["input_activations"]["num_bits"] == 8
        assert summary["input_activations"]["dynamic"] is True and summary["input_activations"]["strategy"] == "token"
        assert all(layer["groups_per_row"] == 1 for layer in manifest["measured"]["layers"].values())
        _reloads_and_runs(folder)
        return
    _check(folder, bits=bits, group=group)


def test_fp8_dynamic(made):
    manifest = _check(made("fp8_dynamic"), fp8=True)
    activations = manifest["measured"]["summary"]["input_activations"]
    assert (activations["type"], activations["num_bits"], activations["dynamic"]) == ("float", 8, True)


def test_nf4_fake_quantization(made):
    manifest = _check(made("nf4"), nf4_block=64)
    assert manifest["calibration"] == {"used": False}


@pytest.mark.parametrize("name, bits, kind", [("kv_fp8", 8, "float"), ("kv_int4", 4, "int")])
def test_kv_cache_schemes(made, name, bits, kind):
    manifest = json.loads((made(name) / "acbench_manifest.json").read_text())
    summary = manifest["measured"]["summary"]
    assert summary["kv_cache_scheme"]["num_bits"] == bits and summary["kv_cache_scheme"]["type"] == kind
    layers = json.loads((made(name) / "config.json").read_text())["num_hidden_layers"]
    assert summary["kv_scales_stored"] == 2 * layers  # one K and one V scale per attention layer
    _reloads_and_runs(made(name))


def _smoke_task(folder: Path) -> None:
    docs = [
        {"question": "Water that falls on high ground gathers in", "choices": [" small channels", " purple numbers"], "answer": 0},
        {"question": "To make soup, chop one", "choices": [" onion", " bicycle"], "answer": 0},
        {"question": "A byte is a group of eight binary", "choices": [" digits", " rivers"], "answer": 0},
        {"question": "Bees communicate through a", "choices": [" waggle dance", " spreadsheet"], "answer": 0},
    ]
    (folder / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (folder / "smoke.yaml").write_text(
        "task: acbench_compress_smoke\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'docs.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{question}}'\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{answer}}'\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )


def test_checkpoint_runs_under_lm_eval_hf(made, tmp_path):
    # one real CLI run (each takes minutes on a busy CPU): the quantized + 2:4 checkpoint, the
    # format that differs most from a plain HF folder; dense pruned folders reload above.
    folder = made("sparsegpt_2of4_gptq_w4a16")
    _smoke_task(tmp_path)
    result = run_lm_eval(
        ["--model", "hf", "--model_args", f"pretrained={folder}", "--tasks", "acbench_compress_smoke",
         "--include_path", str(tmp_path), "--device", "cpu", "--batch_size", "4"],
        cwd=tmp_path,
    )
    acc = result["results"]["results"]["acbench_compress_smoke"]["acc,none"]
    assert 0.0 <= acc <= 1.0
    samples = result["samples"]["acbench_compress_smoke"]
    assert len(samples) == 4
    for sample in samples:
        for resp in sample["filtered_resps"]:
            assert math.isfinite(float(resp[0]))
    assert str(folder) in json.dumps(result["results"]["config"])


@pytest.mark.parametrize("name, scheme", [("gptq_w8a8", "activations"), ("fp8_dynamic", "activations"),
                                          ("kv_fp8", "kv"), ("kv_int4", "kv")])
def test_activation_and_kv_schemes_act_under_hf_on_cpu(made, tmp_path, name, scheme):
    """Not only stored: with the scheme removed from config.json the same weights give other logits."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    folder = made(name)
    stripped = tmp_path / "stripped"
    shutil.copytree(folder, stripped)
    config = json.loads((stripped / "config.json").read_text())
    qconfig = config["quantization_config"]
    if scheme == "kv":
        assert qconfig["kv_cache_scheme"]
        qconfig["kv_cache_scheme"] = None
    else:
        for group in qconfig["config_groups"].values():
            assert group["input_activations"]["dynamic"] is True
            group["input_activations"] = None
    (stripped / "config.json").write_text(json.dumps(config))
    ids = torch.randint(0, 500, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with_scheme = AutoModelForCausalLM.from_pretrained(folder)(input_ids=ids).logits
        without = AutoModelForCausalLM.from_pretrained(stripped)(input_ids=ids).logits
    assert torch.isfinite(with_scheme).all()
    assert (with_scheme - without).abs().max() > 1e-4


def _expected_from_recipe(name: str) -> dict:
    """What the recipe asks for, read from the recipe itself (not a second table kept here)."""
    recipe = load_recipe(name)
    quant, prune = recipe.quant_step, recipe.prune_step
    out: dict = {}
    if quant is not None:
        out["bits"] = quant.bits
        out["nf4"] = quant.method == "nf4"
        out["fp8"] = getattr(quant, "weight_type", "int") == "fp8"
        out["group"] = None if out["nf4"] else quant.group_size
        out["activations"] = getattr(quant, "activations", "none")
        out["kv_bits"] = getattr(quant, "kv_cache_bits", None)
    if prune is not None:
        out["nm"] = prune.nm
        out["sparsity"] = 1 - prune.nm[0] / prune.nm[1] if prune.nm else prune.sparsity
    return out


@pytest.fixture(scope="module")
def smoke_tasks(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    folder = tmp_path_factory.mktemp("smoke-task")
    _smoke_task(folder)
    return TaskManager(include_path=str(folder))


@pytest.mark.parametrize("name", sorted(BUILTIN_RECIPES))
def test_every_recipe_reloads_under_lm_eval_hf_and_measures_what_it_asked(made, smoke_tasks, name):
    """Each built-in recipe on the tiny model: lm-eval's ``hf`` model (what ``lm_eval --model hf``
    builds) scores the checkpoint, and the manifest's measured bits / sparsity are the recipe's."""
    from lm_eval import simple_evaluate

    folder = made(name)
    manifest = json.loads((folder / "acbench_manifest.json").read_text())
    summary, layers = manifest["measured"]["summary"], manifest["measured"]["layers"]
    want = _expected_from_recipe(name)
    assert manifest["complete"] is True and layers
    if "bits" in want:
        if want["nf4"]:
            assert summary["fake_quant_bits_found"] == [4] and summary["fake_quant_max_distinct_per_block"] <= 16
        else:
            assert summary["bits_found"] == [want["bits"]]
            if want["fp8"]:
                assert summary["weight_dtypes_found"] == ["float8_e4m3fn"]
            if want["group"] is None:  # per output channel: one scale per row
                # fp8 layers are measured without groups_per_row: their group is the whole row
                widths = {base: w.shape[1] for base, (w, _, _) in _linear_weights(folder, None if want["fp8"] else want["bits"]).items()}
                assert all(layer.get("groups_per_row", 1) == 1 and layer["group_size"] == widths[base]
                           for base, layer in layers.items())
            else:  # the tiny model's widths are multiples of 128: no group-size adjustment
                assert summary["group_sizes_found"] == [want["group"]]
        if want["activations"] != "none":
            kind, bits = ("float", 8) if want["activations"] == "fp8" else ("int", 8)
            acts = summary["input_activations"]
            assert (acts["type"], acts["num_bits"], acts["dynamic"]) == (kind, bits, True)
        else:
            assert not summary.get("input_activations")
        if want["kv_bits"] is not None:
            assert summary["kv_cache_scheme"]["num_bits"] == want["kv_bits"]
        else:
            assert not summary.get("kv_cache_scheme")
    else:
        assert not summary["bits_found"] and not summary.get("fake_quant_bits_found")
    if "sparsity" in want:
        assert summary["overall_sparsity"] == pytest.approx(want["sparsity"], abs=0.02)
        if want["nm"]:
            assert summary["nm_pattern_holds"] is True
    else:
        assert summary["overall_sparsity"] < 0.75  # quantization zeros only (int2 rounds most to zero)

    result = simple_evaluate(model="hf", model_args=f"pretrained={folder}", tasks=["acbench_compress_smoke"],
                             task_manager=smoke_tasks, device="cpu", batch_size=4, log_samples=True)
    assert 0.0 <= result["results"]["acbench_compress_smoke"]["acc,none"] <= 1.0
    samples = result["samples"]["acbench_compress_smoke"]
    assert len(samples) == 4
    assert all(math.isfinite(float(resp[0])) for sample in samples for resp in sample["filtered_resps"])
    assert str(folder) in json.dumps(result["config"], default=str)
