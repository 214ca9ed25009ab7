"""GPTQ that keeps a pruning mask: the error feedback only moves the weights that survived pruning.

Plain GPTQ quantizes one input column at a time and spreads that column's rounding error over
the columns still to come (``W[:, j:] -= err * Hinv[i, j:]``). After pruning this refills the
zeros, and zeroing them again afterwards throws away the compensation those updates carried.
Here the update is multiplied by the keep mask ``K = (W != 0)`` fixed before quantization:

    W[:, j] -= err * Hinv[i, j] * K[:, j]     for every later column j,

so pruned weights stay exactly zero (a symmetric grid holds zero; with zero points, zero maps to
the zero point) and the error is compensated on the kept weights only. This is the rule older
llmcompressor releases applied when a layer was already sparse (the sparse + quantized
examples' SparseGPT -> GPTQ recipes); llmcompressor 0.14 dropped it, so
:func:`preserving_sparsity` swaps this function in for llmcompressor's ``quantize_weight``
while a prune-then-GPTQ recipe runs. Scales, activation ordering, Hessian factorisation and
the per-column fake quantization are llmcompressor's own helpers, unchanged.
"""

from __future__ import annotations

import contextlib
from copy import copy


def masked_quantize_weight(weights, hessians, scale, zero_point, global_scale, quant_args, blocksize: int = 128,
                           percdamp: float = 0.01):
    """Drop-in for ``llmcompressor.modifiers.gptq.gptq_quantize.quantize_weight`` (same
    arguments and results: quantized weights, per-batch losses, RTN-fallback flags) whose error
    feedback never touches weights that are zero on entry."""
    import torch
    from compressed_tensors.quantization import ActivationOrdering, QuantizationStrategy, fake_quantize
    from llmcompressor.modifiers.gptq.helpers import (
        GPTQ_PRECISION,
        apply_activation_ordering,
        column_scale_window,
        factorize_hessian,
    )

    batch, rows, cols = weights.shape
    final_dtype, device = weights.dtype, weights.device
    W = weights.to(device=device, dtype=GPTQ_PRECISION)
    H = hessians.to(device=device, dtype=GPTQ_PRECISION)
    scale = scale.to(device)
    zero_point = zero_point.to(device)
    if global_scale is not None:
        global_scale = global_scale.to(device)
    W, H, perm = apply_activation_ordering(W, H, quant_args.actorder)
    keep = (W != 0).to(W.dtype)  # after the permutation: the mask follows its columns

    g_idx = None
    if quant_args.strategy in (QuantizationStrategy.GROUP, QuantizationStrategy.TENSOR_GROUP, QuantizationStrategy.BLOCK):
        width = quant_args.group_size if quant_args.strategy != QuantizationStrategy.BLOCK else quant_args.block_structure[1]
        g_idx = torch.arange(cols, device=device, dtype=torch.int) // width
        if quant_args.actorder == ActivationOrdering.WEIGHT:
            g_idx = torch.gather(g_idx.unsqueeze(0).expand(batch, -1), 1, perm)

    losses = torch.zeros(batch, rows, device=device)
    fallback = torch.zeros(batch, dtype=torch.bool, device=device)
    Hinv = factorize_hessian(W, H, percdamp, fallback)
    per_column = copy(quant_args)
    per_column.strategy = QuantizationStrategy.CHANNEL
    for start in range(0, cols, blocksize):
        stop = min(start + blocksize, cols)
        eff, zp = column_scale_window(scale, zero_point, global_scale, g_idx, quant_args, num_rows=rows, i1=start, i2=stop)
        block = W[:, :, start:stop].clone()
        errors = torch.zeros_like(block)
        hinv_block = Hinv[:, start:stop, start:stop]
        for i in range(stop - start):
            column = block[:, :, i]
            q = fake_quantize(column.transpose(0, 1), eff[:, :, i].transpose(0, 1),
                              None if zp is None else zp[:, :, i].transpose(0, 1), per_column).transpose(0, 1)
            q = q * keep[:, :, start + i]
            err = (column - q) / hinv_block[:, i, i][:, None]
            W[:, :, start + i] = q
            errors[:, :, i] = err
            losses += err.square() / 2
            block[:, :, i:] -= err.unsqueeze(-1) * hinv_block[:, i, i:].unsqueeze(1) * keep[:, :, start + i:stop]
        W[:, :, stop:] -= torch.bmm(errors, Hinv[:, start:stop, stop:]) * keep[:, :, stop:]
    if perm is not None:
        inverse = torch.argsort(perm, dim=-1)
        W = torch.gather(W, -1, inverse.unsqueeze(-2).expand(-1, rows, -1))
    return W.to(final_dtype), losses.sum(dim=1), fallback


@contextlib.contextmanager
def preserving_sparsity():
    """While active, llmcompressor's GPTQModifier quantizes with :func:`masked_quantize_weight`."""
    from llmcompressor.modifiers.gptq import base

    original = base.quantize_weight
    base.quantize_weight = masked_quantize_weight
    try:
        yield
    finally:
        base.quantize_weight = original
