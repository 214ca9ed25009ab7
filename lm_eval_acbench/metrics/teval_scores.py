"""T-Eval's six dimension scores as pure functions over strings, dicts and similarity matrices.

Every score is in [0, 1]. Embedding similarities are computed by the caller (the task module)
and passed in as cosine matrices, so nothing here loads a model.

* instruct: ``format`` = 1 when the response parses (JSON object with the template's keys, or the
  string template ``<thought_start>..<action_start>..<args_start>..``);
  ``args_em = (1[action == gold action] + sum_k 1[pred_args[k] == gold_args[k]]) / (|gold_args| + 1)``;
  item score ``(format + args_em) / 2``.
* plan: actions ``{name, args}``, trailing ``FinishAction`` dropped;
  ``sim = 0.75 * max(0, cos(name)) + 0.25 * max(0, cos(args))``; pairs with ``sim > 0.8`` form a
  maximum-weight matching; ``correct`` = length of the longest increasing run of matched gold
  indices taken in prediction order; ``P = correct/|pred|``, ``R = correct/|gold|``,
  ``F1 = 2PR/(P+R)`` (0 when either plan is empty).
* reason: ``max(0, cos(pred thought, gold thought))``.
* retrieve: JSON -- ``1[name == gold]``; string -- the gold name is a substring and every
  ``\\w+\\.\\w+`` name or ``FinishAction`` in the response equals the gold name.
* understand: JSON -- fraction of gold argument keys whose values are string-equal (both empty:
  1; gold empty, prediction not: 0); string -- equality after stripping whitespace and quotes
  (a gold object is compared with the response parsed as an object).
* review: the first non-space character after the first ``:`` is one of A-E and equals the gold
  letter.

:func:`format_balanced_mean` is the aggregation of a dimension fed by a JSON and a string file:
the mean of the per-format means (T-Eval's ``mean(json score, str score)``).
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

MAX_CHARS = 100_000
STR_TEMPLATE_CHARS = 20_000
FINISH = "FinishAction"
NAME_WEIGHT = 0.75
ARGS_WEIGHT = 0.25
MATCH_THRESHOLD = 0.8
_DOTTED = re.compile(r"\w+\.\w+")
_STOPS = ("<|im_end|>", "<eoa>", "<TOKENS_UNUSED_1>", "<|eot_id|>", "<|endoftext|>")


# --- response clean-up and structured loading -----------------------------------------------


def as_text(value: Any) -> str:
    """``str(value)`` for a parsed value; "" when it has none (an int over Python's 4,300-digit
    limit, a structure too deep to print)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except (ValueError, RecursionError):
        return ""


def clean_response(text: Any) -> str:
    """Cut at chat stop markers, drop a leading ```json fence and stray back-ticks, unwrap ``{{..}}``."""
    if not isinstance(text, str):
        return ""
    for stop in _STOPS:
        text = text.split(stop)[0]
    text = text.strip()
    if text.startswith("```json"):
        text = text[len("```json") :]
    text = text.strip("`").strip()
    if text[:2] == "{{" and text[-2:] == "}}":
        text = text[1:-1]
    return text


def load_structured(text: Any, start: str = "", end: str = "") -> Any:
    """JSON or a Python literal from ``text`` (None when neither parses).

    A ```json fence is dropped; with ``start``/``end`` the text is cut from the first ``start`` to
    the last ``end``. Tried in order: JSON, :func:`ast.literal_eval` (literals only, never code),
    JSON with single quotes turned into double quotes.
    """
    if not isinstance(text, str):
        return text
    if len(text) > MAX_CHARS:
        return None
    if "```json" in text:
        text = text[text.find("```json") + len("```json") :].strip("`")
    if start:
        position = text.find(start)
        if position < 0:
            return None
        text = text[position:]
    if end:
        position = text.rfind(end)
        if position < 0:
            return None
        text = text[: position + len(end)]
    text = text.strip()
    for attempt in (json.loads, ast.literal_eval, lambda t: json.loads(t.replace("'", '"'))):
        try:
            return attempt(text)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            continue
    return None


# --- instruct -------------------------------------------------------------------------------


def args_em(gold_action: str, pred_action: Any, gold_args: dict, pred_args: dict) -> float:
    """``(1[action equal] + #gold keys with equal values) / (|gold args| + 1)``."""
    gold_args = gold_args if isinstance(gold_args, dict) else {}
    pred_args = pred_args if isinstance(pred_args, dict) else {}
    hits = float(gold_action == pred_action)
    hits += sum(1.0 for key, value in gold_args.items() if pred_args.get(key, "") == value)
    return hits / (len(gold_args) + 1)


def parse_instruct_json(text: str, template: dict) -> dict | None:
    """{thought, action, args} from a JSON response using the template's key names; None if not."""
    data = load_structured(clean_response(text))
    if not isinstance(data, dict):
        return None
    keys = {"thought": "thought", "action": "name", "args": "args"}
    if isinstance(template, dict):
        keys.update({k: v for k, v in template.items() if k in keys and isinstance(v, str)})
    try:
        args = data[keys["args"]]
        return {
            "thought": data[keys["thought"]],
            "action": data[keys["action"]],
            "args": args if isinstance(args, dict) else {},
        }
    except (KeyError, TypeError):
        return None


