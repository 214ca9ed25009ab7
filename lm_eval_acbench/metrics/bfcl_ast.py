"""BFCL's AST checker as rules over plain data: decoded calls against ``possible_answer``.

An item is ``functions`` (BFCL's JSON-schema docs), ``ground_truth`` (a list of
``{function_name: {param: [allowed values...]}}``; ``""`` among the allowed values means the
parameter may be omitted) and the model's decoded calls ``[{function_name: {param: value}}]``
(see :mod:`lm_eval_acbench.metrics.tool_calls`).

Verdict of one call against one gold call (:func:`check_call`), in this order, first failure wins:

1. the gold function name is among the model's call names (else ``wrong_func_name``);
2. every ``required`` parameter of the schema is present (``missing_required``);
3. every given parameter is in the schema and in the gold answer (``unexpected_param``);
4. type: ``type(value)`` must equal the schema type mapped to Python (string->str, integer->int,
   float->float, boolean->bool, array/tuple->list, dict->dict, any->str) -- ``bool`` is not an
   ``int``; an int given for a float parameter becomes a float; a value whose type equals the
   type of the gold values is taken as a "variable" and passes the type check; for arrays every
   element must have the item type for at least one gold list (``type_error``);
5. value: strings compare after removing spaces and ``,./-_*^``, lower-casing and turning ``'``
   into ``"``; lists compare element-wise with the same string rule; dicts compare key by key
   (no unknown key, every gold key not marked optional present, each value among the allowed);
   lists of dicts compare dict by dict in order; other values by ``in`` (so 1 == 1.0)
   (``value_error``);
6. every gold parameter not marked optional is present (``missing_optional``).

Item verdict (:func:`check_item`): the checker is chosen from the category name, "parallel"
before "multiple": *parallel* categories need as many calls as gold calls and match them
order-free; *multiple* and *simple* need exactly one call. For parallel matching the reference
walks the gold calls in order and gives each the first still-unmatched model call that passes,
never revisiting a choice (greedy); *irrelevance* categories pass when no call was decoded.

:data:`REFERENCE` reproduces the reference checker's verdicts, quirks included. :data:`FIXED`
changes three rules, reported as a second accuracy: parallel calls are matched by a maximum
bipartite matching (a valid reordering always passes), integers inside a float array are
accepted, and a function name whose dots the model wrote as underscores (as OpenAI-style tool
APIs force) is accepted when unambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TYPE_MAP = {
    "string": str,
    "integer": int,
    "float": float,
    "number": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
    "any": str,
}
NESTED_TYPES = ("array", "tuple")
_STRIP = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Rules:
    """Which behaviour the checker follows where the reference is arguably wrong."""

    name: str
    greedy_parallel: bool
    int_in_float_array: bool
    underscore_names: bool


REFERENCE = Rules("reference", greedy_parallel=True, int_in_float_array=False, underscore_names=False)
FIXED = Rules("fixed", greedy_parallel=False, int_in_float_array=True, underscore_names=True)


@dataclass(frozen=True)
class Verdict:
    valid: bool
    error_type: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return {"valid": self.valid, "error_type": self.error_type, "reason": self.reason}


OK = Verdict(True)


def standardize_string(text: str) -> str:
    """BFCL's string normal form: drop spaces and ``,./-_*^``, lower-case, ``'`` -> ``"``."""
    return _STRIP.sub("", text).lower().replace("'", '"')


def _answer_type(allowed: list) -> type | None:
    for answer in allowed:
        if answer != "":
            return type(answer)
    return None


def _type_check(
    param: str, value: Any, allowed: list, type_name: str, expected: type, nested: type | None, rules: Rules
) -> tuple[Verdict, bool]:
    """(verdict, is_variable) as BFCL's type checker decides it."""
    answer_type = _answer_type(allowed)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return OK, is_variable
        for allowed_item in allowed:
            if type(allowed_item) is not list:
                # BFCL: a non-list allowed value (the "" marker) counts as a match.
                return OK, is_variable
            if all(
                _type_check(param, item, allowed_item, nested.__name__, nested, None, rules)[0].valid
                or (rules.int_in_float_array and nested is float and type(item) is int)
                for item in value
            ):
                return OK, is_variable
        return (
            Verdict(
                False,
                "type_error:nested",
                f"{param!r}: items of {value!r} are not all of type {nested.__name__}",
            ),
            is_variable,
        )
    if answer_type is not None and type(value) is answer_type:
        return OK, True
    return (
        Verdict(
            False,
            "type_error:simple",
            f"{param!r}: expected type {type_name}, got {type(value).__name__} ({value!r})",
        ),
        False,
    )


