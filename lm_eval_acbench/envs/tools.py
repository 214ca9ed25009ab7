"""Tool-Query and Tool-Operation, offline: deterministic simulated tools instead of web APIs.

AgentBoard's versions call live services (weather, movies, academia; to-do lists, sheets) with
API keys. Ours answer from small fixed tables (:mod:`lm_eval_acbench.envs.tool_world`) and keep
their state in memory, so every run sees the same world.

The agent calls a tool with one line, in any of these forms (parsed without ``eval``)::

    get_weather(city="Paris", date="2024-05-01")
    get_weather({"city": "Paris", "date": "2024-05-01"})
    get_weather with Action Input: {"city": "Paris", "date": "2024-05-01"}
    finish(answer="18")

Progress: Tool-Query episodes carry ``checks``, one per annotated subgoal: a tool call that must
have been made with given arguments (``{"call": name, "args": {...}}``) or the final answer
(``{"answer": "..."}``); progress = share of checks met. Tool-Operation episodes carry state
checks (an item done, a cell holding a value, ...); progress = share that hold now.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable

from lm_eval_acbench.envs.base import INVALID_ACTION, Step
from lm_eval_acbench.envs import tool_world as world
from lm_eval_acbench.metrics.progress import subgoal_progress

MAX_TEXT_CHARS = 10_000  # answers and expected answers are compared up to here
MAX_CALL_CHARS = 10_000  # a tool call is one line (the loop passes at most 400 characters)
MAX_EXPECTED_CHARS = 1_000
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _parse_value(text: str, pos: int) -> tuple[Any, int]:
    """One literal at ``pos``: a quoted string, a number, true/false/null or a bare word."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        raise ValueError("missing value")
    quote = text[pos]
    if quote == '"':
        try:  # JSON string rules (escapes such as \u00e9) when the string is valid JSON
            return json.JSONDecoder().raw_decode(text, pos)
        except json.JSONDecodeError:
            pass
    if quote in "\"'":
        out, pos = [], pos + 1
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                out.append(text[pos + 1])
                pos += 2
                continue
            if char == quote:
                return "".join(out), pos + 1
            out.append(char)
            pos += 1
        raise ValueError("unterminated string")
    if quote in "{[":
        decoder = json.JSONDecoder()
        value, end = decoder.raw_decode(text, pos)
        return value, end
    match = _NUMBER.match(text, pos)
    if match and (match.end() == len(text) or text[match.end()] in ",) \t"):
        number = match.group(0)
        return (float(number) if any(c in number for c in ".eE") else int(number)), match.end()
    end = pos
    while end < len(text) and text[end] not in ",)":
        end += 1
    word = text[pos:end].strip()
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true", end
    if lowered in ("null", "none"):
        return None, end
    return word, end


def _parse_kwargs(body: str) -> dict:
    """``key=value, key2="v"`` (or ``key: value``) into a dict; raises ValueError when malformed."""
    args, pos = {}, 0
    while True:
        while pos < len(body) and body[pos] in " \t,":
            pos += 1
        if pos >= len(body):
            return args
        match = _NAME.match(body, pos)
        if not match:
            raise ValueError("expected an argument name")
        key, pos = match.group(1), match.end()
        if pos >= len(body) or body[pos] not in "=:":
            raise ValueError(f"expected '=' after {key}")
        value, pos = _parse_value(body, pos + 1)
        args[key] = value


def parse_tool_call(text: Any) -> tuple[str, dict] | None:
    """``(tool name, arguments)`` from one line of model output, or None when it is no call."""
    if not isinstance(text, str) or len(text) > MAX_CALL_CHARS:
        return None
    text = text.strip().rstrip(";.").strip()
    match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(.*)$", text, re.DOTALL)
    if not match:
        return None
    name, rest = match.group(1), match.group(2).strip()
    rest = re.sub(r"^with\s+action\s+input\s*:\s*", "", rest, flags=re.IGNORECASE)
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1].strip()
    elif rest.startswith("("):
        return None
    if not rest:
        return name, {}
    if rest.startswith("{"):
        try:
            args = json.loads(rest)
        except (ValueError, RecursionError):  # not JSON, an int over the digit limit, too deep
            return None
        return (name, args) if isinstance(args, dict) else None
    try:
        return name, _parse_kwargs(rest)
    except (ValueError, IndexError, RecursionError):
        return None


