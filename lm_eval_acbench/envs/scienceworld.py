"""ScienceWorld (the ``scienceworld`` package; needs Java) as an episode environment.

Each episode is one task variation (``task_name``, ``variation``, ``simplification``; the
loader reads AgentBoard's ``additional_info.env_name`` / ``var`` into them and plays AgentBoard
rows with AgentBoard's simplifications). Actions are ScienceWorld's own text commands (``look
around``, ``open door to kitchen``, ``focus on ...``); ``check valid actions`` lists the valid
ones; its observation text is passed through, the first one followed by the inventory, as in
AgentBoard.

Progress: for rows with ``subgoals`` (AgentBoard's), AgentBoard's rule: each subgoal is a
regular expression, done once ``re.search`` finds it in an observation; progress is the done
share, success when all are done. ScienceWorld's own 0-100 score mapped to [0, 1] (negative
scores, which mark a failed task, count as 0) is the native progress, reported beside, and
the progress of rows without subgoals (our sample set).

Every live episode holds its own ScienceWorld server (a Java process of a few hundred MB), so
runs over many episodes want ``--limit`` or a machine with memory to match.
"""

from __future__ import annotations

import logging
import os
import shutil

from lm_eval_acbench.envs.base import INVALID_ACTION, EnvUnavailable, Step
from lm_eval_acbench.metrics.progress import compile_subgoal, regex_matches, score_progress, subgoal_progress

UNKNOWN = "No known action matches that input."
CHECK_ACTIONS = "check valid actions"

# py4j logs the expected "gateway is not connected" of every server shutdown at INFO level,
# with a traceback; keep that out of run logs unless the user configured py4j's logger.
if logging.getLogger("py4j").level == logging.NOTSET:
    logging.getLogger("py4j").setLevel(logging.WARNING)


# py4j reads the server's port from the first line the JVM writes to stdout, and the JVM writes
# its own warnings there too: "Cannot use file /tmp/hsperfdata_root/<pid> because it is locked by
# another process" (a recycled pid, seen when many servers start one after another) made the port
# unreadable and the episode fail to start. Without the perf-data file there is no such warning.
NO_PERF_DATA = "-XX:-UsePerfData"


def java_tool_options(current: str | None) -> str:
    """``JAVA_TOOL_OPTIONS`` with :data:`NO_PERF_DATA` added once; the user's options stay."""
    options = (current or "").split()
    return " ".join(options if NO_PERF_DATA in options else [*options, NO_PERF_DATA])


def _require():
    if shutil.which("java") is None:
        raise EnvUnavailable("ScienceWorld needs Java, and no `java` is on PATH (install a JRE 1.8 or newer)")
    try:
        from scienceworld import ScienceWorldEnv
    except ImportError as exc:
        raise EnvUnavailable("scienceworld is not installed (pip install scienceworld)") from exc
    return ScienceWorldEnv


class ScienceWorldEpisode:
    tools: list = []

    def __init__(self, task_name: str, variation: int, simplification: str, step_limit: int = 100,
                 gold_path: bool = False, subgoals: list | None = None, goal: str | None = None) -> None:
        ScienceWorldEnv = _require()
        # the JVM inherits this process's environment (py4j gives it no other)
        os.environ["JAVA_TOOL_OPTIONS"] = java_tool_options(os.environ.get("JAVA_TOOL_OPTIONS"))
        self.env = ScienceWorldEnv("", envStepLimit=step_limit)
        try:
            self.env.load(task_name, int(variation), simplification, generateGoldPath=gold_path)
        except Exception:
            self.env.close()
            raise
        self.score = 0.0
        self.row_goal = goal or ""
        self.goal = ""
        self.subgoals = [compile_subgoal(s) for s in subgoals or [] if isinstance(s, str) and s]
        self.done_subgoals = [False] * len(self.subgoals)
        templates = ", ".join(sorted(self.env.get_possible_actions()))
        self.instructions = (
            "You are an agent in ScienceWorld, a text world of rooms, objects, substances and devices. "
            "Each turn, answer with exactly one command. Commands follow these templates (OBJ, LOC: names of "
            f"things you observed): {templates}."
        )

    def reset(self) -> str:
        observation, info = self.env.reset()
        self.goal = self.row_goal or str(self.env.get_task_description()).strip()
        self.score = float(info.get("score", 0) or 0)
        self.done_subgoals = [False] * len(self.subgoals)
        if self.subgoals:  # AgentBoard shows the inventory with the first observation
            return f"{str(observation).strip()}\n{self.env.inventory()}"
        return str(observation).strip()

    def native_progress(self) -> float:
        return score_progress(self.score, 100.0)

    def progress(self) -> float:
        if self.subgoals:
            return subgoal_progress(self.done_subgoals)
        return self.native_progress()

    def step(self, action: str) -> Step:
        if not action.strip():
            return Step(f"{INVALID_ACTION} {UNKNOWN}", self.progress(), valid=False)
        if action.strip() == CHECK_ACTIONS:
            actions = ", ".join(a for a in self.env.get_possible_actions() if "reset" not in a)
            return Step(f"Choose an action from these valid actions: {actions}, {CHECK_ACTIONS}", self.progress())
        observation, _, done, info = self.env.step(action)
        self.score = float(info.get("score", self.score) or 0)
        observation = str(observation).strip()
        if self.subgoals:
            hits = regex_matches(observation, self.subgoals)
            self.done_subgoals = [a or b for a, b in zip(self.done_subgoals, hits)]
            done = done or all(self.done_subgoals)
        valid = not observation.startswith(UNKNOWN)
        if not valid:
            observation = f"{INVALID_ACTION} {observation}"
        return Step(observation, self.progress(), done=bool(done), valid=valid)

    def close(self) -> None:
        self.env.close()


def make_env(record: dict) -> ScienceWorldEpisode:
    """Build from an episode record: ``task_name``, ``variation``, ``simplification``; rows with
    ``subgoals`` are scored by them and play the row's ``goal``."""
    subgoals = record.get("subgoals") if isinstance(record.get("subgoals"), list) else None
    return ScienceWorldEpisode(str(record["task_name"]), int(record.get("variation") or 0),
                               str(record.get("simplification") or "easy"),
                               step_limit=int(record.get("env_step_limit") or 100), subgoals=subgoals,
                               goal=str(record.get("goal") or "") if subgoals else None)
