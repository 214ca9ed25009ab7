"""Hold acbench's WorfBench reference metrics against upstream's own evaluator, real embedding model.

Upstream's ``node_eval.workflow_to_graph_list`` and ``evaluator.graph_evaluator.t_eval_nodes`` /
``t_eval_graph`` are imported from a checkout of zjunlp/WorfBench (given with ``--upstream``;
never copied into acbench) and handed a ``SentenceTransformer`` loaded from the folder acbench
itself uses (all-mpnet-base-v2 by default), so upstream embeds as it always does: two encode
calls per matrix, one per gold order. Rows: every real gold whose node texts repeat (the
reference parse), in the nine subsets under ``--data-dir``, scored against itself and against
perturbed predictions (the repeated step written twice in a row, the first occurrence dropped,
the whole chain reversed, and ``bench_workflow.perturb``'s rewording/swap/drop).

acbench scores the same rows per subset, batched as the task does (every distinct node text
embedded once): ``before`` without, ``after`` with the upstream-shaped calls for pairs whose
reference matching has (nearly) tied optima (``score_batch(reference_encode=...)``). Printed:
rows, how many differ from upstream in node or graph P/R/F1 before and after, the largest
difference between a batched cosine and upstream's for the same pair of texts, and the time.

    .venv/bin/python bench/check_workflow_upstream.py --upstream /path/to/WorfBench
        [--data-dir ../shared/data/worfbench] [--model NAME] [--subsets alfworld,...]

``--upstream`` may be a checkout or a bare git directory (its ``HEAD`` is exported to a
temporary folder). Exit status 1 when any row differs after the change.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_workflow import DEFAULT_DATA, perturb  # noqa: E402

ALL_SUBSETS = ("wikihow", "toolbench", "toolalpaca", "lumos", "alfworld", "webshop", "os",
               "intercodesql", "seal_tools")
KEYS = ("node_f1", "node_precision", "node_recall", "graph_f1", "graph_precision", "graph_recall")


def chain(texts: list[str]) -> str:
    """A WorfBench answer whose nodes are ``texts`` in a single chain START -> 1 -> ... -> END."""
    n = len(texts)
    edges = ["(START,1)"] + [f"({i},{i + 1})" for i in range(1, n)] + [f"({n},END)"]
    return "Node:\n" + "".join(f"{i}: {t}\n" for i, t in enumerate(texts, 1)) + "Edge: " + " ".join(edges)


def variants(gold: str) -> dict[str, str]:
    """Predictions built around a gold's first repeated node text: the gold itself, that step
    written twice in a row, the gold without its first occurrence, the whole chain reversed."""
    from lm_eval_acbench.metrics.workflow import parse_reference

    nodes = parse_reference(gold).inner
    first = next(i for i, t in enumerate(nodes) if nodes.count(t) > 1)
    return {
        "self": gold,
        "repeat": chain(nodes[: first + 1] + [nodes[first]] + nodes[first + 1:]),
        "drop": chain(nodes[:first] + nodes[first + 1:]),
        "reverse": chain(nodes[::-1]),
    }


def predictions_for(gold: str, rng: random.Random) -> dict[str, str]:
    """:func:`variants` and ``bench_workflow.perturb``'s rewording/swap/drop of the gold."""
    return {**variants(gold), "perturbed": perturb(gold, rng)}


def has_repeated_text(gold: str) -> bool:
    from lm_eval_acbench.metrics.workflow import parse_reference

    graph = parse_reference(gold)
    return graph is not None and len(set(graph.inner)) < len(graph.inner)


