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
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import REPO_ROOT, shared_data_path

from lm_eval_acbench.metrics import workflow as W

# The prediction builders are the upstream check script's, so the test and the check hold the
# same rows against upstream.
sys.path.insert(0, str(REPO_ROOT / "bench"))
from check_workflow_upstream import chain, has_repeated_text, variants  # noqa: E402

UPSTREAM = "zjunlp/WorfBench @ the default branch fetched on 2026-12-01"
FIXTURE = Path(__file__).parent / "fixtures" / "worfbench_upstream_repeated.json"
SUBSETS = ("wikihow", "toolbench", "toolalpaca", "lumos", "alfworld", "webshop", "os")


def exact(left, right):
    """Cosine of one-hot embeddings: 1.0 for equal texts, else 0.0."""
    table = [[1.0 if a == b else 0.0 for b in right] for a in left]
    return np.array(table, dtype=np.float64).reshape(len(left), len(right))


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


# --- which pairs take upstream's encode-call shape ------------------------------------------------


def _brute_force_gap(weights, threshold):
    """Every matching of the candidate pairs enumerated: best total minus the next one."""
    import itertools

    n, m = weights.shape
    pairs = [(i, j) for i in range(n) for j in range(m) if weights[i, j] > threshold]
    totals = []
    for size in range(len(pairs) + 1):
        for subset in itertools.combinations(pairs, size):
            if len({i for i, _ in subset}) == size and len({j for _, j in subset}) == size:
                totals.append(sum(weights[i, j] for i, j in subset))
    totals.sort(reverse=True)
    return totals[0] - totals[1] if len(totals) > 1 else float("inf")


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.integers(1, 4).flatmap(
            lambda m: st.lists(
                st.sampled_from([0.0, 0.61, 0.7, 0.9, 1.0]) | st.floats(0, 1),
                min_size=n * m,
                max_size=n * m,
            ).map(lambda v: np.array(v, dtype=np.float64).reshape(n, m))
        )
    )
)
def test_matching_gap_is_the_gap_to_the_next_matching(weights):
    from lm_eval_acbench.metrics.matching import matching_gap

    assert matching_gap(weights, 0.6) == pytest.approx(_brute_force_gap(weights, 0.6), abs=1e-12)


def test_repeated_texts_are_fragile_distinct_ones_are_not():
    gold = W.parse_reference(chain(TOILET))
    assert W.reference_is_fragile(gold, gold, exact)
    distinct = W.parse_reference(chain(["open door", "walk", "sit"]))
    assert not W.reference_is_fragile(distinct, distinct, exact)
    # a repeated text nothing matches cannot tie: no candidate pair involves it
    lonely = W.parse_reference(chain(["a", "b", "a"]))
    other = W.parse_reference(chain(["b", "c"]))
    assert not W.reference_is_fragile(other, lonely, exact)
    # different texts whose similarities are equal, or one a hair above the threshold
    near = W.parse_reference(chain(["x", "y"]))
    assert W.reference_is_fragile(near, near, lambda l, r: np.full((len(l), len(r)), 0.9))
    def diagonal(value):
        return lambda left, right: np.where(np.eye(len(left), len(right), dtype=bool), value, 0.0)

    assert W.reference_is_fragile(near, near, diagonal(W.THRESHOLD + W.FLOAT_NOISE / 2))
    assert not W.reference_is_fragile(near, near, diagonal(W.THRESHOLD + 3 * W.FLOAT_NOISE))


def _one_hot(texts):
    vocab = sorted(set(texts)) or [""]
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i, vocab.index(t)] = 1.0
    return out


def test_score_batch_calls_the_reference_shape_only_for_fragile_pairs():
    """The calls are exactly upstream's lists (pred without START/END, each gold order, then both
    full node lists), and their vectors decide the reference scores of that pair."""
    calls = []

    def reference_encode(texts):
        # a call-dependent embedding: a text's vector leans towards the text written after it
        calls.append(list(texts))
        vocab = sorted(set(TOILET) | {"START", "END", "take sponge again"})
        out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, vocab.index(t)] = 1.0
            if i + 1 < len(texts):
                out[i, vocab.index(texts[i + 1])] += 1e-3
        return out

    repeated, plain = chain(TOILET), chain(["take sponge", "go to sink", "clean sponge"])
    results = W.score_batch([repeated, plain], [repeated, plain], _one_hot, timings := {},
                            reference_encode=reference_encode)
    assert [r["upstream_shape"] for r in results] == [True, False]
    assert timings["upstream_items"] == 1 and timings["upstream_calls"] == len(calls) == 2
    assert calls == [TOILET, ["START", *TOILET, "END"]]  # pred list == its gold order here: one memo

    pred, gold = W.parse_reference(repeated), W.parse_reference(repeated)

    def upstream_sim(left, right):
        a, b = reference_encode(left), reference_encode(right)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        return np.maximum(a @ b.T, 0.0)

    # the batched one-hot rows tie exactly and pair the two "go to toilet" crosswise (0.667); the
    # call-shaped rows break the tie in order
    assert W.reference_node_scores(pred, gold, exact)["f1"] == pytest.approx(2 / 3)
    assert results[0]["node_f1"] == W.reference_node_scores(pred, gold, upstream_sim)["f1"] == 1.0
    assert results[0]["graph_f1"] == W.reference_graph_scores(pred, gold, upstream_sim)["f1"]
    assert results[0]["node_f1_fixed"] == 1.0  # quirk-free scores keep the batched vectors
    plain_graph = W.parse_reference(plain)
    assert results[1]["node_f1"] == W.reference_node_scores(plain_graph, plain_graph, exact)["f1"] == 1.0