def _string_check(param: str, value: str, allowed: list) -> Verdict:
    wanted = [standardize_string(a) for a in allowed if type(a) is str]
    if standardize_string(value) in wanted:
        return OK
    return Verdict(
        False, "value_error:string", f"{param!r}: {value!r} not among {allowed!r} (case-insensitive)"
    )


def _list_check(param: str, value: list, allowed: list) -> Verdict:
    mine = [standardize_string(v) if type(v) is str else v for v in value]
    options = []
    for answer in allowed:
        # The "" marker is iterated too: it becomes [], so an empty list matches an optional.
        options.append([standardize_string(v) if type(v) is str else v for v in answer])
    if mine in options:
        return OK
    return Verdict(False, "value_error:list", f"{param!r}: {value!r} not among {allowed!r}")


def _dict_check(param: str, value: dict, allowed: list) -> Verdict:
    last = Verdict(False, "value_error:dict", f"{param!r}: no allowed dict to compare with")
    for answer in allowed:
        if answer == "" or not isinstance(answer, dict):
            continue
        failed = None
        for key, item in value.items():
            if key not in answer:
                failed = Verdict(False, "value_error:dict_key", f"{param!r}: unexpected key {key!r}")
                break
            mine = standardize_string(item) if type(item) is str else item
            options = [standardize_string(a) if type(a) is str else a for a in answer[key]]
            if mine not in options:
                failed = Verdict(
                    False, "value_error:dict_value", f"{param!r}[{key!r}]: {item!r} not among {answer[key]!r}"
                )
                break
        if failed is None:
            for key, options in answer.items():
                if key not in value and "" not in options:
                    failed = Verdict(False, "value_error:dict_key", f"{param!r}: missing key {key!r}")
                    break
        if failed is None:
            return OK
        last = failed
    return last


def _list_dict_check(param: str, value: list, allowed: list) -> Verdict:
    last = Verdict(False, "value_error:list_dict", f"{param!r}: no allowed list to compare with")
    for answer in allowed:
        if len(value) != len(answer):
            last = Verdict(False, "value_error:list_dict_count", f"{param!r}: wrong number of dicts")
            continue
        failed = None
        for mine, gold in zip(value, answer):
            if not isinstance(mine, dict):
                failed = Verdict(False, "value_error:list_dict", f"{param!r}: {mine!r} is not a dict")
                break
            verdict = _dict_check(param, mine, [gold])
            if not verdict.valid:
                failed = verdict
                break
        if failed is None:
            return OK
        last = failed
    return last


def _resolve_name(expected: str, call: dict, rules: Rules) -> str | None:
    if expected in call:
        return expected
    if rules.underscore_names and "." in expected:
        alias = expected.replace(".", "_")
        if alias in call:
            return alias
    return None


def check_call(schema: dict | None, call: Any, gold: dict, rules: Rules = REFERENCE) -> Verdict:
    """One decoded call ``{name: {param: value}}`` against one gold call (module docstring)."""
    if not isinstance(gold, dict) or len(gold) != 1:
        return Verdict(False, "bad_ground_truth", "gold call is not a one-key object")
    ((gold_name, allowed_by_param),) = gold.items()
    if schema is None:
        return Verdict(False, "bad_ground_truth", f"no function schema named {gold_name!r}")
    if not isinstance(call, dict):
        return Verdict(False, "wrong_output_format", f"call is a {type(call).__name__}, not an object")
    name = _resolve_name(schema.get("name", gold_name), call, rules)
    if name is None:
        return Verdict(
            False, "wrong_func_name", f"function {schema.get('name')!r} not called (got {list(call)!r})"
        )
    params = call[name]
    if not isinstance(params, dict):
        return Verdict(False, "wrong_output_format", f"arguments of {name!r} are not an object")
    spec = schema.get("parameters") or {}
    properties = spec.get("properties") or {}
    for param in spec.get("required") or []:
        if param not in params:
            return Verdict(False, "missing_required", f"required parameter {param!r} missing")
    for param, value in params.items():
        if param not in properties or param not in allowed_by_param:
            return Verdict(False, "unexpected_param", f"unexpected parameter {param!r}")
        details = properties[param] if isinstance(properties[param], dict) else {}
        type_name = details.get("type")
        expected = TYPE_MAP.get(type_name) if isinstance(type_name, str) else None
        if expected is None:
            return Verdict(False, "bad_ground_truth", f"{param!r}: unknown schema type {type_name!r}")
        nested = None
        if type_name in NESTED_TYPES:
            item_type = (details.get("items") or {}).get("type")
            nested = TYPE_MAP.get(item_type) if isinstance(item_type, str) else None
            if nested is None:
                return Verdict(False, "bad_ground_truth", f"{param!r}: unknown item type {item_type!r}")
        allowed = allowed_by_param[param]
        if not isinstance(allowed, list):
            return Verdict(False, "bad_ground_truth", f"{param!r}: allowed values are not a list")
        if type_name == "tuple" and type(value) is tuple:
            value = list(value)
        if type_name == "float" and type(value) is int:
            value = float(value)
        verdict, is_variable = _type_check(param, value, allowed, type_name, expected, nested, rules)
        if not verdict.valid:
            return verdict
        if not is_variable:
            if expected is dict:
                verdict = _dict_check(param, value, allowed)
            elif expected is list and nested is dict:
                verdict = _list_dict_check(param, value, allowed)
            elif expected is str:
                verdict = _string_check(param, value, allowed)
            elif expected is list:
                verdict = _list_check(param, value, allowed)
            else:
                verdict = (
                    OK
                    if _contains(allowed, value)
                    else Verdict(False, "value_error:others", f"{param!r}: {value!r} not among {allowed!r}")
                )
            if not verdict.valid:
                return verdict
            continue
        if not _contains(allowed, value):
            return Verdict(False, "value_error:others", f"{param!r}: {value!r} not among {allowed!r}")
    for param, allowed in allowed_by_param.items():
        if param not in params and "" not in allowed:
            return Verdict(False, "missing_optional", f"parameter {param!r} missing and not optional")
    return OK


