"""Benchmark: WorfBench scoring of the 1,423 real items of the seven subsets, in one run.

Scores two prediction sets against the golds with the real embedding model (default
all-mpnet-base-v2): the golds themselves, and a perturbed copy made here (nodes reworded,
swapped, dropped; edges kept or thinned), the way ``acbench_workflow`` scores them: the gold
node texts' rows from the disk store (:func:`lm_eval_acbench.embeddings.stored_embed`), every
other distinct node text embedded once, then the pure scorers. The first batched run starts from
an empty store (every text embedded, the gold rows written: what a first run of the task costs);
``--repeats`` more runs read the gold rows back (every later run: another model, another
checkpoint), and their median is reported. Both give the pairs whose reference matching has
(nearly) tied optima (repeated node texts) their reference scores from encode calls in
WorfBench's own shape, as the task does; their count and cost are printed. With ``--per-item``
also the per-item path (every item embeds its own node texts in its own encode call, as
WorfBench's evaluator does, and the same upstream-shaped calls for tied pairs), the ratios
measured in the same run, how many pairs score identically on both, and the largest difference
between a batched and a per-item cosine of the same two texts. A line ``TIME FOR ALL <n>
ITEMS`` gives the totals.

    .venv/bin/python bench/bench_workflow.py [--data-dir ../shared/data/worfbench] [--model NAME]
        [--limit N]   (N items per subset, for a quick look)  [--threads N] [--batch-size N]
        [--repeats N] [--per-item] [--store DIR]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
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
    parser.add_argument("--batch-size", type=int, default=None, help="per-item path's batch (default: the task's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each path after the cold batched run; the median is reported")
    parser.add_argument("--store", type=Path, default=None,
                        help="gold-row store folder (default: a fresh temporary one, removed at the end)")
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
    from lm_eval_acbench.tasks import workflow as workflow_task
    from lm_eval_acbench.tasks.workflow import read_subset

    args.batch_size = args.batch_size or embeddings.BATCH_SIZE

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
    # A fresh, empty store unless --store is given: the first batched run is then cold (every
    # text embedded, the gold rows written), the later ones read the gold rows back.
    store = args.store or Path(tempfile.mkdtemp(prefix="acbench-bench-vectors-"))
    os.environ[embeddings.VECTOR_STORE_ENV] = str(store)
    gold_texts = workflow_task.gold_node_texts(golds)
    other_texts = len(set(workflow_task.gold_node_texts(preds)) - set(gold_texts))

    def encode_per_call(texts):
        return embeddings.embed(texts, model=args.model, batch_size=args.batch_size)

    def batched():
        """The task's path: gold rows from the store, every other distinct text embedded once."""
        workflow_task._vector_cache.clear()
        workflow_task._call_cache.clear()  # every run pays for its upstream-shaped calls
        timings: dict = {}
        started = time.perf_counter()
        encode, _ = workflow_task.cached_encoder(args.model)
        encode.seed(gold_texts)
        timings["gold_s"] = time.perf_counter() - started
        results = score_batch(preds, refs, encode, timings, cosine=embeddings.cosine_matrix,
                              reference_encode=workflow_task.upstream_call_encoder(args.model))
        return time.perf_counter() - started, results, timings

    def per_item(keep_rows=None):
        """Every item embeds its own node texts in its own encode call (WorfBench's way)."""
        workflow_task._call_cache.clear()
        reference_encode = workflow_task.upstream_call_encoder(args.model)
        started = time.perf_counter()
        cosine = embeddings.cosine_matrix
        results = []
        for p, g in zip(preds, refs):
            rows = {}

            def encode(texts, rows=rows):
                vectors = encode_per_call(texts)
                rows.update(zip(texts, vectors))
                return vectors

            results.append(score_batch([p], [g], encode if keep_rows is not None else encode_per_call,
                                       cosine=cosine, reference_encode=reference_encode)[0])
            if keep_rows is not None:
                keep_rows.append(rows)
        return time.perf_counter() - started, results

    def largest_cosine_difference(item_rows):
        """max |cos(batched rows) - cos(the item's own rows)| over every pair's graph matrix."""
        import numpy as np

        from lm_eval_acbench.metrics.workflow import parse_reference

        batched_rows = {text: row for (_, text), row in workflow_task._vector_cache.items()}
        worst = 0.0
        for p, g, rows in zip(preds, refs, item_rows):
            pred, gold = parse_reference(p), parse_reference(g)
            if pred is None or gold is None:
                continue
            a = embeddings.cosine_matrix(np.stack([batched_rows[t] for t in pred.nodes]),
                                         np.stack([batched_rows[t] for t in gold.nodes]))
            b = embeddings.cosine_matrix(np.stack([rows[t] for t in pred.nodes]),
                                         np.stack([rows[t] for t in gold.nodes]))
            worst = max(worst, float(np.max(np.abs(a - b))))
        return worst

    def describe(run):
        seconds, _, timings = run
        return (f"{seconds:.1f} s (gold rows {timings['gold_s']:.1f} s; encode call {timings['embed_s']:.1f} s "
                f"over {timings['texts']} distinct texts, {other_texts} of them not gold; "
                f"scoring {timings['score_s']:.2f} s; upstream-shaped calls for {timings['upstream_items']} "
                f"tied pairs: {timings['upstream_calls']} calls, {timings['upstream_s']:.1f} s)")

    print(f"embedding model         {model} (batch size {args.batch_size}, "
          f"{torch_threads()} torch threads, {os.cpu_count()} CPUs)")
    print(f"items                   {len(golds)} golds + {len(golds)} perturbed = {len(preds)} scored pairs; "
          f"{len(gold_texts)} distinct gold node texts")
    print(f"model load              {load_s:.1f} s (not counted below)")
    print(f"vector store            {store}", flush=True)
    cold = batched()
    print(f"batched, cold store     {describe(cold)}", flush=True)
    warm_runs = [batched() for _ in range(max(1, args.repeats))]
    fast_s = statistics.median(r[0] for r in warm_runs)
    print(f"batched, gold rows kept {fast_s:.1f} s median of {len(warm_runs)} "
          f"({[round(r[0], 1) for r in warm_runs]}); first: {describe(warm_runs[0])}")
    results = cold[1]
    differing_warm = _differing(results, warm_runs[0][1])
    print(f"cold vs kept rows       {len(preds) - len(differing_warm)} of {len(preds)} pairs score identically"
          + (f"; differing: {differing_warm[:10]}" if differing_warm else ""))
    print(f"TIME FOR ALL {len(golds)} ITEMS  cold {cold[0]:.1f} s, gold rows kept {fast_s:.1f} s "
          f"({len(preds)} scored pairs)")
    if args.per_item:
        item_rows: list = []
        item_runs = [per_item(item_rows if i == 0 else None) for i in range(max(1, args.repeats))]
        item_s = statistics.median(r[0] for r in item_runs)
        differing = _differing(results, item_runs[0][1])
        print(f"per-item path           {item_s:.1f} s median of {len(item_runs)} "
              f"({[round(r[0], 1) for r in item_runs]})")
        print(f"speed-up                {item_s / max(cold[0], 1e-9):.2f}x cold, "
              f"{item_s / max(fast_s, 1e-9):.2f}x gold rows kept (per-item / batched)")
        print(f"identical scores        {len(preds) - len(differing)} of {len(preds)} pairs (cold batched vs per-item)"
              + (f"; differing: {differing[:10]}" if differing else ""))
        print(f"largest cosine change   {largest_cosine_difference(item_rows):.3g} between batched and "
              f"per-item rows of the same two texts (graph matrices of all {len(preds)} pairs)")
        print(f"upstream-shaped pairs   batched {sum(r.get('upstream_shape', False) for r in results)}, "
              f"per-item {sum(r.get('upstream_shape', False) for r in item_runs[0][1])}")
    print(f"load average            {os.getloadavg()[0]:.1f} at the end")
    print()
    _print_table(results[: len(golds)], results[len(golds):], subsets)
    if not args.store:
        shutil.rmtree(store, ignore_errors=True)
    return 0


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _differing(a: list[dict], b: list[dict]) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b)) if any(abs(x[m] - y[m]) > 1e-9 for m in METRICS)]


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
