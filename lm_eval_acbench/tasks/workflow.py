"""Workflow generation (WorfBench) as lm-eval tasks: data, prompt pieces, batched scoring.

Tasks ``acbench_workflow_<subset>`` (YAML in ``task_yamls/workflow/``) use these hooks:

* ``custom_dataset`` -> :func:`load_worfbench` (``dataset_kwargs: {subset: ...}``): records from a
  local folder in the upstream layout (``<dir>/<subset>/graph_eval.json``, also under
  ``gold_traj/``), the hub (``zjunlp/WorFBench_test``) or our sample set, through
  :func:`lm_eval_acbench.data.load_records`. The first two records of the subset file are the
  fixed two-shot demonstrations (split ``demo``) and are not scored (split ``test``).
* Prompt: ``description`` is the record's system message; the demonstrations are user/assistant
  pairs (:func:`demo_to_text`, :func:`doc_to_target`); the scored record's user message comes
  with the prefix ``"Now it's your turn.\\n"`` (:func:`doc_to_text`). With
  ``--apply_chat_template`` lm-eval (0.4.13, ``fewshot_as_multiturn`` on by default) turns them
  into a system turn and real chat turns.
* Scoring: one filter step (:func:`score_responses`, filter name ``none`` so metrics stay keyed
  ``<metric>,none``) scores all of a task's responses at once: every distinct node text of the
  task is embedded once, in batches, and texts already embedded for an earlier task of the same
  run are reused; the gold node texts' rows are kept on disk across runs
  (:func:`lm_eval_acbench.embeddings.stored_embed`); pairs whose reference matching has tied
  optima (repeated node texts) get their reference scores from encode calls in WorfBench's own
  shape (:func:`upstream_call_encoder`). The filter hands each instance its score dict;
  :func:`process_results` only reads it, so the samples log carries every item's scores as plain
  numbers and every metric aggregates with ``mean``. The dict also names the embedding model used.

Embedding model: ``--metadata '{"embedding_model": NAME_OR_PATH}'`` or
``ACBENCH_EMBEDDING_MODEL`` (see :mod:`lm_eval_acbench.embeddings`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lm_eval_acbench import data, thinking

log = logging.getLogger(__name__)

BENCHMARK = "worfbench"
HUB_ID = "zjunlp/WorFBench_test"
GROUP_SUBSETS = ("wikihow", "toolbench", "toolalpaca", "lumos", "alfworld", "webshop", "os")
OPTIONAL_SUBSETS = ("intercodesql", "seal_tools")
SUBSETS = GROUP_SUBSETS + OPTIONAL_SUBSETS
NUM_DEMOS = 2
TURN_PREFIX = "Now it's your turn.\n"
MODEL_FIELD = "acbench_embedding_model"
METRICS = (
    "node_f1",
    "node_precision",
    "node_recall",
    "graph_f1",
    "graph_precision",
    "graph_recall",
    "parse_rate",
    "node_f1_fixed",
    "graph_f1_fixed",
)


# --- data -------------------------------------------------------------------------------------


def _subset_file(folder: Path, subset: str) -> Path:
    for candidate in (folder / subset / "graph_eval.json", folder / "gold_traj" / subset / "graph_eval.json"):
        if candidate.is_file():
            return candidate
    return folder / subset / "graph_eval.json"


def _clean_records(raw: Any, where: str) -> list[dict]:
    """Keep records with a system, a user and an assistant message; count the others as dropped."""
    if not isinstance(raw, list):
        raise data.DataUnavailable(f"{where}: expected a JSON list of records")
    records = []
    for number, row in enumerate(raw):
        turns = row.get("conversations") if isinstance(row, dict) else None
        if (
            not isinstance(turns, list)
            or len(turns) < 3
            or not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in turns)
        ):
            data.drop(row.get("id", number) if isinstance(row, dict) else number,
                      "without system, user and assistant messages")
            continue
        records.append(row)
    return records


def read_subset(folder: Path, subset: str) -> list[dict]:
    """The records of ``<folder>/<subset>/graph_eval.json`` (upstream layout)."""
    path = _subset_file(Path(folder), subset)
    return _clean_records(data.read_json(path), str(path))


def _from_hub(subset: str) -> tuple[list[dict], str]:
    folder, revision = data.hub_snapshot(HUB_ID, [f"gold_traj/{subset}/graph_eval.json"])
    return read_subset(folder, subset), revision


def split_demos(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(demonstrations, scored records): the first ``NUM_DEMOS`` records are the demonstrations."""
    return records[:NUM_DEMOS], records[NUM_DEMOS:]


