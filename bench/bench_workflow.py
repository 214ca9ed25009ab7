"""Benchmark: WorfBench scoring of the 1,423 real items of the seven subsets, in one run.

Scores two prediction sets against the golds with the real embedding model (default
all-mpnet-base-v2): the golds themselves, and a perturbed copy made here (nodes reworded,
swapped, dropped; edges kept or thinned), the way ``acbench_workflow`` scores them: one
embedding pass over all distinct node texts, then the pure scorers. Prints the seconds of that
batched path (median of ``--repeats``), its embedding and scoring parts; with ``--per-item`` also
the upstream-shaped path (one encode call per item, as WorfBench's evaluator does), the ratio of
the two measured in the same run, and how many items score identically on both.

    .venv/bin/python bench/bench_workflow.py [--data-dir ../shared/data/worfbench] [--model NAME]
        [--limit N]   (N items per subset, for a quick look)  [--threads N] [--batch-size N]
        [--repeats N] [--per-item]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

SUBSETS = ("wikihow", "toolbench", "toolalpaca", "lumos", "alfworld", "webshop", "os")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "worfbench"

_NODE_LINE = re.compile(r"^(\d+): (.+)$", re.MULTILINE)
_REWORD = [("go to", "walk to"), ("Find", "Look for"), ("Calculate", "Compute"), ("Identify", "Determine"),
           ("execute bash code to", "run a shell command to"), ("click", "press"), ("the ", "")]


def perturb(gold: str, rng: random.Random) -> str:
    """A plausible imperfect prediction: reworded nodes, a swapped pair, maybe a dropped node."""
    nodes = [text for _, text in _NODE_LINE.findall(gold)]
    if not nodes:
        return gold
    out = []
    for text in nodes:
        if rng.random() < 0.5:
            old, new = rng.choice(_REWORD)
            text = text.replace(old, new, 1)
        if rng.random() < 0.2:
            text = text + " carefully"
        out.append(text)
    if len(out) > 2 and rng.random() < 0.5:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if len(out) > 3 and rng.random() < 0.3:
        del out[rng.randrange(len(out))]
    n = len(out)
    edges = ["(START,1)"] + [f"({i},{i + 1})" for i in range(1, n)] + [f"({n},END)"]
    if rng.random() < 0.2:
        edges = edges[::2]
    return "Node:\n" + "".join(f"{i}: {t}\n" for i, t in enumerate(out, 1)) + "Edge: " + " ".join(edges)


METRICS = ("node_f1", "node_precision", "node_recall", "graph_f1", "graph_precision", "graph_recall",
           "parse_rate", "node_f1_fixed", "graph_f1_fixed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="embedding model (default: all-mpnet-base-v2)")
    parser.add_argument("--limit", type=int, default=None, help="items per subset")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each path; the median is reported")
    parser.add_argument("--per-item", action="store_true",
                        help="also time the upstream-style path (one encode call per item); compare scores")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import os
    import statistics

    from lm_eval_acbench import embeddings
    from lm_eval_acbench.metrics.workflow import score_batch
    from lm_eval_acbench.tasks.workflow import read_subset

    if not args.data_dir.is_dir():
        print(f"no WorfBench data at {args.data_dir} (give --data-dir)", file=sys.stderr)
        return 2
    golds, subsets = [], []
    for subset in SUBSETS:
        records = read_subset(args.data_dir, subset)[: args.limit]
        golds += [r["conversations"][-1]["content"] for r in records]
        subsets += [subset] * len(records)
    rng = random.Random(0)
    perturbed = [perturb(g, rng) for g in golds]
    preds, refs = golds + perturbed, golds + golds

    t0 = time.perf_counter()
    model = embeddings.resolve_embedding_model(args.model)
    embeddings.embed(["warm up"], model=args.model)
    load_s = time.perf_counter() - t0

    def encode(texts):
        return embeddings.embed(texts, model=args.model, batch_size=args.batch_size)

    def batched():
        """One scoring pass over both prediction sets: every distinct text is embedded once."""
        timings: dict = {}
        started = time.perf_counter()
        results = score_batch(preds, refs, encode, timings, cosine=embeddings.cosine_matrix)
        return time.perf_counter() - started, results, timings

    def per_item():
        """The upstream shape: every item embeds its own node texts in its own encode call."""
        started = time.perf_counter()
        cosine = embeddings.cosine_matrix
        results = [score_batch([p], [g], encode, cosine=cosine)[0] for p, g in zip(preds, refs)]
        return time.perf_counter() - started, results

    fast_runs = [batched() for _ in range(max(1, args.repeats))]
    fast_s = statistics.median(r[0] for r in fast_runs)
    _, results, timings = fast_runs[0]
    print(f"embedding model         {model} (batch size {args.batch_size}, {os.cpu_count()} CPUs)")
    print(f"items                   {len(golds)} golds + {len(golds)} perturbed = {len(preds)} scored pairs")
    print(f"model load              {load_s:.1f} s (not counted below)")
    print(f"batched path            {fast_s:.1f} s median of {len(fast_runs)} "
          f"({[round(r[0], 1) for r in fast_runs]}); embedding {timings['embed_s']:.1f} s, "
          f"scoring {timings['score_s']:.2f} s, {timings['texts']} distinct texts")
    if args.per_item:
        item_runs = [per_item() for _ in range(max(1, args.repeats))]
        item_s = statistics.median(r[0] for r in item_runs)
        differing = [i for i, (a, b) in enumerate(zip(results, item_runs[0][1]))
                     if any(abs(a[m] - b[m]) > 1e-9 for m in METRICS)]
        print(f"per-item path           {item_s:.1f} s median of {len(item_runs)} "
              f"({[round(r[0], 1) for r in item_runs]})")
        print(f"speed-up                {item_s / max(fast_s, 1e-9):.2f}x (per-item / batched)")
        print(f"identical scores        {len(preds) - len(differing)} of {len(preds)} pairs"
              + (f"; differing: {differing[:10]}" if differing else ""))
    print(f"load average            {os.getloadavg()[0]:.1f} at the end")
    print()
    _print_table(results[: len(golds)], results[len(golds):], subsets)
    return 0


def _print_table(gold_res, pert_res, subsets):
    import numpy as np

    def mean(rows, key):
        return float(np.mean([r[key] for r in rows])) if rows else float("nan")

    print(f"{'subset':<12}{'n':>5}  gold: node_f1 fixed graph_f1 fixed | perturbed: node_f1 fixed graph_f1")
    for subset in (*SUBSETS, None):
        idx = [i for i, s in enumerate(subsets) if subset is None or s == subset]
        g, p = [gold_res[i] for i in idx], [pert_res[i] for i in idx]
        name = subset or "all"
        print(f"{name:<12}{len(idx):>5}  {mean(g, 'node_f1'):13.3f} {mean(g, 'node_f1_fixed'):5.3f} "
              f"{mean(g, 'graph_f1'):8.3f} {mean(g, 'graph_f1_fixed'):5.3f} | {mean(p, 'node_f1'):18.3f} "
              f"{mean(p, 'node_f1_fixed'):5.3f} {mean(p, 'graph_f1'):8.3f}")


if __name__ == "__main__":
    sys.exit(main())
