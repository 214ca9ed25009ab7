"""Fuzz harness: hostile model outputs and data rows, and every parser and scoring hook they reach.

Three parts, used by ``tests/test_fuzz.py`` (a quick profile) and ``bench/fuzz_parsers.py``
(100,000 inputs per target):

* :func:`hostile_inputs` -- a seeded generator of model-style and pathological inputs (the
  shapes of issue #20: lone surrogates, NUL, 1 MB strings, nesting 10,000 deep, thousands of
  ``Node:`` lines, ``((((`` and digit runs, mixes of ``<tool_call>``, fences, ``<think>``,
  ``[TOOL_CALLS]``, Python calls with ``**kwargs``, lambdas and ``__import__``, 3,600-digit hex
  integers, T-Eval's ``{'':'','args':{():3}}``, LongGenBench's ``"Answer_1: x answer is (B "``
  repeated, repeated ``Thought:x\\nAction:y\\n``, runs of ``*``, 32k-word texts, subgoal
  patterns such as ``{9999999999}``, malformed trajectories, non-strings).
* :func:`model_outputs` -- the same material as hypothesis strategies (fragment mixes, any text,
  any JSON-ish value, and the seeded shapes drawn by seed so that hypothesis can shrink them).
* :func:`targets` -- one :class:`Target` per function that reads model output or a data row,
  and per ``process_results`` and filter hook of every acbench task, each as a callable of one
  hostile value. :func:`check` runs one and states the contract: no exception, finite float
  metrics, and a samples-log record that lm-eval's own encoder writes.

WorfBench and T-Eval's plan/reason similarity needs sentence embeddings; the targets pass the
scorers' encoder argument :func:`hashed_vectors` (unit vectors of character-trigram hashes), so the
parsers and scorers run at fuzz speed. The embedding model itself is not under test here.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "lm_eval_acbench" / "samples"

# --- material ---------------------------------------------------------------------------------

FRAGMENTS = (
    "<tool_call>", "</tool_call>", "```", "```json\n", "```python\n", "<think>", "</think>",
    "[TOOL_CALLS]", "<|python_tag|>", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<|im_end|>",
    '{"name": "get_weather", "arguments": {"city": "Paris"}}', '{"name": "f", "arguments": "{\\"a\\": 1}"}',
    "f(a=1, b='x')", "[f(a=1), g.h(b=2)]", "f(**kwargs)", "f(*args)", "f(x=lambda: 0)",
    "__import__('os').system('touch /tmp/acbench_fuzz_pwned')", "open('/tmp/acbench_fuzz_pwned', 'w')",
    "f(a=0x" + "f" * 40 + ")", "f(a=2**10)", "f(a=10**10**10)", "f(a=1e999)", "f(a=float('nan'))",
    "{'':'','args':{():3}}", "{'thought': 'x', 'name': 'a.b', 'args': {'k': 1}}",
    "Node:\n1: Open the door\n2: Walk in\nEdge: (START,1) (1,2) (2,END)", "1. step", "(1,2)", "(START,1)",
    "Thought: I should call.\nAction: get_weather\nAction Input: {\"city\": \"Paris\"}\n",
    "<thought_start>x<thought_end><action_start>a.b<action_end><args_start>{}<args_end>",
    "Answer_1: The answer is 42.", "Answer_2: x answer is (B)", "answer is (", "Paragraph 3", "段落2",
    "Action: go north", "** action **:", "> - ", "check valid actions", "pick up", "finish(answer=\"19\")",
    "get_weather(city=\"Paris\", date=\"2024-05-01\")", "get_weather with Action Input: {\"city\": 1}",
    "NaN", "Infinity", "-Infinity", "1e309", "\x00", "\ud800", "\udfff", "\ud83d\ude00", "\u202e", "\ufeff",
    "\r\n", "\n", "\t", " ", ":", ",", ";", "(", ")", "[", "]", "{", "}", "'", '"', "\\", "*", "#", "`",
)

NON_STRINGS: tuple[Any, ...] = (
    None, 0, -1, 1.5, float("nan"), float("inf"), True, b"bytes \xff", bytearray(b"\x00"), [], {},
    ["a", 1, None], {"a": [1, {"b": None}]}, ("tuple",), {1, 2}, object(), 10**5000, complex(1, 2),
    np.float32("nan"), np.int64(3), np.array([1.0, float("nan")]), Ellipsis, type,
)


def _nested(rng: random.Random, depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + rng.choice(["1", "", "'x'", '"k": 1']) + close * rng.choice([depth, depth // 2, 0])


def _json_deep(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


SHAPES: dict[str, Callable[[random.Random], Any]] = {
    "lone surrogates and NUL": lambda r: "".join(r.choice(["\ud800", "\udc00", "\x00", "a", "é", "\u2028"])
                                                 for _ in range(r.randint(1, 2000))),
    "1 MB string": lambda r: r.choice(["a", "x y ", "Node ", "1: ", "(", "{\"", "\\"]) * (1_000_000 // 2),
    "brackets 10,000 deep": lambda r: _nested(r, 10_000, *r.choice([("[", "]"), ("{", "}"), ("(", ")")])),
    "JSON 10,000 deep": lambda r: _json_deep(10_000),
    "python call nested 10,000 deep": lambda r: "f(a=" + "[" * 10_000 + "]" * 10_000 + ")",
    "thousands of Node lines": lambda r: "Node:\n" + "".join(f"{i}: do thing {i % 7}\n" for i in range(1, r.randint(2000, 6000)))
                                         + "Edges: " + " ".join(f"({i},{i + 1})" for i in range(1, 3000)),
    "repeated node texts": lambda r: "Node:\n" + "".join(f"{i}: same\n" for i in range(1, 400))
                                     + " ".join(f"({i},{j})" for i in range(1, 60) for j in range(i + 1, 60)),
    "(((( runs": lambda r: "(" * r.randint(1000, 200_000),
    "digit runs": lambda r: "".join(r.choice("0123456789") for _ in range(r.randint(1000, 100_000))),
    "digits with separators": lambda r: ("1" * 5000 + r.choice([":", ".", ": ", ")"])) * 20,
    "hex int 3,600 digits": lambda r: "f(a=0x" + "f" * 3600 + ")",
    "decimal int 5,000 digits": lambda r: '{"name": "f", "arguments": {"a": ' + "9" * 5000 + "}}",
    "float overflow": lambda r: '[{"name": "f", "arguments": {"a": 1e999, "b": NaN}}]',
    "teval tuple key": lambda r: "{'':'','args':{():3}}",
    "teval literal oddities": lambda r: r.choice(["{'args': {1: 2}, 'name': b'x'}", "{'thought': {1, 2}, 'name': 1j}",
                                                  "{'args': '{\"a\": NaN}', 'name': 'a.b'}", "[{'name': 3, 'args': ()}]"]),
    "Answer_1 ... answer is (B repeated": lambda r: "Answer_1: x answer is (B " * r.randint(100, 2000),
    "Answer markers without answers": lambda r: "".join(f"Answer_{r.randint(0, 10**12)}:" for _ in range(5000)),
    "Thought/Action repeated": lambda r: "Thought:x\nAction:y\n" * r.randint(100, 3000),
    "template markers repeated": lambda r: "<thought_start>x<thought_end><action_start>" * 2000,
    "runs of *": lambda r: "*" * r.randint(1000, 100_000) + r.choice(["", "action:", "\n"]),
    "32k words": lambda r: " ".join(r.choice(["the", "cat", "sat", "on", "mat", "dog"]) for _ in range(32_000)),
    "tool_call mix": lambda r: "".join(r.choice(FRAGMENTS[:30]) for _ in range(r.randint(50, 3000))),
    "many tool_call blocks": lambda r: '<tool_call>{"name": "f", "arguments": {}}</tool_call>' * 5000,
    "think unclosed": lambda r: "<think>" + "x" * 100_000,
    "fences": lambda r: "```" * r.randint(100, 5000),
    "kwargs/lambda/import": lambda r: r.choice(["f(**{'a': 1})", "[f(a=lambda x: x)]", "__import__('os').remove('x')",
                                                 "f(a=(yield))", "f(a=[i for i in range(10**9)])", "f(a=1)(b=2)",
                                                 "f(a=b.c.d(e=1))", "f(a='x' * 10**9)", "f(a=9**9**9)"]),
    "subgoal regex": lambda r: r.choice(["a{9999999999}", "(a" * 200 + ")" * 200, "(" * 5000 + ")" * 5000,
                                         "(a+)+$", "(x+x+)+y", "[", "a**", "(?P<n>", "\\", "(?<=a+)b",
                                         "(?:a|a)*b", "a{1,99999}" * 30, ".*" * 1000]),
    "malformed trajectory": lambda r: r.choice([
        {"trajectory": "not a list"}, {"trajectory": [1, "x", None]}, {"trajectory": [{"progress": "nan"}]},
        {"trajectory": [{"progress": float("inf"), "valid": "no"}], "initial_progress": [1]},
        {"trajectory": None, "initial_progress": {"a": 1}}, {"trajectory": {"progress": 1}},
        {"trajectory": [{"progress": 10**400}]}, {"trajectory": [[{"progress": 1}]] * 10_000}, "trajectory", []]),
    "deep JSON transcript": lambda r: '{"trajectory": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "huge JSON transcript": lambda r: json.dumps({"trajectory": [{"progress": 0.5, "valid": True}] * 100_000}),
    "non-string": lambda r: r.choice(NON_STRINGS),
}

# Shapes that build large values: drawn with probability LARGE_SHARE (about 200 of 100,000 inputs,
# LARGE_VARIANTS of each, built once) so that 100,000 inputs per target stay affordable; the
# other medium-sized shapes are drawn 13% of the time.
_LARGE = {"1 MB string", "brackets 10,000 deep", "JSON 10,000 deep", "python call nested 10,000 deep",
          "thousands of Node lines", "(((( runs", "digit runs", "32k words", "runs of *", "think unclosed",
          "many tool_call blocks", "huge JSON transcript", "Thought/Action repeated",
          "Answer_1 ... answer is (B repeated", "Answer markers without answers", "deep JSON transcript",
          "tool_call mix", "fences", "template markers repeated", "digits with separators", "repeated node texts"}


LARGE_VARIANTS = 4
LARGE_SHARE = 0.002


@functools.lru_cache(maxsize=None)
def _large(name: str, variant: int) -> Any:
    """A large shape, built once per (name, variant): building them is slower than using them."""
    return SHAPES[name](random.Random(variant))


def random_text(rng: random.Random, length: int) -> str:
    """Random code points from the whole range, surrogates and controls included."""
    pools = [(0, 0x7F), (0x80, 0x7FF), (0xD800, 0xDFFF), (0x800, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(length):
        low, high = rng.choice(pools)
        out.append(chr(rng.randint(low, high)))
    return "".join(out)


def fragment_mix(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(FRAGMENTS) if rng.random() < 0.8 else random_text(rng, rng.randint(1, 8))
                   for _ in range(pieces))


def shape(name: str, seed: int) -> Any:
    """The seeded shape ``name`` (a key of :data:`SHAPES`)."""
    return SHAPES[name](random.Random(seed))


def hostile_input(rng: random.Random) -> tuple[str, Any]:
    """One input and the name of its kind."""
    roll = rng.random()
    if roll < LARGE_SHARE:
        name = rng.choice(sorted(_LARGE))
        return name, _large(name, rng.randrange(LARGE_VARIANTS))
    if roll < 0.15:
        name = rng.choice(sorted(set(SHAPES) - _LARGE))
        return name, SHAPES[name](rng)
    if roll < 0.55:
        return "fragment mix", fragment_mix(rng, rng.randint(1, 40))
    if roll < 0.85:
        return "random text", random_text(rng, rng.randint(0, 200))
    if roll < 0.95:
        return "ascii text", "".join(rng.choice("abc (){}[]:,.'\"\n*0123456789_=") for _ in range(rng.randint(0, 300)))
    return "non-string", rng.choice(NON_STRINGS)


def hostile_inputs(n: int, seed: int = 0) -> Iterator[tuple[str, Any]]:
    """``n`` inputs from a generator seeded with ``seed`` (the same sequence on every run)."""
    rng = random.Random(seed)
    for _ in range(n):
        yield hostile_input(rng)


def model_outputs():
    """Hypothesis strategy: model-style outputs, any text, odd values and the seeded shapes."""
    from hypothesis import strategies as st

    mixes = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=30).map("".join)
    shaped = st.builds(shape, st.sampled_from(sorted(SHAPES)), st.integers(0, 2**16))
    odd = st.one_of(st.sampled_from(NON_STRINGS), st.none(), st.integers(), st.floats(),
                    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=3))
    return st.one_of(mixes, st.text(), shaped, odd)


# --- the contract -----------------------------------------------------------------------------


class ContractBroken(AssertionError):
    """A target returned something it must not (a non-finite metric, an unloggable record)."""


def samples_log_line(record: Any) -> bytes:
    """The samples-log line lm-eval writes for ``record``: its own encoder, UTF-8, and the doc hash."""
    from lm_eval.utils import handle_non_serializable, hash_string

    text = json.dumps(record, default=handle_non_serializable, ensure_ascii=False)
    hash_string(json.dumps(record, indent=2, default=handle_non_serializable, ensure_ascii=False))
    return text.encode("utf-8")


def check_metrics(metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise ContractBroken(f"metrics are a {type(metrics).__name__}, not a dict")
    for key, value in metrics.items():
        number = value.get("value") if isinstance(value, dict) else value  # T-Eval's per-format items
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ContractBroken(f"metric {key!r} is {value!r}, not a finite number")


def check(target: "Target", value: Any) -> Any:
    """Run ``target`` on ``value`` and enforce the contract; returns the target's metrics."""
    metrics, logged = target.call(value)
    if metrics is not None:
        check_metrics(metrics)
    if target.logged:
        samples_log_line({"doc": logged, "metrics": metrics})
    return metrics


