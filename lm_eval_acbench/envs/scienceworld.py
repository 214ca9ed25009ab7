"""ScienceWorld (the ``scienceworld`` package; needs Java) as an episode environment.

Each episode is one task variation (``task_name``, ``variation``, ``simplification``). Actions
are ScienceWorld's own text commands (``look around``, ``open door to kitchen``, ``focus on
...``); its observation text is passed through. Progress is ScienceWorld's 0-100 score mapped to
[0, 1] (negative scores, which mark a failed task, count as 0).

Every live episode holds its own ScienceWorld server (a Java process of a few hundred MB), so
runs over many episodes want ``--limit`` or a machine with memory to match.
"""

from __future__ import annotations

import logging
import shutil

from lm_eval_acbench.envs.base import INVALID_ACTION, EnvUnavailable, Step
from lm_eval_acbench.metrics.progress import score_progress

UNKNOWN = "No known action matches that input."

# py4j logs the expected "gateway is not connected" of every server shutdown at INFO level,
# with a traceback; keep that out of run logs unless the user configured py4j's logger.
if logging.getLogger("py4j").level == logging.NOTSET:
    logging.getLogger("py4j").setLevel(logging.WARNING)


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
                 gold_path: bool = False) -> None:
        ScienceWorldEnv = _require()
        self.env = ScienceWorldEnv("", envStepLimit=step_limit)
        try:
            self.env.load(task_name, int(variation), simplification, generateGoldPath=gold_path)
        except Exception:
            self.env.close()
            raise
        self.score = 0.0
        self.goal = ""
        templates = ", ".join(sorted(self.env.get_possible_actions()))
        self.instructions = (
            "You are an agent in ScienceWorld, a text world of rooms, objects, substances and devices. "
            "Each turn, answer with exactly one command. Commands follow these templates (OBJ, LOC: names of "
            f"things you observed): {templates}."
        )

    def reset(self) -> str:
        observation, info = self.env.reset()
        self.goal = str(self.env.get_task_description()).strip()
        self.score = float(info.get("score", 0) or 0)
        return str(observation).strip()

    def progress(self) -> float:
        return score_progress(self.score, 100.0)

    def step(self, action: str) -> Step:
        if not action.strip():
            return Step(f"{INVALID_ACTION} {UNKNOWN}", self.progress(), valid=False)
        observation, _, done, info = self.env.step(action)
        self.score = float(info.get("score", self.score) or 0)
        observation = str(observation).strip()
        valid = not observation.startswith(UNKNOWN)
        if not valid:
            observation = f"{INVALID_ACTION} {observation}"
        return Step(observation, self.progress(), done=bool(done), valid=valid)

    def close(self) -> None:
        self.env.close()


def make_env(record: dict) -> ScienceWorldEpisode:
    return ScienceWorldEpisode(str(record["task_name"]), int(record.get("variation") or 0),
                               str(record.get("simplification") or "easy"))
