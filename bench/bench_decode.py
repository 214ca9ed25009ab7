"""CPU decode speed against the memory-bandwidth limit for a model.

Usage::

    .venv/bin/python bench/bench_decode.py [--model ID_OR_DIR] [--threads N] [--new-tokens 64]

Greedy decoding at batch 1 with the KV cache reads every weight once per token, so a decode step
cannot be faster than ``weight bytes / memory bandwidth``. This script measures the machine's
copy bandwidth (numpy, a buffer far larger than the caches), loads the model as the demo does
(float32), times prefill and decode separately, and prints measured tokens/s, the bound
``bandwidth / weight bytes`` and the ratio. Defaults to the demo's model.
"""

from __future__ import annotations

import argparse
import time


def copy_bandwidth_bytes_per_s(n_bytes: int = 1 << 29, repeats: int = 5) -> float:
    """Best of ``repeats`` numpy copies of an ``n_bytes`` buffer: (read + write) bytes / second."""
    import numpy as np

    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def bandwidth_bound_tokens_per_s(weight_bytes: int, bandwidth: float) -> float:
    """Upper bound on batch-1 decode speed: every weight byte is read once per token,
    ``tokens/s <= bandwidth / weight_bytes``."""
    if weight_bytes <= 0 or bandwidth <= 0:
        raise ValueError("weight bytes and bandwidth must be positive")
    return bandwidth / weight_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen2.5-Coder-0.5B-Instruct")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from lm_eval_acbench.model_store import fetch

    if args.threads:
        torch.set_num_threads(args.threads)
    bandwidth = copy_bandwidth_bytes_per_s()
    model = AutoModelForCausalLM.from_pretrained(str(fetch(args.model)), dtype=torch.float32).eval()
    # Embedding rows are gathered, not streamed: only the other weights are read per token.
    embed = model.get_input_embeddings().weight
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p is not embed)
    if model.get_output_embeddings() is not None and model.get_output_embeddings().weight is embed:
        weight_bytes += embed.numel() * embed.element_size()  # tied: the head reads it every token
    prompt = torch.randint(100, 1000, (1, args.prompt_tokens))
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(prompt, use_cache=True)
        prefill_s = time.perf_counter() - start
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(args.new_tokens):
            out = model(token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        decode_s = time.perf_counter() - start
    measured = args.new_tokens / decode_s
    bound = bandwidth_bound_tokens_per_s(weight_bytes, bandwidth)
    print(f"model {args.model}: {weight_bytes / 2**30:.2f} GiB of float32 weights read per token; "
          f"torch threads {torch.get_num_threads()}")
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s -> bound {bound:.1f} tokens/s")
    print(f"prefill {args.prompt_tokens} tokens: {prefill_s:.2f} s ({args.prompt_tokens / prefill_s:.0f} tokens/s)")
    print(f"decode {args.new_tokens} tokens: {decode_s:.2f} s = {measured:.2f} tokens/s "
          f"({measured / bound * 100:.0f} % of the bandwidth bound)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