# --- targets ----------------------------------------------------------------------------------


@dataclass
class Target:
    """One function under fuzz: ``call(value) -> (metrics or None, what goes into the samples log)``."""

    name: str
    reads: str  # "model output" | "data row"
    call: Callable[[Any], tuple[Any, Any]]
    logged: bool = False  # what it returns goes into lm-eval's samples log (docs, filter output)


def hashed_vectors(texts) -> np.ndarray:
    """Unit vectors of character-trigram counts hashed into 64 bins: a fast, deterministic encoder."""
    rows = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        codes = np.frombuffer(str(text)[:2000].encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        if len(codes) >= 3:
            rows[i] = np.bincount((codes[:-2] * 1_000_003 + codes[1:-1] * 10_007 + codes[2:]) % 64, minlength=64)
        norm = np.linalg.norm(rows[i])
        rows[i] = rows[i] / norm if norm else np.eye(64, dtype=np.float32)[0]
    return rows


def _jsonl_first(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return json.loads(handle.readline())


def _load_tasks(names: list[str]) -> dict:
    """lm-eval task objects for our task names (only our YAML folder is indexed: much faster)."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from lm_eval_acbench import paths

    return get_task_dict(names, TaskManager(include_defaults=False, include_path=str(paths.task_dir())))


_TASK_NAMES = ["acbench_function_call_simple", "acbench_function_call_parallel_multiple",
               "acbench_function_call_irrelevance", "acbench_function_call_native_simple",
               "acbench_function_call_native_parallel_multiple", "acbench_teval_instruct", "acbench_teval_review",
               "acbench_teval_retrieve", "acbench_teval_understand"]


def _rotating(docs: list[dict]) -> Callable[[], dict]:
    state = {"i": 0}

    def next_doc() -> dict:
        state["i"] += 1
        return copy.deepcopy(docs[state["i"] % len(docs)])

    return next_doc


def _hook_on_docs(next_doc: Callable[[], dict], hook: Callable[[dict, list], Any]) -> Callable[[Any], tuple[Any, Any]]:
    """A target call: ``hook(doc, [value])`` on the next doc; the doc is what gets logged."""

    def call(value):
        doc = next_doc()
        return hook(doc, [value]), doc

    return call


def _task_target(name: str, task) -> Target:
    next_doc = _rotating([dict(d) for d in task.test_docs()])
    return Target(f"{name}.process_results", "model output", _hook_on_docs(next_doc, task.process_results), logged=True)


def targets(select: str | None = None, with_tasks: bool = True) -> list[Target]:
    """Every target (or those whose name contains one of the comma-separated parts of
    ``select``), set up with our sample data;
    ``with_tasks=False`` leaves out the Python task classes (loading them takes seconds)."""
    import lm_eval.evaluator  # noqa: F401  (start-up hook: the episode loop is in place)
    import networkx  # noqa: F401  (the scorers import these on first use: not an input's cost)
    import regex  # noqa: F401
    import scipy.optimize  # noqa: F401
    from lm_eval_acbench import data
    from lm_eval_acbench.envs import babyai, jericho_env, pddl_env, tools
    from lm_eval_acbench.episodes import extract_action, tool_action
    from lm_eval_acbench.metrics import bfcl_ast, longgenbench as lgb_scoring, needle, progress, teval_scores as ts
    from lm_eval_acbench.metrics import longcontext_longbench as lb_scoring, workflow as wf
    from lm_eval_acbench.metrics.tool_calls import parse_tool_calls
    from lm_eval_acbench.tasks import longbench, longgenbench, niah, realworld, workflow

    out: list[Target] = []

    wanted_names = select.split(",") if select else None

    def selected(name: str) -> bool:
        return wanted_names is None or any(part in name for part in wanted_names)

    def add(name: str, reads: str, call: Callable[[Any], tuple[Any, Any]], logged: bool = False) -> None:
        if selected(name):
            out.append(Target(name, reads, call, logged))

    # function calling
    def parsed(value):
        parse_tool_calls(value)
        return None, None

    add("tool_calls.parse_tool_calls", "model output", parsed)
    from lm_eval_acbench import thinking
    from lm_eval_acbench.metrics.bfcl_decode import decode_reference

    add("bfcl_decode.decode_reference", "model output", lambda v: (None, decode_reference(v)))
    add("thinking.strip_thinking + answer", "model output",
        lambda v: (None, [thinking.strip_thinking(v), thinking.answer({}, v)]))
    simple = _jsonl_first(SAMPLES / "bfcl" / "BFCL_v4_simple_python.json")
    simple_gold = _jsonl_first(SAMPLES / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json")["ground_truth"]

    gold_calls = [{name: {arg: (allowed[0] if isinstance(allowed, list) and allowed else allowed)
                          for arg, allowed in args.items()}} for call in simple_gold for name, args in call.items()]

    def bfcl_row(value):
        verdicts = [bfcl_ast.check_item(value, gold_calls, simple_gold, "simple"),
                    bfcl_ast.check_item(simple["function"], gold_calls, value, "simple"),
                    bfcl_ast.check_item(simple["function"], gold_calls, value, "parallel", bfcl_ast.FIXED)]
        return None, [v.as_dict() for v in verdicts]

    add("bfcl_ast.check_item(functions/ground truth)", "data row", bfcl_row)

    # T-Eval: plan and reason with hashed cosines; the four other dimensions through the real task
    def teval_plan(value):
        plans = [ts.drop_finish(ts.parse_plan_json(value)), ts.drop_finish(ts.parse_plan_str(value, ["a.b", "FinishAction", "x"]))]
        gold = ts.normalise_plan([{"id": 0, "name": "a.b", "args": "{}"}, {"id": 1, "name": "c.d", "args": "{'k': 1}"}])
        scores = []
        for pred in plans:
            if pred:
                names_p, names_g = hashed_vectors([a["name"] for a in pred]), hashed_vectors([a["name"] for a in gold])
                args_p, args_g = hashed_vectors([a["args"] for a in pred]), hashed_vectors([a["args"] for a in gold])
                scores.append(ts.plan_scores(names_p @ names_g.T, args_p @ args_g.T))
        return {"f1": max([s["f1"] for s in scores], default=0.0)}, None

    add("teval_scores.plan (parse + score)", "model output", teval_plan)

    def teval_reason(value):
        pred = ts.parse_rru_json(value)
        text = ts.clean_response(value)
        vectors = hashed_vectors([pred["thought"] if pred else text, "the gold thought"])
        return {"score": ts.thought_score(vectors[0] @ vectors[1])}, None

    add("teval_scores.reason (parse + score)", "model output", teval_reason)

    teval_dims = _rotating([{"dimension": d, "response_format": f} for d, f in (
        ("understand", "json"), ("understand", "str"), ("retrieve", "str"), ("retrieve", "json"),
        ("review", "str"), ("instruct", "json"), ("instruct", "str"))])

    def teval_gold(value):
        from lm_eval_acbench.tasks import teval

        doc = dict(teval_dims(), ground_truth=value, template=value, meta_data=value)
        scored = teval.score_doc(doc, "{'name': 'a.b', 'args': {'k': 1}, 'thought': 'x'}")
        return None, teval._jsonable(dict(scored["detail"], score=scored["score"], parsed=scored["parsed"]))

    add("teval.score_doc(ground truth/template)", "data row", teval_gold, logged=True)

    # Workflow: the filter's scorer (one batch, hashed encoder) and process_results
    wf_records = json.loads((SAMPLES / "worfbench" / "wikihow" / "graph_eval.json").read_text())
    wf_gold = wf_records[-1]["conversations"][2]["content"]

    def workflow_score(value):
        scores = wf.score_batch([workflow._response_text(value)], [wf_gold], hashed_vectors)
        metrics = workflow.process_results({}, [dict(scores[0])])
        return metrics, scores

    add("workflow.score_batch + process_results", "model output", workflow_score, logged=True)

    def workflow_gold(value):
        scores = wf.score_batch([wf_gold], [value], hashed_vectors)
        return workflow.process_results({}, [dict(scores[0])]), scores

    add("workflow.score_batch(gold)", "data row", workflow_gold, logged=True)
    add("workflow.parse_reference + parse_lenient", "model output",
        lambda v: (None, [wf.parse_reference(v) is not None, len(wf.parse_lenient(v).nodes)]))

    # LongBench: all 21 data sets in turn
    lb_docs = []
    for dataset in longbench.DATASETS:
        path = SAMPLES / "longbench" / f"{dataset}.jsonl"
        row = _jsonl_first(path) if path.is_file() else {"answers": ["gold"], "all_classes": None}
        lb_docs.append({"dataset": dataset, "answers": json.dumps([str(a) for a in row.get("answers") or ["gold"]]),
                        "all_classes": json.dumps([str(c) for c in row.get("all_classes") or []])})
    next_lb = _rotating(lb_docs)

    add("longbench.process_results", "model output", _hook_on_docs(next_lb, longbench.process_results), logged=True)

    def longbench_golds(value):
        doc = next_lb()
        metric = longbench.DATASETS[doc["dataset"]][0]
        return {"score": lb_scoring.best_over_golds(doc["dataset"], metric, "Paragraph 3 answer", value, value)}, doc

    add("longcontext_longbench.best_over_golds(golds)", "data row", longbench_golds)

    # LongGenBench
    lgb_docs = [dict(r) for subset in ("gsm8k", "mmlu") for r in longgenbench.load_subset(subset, {"data_source": "sample"})[:2]]
    for doc in lgb_docs:
        doc["golds"] = json.dumps(doc["golds"])
        doc["questions"] = json.dumps(doc["questions"])
    next_lgb = _rotating(lgb_docs)

    add("longgenbench.process_results", "model output", _hook_on_docs(next_lgb, longgenbench.process_results),
        logged=True)

    def longgenbench_golds(value):
        kind = "number" if next_lgb()["subset"] == "gsm8k" else "letter"
        aligned = lgb_scoring.align("Answer_1: The answer is 3. Answer_2: the answer is (B)", value, kind)
        return {"acc": aligned.accuracy, "zip": lgb_scoring.zip_accuracy("Answer_1: answer is 3", value, kind)}, aligned.__dict__

    add("longgenbench.align + zip_accuracy(golds)", "data row", longgenbench_golds)

    # NIAH
    def niah_results(value):
        doc = {"context_length": 1000, "depth_percent": 50, "needle": needle.NEEDLE}
        return niah.process_results(doc, [value]), doc

    add("niah.process_results", "model output", niah_results, logged=True)

    # Real world: the transcript the loop returns, and the progress rules over data rows
    def realworld_results(value):
        # The loop's answer is a transcript around the model's outputs; an answer that is not a
        # transcript stops the run with one line by design (the loop was bypassed).
        doc = {"env": "pddl", "id": "0"}
        answer = value if isinstance(value, str) and value.startswith('{"trajectory"') else _transcript_json(value)
        try:
            return realworld.process_results(doc, [answer]), doc
        except RuntimeError as exc:
            if "not an episode transcript" not in str(exc) and "longer than" not in str(exc):
                raise
            return None, doc

    add("realworld.process_results", "model output", realworld_results, logged=True)
    add("progress.score_transcript", "data row", lambda v: (progress.score_transcript(v), None))

    def subgoals(value):
        patterns = value if isinstance(value, list) else [value]
        observations = ["You open the fridge. You see an apple.", value, "a" * 30 + "!"]
        return None, [progress.regex_progress_trace(observations, patterns, [False]),
                      progress.pattern_progress_trace(observations, patterns)]

    add("progress.regex/pattern_progress_trace(subgoals)", "data row", subgoals)

    # Actions the episode loop extracts and the environments parse
    add("episodes.extract_action", "model output", lambda v: (None, extract_action(v)))
    add("episodes.tool_action", "model output", lambda v: (None, tool_action(v)))
    add("babyai.normalise_action", "model output", lambda v: (None, babyai.normalise_action(extract_action(v) or v)))
    add("jericho cut_action / clean_observation", "model output",
        lambda v: (None, [jericho_env.cut_action(v), jericho_env.clean_observation(v), jericho_env.is_check_actions(v)]))
    arity = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2, "move": 3}
    add("pddl_env.parse_action", "model output", lambda v: (None, pddl_env.parse_action(v, arity)))
    tool_record = _jsonl_first(SAMPLES / "agentboard" / "data" / "tool-query" / "test.jsonl")

    def tool_step(value):
        env = tools.make_query_env(copy.deepcopy(tool_record))
        step = env.step(extract_action(value) if isinstance(value, str) and "\n" in value else value)
        return {"progress": step.progress}, step.observation

    add("tools.ToolEnv.step", "model output", tool_step)
    add("tools.parse_tool_call", "model output", lambda v: (None, tools.parse_tool_call(v)))
    add("tools.answer_matches(expected)", "data row",
        lambda v: (None, [tools.answer_matches(v, "19 degrees"), tools.answer_matches("19", v)]))
    add("data.doc_json", "data row", lambda v: (None, data.doc_json({"k": v}, "k")))

    # The Python task classes, loaded once through lm-eval's TaskManager (our sample data)
    wanted = [n for n in _TASK_NAMES if with_tasks and selected(f"{n}.process_results")]
    if wanted:
        for name, task in sorted(_load_tasks(wanted).items()):
            out.append(_task_target(name, task))
    return out


def _transcript_json(value: Any) -> str:
    """A non-string value as the loop would hand it over: a JSON transcript around it."""
    if isinstance(value, dict):
        body = value
    else:
        body = {"trajectory": value}
    try:
        return json.dumps(body, default=repr)
    except (TypeError, ValueError, RecursionError):
        return "{}"
