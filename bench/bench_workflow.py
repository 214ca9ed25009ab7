"""Benchmark: WorfBench scoring of the 1,423 real items of the seven subsets, in one run.

Scores two prediction sets against the golds with the real embedding model (default
all-mpnet-base-v2): the golds themselves, and a perturbed copy made here (nodes reworded,
swapped, dropped; edges kept or thinned), the way ``acbench_workflow`` scores them: one
embedding pass over all distinct node texts, then the pure scorers. Prints the total seconds,
distinct texts embedded, texts per second, and the share of time spent in scoring work
(parsing, matching, topological orders, LIS) as opposed to embedding and model loading.

    .venv/bin/python bench/bench_workflow.py [--data-dir ../shared/data/worfbench] [--model NAME]
        [--limit N]   (N items per subset, for a quick look)  [--threads N]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="embedding model (default: all-mpnet-base-v2)")
    parser.add_argument("--limit", type=int, default=None, help="items per subset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import numpy as np

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

    started = time.perf_counter()
    model = embeddings.resolve_embedding_model(args.model)
    t0 = time.perf_counter()
    embeddings.embed(["warm up"], model=args.model)
    load_s = time.perf_counter() - t0

    def encode(texts):
        return embeddings.embed(texts, model=args.model, batch_size=args.batch_size)

    timings: dict = {}
    # One scoring pass over both prediction sets: every distinct text is embedded once.
    results = score_batch(golds + perturbed, golds + golds, encode, timings)
    total_s = time.perf_counter() - started

    n = len(golds)
    gold_res, pert_res = results[:n], results[n:]

    def mean(rows, key):
        return float(np.mean([r[key] for r in rows]))

    import os

    print(f"embedding model         {model}")
    print(f"machine                 {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"items                   {n} golds + {n} perturbed = {2 * n} scored pairs")
    print(f"total seconds           {total_s:.1f}  (model load {load_s:.1f}, "
          f"embedding {timings['embed_s']:.1f}, scoring {timings['score_s']:.2f})")
    print(f"distinct texts embedded {timings['texts']}")
    print(f"texts per second        {timings['texts'] / max(timings['embed_s'], 1e-9):.1f}")
    print(f"scoring work share      {100 * timings['score_s'] / total_s:.2f}% of total")
    print()
    print(f"{'subset':<12}{'n':>5}  gold: node_f1 fixed graph_f1 fixed | perturbed: node_f1 fixed graph_f1")
    for subset in SUBSETS:
        idx = [i for i, s in enumerate(subsets) if s == subset]
        g = [gold_res[i] for i in idx]
        p = [pert_res[i] for i in idx]
        print(f"{subset:<12}{len(idx):>5}  {mean(g, 'node_f1'):13.3f} {mean(g, 'node_f1_fixed'):5.3f} "
              f"{mean(g, 'graph_f1'):8.3f} {mean(g, 'graph_f1_fixed'):5.3f} | {mean(p, 'node_f1'):18.3f} "
              f"{mean(p, 'node_f1_fixed'):5.3f} {mean(p, 'graph_f1'):8.3f}")
    print(f"{'all':<12}{n:>5}  {mean(gold_res, 'node_f1'):13.3f} {mean(gold_res, 'node_f1_fixed'):5.3f} "
          f"{mean(gold_res, 'graph_f1'):8.3f} {mean(gold_res, 'graph_f1_fixed'):5.3f} | "
          f"{mean(pert_res, 'node_f1'):18.3f} {mean(pert_res, 'node_f1_fixed'):5.3f} "
          f"{mean(pert_res, 'graph_f1'):8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
