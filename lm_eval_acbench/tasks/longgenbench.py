"""LongGenBench (``acbench_longgenbench_gsm8k``, ``acbench_longgenbench_mmlu``): K questions per prompt.

Documents are *packed prompts*: GSM8K test questions in consecutive chunks of K (default 30;
the last chunk may be shorter), MMLU test questions as the first K (default 20) of each subject.
The model answers all of them in one generation.

Data, in the source order of :func:`lm_eval_acbench.data.load_records` (benchmark folder
``longgenbench``):

* **LongGenBench's own repository layout** (``Dominic789654/LongGenBench``):
  ``data/MMLU/data/test/<subject>_test.csv`` (no header: question, A, B, C, D, answer letter)
  and the few-shot prompt files ``data/LongGenBench_MMLU_prompt/LongGenBench_prompt.json``
  (subject -> chain-of-thought examples) and ``data/LongGenBench_GSM8K_prompt/LongGenBench_prompt.txt``.
  GSM8K questions (the repository loads them from the hub): ``gsm8k/test.jsonl`` or
  ``data/GSM8K/test.jsonl`` in the folder, or the sibling benchmark folder
  ``<data_dir>/gsm8k/[grade_school_math/data/]test.jsonl`` (openai/grade-school-math layout).
* acbench's flat layout: ``gsm8k.jsonl`` (``question``, ``answer`` with ``#### <n>``) and
  ``mmlu.jsonl`` (``question``, ``subject``, ``choices``, 0-based ``answer``) -- our sample set.
* Hub: ``openai/gsm8k`` (``main``, test) and ``cais/mmlu`` (``all``, test), cache first.

Prompt: with LongGenBench's prompt files (from the same folder, or from a local LongGenBench
folder when the rows came from the hub) the prompt is the benchmark's: its system instruction,
``Examples:`` with the few-shot block (MMLU: the subject's 5 examples re-packed as
``Question_1..5`` then ``Answer_1..5``; GSM8K: the 8 examples as written), then
``Following Question:`` and the scored questions numbered after the examples (MMLU from
``Question_6``, GSM8K from ``Question_9``). Without them (our sample set, hub rows alone)
acbench's own zero-shot instruction is used; the record's ``prompt_style`` (``longgenbench`` or
``acbench``) and the provenance say which.

Scores (:mod:`lm_eval_acbench.metrics.longgenbench`): ``score`` is LongGenBench's reference
rule (answers zipped by position); ``acc_label_aligned`` aligns answers by their label.
K: ``--metadata '{"longgenbench_gsm8k_k": 30, "longgenbench_mmlu_k": 20}'``.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from lm_eval_acbench import data, thinking
from lm_eval_acbench.metrics import longgenbench as scoring

log = logging.getLogger(__name__)

BENCHMARK = "longgenbench"
LETTERS = "ABCDEFGHIJ"
DEFAULT_K = {"gsm8k": 30, "mmlu": 20}
HUB = {"gsm8k": ("openai/gsm8k", "main"), "mmlu": ("cais/mmlu", "all")}
PROMPT_FILES = {
    "gsm8k": Path("data/LongGenBench_GSM8K_prompt/LongGenBench_prompt.txt"),
    "mmlu": Path("data/LongGenBench_MMLU_prompt/LongGenBench_prompt.json"),
}
MMLU_TEST = Path("data/MMLU/data/test")

# LongGenBench's system instructions (longgenbench_{GSM8K,MMLU}_openai.py).
UPSTREAM_SYSTEM = {
    "gsm8k": (
        "Answer each question step by step, adhering to the format shown in the examples provided. "
        "Start each response with 'Answer_' and introduce the final response with 'The answer is'. "
        "Do not repeat the question. Ensure that you respond to all the questions presented, "
        "regardless of their number."
    ),
    "mmlu": (
        "Answer each question step by step, adhering to the format shown in the examples provided. "
        "Start each response with 'Answer_' . Do not repeat the question. Ensure that you respond "
        "to all the questions presented, regardless of their number. The following are multiple "
        "choice questions (with answers) about {subject}.\n\n"
    ),
}

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

def _gsm8k_files(folder: Path) -> list[Path]:
    sibling = folder.parent / "gsm8k"
    return [folder / "gsm8k.jsonl", folder / "gsm8k" / "test.jsonl", folder / "data" / "GSM8K" / "test.jsonl",
            sibling / "grade_school_math" / "data" / "test.jsonl", sibling / "test.jsonl"]


def _read_mmlu_csvs(test_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(test_dir.glob("*_test.csv")):
        data.note_file(path)
        subject = path.name[: -len("_test.csv")]
        with open(path, encoding="utf-8", newline="") as handle:
            for number, cells in enumerate(csv.reader(handle), 1):
                if len(cells) < 3 or cells[-1].strip().upper() not in LETTERS[: len(cells) - 2]:
                    data.drop(f"{path.name}:{number}", "not question, options, answer letter")
                    continue
                rows.append({"question": cells[0], "choices": cells[1:-1], "answer": cells[-1].strip().upper(),
                             "subject": subject})
    return rows


def _read_subset(folder: Path, subset: str) -> list[dict]:
    if subset == "mmlu":
        if (folder / MMLU_TEST).is_dir():
            rows = _read_mmlu_csvs(folder / MMLU_TEST)
            if not rows:
                raise data.DataUnavailable(f"longgenbench: no *_test.csv rows in {folder / MMLU_TEST}")
            return rows
        candidates = [folder / "mmlu.jsonl"]
    else:
        candidates = _gsm8k_files(folder)
    for path in candidates:
        if path.is_file():
            rows = list(data.iter_jsonl(path))
            if not rows:
                raise data.DataUnavailable(f"longgenbench: {path} has no rows")
            return rows
    raise data.DataUnavailable(
        f"longgenbench: no {subset} questions under {folder} (looked for "
        + (f"{MMLU_TEST}/*_test.csv, " if subset == "mmlu" else "")
        + ", ".join(str(p.relative_to(folder.parent)) for p in candidates) + ")"
    )


def _hub_rows(subset: str) -> tuple[list[dict], str]:
    path, name = HUB[subset]
    folder, revision = data.hub_snapshot(path, [f"{name}/test-*", f"{name}/test*.parquet"])
    files = sorted(p for p in (folder / name).glob("test*") if p.suffix in (".parquet", ".jsonl"))
    if not files:
        raise data.DataUnavailable(f"longgenbench: no {name}/test files in {path} snapshot {folder}")
    return data.read_table_files(files), revision


def question_items(subset: str, rows: list[dict], upstream: bool = False) -> list[dict]:
    """Plain ``{"question", "gold", "subject"}`` items; rows without a usable gold are dropped.

    MMLU options follow the question one per line, or with ``upstream`` as LongGenBench writes
    them: run together on one line, ``(A) ...(B) ...``.
    """
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
                data.drop(row.get("id", number), "without choices and answer")
                continue
            options = ("" if upstream else "\n").join(f"({LETTERS[j]}) {choice}" for j, choice in enumerate(choices))
            question = f"{question}\n{options}"
            gold = LETTERS[answer]
            subject = str(row.get("subject") or "general knowledge")
        if not question or gold is None:
            data.drop(row.get("id", number), "without question or gold answer")
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
            "subject_key": chunk[0]["subject"],
            "k": len(chunk),
            "questions": [item["question"] for item in chunk],
            "golds": [item["gold"] for item in chunk],
        }
        for index, chunk in enumerate(chunks)
    ]


# ----------------------------------------------------------------------------- few-shot prompts

def read_prompts(folder: Path, subset: str):
    """LongGenBench's few-shot prompt file of a subset in ``folder`` (None when absent)."""
    path = folder / PROMPT_FILES[subset]
    if not path.is_file():
        return None
    if subset == "gsm8k":
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise data.DataUnavailable(f"longgenbench: {path} is empty")
        return text
    prompts = data.read_json(path)
    if not isinstance(prompts, dict):
        raise data.DataUnavailable(f"longgenbench: {path} is not an object keyed by subject")
    return prompts