def parse_instruct_str(text: str, template: dict) -> dict | None:
    """{thought, action, args} from the string template (``thought_start`` ... ``args_end``)."""
    if not isinstance(text, str) or not isinstance(template, dict):
        return None
    parts = ["thought_start", "thought_end", "action_start", "action_end", "args_start", "args_end"]
    if not all(isinstance(template.get(p), str) for p in parts):
        return None
    text = text[:STR_TEMPLATE_CHARS]
    found = _template_groups(text, template) or _template_groups(text + template["args_end"], template)
    if not found:
        return None
    thought, action, raw_args = found
    args = load_structured(raw_args.strip())
    return {"thought": thought, "action": action.strip(), "args": args if isinstance(args, dict) else {}}


def template_pattern(template: dict) -> str:
    """T-Eval's regex for the string template: ``TS(.*)TE AS(.*)AE GS(.*)GE`` (escaped, re.S)."""
    t = {p: re.escape(template[p]) for p in
         ("thought_start", "thought_end", "action_start", "action_end", "args_start", "args_end")}
    return (f"{t['thought_start']}(.*){t['thought_end']}{t['action_start']}(.*){t['action_end']}"
            f"{t['args_start']}(.*){t['args_end']}")


def _template_groups(text: str, template: dict) -> tuple[str, str, str] | None:
    """The groups of the first ``re.findall(template_pattern(template), text, re.S)`` match, found
    with string searches in linear time (the regex's three greedy groups backtrack cubically).

    The first match starts at the first thought-start marker; greedy groups take the last
    possible split points, so the args end at the last args-end marker, the action at the last
    action-end+args-start before it, and the thought at the last thought-end+action-start
    before that.
    """
    opening, closing = template["thought_start"], template["args_end"]
    middle_one = template["thought_end"] + template["action_start"]
    middle_two = template["action_end"] + template["args_start"]
    start = text.find(opening)
    if start < 0:
        return None
    thought_from = start + len(opening)
    end = text.rfind(closing, thought_from)
    if end < 0:
        return None
    two = text.rfind(middle_two, thought_from, end)
    if two < 0:
        return None
    one = text.rfind(middle_one, thought_from, two)
    if one < 0:
        return None
    return text[thought_from:one], text[one + len(middle_one):two], text[two + len(middle_two):end]


def instruct_score(text: str, ground_truth: dict, template: dict, response_format: str) -> dict:
    """Item score ``(format + args_em) / 2`` with its parts."""
    parser = parse_instruct_json if response_format == "json" else parse_instruct_str
    pred = parser(text, template)
    if pred is None:
        return {"score": 0.0, "format": 0.0, "args_em": 0.0, "parsed": False}
    gold = ground_truth if isinstance(ground_truth, dict) else {}
    em = args_em(gold.get("action"), pred["action"], gold.get("args") or {}, pred["args"])
    return {"score": (1.0 + em) / 2, "format": 1.0, "args_em": em, "parsed": True}


# --- plan -----------------------------------------------------------------------------------


def _as_action(item: Any) -> dict | None:
    if not isinstance(item, dict) or "name" not in item:
        return None
    args = item.get("args", {})
    return {
        "id": item.get("id"),
        "name": as_text(item["name"]),
        "args": args if isinstance(args, str) else as_text(args),
    }


def normalise_plan(items: Any) -> list[dict] | None:
    """A list of ``{name, args(str)}`` sorted by ``id`` when every item has one; None if not a plan."""
    if not isinstance(items, list):
        return None
    actions = [_as_action(item) for item in items]
    if any(a is None for a in actions):
        return None
    if actions and all(isinstance(a["id"], int) and not isinstance(a["id"], bool) for a in actions):
        actions = sorted(actions, key=lambda a: a["id"])
    return [{"name": a["name"], "args": a["args"]} for a in actions]


def parse_plan_json(text: str) -> list[dict]:
    """The JSON plan in a response (``[`` ... ``]``); [] when it does not parse as a plan."""
    return normalise_plan(load_structured(clean_response(text), "[", "]")) or []


def parse_plan_str(text: str, api_list: Iterable[str]) -> list[dict]:
    """One action per line (lines split on ``". "`` and new lines) that names an API from the
    list; the action is the API found earliest in the line, its args the whole line."""
    apis = [a for a in api_list if isinstance(a, str) and a]
    actions = []
    for line in clean_response(text).replace(". ", "\n").split("\n"):
        best, best_at = "", None
        for api in apis:
            at = line.find(api)
            if at >= 0 and (best_at is None or at < best_at):
                best, best_at = api, at
        if best:
            actions.append({"name": best, "args": line})
    return actions


