"""LongBench v1 (``acbench_longbench_<dataset>``, 21 data sets) on top of lm-eval's ``longbench_*``.

What is reused from lm-eval's own ``longbench`` tasks, read from its YAML files at run time: the
prompt template of each data set and its hub copy (``Xnhyacinth/LongBench``, a parquet mirror of
``THUDM/LongBench`` whose ``input`` column is named ``question``). The per-data-set generation
lengths are the same numbers (pinned against lm-eval's YAML by a test).

What acbench changes, and why:

* **Middle truncation.** The rendered prompt is cut to the model's window in the middle
  (first and last halves kept, in the evaluated model's tokens) when the documents are built,
  so lm-eval's HF and vLLM models, which would cut from the left, never need to. Budget:
  ``longbench_max_length`` from ``--metadata`` when given (the original's per-model
  ``model2maxlen``), else ``window - max_gen_toks - 64`` (64 tokens left for a chat template);
  ``max_gen_toks`` is ``--gen_kwargs max_gen_toks=N`` when given (it replaces the data set's
  own number in the requests too), else the data set's.
* **Scoring** in :mod:`lm_eval_acbench.metrics.longcontext_longbench` (pure functions; lm-eval's
  scorer module needs jieba, fuzzywuzzy and rouge). The first-line rule for trec, triviaqa,
  samsum and lsht is applied to a free generation (lm-eval stops at the first newline instead,
  which leaves an empty answer when the reply starts with one).
* **Data**: local folder (``<data_dir>/longbench/[data/]<dataset>.jsonl``, the upstream
  ``data.zip`` layout), the hub, or our sample set (``samples/longbench/``).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from lm_eval_acbench import data, run_args, thinking
from lm_eval_acbench.metrics import longcontext_longbench as scoring
from lm_eval_acbench.tasks import niah

log = logging.getLogger(__name__)

BENCHMARK = "longbench"
CHAT_RESERVE = 64

# dataset -> (scorer, max new tokens). The lengths are LongBench's dataset2maxlen.
DATASETS: dict[str, tuple[str, int]] = {
    "narrativeqa": ("qa_f1", 128),
    "qasper": ("qa_f1", 128),
    "multifieldqa_en": ("qa_f1", 64),
    "multifieldqa_zh": ("qa_f1_zh", 64),
    "hotpotqa": ("qa_f1", 32),
    "2wikimqa": ("qa_f1", 32),
    "musique": ("qa_f1", 32),
    "dureader": ("rouge_l_zh", 128),
    "gov_report": ("rouge_l", 512),
    "qmsum": ("rouge_l", 512),
    "multi_news": ("rouge_l", 512),
    "vcsum": ("rouge_l_zh", 512),
    "trec": ("classification", 64),
    "triviaqa": ("qa_f1", 32),
    "samsum": ("rouge_l", 128),
    "lsht": ("classification", 64),
    "passage_count": ("count", 32),
    "passage_retrieval_en": ("retrieval", 32),
    "passage_retrieval_zh": ("retrieval_zh", 32),
    "lcc": ("code_sim", 64),
    "repobench-p": ("code_sim", 64),
}
# Run without a chat template in the original (few-shot and code completion).
NO_CHAT = ("trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p")


def task_name(dataset: str) -> str:
    return f"acbench_longbench_{dataset}"


@functools.lru_cache(maxsize=None)
def lm_eval_config(dataset: str) -> dict:
    """lm-eval's own ``longbench_<dataset>`` YAML, read without importing its scorer module."""
    from lm_eval.tasks._yaml_loader import load_yaml

    import lm_eval.tasks

    path = Path(lm_eval.tasks.__file__).parent / "longbench" / f"{dataset}.yaml"
    if not path.is_file():
        raise data.DataUnavailable(f"longbench: lm-eval has no {path.name}; acbench reuses its prompts")
    return load_yaml(path, resolve_func=False)


def prompt_template(dataset: str) -> str:
    return lm_eval_config(dataset)["doc_to_text"]


def render_prompt(dataset: str, row: dict) -> str:
    """lm-eval's Jinja prompt for the data set, filled from an upstream-format row."""
    import jinja2

    values = dict(row)
    values.setdefault("question", row.get("input", ""))
    values.setdefault("input", row.get("question", ""))
    return jinja2.Template(prompt_template(dataset), keep_trailing_newline=True).render(**values)


# ----------------------------------------------------------------------------- data

def _read_folder(folder: Path, dataset: str) -> list[dict]:
    for candidate in (folder / f"{dataset}.jsonl", folder / "data" / f"{dataset}.jsonl"):
        if candidate.is_file():
            return list(data.iter_jsonl(candidate))
    raise data.DataUnavailable(f"longbench: no {dataset}.jsonl under {folder} (or its data/)")


