"""T-Eval (acbench_teval_<dimension>): six tool-use dimensions over pre-recorded dialogues.

Data: the T-Eval v2 files (HF dataset ``lovesnowbest/T-Eval``, folder ``data/``, or a local
folder holding them, also as ``<data_dir>/teval/``); each file is a JSON object keyed by item id,
each item with ``origin_prompt`` (messages, roles system/user/assistant/function),
``ground_truth``, ``template`` and its meta fields under the key T-Eval's own evaluator for that
dimension reads: ``meta_data`` (``response_format``) for instruct (``InstructEvaluator``),
``meta`` (``prompt_type``, ``API_list``) for plan (``PlanningEvaluator``); either key is read
elsewhere, and for plan the other key is accepted too. A string-plan item without ``API_list``
in either is dropped and counted; a plan_str file where no item has it is an error. Items
without a usable ``origin_prompt`` are dropped and counted. Our own sample files in the same layout are in ``lm_eval_acbench/samples/teval``.

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
from lm_eval_acbench.errors import UserError
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


# The key T-Eval's evaluator reads per dimension (teval/evaluators/*.py), tried first.
META_KEYS = {"instruct": ("meta_data", "meta"), "plan": ("meta", "meta_data")}


EMBEDDING_DIMENSIONS = ("plan", "reason")


def _meta(item: dict, dimension: str) -> dict:
    for key in META_KEYS.get(dimension, ("meta_data", "meta")):
        if isinstance(item.get(key), dict):
            return item[key]
    return {}


def _format_of(item: dict, default: str | None, dimension: str = "") -> str:
    meta = _meta(item, dimension)
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
        with_api_list = 0
        for key, item in items.items():
            if not isinstance(item, dict):
                data.drop(f"{stem}/{key}", "not an object")
                continue
            messages = _messages(item)
            if not messages:
                data.drop(f"{stem}/{key}", "without a usable origin_prompt")
                continue
            meta = _meta(item, dimension)
            response_format = _format_of(item, default_format, dimension)
            if dimension == "plan" and response_format == "str":
                if not isinstance(meta.get("API_list"), list):
                    data.drop(f"{stem}/{key}", "without meta.API_list (string plan)")
                    continue
                with_api_list += 1
            records.append(
                {
                    "id": f"{stem}/{key}",
                    "dimension": dimension,
                    "file": stem,
                    "response_format": response_format,
                    "messages": messages,
                    "ground_truth": item.get("ground_truth"),
                    "meta_data": meta,
                    "template": item.get("template") or {},
                }
            )
        if stem == "plan_str_v2" and items and not with_api_list:
            raise data.DataUnavailable(
                f"teval: no item of {folder / stem}.json has API_list under 'meta' (what T-Eval's "
                "PlanningEvaluator reads) or 'meta_data'; string plans cannot be scored"
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


def _from_hub(dimension: str) -> tuple[list[dict], str]:
    stems = [stem for stem, _ in DIMENSIONS[dimension]]
    folder, revision = data.hub_snapshot(HUB_ID, [f"data/{stem}.json" for stem in stems])
    return read_dimension(folder, dimension), revision


def load_dimension(dimension: str, **metadata) -> dict:
    """``custom_dataset`` hook: the dimension's records as ``{"test": Dataset}``."""
    records, source = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: read_dimension(folder, dimension),
        from_hub=lambda: _from_hub(dimension),
        hub_id=HUB_ID,
        label=f"teval/{dimension}",
    )
    if dimension in EMBEDDING_DIMENSIONS:
        from lm_eval_acbench.embeddings import check_available

        model = metadata.get("embedding_model")
        check_available(model if isinstance(model, str) else None)
    return data.as_split(records, provenance=source)


for _dimension in DIMENSIONS:
    globals()[f"load_{_dimension}"] = partial(load_dimension, _dimension)


# --- scoring --------------------------------------------------------------------------------


def _cosines(pairs: list[tuple[str, str]], embedding_model: str | None) -> list[float]:
    from lm_eval_acbench.embeddings import cosine_matrix, embed

    if not pairs:
        return []
    vectors = embed([t for pair in pairs for t in pair], model=embedding_model)
    return [
        float(cosine_matrix(vectors[2 * i : 2 * i + 1], vectors[2 * i + 1 : 2 * i + 2])[0, 0])
        for i in range(len(pairs))
    ]


