"""WorfBench reference metrics against the upstream evaluator's own numbers on repeated node texts.

Repeated texts (alfworld golds going to the same place twice, predictions repeating a step) make
the node matching tie; upstream (zjunlp/WorfBench ``evaluator/graph_evaluator.py``) resolves the
tie inside ``networkx.max_weight_matching`` and the LIS / position-based edge comparison then
depend on which pairing won. The expected numbers below were produced by running upstream's
``node_eval.workflow_to_graph_list`` + ``t_eval_nodes`` / ``t_eval_graph`` (commit in
``UPSTREAM``) with a stand-in sentence model whose embeddings are one-hot per distinct text, so
that every similarity is exactly 1.0 or 0.0 on both sides and the comparison is exact; the same
similarity (:func:`exact`) is fed to our scorers here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import shared_data_path

from lm_eval_acbench.metrics import workflow as W

UPSTREAM = "zjunlp/WorfBench @ the default branch fetched on 2026-12-01"
FIXTURE = Path(__file__).parent / "fixtures" / "worfbench_upstream_repeated.json"
SUBSETS = ("wikihow", "toolbench", "toolalpaca", "lumos", "alfworld", "webshop", "os")


def exact(left, right):
    """Cosine of one-hot embeddings: 1.0 for equal texts, else 0.0."""
    table = [[1.0 if a == b else 0.0 for b in right] for a in left]
    return np.array(table, dtype=np.float64).reshape(len(left), len(right))


def chain(texts):
    n = len(texts)
    edges = ["(START,1)"] + [f"({i},{i + 1})" for i in range(1, n)] + [f"({n},END)"]
    return "Node:\n" + "".join(f"{i}: {t}\n" for i, t in enumerate(texts, 1)) + "Edge: " + " ".join(edges)


def variants(gold_text: str) -> dict[str, str]:
    """Predictions built from a gold whose node texts repeat: the gold itself, the first repeated
    step written twice in a row, the gold without the first occurrence of that step, reversed."""
    nodes = W.parse_reference(gold_text).inner
    first = next(i for i, t in enumerate(nodes) if nodes.count(t) > 1)
    return {
        "self": gold_text,
        "repeat": chain(nodes[: first + 1] + [nodes[first]] + nodes[first + 1 :]),
        "drop": chain(nodes[:first] + nodes[first + 1 :]),
        "reverse": chain(nodes[::-1]),
    }


def has_repeated_text(gold_text: str) -> bool:
    graph = W.parse_reference(gold_text)
    return graph is not None and len(set(graph.inner)) < len(graph.inner)


def ours(pred_text, gold_text):
    pred, gold = W.parse_reference(pred_text), W.parse_reference(gold_text)
    return W.reference_node_scores(pred, gold, exact)["f1"], W.reference_graph_scores(pred, gold, exact)["f1"]


# Hand-written golds with a repeated step; upstream's (node F1, graph F1) for each prediction.
TOILET = ["go to toilet", "take sponge", "go to sink", "clean sponge", "go to toilet", "put sponge"]
HAND_CASES = {
    "gold itself": (chain(TOILET), chain(TOILET)),
    "prediction repeats a step": (chain(TOILET[:2] + TOILET[1:]), chain(TOILET)),
    "prediction says the repeated step once": (chain(TOILET[:4] + TOILET[5:]), chain(TOILET)),
    "repeated step in a shorter gold": (
        chain(["open door", "walk", "open door"]),
        chain(["open door", "walk", "open door"]),
    ),
}


def _fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_hand_cases_match_upstream(name):
    expected = _fixture()["hand"][name]
    node_f1, graph_f1 = ours(*HAND_CASES[name])
    assert node_f1 == pytest.approx(expected[0], abs=1e-12)
    assert graph_f1 == pytest.approx(expected[1], abs=1e-12)


def test_real_golds_with_repeated_texts_match_upstream():
    folder = shared_data_path("worfbench")
    expected = _fixture()["real"]
    compared = 0
    for subset in SUBSETS:
        for record in json.loads((folder / subset / "graph_eval.json").read_text()):
            gold = record["conversations"][-1]["content"]
            if not has_repeated_text(gold):
                continue
            for kind, pred in variants(gold).items():
                key = f"{subset}/{record['id']}/{kind}"
                node_f1, graph_f1 = ours(pred, gold)
                assert (node_f1, graph_f1) == pytest.approx(tuple(expected[key]), abs=1e-12), key
                compared += 1
    assert compared == len(expected) and compared > 100


def test_quirk_free_metrics_keep_repeated_texts_distinct():
    gold = chain(TOILET)
    pred, gold_graph = W.parse_lenient(gold), W.parse_lenient(gold)
    assert W.fixed_node_scores(pred, gold_graph, exact)["f1"] == 1.0
    assert W.fixed_graph_scores(pred, gold_graph, exact)["f1"] == 1.0


def _networkx_matching(weights, threshold):
    """The reference's construction, spelled out: edges (i, str(j)) above the threshold."""
    import networkx as nx

    graph = nx.Graph()
    for i in range(weights.shape[0]):
        for j in range(weights.shape[1]):
            if weights[i, j] > threshold:
                graph.add_edge(i, str(j), weight=weights[i, j])
    mapping = [-1] * weights.shape[0]
    for a, b in nx.max_weight_matching(graph):
        i, j = (a, b) if isinstance(a, int) else (b, a)
        mapping[i] = int(j)
    return mapping


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda n: st.integers(1, 7).flatmap(
            lambda m: st.lists(
                st.sampled_from([0.0, 0.61, 0.7, 0.8, 0.9, 1.0]) | st.floats(0, 1),
                min_size=n * m,
                max_size=n * m,
            ).map(lambda v: np.array(v, dtype=np.float64).reshape(n, m))
        )
    )
)
def test_reference_matching_is_networkx_matching(weights):
    from lm_eval_acbench.metrics.matching import reference_matching

    assert reference_matching(weights, 0.6) == _networkx_matching(weights, 0.6)