def _from_hub(dataset: str) -> tuple[list[dict], str]:
    """The test rows of one data set from lm-eval's hub copy (its ``dataset_path``), cache first."""
    repo = lm_eval_config(dataset)["dataset_path"]
    folder, revision = data.hub_snapshot(repo, [f"{dataset}/*", f"data/{dataset}*", f"{dataset}.jsonl"])
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".parquet", ".jsonl")
                   and (p.parent.name == dataset or p.stem == dataset or p.stem.startswith(f"{dataset}-"))
                   and "train" not in p.name and "validation" not in p.name)
    if not files:
        raise data.DataUnavailable(f"longbench: no {dataset} test files in {repo} snapshot {folder}")
    return data.read_table_files(files), revision


def truncation_budget(metadata: dict, tokenizer, max_gen_toks: int) -> int | None:
    if metadata.get("longbench_max_length"):
        return int(metadata["longbench_max_length"])
    window = niah.model_window(metadata, tokenizer)
    return window - max_gen_toks - CHAT_RESERVE if window else None


def build_records(dataset: str, rows: list[dict], tokenizer=None, budget: int | None = None) -> list[dict]:
    """Documents with the rendered, middle-truncated ``prompt`` and the gold answers."""
    records = []
    for number, row in enumerate(rows):
        answers = row.get("answers")
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers:
            data.drop(row.get("_id", number), "without answers")
            continue
        prompt = render_prompt(dataset, row)
        tokens_before = tokens_after = None
        if tokenizer is not None and budget is not None:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tokens_before = len(ids)
            if len(ids) > budget:
                kept = scoring.middle_truncate(ids, budget)
                head = budget // 2
                prompt = tokenizer.decode(kept[:head], skip_special_tokens=True) + tokenizer.decode(
                    kept[head:], skip_special_tokens=True
                )
            tokens_after = min(tokens_before, budget)
        all_classes = row.get("all_classes") or []
        records.append(
            {
                "prompt": prompt,
                "answers": [str(a) for a in answers],
                "all_classes": [str(c) for c in all_classes] if isinstance(all_classes, list) else [],
                "dataset": dataset,
                "length": row.get("length"),
                "id": str(row.get("_id", number)),
                "prompt_tokens": tokens_before,
                "prompt_tokens_kept": tokens_after,
                "truncated": bool(tokens_before is not None and tokens_after < tokens_before),
            }
        )
    return records


def load(**kwargs):
    """``custom_dataset`` hook; the YAML's ``dataset_kwargs`` give ``longbench_dataset``."""
    dataset = kwargs.pop("longbench_dataset")
    metric, max_gen_toks = DATASETS[dataset]
    max_gen_toks = run_args.max_gen_toks(max_gen_toks)  # --gen_kwargs max_gen_toks=N wins, as in lm-eval
    rows, source = data.load_records(
        BENCHMARK,
        kwargs,
        from_folder=lambda folder: _read_folder(folder, dataset),
        from_hub=lambda: _from_hub(dataset),
        hub_id=f"{lm_eval_config(dataset)['dataset_path']}:{dataset}",
        label=f"longbench/{dataset}",
    )
    name = niah.tokenizer_name(kwargs)
    tokenizer = niah.load_tokenizer(name, bool(kwargs.get("trust_remote_code"))) if name else None
    budget = truncation_budget(kwargs, tokenizer, max_gen_toks) if tokenizer is not None else None
    if budget is None:
        log.warning("longbench %s: no tokenizer or window known; prompts are NOT middle-truncated", dataset)
    with data.dropped_rows(f"longbench/{dataset}", source):
        records = thinking.tag(build_records(dataset, rows, tokenizer, budget), kwargs)
    for record in records:
        record[data.SOURCE_FIELD] = str(source)
    return data.as_split(records, provenance=source)


def doc_to_text(doc: dict) -> str:
    return doc["prompt"]


def doc_to_target(doc: dict) -> str:
    answers = data.doc_json(doc, "answers", [])
    return answers[0] if answers else ""


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """The data set's metric (max over gold answers), as ``score`` and under its own name."""
    dataset = doc["dataset"]
    metric = DATASETS[dataset][0]
    prediction = thinking.answer(doc, results[0] if results else "")  # "" for a non-string
    value = scoring.best_over_golds(
        dataset, metric, prediction, data.doc_json(doc, "answers", []), data.doc_json(doc, "all_classes", [])
    )
    return {"score": value, f"{metric}_score": value}
