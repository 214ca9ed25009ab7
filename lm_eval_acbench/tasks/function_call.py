"""BFCL-style function calling (acbench_function_call_<category>): data, prompt, scoring hook.

Data: the BFCL layout -- ``BFCL_v4_<category>.json`` (one JSON object per line: ``id``,
``question`` = list of turns of messages, ``function`` = JSON-schema docs) and
``possible_answer/BFCL_v4_<category>.json`` (``id``, ``ground_truth``). The category ``simple``
is BFCL v4's ``simple_python`` (v3's ``simple``). Sources (:func:`lm_eval_acbench.data.load_records`):
a local folder (``data_dir/bfcl``), the HF dataset ``gorilla-llm/Berkeley-Function-Calling-Leaderboard``
(v3 or v4 file names, cache first), the ``bfcl-eval`` wheel's ``bfcl_eval/data`` (found without
importing it: ``pip install --no-deps bfcl-eval``), else our sample set
``lm_eval_acbench/samples/bfcl`` in the same layout. Rows without messages or ground truth are
dropped and counted.

Prompt: the item's messages with its functions as tools, rendered by
:func:`lm_eval_acbench.chat.render_messages` (per sample; the way tools reached the model is the
metric ``tools_in_template`` and the logged ``acbench_render`` field).

Scoring: :func:`score_output` gives two verdicts. ``accuracy`` is BFCL's: the completion
decoded by BFCL's own prompting decoder (:func:`lm_eval_acbench.metrics.bfcl_decode.decode_reference`)
and checked under the reference rules of :mod:`lm_eval_acbench.metrics.bfcl_ast`.
``accuracy_fixed`` decodes leniently (:func:`lm_eval_acbench.metrics.tool_calls.parse_tool_calls`:
fences, JSON, tool tags, model tool-call tokens) and checks under the fixed rules; ``parse_rate`` is 1 when the lenient
decoder found at least one call.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from lm_eval_acbench import data, thinking
from lm_eval_acbench.logsafe import log_safe
from lm_eval_acbench.metrics import bfcl_ast
from lm_eval_acbench.metrics.bfcl_decode import ReferenceDecode, decode_reference
from lm_eval_acbench.metrics.tool_calls import parse_tool_calls
from lm_eval_acbench.tasks.rendered import RenderedMessagesTask

BENCHMARK = "bfcl"
CATEGORIES = (
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
)
_FILE_STEMS = {"simple": ("simple_python", "simple")}


def category_files(folder: Path, category: str) -> tuple[Path, Path]:
    """(questions file, possible-answer file) of a category in a BFCL folder (v4 names first)."""
    stems = _FILE_STEMS.get(category, (category,))
    for version in ("v4", "v3"):
        for stem in stems:
            name = f"BFCL_{version}_{stem}.json"
            if (folder / name).is_file():
                return folder / name, folder / "possible_answer" / name
    raise data.DataUnavailable(f"bfcl: no BFCL_v4_{stems[0]}.json for category {category!r} in {folder}")


def read_category(folder: Path, category: str) -> list[dict]:
    """The records of one category: id, category, messages, functions, ground_truth."""
    questions, answers_file = category_files(folder, category)
    answers: dict[str, Any] = {}
    if answers_file.is_file():
        answers = {row.get("id"): row.get("ground_truth") for row in data.iter_jsonl(answers_file)}
    elif "irrelevance" not in category:
        raise data.DataUnavailable(f"bfcl: missing {answers_file}")
    records = []
    for row in data.iter_jsonl(questions):
        turns = row.get("question") or []
        messages = [m for turn in turns if isinstance(turn, list) for m in turn if isinstance(m, dict)]
        functions = row.get("function") or []
        if not messages or not isinstance(functions, list):
            data.drop(row.get("id"), "without messages or function list")
            continue
        gold = answers.get(row.get("id"), [])
        if "irrelevance" not in category and not gold:
            data.drop(row.get("id"), "without ground truth")
            continue
        records.append(
            {
                "id": str(row.get("id")),
                "category": category,
                "messages": messages,
                "functions": functions,
                "ground_truth": gold,
            }
        )
    return records


HUB_ID = "gorilla-llm/Berkeley-Function-Calling-Leaderboard"
PACKAGE = ("bfcl-eval", "bfcl_eval/data")


def _from_hub(category: str) -> tuple[list[dict], str]:
    stems = _FILE_STEMS.get(category, (category,))
    patterns = [f"{prefix}BFCL_v*_{stem}.json" for stem in stems for prefix in ("", "possible_answer/")]
    folder, revision = data.hub_snapshot(HUB_ID, patterns)
    return read_category(folder, category), revision


def load_category(category: str, **metadata) -> dict:
    """``custom_dataset`` hook: the category's records as a ``{"test": Dataset}``."""
    records, source = data.load_records(
        BENCHMARK,
        metadata,
        from_folder=lambda folder: read_category(folder, category),
        from_hub=lambda: _from_hub(category),
        hub_id=HUB_ID,
        package=PACKAGE,
        label=f"bfcl/{category}",
    )
    return data.as_split(records, provenance=source)


