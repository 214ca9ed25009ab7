"""SparseGPT 2:4 then GPTQ: the 2:4 mask carried through GPTQ's error feedback vs GPTQ then re-zero.

One process, one pruned model, quantized both ways from the same copy, with the same calibration
windows (the recipe ``sparsegpt_2of4_gptq_w4a16``'s steps and settings, the bench's 32 x 512 by
default) and the same held-out windows. Prints perplexity of the base, the pruned, the
mask-carried and the re-zeroed model, how many pruned weights plain GPTQ made nonzero again, and
whether 2:4 holds in each. A measurement, not a test.

    .venv/bin/python bench/bench_sparse_gptq.py [--model DIR] --ppl-text wiki.test.raw [--out FILE.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path


def _holds_2of4(linears: dict) -> bool:
    return all(bool(((mod.weight != 0).reshape(mod.weight.shape[0], -1, 4).sum(-1) <= 2).all()) for mod in linears.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF folder (default: SmolLM2-135M-Instruct via acbench model fetch)")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--calibration", default=None, help="default: the recipe's own set (offline: the Paul Graham essays)")
    parser.add_argument("--ppl-text", required=True, help="held-out text file, e.g. WikiText-2 wiki.test.raw")
    parser.add_argument("--ppl-windows", type=int, default=8)
    parser.add_argument("--ppl-seq-len", type=int, default=512)
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_acbench.compress import load_recipe
    from lm_eval_acbench.compress.calibration import describe, draw_windows, heldout_windows, load_heldout_text, load_text, token_ids, tokenize_source
    from lm_eval_acbench.compress.runner import (
        _meta_shapes,
        _oneshot,
        _prune_modifier,
        _quant_modifiers,
        _resolve_group_size,
        _target_linears,
        perplexity,
    )
    from lm_eval_acbench.compress.sparse_gptq import preserving_sparsity

    if args.model is None:
        from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

        args.model = str(fetch(DEFAULT_MODEL))
    recipe = load_recipe("sparsegpt_2of4_gptq_w4a16")
    prune, quant = recipe.prune_step, recipe.quant_step
    shapes, _ = _meta_shapes(Path(args.model), recipe.ignore)
    group_size, _ = _resolve_group_size(quant, shapes)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    source = load_text(args.calibration, args.samples * args.seq_len * 8, default=recipe.default_calibration()[0])
    calib_tokens, _ = tokenize_source(tokenizer, source)
    calib = draw_windows(calib_tokens, args.samples, args.seq_len, 0)
    text, _ = load_heldout_text(args.ppl_text)
    held = heldout_windows(token_ids(tokenizer, text), args.ppl_windows, args.ppl_seq_len).windows

    result: dict = {"model": args.model, "calibration": {**describe(source), **calib.info}, "group_size": group_size,
                    "heldout": {"file": args.ppl_text, "windows": len(held), "seq_len": args.ppl_seq_len}}
    times = result["times_s"] = {}

    def report(stage: str) -> None:
        # every stage as it ends: a run cut short by a time limit still leaves what it measured
        print(f"{stage}: {json.dumps({k: v for k, v in result.items() if k not in ('calibration', 'model', 'heldout')})}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))

    net = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    result["ppl_base"] = perplexity(net, held, "base")
    t0 = time.time()
    _oneshot(net, [_prune_modifier(prune, recipe.ignore)], calib.windows, awq=False)
    times["sparsegpt"] = time.time() - t0
    result["ppl_pruned"] = perplexity(net, held, "pruned")
    report("pruned")
    masks = {name: (mod.weight == 0).clone() for name, mod in _target_linears(net, recipe.ignore).items()}
    plain = copy.deepcopy(net)  # the same pruned weights for both quantizations

    t0 = time.time()
    with preserving_sparsity():
        _oneshot(net, _quant_modifiers(quant, group_size, recipe.ignore), calib.windows, awq=False)
    times["gptq_mask_carried"] = time.time() - t0
    linears = _target_linears(net, recipe.ignore)
    result["mask_carried"] = {
        "ppl": perplexity(net, held, "mask carried"),
        "pruned_weights_nonzero": sum(int((mod.weight[masks[n]] != 0).sum()) for n, mod in linears.items()),
        "holds_2of4": _holds_2of4(linears),
    }
    report("mask carried")
    del net

    t0 = time.time()
    _oneshot(plain, _quant_modifiers(quant, group_size, recipe.ignore), calib.windows, awq=False)
    times["gptq_plain"] = time.time() - t0
    linears = _target_linears(plain, recipe.ignore)
    refilled = sum(int((mod.weight[masks[n]] != 0).sum()) for n, mod in linears.items())
    result["plain_gptq"] = {"ppl": perplexity(plain, held, "plain gptq"), "pruned_weights_nonzero": refilled,
                            "holds_2of4": _holds_2of4(linears)}
    with torch.no_grad():
        for name, mod in linears.items():
            mod.weight[masks[name]] = 0  # zero is on the symmetric grid: the weights stay quantized
    result["rezeroed"] = {"ppl": perplexity(plain, held, "re-zeroed"), "pruned_weights_nonzero": 0,
                          "holds_2of4": _holds_2of4(linears)}
    report("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
