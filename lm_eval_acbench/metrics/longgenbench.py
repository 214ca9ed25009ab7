"""LongGenBench scoring: K answers in one generation, aligned to the K questions by their label.

The protocol asks the model to answer question ``i`` in a block that starts ``Answer_<i>:`` and
ends ``The answer is <x>`` (GSM8K: a number; MMLU: ``(<letter>)``).

**Alignment (by label, never by position).** The response is cut into segments at every
``Answer_<n>:`` marker (``n`` any integer; case-insensitive, optional spaces around ``_`` and
before ``:``). A segment runs from its marker to the next marker or the end of the text.

* Question ``i`` (1-based, ``1 <= i <= K``) is answered by the **first** segment labelled ``i``;
  its predicted answer is the **first** "answer is ..." in that segment (the segment may span
  several lines). A later segment with the same label is ignored (counted as ``duplicates``).
* A question with no segment, or whose segment has no parsable "answer is", is **wrong**.
* Segments labelled outside ``1..K`` are ignored (counted as ``extra``); they never shift which
  answer belongs to which question, so one missing or extra answer costs exactly that answer.

Prompt accuracy ``acc = (number of i with prediction_i == gold_i) / K``; the benchmark score
is the mean of ``acc`` over prompts (x100 in the paper's tables).

**The reference rule** (:func:`reference_zip_accuracy`, LongGenBench's own scorer, the
benchmark's primary score): the response is split at every ``Answer_``; the pieces are joined
with newlines and every non-overlapping ``(?<=:\n)(.*?)(?=\n\n|$)`` match (DOTALL: the text
after a colon-newline up to the next blank line or the end) is one answer, in order. Answers are
zipped with the golds by position (a missing answer shifts every later one); an answer is
correct when its **last** number (``\d*\.?\d+`` after removing commas; GSM8K, compared with the
last number of the gold) or its **last** ``A|B|C|D`` (MMLU) equals the gold;
``score = correct / K``.

:func:`zip_accuracy` is an older, looser zip rule (every "Answer_<n>: ... answer is <x>" match in
order), kept for comparison.

Answer forms: GSM8K numbers may carry a sign, thousands commas, a leading ``$`` and a decimal
part (``1,000`` == ``1000`` == ``1000.0``); MMLU letters are ``(a)``-``(j)`` in parentheses
(any case) or a bare capital ``A``-``J`` not followed by a letter. Both are supersets of the
original's ``(\\d+)`` and ``\\((.*?)\\)`` patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_CHARS = 200_000  # responses are cut here (a 4,096-token budget is ~20,000 characters)
MAX_LABEL_DIGITS = 9  # a longer Answer_<n> label is outside any 1..K
_MARKER = re.compile(r"answer\s*_\s*(\d+)\s*:", re.IGNORECASE)
# ``\s*(?::\s*)?`` is the same language as ``\s*:?\s*`` without its ambiguity, which made a long
# run of spaces after "answer is" quadratic.
_NUMBER_ANSWER = re.compile(r"answer\s+is\s*(?::\s*)?(?:\$\s*)?(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_LETTER_ANSWER = re.compile(r"(?i:answer\s+is)\s*(?::\s*)?(?:\(\s*([A-Ja-j])\s*\)|([A-J])(?![A-Za-z]))")
# The original scorer's patterns, kept as its definition; :func:`zip_matches` finds the same
# matches in linear time (the letter pattern is cubic on "Answer_1: x answer is (B " repeated).
_ZIP_NUMBER = re.compile(r"Answer_\d+:\s*.*?answer is (\d+)")
_ZIP_LETTER = re.compile(r"Answer_\d+:\s*.*?answer is \((.*?)\)")
_ZIP_MARKER = re.compile(r"Answer_\d+:\s*")
_ZIP_NUMBER_TAIL = re.compile(r"answer is (\d+)")


def normalize_number(text: str) -> str | None:
    """Canonical form of a numeric answer: no commas, no trailing ``.0``; None if not a number."""
    cleaned = _as_text(text).replace(",", "").replace("$", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value == int(value):
        return str(int(value))
    return repr(value)


def segments(response: str) -> list[tuple[int, str]]:
    """``(label, text)`` for every ``Answer_<label>:`` segment of the response, in order
    (a label over :data:`MAX_LABEL_DIGITS` digits is given as -1: outside every ``1..K``)."""
    markers = list(_MARKER.finditer(response))
    out = []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(response)
        digits = marker.group(1)
        label = int(digits) if len(digits) <= MAX_LABEL_DIGITS else -1
        out.append((label, response[marker.end():end]))
    return out


def extract_answer(segment: str, kind: str) -> str | None:
    """The first "answer is ..." in a segment, normalized; None when there is none.

    ``kind`` is ``"number"`` (GSM8K) or ``"letter"`` (MMLU, returned upper-case).
    """
    if kind == "number":
        match = _NUMBER_ANSWER.search(segment)
        return normalize_number(match.group(1)) if match else None
    if kind == "letter":
        match = _LETTER_ANSWER.search(segment)
        return (match.group(1) or match.group(2)).upper() if match else None
    raise ValueError(f"kind must be 'number' or 'letter', not {kind!r}")


@dataclass
class Alignment:
    predictions: list[str | None]  # one per question, None = missing or unparsable
    correct: list[bool]
    duplicates: int = 0
    extra: int = 0
    labels_seen: list[int] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


def align(response: str, golds: list[str], kind: str, first_label: int = 1) -> Alignment:
    """Align the response's answers to ``golds`` by label (rules in the module docstring).

    ``first_label`` is the label of the first gold (LongGenBench's own prompts number the
    scored questions after the few-shot examples: GSM8K from 9, MMLU from 6).
    """
    golds = list(golds) if isinstance(golds, (list, tuple)) else []
    response = response[:MAX_CHARS] if isinstance(response, str) else ""
    k = len(golds)
    predictions: list[str | None] = [None] * k
    answered = [False] * k
    duplicates = extra = 0
    labels = []
    for label, text in segments(response):
        labels.append(label)
        label = label - first_label + 1
        if not 1 <= label <= k:
            extra += 1
            continue
        if answered[label - 1]:
            duplicates += 1
            continue
        answered[label - 1] = True
        predictions[label - 1] = extract_answer(text, kind)
    wanted = [_gold(gold, kind) for gold in golds]
    correct = [pred is not None and pred == gold for pred, gold in zip(predictions, wanted)]
    return Alignment(predictions, correct, duplicates, extra, labels)


def _as_text(value) -> str:
    """``str(value)``; "" for a value without a string form (an int over Python's digit limit)."""
    try:
        return value if isinstance(value, str) else str(value)
    except ValueError:
        return ""


def _gold(gold, kind: str) -> str | None:
    if kind == "number":
        return normalize_number(_as_text(gold))
    return _as_text(gold).strip().strip("()").upper()


def zip_accuracy(response: str, golds: list[str], kind: str) -> float:
    """The original scorer: all matches in order, zipped with golds; ``correct / K``.

    A missing answer shifts every later one; extra matches beyond K are dropped by the zip.
    """
    if not isinstance(golds, (list, tuple)) or not golds:
        return 0.0
    found = zip_matches(response[:MAX_CHARS] if isinstance(response, str) else "", kind)
    correct = 0
    for pred, gold in zip(found, golds):
        if kind == "number":
            correct += normalize_number(pred) == normalize_number(_as_text(gold))
        else:
            correct += pred.strip().upper() == _as_text(gold).strip().strip("()").upper()
    return correct / len(golds)


def zip_matches(response: str, kind: str) -> list[str]:
    """``re.findall`` of the original pattern (``_ZIP_NUMBER`` or ``_ZIP_LETTER``), in linear time.

    A match starts at an ``Answer_<n>:`` marker; after the marker's trailing whitespace, ``.*?``
    cannot pass a new line, so the answer must sit on that line: the first ``answer is <digits>``
    there (number), or the first ``answer is (`` there with the text up to the next ``)`` on the
    line (letter; when that first one has no ``)``, no later one has). A marker without such an
    answer is retried one character later, as the regex engine does; a match resumes after its end.
    """
    out: list[str] = []
    position = 0
    line_end = -1  # the first new line after the last region's start (regions only move right)
    dead_until = -1  # a region starting before this, on that line, holds no answer
    while True:
        marker = _ZIP_MARKER.search(response, position)
        if marker is None:
            return out
        start = marker.end()
        if start < dead_until:  # a suffix of a region that already failed
            position = marker.start() + 1
            continue
        if start > line_end:
            line_end = response.find("\n", start)
            line_end = len(response) if line_end < 0 else line_end
        if kind == "number":
            answer = _ZIP_NUMBER_TAIL.search(response, start, line_end)
            if answer is not None:
                out.append(answer.group(1))
                position = answer.end()
                continue
        else:
            opening = response.find("answer is (", start, line_end)
            closing = response.find(")", opening + len("answer is ("), line_end) if opening >= 0 else -1
            if closing >= 0:
                out.append(response[opening + len("answer is ("):closing])
                position = closing + 1
                continue
        dead_until = line_end
        position = marker.start() + 1


_REFERENCE_ANSWER = re.compile(r"(?<=:\n)(.*?)(?=\n\n|$)", re.DOTALL)
_REFERENCE_NUMBER = re.compile(r"\d*\.?\d+")
_REFERENCE_LETTER = re.compile(r"A|B|C|D")


def reference_answers(response: str) -> list[str]:
    """The answers LongGenBench's scorer reads from a response, in order (module docstring)."""
    joined = "\n".join((response if isinstance(response, str) else "")[:MAX_CHARS].split("Answer_"))
    return [match.strip() for match in _REFERENCE_ANSWER.findall(joined)]


def reference_correct(prediction: str, gold: str, kind: str) -> bool:
    """LongGenBench's ``test_answer``: the last number (or A-D letter) of each side agree."""
    pattern = _REFERENCE_NUMBER if kind == "number" else _REFERENCE_LETTER
    prediction = prediction.replace(",", "") if kind == "number" else prediction
    found = pattern.findall(prediction)
    wanted = pattern.findall(_as_text(gold))
    return bool(found) and bool(wanted) and found[-1] == wanted[-1]


def reference_zip_accuracy(response: str, golds: list[str], kind: str) -> float:
    """LongGenBench's own rule: answers zipped with ``golds`` by position; ``correct / K``."""
    if not isinstance(golds, (list, tuple)) or not golds:
        return 0.0
    answers = reference_answers(response)
    correct = sum(reference_correct(pred, gold, kind) for pred, gold in zip(answers, golds))
    return correct / len(golds)


def gsm8k_gold(answer_field: str) -> str | None:
    """The gold number of a GSM8K answer field (the text after ``####``), normalized."""
    tail = str(answer_field).rsplit("####", 1)[-1]
    return normalize_number(tail)
