"""WorfBench reference metrics with the real all-mpnet-base-v2 on real golds with repeated texts (slow).

With a real model a text's embedding varies in its last bits with the other texts of its encode
call, and on repeated node texts those bits decide the reference's pairing. The batched scorer
(every distinct text embedded once) must still give, on every real gold with a repeated text
against itself and three predictions built around the repeated step, exactly the reference
scores computed entirely from encode calls in upstream's shape (``model.encode(list)`` per side
of every matrix). With ``ACBENCH_WORFBENCH_UPSTREAM`` pointing at a checkout (or bare git dir)
of zjunlp/WorfBench, the same rows are also held against upstream's own ``t_eval_nodes`` /
``t_eval_graph`` run on the same model. Skips without the model or the real data.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO_ROOT, shared_data_path
from test_workflow_upstream import SUBSETS, has_repeated_text, variants

from lm_eval_acbench.metrics import workflow as W

pytestmark = pytest.mark.slow
KEYS = ("node_f1", "node_precision", "node_recall", "graph_f1", "graph_precision", "graph_recall")


@pytest.fixture(scope="module")
def mpnet():
    pytest.importorskip("sentence_transformers")
    from lm_eval_acbench import embeddings

    try:
        resolved = embeddings.resolve_embedding_model(embeddings.DEFAULT_MODEL)
    except embeddings.EmbeddingModelUnavailable as exc:
        pytest.skip(f"all-mpnet-base-v2 not installed: {exc}")
    if resolved != embeddings.DEFAULT_MODEL:
        pytest.skip(f"only the stand-in {resolved} is available")
    return embeddings.DEFAULT_MODEL


@pytest.fixture(scope="module")
def scored(mpnet):
    """(rows, batched results): every real repeated-text gold x four predictions, one batch per subset."""
    from lm_eval_acbench import embeddings
    from lm_eval_acbench.tasks import workflow as T

    folder = shared_data_path("worfbench")
    rows, results = [], []
    for subset in SUBSETS:
        part = []
        for record in json.loads((folder / subset / "graph_eval.json").read_text()):
            gold = record["conversations"][-1]["content"]
            if has_repeated_text(gold):
                part += [(f"{subset}/{record['id']}/{kind}", pred, gold)
                         for kind, pred in variants(gold).items()]
        if part:
            encode, _ = T.cached_encoder(mpnet)
            results += W.score_batch([p for _, p, _ in part], [g for _, _, g in part], encode,
                                     cosine=embeddings.cosine_matrix,
                                     reference_encode=T.upstream_call_encoder(mpnet))
            rows += part
    assert len(rows) > 100
    return rows, results


def test_batched_equals_upstream_call_shape_on_repeated_texts(mpnet, scored):
    from lm_eval_acbench import embeddings
    from lm_eval_acbench.tasks import workflow as T

    call = T.upstream_call_encoder(mpnet)

    def upstream_sim(left, right):
        return np.maximum(embeddings.cosine_matrix(call(left), call(right)), 0.0)

    rows, results = scored
    differing = []
    for (key, pred_text, gold_text), ours in zip(rows, results):
        pred, gold = W.parse_reference(pred_text), W.parse_reference(gold_text)
        node = W.reference_node_scores(pred, gold, upstream_sim)
        graph = W.reference_graph_scores(pred, gold, upstream_sim)
        expected = {"node_f1": node["f1"], "node_precision": node["precision"],
                    "node_recall": node["recall"], "graph_f1": graph["f1"],
                    "graph_precision": graph["precision"], "graph_recall": graph["recall"]}
        if any(abs(ours[k] - expected[k]) > 1e-12 for k in KEYS):
            differing.append(key)
    assert differing == []
    # every gold against itself ties (its repeated texts match each other), so those took the call shape
    assert all(r["upstream_shape"] for (key, _, _), r in zip(rows, results) if key.endswith("/self"))


def test_batched_equals_upstream_evaluator(mpnet, scored):
    source = os.environ.get("ACBENCH_WORFBENCH_UPSTREAM")
    if not source or not Path(source).exists():
        pytest.skip("set ACBENCH_WORFBENCH_UPSTREAM to a zjunlp/WorfBench checkout (or bare git dir) "
                    "to compare with upstream itself")
    from lm_eval_acbench import embeddings

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from check_workflow_upstream import upstream_modules, upstream_scores

    model = embeddings._load(embeddings._resolve(mpnet)[1])
    rows, results = scored
    differing = []
    with upstream_modules(Path(source)) as (node_eval, graph_evaluator, _):
        for (key, pred, gold), ours in zip(rows, results):
            theirs = upstream_scores(node_eval, graph_evaluator, model, pred, gold)
            if any(abs(ours[k] - theirs[k]) > 1e-12 for k in KEYS):
                differing.append(key)
    assert differing == []
