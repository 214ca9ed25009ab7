"""Progress and success of multi-turn episodes (AgentBoard's measures), as pure functions.

An episode's transcript is a list of step records, each with at least ``progress`` (a float in
[0, 1] after that step) and ``valid`` (whether the environment accepted the action). All
functions here take plain data and are safe on empty or odd input.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence


def match_progress(goal_true: Sequence[bool]) -> float:
    """Share of goal conditions that hold ("match" progress, used for PDDL).

    ``progress = sum(goal_true) / len(goal_true)``; an empty goal counts as reached (1.0).
    """
    goal_true = list(goal_true)
    if not goal_true:
        return 1.0
    return sum(1 for value in goal_true if value) / len(goal_true)


def subgoal_progress(reached: Sequence[bool]) -> float:
    """Share of annotated subgoals reached: ``sum(reached) / len(reached)`` (0.0 when none)."""
    reached = list(reached)
    if not reached:
        return 0.0
    return sum(1 for value in reached if value) / len(reached)


def score_progress(score: float, top: float = 100.0) -> float:
    """An environment's own score mapped to [0, 1]: ``clip(score / top, 0, 1)`` (NaN -> 0)."""
    try:
        value = float(score) / float(top)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def _clean(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if not math.isfinite(number):
        return 0.0  # NaN, or an infinity no environment reports: not a reached goal
    return min(1.0, max(0.0, number))


def episode_progress(trace: Iterable[float], initial: float = 0.0) -> float:
    """Progress rate of one episode: the highest progress reached, ``max(initial, *trace)``."""
    return max([_clean(initial), *(_clean(value) for value in trace)])


def episode_success(trace: Iterable[float], initial: float = 0.0) -> float:
    """Success of one episode: 1.0 when the goal was fully reached at some step, else 0.0."""
    return 1.0 if episode_progress(trace, initial) >= 1.0 - 1e-9 else 0.0


def score_transcript(transcript: Mapping) -> dict[str, float]:
    """Re-score an episode transcript (as the samples log stores it: per-step records under ``trajectory``).

    Returns ``progress_rate`` = max progress over the steps (and the initial state),
    ``success_rate`` = 1 if that maximum is 1, ``steps`` = number of steps taken,
    ``invalid_actions`` = number of steps whose action the environment rejected,
    ``env_error_rate`` = 1 when the environment failed to start or broke (``error`` set), and,
    when the steps carry the environment's own measure, ``native_progress_rate`` = its maximum.
    """
    if not isinstance(transcript, Mapping):
        transcript = {}
    steps = transcript.get("trajectory") or []
    if not isinstance(steps, list):
        steps = []  # a malformed trajectory: no steps
    records = [step for step in steps if type(step) is dict or isinstance(step, Mapping)]  # dict: the fast path
    progress = episode_progress((step.get("progress", 0.0) for step in records),
                                transcript.get("initial_progress", 0.0))
    out = {
        "progress_rate": progress,
        "success_rate": 1.0 if progress >= 1.0 - 1e-9 else 0.0,  # = episode_success
        "steps": float(len(steps)),
        "invalid_actions": float(sum(1 for step in records if not step.get("valid", True))),
        "env_error_rate": 1.0 if transcript.get("error") else 0.0,
    }
    native = [step["native_progress"] for step in records if "native_progress" in step]
    if native:
        out["native_progress_rate"] = episode_progress(native, transcript.get("initial_native_progress", 0.0))
    return out


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean ``sum(values) / n``; 0.0 for no values."""
    values = [float(value) for value in values]
    return sum(values) / len(values) if values else 0.0


# ---- observation patterns (Jericho, ALFWorld) ------------------------------------------------
MAX_PATTERN_CHARS = 300  # AgentBoard's longest subgoal pattern has 96 characters; longer ones match literally
MAX_OBSERVATION_CHARS = 100_000  # observations and patterns are read up to here
_NOT_PATTERN_CHAR = re.compile(r"[^a-zA-Z0-9\s]")
_WHITESPACE = re.compile(r"\s+")


def pattern_text(text) -> str:
    """Text as observation patterns are compared: every character that is not an ASCII letter,
    digit or whitespace removed, whitespace runs collapsed to one space, ends stripped.
    Case is kept. Non-strings give ""; only the first :data:`MAX_OBSERVATION_CHARS` characters
    are read."""
    if not isinstance(text, str):
        return ""
    return _WHITESPACE.sub(" ", _NOT_PATTERN_CHAR.sub("", text[:MAX_OBSERVATION_CHARS])).strip()


def consume_pattern(observation, remaining: Sequence[str]) -> int | None:
    """Index of the first pattern in ``remaining`` that occurs in ``observation`` (both compared
    as :func:`pattern_text`), or None. Patterns that are empty after cleaning match nothing.

    Jericho's rule (AgentBoard): each step consumes at most one pattern, the first remaining
    one found, so ``progress = consumed / len(patterns)``."""
    seen = pattern_text(observation)
    if not seen:
        return None
    for index, pattern in enumerate(remaining):
        wanted = pattern_text(pattern)
        if wanted and wanted in seen:
            return index
    return None


def pattern_progress_trace(observations: Iterable, patterns: Sequence[str]) -> list[float]:
    """Progress after each observation under :func:`consume_pattern`:
    ``consumed_so_far / n`` with ``n`` the number of patterns that are non-empty after cleaning
    (0.0 throughout when ``n = 0``). Never decreases, stays in [0, 1]."""
    remaining = [p for p in patterns if pattern_text(p)]
    total = len(remaining)
    trace = []
    for observation in observations:
        hit = consume_pattern(observation, remaining)
        if hit is not None:
            remaining.pop(hit)
        trace.append((total - len(remaining)) / total if total else 0.0)
    return trace


SEARCH_TIMEOUT_S = 0.05  # one subgoal search; a pattern that backtracks longer does not match


def compile_subgoal(pattern):
    """A subgoal regular expression, compiled (``re`` syntax, through the ``regex`` module so that
    a search can be stopped); text that is not a valid expression, or is longer than
    :data:`MAX_PATTERN_CHARS`, is matched literally (:class:`LiteralPattern`: the ``regex``
    module's search on a long, nearly matching literal is superlinear and outside its timeout);
    None for non-strings and empty patterns."""
    import regex

    if not isinstance(pattern, str) or not pattern:
        return None
    if len(pattern) <= MAX_PATTERN_CHARS:
        try:
            re.compile(pattern)  # what AgentBoard accepts as an expression
            return regex.compile(pattern, regex.VERSION0)
        except (re.error, regex.error, OverflowError, RecursionError, ValueError):
            pass  # e.g. "{9999999999}" repeats, nesting deeper than the compiler's recursion
    return LiteralPattern(pattern)


class LiteralPattern:
    """A subgoal matched as plain text (``str.find``), with the compiled patterns' ``search``."""

    def __init__(self, text: str) -> None:
        self.pattern = text

    def search(self, text: str, timeout: float | None = None) -> bool:
        return text.find(self.pattern) >= 0


def regex_matches(observation, patterns: Sequence) -> list[bool]:
    """For each subgoal pattern (text or compiled by :func:`compile_subgoal`), whether it is
    found in ``observation`` (its first :data:`MAX_OBSERVATION_CHARS` characters). A search
    that takes longer than :data:`SEARCH_TIMEOUT_S` (catastrophic backtracking) counts as not
    found. Never raises; non-strings match nothing."""
    if not isinstance(observation, str):
        return [False] * len(patterns)
    observation = observation[:MAX_OBSERVATION_CHARS]
    out = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            pattern = pattern.pattern
        compiled = compile_subgoal(pattern) if isinstance(pattern, str) else (pattern if hasattr(pattern, "search") else None)
        try:
            out.append(bool(compiled is not None and compiled.search(observation, timeout=SEARCH_TIMEOUT_S)))
        except (TimeoutError, RecursionError):
            out.append(False)
    return out


def alfworld_progress(matched: Sequence[bool], won: bool = False) -> float:
    """ALFWorld's progress (AgentBoard): 1.0 once the game is won, else
    ``sum(matched) / (len(matched) + 1)`` -- the extra slot in the denominator is the goal
    itself, so matching every annotated subgoal without winning stays below 1."""
    if won:
        return 1.0
    matched = list(matched)
    return sum(1 for value in matched if value) / (len(matched) + 1)


def regex_progress_trace(observations: Iterable, patterns: Sequence[str],
                         won: Iterable[bool] = ()) -> list[float]:
    """Progress after each observation: a subgoal counts from the first observation it matches
    (:func:`regex_matches`), combined by :func:`alfworld_progress` with ``won`` (per step, False
    when shorter; winning is kept). Never decreases, stays in [0, 1]."""
    compiled = [compile_subgoal(p) for p in patterns]
    matched = [False] * len(compiled)
    won_flags = list(won)
    trace, has_won = [], False
    for step, observation in enumerate(observations):
        matched = [a or b for a, b in zip(matched, regex_matches(observation, compiled))]
        has_won = has_won or (step < len(won_flags) and bool(won_flags[step]))
        trace.append(alfworld_progress(matched, has_won))
    return trace


# ---- AgentBoard's BabyAI subgoals --------------------------------------------------------------
MAX_OBSERVATION_CHARS = 20_000


def babyai_subgoal_hit(observation, pattern) -> bool:
    """AgentBoard's BabyAI rule for one subgoal: the pattern, split at ``**`` (or ``*`` when it
    has no ``**``), each piece stripped of dots, matches when some sentence of the observation
    (the text split at ".") contains every piece. Pieces keep their inner spaces. Non-strings
    match nothing; the observation is cut to :data:`MAX_OBSERVATION_CHARS`."""
    if not isinstance(observation, str) or not isinstance(pattern, str):
        return False
    pattern = pattern.strip()
    pieces = [piece.strip(".") for piece in pattern.split("**" if "**" in pattern else "*")]
    return any(all(piece in sentence for piece in pieces)
               for sentence in observation[:MAX_OBSERVATION_CHARS].split("."))


def babyai_subgoal_matches(observation, patterns: Sequence) -> list[bool]:
    """For each pattern, :func:`babyai_subgoal_hit`. AgentBoard consumes the first matching
    remaining subgoal per step, so ``progress = consumed / len(subgoals)``."""
    return [babyai_subgoal_hit(observation, pattern) for pattern in patterns]
