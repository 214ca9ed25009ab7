"""4-bit NormalFloat (NF4) by fake quantization, with bitsandbytes' code book.

Rule (bitsandbytes ``quantize_4bit(quant_type="nf4")`` without double quantization, the same
arithmetic as the logit analyses: :mod:`lm_eval_acbench.analysis.fake_quant`): a Linear weight
is read row-major in blocks of ``block_size`` (64) consecutive values; each block is divided by
its absmax ``a = max |w|``, every value is replaced by the nearest of the 16 code values ``c``,
and ``w' = c * a`` is stored. The checkpoint stays dense (float weights that take at most 16
distinct values per block), so ``--model hf`` loads it on any device without bitsandbytes; the
manifest's measurement counts the distinct values per block.
"""

from __future__ import annotations

from lm_eval_acbench.analysis.fake_quant import NF4_CODE, nf4_fake_quant

__all__ = ["NF4_CODE", "nf4_quantize_linears"]


def nf4_quantize_linears(linears: dict, block_size: int = 64) -> None:
    """Replace every weight of ``linears`` (name -> nn.Linear) by its NF4 fake quantization.
    The runner checks beforehand that ``block_size`` divides every weight (no padded block)."""
    import torch

    with torch.no_grad():
        for module in linears.values():
            module.weight.copy_(nf4_fake_quant(module.weight, block_size))
