"""Fake quantization (quantize, then dequantize in place) of weights and of the KV cache; torch only.

The analyses of the paper sweep weight and KV-cache bits and compare a model with its NF4 copy.
Fake quantization gives the numbers of those settings on any device (no kernels needed): every
weight is replaced by the value its quantized form dequantizes to.

* **RTN, asymmetric, per group** (:func:`rtn_fake_quant`): each row of a weight (or each token's
  key/value vector) is cut into groups of ``group_size`` consecutive values (the last group may
  be shorter); per group ``scale = (max - min) / (2^b - 1)``, ``zero = round(-min / scale)``,
  ``q = clamp(round(w / scale) + zero, 0, 2^b - 1)`` and ``w' = (q - zero) * scale``. A group
  whose values are all equal is kept as is. ``bits >= 16`` leaves the tensor unchanged (the
  16-bit point of a sweep is the model itself).
* **NF4** (:func:`nf4_fake_quant`): bitsandbytes' 4-bit NormalFloat: the flattened weight in
  blocks of 64 values, each block scaled by its absolute maximum and every value rounded to the
  nearest of the 16 NF4 code values (:data:`NF4_CODE`, the code book bitsandbytes uses), then
  ``w' = code * absmax`` (no double quantization: absmax kept exactly).

Which tensors: :func:`quantize_weights` changes every ``nn.Linear`` inside the decoder layers
(attention and MLP projections); embeddings, norms and the output head stay in full precision,
as in GPTQ/AWQ/bitsandbytes defaults. :func:`kv_fake_quant` quantizes what enters the KV cache,
the outputs of each attention layer's ``k_proj`` and ``v_proj``, per token in groups of
``group_size`` channels; keys are quantized before the rotary embedding is applied (a hook on
the projection; a cache that stores rotated keys would quantize after it).
The compression pre-step (``compress/``) reuses these functions for its ``nf4`` recipe.
"""

from __future__ import annotations

import contextlib

NF4_CODE = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
)
NF4_BLOCK = 64


def rtn_fake_quant(x, bits: int, group_size: int = 128):
    """RTN asymmetric fake quantization of ``x`` along its last dimension, in groups (see module doc)."""
    import torch

    if bits >= 16:
        return x
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    shape = x.shape
    last = shape[-1]
    g = min(int(group_size), last) if group_size and group_size > 0 else last
    flat = x.reshape(-1, last).float()
    pad = (-last) % g
    if pad:  # the last, shorter group: pad with a copy of its first value (no effect on min/max)
        flat = torch.cat([flat, flat[:, last - (last % g):last - (last % g) + 1].expand(-1, pad)], dim=1)
    groups = flat.reshape(flat.shape[0], -1, g)
    lo = groups.amin(dim=-1, keepdim=True)
    hi = groups.amax(dim=-1, keepdim=True)
    levels = 2 ** int(bits) - 1
    scale = (hi - lo) / levels
    flat_group = scale == 0
    safe = torch.where(flat_group, torch.ones_like(scale), scale)
    zero = torch.round(-lo / safe)
    q = torch.clamp(torch.round(groups / safe) + zero, 0, levels)
    deq = torch.where(flat_group, groups, (q - zero) * safe)
    out = deq.reshape(flat.shape[0], -1)[:, :last]
    return out.reshape(shape).to(x.dtype)


def nf4_fake_quant(x, block: int = NF4_BLOCK):
    """NF4 fake quantization of ``x`` (flattened, blocks of ``block`` values; see module doc)."""
    import torch

    flat = x.reshape(-1).float()
    n = flat.numel()
    pad = (-n) % block
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    blocks = flat.reshape(-1, block)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax == 0, torch.ones_like(absmax), absmax)
    code = torch.tensor(NF4_CODE, dtype=torch.float32, device=x.device)
    # nearest code value: the code is sorted, so compare against the midpoints
    mids = (code[1:] + code[:-1]) / 2
    idx = torch.bucketize((blocks / safe).contiguous(), mids)
    deq = code[idx] * absmax
    return deq.reshape(-1)[:n].reshape(x.shape).to(x.dtype)


def decoder_linears(model):
    """``(name, module)`` of every ``nn.Linear`` inside the decoder layers (not the output head)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not head and ".layers." in f".{name}":
            out.append((name, module))
    if not out:
        raise ValueError("no nn.Linear inside decoder layers (``...layers.N...``) found to quantize")
    return out


def quantize_weights(model, method: str, bits: int = 4, group_size: int = 128) -> int:
    """Fake-quantize the decoder's Linear weights in place; ``method`` ``rtn`` or ``nf4``.

    Returns how many weight matrices were changed (0 for RTN at 16 bits)."""
    import torch

    if method not in ("rtn", "nf4"):
        raise ValueError(f"unknown fake-quantization method {method!r} (rtn | nf4)")
    if method == "rtn" and bits >= 16:
        return 0
    n = 0
    with torch.no_grad():
        for _, module in decoder_linears(model):
            w = module.weight
            w.copy_(nf4_fake_quant(w) if method == "nf4" else rtn_fake_quant(w, bits, group_size))
            n += 1
    return n


@contextlib.contextmanager
def kv_fake_quant(model, bits: int, group_size: int = 128):
    """Within the block, every attention layer's key and value projections are RTN fake-quantized
    per token (groups of ``group_size`` channels); ``bits >= 16`` changes nothing."""
    handles = []
    if bits < 16:
        def hook(module, inputs, output):
            return rtn_fake_quant(output, bits, group_size)

        for name, module in model.named_modules():
            if name.endswith((".k_proj", ".v_proj")):
                handles.append(module.register_forward_hook(hook))
        if not handles:
            raise ValueError("no k_proj / v_proj modules found: KV-cache fake quantization needs them")
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