for _category in CATEGORIES:
    globals()[f"load_{_category}"] = partial(load_category, _category)


def score_output(output: str, functions: list[dict], ground_truth: list[dict], category: str,
                 reference_decoder: Callable[[Any], ReferenceDecode] = decode_reference) -> dict:
    """Per-item metrics and verdict of one completion (see the module docstring).

    ``reference_decoder`` is BFCL's decoder for the mode: the prompting decoder by default, the
    tool-call decoder in native function calling (:mod:`lm_eval_acbench.tasks.function_call_native`).
    """
    decoded = reference_decoder(output)
    reference = bfcl_ast.check_item(functions, decoded.calls, ground_truth, category, bfcl_ast.REFERENCE)
    parsed = parse_tool_calls(output)
    fixed = bfcl_ast.check_item(functions, parsed.calls, ground_truth, category, bfcl_ast.FIXED)
    reason = reference.reason
    if decoded.error:
        reason = f"{reason}; BFCL decoder: {decoded.error}" if reason else f"BFCL decoder: {decoded.error}"
    reason_fixed = fixed.reason
    if not parsed.calls and parsed.error:
        reason_fixed = f"{reason_fixed}; {parsed.error}" if reason_fixed else parsed.error
    return {
        "accuracy": float(reference.valid),
        "accuracy_fixed": float(fixed.valid),
        "parse_rate": float(parsed.has_calls),
        "verdict": {
            "valid": reference.valid,
            "valid_fixed": fixed.valid,
            "error_type": reference.error_type,
            "reason": reason,
            "reason_fixed": reason_fixed,
            "calls": _jsonable(decoded.calls),
            "format_fixed": parsed.format,
            "calls_fixed": _jsonable(parsed.calls),
        },
    }


def _jsonable(value: Any) -> Any:
    """The value as the samples log can hold it (see :mod:`lm_eval_acbench.logsafe`)."""
    return log_safe(value)


class FunctionCallTask(RenderedMessagesTask):
    """A generate_until task whose prompt is the item's messages + tools, rendered per sample."""

    reference_decoder = staticmethod(decode_reference)

    def tools(self, doc: dict) -> list:
        return data.doc_json(doc, "functions", [])

    def process_results(self, doc, results):
        rendered = self.rendered(doc)
        scored = score_output(
            thinking.answer(doc, results[0] if results else ""),
            data.doc_json(doc, "functions", []),
            data.doc_json(doc, "ground_truth", []),
            doc.get("category", ""),
            self.reference_decoder,
        )
        # The samples log holds the doc object: the verdict and the render mode travel with it.
        doc["acbench_verdict"] = log_safe(scored.pop("verdict"))
        doc["acbench_render"] = {"mode": rendered.mode, "roles": rendered.roles, "note": rendered.note}
        scored["tools_in_template"] = float(rendered.mode == "template+tools")
        return scored
