"""Our function-calling ``accuracy`` against bfcl-eval's own decoder and AST checker.

For every real item of our ten BFCL categories, model-style outputs are built from the gold
answer in the styles models write (python list, bare call(s), ```python / ``` fences, calls on
separate lines, prose before the list, JSON list, ``<tool_call>`` tags) and perturbed (changed
value, ``+`` sign, wrong name, unknown and missing parameter, extra call, reversed order,
prose, empty list). Each output gets our verdict (``score_output(...)["accuracy"]``) and the
oracle's: bfcl-eval's ``default_decode_ast_prompting``, ``is_function_calling_format_output`` /
``is_empty_output`` and ``ast_checker``, as its eval runner chains them. Prints the agreement
per output style and every disagreement (up to ``--show``).

bfcl-eval pins numpy 1.26.4 and networkx 3.3, so install it apart and point at it:

    pip install --no-deps --target /tmp/bfcl_site bfcl-eval==2026.3.23 tree_sitter==0.21.3 \
        tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4
    BFCL_EVAL_PATH=/tmp/bfcl_site .venv/bin/python bench/bench_bfcl_oracle.py

(filelock and tenacity, which it also imports, come from our venv.)
``bfcl_eval.constants.model_config`` imports every API client BFCL supports; the checker uses it
only to ask whether a model's function names have dots replaced by underscores
(``convert_func_name``), so this script puts a one-line stand-in in its place that says "no"
for every model (our ``accuracy`` checks the names as written). Everything else is bfcl-eval's
code, unchanged.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import types
from collections import Counter
from pathlib import Path

from bench_function_call import add_data_argument, has_bfcl_data
from bench_function_call import outputs_for as function_call_outputs
from lm_eval_acbench.metrics import bfcl_ast
from lm_eval_acbench.metrics.tool_calls import format_calls
from lm_eval_acbench.tasks.function_call import CATEGORIES, read_category, score_output

ORACLE_MODEL = "acbench-oracle"


def load_oracle():
    """(decode, is_format_output, is_empty_output, ast_checker, Language) from bfcl-eval."""
    path = os.environ.get("BFCL_EVAL_PATH")
    if path:
        sys.path.insert(0, path)
    shim = types.ModuleType("bfcl_eval.constants.model_config")

    class _NoUnderscores(dict):
        def __missing__(self, key):
            return types.SimpleNamespace(underscore_to_dot=False)

    shim.MODEL_CONFIG_MAPPING = _NoUnderscores()
    sys.modules["bfcl_eval.constants.model_config"] = shim
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    return default_decode_ast_prompting, is_function_calling_format_output, is_empty_output, ast_checker, Language


def oracle_verdict(oracle, text: str, functions: list, gold: list, category: str) -> bool:
    """bfcl-eval's verdict, chained as its eval runner does for AST and relevance entries."""
    decode, is_format, is_empty, checker, language = oracle
    try:
        decoded = decode(text)
        decoded_ok = True
    except Exception:
        decoded, decoded_ok = None, False
    if "irrelevance" in category:
        return not (decoded_ok and not is_empty(decoded))
    if not decoded_ok or not is_format(decoded):
        return False
    return bool(checker(functions, decoded, gold, language.PYTHON, category, ORACLE_MODEL)["valid"])


# Argument syntax a model may write, each decoded by BFCL's own rules (or failing there).
EXOTIC_VALUES = (
    "math.pi", "x", "x[0]", "x[1:2]", "f(1)", "g(a=1)", "-x", "not 1", "~3", "+2.5", "- -1", "1+2", "2**10",
    "'a'*3", "1/0", "[1]*2", "{1, 2}", "lambda: 1", "f'{x}'", "(1, 2)", "{'k': [1]}", "{**d}", "None",
    "True", "-True", "b'x'", "3j", "...", "1 < 2", "a if b else c", "[i for i in y]", "-'s'",
    "{'a': 1}['a']", "(1).real", "1e308*10",
)


