"""``acbench compress MODEL --method M --out DIR`` (or ``--recipe FILE|NAME``).

Flags say the same as a recipe file: ``--method sparsegpt,gptq`` chains steps (pruning first);
``--bits/--group-size/--asymmetric`` apply to the quantization step, ``--sparsity/--pattern``
to the pruning step. With ``--recipe`` the flags override the recipe's values.
"""

from __future__ import annotations

import argparse

from lm_eval_acbench.errors import UserError


def _group_size(text: str):
    if text.lower() in ("none", "channel", "per-channel", "-1"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"group size must be an integer or 'channel', got {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="hub id or local HF folder")
    parser.add_argument("--out", required=True, help="output folder, new or empty (written atomically)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--method", help="gptq | awq | rtn | wanda | sparsegpt | magnitude; chain with commas (e.g. sparsegpt,gptq)")
    what.add_argument("--recipe", help="recipe YAML file or built-in name (e.g. gptq_w4a16, sparsegpt_2of4_gptq_w4a16)")
    quant = parser.add_argument_group("quantization")
    quant.add_argument("--bits", type=int, help="weight bits: 4 (W4A16, default) or 8 (W8A16)")
    quant.add_argument("--group-size", type=_group_size, default=argparse.SUPPRESS, help="weights per scale (default 128); 'channel' for per-channel")
    sym = quant.add_mutually_exclusive_group()
    sym.add_argument("--symmetric", dest="symmetric", action="store_true", default=None, help="symmetric scales (default)")
    sym.add_argument("--asymmetric", dest="symmetric", action="store_false", help="zero-point scales (see docs: loading caveat)")
    quant.add_argument("--actorder", choices=["static", "group", "weight", "none"], help="GPTQ activation ordering (default static)")
    prune = parser.add_argument_group("pruning")
    prune.add_argument("--sparsity", type=float, help="fraction of weights pruned (default 0.5)")
    prune.add_argument("--pattern", help="N:M semi-structured pattern, N kept of every M (e.g. 2:4)")
    cal = parser.add_argument_group("calibration")
    cal.add_argument("--calibration", help="wikitext2 (default) | c4 | pile-val | open_platypus | acbench-sample | a .txt/.jsonl file")
    cal.add_argument("--num-samples", type=int, help="calibration samples (default per method: paper values)")
    cal.add_argument("--seq-len", type=int, help="tokens per calibration sample")
    cal.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="dtype to load and save the model in")
    parser.add_argument("--ppl-windows", type=int, help="held-out windows for perplexity before/after (default 8)")
    parser.add_argument("--ppl-seq-len", type=int, help="tokens per perplexity window (default 512)")
    parser.add_argument("--no-ppl", action="store_true", help="skip perplexity before/after")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a checkpoint that acbench made at --out with other settings "
                        "(a folder acbench did not make is never replaced)")


def build_recipe_dict(args: argparse.Namespace) -> dict:
    """The recipe the flags describe (a built-in/file recipe with flag overrides)."""
    from lm_eval_acbench.compress.recipe import METHODS, QUANT_METHODS, load_recipe

    if args.recipe:
        data = load_recipe(args.recipe).model_dump(mode="json")
    else:
        methods = [m.strip().lower() for m in args.method.split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise UserError(f"unknown method {', '.join(unknown) or repr(args.method)}: choose from {', '.join(METHODS)}")
        data = {"name": "+".join(methods), "steps": [{"method": m} for m in methods]}
    quant_steps = [s for s in data["steps"] if s["method"] in QUANT_METHODS]
    prune_steps = [s for s in data["steps"] if s["method"] not in QUANT_METHODS]
    quant_flags = {
        "bits": args.bits,
        "group_size": getattr(args, "group_size", "unset"),
        "symmetric": args.symmetric,
        "actorder": (None if args.actorder == "none" else args.actorder) if args.actorder else "unset",
    }
    for key, value in quant_flags.items():
        if value is None and key in ("bits", "symmetric") or value == "unset":
            continue
        if not quant_steps:
            raise UserError(f"--{key.replace('_', '-')} needs a quantization method (gptq, awq or rtn)")
        for step in quant_steps:
            if key == "actorder" and step["method"] != "gptq":
                raise UserError("--actorder applies to gptq only")
            step[key] = value
    for key in ("sparsity", "pattern"):
        value = getattr(args, key)
        if value is None:
            continue
        if not prune_steps:
            raise UserError(f"--{key} needs a pruning method (wanda, sparsegpt or magnitude)")
        for step in prune_steps:
            step[key] = value
            if key == "pattern" and args.sparsity is None:
                step["sparsity"] = None
    if args.dtype:
        data["dtype"] = args.dtype
    ppl = data.setdefault("perplexity", {})
    if args.no_ppl:
        ppl["enabled"] = False
    if args.ppl_windows:
        ppl["windows"] = args.ppl_windows
    if args.ppl_seq_len:
        ppl["seq_len"] = args.ppl_seq_len
    return data


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from lm_eval_acbench.compress import compress_model, load_recipe

    recipe = load_recipe(build_recipe_dict(args))
    out = compress_model(
        args.model, recipe, Path(args.out), calibration=args.calibration, num_samples=args.num_samples,
        seq_len=args.seq_len, seed=args.seed, overwrite=args.overwrite,
    )
    manifest = json.loads((out / "acbench_manifest.json").read_text())
    summary = manifest["measured"]["summary"]
    ppl = manifest["perplexity"]
    facts = [f"sparsity {summary['overall_sparsity']:.3f}"]
    if summary["bits_found"]:
        facts.append(f"bits {summary['bits_found']} group {summary['group_sizes_found']}")
    if "nm_pattern" in summary:
        facts.append(f"{summary['nm_pattern']} holds: {summary['nm_pattern_holds']}")
    if ppl["before"] is not None:
        facts.append(f"ppl {ppl['before']:.2f} -> {ppl['after']:.2f}")
    print(out)
    print("  " + "; ".join(facts) + f"; {manifest['wall_time_s']:.0f} s")
    for warning in manifest["warnings"]:
        print(f"  warning: {warning}")
    return 0