def normalise(value: Any) -> str:
    """Compare answers and arguments case-, space- and punctuation-insensitively (the first
    :data:`MAX_TEXT_CHARS` characters; a value without a string form compares as "")."""
    try:
        text = (value if isinstance(value, str) else str(value))[:MAX_TEXT_CHARS].strip().lower()
    except ValueError:  # an int over Python's digit limit
        text = ""
    text = re.sub(r"[\s_]+", " ", text)
    return re.sub(r"[^\w .\-]", "", text).strip(" .")


def _args_match(wanted: dict, given: dict) -> bool:
    given = {normalise(k): normalise(v) for k, v in given.items()}
    return all(given.get(normalise(k)) == normalise(v) for k, v in wanted.items())


def answer_matches(expected: Any, given: Any) -> bool:
    """The final answer is right when, normalised, it equals the expected answer or contains it
    as a whole word sequence."""
    expected, given = normalise(expected), normalise(given)
    if not expected:
        return False
    if len(expected) > MAX_EXPECTED_CHARS:  # no data answer is this long: plain comparison
        return given == expected
    return given == expected or re.search(rf"(?<![\w.]){re.escape(expected)}(?![\w]|\.\d)", given) is not None


class ToolEnv:
    """An episode against simulated tools. ``kind`` is "query" or "operation"."""

    def __init__(self, record: dict, kind: str) -> None:
        self.kind = kind
        self.record = record
        self.goal = str(record.get("goal") or "")
        self.checks = list(record.get("checks") or [])
        if not self.checks:
            raise ValueError(f"tool episode {record.get('id')} has no checks")
        names = record.get("tools") or (world.QUERY_TOOLS if kind == "query" else world.OPERATION_TOOLS)
        self.specs = {name: world.TOOL_SPECS[name] for name in names if name in world.TOOL_SPECS}
        self.specs["finish"] = world.TOOL_SPECS["finish"]
        self.state = copy.deepcopy(record.get("initial_state") or world.default_state())
        self.calls: list[tuple[str, dict]] = []
        self.answer: Any = None
        self.tools = [world.as_schema(name, spec) for name, spec in self.specs.items()]
        lines = [f"  {world.signature(name, spec)}: {spec['description']}" for name, spec in self.specs.items()]
        self.instructions = (
            ("You answer questions by calling tools." if kind == "query" else
             "You complete tasks by calling tools that change a to-do list and spreadsheets.")
            + " Each turn, call exactly one tool on one line, like `tool_name(arg=\"value\")`. "
            "When you are done, call finish(answer=\"...\")" + (" with the answer." if kind == "query" else ".")
            + "\nTools:\n" + "\n".join(lines)
        )

    def reset(self) -> str:
        return "You have not called any tool yet."

    def _check(self, check: dict) -> bool:
        if "call" in check:
            return any(name == check["call"] and _args_match(check.get("args") or {}, args) for name, args in self.calls)
        if "answer" in check:
            return self.answer is not None and answer_matches(check["answer"], self.answer)
        return world.state_check(self.state, check)

    def progress(self) -> float:
        return subgoal_progress([self._check(check) for check in self.checks])

    def step(self, action: str) -> Step:
        call = parse_tool_call(action)
        if call is None or call[0] not in self.specs:
            known = ", ".join(self.specs)
            return Step(f"{INVALID_ACTION} Call one of: {known}.", self.progress(), valid=False)
        name, args = call
        if name == "finish":
            self.answer = args.get("answer", next(iter(args.values()), "")) if args else ""
            return Step(f"Finished with answer: {self.answer}", self.progress(), done=True)
        handler: Callable = world.HANDLERS[name]
        try:
            result = handler(self.state, **{str(k): v for k, v in args.items()})
        except world.ToolError as exc:
            return Step(f"Error: {exc}", self.progress(), valid=False)
        except TypeError as exc:
            return Step(f"Error: wrong arguments for {name}: {world.signature(name, self.specs[name])} ({exc})",
                        self.progress(), valid=False)
        self.calls.append((name, args))
        progress = self.progress()
        return Step(json.dumps(result, ensure_ascii=False), progress, done=progress >= 1.0)

    def close(self) -> None:
        pass


def make_query_env(record: dict) -> ToolEnv:
    return ToolEnv(record, "query")


def make_operation_env(record: dict) -> ToolEnv:
    return ToolEnv(record, "operation")
