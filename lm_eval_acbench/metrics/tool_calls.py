"""Decode the tool calls in a model's text output, in the formats models really emit.

:func:`parse_tool_calls` turns a completion into a list of calls in BFCL's decoded form,
``[{function_name: {argument: value}}, ...]``, or into no calls with a reason. This is the
lenient decoder of ``accuracy_fixed`` and of episode tool actions; the reference ``accuracy``
uses BFCL's own decoder (:mod:`lm_eval_acbench.metrics.bfcl_decode`). Reasoning (``<think>``)
is removed before this runs (:mod:`lm_eval_acbench.thinking`). End-of-turn tokens at the end
(``<|eot_id|>``, ``<|eom_id|>``, ``<|im_end|>``, ``</s>``, DeepSeek's end of sentence) are
dropped. Formats, tried in this order (``format`` of the result in brackets):

1. DeepSeek's tool-call tokens [deepseek]: ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>name``
   then a ```json fence (V3, R1), or ``<｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}`` (V3.1),
   each up to ``<｜tool▁call▁end｜>``;
2. Mistral's ``[TOOL_CALLS]`` [mistral]: a JSON list after it (v3 tokenizers), or
   ``name[ARGS]{...}`` (v11+, with an optional ``[CALL_ID]id``), once per call;
3. Llama 3's ``<|python_tag|>`` [python_tag+json / python_tag+python]: JSON calls, or the
   built-in tools ``brave_search.call(query=...)`` (the tool is ``brave_search``);
4. ``<tool_call>{...}</tool_call>`` blocks (Qwen/Hermes) [tool_call_tags]; an unclosed last
   block runs to the end;
5. text that opens with a call, ``f(x=[1.0, 3.0])``, is Python call syntax [python];
6. JSON [json]: an object or a list of objects, bare or inside a ```json fence; several objects
   separated by ``;`` or new lines are one list; prose after the JSON (braces included) is
   ignored, and so is prose before JSON that opens a line. Accepted object shapes:
   ``{"name": f, "arguments": {...}}`` (also ``"parameters"`` as Llama 3 writes it, or
   ``"args"``; a JSON-encoded string of arguments is decoded), ``{"function": {"name": f,
   "arguments": ...}}`` (OpenAI), ``{"tool_calls": [...]}`` and BFCL's own ``{f: {...}}``;
7. Python call syntax [python], ``f(a=1, b="x")`` or ``[f(a=1), g.h(b=2)]`` or calls on separate
   lines, read with :mod:`ast` and never evaluated: a name stands for itself as a string
   (``x=pi`` gives ``"pi"``); arithmetic on number literals is computed (``2**10`` gives 1024,
   within small bounds), any other expression becomes its source text. A positional argument
   in a call is an error with a reason (BFCL's decoder drops it silently); a nested call with
   one stays its source text;
8. a pythonic list that opens a line after prose, with or without prose after it
   [python_after_prose].

Limits: outputs over :data:`MAX_CHARS` characters and values nested deeper than
:data:`MAX_DEPTH` give no calls with a reason instead of raising.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_CHARS = 200_000
MAX_DEPTH = 40

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_ARG_KEYS = ("arguments", "parameters", "args")


@dataclass(frozen=True)
class ParsedCalls:
    """What was decoded: ``calls`` in BFCL form, the ``format`` it came in, or an ``error``."""

    calls: list[dict] = field(default_factory=list)
    format: str = "none"  # deepseek | mistral | python_tag+... | tool_call_tags | json | python | python_after_prose | none
    error: str | None = None

    @property
    def has_calls(self) -> bool:
        return bool(self.calls)


class _NotACall(ValueError):
    pass


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists/dicts, iteratively; stops counting past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth = max(0, depth - 1)
    return deepest


def _call_from_object(obj: Any) -> list[dict]:
    """One JSON value to calls; raises _NotACall when it is not a function-call shape."""
    if isinstance(obj, list):
        calls: list[dict] = []
        for item in obj:
            calls.extend(_call_from_object(item))
        return calls
    if not isinstance(obj, dict):
        raise _NotACall(f"a JSON {type(obj).__name__} is not a function call")
    if "tool_calls" in obj and isinstance(obj["tool_calls"], list):
        return _call_from_object(obj["tool_calls"])
    if isinstance(obj.get("function"), dict) and "name" in obj["function"]:
        return _call_from_object(obj["function"])
    name = obj.get("name")
    if isinstance(name, str):
        args: Any = {}
        for key in _ARG_KEYS:
            if key in obj:
                args = obj[key]
                break
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (ValueError, RecursionError) as exc:
                raise _NotACall(f"arguments of {name!r} are a string that is not JSON") from exc
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise _NotACall(f"arguments of {name!r} are a {type(args).__name__}, not an object")
        return [{name: args}]
    if len(obj) == 1:
        ((key, value),) = obj.items()
        if isinstance(value, dict):
            return [{str(key): value}]
    raise _NotACall("JSON object without a function name")


def _json_values(text: str, prefix: bool = False) -> list[Any] | None:
    """Every JSON value in ``text`` separated only by whitespace, ``;`` or ``,``; else None.

    With ``prefix``, decoding stops at the first text that is not JSON (prose after the calls)
    instead of failing, as long as one value was decoded."""
    decoder = json.JSONDecoder()
    values = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n;,":
            pos += 1
        if pos >= len(text):
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            if prefix and values:
                break
            raise
        values.append(value)
    return values or None


def _line_starts(text: str, chars: str, limit: int = 20) -> list[int]:
    """Positions of ``chars`` that open the text or a line (after indentation), at most ``limit``."""
    found = []
    for match in re.finditer(r"(?:^|\n)[ \t]*([" + re.escape(chars) + "])", text):
        found.append(match.start(1))
        if len(found) >= limit:
            break
    return found


def _from_json(text: str) -> list[dict] | None:
    """Calls from JSON text, None when the text holds no JSON; raises _NotACall on other JSON."""
    stripped = text.strip()
    if stripped.startswith("<|python_tag|>"):
        stripped = stripped[len("<|python_tag|>") :].strip()
    candidates = [(stripped, False)]
    start = min((i for i in (stripped.find("["), stripped.find("{")) if i >= 0), default=-1)
    if start > 0:
        end = max(stripped.rfind("]"), stripped.rfind("}"))
        if end > start:
            candidates.append((stripped[start : end + 1], False))
    # JSON followed by prose (which may hold braces of its own): the JSON values that open the
    # text or a line, decoded up to the prose. Not any inner brace: a truncated call must not
    # turn into a call of its own arguments.
    for line_start in dict.fromkeys(([start] if start >= 0 else []) + _line_starts(stripped, "[{")):
        candidates.append((stripped[line_start:], True))
    not_a_call = None
    for candidate, prefix in candidates:
        if not candidate or candidate[0] not in "[{":
            continue
        try:
            values = _json_values(candidate, prefix)
        except (ValueError, RecursionError):
            continue
        if values is None:
            continue
        # Counting brackets is cheap; walk the values only when they could be too deep.
        if candidate.count("[") + candidate.count("{") > MAX_DEPTH and any(
            _depth(v) > MAX_DEPTH for v in values
        ):
            raise _NotACall(f"JSON nested deeper than {MAX_DEPTH} levels")
        try:
            return _call_from_object(values if len(values) > 1 else values[0])
        except _NotACall as exc:
            if not prefix:
                raise
            not_a_call = not_a_call or exc
    if not_a_call is not None:
        raise not_a_call
    return None


# --- Python call syntax ---------------------------------------------------------------------

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _arith(node: ast.BinOp, level: int) -> Any:
    left = _value(node.left, level + 1)
    right = _value(node.right, level + 1)
    op = _BINOPS.get(type(node.op))
    if op is None or not (_number(left) and _number(right)):
        raise ArithmeticError
    if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
        raise ArithmeticError
    if isinstance(node.op, ast.Mult) and max(abs(left), abs(right)) > 10**30:
        raise ArithmeticError
    result = op(left, right)
    if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
        raise ArithmeticError
    return result


def _value(node: ast.AST, level: int = 1) -> Any:
    """A Python literal-ish AST node to a plain value (see the module docstring)."""
    if level > MAX_DEPTH:
        raise _NotACall(f"value nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, level + 1)
        if _number(operand):
            return -operand if isinstance(node.op, ast.USub) else operand
        return ast.unparse(node)
    if isinstance(node, (ast.List, ast.Set)):
        return [_value(elt, level + 1) for elt in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(elt, level + 1) for elt in node.elts)
    if isinstance(node, ast.Dict):
        out = {}
        for key, val in zip(node.keys, node.values):
            if key is None:
                raise _NotACall("dict unpacking (**) in an argument")
            out[_hashable(_value(key, level + 1))] = _value(val, level + 1)
        return out
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.BinOp):
        try:
            return _arith(node, level)
        except (ArithmeticError, OverflowError, ValueError, TypeError):
            return ast.unparse(node)
    if isinstance(node, ast.Call) and node.keywords and not node.args:
        return _call(node, level + 1)
    return ast.unparse(node)


def _hashable(key: Any) -> Any:
    try:
        hash(key)
        return key
    except TypeError:
        return str(key)


def _func_name(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        raise _NotACall("call target is not a (dotted) name")
    return ".".join(reversed(parts))


def _call(node: ast.Call, level: int = 1) -> dict:
    if node.args:
        # BFCL's decoder drops them without a word; a call whose arguments we cannot name is
        # not the call the model meant, so it is reported instead.
        raise _NotACall(
            f"positional argument(s) in the call to {ast.unparse(node.func)}: only keyword arguments name parameters"
        )
    args = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise _NotACall("keyword unpacking (**) in a call")
        args[keyword.arg] = _value(keyword.value, level + 1)
    return {_func_name(node.func): args}


_CALL_START = re.compile(r"\s*[\[(]?\s*[A-Za-z_][\w.]*\s*\(")


def _from_python(text: str) -> list[dict] | None:
    stripped = text.strip().rstrip(";").strip()
    if not stripped or not _CALL_START.match(stripped):
        return None  # prose: not worth a parse
    if _bracket_depth(stripped) > MAX_DEPTH:
        raise _NotACall(f"call nested deeper than {MAX_DEPTH} levels")
    try:
        tree = ast.parse(stripped, mode="eval")
        body = tree.body
        elements = body.elts if isinstance(body, (ast.List, ast.Tuple)) else [body]
    except SyntaxError:
        # Several calls on separate lines: f(a=1)\ng(b=2)
        try:
            module = ast.parse(stripped, mode="exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None
        if not module.body or not all(isinstance(s, ast.Expr) for s in module.body):
            return None
        elements = [s.value for s in module.body]  # type: ignore[attr-defined]
    except (ValueError, MemoryError, RecursionError):
        return None
    if not elements or not all(isinstance(e, ast.Call) for e in elements):
        return None
    return [_call(e) for e in elements]  # type: ignore[arg-type]


def _matching_bracket(text: str, start: int) -> int | None:
    """Index of the bracket that closes the one at ``start`` (quotes respected), or None."""
    depth = 0
    quote = None
    pos = start
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    return None


def _python_after_prose(text: str) -> list[dict] | None:
    """A ``[f(a=1), ...]`` list that opens a line after prose; prose may follow it too."""
    for start in _line_starts(text, "[", limit=10):
        if start == 0:
            continue
        end = _matching_bracket(text, start)
        if end is None:
            continue
        calls = _from_python(text[start : end + 1])
        if calls is not None:
            return calls
    return None


# --- entry point ----------------------------------------------------------------------------


def _decode_block(text: str) -> tuple[list[dict] | None, str]:
    """Calls from one chunk of text: JSON first, then Python call syntax; text that opens with a
    call (``f(x=[1.0, 3.0])``) is Python, so a list among its arguments is not read as JSON."""
    if _CALL_START.match(text):
        calls = _from_python(text)
        if calls is not None:
            return calls, "python"
    calls = _from_json(text)
    if calls is not None:
        return calls, "json"
    calls = _from_python(text)
    if calls is not None:
        return calls, "python"
    return None, "none"


def parse_tool_calls(text: Any) -> ParsedCalls:
    """Decode the tool calls in a completion (see the module docstring); never raises.

    Returns ``ParsedCalls(calls=[{name: {arg: value}}, ...], format=...)``, or no calls with
    ``error`` saying why (prose, malformed JSON, a JSON value that is not a call, too deep...).
    """
    if not isinstance(text, str):
        return ParsedCalls(error=f"output is a {type(text).__name__}, not text")
    if len(text) > MAX_CHARS:
        return ParsedCalls(error=f"output longer than {MAX_CHARS} characters")
    try:
        return _parse(text)
    except _NotACall as exc:
        return ParsedCalls(error=str(exc))
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return ParsedCalls(error=f"undecodable output ({type(exc).__name__})")


_END_TOKENS = re.compile(r"(?:\s*(?:<\|eom_id\|>|<\|eot_id\|>|<\|im_end\|>|</s>|<[｜|]end[▁_]of[▁_]sentence[｜|]>))+\s*\Z")
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL = "[TOOL_CALLS]"
_DEEPSEEK_CALL = re.compile(r"<[｜|]tool[▁_]call[▁_]begin[｜|]>(.*?)(?:<[｜|]tool[▁_]call[▁_]end[｜|]>|\Z)", re.S)
_DEEPSEEK_SEP = re.compile(r"<[｜|]tool[▁_]sep[｜|]>")
_DEEPSEEK_MARK = re.compile(r"<[｜|]tool[▁_]calls?[▁_]begin[｜|]>")


def _json_object_at_start(text: str, what: str) -> dict:
    """The JSON object that opens ``text`` (a fence around it is allowed); prose after it is ignored."""
    body = _unfence(text.strip()).strip()
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except ValueError as exc:
        raise _NotACall(f"{what}: arguments are not JSON") from exc
    if not isinstance(value, dict):
        raise _NotACall(f"{what}: arguments are a JSON {type(value).__name__}, not an object")
    if _bracket_depth(body) > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise _NotACall(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _mistral(text: str) -> list[dict]:
    """``[TOOL_CALLS] [{"name": ..., "arguments": ...}]`` (v3 tokenizers) or
    ``[TOOL_CALLS]name[ARGS]{...}`` per call (v11+, optionally ``[CALL_ID]id`` before ``[ARGS]``)."""
    calls: list[dict] = []
    for number, piece in enumerate(text.split(_MISTRAL)[1:], 1):
        piece = piece.strip()
        if not piece:
            continue
        if "[ARGS]" in piece:
            head, args = piece.split("[ARGS]", 1)
            name = head.split("[CALL_ID]", 1)[0].strip()
            if not re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
                raise _NotACall(f"[TOOL_CALLS] {number}: {name[:40]!r} is not a function name")
            calls.append({name: _json_object_at_start(args, f"[TOOL_CALLS] {number} ({name})")})
            continue
        decoded = _from_json(piece)
        if decoded is None:
            raise _NotACall(f"[TOOL_CALLS] {number} is neither JSON calls nor name[ARGS]{{...}}")
        calls.extend(decoded)
    return calls


def _deepseek(text: str) -> list[dict]:
    """DeepSeek's tokens: ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>name`` + a ```json fence
    (V3, R1) or ``<｜tool▁call▁begin｜>name<｜tool▁sep｜>{...}`` (V3.1), each up to
    ``<｜tool▁call▁end｜>``."""
    calls: list[dict] = []
    for number, block in enumerate(_DEEPSEEK_CALL.findall(text), 1):
        parts = _DEEPSEEK_SEP.split(block, maxsplit=1)
        if len(parts) != 2:
            raise _NotACall(f"DeepSeek tool call {number} has no <｜tool▁sep｜>")
        head, rest = parts[0].strip(), parts[1]
        if head == "function":
            name, _, rest = rest.strip().partition("\n")
            name = name.strip()
        else:
            name = head
        if not re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
            raise _NotACall(f"DeepSeek tool call {number}: {name[:40]!r} is not a function name")
        calls.append({name: _json_object_at_start(rest, f"DeepSeek tool call {number} ({name})")})
    if not calls:
        raise _NotACall("DeepSeek tool-call tokens without a complete call")
    return calls


def _llama_python_tag(text: str) -> tuple[list[dict] | None, str]:
    """After ``<|python_tag|>``: JSON calls, or Llama 3's built-in tools ``name.call(q=...)``
    (the call of ``brave_search.call`` is the tool ``brave_search``)."""
    body = text.split(_PYTHON_TAG, 1)[1].strip()
    decoded, fmt = _decode_block(body)
    if decoded is not None and fmt == "python":
        decoded = [
            {name[: -len(".call")] if name.endswith(".call") else name: args for name, args in call.items()}
            for call in decoded
        ]
    return decoded, fmt


def _parse(text: str) -> ParsedCalls:
    text = _END_TOKENS.sub("", text).strip()
    if not text:
        return ParsedCalls(error="empty output")
    if _MISTRAL in text or _PYTHON_TAG in text or "<tool_call>" in text or _DEEPSEEK_MARK.search(text):
        # A marker inside a string value of a JSON answer is an argument, not a format.
        whole = _whole_json_calls(text)
        if whole is not None:
            return ParsedCalls(calls=whole, format="json")
    if _DEEPSEEK_CALL.search(text) or _DEEPSEEK_MARK.search(text):
        return ParsedCalls(calls=_deepseek(text), format="deepseek")
    if _MISTRAL in text:
        calls = _mistral(text)
        if not calls:
            return ParsedCalls(format="mistral", error="empty [TOOL_CALLS]")
        return ParsedCalls(calls=calls, format="mistral")
    if _PYTHON_TAG in text:
        decoded, fmt = _llama_python_tag(text)
        if not decoded:
            return ParsedCalls(format="python_tag", error="<|python_tag|> is not followed by a call")
        return ParsedCalls(calls=decoded, format=f"python_tag+{fmt}")
    if "<tool_call>" in text:
        calls: list[dict] = []
        for number, block in enumerate(_TOOL_CALL.findall(text), 1):
            if not block.strip():
                continue
            decoded, _ = _decode_maybe_fenced(block)
            if decoded is None:
                return ParsedCalls(format="tool_call_tags", error=f"<tool_call> block {number} is not a call")
            calls.extend(decoded)
        if not calls:
            return ParsedCalls(format="tool_call_tags", error="empty <tool_call> blocks")
        return ParsedCalls(calls=calls, format="tool_call_tags")
    decoded, fmt = _decode_maybe_fenced(text)
    if decoded is None:
        decoded, fmt = _python_after_prose(text), "python_after_prose"
    if decoded is None:
        return ParsedCalls(error="no function call found (prose or malformed)")
    if not decoded:
        return ParsedCalls(format=fmt, error="an empty list of calls")
    return ParsedCalls(calls=decoded, format=fmt)


def _whole_json_calls(text: str) -> list[dict] | None:
    """The calls when the whole text is one JSON call (or list of calls), else None."""
    if text[0] not in "[{":
        return None
    try:
        return _call_from_object(json.loads(text))
    except (ValueError, RecursionError, _NotACall):
        return None


def _decode_maybe_fenced(text: str):
    """Decode the first ``` fence's content; failing that, the text as it is (a ``` may sit
    inside a JSON string value rather than open a fence)."""
    body = _unfence(text)
    decoded, fmt = _decode_block(body)
    if decoded is None and body != text:
        decoded, fmt = _decode_block(text)
    return decoded, fmt


def _unfence(text: str) -> str:
    """The content of the first ``` fence, or the text itself when there is none."""
    match = _FENCE.search(text)
    return match.group(2).strip() if match else text


def format_calls(calls: list[dict], style: str) -> str:
    """Write BFCL-style calls ``[{name: {arg: value}}]`` the way models emit them.

    ``style``: ``json`` (a JSON list of ``{"name", "arguments"}``), ``tags`` (one
    ``<tool_call>`` block per call) or ``python`` (``[f(a=1), g(b='x')]``). The inverse of
    :func:`parse_tool_calls`, used to turn gold answers into model-style outputs.
    """
    objects = [{"name": name, "arguments": args} for call in calls for name, args in call.items()]
    if style == "json":
        return json.dumps(objects)
    if style == "tags":
        return "\n".join(f"<tool_call>\n{json.dumps(o)}\n</tool_call>" for o in objects)
    if style == "python":
        rendered = (f"{o['name']}(" + ", ".join(f"{k}={v!r}" for k, v in o["arguments"].items()) + ")" for o in objects)
        return "[" + ", ".join(rendered) + "]"
    raise ValueError(f"unknown call style {style!r} (json, tags or python)")
