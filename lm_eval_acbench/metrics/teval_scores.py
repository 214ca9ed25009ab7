"""T-Eval's six dimension scores as pure functions over strings, dicts and similarity matrices.

Every score is in [0, 1]. Embedding similarities are computed by the caller (the task module)
and passed in as cosine matrices, so nothing here loads a model. Where T-Eval's evaluator
(open-compass/T-Eval, ``teval/evaluators``) has a quirk, the plain function reproduces it and a
``*_fixed`` function (or ``lenient=True``) gives the quirk-free rule beside it.

* instruct: ``format`` = 1 when the response parses (JSON object with the template's keys, or the
  string template ``<thought_start>(.*)<thought_end><action_start>(.*)...<args_end>``);
  ``args_em = (1[action == gold action] + sum_k 1[pred_args[k] == gold_args[k]]) / (|gold_args| + 1)``;
  item score ``(format + args_em) / 2``. Reference string parsing: the template pieces are used
  as a regular expression *unescaped*, the final ``args_end`` must be present, and the args are
  read with ``ast.literal_eval`` only (a JSON ``true`` gives no args). Lenient: pieces escaped, a
  missing final ``args_end`` tolerated, args read as JSON or a Python literal.
* plan: actions ``{name, args}``, trailing ``FinishAction`` dropped;
  ``sim = 0.75 * max(0, cos(name)) + 0.25 * max(0, cos(args))``; pairs with ``sim > 0.8`` form a
  maximum-weight matching (the reference's networkx matching,
  :func:`lm_eval_acbench.metrics.matching.reference_matching`); ``correct`` = the reference's
  LIS over matched gold indices in prediction order, whose dynamic programme starts every entry
  at 1, so ``correct >= 1`` even when nothing matched; ``P = correct/|pred|``,
  ``R = correct/|gold|``, ``F1 = 2PR/(P+R)`` (0 when either plan is empty). Reference JSON plans
  need an integer-convertible ``id`` on every action (else no plan). :func:`plan_scores_fixed`:
  ``correct`` = LIS of the matched indices only (0 when nothing matched), ids optional.
* reason: ``max(0, cos(pred thought, gold thought))``.
* retrieve: JSON -- ``1[name == gold]``; string -- the gold name is a substring and every
  ``\\w+\\.\\w+`` name or ``FinishAction`` in the response equals the gold name.
* understand: JSON -- ``sum_k 1[str(pred[k]) == str(gold[k])] / (|gold args| + 1e-5)`` (the
  reference's denominator, so a perfect answer scores 0.99999..; both empty: 1; gold empty,
  prediction not: 0); args given as a JSON *string* count as no args. Fixed: divided by
  ``|gold args|``, string args parsed. String -- the reference: the response with ``'`` and then
  ``"`` stripped from its ends equals ``str(gold args)`` (a gold object is compared as its Python
  ``str``); fixed: equality after stripping whitespace and quotes, a gold object compared with the
  response parsed as an object.
* review: the first non-space character after the first ``:`` is one of A-E and equals the gold
  letter.

Lenient tool-call reading (``score_lenient``): the ``score_fixed`` rules, and where T-Eval's own
lenient parse finds no call, the model's tool-call formats read by
:func:`lm_eval_acbench.metrics.tool_calls.parse_tool_calls` (Mistral ``[TOOL_CALLS]``, Llama 3
``<|python_tag|>``, ``<tool_call>`` tags, DeepSeek's tool-call tokens, OpenAI / ``name`` +
``arguments`` JSON, Python calls, a call list after prose): for instruct (the first call is the
action), for the JSON items of retrieve and understand (its name, its args) and for JSON plans
(the calls in order are the plan). A Python call with a positional argument is no call, with
the decoder's reason, never a call with that argument dropped.

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

from lm_eval_acbench.metrics.matching import lis_from_one, reference_matching

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


def _literal_dict(text: str) -> dict:
    """``ast.literal_eval(text.strip())`` when it gives a dict, else {} (the reference's args)."""
    if len(text) > MAX_CHARS:
        return {}
    try:
        value = ast.literal_eval(text.strip())
    except Exception:  # literal_eval raises many types (ValueError, SyntaxError, MemoryError, ...)
        return {}
    return value if isinstance(value, dict) else {}


def parse_instruct_str(text: str, template: dict, lenient: bool = False) -> dict | None:
    """{thought, action, args} from the string template (``thought_start`` ... ``args_end``).

    Reference (T-Eval's ``parse_string``): the six template pieces joined with ``(.*)`` between
    them, *unescaped* (a template that is not a valid expression parses nothing), matched with
    ``re.S``; args by ``ast.literal_eval``. ``lenient``: pieces escaped, the response may lack
    the final ``args_end``, args read as JSON or a Python literal.
    """
    if not isinstance(text, str) or not isinstance(template, dict):
        return None
    parts = ["thought_start", "thought_end", "action_start", "action_end", "args_start", "args_end"]
    if not all(isinstance(template.get(p), str) for p in parts):
        return None
    text = text[:STR_TEMPLATE_CHARS]
    if lenient or not any(char in _REGEX_SPECIAL for p in parts for char in template[p]):
        # The pattern is the pieces as literals: matched in linear time by _template_groups
        # (the regex's three greedy groups backtrack cubically on repeated markers).
        groups = _template_groups(text, template)
        if groups is None and lenient:
            groups = _template_groups(text + template["args_end"], template)
        found = [groups] if groups else []
    else:
        t = template  # T-Eval's pieces are regular expressions here, used as they are
        pattern = (f"{t['thought_start']}(.*){t['thought_end']}{t['action_start']}(.*){t['action_end']}"
                   f"{t['args_start']}(.*){t['args_end']}")
        try:
            found = re.findall(pattern, text, re.S)
        except re.error:
            return None
    if not found or not isinstance(found[0], tuple) or len(found[0]) < 3:
        return None
    thought, action, raw_args = found[0][:3]
    if lenient:
        args = load_structured(raw_args.strip())
        args = args if isinstance(args, dict) else {}
    else:
        args = _literal_dict(raw_args)
    return {"thought": thought, "action": action.strip(), "args": args}


_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")  # outside these, a template piece is a literal


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


def tool_calls_reading(text: Any) -> tuple[list[dict], str]:
    """The calls of a completion in a model's tool-call format, as ``[{"name", "args"}]``, and the
    format they came in (or, with no calls, the decoder's reason)."""
    from lm_eval_acbench.metrics.tool_calls import parse_tool_calls

    parsed = parse_tool_calls(text if isinstance(text, str) else "")
    if not parsed.calls:
        return [], parsed.error or "no tool call in a known format"
    calls = []
    for call in parsed.calls:
        for name, args in call.items():
            calls.append({"name": as_text(name), "args": args if isinstance(args, dict) else {}})
    return calls, parsed.format


def instruct_score(text: str, ground_truth: dict, template: dict, response_format: str) -> dict:
    """Item score ``(format + args_em) / 2`` with its parts; ``score_fixed`` with lenient parsing;
    ``score_lenient`` also reads a model's tool-call formats (the first call is the action).

    ``score`` and ``score_fixed`` differ only for the string format (:func:`parse_instruct_str`).
    ``format_lenient`` says which reading ``score_lenient`` used (``teval``, a tool-call format,
    or ``none``), ``reason_lenient`` why nothing was read.
    """
    gold = ground_truth if isinstance(ground_truth, dict) else {}
    out: dict = {}
    for key, lenient in (("score", False), ("score_fixed", True), ("score_lenient", True)):
        if response_format == "json":
            pred = parse_instruct_json(text, template)
        else:
            pred = parse_instruct_str(text, template, lenient=lenient)
        if key == "score_lenient":
            out["format_lenient"], out["reason_lenient"] = "teval", ""
            if pred is None:
                calls, how = tool_calls_reading(text)
                if calls:
                    pred = {"thought": "", "action": calls[0]["name"], "args": calls[0]["args"]}
                    out["format_lenient"] = how
                else:
                    out["format_lenient"], out["reason_lenient"] = "none", how
        if pred is None:
            parts = {"score": 0.0, "format": 0.0, "args_em": 0.0, "parsed": False}
        else:
            em = args_em(gold.get("action"), pred["action"], gold.get("args") or {}, pred["args"])
            parts = {"score": (1.0 + em) / 2, "format": 1.0, "args_em": em, "parsed": True}
        if key == "score":
            out.update(parts)
        else:
            out[key] = parts["score"]
            out["parsed_" + key.split("_")[1]] = parts["parsed"]
    return out


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


def _reference_action(item: Any) -> dict | None:
    """T-Eval's plan item: ``{name: str(name), id: int(id), args: str(args)}``; None if that fails."""
    try:
        return {"name": str(item["name"]), "id": int(item["id"]), "args": str(item["args"])}
    except Exception:  # a missing key, a non-number id, a non-dict item: the reference drops the plan
        return None


def normalise_plan(items: Any, reference: bool = False) -> list[dict] | None:
    """A list of ``{name, args(str)}`` sorted by ``id``; None if not a plan.

    ``reference``: every item needs ``name``, ``args`` and an ``int()``-convertible ``id`` (else
    None), as in T-Eval's ``PlanningEvaluator.format_load``; otherwise ``args`` defaults to ``{}``
    and the items are sorted by ``id`` only when every item has an integer one.
    """
    if not isinstance(items, list):
        return None
    if reference:
        checked = [_reference_action(item) for item in items]
        if any(a is None for a in checked):
            return None
        return [{"name": a["name"], "args": a["args"]} for a in sorted(checked, key=lambda a: a["id"])]
    actions = [_as_action(item) for item in items]
    if any(a is None for a in actions):
        return None
    if actions and all(isinstance(a["id"], int) and not isinstance(a["id"], bool) for a in actions):
        actions = sorted(actions, key=lambda a: a["id"])
    return [{"name": a["name"], "args": a["args"]} for a in actions]


def parse_plan_json(text: str, reference: bool = False) -> list[dict]:
    """The JSON plan in a response (``[`` ... ``]``); [] when it does not parse as a plan."""
    return normalise_plan(load_structured(clean_response(text), "[", "]"), reference=reference) or []


def parse_plan_lenient(text: str) -> tuple[list[dict], str]:
    """The JSON plan as :func:`parse_plan_json` (ids optional) reads it, else the calls of a
    model's tool-call format in order (args as their ``str``, as plan args are compared); with
    the reading used (``teval`` or the tool-call format) or why nothing was read."""
    plan = parse_plan_json(text)
    if plan:
        return plan, "teval"
    calls, how = tool_calls_reading(text)
    return [{"name": c["name"], "args": as_text(c["args"])} for c in calls], how


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


def _plan_similarity(name_cos, args_cos, name_weight: float, args_weight: float) -> np.ndarray | None:
    name_cos = np.asarray(name_cos, dtype=np.float64)
    args_cos = np.asarray(args_cos, dtype=np.float64)
    if name_cos.ndim != 2 or 0 in name_cos.shape or args_cos.shape != name_cos.shape:
        return None
    return np.maximum(name_cos, 0) * name_weight + np.maximum(args_cos, 0) * args_weight


def _plan_prf(correct: int, n_pred: int, n_gold: int) -> dict:
    precision, recall = correct / n_pred, correct / n_gold
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def plan_scores(
    name_cos: np.ndarray,
    args_cos: np.ndarray,
    threshold: float = MATCH_THRESHOLD,
    name_weight: float = NAME_WEIGHT,
    args_weight: float = ARGS_WEIGHT,
    fixed: bool = False,
) -> dict:
    """The reference's precision, recall and F1 of a predicted plan (rows) against the gold (columns).

    ``name_cos``/``args_cos`` are (|pred|, |gold|) cosine matrices of action names and of args.
    ``sim = max(0, name_cos) * 0.75 + max(0, args_cos) * 0.25`` in float64; the reference's
    networkx matching over pairs with ``sim > threshold``; ``correct`` = :func:`lis_from_one`
    (>= 1 for any non-empty plan, matched or not). 0 when either plan is empty.

    ``fixed`` (:func:`plan_scores_fixed`): ``correct`` = LIS of the matched gold indices only, so a
    plan with no matched action scores 0; matching by ``scipy.optimize.linear_sum_assignment`` over
    above-threshold pairs (the same maximum total weight; ties may pair differently).
    """
    sim = _plan_similarity(name_cos, args_cos, name_weight, args_weight)
    if sim is None:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    if not fixed:
        return _plan_prf(lis_from_one(reference_matching(sim, threshold)), *sim.shape)
    from scipy.optimize import linear_sum_assignment

    weights = np.where(sim > threshold, sim, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    mapping = {int(r): int(c) for r, c in zip(rows, cols) if weights[r, c] > 0}
    correct = lis_length([mapping[i] for i in range(sim.shape[0]) if i in mapping])
    return _plan_prf(correct, *sim.shape)


def plan_scores_fixed(name_cos: np.ndarray, args_cos: np.ndarray, **settings) -> dict:
    """:func:`plan_scores` without the LIS quirk (``fixed=True``)."""
    return plan_scores(name_cos, args_cos, fixed=True, **settings)


# --- reason / retrieve / understand ---------------------------------------------------------


def parse_rru_json(text: str, lenient: bool = False) -> dict | None:
    """{thought, name, args} from a JSON response (``{`` ... ``}``); None when it does not parse.

    Args that are not an object count as none (the reference); ``lenient`` also reads args given
    as a JSON string holding an object.
    """
    data = load_structured(clean_response(text), "{", "}")
    if not isinstance(data, dict):
        return None
    args = data.get("args", {})
    if isinstance(args, str) and lenient:
        parsed = load_structured(args)
        args = parsed if isinstance(parsed, dict) else {}
    return {
        "thought": as_text(data.get("thought", "")),
        "name": as_text(data.get("name", "")),
        "args": args if isinstance(args, dict) else {},
    }


def parse_rru_lenient(text: str) -> tuple[dict | None, str]:
    """{thought, name, args} as :func:`parse_rru_json` (``lenient``) reads a JSON object with
    T-Eval's ``args`` key; otherwise the first call of a model's tool-call format (the thought
    from the JSON object, when there is one), else T-Eval's reading. With the reading used
    (``teval`` or the tool-call format) or why nothing was read."""
    pred = parse_rru_json(text, lenient=True)
    data = load_structured(clean_response(text), "{", "}")
    if pred is not None and isinstance(data, dict) and "args" in data:
        return pred, "teval"
    calls, how = tool_calls_reading(text)
    if calls:
        thought = pred["thought"] if pred is not None else ""
        return {"thought": thought, "name": calls[0]["name"], "args": calls[0]["args"]}, how
    return pred, "teval" if pred is not None else how


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


UNDERSTAND_EPSILON = 1e-5  # the reference divides by |gold args| + 1e-5


def understand_json(pred_args: dict, gold_args: dict, fixed: bool = False) -> float:
    """Gold keys with string-equal values / (|gold| + 1e-5) (``fixed``: / |gold|).

    Both empty -> 1; gold empty, prediction not -> 0.
    """
    pred_args = pred_args if isinstance(pred_args, dict) else {}
    gold_args = gold_args if isinstance(gold_args, dict) else {}
    if not gold_args:
        return float(not pred_args)
    hits = sum(
        1 for key, value in gold_args.items() if key in pred_args and as_text(pred_args[key]) == as_text(value)
    )
    return hits / len(gold_args) if fixed else hits / (len(gold_args) + UNDERSTAND_EPSILON)


def _strip_quotes(text: str) -> str:
    return text.strip().strip("'\"").strip()


def understand_str(text: str, gold_args: Any) -> float:
    """The reference: ``text.strip("'").strip('"') == str(gold_args)`` (a gold object as its ``str``)."""
    if not isinstance(text, str):
        return 0.0
    return float(text.strip("'").strip('"') == as_text(gold_args))


def understand_str_fixed(text: str, gold_args: Any) -> float:
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
