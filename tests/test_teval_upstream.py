"""T-Eval's reference plan score against the upstream evaluator's own numbers.

The expected (precision, recall, F1) in ``UPSTREAM_PLAN`` were produced by running
``PlanningEvaluator.format_load`` + ``bertscore_match`` of open-compass/T-Eval (fetched
2026-12-01) with a stand-in sentence model whose embeddings are one-hot per distinct text, so
every cosine is exactly 1.0 or 0.0 on both sides; :func:`one_hot_cosines` feeds the same
similarities to our scorer. The cases cover the LIS that starts at 1 and repeated actions, whose
tied similarities the reference's networkx matching resolves in its own way.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lm_eval_acbench.metrics import teval_scores as ts


def act(i, name, **args):
    return {"id": i, "name": name, "args": args}


FINISH = {"name": "FinishAction", "args": {}}
SEARCH, BOOK, PAY = "Hotel.search", "Hotel.book", "Bank.pay"
PLAN_CASES = {
    "nothing matches": ([act(0, "A.x", q=1)], [act(0, "B.y", r=2)]),
    "nothing matches, longer plans": (
        [act(0, "A.x"), act(1, "A.z")],
        [act(0, "B.y"), act(1, "C.w"), act(2, "D.v")],
    ),
    "gold itself with a repeated action": (
        [act(0, SEARCH, city="Oslo"), act(1, BOOK, id=1), act(2, SEARCH, city="Oslo"), act(3, PAY)],
        [act(0, SEARCH, city="Oslo"), act(1, BOOK, id=1), act(2, SEARCH, city="Oslo"), act(3, PAY)],
    ),
    "prediction repeats an action": (
        [act(0, SEARCH, city="Oslo"), act(1, SEARCH, city="Oslo"), act(2, BOOK, id=1), act(3, PAY)],
        [act(0, SEARCH, city="Oslo"), act(1, BOOK, id=1), act(2, PAY)],
    ),
    "ids out of order, finish dropped": (
        [act(2, PAY), act(0, SEARCH, city="Oslo"), act(1, BOOK, id=1), dict(FINISH, id=3)],
        [act(0, SEARCH, city="Oslo"), act(1, BOOK, id=1), act(2, PAY), dict(FINISH, id=3)],
    ),
}
# upstream's (precision, recall, F1); hand check of the repeated case: the tied searches pair
# crosswise (pred 0 -> gold 2, pred 2 -> gold 0), mapping [2, 1, 0, 3], LIS 2 of 4
UPSTREAM_PLAN = {
    "nothing matches": [1.0, 1.0, 1.0],
    "nothing matches, longer plans": [0.5, 1 / 3, 0.4],
    "gold itself with a repeated action": [0.5, 0.5, 0.5],
    "prediction repeats an action": [0.75, 1.0, 6 / 7],
    "ids out of order, finish dropped": [1.0, 1.0, 1.0],
}


def one_hot_cosines(pred, gold):
    """(name cosines, args cosines) of one-hot embeddings: 1.0 for equal texts, else 0.0."""
    def table(left, right):
        return np.array([[1.0 if a == b else 0.0 for b in right] for a in left], dtype=np.float64)

    return (
        table([a["name"] for a in pred], [a["name"] for a in gold]),
        table([a["args"] for a in pred], [a["args"] for a in gold]),
    )


def ours(pred, gold, scorer=ts.plan_scores, reference=True):
    pred_plan = ts.drop_finish(ts.parse_plan_json(json.dumps(pred), reference=reference))
    gold_plan = ts.drop_finish(ts.normalise_plan(gold, reference=reference))
    return scorer(*one_hot_cosines(pred_plan, gold_plan))


@pytest.mark.parametrize("name", sorted(PLAN_CASES))
def test_reference_plan_score_matches_upstream(name):
    expected = UPSTREAM_PLAN[name]
    got = ours(*PLAN_CASES[name])
    assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(expected, abs=1e-12)


def test_fixed_plan_score_counts_no_unmatched_action():
    assert ours(*PLAN_CASES["nothing matches"], scorer=ts.plan_scores_fixed, reference=False)["f1"] == 0
    case = PLAN_CASES["gold itself with a repeated action"]
    repeated = ours(*case, scorer=ts.plan_scores_fixed, reference=False)
    assert repeated["f1"] == 1.0
