"""Progress and success of multi-turn episodes (AgentBoard's measures), as pure functions.

An episode's transcript is a list of step records, each with at least ``progress`` (a float in
[0, 1] after that step) and ``valid`` (whether the environment accepted the action). All
functions here take plain data and are safe on empty or odd input.
"""

from __future__ import annotations

import math
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
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(number):
        return 0.0
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
    ``success_rate`` = 1 if that maximum is 1, ``steps`` = number of steps taken and
    ``invalid_actions`` = number of steps whose action the environment rejected.
    """
    steps = transcript.get("trajectory") or []
    trace = [step.get("progress", 0.0) for step in steps if isinstance(step, Mapping)]
    initial = transcript.get("initial_progress", 0.0)
    return {
        "progress_rate": episode_progress(trace, initial),
        "success_rate": episode_success(trace, initial),
        "steps": float(len(steps)),
        "invalid_actions": float(sum(1 for step in steps if isinstance(step, Mapping) and not step.get("valid", True))),
    }


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean ``sum(values) / n``; 0.0 for no values."""
    values = [float(value) for value in values]
    return sum(values) / len(values) if values else 0.0