def load_worfbench(subset: str = "wikihow", **metadata: Any) -> dict:
    """``custom_dataset`` hook: ``{"test": scored records, "demo": the two demonstrations}``."""
    if subset not in SUBSETS:
        raise data.DataUnavailable(f"unknown WorfBench subset {subset!r}; one of {', '.join(SUBSETS)}")
    records, source = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: read_subset(folder, subset),
        from_hub=lambda: _from_hub(subset),
        hub_id=HUB_ID,
        label=f"worfbench/{subset}",
    )
    demos, scored = split_demos(records)
    if len(demos) < NUM_DEMOS or not scored:
        raise data.DataUnavailable(f"worfbench/{subset}: needs at least {NUM_DEMOS + 1} records")
    model = str(metadata.get("embedding_model") or "")
    from lm_eval_acbench.embeddings import check_available

    check_available(model or None)  # no silent zeros: fail now, before the model runs
    for record in records:
        record[MODEL_FIELD] = model
        record["subset"] = subset
        # lm-eval's ``description`` (a field name here): the system turn with a chat template;
        # in a plain-text prompt the blank line separates it from the first demonstration.
        record["system_prompt"] = str(record["conversations"][0]["content"]).rstrip() + "\n\n"
    return {**data.as_split(scored, "test", provenance=source), **data.as_split(demos, "demo")}


# --- prompt -----------------------------------------------------------------------------------


def _turn(doc: dict, index: int) -> str:
    turns = data.doc_json(doc, "conversations", [])
    try:
        return str(turns[index]["content"])
    except (IndexError, KeyError, TypeError):
        return ""


def system_message(doc: dict) -> str:
    return _turn(doc, 0)


def demo_to_text(doc: dict) -> str:
    """A demonstration's user message, as is."""
    return _turn(doc, 1)


def doc_to_text(doc: dict) -> str:
    """The scored record's user message, prefixed with ``"Now it's your turn.\\n"``."""
    return TURN_PREFIX + _turn(doc, 1)


def doc_to_target(doc: dict) -> str:
    """The gold workflow (the record's assistant message)."""
    return _turn(doc, 2)


# --- scoring ----------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_vector_cache: dict[tuple[str, str], np.ndarray] = {}


def cached_encoder(model: str | None):
    """An ``encode(texts) -> rows`` that embeds only texts not embedded before in this process."""
    from lm_eval_acbench import embeddings

    resolved = embeddings.resolve_embedding_model(model)

    def fill(texts: Sequence[str], embed: Callable[..., np.ndarray]) -> None:
        with _cache_lock:
            missing = list(dict.fromkeys(t for t in texts if (resolved, t) not in _vector_cache))
        if missing:
            vectors = embed(missing, model=model)
            with _cache_lock:
                for text, vector in zip(missing, vectors):
                    _vector_cache[(resolved, text)] = vector

    def encode(texts: Sequence[str]) -> np.ndarray:
        fill(texts, embeddings.embed)
        with _cache_lock:
            rows = [_vector_cache[(resolved, t)] for t in texts]
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def seed(texts: Sequence[str]) -> None:
        """Put the rows of ``texts`` (gold node texts, the same every run) in from the disk store."""
        fill(texts, embeddings.stored_embed)

    encode.seed = seed  # type: ignore[attr-defined]
    return encode, resolved


_call_cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}


def upstream_call_encoder(model: str | None):
    """``encode(texts)``: one encode call shaped as WorfBench's evaluator makes it, memoised per list.

    For :func:`~lm_eval_acbench.metrics.workflow.score_batch`'s ``reference_encode``: used only for
    the pairs whose reference matching has (nearly) tied optima. The same list always gives the
    same rows (one process, one model), so a repeat is read from memory.
    """
    from lm_eval_acbench import embeddings

    resolved = embeddings.resolve_embedding_model(model)

    def encode(texts: Sequence[str]) -> np.ndarray:
        key = (resolved, tuple(texts))
        with _cache_lock:
            rows = _call_cache.get(key)
        if rows is None:
            rows = embeddings.encode_call(list(texts), model=model)
            with _cache_lock:
                _call_cache[key] = rows
        return rows

    return encode


def gold_node_texts(golds: Sequence[str]) -> list[str]:
    """Every distinct node text that scoring ``golds`` embeds (both parsers' readings)."""
    from lm_eval_acbench.metrics.workflow import node_texts

    return node_texts(golds)


def _response_text(resp: Any) -> str:
    while isinstance(resp, (list, tuple)):
        if not resp:
            return ""
        resp = resp[0]
    return resp if isinstance(resp, str) else ""


def score_responses(resps: list, docs: list[dict]) -> list[dict]:
    """Filter hook: score every response of a task in one batch; one score dict per instance."""
    from lm_eval_acbench.metrics.workflow import score_batch

    if not resps:
        return []
    model = next((str(d.get(MODEL_FIELD)) for d in docs if d.get(MODEL_FIELD)), None)
    encode, resolved = cached_encoder(model)
    from lm_eval_acbench.embeddings import cosine_matrix

    answers = [thinking.answer(d, _response_text(r)) for r, d in zip(resps, docs)]
    golds = [doc_to_target(d) for d in docs]
    encode.seed(gold_node_texts(golds))  # type: ignore[attr-defined]
    results = score_batch(answers, golds, encode, cosine=cosine_matrix,
                          reference_encode=upstream_call_encoder(model))
    for result in results:
        result["embedding_model"] = resolved
    return results


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Read the scores that :func:`score_responses` computed for this item."""
    scores = results[0] if results and isinstance(results[0], dict) else {}
    return {metric: float(scores.get(metric, 0.0)) for metric in METRICS}