@contextlib.contextmanager
def upstream_modules(source: Path):
    """Yield (node_eval, graph_evaluator) imported from a WorfBench checkout or bare git dir."""
    with tempfile.TemporaryDirectory(prefix="worfbench-upstream-") as work:
        if (source / "evaluator" / "graph_evaluator.py").is_file():
            root = source
        else:  # a bare repository: export HEAD's files
            archive = subprocess.run(["git", f"--git-dir={source}", "archive", "HEAD"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", work], input=archive, check=True)
            root = Path(work)
        commit = subprocess.run(["git", f"--git-dir={source if root != source else source / '.git'}",
                                 "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        sys.path.insert(0, str(root))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                node_eval = importlib.import_module("node_eval")
                graph_evaluator = importlib.import_module("evaluator.graph_evaluator")
            yield node_eval, graph_evaluator, commit or "unknown commit"
        finally:
            sys.path.remove(str(root))
            for name in ("node_eval", "evaluator.graph_evaluator", "evaluator", "LLM.localLLM", "LLM",
                         "prompts.eval_prompt", "prompts"):
                sys.modules.pop(name, None)


def upstream_scores(node_eval, graph_evaluator, model, pred: str, gold: str) -> dict[str, float]:
    """Upstream's node and graph P/R/F1 for one pair (0 where upstream skips the prediction)."""
    with contextlib.redirect_stdout(io.StringIO()):  # upstream prints its parse complaints
        gold_graph = node_eval.workflow_to_graph_list(gold)
        pred_graph = node_eval.workflow_to_graph_list(pred)
        if pred_graph == [] or not [n for n in pred_graph["nodes"] if n not in ("START", "END")]:
            return dict.fromkeys(KEYS, 0.0)  # upstream skips it (scored 0 in its mean) or crashes
        node = graph_evaluator.t_eval_nodes(pred_graph, gold_graph, model)
        graph = graph_evaluator.t_eval_graph(pred_graph, gold_graph, model)
    return {"node_f1": node["f1_score"], "node_precision": node["precision"],
            "node_recall": node["recall"], "graph_f1": graph["f1_score"],
            "graph_precision": graph["precision"], "graph_recall": graph["recall"]}


def differing(ours: dict, theirs: dict) -> list[str]:
    return [k for k in KEYS if abs(float(ours[k]) - float(theirs[k])) > 1e-9]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="WorfBench checkout or bare git dir")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="embedding model (default: all-mpnet-base-v2)")
    parser.add_argument("--subsets", default=",".join(ALL_SUBSETS))
    parser.add_argument("--limit", type=int, default=None, help="golds with a repeated text per subset")
    parser.add_argument("--json", type=Path, default=None, help="write every row's scores here")
    args = parser.parse_args(argv)

    import numpy as np

    from lm_eval_acbench import embeddings
    from lm_eval_acbench.metrics.workflow import parse_reference, score_batch
    from lm_eval_acbench.tasks import workflow as task

    started = time.perf_counter()
    resolved = embeddings.resolve_embedding_model(args.model)
    st_model = embeddings._load(embeddings._resolve(args.model)[1])  # the model acbench loads
    rng = random.Random(0)
    rows = []  # (subset, id, kind, pred, gold)
    for subset in args.subsets.split(","):
        golds = [r for r in task.read_subset(args.data_dir, subset)
                 if has_repeated_text(r["conversations"][-1]["content"])]
        for record in golds[: args.limit]:
            gold = record["conversations"][-1]["content"]
            for kind, pred in predictions_for(gold, rng).items():
                rows.append((subset, record["id"], kind, pred, gold))
    print(f"embedding model   {resolved}; {len(rows)} rows from "
          f"{len({(r[0], r[1]) for r in rows})} golds with a repeated node text", flush=True)

    before, after, noise, upstream_items = [], [], 0.0, 0
    ours_s = 0.0
    for subset in args.subsets.split(","):
        part = [r for r in rows if r[0] == subset]
        if not part:
            continue
        preds, golds = [r[3] for r in part], [r[4] for r in part]
        batched_rows = {}

        def encode(texts):
            vectors = embeddings.embed(texts, model=args.model)
            batched_rows.update(zip(texts, vectors))
            return vectors

        t0 = time.perf_counter()
        before += score_batch(preds, golds, encode, cosine=embeddings.cosine_matrix)
        timings: dict = {}
        after += score_batch(preds, golds, encode, timings, cosine=embeddings.cosine_matrix,
                             reference_encode=task.upstream_call_encoder(args.model))
        ours_s += time.perf_counter() - t0
        upstream_items += timings["upstream_items"]
        for pred, gold in zip(preds, golds):  # batched vs upstream-shaped cosines, graph matrix
            p, g = parse_reference(pred), parse_reference(gold)
            if p is None or g is None:
                continue
            batched = embeddings.cosine_matrix(np.stack([batched_rows[t] for t in p.nodes]),
                                               np.stack([batched_rows[t] for t in g.nodes]))
            shaped = embeddings.cosine_matrix(embeddings.encode_call(p.nodes, model=args.model),
                                              embeddings.encode_call(g.nodes, model=args.model))
            noise = max(noise, float(np.max(np.abs(batched - shaped))))

    t0 = time.perf_counter()
    theirs = []
    with upstream_modules(args.upstream) as (node_eval, graph_evaluator, commit):
        for subset, _, _, pred, gold in rows:
            theirs.append(upstream_scores(node_eval, graph_evaluator, st_model, pred, gold))
    upstream_s = time.perf_counter() - t0

    diff_before = [i for i in range(len(rows)) if differing(before[i], theirs[i])]
    diff_after = [i for i in range(len(rows)) if differing(after[i], theirs[i])]
    print(f"upstream          zjunlp/WorfBench @ {commit} ({upstream_s:.1f} s)")
    print(f"acbench           {ours_s:.1f} s for both passes; {upstream_items} of {len(rows)} rows "
          "took upstream's call shape")
    print(f"largest |cos batched - cos upstream-shaped| {noise:.3g} (graph matrices of all rows)")
    for name, diff, ours in (("before", diff_before, before), ("after", diff_after, after)):
        node = sum(1 for i in diff if any(k.startswith("node") for k in differing(ours[i], theirs[i])))
        graph = sum(1 for i in diff if any(k.startswith("graph") for k in differing(ours[i], theirs[i])))
        print(f"differ {name:<6}     {len(diff)} of {len(rows)} rows ({node} in node P/R/F1, "
              f"{graph} in graph P/R/F1)")
        for i in diff[:8]:
            subset, rid, kind = rows[i][:3]
            print(f"    {subset}/{rid}/{kind}: ours node_f1 {ours[i]['node_f1']:.4f} graph_f1 "
                  f"{ours[i]['graph_f1']:.4f}; upstream {theirs[i]['node_f1']:.4f} / "
                  f"{theirs[i]['graph_f1']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(
            [{"row": "/".join(map(str, r[:3])), "before": {k: b[k] for k in KEYS},
              "after": {k: a[k] for k in KEYS}, "upstream": t}
             for r, b, a, t in zip(rows, before, after, theirs)], indent=1))
    print(f"total             {time.perf_counter() - started:.1f} s")
    return 1 if diff_after else 0


if __name__ == "__main__":
    sys.exit(main())
