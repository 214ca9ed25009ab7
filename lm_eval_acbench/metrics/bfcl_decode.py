"""BFCL's own prompting decoder, rule for rule, for the reference ``accuracy``.

The leaderboard decodes a prompted model's text with ``default_decode_ast_prompting`` (Python
return format, no tool-call tag). :func:`decode_reference` follows it exactly, but never runs
``eval``:

1. strip backticks, new lines and spaces (only those) from both ends of the text; prefix ``[``
   unless it now starts with one, append ``]`` unless it now ends with one;
2. parse the result with :func:`ast.parse` (expression mode) -- a ```` ```python ```` fence
   therefore fails (``python`` is left in front of the list), a bare ``f(x=[1])`` decodes, and
   calls on separate lines fail;
3. the parsed body must be a list (or tuple) of calls; each call becomes ``{dotted name:
   {keyword: value}}`` (positional arguments are dropped; ``**kw`` gives the key ``None``);
4. argument values: constants as they are; a list, dict or tuple element-wise; a bare name as
   its own text; a nested call without keywords as its source text, with keywords as a nested
   ``{name: {...}}``; a subscript as its source text; a unary operator on a constant gives the
   constant *negated*, whatever the operator (BFCL reads ``-x`` as ``-(x.value)``, so ``+5`` is
   -5 and ``not 1`` is -1; on anything but a constant it fails); a binary operation is computed
   when BFCL's ``eval`` would compute it from literals (numbers, strings, bytes, lists, tuples,
   dicts); any other node (attribute, set, comparison, f-string, comprehension, lambda...) fails.

A failed decode is an output "without a function call": the item fails, except irrelevance,
which passes. A decoded empty list is no call too. Where BFCL's ``eval`` would reach names or
builtins (``len(x) + 1``), we do not evaluate and report the decode as failed; BFCL fails there
too unless the name is a Python builtin.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 200_000
_MAX_RESULT = 10**6  # longest string/list a computed binary operation may build

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
    ast.MatMult: operator.matmul,
}


@dataclass(frozen=True)
class ReferenceDecode:
    """BFCL's decoded calls ``[{name: {arg: value}}]``, or ``None`` with the ``error``."""

    calls: list[dict] | None = None
    error: str | None = None
    wrapped: str = ""  # the text ast.parse saw


class _Undecodable(ValueError):
    pass


def wrap_like_bfcl(text: str) -> str:
    """Step 1 of the module docstring: the text BFCL hands to ``ast.parse``."""
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    return text.strip().strip("'")


def decode_reference(text: Any) -> ReferenceDecode:
    """Decode a completion as BFCL's ``default_decode_ast_prompting`` does (module docstring).

    Never raises: where BFCL's decoder raises, ``calls`` is None and ``error`` says why.
    """
    if not isinstance(text, str):
        return ReferenceDecode(error=f"output is a {type(text).__name__}, not text")
    if len(text) > MAX_CHARS:
        return ReferenceDecode(error=f"output longer than {MAX_CHARS} characters")
    wrapped = wrap_like_bfcl(text)
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like, per output
            warnings.simplefilter("ignore", SyntaxWarning)
            body = ast.parse(wrapped, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return ReferenceDecode(error=f"not Python call syntax after wrapping in [] ({type(exc).__name__})", wrapped=wrapped)
    try:
        if isinstance(body, ast.Call):
            return ReferenceDecode(calls=[_call(body)], wrapped=wrapped)
        if not isinstance(body, (ast.List, ast.Tuple, ast.Set)):
            raise _Undecodable(f"the wrapped text is a {type(body).__name__}, not a list of calls")
        calls = []
        for element in body.elts:
            if not isinstance(element, ast.Call):
                raise _Undecodable(f"a list element is a {type(element).__name__}, not a call")
            calls.append(_call(element))
        return ReferenceDecode(calls=calls, wrapped=wrapped)
    except _Undecodable as exc:
        return ReferenceDecode(error=str(exc), wrapped=wrapped)
    except (RecursionError, MemoryError, TypeError, ValueError, ArithmeticError) as exc:
        return ReferenceDecode(error=f"undecodable argument ({type(exc).__name__}: {exc})", wrapped=wrapped)


def _call(node: ast.Call) -> dict:
    parts = []
    target = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    # BFCL keeps whatever attribute names it collected, even when the base is not a name.
    return {".".join(reversed(parts)): {kw.arg: _value(kw.value) for kw in node.keywords}}


def _value(node: Any) -> Any:
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.operand, ast.Constant):
            raise _Undecodable(f"unary operator on a {type(node.operand).__name__}")
        return -node.operand.value
    if isinstance(node, ast.List):
        return [_value(element) for element in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                raise _Undecodable("dict unpacking (**) in an argument")
            out[_value(key)] = _value(value)
        return out
    if isinstance(node, ast.BinOp):
        return _literal(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _call(node) if node.keywords else ast.unparse(node)
    if isinstance(node, ast.Tuple):
        return tuple(_value(element) for element in node.elts)
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"
    raise _Undecodable(f"unsupported argument syntax ({type(node).__name__})")


def _literal(node: ast.AST, depth: int = 0) -> Any:
    """What ``eval`` gives for an expression built from literals only; else _Undecodable."""
    if depth > 100:
        raise _Undecodable("expression nested too deeply")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        operand = _literal(node.operand, depth + 1)
        ops = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}
        return ops[type(node.op)](operand)
    if isinstance(node, ast.List):
        return [_literal(e, depth + 1) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e, depth + 1) for e in node.elts)
    if isinstance(node, ast.Set):
        return {_literal(e, depth + 1) for e in node.elts}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, depth + 1): _literal(v, depth + 1) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _literal(node.left, depth + 1)
        right = _literal(node.right, depth + 1)
        _refuse_huge(node.op, left, right)
        return _BINOPS[type(node.op)](left, right)
    raise _Undecodable(f"BFCL evaluates this expression with eval; {type(node).__name__} is not a literal")


def _refuse_huge(op: ast.operator, left: Any, right: Any) -> None:
    """Results too big to build (``'a' * 10**12``, ``9 ** 9 ** 9``) are refused, not computed."""
    ints = all(isinstance(v, int) for v in (left, right))
    if isinstance(op, ast.Pow) and ints and right > 0 and abs(left) > 1 and right * math.log2(abs(left)) > 64_000:
        raise _Undecodable("power too large to compute")
    if isinstance(op, ast.LShift) and ints and right > 64_000:
        raise _Undecodable("shift too large to compute")
    if isinstance(op, ast.Mult):
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int) and len(seq) * count > _MAX_RESULT:
                raise _Undecodable("repetition too large to build")
