"""``acbench compress --measure DIR``: a manifest for a checkpoint acbench did not make.

Reads the folder's ``config.json`` and safetensors without loading a model: compressed-tensors
checkpoints go through :func:`.measure.measure_checkpoint`; GPTQ-format (AutoGPTQ / GPTQModel:
``qweight`` packed along the input dimension, ``qzeros``, ``scales``) and AWQ-format (AutoAWQ:
``qweight`` packed along the output dimension) layers are unpacked here and measured the same
way (integer range, bits needed, group size from the scales, most distinct values in one group,
zero fraction). Then, unless told not to, the folder is loaded with transformers (GPTQ/AWQ
formats need the ``gptq-format`` extra) and scored on the held-out windows. The manifest is
marked ``measured_only``: no recipe, no calibration of ours.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from lm_eval_acbench.errors import UserError

from .measure import _tensors, distinct_per_group, measure_checkpoint

PACKED_FORMATS = ("gptq", "awq")


def unpack_int32(packed, bits: int, dim: int):
    """Split every int32 of ``packed`` into ``32 // bits`` unsigned ``bits``-bit values along
    ``dim`` (lowest bits first, AutoGPTQ's order). Returns int32 values in [0, 2**bits)."""
    import torch

    per_word = 32 // bits
    mask = (1 << bits) - 1
    shifts = torch.arange(per_word, dtype=torch.int32) * bits
    values = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & mask  # (..., per_word)
    if dim == 0:  # rows hold per_word consecutive input positions each
        return values.permute(0, 2, 1).reshape(packed.shape[0] * per_word, packed.shape[1])
    return values.reshape(packed.shape[0], packed.shape[1] * per_word)


def _packed_layers(folder: Path, method: str, bits: int, skip: tuple[str, ...]) -> dict:
    tensors = _tensors(folder)
    layers = {}
    for key in sorted(tensors):
        if not key.endswith(".qweight") or any(s in key for s in skip):
            continue
        base = key[: -len(".qweight")]
        qweight = tensors[key].get_tensor(key)
        scales = tensors[base + ".scales"].get_tensor(base + ".scales") if base + ".scales" in tensors else None
        if scales is None:
            raise UserError(f"{folder}: {base} has a qweight but no scales: not a GPTQ/AWQ checkpoint")
        # GPTQ packs along the input dim (qweight: in*bits/32 x out); AWQ along the output dim
        ints = unpack_int32(qweight, bits, dim=0 if method == "gptq" else 1)  # in x out
        cols_in = ints.shape[0]
        groups = scales.shape[0]
        group_size = cols_in // groups if groups else cols_in
        by_row = ints.t().contiguous()  # out x in: groups run along a row, as in compressed-tensors
        lo, hi = int(ints.min()), int(ints.max())
        layers[base] = {
            "shape": [int(by_row.shape[0]), int(by_row.shape[1])],
            "int_min": lo,
            "int_max": hi,
            "bits_needed": max(1, math.ceil(math.log2(hi - lo + 1))),
            "group_size": group_size,
            "groups_per_row": groups,
            "max_distinct_per_group": distinct_per_group(by_row, group_size),
            "zero_point_stored": base + ".qzeros" in tensors,
            "scale_dtype": str(scales.dtype).replace("torch.", ""),
        }
    return layers


def _measure_packed(folder: Path, qconfig: dict, skip: tuple[str, ...]) -> dict:
    method = (qconfig.get("quant_method") or "").lower()
    bits = int(qconfig.get("bits") or qconfig.get("w_bit") or 4)
    if 32 % bits:
        raise UserError(f"{folder}: {bits}-bit {method} packing is not measured here (only 2, 4 and 8 bits)")
    layers = _packed_layers(folder, method, bits, skip)
    if not layers:
        raise UserError(f"{folder}: config says {method} but no '*.qweight' tensors were found")
    summary = {
        "format": method,
        "quant_method": method,
        "layers_measured": len(layers),
        "layers_quantized": len(layers),
        # a packed integer is never "zero": sparsity of packed layers is not measured
        "overall_sparsity": None,
        "bits_found": sorted({e["bits_needed"] for e in layers.values()}),
        "max_distinct_per_group": max(e["max_distinct_per_group"] for e in layers.values()),
        "group_sizes_found": sorted({e["group_size"] for e in layers.values()}),
        "zero_point_stored": any(e["zero_point_stored"] for e in layers.values()),
        "config_num_bits": bits,
        "config_group_size": qconfig.get("group_size") or qconfig.get("q_group_size"),
        "config_symmetric": qconfig.get("sym"),
    }
    return {"summary": summary, "layers": layers}


def measure_existing(folder: Path, *, out: Path | None = None, ppl: bool = True, ppl_text=None, windows: int = 8,
                     seq_len: int = 512, calibration=None, overwrite: bool = False, skip: tuple[str, ...] = ("lm_head",)) -> Path:
    """Measure ``folder`` and write its manifest (``folder/acbench_manifest.json`` or ``out``)."""
    from .runner import MANIFEST, MANIFEST_VERSION, _versions, perplexity

    started = time.time()
    folder = Path(folder).expanduser().resolve()
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UserError(f"{folder}: no config.json: not a Hugging Face model folder")
    if not any(folder.glob("*.safetensors")):
        raise UserError(f"{folder}: no *.safetensors weights (pickled .bin weights are never read)")
    target = Path(out).expanduser().resolve() if out else folder / MANIFEST
    if target.exists() and not overwrite:
        raise UserError(f"{target} exists; pass --overwrite to replace it")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_path}: not readable JSON ({exc})") from None
    qconfig = config.get("quantization_config") or {}
    method = (qconfig.get("quant_method") or "").lower()
    if method in PACKED_FORMATS:
        measured = _measure_packed(folder, qconfig, skip)
    else:
        measured = measure_checkpoint(folder, skip=skip)
    if not measured["layers"]:
        raise UserError(f"{folder}: no Linear weights found to measure")

    ppl_after, heldout = None, None
    if ppl:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .calibration import heldout_windows, load_heldout_text, load_text, token_ids, tokenize_source

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as exc:  # no tokenizer files, or ones transformers cannot build
            raise UserError(f"{folder}: no usable tokenizer for perplexity ({type(exc).__name__}: "
                            f"{(str(exc).strip().splitlines() or [''])[0][:200]}); or --no-ppl") from None
        if ppl_text is not None:
            text, heldout = load_heldout_text(ppl_text)
            tokens = token_ids(tokenizer, text)
        else:
            source = load_text(calibration, windows * seq_len * 8)
            _, tokens = tokenize_source(tokenizer, source)
            heldout = {"source": source.name, "revision": source.revision, "part": source.detail,
                       "fallback_reason": source.fallback_reason}
        held = heldout_windows(tokens, windows, seq_len)
        heldout.update(held.info)
        try:
            model = AutoModelForCausalLM.from_pretrained(folder)
        except Exception as exc:  # missing GPTQ/AWQ kernels, damaged weights: one line
            hint = " (GPTQ/AWQ formats: pip install 'lm_eval_acbench[gptq-format]'; or --no-ppl)" if method in PACKED_FORMATS else ""
            raise UserError(f"{folder} does not load in transformers: {type(exc).__name__}: "
                            f"{(str(exc).strip().splitlines() or [''])[0][:200]}{hint}") from None
        ppl_after = perplexity(model, held.windows, "perplexity")
        if not math.isfinite(ppl_after):
            raise UserError(f"{folder}: perplexity is {ppl_after} (not finite): the checkpoint is unusable")
    manifest = {
        "acbench_manifest_version": MANIFEST_VERSION,
        "complete": True,
        "measured_only": True,
        "model": {"path": str(folder), "architecture": (config.get("architectures") or [None])[0]},
        "quantization_config": qconfig or None,
        "recipe": None,
        "calibration": {"used": False, "note": "made elsewhere: its calibration is unknown to acbench"},
        "heldout": heldout,
        "perplexity": {"before": None, "after": ppl_after},
        "measured": measured,
        "versions": _versions(),
        "wall_time_s": time.time() - started,
        "warnings": [],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(manifest, indent=2))
    partial.replace(target)
    return target
