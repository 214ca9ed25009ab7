"""Needle-in-a-haystack benchmark: grid-construction time per 100 cells and peak memory.

Usage::

    .venv/bin/python bench/bench_niah.py [--model DIR] [--max-length 40000] [--eval-longest]

Builds the full grid (lengths 1k..max-length in 1k steps x the 10 default depths) from our
offline haystack with the model's tokenizer, the way ``acbench_niah`` does (one tokenization,
then a slice and a decode per cell), and prints the time per 100 cells and the peak Python
allocation. ``--eval-longest`` then generates an answer for the longest cell that fits the
model's window with the real model on CPU (greedy, 32 new tokens) and prints the process's
peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc


def peak_rss_gib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss / (1024 ** 2) if sys.platform != "darwin" else rss / (1024 ** 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF model folder (default: SmolLM2-135M-Instruct, fetched)")
    parser.add_argument("--max-length", type=int, default=40_000, help="longest grid length in tokens")
    parser.add_argument("--eval-longest", action="store_true", help="also run the model on the longest cell")
    args = parser.parse_args(argv)

    from lm_eval_acbench.tasks import niah

    model_dir = args.model
    if model_dir is None:
        from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

        model_dir = str(fetch(DEFAULT_MODEL))
    tokenizer = niah.load_tokenizer(model_dir)
    text, source = niah.haystack_text({"data_source": "sample"})
    lengths = list(range(1000, args.max_length + 1, 1000))
    depths = niah.DEFAULT_DEPTHS

    start = time.perf_counter()
    haystack = niah.Haystack(text, tokenizer, max(lengths))
    tokenized = time.perf_counter()
    cells = [haystack.cell(length, depth) for length in lengths for depth in depths]
    done = time.perf_counter()
    # Memory in a second pass: tracemalloc slows allocation-heavy code several-fold.
    del cells
    tracemalloc.start()
    traced = niah.Haystack(text, tokenizer, max(lengths))
    cells = [traced.cell(length, depth) for length in lengths for depth in depths]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    n = len(cells)
    chars = sum(len(cell["prompt"]) for cell in cells)
    print(f"haystack: {source}, tokenizer: {model_dir}")
    print(f"grid: {len(lengths)} lengths (1000..{max(lengths)}) x {len(depths)} depths = {n} cells")
    print(f"tokenize once (+ decode sentences once): {tokenized - start:.2f} s "
          f"for {len(haystack.ids)} tokens")
    print(f"cells: {done - tokenized:.2f} s in all, {(done - tokenized) / n * 100:.2f} s per 100 cells")
    print(f"grid total incl. tokenization: {(done - start) / n * 100:.2f} s per 100 cells")
    print(f"peak Python allocation while building (all {n} prompts, {chars / 2**20:.0f} MiB of text, held): "
          f"{peak / 2**20:.1f} MiB")
    print(f"peak RSS so far: {peak_rss_gib():.2f} GiB")

    if args.eval_longest:
        import torch
        from transformers import AutoModelForCausalLM

        window = niah.model_window({"pretrained": model_dir}, tokenizer)
        cap = window - niah.MAX_GEN_TOKS - niah.CHAT_RESERVE
        longest = max(length for length in lengths if length <= cap) if cap >= 1000 else None
        if longest is None:
            print("no grid length fits the model's window")
            return 0
        cell = haystack.cell(longest, 50)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model.eval()
        ids = tokenizer(cell["prompt"], return_tensors="pt")
        before = peak_rss_gib()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=32, do_sample=False)
        elapsed = time.perf_counter() - start
        answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        from lm_eval_acbench.metrics.needle import word_set_recall

        prompt_tokens = ids["input_ids"].shape[1]
        print(f"longest cell: {longest} (prompt {prompt_tokens} tokens), depth 50%, window {window}")
        print(f"generate 32 tokens: {elapsed:.1f} s; recall {word_set_recall(answer):.2f}; "
              f"answer: {answer.strip()[:100]!r}")
        print(f"peak RSS: {before:.2f} GiB before the model, {peak_rss_gib():.2f} GiB after generating")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
