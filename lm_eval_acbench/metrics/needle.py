"""Needle-in-a-haystack scoring: word-set recall of the needle, ROUGE-1 F, and the cell grid.

Words are produced by :func:`words`: lower-case, every run of characters that is not a letter
or digit is a separator (so "Park," and "park" are the same word).

* **recall** (the primary score, as in the published heatmaps)::

      recall = |set(words(reference)) & set(words(response))| / |set(words(reference))|

  with the reference being the needle's answer clause, "eat a sandwich and sit in Dolores Park
  on a sunny day" (11 distinct words). Word order and repetitions do not matter.
* **ROUGE-1 F** against the whole needle sentence, over unigram multisets::

      overlap = sum_w min(count_resp(w), count_ref(w))
      P = overlap / len(resp),  R = overlap / len(ref),  F = 2PR / (P + R)   (0 when overlap = 0)

  No stemming and no stop-word removal.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
NEEDLE_ANSWER = "eat a sandwich and sit in Dolores Park on a sunny day"
QUESTION = "What is the best thing to do in San Francisco?"

_SEPARATORS = re.compile(r"[^0-9a-z]+")
MAX_CHARS = 100_000  # responses are at most 64 generated tokens; the rest is not read


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of ``text``, in order (separators: any other character).

    Only the first :data:`MAX_CHARS` characters are read; a value that is not text has no words.
    """
    if not isinstance(text, str):
        return []
    return [word for word in _SEPARATORS.split(text[:MAX_CHARS].lower()) if word]


def word_set_recall(response: str, reference: str = NEEDLE_ANSWER) -> float:
    """Share of the reference's distinct words that occur in the response.

    ``|set(words(reference)) & set(words(response))| / |set(words(reference))|``; an empty
    reference gives 0.0.
    """
    wanted = set(words(reference))
    if not wanted:
        return 0.0
    return len(wanted & set(words(response))) / len(wanted)


def reference_word_recall(response: str, reference: str = NEEDLE_ANSWER) -> float:
    """Word-set recall as the upstream needle heatmaps compute it: whitespace-split words.

    ``|set(reference.lower().split()) & set(response.lower().split())| / |set(reference.lower().split())|``
    -- unlike :func:`word_set_recall`, punctuation stays attached ("Park," is not "Park").
    """
    wanted = set(str(reference).lower().split())
    if not wanted:
        return 0.0
    return len(wanted & set(str(response).lower().split())) / len(wanted)


def rouge1_f(response: str, reference: str = NEEDLE) -> float:
    """ROUGE-1 F1 over unigram multisets (see the module docstring); 0.0 when nothing overlaps."""
    got, want = Counter(words(response)), Counter(words(reference))
    overlap = sum((got & want).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(got.values())
    recall = overlap / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def score_response(response: str) -> dict[str, float]:
    """Both cell scores of one response: ``{"recall": ..., "rouge1_f": ...}``."""
    return {"recall": word_set_recall(response), "rouge1_f": rouge1_f(response)}


def grid(cells: Iterable[tuple[int, int, float]]) -> dict:
    """Arrange (length, depth, score) triples into a depth x length grid with the means.

    Returns ``{"lengths": [...], "depths": [...], "scores": rows, "per_length": {...},
    "per_depth": {...}, "overall": mean}`` where ``rows[i][j]`` is the mean score of the cells
    at ``depths[i]`` and ``lengths[j]`` (``None`` where no cell was evaluated), ``per_length`` and
    ``per_depth`` average over all cells of that length or depth, and ``overall`` over all
    cells (``None`` when there are none). Lengths and depths come out sorted ascending.
    """
    by_cell: dict[tuple[int, int], list[float]] = defaultdict(list)
    for length, depth, score in cells:
        by_cell[(int(length), int(depth))].append(float(score))
    lengths = sorted({length for length, _ in by_cell})
    depths = sorted({depth for _, depth in by_cell})

    def mean(values: list[float]):
        return sum(values) / len(values) if values else None

    rows = [
        [mean(by_cell.get((length, depth), [])) for length in lengths]
        for depth in depths
    ]
    per_length = {
        length: mean([s for (ln, _), v in by_cell.items() if ln == length for s in v]) for length in lengths
    }
    per_depth = {
        depth: mean([s for (_, dp), v in by_cell.items() if dp == depth for s in v]) for depth in depths
    }
    overall = mean([s for v in by_cell.values() for s in v])
    return {
        "lengths": lengths,
        "depths": depths,
        "scores": rows,
        "per_length": per_length,
        "per_depth": per_depth,
        "overall": overall,
    }
