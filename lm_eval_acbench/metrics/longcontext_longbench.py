"""LongBench v1 scorers and the middle truncation rule, as pure functions.

Every scorer takes ``(prediction, gold)`` strings and returns a value in [0, 1]; a data set's
item score is the **maximum over its gold answers** (:func:`best_over_golds`), after keeping only
the first line of the prediction for trec, triviaqa, samsum and lsht (:func:`first_line`). The
paper reports the mean x 100.

* ``qa_f1``: token F1 after normalization (lower case, punctuation and the articles a/an/the
  removed, whitespace collapsed): ``P = common / len(pred)``, ``R = common / len(gold)``,
  ``F1 = 2PR / (P + R)`` over token multisets.
* ``qa_f1_zh``: the same F1 over Chinese word tokens (see :func:`zh_tokens`) with Chinese and
  ASCII punctuation removed, no article removal.
* ``rouge_l``: ROUGE-L F1 over lower-cased word tokens: ``LCS / len(pred)``, ``LCS / len(gold)``,
  harmonic mean; 0 for an empty side. ``rouge_l_zh``: the same over :func:`zh_tokens`.
* ``classification``: the classes (from ``all_classes``) that occur in the prediction as
  substrings, minus those that are a proper substring of the gold; ``1 / len(matched)`` when the
  gold is among them, else 0.
* ``retrieval`` (en ``Paragraph N``, zh ``段落N``) and ``count``: of all integers in the
  prediction, the share equal to the gold id or count (0 when there are none).
* ``code_sim``: the first line of the prediction that is non-blank and holds none of ``` ` ```,
  ``#``, ``//``, compared with the gold by ``difflib.SequenceMatcher.ratio()`` (the measure
  fuzzywuzzy's ``fuzz.ratio`` uses without python-Levenshtein), rounded to 2 decimals.

Middle truncation (:func:`middle_truncate`): a token sequence longer than ``budget`` keeps its
first ``budget // 2`` and last ``budget - budget // 2`` tokens.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from typing import Callable, Sequence

FIRST_LINE_DATASETS = frozenset({"trec", "triviaqa", "samsum", "lsht"})
# Input limits (generations are at most 512 tokens, golds a few thousand words): predictions and
# golds are cut to MAX_CHARS characters before any regex runs, ROUGE-L sees at most
# MAX_LCS_TOKENS tokens a side, code_sim at most MAX_CODE_LINE characters of the line.
MAX_CHARS = 200_000
MAX_LCS_TOKENS = 32_768
MAX_CODE_LINE = 5_000
_PUNCTUATION = frozenset(string.punctuation)
_ZH_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
_ALL_PUNCTUATION = set(string.punctuation) | set(_ZH_PUNCTUATION)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_INTEGER = re.compile(r"\d+")


def middle_truncate(tokens: Sequence, budget: int) -> list:
    """Keep the first ``budget // 2`` and last ``budget - budget // 2`` items when too long."""
    tokens = list(tokens)
    if budget <= 0:
        return []
    if len(tokens) <= budget:
        return tokens
    head = budget // 2
    return tokens[:head] + tokens[len(tokens) - (budget - head):]


def first_line(prediction: str) -> str:
    """The prediction's first line after leading newlines are dropped."""
    return prediction.lstrip("\n").split("\n")[0]


def normalize_answer(text: str) -> str:
    """Lower case, no ASCII punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: Sequence[str], gold: Sequence[str]) -> float:
    """F1 of two token multisets (0 when they share nothing)."""
    common = sum((Counter(prediction) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def qa_f1(prediction: str, gold: str, **_) -> float:
    return token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def zh_tokens(text: str) -> list[str]:
    """Chinese word tokens: jieba's segmentation when jieba is installed, else one token per
    CJK character (ASCII words stay whole); punctuation and whitespace are dropped."""
    try:
        import jieba  # optional; the upstream scorer uses it

        pieces = list(jieba.cut(text, cut_all=False))
    except ImportError:
        pieces = re.findall(r"[A-Za-z0-9]+|\S", text)
    out = []
    for piece in pieces:
        cleaned = "".join(ch for ch in piece.lower() if ch not in _ALL_PUNCTUATION and not ch.isspace())
        if cleaned:
            out.append(cleaned)
    return out


def qa_f1_zh(prediction: str, gold: str, **_) -> float:
    return token_f1(zh_tokens(prediction), zh_tokens(gold))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel form of the dynamic programme (Hyyro 2004): bit ``j`` of ``V`` is 0 where the
    DP row increases at column ``j``; per token ``x`` of ``a``, with ``M[x]`` the positions of ``x``
    in ``b``, ``U = V & M[x]`` and ``V = (V + U) | (V - U)``; the LCS is the number of 0 bits of
    ``V`` in the low ``len(b)`` bits. Same value as the O(len(a) * len(b)) table, in
    O(len(a) * len(b) / 64) word operations.
    """
    if not a or not b:
        return 0
    masks: dict = {}
    for position, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(b)) - 1
    row = full
    for token in a:
        hits = row & masks.get(token, 0)
        row = ((row + hits) | (row - hits)) & full
    return len(b) - bin(row).count("1")


