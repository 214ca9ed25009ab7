"""T-Eval (acbench_teval_<dimension>): six tool-use dimensions over pre-recorded dialogues.

Data: the T-Eval v2 files (HF dataset ``lovesnowbest/T-Eval``, folder ``data/``, or a local
folder holding them, also as ``<data_dir>/teval/``); each file is a JSON object keyed by item id,
each item with ``origin_prompt`` (messages, roles system/user/assistant/function),
``ground_truth``, ``meta_data`` (``response_format``; ``API_list`` for string plans) and
``template``. Our own sample files in the same layout are in ``lm_eval_acbench/samples/teval``.

Dimension -> files (format): instruct -> ``instruct_v2`` (each item's own format); plan ->
``plan_json_v2`` (json) + ``plan_str_v2`` (str); reason / retrieve / understand ->
``<dim>_str_v2`` (str) + ``reason_retrieve_understand_json_v2`` (json); review ->
``review_str_v2`` (str).

Prompt: ``origin_prompt`` rendered through the model's chat template
(:func:`lm_eval_acbench.chat.render_messages`). Scores: :mod:`lm_eval_acbench.metrics.teval_scores`,
with sentence embeddings from :mod:`lm_eval_acbench.embeddings` for plan and reason.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any

from lm_eval_acbench import data, thinking
from lm_eval_acbench.logsafe import log_safe
from lm_eval_acbench.metrics import teval_scores as ts
from lm_eval_acbench.tasks.rendered import RenderedMessagesTask

log = logging.getLogger(__name__)

BENCHMARK = "teval"
HUB_ID = "lovesnowbest/T-Eval"
RRU_FILE = "reason_retrieve_understand_json_v2"
DIMENSIONS: dict[str, list[tuple[str, str | None]]] = {
    "instruct": [("instruct_v2", None)],
    "plan": [("plan_json_v2", "json"), ("plan_str_v2", "str")],
    "reason": [("reason_str_v2", "str"), (RRU_FILE, "json")],
    "retrieve": [("retrieve_str_v2", "str"), (RRU_FILE, "json")],
    "understand": [("understand_str_v2", "str"), (RRU_FILE, "json")],
    "review": [("review_str_v2", "str")],
}


def _format_of(item: dict, default: str | None) -> str:
    meta = item.get("meta_data") or item.get("meta") or {}
    raw = meta.get("response_format") or meta.get("prompt_type") if isinstance(meta, dict) else None
    raw = raw or default or "str"
    return "json" if str(raw).lower() == "json" else "str"


def _messages(item: dict) -> list[dict] | None:
    prompt = item.get("origin_prompt")
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except json.JSONDecodeError:
            return None
    if not isinstance(prompt, list) or not all(isinstance(m, dict) for m in prompt):
        return None
    return prompt


def read_dimension(folder: Path, dimension: str, read=data.read_json) -> list[dict]:
    """Records of one dimension from the T-Eval files in ``folder`` (or ``folder/data``)."""
    if not (folder / f"{DIMENSIONS[dimension][0][0]}.json").is_file() and (folder / "data").is_dir():
        folder = folder / "data"
    records = []
    for stem, default_format in DIMENSIONS[dimension]:
        items = read(folder / f"{stem}.json")
        if not isinstance(items, dict):
            raise data.DataUnavailable(f"teval: {stem}.json is not an object keyed by item id")
        for key, item in items.items():
            if not isinstance(item, dict):
                continue
            messages = _messages(item)
            if not messages:
                continue
            meta = item.get("meta_data") or item.get("meta") or {}
            records.append(
                {
                    "id": f"{stem}/{key}",
                    "dimension": dimension,
                    "file": stem,
                    "response_format": _format_of(item, default_format),
                    "messages": messages,
                    "ground_truth": item.get("ground_truth"),
                    "meta_data": meta if isinstance(meta, dict) else {},
                    "template": item.get("template") or {},
                }
            )
    return interleave_formats(records)


def interleave_formats(records: list[dict]) -> list[dict]:
    """Records alternating between response formats (file order kept within a format), so that
    ``--limit n`` still sees both the JSON and the string form of a dimension."""
    by_format: dict[str, list[dict]] = {}
    for record in records:
        by_format.setdefault(record["response_format"], []).append(record)
    queues = list(by_format.values())
    out = []
    for position in range(max((len(q) for q in queues), default=0)):
        out.extend(q[position] for q in queues if position < len(q))
    return out


def _hub_reader(filename: Path) -> Any:
    from huggingface_hub import hf_hub_download

    local = hf_hub_download(HUB_ID, f"data/{filename.name}", repo_type="dataset")
    return data.read_json(Path(local))


def load_dimension(dimension: str, **metadata) -> dict:
    """``custom_dataset`` hook: the dimension's records as ``{"test": Dataset}``."""
    records, _ = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: read_dimension(folder, dimension),
        from_hub=lambda: read_dimension(Path("data"), dimension, read=_hub_reader),
        hub_id=HUB_ID,
    )
    return data.as_split(records)


for _dimension in DIMENSIONS:
    globals()[f"load_{_dimension}"] = partial(load_dimension, _dimension)


# --- scoring --------------------------------------------------------------------------------


def _cosines(pairs: list[tuple[str, str]], embedding_model: str | None) -> list[float]:
    from lm_eval_acbench.embeddings import embed

    if not pairs:
        return []
    vectors = embed([t for pair in pairs for t in pair], model=embedding_model)
    return [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]