def _python_call(name: str, args: dict) -> str:
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def outputs_for(functions: list, gold: list, category: str) -> list[tuple[str, str]]:
    """(style, output text) pairs for one item: bench_function_call's gold-derived and perturbed
    outputs plus the styles and argument syntax where BFCL's decoder has rules of its own."""
    out = function_call_outputs(functions, gold, category)
    if "irrelevance" in category:
        first = functions[0] if functions else {"name": "f"}
        required = (first.get("parameters") or {}).get("required") or []
        call = [{first["name"]: {p: "x" for p in required}}]
        python = format_calls(call, "python")
        return out + [
            ("json", format_calls(call, "json")),
            ("tags", format_calls(call, "tags")),
            ("bare", python[1:-1]),
            ("fenced_python", f"```python\n{python}\n```"),
            ("fenced_plain", f"```\n{python}\n```"),
            ("empty_list", "[]"),
        ]
    calls = bfcl_ast.gold_calls(gold, functions)
    python = format_calls(calls, "python")
    singles = [_python_call(n, a) for c in calls for n, a in c.items()]
    out += [
        ("bare", ", ".join(singles)),
        ("fenced_python", f"```python\n{python}\n```"),
        ("fenced_plain", f"```\n{python}\n```"),
        ("fenced_bare", f"```\n{', '.join(singles)}\n```"),
        ("lines", "\n".join(singles)),
        ("prose_then_list", f"Here is the call:\n{python}"),
        ("empty_list", "[]"),
    ]
    name = next(iter(calls[0]))
    for param, value in calls[0][name].items():
        if type(value) in (float, list, bool):
            changed = copy.deepcopy(calls)
            if type(value) is float:
                changed[0][name][param] = int(value) if value == int(value) else value * 2
            elif type(value) is bool:
                changed[0][name][param] = int(value)
            else:
                changed[0][name][param] = list(reversed(value))
            out.append(("changed_float_list_bool", format_calls(changed, "python")))
            break
    for param, value in calls[0][name].items():
        if type(value) in (int, float):
            out.append(("unary_plus", python.replace(f"{param}={value!r}", f"{param}=+{value!r}", 1)))
            break
    first_param = next(iter(calls[0][name]), None)
    if first_param is not None:
        rest = ", ".join(f"{k}={v!r}" for k, v in list(calls[0][name].items())[1:])
        for source in EXOTIC_VALUES:
            out.append(("exotic_value", f"[{name}({first_param}={source}{', ' + rest if rest else ''})]"))
        out.append(("positional_arg", f"[{name}(1, {first_param}={calls[0][name][first_param]!r})]"))
        out.append(("kwargs_unpack", f"[{name}(**{{'{first_param}': 1}})]"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--show", type=int, default=20, help="disagreements to print")
    args = parser.parse_args()
    if not has_bfcl_data(args.data):
        return 2
    try:
        oracle = load_oracle()
    except ImportError as exc:
        print(f"bfcl-eval is not importable ({exc}); set BFCL_EVAL_PATH (see the docstring)", file=sys.stderr)
        return 2

    seen: Counter = Counter()
    agree: Counter = Counter()
    passed: Counter = Counter()
    shown = 0
    n_items = 0
    for category in CATEGORIES:
        for record in read_category(args.data, category):
            n_items += 1
            functions, gold = record["functions"], record["ground_truth"]
            for style, text in outputs_for(functions, gold, category):
                ours = bool(score_output(text, functions, gold, category)["accuracy"])
                theirs = oracle_verdict(oracle, text, functions, gold, category)
                seen[style] += 1
                agree[style] += ours == theirs
                passed[style] += theirs
                if ours != theirs and shown < args.show:
                    shown += 1
                    print(f"DIFFER {record['id']} [{style}] ours={ours} bfcl={theirs}: {text[:160]!r}")
    total = sum(seen.values())
    print(f"data: {args.data}; {n_items} items, {total} outputs")
    print(f"{'style':<18}{'n':>7}{'agree':>9}{'bfcl pass':>11}")
    for style in seen:
        print(f"{style:<18}{seen[style]:>7}{agree[style] / seen[style]:>9.4f}{passed[style] / seen[style]:>11.4f}")
    print(f"agreement: {sum(agree.values())}/{total} = {sum(agree.values()) / total:.4f}")
    return 0 if sum(agree.values()) == total else 1


if __name__ == "__main__":
    sys.exit(main())