def _plan_cosines(pred: list[dict], gold: list[dict], embedding_model: str | None):
    """(name cosines, args cosines), each (|pred|, |gold|), from one embedding call.

    The cosines are computed as the reference computes them (``util.cos_sim``), since its
    matching breaks ties between repeated actions by their last bits.
    """
    from lm_eval_acbench.embeddings import cosine_matrix, embed

    texts = (
        [a["name"] for a in pred]
        + [a["name"] for a in gold]
        + [a["args"] for a in pred]
        + [a["args"] for a in gold]
    )
    vectors = embed(texts, model=embedding_model)
    p, g = len(pred), len(gold)
    names = cosine_matrix(vectors[:p], vectors[p : p + g])
    args = cosine_matrix(vectors[p + g : 2 * p + g], vectors[2 * p + g :])
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
    """The item's reference ``score``, quirk-free ``score_fixed`` and ``score_lenient`` (the fixed
    rules, also reading a model's tool-call formats) in [0, 1], whether the response parsed, and
    details for the log. Where no tool call is asked for (reason, review, the string items of
    retrieve and understand) ``score_lenient`` is ``score_fixed``."""
    dimension, fmt = doc["dimension"], doc["response_format"]
    gold = _gold(doc)
    gold_dict = gold if isinstance(gold, dict) else {}
    if dimension == "instruct":
        parts = ts.instruct_score(output, gold_dict, _field(doc, "template", {}), fmt)
        return {
            "score": parts["score"],
            "score_fixed": parts["score_fixed"],
            "score_lenient": parts["score_lenient"],
            "parsed": parts["parsed"],
            "detail": parts,
        }
    if dimension == "review":
        letter = ts.review_letter(output)
        gold_letter = gold_dict.get("answer") if gold_dict else ts.as_text(gold or "").strip()[:1]
        value = ts.review_score(output, gold_letter)
        return {
            "score": value,
            "score_fixed": value,
            "parsed": letter is not None,
            "detail": {"letter": letter, "gold": gold_letter},
        }
    if dimension == "plan":
        return _score_plan(doc, output, gold, fmt, embedding_model)
    # reason / retrieve / understand
    if fmt == "json":
        pred = ts.parse_rru_json(output)
        pred_fixed = ts.parse_rru_json(output, lenient=True)
        pred_lenient, how = ts.parse_rru_lenient(output) if dimension != "reason" else (pred_fixed, "teval")
        gold_rru = gold_dict or (ts.parse_rru_json(gold) if isinstance(gold, str) else None) or {}
        lenient_detail = {"format_lenient": how if pred_lenient is not None else "none",
                          "reason_lenient": "" if pred_lenient is not None else how}
        if pred is None and pred_lenient is None:
            return {
                "score": 0.0,
                "score_fixed": 0.0,
                "score_lenient": 0.0,
                "parsed": False,
                "detail": {"reason": "response is not a JSON object", **lenient_detail},
            }
        value = fixed = lenient = 0.0
        if dimension == "reason":
            value = ts.thought_score(
                _cosines([(pred["thought"], ts.as_text(gold_rru.get("thought", "")))], embedding_model)[0]
            )
            fixed = lenient = value
        elif dimension == "retrieve":
            gold_name = ts.as_text(gold_rru.get("name", ""))
            if pred is not None:
                value = fixed = ts.retrieve_json(pred["name"], gold_name)
            lenient = ts.retrieve_json(pred_lenient["name"], gold_name) if pred_lenient else 0.0
        else:
            gold_args = gold_rru.get("args", {})
            if isinstance(gold_args, str):
                gold_args = ts.load_structured(gold_args) or {}
            if pred is not None:
                value = ts.understand_json(pred["args"], gold_args)
                fixed = ts.understand_json(pred_fixed["args"], gold_args, fixed=True)
            lenient = ts.understand_json(pred_lenient["args"], gold_args, fixed=True) if pred_lenient else 0.0
        return {"score": value, "score_fixed": fixed, "score_lenient": lenient, "parsed": pred is not None,
                "detail": {"pred": pred, "pred_lenient": pred_lenient, **lenient_detail}}
    text = ts.clean_response(output)
    if dimension == "reason":
        value = fixed = ts.thought_score(
            _cosines([(text, ts.as_text(gold_dict.get("thought", gold or "")))], embedding_model)[0]
        )
    elif dimension == "retrieve":
        value = fixed = ts.retrieve_str(text, ts.as_text(gold_dict.get("name", gold or "")))
    else:
        gold_args = gold_dict.get("args", gold) if gold_dict else gold
        value = ts.understand_str(text, gold_args)
        fixed = ts.understand_str_fixed(text, gold_args)
    return {"score": value, "score_fixed": fixed, "score_lenient": fixed, "parsed": bool(text), "detail": {}}


