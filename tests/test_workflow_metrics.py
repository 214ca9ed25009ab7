"""WorfBench scorers: reference quirks, the quirk-free variant, and parser robustness (hypothesis).

Similarity here is exact text equality (1.0 / 0.0): it makes every expected number derivable by
hand from the reference rules, independent of any embedding model.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm_eval_acbench.metrics import workflow as W


def exact(left, right):
    table = [[1.0 if a == b else 0.0 for b in right] for a in left]
    return np.array(table, dtype=float).reshape(len(left), len(right))


def chain(texts):
    n = len(texts)
    edges = ["(START,1)"] + [f"({i},{i + 1})" for i in range(1, n)] + [f"({n},END)"]
    return "Node:\n" + "".join(f"{i}: {t}\n" for i, t in enumerate(texts, 1)) + "Edge: " + " ".join(edges)


def parallel(texts):
    n = len(texts)
    edges = [f"(START,{i}) ({i},END)" for i in range(1, n + 1)]
    return "Node:\n" + "".join(f"{i}: {t}\n" for i, t in enumerate(texts, 1)) + "Edge: " + " ".join(edges)


STEPS = [f"step {c}" for c in "ABCDEFGHIJKL"]


def ref(pred_text, gold_text):
    pred, gold = W.parse_reference(pred_text), W.parse_reference(gold_text)
    return W.reference_node_scores(pred, gold, exact), W.reference_graph_scores(pred, gold, exact)


def fixed(pred_text, gold_text):
    pred, gold = W.parse_lenient(pred_text), W.parse_lenient(gold_text)
    return W.fixed_node_scores(pred, gold, exact), W.fixed_graph_scores(pred, gold, exact)


# --- parsing ----------------------------------------------------------------------------------


def test_reference_parser_positions_and_ends():
    graph = W.parse_reference("Node:\n1: a\n2. b\n3: c\nEdge: (START,1) (1, 2) ( 2 ,3) (3,END)")
    assert graph.nodes == ["START", "a", "b", "c", "END"]
    assert graph.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]


@pytest.mark.parametrize(
    "text",
    ["1: a\n2: b\nEdge: (START,1) (1,2) (2,END)", "Node:\n1: a\n2: b\n", "", "Node: nothing numbered"],
)
def test_reference_parser_rejects(text):
    assert W.parse_reference(text) is None


def test_reference_parser_needs_space_after_separator():
    graph = W.parse_reference("Node:\n1.a\n2.b\nEdge: (START,1) (1,2) (2,END)")
    assert graph is not None and graph.inner == []
    node, graph_scores = ref("Node:\n1.a\n2.b\nEdge: (START,1) (1,2) (2,END)", chain(["a", "b"]))
    assert node["f1"] == 0.0  # the reference crashes here; we score 0


def test_lenient_parser_numbers_and_restart():
    text = "Node:\n1.a\n2) b\n3:c\nThe plan restated:\n1. a again\nEdge: (START,1) (1,3) (3,2) (2,END) (2,9)"
    graph = W.parse_lenient(text)
    assert graph.inner == ["a", "b", "c"]
    assert graph.edges == [(0, 1), (1, 3), (3, 2), (2, 4)]  # the edge to missing node 9 is dropped


def test_reference_regex_equivalence_on_digit_runs():
    # The look-behind form must give the same nodes as the reference's plain `\d+[:.] (.+)`.
    import re

    plain = re.compile(r"\d+[:.] (.+)")
    for text in ["Node:\n12: a\n1.5. b\nv2: c\n3333. d\n 7: e", "Node: 1: x 2: y\n10. z"]:
        assert W.parse_reference(text + "\n(START,1)").inner == [m.strip() for m in plain.findall(text)]


# --- reference quirks ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, expected", [(3, 1.0), (7, 1.0), (8, 8 / 9), (9, 0.9), (10, 10 / 11)])
def test_gold_against_itself_raw_list_quirk(n, expected):
    text = chain(STEPS[:n])
    node, _ = ref(text, text)
    assert node["f1"] == pytest.approx(expected)
    assert fixed(text, text)[0]["f1"] == 1.0


@pytest.mark.parametrize("n, expected", [(3, 1.0), (4, 0.75), (5, 0.6), (7, 3 / 7)])
def test_parallel_gold_misses_its_own_order(n, expected):
    text = parallel(STEPS[:n])
    node, graph = ref(text, text)
    assert node["f1"] == pytest.approx(expected)
    assert graph["f1"] == 1.0
    assert fixed(text, text) == ({"precision": 1.0, "recall": 1.0, "f1": 1.0},) * 2


def test_lis_starts_at_one_when_nothing_matches():
    node, _ = ref(chain(["x", "y", "z", "w"]), chain(["a", "b"]))
    # correct = 1 although nothing matched: P = 1/4, R = 1/2
    assert node == pytest.approx({"precision": 0.25, "recall": 0.5, "f1": 1 / 3})
    assert fixed(chain(["x", "y", "z", "w"]), chain(["a", "b"]))[0]["f1"] == 0.0
    assert W.lis_from_one([-1, -1]) == 1 and W.lis_from_one([]) == 0
    assert W.lis_from_one([2, 0, 1, -1, 3]) == 3


def test_no_edges_means_zero_even_with_perfect_nodes():
    text = "Node:\n1: a\n2: b\n"
    node, graph = ref(text, chain(["a", "b"]))
    assert node["f1"] == 0.0 and graph["f1"] == 0.0
    assert fixed(text, chain(["a", "b"]))[0]["f1"] == 1.0  # quirk-free node F1 needs no edges


def test_order_matters_through_lis():
    node, _ = ref(chain(["c", "a", "b"]), chain(["a", "b", "c"]))
    assert node["f1"] == pytest.approx(2 / 3)  # LIS of gold positions [2, 0, 1] is 2


def test_graph_f1_compares_edges_by_position():
    # Same nodes in another order: the matching is perfect, but the edges are compared by
    # position, so the reference sees (1,2) in both although it means different node pairs.
    gold = chain(["a", "b", "c"])
    pred = "Node:\n1: b\n2: a\n3: c\nEdge: (START,2) (2,1) (1,3) (3,END)"
    _, graph = ref(pred, gold)
    # matched: all five; shared by position: (1,3)? gold edges (0,1)(1,2)(2,3)(3,4); pred edges
    # (0,2)(2,1)(1,3)(3,4) -> shared (3,4) only -> largest component 2 of 5 nodes.
    assert graph["f1"] == pytest.approx(0.4)
    _, fixed_graph = fixed(pred, gold)
    assert fixed_graph["f1"] == 1.0  # through the matching every edge is right


def test_quirk_free_uses_prediction_graph_order():
    # Written 1..4 but the edges say 1 -> 4 -> 2 -> 3: the gold against itself is 1.0 only when
    # the prediction is read in its own graph's order.
    text = "Node:\n1: a\n2: b\n3: c\n4: d\nEdge: (START,1) (1,4) (4,2) (2,3) (3,END)"
    assert fixed(text, text)[0]["f1"] == 1.0
    assert W.prediction_sequence(W.parse_lenient(text)) == [0, 3, 1, 2]


def test_quirk_free_partial_order_beyond_twenty_orders():
    # 7 parallel gold nodes have 5040 orders; any prediction order of the same nodes is right.
    gold = parallel(STEPS[:7])
    pred = chain(list(reversed(STEPS[:7])))
    assert fixed(pred, gold)[0]["f1"] == 1.0
    # with a chain gold the reversed prediction keeps one node in order
    assert fixed(pred, chain(STEPS[:7]))[0]["f1"] == pytest.approx(1 / 7)


def test_consistent_matches_is_max_over_linear_extensions():
    # gold: 0 -> 1, 2 free. prediction order [1, 2, 0]: best extension 2,?.. -> {1,2} or {2,0}: 2
    before = np.zeros((3, 3), dtype=bool)
    before[0, 1] = True
    assert W.consistent_matches([1, 2, 0], before) == 2
    assert W.consistent_matches([0, 1, 2], before) == 3
    assert W.consistent_matches([-1, -1], before) == 0


def test_score_batch_embeds_each_text_once():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        vocab = sorted(set(texts))
        out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, vocab.index(t)] = 1.0
        return out

    gold = chain(["a", "b"])
    results = W.score_batch([gold, "junk", chain(["b", "a"])], [gold, gold, gold], encode, timings := {})
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))
    assert [r["node_f1"] for r in results] == [1.0, 0.0, 0.5]
    assert [r["parse_rate"] for r in results] == [1.0, 0.0, 1.0]
    assert results[1]["reason"].startswith("prediction unparseable")
    assert timings["texts"] == len(calls[0]) and timings["score_s"] >= 0


# --- robustness (hypothesis) --------------------------------------------------------------------

junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
pieces = st.lists(
    st.one_of(
        junk,
        st.sampled_from(["Node:", "Edge:", "START", "END", "(START,1)", "(1,END)", "(1,1)", "(2,1)", "\n"]),
        st.builds(lambda n, t: f"{n}: {t}\n", st.integers(0, 30), st.text(max_size=20)),
        st.builds(lambda a, b: f"({a},{b})", st.integers(0, 40), st.integers(0, 40)),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces, pieces)
def test_scorers_never_raise_and_stay_in_range(pred_text, gold_text):
    gold_text = gold_text if W.parse_reference(gold_text) else chain(["a", "b", "c"])
    for scores in (*ref(pred_text, gold_text), *fixed(pred_text, gold_text)):
        assert set(scores) == {"precision", "recall", "f1"}
        assert all(0.0 <= value <= 1.0 for value in scores.values())


@settings(max_examples=100, deadline=None)
@given(pieces)
def test_parsers_are_consistent(text):
    graph = W.parse_reference(text)
    if graph is not None:
        assert "Node" in text and graph.edges
        assert graph.nodes[0] == "START" and graph.nodes[-1] == "END"
        assert all(u >= 0 and v >= 0 for u, v in graph.edges)
    lenient = W.parse_lenient(text)
    assert lenient.nodes[0] == "START" and lenient.nodes[-1] == "END"
    assert all(0 <= u < len(lenient.nodes) and 0 <= v < len(lenient.nodes) for u, v in lenient.edges)


def test_enormous_and_hostile_outputs_are_fast():
    import time

    hostile = [
        "Node:\n" + "1" * 200_000,
        "Node:\n" + "(1," * 50_000,
        "Node:\n1: " + " " * 100_000 + "x\nEdge: (START,1) (1,END)",
        "Node:\n" + "".join(f"{i}: node {i}\n" for i in range(1, 3000)) + "Edge: (START,1)",
        "Node:\n1: \u202e\u0000\ufffd🙂\nEdge: (START,1) (1,1) (1,END) (END,START)",
    ]
    started = time.perf_counter()
    for text in hostile:
        W.parse_reference(text)
        W.parse_lenient(text)
    assert time.perf_counter() - started < 5.0
    node, _ = ref(hostile[-1], chain(["a"]))
    assert 0.0 <= node["f1"] <= 1.0
