"""Scoring speed of the function-calling checker over every real BFCL item of our categories.

For each item of simple, multiple, parallel, parallel_multiple, irrelevance and their live_
forms, model-style outputs are built from the gold answer (JSON list, ``<tool_call>`` blocks,
Python call syntax) plus perturbed ones (wrong name, unknown parameter, dropped required
parameter, changed value, extra call, parallel calls reversed, prose), and each is scored by
``score_output`` as in a run: BFCL's decoder + the reference rules (``accuracy``) and the lenient
decoder + the fixed rules (``accuracy_fixed``). Prints items and outputs per second and the
pass rate of each output class.

    .venv/bin/python bench/bench_function_call.py [--data /path/to/bfcl]

Default data: ``../shared/data/bfcl`` next to the checkout, else ``$ACBENCH_DATA_DIR/bfcl``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections import Counter
from pathlib import Path

from lm_eval_acbench.metrics import bfcl_ast
from lm_eval_acbench.metrics.tool_calls import format_calls
from lm_eval_acbench.tasks.function_call import CATEGORIES, read_category, score_output

def outputs_for(functions: list, gold: list, category: str) -> list[tuple[str, str]]:
    """(class, output text) pairs for one item."""
    if "irrelevance" in category:
        name = functions[0]["name"] if functions else "f"
        return [("prose", "None of these functions can answer that."), ("call", format_calls([{name: {}}], "python"))]
    calls = bfcl_ast.gold_calls(gold, functions)
    out = [(f"gold_{style}", format_calls(calls, style)) for style in ("json", "tags", "python")]
    name = next(iter(calls[0]))
    wrong = copy.deepcopy(calls)
    wrong[0] = {name + "_x": wrong[0][name]}
    out.append(("wrong_name", format_calls(wrong, "python")))
    extra = copy.deepcopy(calls)
    extra[0][name]["zz_unknown"] = 1
    out.append(("unknown_param", format_calls(extra, "python")))
    required = (
        next((f for f in functions if f["name"] == name), {}).get("parameters", {}).get("required") or []
    )
    if required and required[0] in calls[0][name]:
        dropped = copy.deepcopy(calls)
        dropped[0][name].pop(required[0])
        out.append(("missing_required", format_calls(dropped, "python")))
    for param, value in calls[0][name].items():
        if type(value) in (int, str):
            changed = copy.deepcopy(calls)
            changed[0][name][param] = value + 7 if type(value) is int else value + " zq"
            out.append(("changed_value", format_calls(changed, "python")))
            break
    out.append(("extra_call", format_calls(calls + calls[:1], "python")))
    if "parallel" in category and len(calls) > 1:
        out.append(("reversed", format_calls(list(reversed(calls)), "python")))
    out.append(("prose", "I would call a function to do this."))
    return out


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``: ``../shared/data/bfcl`` next to the checkout, else ``$ACBENCH_DATA_DIR/bfcl``."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "bfcl"
    if not default.is_dir() and os.environ.get("ACBENCH_DATA_DIR"):
        default = Path(os.environ["ACBENCH_DATA_DIR"]) / "bfcl"
    parser.add_argument("--data", type=Path, default=default)


def has_bfcl_data(folder: Path) -> bool:
    if (folder / "BFCL_v4_multiple.json").is_file():
        return True
    print(f"no BFCL data at {folder}; pass --data", file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    args = parser.parse_args()
    if not has_bfcl_data(args.data):
        return 2

    items = [
        (category, record["functions"], record["ground_truth"])
        for category in CATEGORIES
        for record in read_category(args.data, category)
    ]
    prepared = [(category, f, g, outputs_for(f, g, category)) for category, f, g in items]
    n_outputs = sum(len(o) for *_, o in prepared)

    passed: Counter = Counter()
    passed_fixed: Counter = Counter()
    seen: Counter = Counter()
    start = time.perf_counter()
    cpu_start = time.process_time()
    for category, functions, gold, outputs in prepared:
        for label, text in outputs:
            scored = score_output(text, functions, gold, category)
            seen[label] += 1
            passed[label] += scored["accuracy"]
            passed_fixed[label] += scored["accuracy_fixed"]
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start

    print(f"data: {args.data}")
    print(
        f"{len(items)} items, {n_outputs} outputs scored (both decoders, both rule sets) in {elapsed:.2f} s wall, {cpu:.2f} s CPU"
    )
    print(f"{len(items) / elapsed:,.0f} items/s, {n_outputs / elapsed:,.0f} outputs/s")
    print(f"{'output class':<18}{'n':>7}{'accuracy':>10}{'accuracy_fixed':>16}")
    for label in seen:
        print(
            f"{label:<18}{seen[label]:>7}{passed[label] / seen[label]:>10.4f}{passed_fixed[label] / seen[label]:>16.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
