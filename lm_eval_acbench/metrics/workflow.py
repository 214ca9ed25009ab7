"""WorfBench workflow scoring: graph parsing, node-chain F1 and graph F1 (pure functions).

Two families of scores are computed from the same similarity matrices:

**Reference** (``node_*``, ``graph_*``): what WorfBench's own evaluator returns, quirks included.

* Parsing (:func:`parse_reference`): the text must contain ``Node``; node texts are every match of
  ``\\d+[:.] (.+)`` anywhere in the text (a space after the separator is required), stripped;
  ``START`` and ``END`` become nodes 0 and n+1; edges are every match of
  ``\\(\\s*(\\d+|START)\\s*,\\s*(\\d+|END)\\s*\\)`` with START -> 0 and END -> n+1; node numbers are
  taken as positions. No edge -> unparseable -> every score 0.
* Node F1 (:func:`reference_node_scores`): gold orders are the first 20 topological orders
  (networkx's enumeration order) of the gold graph with START/END removed -- but when the gold has
  10 or more nodes counting START/END, the single raw node list *including* the strings "START"
  and "END". Predicted nodes are the parsed nodes without START/END, in generation order. For
  each gold order: similarity = cosine clipped at 0; pairs with similarity > 0.6 are candidates;
  maximum-weight bipartite matching computed as the reference does (networkx's
  ``max_weight_matching`` on the same graph, :func:`~lm_eval_acbench.metrics.matching.reference_matching`),
  so that repeated node texts, whose similarities tie, pair up as they do there;
  ``correct`` = length of the longest strictly increasing
  subsequence of matched gold positions in prediction order, where the dynamic programme starts
  every position at 1 (so ``correct >= 1`` even when nothing matched); P = correct/|pred|,
  R = correct/|gold order|, F1 = 2PR/(P+R). The first order with the highest F1 wins.
  No predicted node (e.g. ``1.Do`` without a space) -> 0 (the reference crashes there).
* Graph F1 (:func:`reference_graph_scores`): matching as above over all nodes *with* START/END;
  an edge is shared when the predicted edge, as a pair of *predicted* positions, also appears
  among the gold edges between matched gold nodes, as a pair of *gold* positions (edges are
  compared by position, not through the matching); P = |largest connected component of the
  matched predicted nodes under shared edges| / |pred nodes|, R likewise over gold nodes.

**Quirk-free** (``node_f1_fixed``, ``graph_f1_fixed``): the same idea without the quirks.

* Parsing (:func:`parse_lenient`): node lines ``<n>[:.)] text`` at line start, space optional; no
  ``Node`` keyword or edges needed; edge numbers are resolved through the stated node numbers
  (edges to missing nodes are dropped).
* Node F1 (:func:`fixed_node_scores`): START/END never take part; ``correct`` is the largest set
  of matched predicted nodes whose prediction order is consistent with the gold partial order
  (= the best LIS over *all* topological orders, computed exactly as a maximum antichain via
  Dilworth's theorem, no 20-order cap); ``correct`` = 0 when nothing matched; ties between equal
  similarities (repeated node texts) are broken towards position-consistent pairs.
* The predicted sequence is the order the prediction's own graph implies (Kahn's algorithm, ties
  by writing order; the written order when it has no edges or a cycle), so a gold whose node
  numbering is not a topological order of its edges still scores 1.0 against itself.
* Graph F1 (:func:`fixed_graph_scores`): edge F1 through the node matching: START/END match each
  other; a predicted edge is correct when its image under the node matching is a gold edge;
  P = correct/|pred edges|, R = correct/|gold edges|.

Every scorer takes a similarity callable ``sim(pred_texts, gold_texts) -> ndarray`` (cosine
similarities, any shape-compatible function), so this module holds no model.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from lm_eval_acbench.metrics.matching import lis_from_one, matching_gap, reference_matching

THRESHOLD = 0.6
MAX_ORDERS = 20
RAW_NODE_LIMIT = 10  # golds with this many nodes (START/END counted) skip the topological orders
TIE_EPSILON = 1e-6
# Size limits of :func:`score_batch` (the largest WorfBench gold has 24 nodes and 2,739
# characters): a longer text or a graph with more nodes scores 0 with the reason instead of
# being parsed and matched (matching and the antichain are polynomial in the node count).
MAX_TEXT_CHARS = 100_000
MAX_NODES = 100
# Bound on how far one cosine may move when the same texts are embedded in differently shaped
# encode calls (other texts in the batch, so another padding length). Measured with
# all-mpnet-base-v2 on the 2-core CPU (docs/workflow.md): at most 4.8e-7 between the batched rows
# and upstream's call shape over the 235 tied WorfBench rows, at most 9.2e-7 between batched and
# per-item rows over all 2,846 pairs of the benchmark; FLOAT_NOISE leaves 10x room.
FLOAT_NOISE = 1e-5

# The reference's node regex is ``\d+[:.] (.+)``. With re.findall a match can only start at the
# first digit of a run of digits (a later start fails the same way, and every match runs to the
# end of its line), so the look-behind gives the same matches in linear instead of quadratic time.
_REF_NODE = re.compile(r"(?<!\d)\d+[:.] (.+)")
_EDGE = re.compile(r"\(\s*(\d+|START)\s*,\s*(\d+|END)\s*\)")
_LENIENT_NODE = re.compile(
    r"^[ \t>*#-]*(?:node[ \t]*)?(\d+)[ \t]*[:.)][ \t]*(\S.*)$", re.IGNORECASE | re.MULTILINE
)
_EDGE_HEADER = re.compile(r"^[ \t>*#-]*edges?\b", re.IGNORECASE | re.MULTILINE)

Similarity = Callable[[Sequence[str], Sequence[str]], np.ndarray]


@dataclass
class Graph:
    """A parsed workflow: ``nodes[0] == "START"``, ``nodes[-1] == "END"``, edges as index pairs."""

    nodes: list[str]
    edges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def inner(self) -> list[str]:
        """The real nodes, without START and END."""
        return self.nodes[1:-1]


def zero_scores() -> dict[str, float]:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def _prf(correct: float, n_pred: int, n_gold: int) -> dict[str, float]:
    """P = correct/n_pred, R = correct/n_gold, F1 = 2PR/(P+R); all 0 when correct is 0."""
    if correct <= 0 or n_pred <= 0 or n_gold <= 0:
        return zero_scores()
    precision, recall = correct / n_pred, correct / n_gold
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


# --- parsing ----------------------------------------------------------------------------------


def parse_reference(text: str) -> Graph | None:
    """The reference graph parser; ``None`` when the text is unparseable (no "Node", no edge).

    Node n of the result is the n-th match of ``\\d+[:.] (.+)`` (numbers in the text are ignored);
    an edge endpoint ``k`` is node k by position, START is 0 and END is len(nodes)-1.
    """
    if not isinstance(text, str) or "Node" not in text:
        return None
    nodes = ["START", *(match.strip() for match in _REF_NODE.findall(text)), "END"]
    end = len(nodes) - 1
    edges = [
        (0 if a == "START" else int(a), end if b == "END" else int(b)) for a, b in _EDGE.findall(text)
    ]
    if not edges:
        return None
    return Graph(nodes, edges)


def parse_lenient(text: str) -> Graph:
    """Quirk-free parser: numbered lines at line start (``1: x``, ``1.x``, ``1) x``), any edges.

    Node lines are read before an ``Edge``/``Edges`` header line when there is one, and stop at the
    first number seen twice (the list being restated). Edge endpoints are resolved through the
    numbers written in the text; edges naming a missing node, self-loops and repeats are dropped.
    Never fails.
    """
    if not isinstance(text, str):
        return Graph(["START", "END"])
    header = _EDGE_HEADER.search(text)  # node lines come before the edge list, when there is one
    head = text[: header.start()] if header else text
    numbered = _LENIENT_NODE.findall(head) or _LENIENT_NODE.findall(text)
    nodes, index = ["START"], {}
    for number, body in numbered:
        key = number.lstrip("0") or "0"
        if key in index:
            break  # the numbering starts again: a restated list or commentary, not more nodes
        index[key] = len(nodes)
        nodes.append(body.strip())
    end = len(nodes)
    nodes.append("END")
    edges: list[tuple[int, int]] = []
    for a, b in _EDGE.findall(text):
        u = 0 if a == "START" else index.get(a.lstrip("0") or "0")
        v = end if b == "END" else index.get(b.lstrip("0") or "0")
        if u is None or v is None or u == v or (u, v) in edges:
            continue
        edges.append((u, v))
    return Graph(nodes, edges)


# --- matching ---------------------------------------------------------------------------------


def match_nodes(similarity: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Maximum-weight bipartite matching of predicted rows to gold columns.

    Weights are the similarities (cosine clipped at 0); only pairs with weight > ``threshold``
    may match. Returns, per predicted node, the matched gold index or -1. Solved with
    ``scipy.optimize.linear_sum_assignment`` (below-threshold pairs get weight 0 and are dropped
    afterwards, which leaves the maximum total weight unchanged).
    """
    from scipy.optimize import linear_sum_assignment

    sim = np.asarray(similarity, dtype=np.float64)
    n_pred = sim.shape[0] if sim.ndim == 2 else 0
    mapping = [-1] * n_pred
    if sim.ndim != 2 or sim.size == 0:
        return mapping
    weights = np.where(sim > threshold, sim, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    for r, c in zip(rows, cols):
        if sim[r, c] > threshold:
            mapping[int(r)] = int(c)
    return mapping


def reference_gold_orders(gold: Graph, max_orders: int = MAX_ORDERS) -> list[list[str]]:
    """Gold node sequences to compare against, as the reference chooses them.

    ``len(gold.nodes) >= 10`` (START/END counted): ``[gold.nodes]`` as is, START/END included.
    Otherwise the first ``max_orders`` topological orders in networkx's enumeration order of the
    graph on node indices, as texts, without the texts "START"/"END". A cyclic or malformed gold
    gives ``[]``.
    """
    if len(gold.nodes) >= RAW_NODE_LIMIT:
        return [list(gold.nodes)]
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(gold.nodes)))
    graph.add_edges_from(gold.edges)
    if graph.number_of_nodes() != len(gold.nodes):
        return []  # an edge names a node that does not exist
    try:
        orders = list(itertools.islice(nx.all_topological_sorts(graph), max_orders))
    except (nx.NetworkXUnfeasible, nx.NetworkXError):
        return []
    return [[gold.nodes[i] for i in order if gold.nodes[i] not in ("START", "END")] for order in orders]