def repack_mmlu_examples(chain_of_thought: str) -> tuple[str, int]:
    """LongGenBench's ``batched_prompt``: ``Q: ... A: ...`` examples as ``Question_i`` then ``Answer_i``.

    Returns the block and the number of examples.
    """
    questions, answers = [], []
    for part in chain_of_thought.split("\n\nQ: ")[1:]:
        question, _, answer = part.partition("\nA: ")
        questions.append(question)
        answers.append(answer)
    block = "".join(f"Question_{i}:\n{q}\n\n" for i, q in enumerate(questions, 1))
    block += "".join(f"Answer_{i}:\n{a}\n\n" for i, a in enumerate(answers, 1))
    return block, len(questions)


def upstream_prompt(record: dict, prompts) -> tuple[str, str, int]:
    """(system, user text, label of the first scored question) in LongGenBench's own shape."""
    questions = record["questions"]
    if record["subset"] == "gsm8k":
        shots = len(re.findall(r"^Question_\d+:", prompts, re.M))
        first = shots + 1
        user = "Examples: \n" + prompts + "\n\nFollowing Question: \n"
        user += "".join(f"Question_{i}:\n{q}\n" for i, q in enumerate(questions, first)) + "\n"
        return UPSTREAM_SYSTEM["gsm8k"], user, first
    examples = prompts.get(record["subject_key"])
    if not isinstance(examples, str):
        raise data.DataUnavailable(f"longgenbench: the MMLU prompt file has no examples for {record['subject_key']!r}")
    block, shots = repack_mmlu_examples(examples)
    first = shots + 1
    user = "Examples: \n" + block + "Following Question: \n"
    user += "".join(f"Question_{i}:\n{q}\n\n" for i, q in enumerate(questions, first))
    subject = "".join(" " + part for part in record["subject_key"].split("_"))
    return UPSTREAM_SYSTEM["mmlu"].format(subject=subject), user, first