def drop_finish(plan: list[dict]) -> list[dict]:
    return plan[:-1] if plan and plan[-1].get("name") == FINISH else plan


def lis_length(sequence: list[int]) -> int:
    """Length of the longest strictly increasing subsequence (O(n log n))."""
    import bisect

    tails: list[int] = []
    for value in sequence:
        at = bisect.bisect_left(tails, value)
        if at == len(tails):
            tails.append(value)
        else:
            tails[at] = value
    return len(tails)


def plan_scores(
    name_cos: np.ndarray,
    args_cos: np.ndarray,
    threshold: float = MATCH_THRESHOLD,
    name_weight: float = NAME_WEIGHT,
    args_weight: float = ARGS_WEIGHT,
) -> dict:
    """Precision, recall and F1 of a predicted plan (rows) against the gold plan (columns).

    ``name_cos``/``args_cos`` are (|pred|, |gold|) cosine matrices of action names and of args.
    """
    name_cos = np.asarray(name_cos, dtype=float)
    args_cos = np.asarray(args_cos, dtype=float)
    if name_cos.ndim != 2 or 0 in name_cos.shape:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    from scipy.optimize import linear_sum_assignment

    sim = name_weight * np.maximum(name_cos, 0) + args_weight * np.maximum(args_cos, 0)
    weights = np.where(sim > threshold, sim, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    mapping = {int(r): int(c) for r, c in zip(rows, cols) if weights[r, c] > 0}
    correct = lis_length([mapping[i] for i in range(sim.shape[0]) if i in mapping])
    n_pred, n_gold = sim.shape
    precision, recall = correct / n_pred, correct / n_gold
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# --- reason / retrieve / understand ---------------------------------------------------------


def parse_rru_json(text: str) -> dict | None:
    """{thought, name, args} from a JSON response (``{`` ... ``}``); None when it does not parse."""
    data = load_structured(clean_response(text), "{", "}")
    if not isinstance(data, dict):
        return None
    args = data.get("args", {})
    if isinstance(args, str):
        parsed = load_structured(args)
        args = parsed if isinstance(parsed, dict) else {}
    return {
        "thought": as_text(data.get("thought", "")),
        "name": as_text(data.get("name", "")),
        "args": args if isinstance(args, dict) else {},
    }


def thought_score(cosine: float) -> float:
    """``max(0, cos)``."""
    return max(0.0, float(cosine))


def retrieve_json(pred_name: str, gold_name: str) -> float:
    return float(pred_name == gold_name)


def retrieve_str(text: str, gold_name: str) -> float:
    """The gold name occurs, and no other ``a.b`` name or ``FinishAction`` does."""
    text = clean_response(text)
    if not gold_name or gold_name not in text:
        return 0.0
    others = _DOTTED.findall(text) + re.findall(FINISH, text)
    return float(all(name == gold_name for name in others))


def understand_json(pred_args: dict, gold_args: dict) -> float:
    """Fraction of gold keys with string-equal values; both empty -> 1; gold empty only -> 0."""
    pred_args = pred_args if isinstance(pred_args, dict) else {}
    gold_args = gold_args if isinstance(gold_args, dict) else {}
    if not gold_args:
        return float(not pred_args)
    hits = sum(
        1 for key, value in gold_args.items() if key in pred_args and as_text(pred_args[key]) == as_text(value)
    )
    return hits / len(gold_args)


def _strip_quotes(text: str) -> str:
    return text.strip().strip("'\"").strip()


def understand_str(text: str, gold_args: Any) -> float:
    """Equality after stripping whitespace and quotes; a gold object needs an equal object."""
    text = clean_response(text)
    if isinstance(gold_args, dict):
        parsed = load_structured(text, "{", "}")
        if isinstance(parsed, dict):
            return float({k: as_text(v) for k, v in parsed.items()} == {k: as_text(v) for k, v in gold_args.items()})
        return 0.0
    return float(_strip_quotes(text) == _strip_quotes(as_text(gold_args)))


# --- review ---------------------------------------------------------------------------------


def review_letter(text: str) -> str | None:
    """The first non-space character after the first ``:`` when it is one of A-E."""
    if not isinstance(text, str):
        return None
    rest = text[text.find(":") + 1 :].strip()
    return rest[0] if rest and rest[0] in "ABCDE" else None


def review_score(text: str, gold_letter: str) -> float:
    letter = review_letter(text)
    return float(letter is not None and letter == gold_letter)


# --- aggregation ----------------------------------------------------------------------------


def format_balanced_mean(items: list) -> float:
    """Mean over response formats of the mean item score in each format.

    Items are ``{"format": "json"|"str", "value": float}``; plain numbers count as one format.
    """
    by_format: dict[str, list[float]] = defaultdict(list)
    for item in items:
        if isinstance(item, dict):
            by_format[str(item.get("format"))].append(float(item.get("value", 0.0)))
        else:
            by_format["-"].append(float(item))
    if not by_format:
        return 0.0
    return float(np.mean([np.mean(values) for values in by_format.values()]))