def _score_plan(doc: dict, output: str, gold: Any, fmt: str, embedding_model: str | None) -> dict:
    """Reference plan F1 (ids required, LIS from 1), the quirk-free one (``score_fixed``) and
    ``score_lenient`` (quirk-free, a JSON plan or else the calls of a tool-call format)."""
    meta = _field(doc, "meta_data", {})
    meta = meta if isinstance(meta, dict) else {}
    scored: dict[str, Any] = {"detail": {}}
    fixed_inputs: tuple | None = None  # (plan, gold plan) score_fixed was computed on
    for key, reference in (("score", True), ("score_fixed", False), ("score_lenient", False)):
        if fmt == "json" and key == "score_lenient":
            pred, how = ts.parse_plan_lenient(output)
            scored["detail"]["format_lenient"] = how if pred else "none"
            scored["detail"]["reason_lenient"] = "" if pred else how
        elif fmt == "json":
            pred = ts.parse_plan_json(output, reference=reference)
        else:
            pred = ts.parse_plan_str(output, meta.get("API_list") or [])
        gold_plan = ts.drop_finish(ts.normalise_plan(gold, reference=reference) or [])
        pred = ts.drop_finish(pred)
        if key == "score":
            scored["parsed"] = bool(pred)
        if not pred or not gold_plan:
            scored[key] = 0.0
            scored["detail"][key] = {"pred_actions": len(pred)}
            continue
        if key == "score_lenient" and (pred, gold_plan) == fixed_inputs:
            # the usual case (T-Eval's own parse read the plan): same rules, same plan, so the
            # same result, without embedding the plan's texts a second time
            scored[key], scored["detail"][key] = scored["score_fixed"], scored["detail"]["score_fixed"]
            continue
        if key == "score_fixed":
            fixed_inputs = (pred, gold_plan)
        names, args = _plan_cosines(pred, gold_plan, embedding_model)
        scores = (ts.plan_scores if reference else ts.plan_scores_fixed)(names, args)
        scored[key] = scores["f1"]
        scored["detail"][key] = dict(scores, pred_actions=len(pred))
    return scored


class ScorerError(UserError):
    """A T-Eval scorer failed on an item and no stand-in score is allowed."""


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
            failed = False
        except Exception as exc:  # a scorer failure changes the score: opt-in stand-in only
            if not data.fallback_allowed(metadata):
                if isinstance(exc, UserError):
                    raise
                raise ScorerError(
                    f"teval {doc.get('id')}: scoring failed ({type(exc).__name__}: {exc}); allow a "
                    "counted zero with --metadata '{\"allow_fallback\": true}' or ACBENCH_ALLOW_FALLBACK=1"
                ) from exc
            log.warning("teval %s: scoring failed (%s: %s); scored 0 (allow_fallback), counted in "
                        "scorer_error_rate", doc.get("id"), type(exc).__name__, exc)
            scored = {"score": 0.0, "parsed": False, "detail": {"error": f"{type(exc).__name__}: {exc}"}}
            failed = True
        doc["acbench_verdict"] = _jsonable(
            dict(
                scored["detail"],
                score=scored["score"],
                score_fixed=scored.get("score_fixed", scored["score"]),
                score_lenient=scored.get("score_lenient", scored["score"]),
                parsed=scored["parsed"],
            )
        )
        doc["acbench_render"] = {"mode": rendered.mode, "roles": rendered.roles, "note": rendered.note}
        if needs_embeddings:
            doc["acbench_embedding_model"] = resolve_embedding_model(model)
        fmt = doc["response_format"]
        return {
            "score": {"format": fmt, "value": float(scored["score"])},
            "score_fixed": {"format": fmt, "value": float(scored.get("score_fixed", scored["score"]))},
            "score_lenient": {"format": fmt, "value": float(scored.get("score_lenient", scored["score"]))},
            "parse_rate": {"format": fmt, "value": float(scored["parsed"])},
            "scorer_error_rate": float(failed),
        }


def _jsonable(value: Any) -> Any:
    """The value as the samples log can hold it (see :mod:`lm_eval_acbench.logsafe`)."""
    return log_safe(value)