def _prompt_folder(metadata: dict, source: data.DataSource) -> Path | None:
    """Where LongGenBench's prompt files are: the rows' own folder, else a local LongGenBench folder."""
    if source.kind == "local":
        return Path(source.location)
    if source.kind == "sample":
        return None
    data_dir, _ = data.data_settings(metadata)
    own = data.benchmark_setting_dir(BENCHMARK, metadata)
    for folder in (own, data_dir / BENCHMARK if data_dir else None, data_dir):
        if folder is not None and folder.is_dir():
            return folder
    return None


def load_subset_with_source(subset: str, metadata: dict) -> tuple[list[dict], data.DataSource]:
    """The packed documents of a subset and where their rows and prompt files came from."""
    rows, source = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: _read_subset(folder, subset),
        from_hub=lambda: _hub_rows(subset),
        hub_id="/".join(HUB[subset]),
        label=f"longgenbench/{subset}",
    )
    k = int(metadata.get(f"longgenbench_{subset}_k") or DEFAULT_K[subset])
    folder = _prompt_folder(metadata, source)
    prompts = read_prompts(folder, subset) if folder is not None else None
    with data.dropped_rows(f"longgenbench/{subset}", source):
        records = thinking.tag(pack(subset, question_items(subset, rows, upstream=prompts is not None), k),
                               metadata)
    for record in records:
        if prompts is not None:
            record["system"], record["prompt"], record["first_label"] = upstream_prompt(record, prompts)
            record["prompt_style"] = "longgenbench"
        else:
            record["system"] = system_text(record)
            record["prompt"] = acbench_prompt(record["questions"])
            record["first_label"] = 1
            record["prompt_style"] = "acbench"
        record[data.SOURCE_FIELD] = str(source)
    source.prompt = (f"longgenbench:{folder / PROMPT_FILES[subset]}" if prompts is not None
                     else "acbench zero-shot instruction (no LongGenBench prompt files)")
    return records, source


def load_subset(subset: str, metadata: dict) -> list[dict]:
    return load_subset_with_source(subset, metadata)[0]


def load_gsm8k(**metadata):
    """``custom_dataset`` hook for acbench_longgenbench_gsm8k."""
    records, source = load_subset_with_source("gsm8k", metadata)
    return data.as_split(records, provenance=source)


def load_mmlu(**metadata):
    """``custom_dataset`` hook for acbench_longgenbench_mmlu."""
    records, source = load_subset_with_source("mmlu", metadata)
    return data.as_split(records, provenance=source)


# ----------------------------------------------------------------------------- prompt, scoring

def system_text(doc: dict) -> str:
    """The system instruction, stored as the record's ``system`` field.

    The YAML's ``description: system`` makes lm-eval put it in a system turn under a chat
    template, or before the prompt without one.
    """
    return SYSTEM[doc["subset"]].format(k=doc["k"], subject=doc["subject"])


def acbench_prompt(questions: list[str]) -> str:
    """acbench's zero-shot user text (used without LongGenBench's prompt files)."""
    body = "\n\n".join(f"Question_{i}: {q}" for i, q in enumerate(questions, 1))
    return f"{body}\n\nNow answer all {len(questions)} questions, starting with Answer_1:"


def doc_to_text(doc: dict) -> str:
    if doc.get("prompt"):
        return doc["prompt"]
    return acbench_prompt(data.doc_json(doc, "questions", []))


def doc_to_target(doc: dict) -> str:
    """A perfect reply in the benchmark's answer shape (``Answer_<i>:`` newline, reasoning, blank line)."""
    golds = data.doc_json(doc, "golds", [])
    first = int(doc.get("first_label") or 1)
    shown = (lambda g: f"({g})") if doc["subset"] == "mmlu" else str
    return "".join(f"Answer_{i}:\nThe answer is {shown(g)}.\n\n" for i, g in enumerate(golds, first)).rstrip()


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """LongGenBench's reference zip rule (``score``), label-aligned accuracy, answered share."""
    response = thinking.answer(doc, results[0] if results else "")  # "" for a non-string
    golds = data.doc_json(doc, "golds", [])
    golds = golds if isinstance(golds, list) else []
    kind = "number" if doc["subset"] == "gsm8k" else "letter"
    aligned = scoring.align(response, golds, kind, first_label=int(doc.get("first_label") or 1))
    return {
        "score": scoring.reference_zip_accuracy(response, golds, kind),
        "acc_label_aligned": aligned.accuracy,
        "answered_frac": sum(p is not None for p in aligned.predictions) / max(len(golds), 1),
    }