def _plan_cosines(pred: list[dict], gold: list[dict], embedding_model: str | None):
    """(name cosines, args cosines), each (|pred|, |gold|), from one embedding call."""
    from lm_eval_acbench.embeddings import embed

    texts = (
        [a["name"] for a in pred]
        + [a["name"] for a in gold]
        + [a["args"] for a in pred]
        + [a["args"] for a in gold]
    )
    vectors = embed(texts, model=embedding_model)
    p, g = len(pred), len(gold)
    names = vectors[:p] @ vectors[p : p + g].T
    args = vectors[p + g : 2 * p + g] @ vectors[2 * p + g :].T
    return names, args


def _field(doc: dict, key: str, default: Any = None) -> Any:
    """A record field (decoded from JSON); one longer than ``ts.MAX_CHARS`` characters, which no
    T-Eval file holds, counts as missing rather than being decoded."""
    raw = doc.get(key, default)
    if isinstance(raw, str) and len(raw) > ts.MAX_CHARS:
        return default
    return data.doc_json(doc, key, default)


def _gold(doc: dict) -> Any:
    """The item's ground truth; a value JSON cannot hold (not from a data file) counts as none."""
    gold = _field(doc, "ground_truth")
    return gold if isinstance(gold, (str, dict, list, int, float, bool)) else None


def score_doc(doc: dict, output: str, embedding_model: str | None = None) -> dict:
    """The item's score in [0, 1], whether the response parsed, and details for the log."""
    dimension, fmt = doc["dimension"], doc["response_format"]
    gold = _gold(doc)
    gold_dict = gold if isinstance(gold, dict) else {}
    if dimension == "instruct":
        parts = ts.instruct_score(output, gold_dict, _field(doc, "template", {}), fmt)
        return {"score": parts["score"], "parsed": parts["parsed"], "detail": parts}
    if dimension == "review":
        letter = ts.review_letter(output)
        gold_letter = gold_dict.get("answer") if gold_dict else ts.as_text(gold or "").strip()[:1]
        return {
            "score": ts.review_score(output, gold_letter),
            "parsed": letter is not None,
            "detail": {"letter": letter, "gold": gold_letter},
        }
    if dimension == "plan":
        if fmt == "json":
            pred = ts.parse_plan_json(output)
        else:
            meta = _field(doc, "meta_data", {})
            meta = meta if isinstance(meta, dict) else {}
            pred = ts.parse_plan_str(output, meta.get("API_list") or [])
        gold_plan = ts.drop_finish(ts.normalise_plan(gold) or [])
        pred = ts.drop_finish(pred)
        if not pred or not gold_plan:
            return {"score": 0.0, "parsed": bool(pred), "detail": {"pred_actions": len(pred)}}
        names, args = _plan_cosines(pred, gold_plan, embedding_model)
        scores = ts.plan_scores(names, args)
        return {"score": scores["f1"], "parsed": True, "detail": dict(scores, pred_actions=len(pred))}
    # reason / retrieve / understand
    if fmt == "json":
        pred = ts.parse_rru_json(output)
        gold_rru = gold_dict or (ts.parse_rru_json(gold) if isinstance(gold, str) else None) or {}
        if pred is None:
            return {"score": 0.0, "parsed": False, "detail": {"reason": "response is not a JSON object"}}
        if dimension == "reason":
            value = ts.thought_score(
                _cosines([(pred["thought"], ts.as_text(gold_rru.get("thought", "")))], embedding_model)[0]
            )
        elif dimension == "retrieve":
            value = ts.retrieve_json(pred["name"], ts.as_text(gold_rru.get("name", "")))
        else:
            gold_args = gold_rru.get("args", {})
            if isinstance(gold_args, str):
                gold_args = ts.load_structured(gold_args) or {}
            value = ts.understand_json(pred["args"], gold_args)
        return {"score": value, "parsed": True, "detail": {"pred": pred}}
    text = ts.clean_response(output)
    if dimension == "reason":
        value = ts.thought_score(
            _cosines([(text, ts.as_text(gold_dict.get("thought", gold or "")))], embedding_model)[0]
        )
    elif dimension == "retrieve":
        value = ts.retrieve_str(text, ts.as_text(gold_dict.get("name", gold or "")))
    else:
        value = ts.understand_str(text, gold_dict.get("args", gold) if gold_dict else gold)
    return {"score": value, "parsed": bool(text), "detail": {}}


class TEvalTask(RenderedMessagesTask):
    """generate_until over a pre-recorded dialogue rendered by the model's chat template."""

    def process_results(self, doc, results):
        from lm_eval_acbench.embeddings import resolve_embedding_model

        rendered = self.rendered(doc)
        metadata = self.config.metadata or {}
        model = metadata.get("embedding_model") if isinstance(metadata.get("embedding_model"), str) else None
        needs_embeddings = doc["dimension"] == "plan" or doc["dimension"] == "reason"
        try:
            scored = score_doc(doc, thinking.answer(doc, results[0] if results else ""), model)
        except Exception as exc:  # e.g. no embedding model: the item scores 0 and the log says why
            log.warning("teval %s: scoring failed (%s: %s); scored 0", doc.get("id"), type(exc).__name__, exc)
            scored = {"score": 0.0, "parsed": False, "detail": {"error": f"{type(exc).__name__}: {exc}"}}
        doc["acbench_verdict"] = _jsonable(
            dict(scored["detail"], score=scored["score"], parsed=scored["parsed"])
        )
        doc["acbench_render"] = {"mode": rendered.mode, "roles": rendered.roles, "note": rendered.note}
        if needs_embeddings:
            doc["acbench_embedding_model"] = resolve_embedding_model(model)
        fmt = doc["response_format"]
        return {
            "score": {"format": fmt, "value": float(scored["score"])},
            "parse_rate": {"format": fmt, "value": float(scored["parsed"])},
        }


def _jsonable(value: Any) -> Any:
    """The value as the samples log can hold it (see :mod:`lm_eval_acbench.logsafe`)."""
    return log_safe(value)