def _rouge_l_tokens(prediction: list[str], gold: list[str]) -> float:
    prediction, gold = prediction[:MAX_LCS_TOKENS], gold[:MAX_LCS_TOKENS]
    lcs = lcs_length(prediction, gold)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, gold: str, **_) -> float:
    return _rouge_l_tokens(re.findall(r"\w+", prediction.lower()), re.findall(r"\w+", gold.lower()))


def rouge_l_zh(prediction: str, gold: str, **_) -> float:
    return _rouge_l_tokens(zh_tokens(prediction), zh_tokens(gold))


def classification(prediction: str, gold: str, *, all_classes: Sequence[str] = (), **_) -> float:
    matched = [name for name in all_classes if name and name in prediction]
    matched = [name for name in matched if not (name in gold and name != gold)]
    return 1.0 / len(matched) if gold in matched else 0.0


def _share_equal(prediction: str, target: str | None) -> float:
    numbers = _INTEGER.findall(prediction)
    if not numbers or target is None:
        return 0.0
    return sum(number == target for number in numbers) / len(numbers)


def retrieval(prediction: str, gold: str, **_) -> float:
    found = re.findall(r"Paragraph (\d+)", gold)
    return _share_equal(prediction, found[0] if found else None)


def retrieval_zh(prediction: str, gold: str, **_) -> float:
    found = re.findall(r"段落(\d+)", gold)
    return _share_equal(prediction, found[0] if found else None)


def count(prediction: str, gold: str, **_) -> float:
    return _share_equal(prediction, str(gold).strip())


def code_sim(prediction: str, gold: str, **_) -> float:
    line = ""
    for candidate in prediction.split("\n"):
        if candidate.strip() and not any(mark in candidate for mark in ("`", "#", "//")):
            line = candidate
            break
    return round(difflib.SequenceMatcher(None, line[:MAX_CODE_LINE], gold[:MAX_CODE_LINE]).ratio(), 2)


SCORERS: dict[str, Callable[..., float]] = {
    "qa_f1": qa_f1,
    "qa_f1_zh": qa_f1_zh,
    "rouge_l": rouge_l,
    "rouge_l_zh": rouge_l_zh,
    "classification": classification,
    "retrieval": retrieval,
    "retrieval_zh": retrieval_zh,
    "count": count,
    "code_sim": code_sim,
}


def best_over_golds(dataset: str, metric: str, prediction: str, golds: Sequence[str],
                    all_classes: Sequence[str] = ()) -> float:
    """An item's score: first-line rule for its data set, then the max over gold answers.

    Predictions are stripped of surrounding whitespace, except for the code data sets (scored
    by ``code_sim``) whose leading indentation matters. A prediction that is not text scores 0;
    a single gold string counts as one gold; text is cut to :data:`MAX_CHARS` first.
    """
    scorer = SCORERS[metric]
    if not isinstance(prediction, str):
        return 0.0
    prediction = prediction[:MAX_CHARS]
    if isinstance(golds, str):
        golds = [golds]
    golds = [_text(gold)[:MAX_CHARS] for gold in golds] if isinstance(golds, (list, tuple)) else []
    if isinstance(all_classes, (list, tuple)):
        all_classes = [_text(name)[:MAX_CHARS] for name in all_classes]
    else:
        all_classes = []
    if dataset in FIRST_LINE_DATASETS:
        prediction = first_line(prediction)
    if metric != "code_sim":
        prediction = prediction.strip()
    return max((scorer(prediction, gold, all_classes=all_classes) for gold in golds), default=0.0)


def _text(value) -> str:
    """``str(value)``, or "" for a value that has no string form (an int over Python's limit)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except ValueError:
        return ""
