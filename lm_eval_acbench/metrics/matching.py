"""Maximum-weight bipartite matching of predicted to gold items, as the reference evaluators do it.

WorfBench (``evaluator/graph_evaluator.py::match_node``) and T-Eval
(``PlanningEvaluator.bertscore_match``) both build a ``networkx.Graph`` whose nodes are the
predicted indices ``i`` (ints) and the gold indices ``str(j)``, add the edges ``(i, str(j))`` with
weight ``w[i, j]`` for every pair with ``w[i, j] > threshold`` in row-major order, and call
``networkx.max_weight_matching`` (maximum total weight, not maximum cardinality).

When several matchings share the maximum weight -- repeated texts give equal rows or columns --
*which* one wins depends on networkx's blossom algorithm and on that insertion order, and the
reference scores (LIS over matched positions, edges compared by position) depend on which one
wins. :func:`reference_matching` therefore calls networkx on a graph built the same way instead
of using another solver, so ties are broken exactly as the reference breaks them -- given the
same floats: networkx chooses between exactly tied pairs by the last bits of the *other*
weights, which is why the similarities are computed as ``util.cos_sim`` computes them
(:func:`lm_eval_acbench.embeddings.cosine_matrix`).

:func:`lis_from_one` is the longest-increasing-subsequence count both evaluators apply to the
matching (its dynamic programme starts every entry at 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def reference_matching(weights: np.ndarray, threshold: float) -> list[int]:
    """Per predicted row, the gold column matched to it by the reference's matching, or -1.

    Graph: edges ``(i, str(j))`` with weight ``weights[i, j]`` for each ``weights[i, j] >
    threshold``, added for i = 0.. and, within i, j = 0..; result: ``networkx.max_weight_matching``
    of that graph. An empty or non-2-D matrix matches nothing. When all candidate weights differ
    the optimum is unique and ``scipy.optimize.linear_sum_assignment`` finds the same one faster.
    """
    sim = np.asarray(weights, dtype=np.float64)
    if sim.ndim != 2:
        return []
    n_pred, n_gold = sim.shape
    mapping = [-1] * n_pred
    candidate = sim > threshold
    rows, cols = np.nonzero(candidate)  # row-major, like the reference's nested loops
    if rows.size == 0:
        return mapping
    weights = sim[candidate]
    if np.unique(weights).size == weights.size:
        # No two candidate weights are equal, so no two matchings tie (barring an exact coincidence
        # of sums): the maximum-weight matching is unique and any exact solver returns networkx's.
        # The assignment solver is ~10x faster than networkx's pure-Python blossom algorithm.
        from scipy.optimize import linear_sum_assignment

        padded = np.where(candidate, sim, 0.0)
        for r, c in zip(*linear_sum_assignment(padded, maximize=True)):
            if candidate[r, c]:
                mapping[int(r)] = int(c)
        return mapping
    import networkx as nx

    graph = nx.Graph()
    for i, j in zip(rows.tolist(), cols.tolist()):
        graph.add_edge(i, str(j), weight=sim[i, j])
    for a, b in nx.max_weight_matching(graph):
        if isinstance(a, int):
            mapping[a] = int(b)
        else:
            mapping[b] = int(a)
    return mapping


def matching_gap(weights: np.ndarray, threshold: float) -> float:
    """``W(M1) - W(M2)``: how much heavier the reference's optimum is than the best other matching.

    M1 is the maximum-weight matching of the candidate pairs (``w_ij > threshold``), M2 the best
    matching other than M1; 0 when optima tie (repeated texts), ``inf`` when no pair is a
    candidate or the matrix is empty. If every weight moves by at most ``d`` (and none crosses
    the threshold), a matching of ``k`` pairs moves by at most ``k * d``, so M1 stays the only
    optimum while ``gap > 2 * k * d``.

    Every matching other than M1 leaves out some pair ``e`` of M1 (one that contains all of M1 is
    M1 plus positive weights, so it is not the optimum M1 is), hence
    ``W(M2) = max over e in M1 of (best matching without e)``: ``|M1|`` more assignment solves.
    """
    sim = np.asarray(weights, dtype=np.float64)
    if sim.ndim != 2 or sim.size == 0:
        return float("inf")
    candidate = sim > threshold
    if not candidate.any():
        return float("inf")
    if candidate.sum(axis=0).max() <= 1 and candidate.sum(axis=1).max() <= 1:
        # Each candidate pair is the only one in its row and its column: M1 is all of them, and any
        # other matching drops at least one, losing at least the smallest candidate weight.
        return float(sim[candidate].min())
    from scipy.optimize import linear_sum_assignment

    padded = np.where(candidate, sim, 0.0)  # an assigned zero pair counts as "left unmatched"
    rows, cols = linear_sum_assignment(padded, maximize=True)
    best = float(padded[rows, cols].sum())
    runner_up = -np.inf
    for r, c in zip(rows, cols):
        if not candidate[r, c]:
            continue
        without = padded.copy()
        without[r, c] = 0.0
        r2, c2 = linear_sum_assignment(without, maximize=True)
        runner_up = max(runner_up, float(without[r2, c2].sum()))
    return best - runner_up


def lis_from_one(mapping: Sequence[int]) -> int:
    """The reference's LIS: dp[i] = 1 + max dp[j] over j < i with both matched and m[j] < m[i].

    Every dp starts at 1, so the result is at least 1 for a non-empty prediction even when no
    node matched. Returns 0 only for an empty mapping.
    """
    if not mapping:
        return 0
    dp = [1] * len(mapping)
    for i, mi in enumerate(mapping):
        if mi < 0:
            continue
        for j in range(i):
            mj = mapping[j]
            if mj >= 0 and mi > mj and dp[j] + 1 > dp[i]:
                dp[i] = dp[j] + 1
    return max(dp)