def _contains(allowed: list, value: Any) -> bool:
    try:
        return value in allowed
    except Exception:  # exotic values that refuse comparison
        return False


def _schema(functions: list[dict], name: str) -> dict | None:
    for function in functions:
        if isinstance(function, dict) and function.get("name") == name:
            return function
    return None


def _gold_name(gold: Any) -> str:
    return next(iter(gold)) if isinstance(gold, dict) and gold else ""


def _max_matching(ok: list[list[bool]]) -> int:
    """Size of a maximum bipartite matching (gold rows x model columns), augmenting paths."""
    match_of_col: dict[int, int] = {}

    def augment(row: int, seen: set[int]) -> bool:
        for col, good in enumerate(ok[row]):
            if good and col not in seen:
                seen.add(col)
                if col not in match_of_col or augment(match_of_col[col], seen):
                    match_of_col[col] = row
                    return True
        return False

    return sum(augment(row, set()) for row in range(len(ok)))


def check_item(
    functions: list[dict],
    calls: list[dict] | None,
    ground_truth: list[dict],
    category: str,
    rules: Rules = REFERENCE,
) -> Verdict:
    """An item's verdict (module docstring). ``calls`` None or [] means no call was decoded.

    Function docs and ground truth that do not have BFCL's shape give a ``bad_ground_truth``
    verdict with the reason (:func:`data_shape_problem`), never an exception.
    """
    calls = calls if isinstance(calls, list) else []
    category = str(category)
    if "irrelevance" not in category:
        problem = data_shape_problem(functions, ground_truth)
        if problem:
            return Verdict(False, "bad_ground_truth", problem)
    try:
        return _check_item(functions, calls, ground_truth, category, rules)
    except (TypeError, AttributeError, KeyError, ValueError, RecursionError) as exc:
        # A data shape the validation above does not reach (deep inside a schema).
        return Verdict(False, "bad_ground_truth", f"checker failed on this item ({type(exc).__name__}: {exc})"[:300])


def data_shape_problem(functions: Any, ground_truth: Any) -> str:
    """Why function docs / ground truth are not in BFCL's shape ("" when they are): docs are a
    list of objects whose ``parameters`` is an object with an object ``properties`` and a list
    ``required``; the ground truth a list of one-key objects ``{name: {param: [allowed...]}}``."""
    if not isinstance(functions, list) or not all(isinstance(f, dict) for f in functions):
        return "function docs are not a list of objects"
    for doc in functions:
        spec = doc.get("parameters", {})
        if spec is None:
            continue
        if not isinstance(spec, dict):
            return f"parameters of {str(doc.get('name'))[:80]!r} are not an object"
        if not isinstance(spec.get("properties") or {}, dict) or not isinstance(spec.get("required") or [], list):
            return f"properties/required of {str(doc.get('name'))[:80]!r} are not an object/list"
    if not isinstance(ground_truth, list):
        return "ground truth is not a list"
    for gold in ground_truth:
        if not isinstance(gold, dict) or len(gold) != 1:
            return "a gold call is not a one-key object"
        ((name, allowed_by_param),) = gold.items()
        if not isinstance(name, str) or not isinstance(allowed_by_param, dict):
            return "a gold call is not {name: {parameter: [allowed values]}}"
        if not all(isinstance(allowed, list) for allowed in allowed_by_param.values()):
            return f"allowed values of gold call {name[:80]!r} are not lists"
    return ""


