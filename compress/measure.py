"""Facts read back from a saved checkpoint's safetensors: what the weights really are.

For every Linear weight in the checkpoint (quantized: ``weight_packed`` or int ``weight`` with
``weight_scale``; dense: float ``weight``) this reports the integer range and the most distinct
values found in one quantization group, the group size implied by the scale tensor, whether
zero points are stored, the fraction of zero weights, and whether an N:M pattern holds. FP8
weights report their storage bits and distinct values per row; dense fake-quantized weights
(NF4) report the most distinct values in one block of ``dense_block`` values (row-major) and
the bits that count needs. The summary also names the activation and K/V cache schemes.
Embeddings and norms are skipped; so are modules whose names match ``skip`` (e.g. lm_head).
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def _tensors(folder: Path):
    """name -> lazily loaded tensor, over every *.safetensors file in the folder."""
    from safetensors import safe_open

    handles = {}
    index = {}
    for file in sorted(folder.glob("*.safetensors")):
        handle = safe_open(str(file), framework="pt")
        handles[file] = handle
        for key in handle.keys():
            index[key] = handle
    return index


def _quant_config(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return config.get("quantization_config") or {}


def _weights_args(qconfig: dict) -> dict:
    groups = qconfig.get("config_groups") or {}
    for group in groups.values():
        if group.get("weights"):
            return group["weights"]
    return {}


def distinct_per_group(ints, group_size: int) -> int:
    """Most distinct integer values in any (row, group) block of ``ints`` (rows x cols)."""
    import torch

    rows, cols = ints.shape
    blocks = ints.reshape(rows, cols // group_size, group_size)
    ordered, _ = torch.sort(blocks, dim=-1)
    distinct = 1 + (ordered[..., 1:] != ordered[..., :-1]).sum(dim=-1)
    return int(distinct.max())


def nm_holds(zero_mask, n: int, m: int) -> bool:
    """True when every m consecutive weights of a row (input dim) hold at most n nonzeros."""
    rows, cols = zero_mask.shape
    if cols % m:
        return False
    nonzero = (~zero_mask).reshape(rows, cols // m, m).sum(dim=-1)
    return bool((nonzero <= n).all())


def _distinct_bits(count: int) -> int:
    return max(1, math.ceil(math.log2(count)))


def measure_checkpoint(folder: str | Path, *, pattern: tuple[int, int] | None = None, skip: tuple[str, ...] = ("lm_head",),
                       dense_block: int | None = None) -> dict:
    """Per-layer and overall facts about the Linear weights saved in ``folder``."""
    import torch

    folder = Path(folder)
    qconfig = _quant_config(folder)
    wargs = _weights_args(qconfig)
    num_bits_cfg = wargs.get("num_bits")
    tensors = _tensors(folder)
    bases = set()
    for key in tensors:
        for suffix in (".weight_packed", ".weight_scale", ".weight"):
            if key.endswith(suffix):
                bases.add(key[: -len(suffix)])
    layers = {}
    total = zeros = 0
    from tqdm.auto import tqdm

    for base in tqdm(sorted(bases), desc="measuring saved weights", leave=False):
        short = base.split(".")[-1]
        if any(s in base for s in skip) or "embed" in short or "norm" in short:
            continue
        packed = tensors.get(base + ".weight_packed")
        scale_h = tensors.get(base + ".weight_scale")
        weight_h = tensors.get(base + ".weight")
        zp_h = tensors.get(base + ".weight_zero_point")
        entry: dict = {}
        if packed is not None:
            from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

            shape = tuple(int(x) for x in tensors[base + ".weight_shape"].get_tensor(base + ".weight_shape").tolist())
            ints = unpack_from_int32(packed.get_tensor(base + ".weight_packed"), num_bits_cfg, torch.Size(shape)).to(torch.int32)
        elif weight_h is not None and scale_h is not None and weight_h.get_tensor(base + ".weight").dtype.is_floating_point:
            weight = weight_h.get_tensor(base + ".weight")  # float8: stored as is, scaled per channel
            shape = tuple(weight.shape)
            ints = None
            zero_mask = weight.float() == 0
            codes = weight.view(torch.uint8).to(torch.int32)  # bit patterns: distinct values, not order
            entry.update({
                "weight_dtype": str(weight.dtype).replace("torch.", ""),
                "bits_needed": weight.element_size() * 8,
                "group_size": shape[1],
                "max_distinct_per_group": distinct_per_group(codes, shape[1]),
                "zero_point_stored": zp_h is not None,
                "scale_dtype": str(scale_h.get_tensor(base + ".weight_scale").dtype).replace("torch.", ""),
                "int_min": None, "int_max": None,
            })
        elif weight_h is not None and scale_h is not None:
            ints = weight_h.get_tensor(base + ".weight").to(torch.int32)
            shape = tuple(ints.shape)
        elif weight_h is not None:
            weight = weight_h.get_tensor(base + ".weight")
            if weight.dim() != 2:
                continue
            ints = None
            shape = tuple(weight.shape)
            zero_mask = weight == 0
            if dense_block is not None:
                blocks = weight.float().reshape(-1, dense_block)
                ordered, _ = torch.sort(blocks, dim=-1)
                distinct = int((1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=-1)).max())
                entry.update({"fake_quant_block": dense_block, "max_distinct_per_block": distinct,
                              "bits_needed": _distinct_bits(distinct)})
        else:
            continue
        entry["shape"] = list(shape)
        if ints is not None:
            scale = scale_h.get_tensor(base + ".weight_scale")
            groups = scale.shape[-1] if scale.dim() == 2 else 1
            group_size = shape[1] // groups if groups else shape[1]
            zero_point = None
            if zp_h is not None:
                zp = zp_h.get_tensor(base + ".weight_zero_point").to(torch.int32)
                if zp.shape != scale.shape and packed is not None:
                    zp = unpack_from_int32(zp, num_bits_cfg, torch.Size(scale.shape), packed_dim=0).to(torch.int32)
                zero_point = zp
            centred = ints - (zero_point.repeat_interleave(group_size, dim=1) if zero_point is not None else 0)
            zero_mask = centred == 0
            lo, hi = int(ints.min()), int(ints.max())
            entry.update(
                {
                    "int_min": lo,
                    "int_max": hi,
                    "bits_needed": max(1, math.ceil(math.log2(hi - lo + 1))),
                    "group_size": group_size,
                    "groups_per_row": groups,
                    "max_distinct_per_group": distinct_per_group(ints, group_size),
                    "zero_point_stored": zero_point is not None,
                    "scale_dtype": str(scale.dtype).replace("torch.", ""),
                }
            )
        n_zero = int(zero_mask.sum())
        entry["sparsity"] = n_zero / zero_mask.numel()
        if pattern is not None:
            entry["nm_holds"] = nm_holds(zero_mask, *pattern)
        total += zero_mask.numel()
        zeros += n_zero
        layers[base] = entry

    quantized = [e for e in layers.values() if "int_min" in e]
    fake = [e for e in layers.values() if "fake_quant_block" in e]
    activations = next((g.get("input_activations") for g in (qconfig.get("config_groups") or {}).values()), None)
    summary = {
        "format": qconfig.get("format") or ("dense" if not qconfig else qconfig.get("quant_method")),
        "quant_method": qconfig.get("quant_method"),
        "layers_measured": len(layers),
        "layers_quantized": len(quantized),
        "overall_sparsity": zeros / total if total else 0.0,
        "bits_found": sorted({e["bits_needed"] for e in quantized}) or None,
        "weight_dtypes_found": sorted({e["weight_dtype"] for e in quantized if "weight_dtype" in e}) or None,
        "fake_quant_bits_found": sorted({e["bits_needed"] for e in fake}) or None,
        "fake_quant_max_distinct_per_block": max((e["max_distinct_per_block"] for e in fake), default=None),
        "input_activations": activations,
        "kv_cache_scheme": qconfig.get("kv_cache_scheme"),
        "kv_scales_stored": sum(1 for key in tensors if key.endswith((".k_scale", ".v_scale"))),
        "max_distinct_per_group": max((e["max_distinct_per_group"] for e in quantized), default=None),
        "group_sizes_found": sorted({e["group_size"] for e in quantized}) or None,
        "zero_point_stored": any(e["zero_point_stored"] for e in quantized) if quantized else None,
        "config_num_bits": num_bits_cfg,
        "config_group_size": wargs.get("group_size"),
        "config_symmetric": wargs.get("symmetric"),
    }
    if pattern is not None:
        summary["nm_pattern"] = f"{pattern[0]}:{pattern[1]}"
        summary["nm_pattern_holds"] = all(e["nm_holds"] for e in layers.values()) if layers else False
    return {"summary": summary, "layers": layers}
