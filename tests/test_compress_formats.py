"""Fast checks of the pieces behind the new recipes: the NF4 recipe against the code
book, GPTQ with a kept sparsity mask against llmcompressor's own GPTQ, measuring checkpoints
made elsewhere (compressed-tensors, AutoGPTQ-packed), and held-out perplexity on real text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import shared_data_path

from lm_eval_acbench.errors import UserError

WIKITEXT_TEST = "calibration/data/wikitext-2-raw/wiki.test.raw"


# ---- NF4 -----------------------------------------------------------------------------------

def test_nf4_recipe_writes_code_book_values_and_measures_them(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from lm_eval_acbench.analysis.fake_quant import NF4_CODE
    from lm_eval_acbench.compress import compress_model, load_recipe

    recipe = load_recipe("nf4").model_dump(mode="json")
    recipe["perplexity"] = {"windows": 1, "seq_len": 32}
    out = compress_model(tiny_model_dir, recipe, tmp_path / "nf4", calibration="acbench-sample")
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    assert manifest["measured"]["summary"]["fake_quant_bits_found"] == [4]
    code = torch.tensor(NF4_CODE)
    tensors = load_file(str(out / "model.safetensors"))
    for name, layer in manifest["measured"]["layers"].items():
        blocks = tensors[name + ".weight"].float().reshape(-1, 64)
        absmax = blocks.abs().amax(-1, keepdim=True)
        gap = (blocks.unsqueeze(-1) - code * absmax.unsqueeze(-1)).abs().amin(-1)
        assert (gap <= 1e-6 * absmax.clamp(min=1)).all(), name
        assert layer["max_distinct_per_block"] == max(len(set(b.tolist())) for b in blocks) <= 16
    assert "lm_head.weight" not in manifest["measured"]["layers"]


# ---- GPTQ with a kept sparsity mask ---------------------------------------------------------

def _gptq_inputs(rows=16, cols=64, group=16, zero_fraction=0.0, actorder=None, seed=0):
    import torch
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.utils import calculate_qparams

    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator)
    if zero_fraction:
        groups = weight.reshape(rows, cols // 4, 4)
        drop = torch.topk(groups.abs(), 2, dim=-1, largest=False).indices
        groups.scatter_(-1, drop, 0.0)  # 2:4, as SparseGPT leaves it
        weight = groups.reshape(rows, cols)
    x = torch.randn(256, cols, generator=generator)
    hessian = 2 * x.t() @ x / x.shape[0]
    args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=group, actorder=actorder)
    blocks = weight.reshape(rows, cols // group, group)
    scale, zero_point = calculate_qparams(blocks.amin(-1), blocks.amax(-1), args)
    return weight, hessian, scale, zero_point, args


def test_masked_gptq_equals_llmcompressor_gptq_on_a_dense_weight():
    import torch
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    from lm_eval_acbench.compress.sparse_gptq import masked_quantize_weight

    weight, hessian, scale, zero_point, args = _gptq_inputs()
    ours = masked_quantize_weight(weight[None].clone(), hessian[None].clone(), scale[None], zero_point[None], None, args, 32, 0.01)
    theirs = quantize_weight(weight[None].clone(), hessian[None].clone(), scale[None], zero_point[None], None, args, 32, 0.01)
    assert torch.allclose(ours[0], theirs[0], atol=1e-5) and torch.allclose(ours[1], theirs[1], rtol=1e-4)


@pytest.mark.parametrize("actorder", [None, "weight"])
def test_masked_gptq_keeps_pruned_weights_zero_and_on_grid(actorder):
    import torch
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    from lm_eval_acbench.compress.sparse_gptq import masked_quantize_weight

    weight, _, scale, zero_point, args = _gptq_inputs(zero_fraction=0.5, actorder=actorder)
    generator = torch.Generator().manual_seed(1)
    # correlated inputs (as in real layers): a strong off-diagonal Hessian, where GPTQ's feedback
    # is large enough to push pruned weights off zero
    x = torch.randn(256, 64, generator=generator) @ (torch.eye(64) + torch.randn(64, 64, generator=generator))
    hessian = 2 * x.t() @ x / x.shape[0]
    pruned = weight == 0
    ours, _, _ = masked_quantize_weight(weight[None].clone(), hessian[None].clone(), scale[None], zero_point[None], None, args, 32, 0.01)
    ours = ours[0]
    assert (ours[pruned] == 0).all()
    assert ((ours != 0) == ~pruned).float().mean() > 0.9  # kept weights mostly stay nonzero
    # on the grid: every value is an integer multiple of its group's scale
    steps = ours.reshape(16, -1, 16) / scale.reshape(16, -1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= 8
    plain, _, _ = quantize_weight(weight[None].clone(), hessian[None].clone(), scale[None], zero_point[None], None, args, 32, 0.01)
    assert (plain[0][pruned] != 0).any()  # the trap: plain GPTQ refills pruned weights


# ---- measuring checkpoints made elsewhere ------------------------------------------------------

def _pack_gptq(ints, bits):
    """AutoGPTQ's layout: qweight (in*bits/32, out) int32, lowest bits first along the input."""
    import torch

    per_word = 32 // bits
    values = ints.t().contiguous().to(torch.int64)  # in x out
    rows = values.shape[0] // per_word
    packed = torch.zeros(rows, values.shape[1], dtype=torch.int64)
    for k in range(per_word):
        packed |= values[k::per_word] << (bits * k)
    return packed.to(torch.uint32).view(torch.int32) if hasattr(torch, "uint32") else packed.to(torch.int32)


