"""LongGenBench (``acbench_longgenbench_gsm8k``, ``acbench_longgenbench_mmlu``): K questions per prompt.

Documents are *packed prompts*: GSM8K test questions in consecutive chunks of K (default 30;
the last chunk may be shorter), MMLU test questions as the first K (default 20) of each subject.
The model answers all of them in one generation; scoring aligns answers to questions by their
``Answer_<i>:`` label (see :mod:`lm_eval_acbench.metrics.longgenbench`).

Data (``data_dir`` layout, one JSON object per line, the HF rows as they are):
``<data_dir>/longgenbench/gsm8k.jsonl`` (``question``, ``answer`` with ``#### <n>``) and
``<data_dir>/longgenbench/mmlu.jsonl`` (``question``, ``subject``, ``choices``, ``answer`` as
0-based index). Hub: ``openai/gsm8k`` (``main``, test) and ``cais/mmlu`` (``all``, test).
K: ``--metadata '{"longgenbench_gsm8k_k": 30, "longgenbench_mmlu_k": 20}'``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lm_eval_acbench import data, thinking
from lm_eval_acbench.metrics import longgenbench as scoring

log = logging.getLogger(__name__)

BENCHMARK = "longgenbench"
LETTERS = "ABCDEFGHIJ"
DEFAULT_K = {"gsm8k": 30, "mmlu": 20}
HUB = {"gsm8k": ("openai/gsm8k", "main"), "mmlu": ("cais/mmlu", "all")}

SYSTEM = {
    "gsm8k": (
        "You will be given {k} math word problems, numbered Question_1 to Question_{k}. Answer "
        "every one of them, in order, in a single reply. Start the answer to question i with "
        "\"Answer_i:\", reason step by step, and end it with \"The answer is <number>.\" "
        "before moving on to the next question."
    ),
    "mmlu": (
        "You will be given {k} multiple-choice questions about {subject}, numbered Question_1 to "
        "Question_{k}. Answer every one of them, in order, in a single reply. Start the answer to "
        "question i with \"Answer_i:\", explain briefly, and end it with \"The answer is (X).\" "
        "where X is the letter of the chosen option, before moving on to the next question."
    ),
}


# ----------------------------------------------------------------------------- records

def _read_subset(folder: Path, subset: str) -> list[dict]:
    rows = list(data.iter_jsonl(folder / f"{subset}.jsonl"))
    if not rows:
        raise data.DataUnavailable(f"longgenbench: {folder / f'{subset}.jsonl'} has no rows")
    return rows


def _hub_rows(subset: str) -> list[dict]:
    import datasets

    path, name = HUB[subset]
    return [dict(row) for row in datasets.load_dataset(path, name, split="test")]


def question_items(subset: str, rows: list[dict]) -> list[dict]:
    """Plain ``{"question", "gold", "subject"}`` items; rows without a usable gold are skipped."""
    items = []
    for number, row in enumerate(rows):
        question = str(row.get("question", "")).strip()
        if subset == "gsm8k":
            gold = scoring.gsm8k_gold(row.get("answer", ""))
            subject = "math"
        else:
            choices = row.get("choices")
            answer = row.get("answer")
            if isinstance(answer, str) and answer.strip().upper() in LETTERS:
                answer = LETTERS.index(answer.strip().upper())
            if not isinstance(choices, list) or not isinstance(answer, int) or not 0 <= answer < len(choices):
                log.warning("longgenbench mmlu: skipping row %d without choices/answer", number)
                continue
            options = "\n".join(f"({LETTERS[j]}) {choice}" for j, choice in enumerate(choices))
            question = f"{question}\n{options}"
            gold = LETTERS[answer]
            subject = str(row.get("subject") or "general knowledge")
        if not question or gold is None:
            log.warning("longgenbench %s: skipping row %d without question/gold", subset, number)
            continue
        items.append({"question": question, "gold": gold, "subject": subject})
    return items


def pack(subset: str, items: list[dict], k: int) -> list[dict]:
    """Packed prompts: GSM8K consecutive chunks of ``k``; MMLU the first ``k`` per subject."""
    if k < 1:
        raise data.DataUnavailable(f"longgenbench: K must be at least 1, not {k}")
    if subset == "gsm8k":
        chunks = [items[i:i + k] for i in range(0, len(items), k)]
    else:
        by_subject: dict[str, list[dict]] = {}
        for item in items:
            by_subject.setdefault(item["subject"], []).append(item)
        chunks = [group[:k] for _, group in sorted(by_subject.items())]
    return [
        {
            "prompt_id": f"{subset}-{index}",
            "subset": subset,
            "subject": chunk[0]["subject"].replace("_", " "),
            "k": len(chunk),
            "questions": [item["question"] for item in chunk],
            "golds": [item["gold"] for item in chunk],
        }
        for index, chunk in enumerate(chunks)
    ]


def load_subset(subset: str, metadata: dict) -> list[dict]:
    rows, source = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: _read_subset(folder, subset),
        from_hub=lambda: _hub_rows(subset),
        hub_id="/".join(HUB[subset]),
    )
    k = int(metadata.get(f"longgenbench_{subset}_k") or DEFAULT_K[subset])
    records = thinking.tag(pack(subset, question_items(subset, rows), k), metadata)
    for record in records:
        record["system"] = system_text(record)
        record[data.SOURCE_FIELD] = str(source)
    return records


def load_gsm8k(**metadata):
    """``custom_dataset`` hook for acbench_longgenbench_gsm8k."""
    return data.as_split(load_subset("gsm8k", metadata))


def load_mmlu(**metadata):
    """``custom_dataset`` hook for acbench_longgenbench_mmlu."""
    return data.as_split(load_subset("mmlu", metadata))


# ----------------------------------------------------------------------------- prompt, scoring

def system_text(doc: dict) -> str:
    """The system instruction, stored as the record's ``system`` field.

    The YAML's ``description: system`` makes lm-eval put it in a system turn under a chat
    template, or before the prompt without one.
    """
    return SYSTEM[doc["subset"]].format(k=doc["k"], subject=doc["subject"])


def doc_to_text(doc: dict) -> str:
    questions = data.doc_json(doc, "questions", [])
    body = "\n\n".join(f"Question_{i}: {q}" for i, q in enumerate(questions, 1))
    return f"{body}\n\nNow answer all {len(questions)} questions, starting with Answer_1:"


def doc_to_target(doc: dict) -> str:
    golds = data.doc_json(doc, "golds", [])
    if doc["subset"] == "mmlu":
        return " ".join(f"Answer_{i}: The answer is ({g})." for i, g in enumerate(golds, 1))
    return " ".join(f"Answer_{i}: The answer is {g}." for i, g in enumerate(golds, 1))


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Label-aligned prompt accuracy (``acc``, also ``score``), the original zip rule, diagnostics."""
    response = thinking.answer(doc, results[0] if results else "")  # "" for a non-string
    golds = data.doc_json(doc, "golds", [])
    golds = golds if isinstance(golds, list) else []
    kind = "number" if doc["subset"] == "gsm8k" else "letter"
    aligned = scoring.align(response, golds, kind)
    return {
        "score": aligned.accuracy,
        "acc": aligned.accuracy,
        "acc_zip": scoring.zip_accuracy(response, golds, kind),
        "answered_frac": sum(p is not None for p in aligned.predictions) / max(len(golds), 1),
    }