def _check_item(functions: list[dict], calls: list, ground_truth: list[dict], category: str, rules: Rules) -> Verdict:
    if "irrelevance" in category:
        if calls:
            return Verdict(False, "irrelevance:called", f"made {len(calls)} call(s) where none was wanted")
        return OK
    if not calls:
        return Verdict(False, "no_call", "no function call decoded")
    if "parallel" in category:
        if len(calls) != len(ground_truth):
            return Verdict(False, "wrong_count", f"{len(calls)} calls, expected {len(ground_truth)}")
        if rules.greedy_parallel:
            used: set[int] = set()
            for index, gold in enumerate(ground_truth):
                schema = _schema(functions, _gold_name(gold))
                last = Verdict(False, "parallel:no_match", "")
                for position, call in enumerate(calls):
                    if position in used:
                        continue
                    last = check_call(schema, call, gold, rules)
                    if last.valid:
                        used.add(position)
                        break
                if not last.valid:
                    return Verdict(
                        False,
                        "parallel:no_match",
                        f"no remaining call matches gold call {index} ({_gold_name(gold)}): {last.reason}",
                    )
            return OK
        verdicts = [
            [check_call(_schema(functions, _gold_name(g)), c, g, rules) for c in calls] for g in ground_truth
        ]
        if _max_matching([[v.valid for v in row] for row in verdicts]) == len(ground_truth):
            return OK
        for index, row in enumerate(verdicts):
            if not any(v.valid for v in row):
                return Verdict(
                    False,
                    "parallel:no_match",
                    f"no call matches gold call {index} ({_gold_name(ground_truth[index])}): {row[0].reason}",
                )
        return Verdict(False, "parallel:no_match", "calls cannot be paired one-to-one with the gold calls")
    if not ground_truth:
        return Verdict(False, "bad_ground_truth", "empty ground truth")
    expected_count = len(ground_truth) if "multiple" in category else 1
    if len(calls) != expected_count:
        return Verdict(False, "wrong_count", f"{len(calls)} calls, expected {expected_count}")
    gold = ground_truth[0]
    if "multiple" in category:
        schema = _schema(functions, _gold_name(gold))
    else:
        schema = functions[0] if functions else None
    return check_call(schema, calls[0], gold, rules)


def ground_truth_issues(functions: list[dict], ground_truth: list[dict]) -> list[str]:
    """Reasons, read off the data alone, why no output can pass an item ([] when one can).

    A gold function without a schema; a required parameter the gold answer omits or marks
    optional; a gold parameter that is neither in the schema nor optional; a schema type the
    checker does not know for a parameter that must be given.
    """
    issues = []
    for gold in ground_truth:
        name = _gold_name(gold)
        schema = _schema(functions, name)
        if schema is None:
            issues.append(f"gold function {name!r} has no schema")
            continue
        spec = schema.get("parameters") or {}
        properties = spec.get("properties") or {}
        required = spec.get("required") or []
        allowed_by_param = gold[name]
        for param in required:
            if not [a for a in allowed_by_param.get(param, []) if a != ""]:
                issues.append(f"{name}: required {param!r} has no allowed value in the gold answer")
        for param, allowed in allowed_by_param.items():
            must_give = "" not in allowed or param in required
            if param not in properties:
                if must_give:
                    issues.append(f"{name}: gold parameter {param!r} is not in the schema")
                continue
            details = properties[param] if isinstance(properties[param], dict) else {}
            type_name = details.get("type")
            known = type_name in TYPE_MAP and (
                type_name not in NESTED_TYPES or (details.get("items") or {}).get("type") in TYPE_MAP
            )
            if must_give and not known:
                issues.append(f"{name}: {param!r} has a schema type the checker does not know")
    return issues


def _realize(value: Any) -> Any:
    """A concrete value from an allowed value: dicts inside hold allowed lists per key."""
    if isinstance(value, dict):
        out = {}
        for key, options in value.items():
            if isinstance(options, list):
                real = [o for o in options if o != ""]
                if real and "" not in options:
                    out[key] = _realize(real[0])
            else:
                out[key] = options
        return out
    if isinstance(value, list):
        return [_realize(item) if isinstance(item, dict) else item for item in value]
    return value


def gold_calls(ground_truth: list[dict], functions: list[dict] | None = None) -> list[dict]:
    """A model-style answer built from the gold: each call gives the first allowed value of every
    parameter that is required by its schema or not marked optional; dict values are filled the
    same way, key by key."""
    calls = []
    for gold in ground_truth:
        name = _gold_name(gold)
        schema = _schema(functions or [], name) or {}
        required = (schema.get("parameters") or {}).get("required") or []
        args = {}
        for param, allowed in gold[name].items():
            real = [a for a in allowed if a != ""]
            if real and ("" not in allowed or param in required):
                args[param] = _realize(real[0])
        calls.append({name: args})
    return calls