def test_measure_autogptq_packed_folder(tmp_path):
    import torch
    from safetensors.torch import save_file

    from lm_eval_acbench.compress.existing import measure_existing, unpack_int32

    torch.manual_seed(0)
    out_features, in_features, group = 8, 64, 32
    ints = torch.randint(0, 16, (out_features, in_features), dtype=torch.int32)
    ints[:, :group] = torch.randint(3, 9, (out_features, group), dtype=torch.int32)  # group 0: 6 values
    qweight = _pack_gptq(ints, 4)
    assert torch.equal(unpack_int32(qweight, 4, dim=0).t(), ints)
    save_file({
        "model.layers.0.mlp.up_proj.qweight": qweight,
        "model.layers.0.mlp.up_proj.qzeros": torch.zeros(in_features // group, out_features // 8, dtype=torch.int32),
        "model.layers.0.mlp.up_proj.scales": torch.ones(in_features // group, out_features, dtype=torch.float16),
        "model.embed_tokens.weight": torch.zeros(4, in_features),
    }, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": group, "sym": True},
    }))
    path = measure_existing(tmp_path, ppl=False)
    manifest = json.loads(path.read_text())
    layer = manifest["measured"]["layers"]["model.layers.0.mlp.up_proj"]
    assert manifest["measured_only"] and manifest["measured"]["summary"]["bits_found"] == [4]
    assert layer["group_size"] == group and layer["shape"] == [out_features, in_features]
    assert layer["max_distinct_per_group"] == max(
        len(set(ints[r, g * group:(g + 1) * group].tolist())) for r in range(out_features) for g in range(2))
    with pytest.raises(UserError, match="exists"):
        measure_existing(tmp_path, ppl=False)
    # perplexity needs a tokenizer and a loadable model: this folder has neither, one line each way
    (tmp_path / "acbench_manifest.json").unlink()
    with pytest.raises(UserError, match="tokenizer"):
        measure_existing(tmp_path, ppl=True, ppl_text=_text_file(tmp_path), windows=1, seq_len=8)
    assert not (tmp_path / "acbench_manifest.json").exists()


def _text_file(folder: Path) -> Path:
    path = folder / "text.txt"
    path.write_text("The river carries sediment to the sea, and the sea returns it as sand. " * 40)
    return path


def test_cli_measure_our_own_checkpoint_without_its_manifest(tiny_model_dir, tmp_path, capsys):
    from lm_eval_acbench.cli import main
    from lm_eval_acbench.compress import compress_model

    recipe = {"steps": [{"method": "rtn", "bits": 4, "group_size": 64}], "perplexity": {"windows": 1, "seq_len": 32}}
    made = compress_model(tiny_model_dir, recipe, tmp_path / "rtn", calibration="acbench-sample")
    original = json.loads((made / "acbench_manifest.json").read_text())
    (made / "acbench_manifest.json").unlink()
    out = tmp_path / "measured.json"
    assert main(["compress", "--measure", str(made), "--out", str(out), "--ppl-text", str(_text_file(tmp_path)),
                 "--ppl-windows", "2", "--ppl-seq-len", "32"]) == 0
    measured = json.loads(out.read_text())
    assert measured["measured"]["summary"] == original["measured"]["summary"]
    assert measured["perplexity"]["after"] > 1 and measured["heldout"]["windows"] == 2
    assert "bits [4]" in capsys.readouterr().out
    assert main(["compress", "--measure", str(tmp_path / "nowhere")]) == 1
    assert "no config.json" in capsys.readouterr().err


# ---- held-out perplexity on real text ---------------------------------------------------------

def test_perplexity_on_eight_windows_of_wikitext2_test(tiny_model_dir, tmp_path):
    from lm_eval_acbench.compress import compress_model
    from lm_eval_acbench.compress.calibration import file_sha256

    wiki = shared_data_path(WIKITEXT_TEST)
    recipe = {"steps": [{"method": "magnitude", "sparsity": 0.5}], "perplexity": {"windows": 8, "seq_len": 64}}
    out = compress_model(tiny_model_dir, recipe, tmp_path / "mag", ppl_text=wiki)
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    held = manifest["heldout"]
    assert held["windows"] == 8 and held["seq_len"] == 64 and held["source"] == str(Path(wiki).resolve())
    assert held["revision"] == "sha256:" + file_sha256(Path(wiki)) and held["tokens_available"] > 100_000
    assert 1 < manifest["perplexity"]["before"] < float("inf")


def test_wikitext2_test_file_as_calibration_gives_disjoint_windows(tiny_model_dir):
    from transformers import AutoTokenizer

    from lm_eval_acbench.compress.calibration import draw_windows, heldout_windows, load_text, tokenize_source

    source = load_text(shared_data_path(WIKITEXT_TEST), 0)
    calib, held = tokenize_source(AutoTokenizer.from_pretrained(tiny_model_dir), source)
    windows = draw_windows(calib, 32, 512, seed=0)
    assert windows.info["num_samples"] == 32 and source.revision.startswith("sha256:")
    assert len({tuple(w) for w in windows.windows}) == 32
    assert len(heldout_windows(held, 8, 512).windows) == 8
