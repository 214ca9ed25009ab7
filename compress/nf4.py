"""4-bit NormalFloat (NF4) by fake quantization, with bitsandbytes' code book.

Rule (bitsandbytes ``quantize_4bit(quant_type="nf4")`` without double quantization): a Linear
weight is read row-major in blocks of ``block_size`` (64) consecutive values; each block is
divided by its absmax ``a = max |w|``, every value is replaced by the nearest of the 16 code
values ``c`` below, and ``w' = c * a`` is stored. The checkpoint stays dense (float weights
that take at most 16 distinct values per block), so ``--model hf`` loads it on any device
without bitsandbytes; the manifest's measurement counts the distinct values per block.
"""

from __future__ import annotations

# bitsandbytes' NF4 code book (functional.get_4bit_type("nf4")), sorted.
NF4_CODE = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
)


def nf4_fake_quantize(weight, block_size: int = 64):
    """``weight`` rounded to NF4 per block of ``block_size`` values (row-major), dequantized.

    ``block_size`` must divide ``weight.numel()``; an all-zero block stays zero.
    """
    import torch

    if weight.numel() % block_size:
        raise ValueError(f"NF4 block size {block_size} does not divide a tensor of {weight.numel()} values")
    blocks = weight.detach().float().reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    code = torch.tensor(NF4_CODE, dtype=torch.float32)
    midpoints = (code[1:] + code[:-1]) / 2  # sorted code: the nearest value is found by bucket
    index = torch.bucketize((blocks / safe).contiguous(), midpoints)
    return (code[index] * absmax).reshape(weight.shape).to(weight.dtype)


def nf4_quantize_linears(linears: dict, block_size: int = 64) -> None:
    """Replace every weight of ``linears`` (name -> nn.Linear) by its NF4 fake quantization."""
    import torch

    with torch.no_grad():
        for module in linears.values():
            module.weight.copy_(nf4_fake_quantize(module.weight, block_size))