# --- reference scores -------------------------------------------------------------------------


def reference_node_scores(pred: Graph | None, gold: Graph | None, sim: Similarity) -> dict[str, float]:
    """Reference node-chain P/R/F1 (see the module docstring); 0 for unparseable input."""
    if pred is None or gold is None:
        return zero_scores()
    pred_nodes = [node for node in pred.nodes if node not in ("START", "END")]
    if not pred_nodes:
        return zero_scores()
    best = zero_scores()
    for order in reference_gold_orders(gold):
        if not order:
            continue
        mapping = reference_matching(sim(pred_nodes, order), THRESHOLD)
        scores = _prf(lis_from_one(mapping), len(pred_nodes), len(order))
        if scores["f1"] > best["f1"]:
            best = scores
    return best


def _largest_component(nodes: Sequence[int], edges: Sequence[tuple[int, int]]) -> int:
    """Size of the largest connected component of the undirected graph (nodes, edges)."""
    parent = {node: node for node in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        if u in parent and v in parent:
            parent[find(u)] = find(v)
    sizes: dict[int, int] = {}
    for node in nodes:
        root = find(node)
        sizes[root] = sizes.get(root, 0) + 1
    return max(sizes.values(), default=0)


def reference_graph_scores(pred: Graph | None, gold: Graph | None, sim: Similarity) -> dict[str, float]:
    """Reference graph P/R/F1 (see the module docstring); 0 for unparseable input."""
    if pred is None or gold is None or not pred.nodes or not gold.nodes:
        return zero_scores()
    mapping = reference_matching(sim(pred.nodes, gold.nodes), THRESHOLD)
    matched_pred = [i for i, j in enumerate(mapping) if j >= 0]
    matched_gold = set(j for j in mapping if j >= 0)
    if not matched_pred:
        return zero_scores()  # the reference crashes here (max() of no component)
    matched_pred_set = set(matched_pred)
    gold_edges = {(u, v) for u, v in gold.edges if u in matched_gold and v in matched_gold}
    shared = [
        (u, v)
        for u, v in pred.edges
        if u in matched_pred_set and v in matched_pred_set and (u, v) in gold_edges
    ]
    pred_component = _largest_component(matched_pred, shared)
    gold_component = _largest_component(sorted(matched_gold), shared)
    precision, recall = pred_component / len(pred.nodes), gold_component / len(gold.nodes)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


# --- quirk-free scores ------------------------------------------------------------------------


def match_nodes_tiebroken(similarity: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """:func:`match_nodes` with ties broken towards pairs at similar relative positions.

    Weight = similarity - ``TIE_EPSILON`` * |i/n_pred - j/n_gold|; the penalty is far below any
    meaningful similarity difference but makes equal texts match in order.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.size == 0:
        return [-1] * (sim.shape[0] if sim.ndim == 2 else 0)
    n_pred, n_gold = sim.shape
    rel_pred = np.arange(n_pred)[:, None] / max(n_pred, 1)
    rel_gold = np.arange(n_gold)[None, :] / max(n_gold, 1)
    adjusted = sim - TIE_EPSILON * np.abs(rel_pred - rel_gold)
    mapping = match_nodes(np.where(sim > threshold, np.maximum(adjusted, threshold + 1e-12), 0.0), threshold)
    return mapping


def _reachability(n: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean matrix ``reach[a, b]``: b can be reached from a by one or more edges."""
    reach = np.zeros((n, n), dtype=bool)
    for u, v in edges:
        if 0 <= u < n and 0 <= v < n and u != v:
            reach[u, v] = True
    for k in range(n):
        reach |= reach[:, [k]] & reach[[k], :]
    return reach


def _max_antichain(n: int, less: np.ndarray) -> int:
    """Largest antichain of a strict partial order on range(n) (Dilworth: n - maximum matching)."""
    match_right = [-1] * n

    def augment(u: int, seen: list[bool]) -> bool:
        for v in np.flatnonzero(less[u]):
            if not seen[v]:
                seen[v] = True
                if match_right[v] < 0 or augment(match_right[v], seen):
                    match_right[v] = u
                    return True
        return False

    matching = sum(augment(u, [False] * n) for u in range(n))
    return n - matching


def consistent_matches(mapping: Sequence[int], gold_before: np.ndarray) -> int:
    """Largest number of matched predicted nodes whose order fits the gold partial order.

    ``gold_before[a, b]``: gold node a must come before gold node b. A set of matched predicted
    nodes fits when no pair appears in prediction order i < j with gold(j) before gold(i); this
    equals the maximum over all topological orders of the LIS of matched gold positions.
    """
    matched = [g for g in mapping if g >= 0]
    n = len(matched)
    if n == 0:
        return 0
    idx = np.asarray(matched)
    inverted = gold_before[idx[:, None], idx[None, :]].T  # inverted[i, j]: gold(j) before gold(i)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)  # prediction order i < j
    return _max_antichain(n, inverted & upper)


def prediction_sequence(pred: Graph) -> list[int]:
    """The order of the predicted real nodes (0-based): its own graph's order, ties by writing.

    Kahn's algorithm over the edges between real nodes, always taking the earliest-written ready
    node; a prediction without such edges keeps its written order, a cyclic one too.
    """
    import heapq

    n = len(pred.inner)
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for u, v in set(pred.edges):
        if 1 <= u <= n and 1 <= v <= n and u != v:
            succ[u - 1].append(v - 1)
            indegree[v - 1] += 1
    ready = [i for i in range(n) if indegree[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for nxt in succ[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, nxt)
    return order if len(order) == n else list(range(n))


def fixed_node_scores(pred: Graph, gold: Graph, sim: Similarity) -> dict[str, float]:
    """Quirk-free node P/R/F1 over real nodes only (see the module docstring).

    The predicted sequence is :func:`prediction_sequence`; ``correct`` = :func:`consistent_matches`
    against the gold's reachability (a cyclic gold falls back to its written order);
    P = correct/|pred real nodes|, R = correct/|gold real nodes|.
    """
    gold_nodes = gold.inner
    pred_nodes = [pred.inner[i] for i in prediction_sequence(pred)]
    if not pred_nodes or not gold_nodes:
        return zero_scores()
    mapping = match_nodes_tiebroken(sim(pred_nodes, gold_nodes))
    reach = _reachability(len(gold.nodes), gold.edges)
    inner_reach = reach[1:-1, 1:-1]
    if np.any(np.diagonal(inner_reach)):
        inner_reach = np.triu(np.ones_like(inner_reach), k=1)
    correct = consistent_matches(mapping, inner_reach)
    return _prf(correct, len(pred_nodes), len(gold_nodes))


def fixed_graph_scores(pred: Graph, gold: Graph, sim: Similarity) -> dict[str, float]:
    """Quirk-free graph P/R/F1: edge F1 through the node matching.

    START matches START and END matches END; real nodes match as in :func:`fixed_node_scores`.
    A predicted edge (u, v) is correct when (m(u), m(v)) is a gold edge. P = correct/|pred edges|,
    R = correct/|gold edges|, F1 = 2PR/(P+R) (distinct edges; 0 when either side has none).
    """
    pred_inner, gold_inner = pred.inner, gold.inner
    mapping = [0]
    if pred_inner and gold_inner:
        mapping += [g + 1 if g >= 0 else -1 for g in match_nodes_tiebroken(sim(pred_inner, gold_inner))]
    else:
        mapping += [-1] * len(pred_inner)
    mapping.append(len(gold.nodes) - 1)
    pred_edges = {(u, v) for u, v in pred.edges if 0 <= u < len(mapping) and 0 <= v < len(mapping)}
    gold_edges = set(gold.edges)
    correct = sum(
        1
        for u, v in pred_edges
        if mapping[u] >= 0 and mapping[v] >= 0 and (mapping[u], mapping[v]) in gold_edges
    )
    if not pred_edges or not gold_edges:
        return zero_scores()
    return _prf(correct, len(pred_edges), len(gold_edges))


# --- batch scoring ----------------------------------------------------------------------------


def _bounded_parse(text: str) -> tuple[Graph | None, Graph, str]:
    """(reference graph, lenient graph, "") -- or (None, empty graph, why) over the size limits."""
    empty = Graph(["START", "END"])
    if not isinstance(text, str):
        return None, empty, f"is a {type(text).__name__}, not text"
    if len(text) > MAX_TEXT_CHARS:
        return None, empty, f"longer than {MAX_TEXT_CHARS} characters; not parsed"
    reference, lenient = parse_reference(text), parse_lenient(text)
    if max(len(reference.nodes) if reference else 0, len(lenient.nodes)) > MAX_NODES + 2:
        return None, empty, f"has more than {MAX_NODES} nodes; not scored"
    return reference, lenient, ""


def _recording(sim: Similarity, matrices: dict[tuple, np.ndarray]) -> Similarity:
    """``sim``, keeping each matrix it returns under (left texts, sorted right texts)."""

    def recording(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        weights = sim(left, right)
        matrices.setdefault((tuple(left), tuple(sorted(right))), weights)
        return weights

    return recording


def _any_fragile(matrices: dict[tuple, np.ndarray], noise: float) -> bool:
    """Some matrix has a weight within ``noise`` of the threshold, or a matching gap within
    ``2 * k * noise`` (``k`` = the most pairs a matching of it can have)."""
    for weights in matrices.values():
        weights = np.asarray(weights, dtype=np.float64)
        if weights.size == 0:
            continue
        if np.min(np.abs(weights - THRESHOLD)) <= noise:
            return True
        if matching_gap(weights, THRESHOLD) <= 2 * min(weights.shape) * noise:
            return True
    return False


def reference_is_fragile(pred: Graph | None, gold: Graph | None, sim: Similarity,
                         noise: float = FLOAT_NOISE) -> bool:
    """Whether the reference scores of this pair could change if every similarity moved by ``noise``.

    The reference scores depend on the similarities only through the matchings (which pairs are
    candidates, which maximum-weight matching wins); LIS, F1 and the choice between gold orders
    are then exact. A matrix is safe when no weight lies within ``noise`` of the threshold (no
    pair can become or stop being a candidate) and its
    :func:`~lm_eval_acbench.metrics.matching.matching_gap` exceeds ``2 * k * noise`` for
    matchings of at most ``k`` pairs (no other matching can overtake the optimum). Every
    matrix the reference computes for this pair (one per gold order, plus the graph's) is
    checked; orders that are permutations of the same texts share one check (a permutation of
    the gold columns permutes the matchings and keeps the gap). Repeated node texts that
    take part in the matching give gap 0, so such pairs are always fragile.
    """
    if pred is None or gold is None:
        return False
    matrices: dict[tuple, np.ndarray] = {}
    reference_node_scores(pred, gold, _recording(sim, matrices))
    reference_graph_scores(pred, gold, _recording(sim, matrices))
    return _any_fragile(matrices, noise)


def node_texts(workflows: Sequence[str]) -> list[str]:
    """The distinct node texts :func:`score_batch` embeds for these workflows, in first-seen order."""
    texts: dict[str, None] = {}
    for workflow in workflows:
        for graph in _bounded_parse(workflow)[:2]:
            if graph is not None:
                texts.update(dict.fromkeys(graph.nodes))
    return list(texts)


def score_batch(
    predictions: Sequence[str],
    golds: Sequence[str],
    encode: Callable[[Sequence[str]], np.ndarray],
    timings: dict | None = None,
    cosine: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    reference_encode: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> list[dict]:
    """Score prediction/gold pairs with one embedding call for all distinct node texts.

    ``encode(texts)`` returns one L2-normalised row per text (the caller chooses the model and any
    cache). Returns one dict per pair: ``node_f1``, ``node_precision``, ``node_recall``,
    ``graph_f1``, ``graph_precision``, ``graph_recall`` (reference), ``parse_rate`` (1.0 when the
    reference parser accepts the prediction), ``node_f1_fixed``, ``graph_f1_fixed`` (quirk-free)
    and ``reason`` (empty, or why the item scored 0). ``timings``, when given, receives
    ``texts`` (distinct texts encoded), ``embed_s`` and ``score_s`` (parsing, matching, orders, LIS).
    ``cosine(a, b)``, when given, computes the cosine matrix of two row stacks (default: ``a @ b.T``
    of the unit rows); the tasks pass :func:`lm_eval_acbench.embeddings.cosine_matrix`, which gives
    the reference's own floats, so that its tie-breaking between repeated texts is reproduced.

    ``reference_encode(texts)``, when given, is one encode call shaped as the reference makes it
    (WorfBench's ``match_node``: ``model.encode(texts, convert_to_tensor=True)`` on exactly the
    list it compares, once for the predicted and once for the gold side of every matrix). The
    embedding of a text varies in its last bits with the other texts of its encode call, and
    where the reference matching has tied or nearly tied optima (:func:`reference_is_fragile`
    on the batched similarities: repeated node texts) those bits decide the pairing. Such pairs
    get their reference scores (``node_*``, ``graph_*``) from similarities of vectors made in
    the reference's call shape, memoised per exact list; every other pair's matching cannot
    change within :data:`FLOAT_NOISE` and keeps the batched vectors. The quirk-free ``*_fixed``
    scores always use the batched vectors. Each result then also says ``upstream_shape``
    (whether its reference scores came from such calls); ``timings`` gets ``upstream_items``,
    ``upstream_calls`` and ``upstream_s``.
    """
    import time

    started = time.perf_counter()
    items = []
    texts: dict[str, None] = {}
    for prediction, gold in zip(predictions, golds):
        pred_ref, pred_fix, pred_problem = _bounded_parse(prediction)
        gold_ref, gold_fix, gold_problem = _bounded_parse(gold)
        item = {"pred_ref": pred_ref, "gold_ref": gold_ref, "pred_fix": pred_fix, "gold_fix": gold_fix,
                "problem": f"gold {gold_problem}" if gold_problem else (f"prediction {pred_problem}" if pred_problem else "")}
        items.append(item)
        for key in ("pred_ref", "gold_ref", "pred_fix", "gold_fix"):
            graph = item[key]
            if graph is not None:
                texts.update(dict.fromkeys(graph.nodes))
    parse_s = time.perf_counter() - started

    ordered = list(texts)
    t0 = time.perf_counter()
    vectors = np.asarray(encode(ordered), dtype=np.float32) if ordered else np.zeros((0, 1), np.float32)
    embed_s = time.perf_counter() - t0
    row = {text: i for i, text in enumerate(ordered)}

    def sim(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Cosine similarity clipped at 0, for exactly these two lists (the reference's shapes)."""
        a = vectors[[row[t] for t in left]] if left else np.zeros((0, vectors.shape[1]), np.float32)
        b = vectors[[row[t] for t in right]] if right else np.zeros((0, vectors.shape[1]), np.float32)
        return np.maximum(cosine(a, b) if cosine is not None else a @ b.T, 0.0)

    calls: dict[tuple[str, ...], np.ndarray] = {}
    upstream_s = 0.0

    def call(texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in calls:
            calls[key] = np.asarray(reference_encode(list(texts)), dtype=np.float32)
        return calls[key]

    def upstream_sim(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """The reference's ``np.maximum(cos_sim(encode(left), encode(right)), 0)``."""
        a, b = call(left), call(right)
        if cosine is not None:
            return np.maximum(cosine(a, b), 0.0)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return np.maximum(a @ b.T, 0.0)

    t0 = time.perf_counter()
    results = []
    upstream_items = 0
    for item in items:
        pred_ref, gold_ref = item["pred_ref"], item["gold_ref"]
        reason = item["problem"]
        if not reason and gold_ref is None:
            reason = "gold unparseable"
        elif not reason and pred_ref is None:
            reason = "prediction unparseable (no 'Node' or no edge)"
        elif not reason and not [n for n in pred_ref.nodes if n not in ("START", "END")]:
            reason = "no node line of the form '<n>: text' (a space after the separator is required)"
        matrices: dict[tuple, np.ndarray] = {}
        batched_sim = _recording(sim, matrices) if reference_encode is not None else sim
        node = reference_node_scores(pred_ref, gold_ref, batched_sim)
        graph = reference_graph_scores(pred_ref, gold_ref, batched_sim)
        # Same test as reference_is_fragile, on the matrices just computed.
        upstream = reference_encode is not None and _any_fragile(matrices, FLOAT_NOISE)
        if upstream:
            t1 = time.perf_counter()
            node = reference_node_scores(pred_ref, gold_ref, upstream_sim)
            graph = reference_graph_scores(pred_ref, gold_ref, upstream_sim)
            upstream_s += time.perf_counter() - t1
            upstream_items += 1
        fixed_node = fixed_node_scores(item["pred_fix"], item["gold_fix"], sim)
        fixed_graph = fixed_graph_scores(item["pred_fix"], item["gold_fix"], sim)
        results.append(
            {
                "node_f1": node["f1"],
                "node_precision": node["precision"],
                "node_recall": node["recall"],
                "graph_f1": graph["f1"],
                "graph_precision": graph["precision"],
                "graph_recall": graph["recall"],
                "parse_rate": 1.0 if pred_ref is not None else 0.0,
                "node_f1_fixed": fixed_node["f1"],
                "graph_f1_fixed": fixed_graph["f1"],
                "reason": reason,
            }
        )
        if reference_encode is not None:
            results[-1]["upstream_shape"] = upstream
    if timings is not None:
        timings["texts"] = timings.get("texts", 0) + len(ordered)
        timings["embed_s"] = timings.get("embed_s", 0.0) + embed_s
        timings["score_s"] = timings.get("score_s", 0.0) + parse_s + time.perf_counter() - t0 - upstream_s
        timings["upstream_items"] = timings.get("upstream_items", 0) + upstream_items
        timings["upstream_calls"] = timings.get("upstream_calls", 0) + len(calls)
        timings["upstream_s"] = timings.get("upstream_s", 0.0) + upstream_s
    return results
