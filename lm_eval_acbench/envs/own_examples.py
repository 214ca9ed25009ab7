"""acbench's own one-shot example trajectories, for environments played without AgentBoard's
prompt files (our sample rows, or a data folder without ``agentboard/prompts``).

They have the shape of AgentBoard's VanillaAgent examples (a goal, then "Observation:" /
"Action:" lines) but are ours: each was played in our own environment, on an episode that is
none of the sample rows, by a reference plan (PDDL: breadth-first search; BabyAI: the mission's
own steps; Jericho: the TextWorld game's walkthrough; ALFWorld: TextWorld's planner; ScienceWorld:
its gold path), and written down with the observations the environment answered.
``own_examples.json`` keeps, per environment, the episode record, the actions and the text;
:func:`play_example` plays them again, and the tests check that this gives the same text, so
every example stays a legal trajectory of the environment it teaches.
``scripts/make_own_examples.py`` writes the file.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

EXAMPLES_FILE = Path(__file__).with_name("own_examples.json")
SOURCE = "acbench"


@functools.lru_cache(maxsize=1)
def examples() -> dict:
    return json.loads(EXAMPLES_FILE.read_text())


def play_example(record: dict, actions: list[str]) -> tuple[str, list]:
    """(example text, the steps) of ``actions`` played in the environment ``record`` names."""
    from lm_eval_acbench.envs.base import make_env

    env = make_env(record)
    try:
        lines = [f"Observation: {env.reset()}"]
        lines.insert(0, f"Goal: {env.goal}")
        steps = []
        for action in actions:
            step = env.step(action)
            steps.append(step)
            lines += [f"Action: {action}", f"Observation: {step.observation}"]
    finally:
        env.close()
    return "\n".join(lines), steps


def own_prompt(env: str, row: dict) -> dict | None:
    """Our prompt for one row, in the shape of :func:`envs.prompts.prompt_for_row`: our system
    message, no instruction of its own (the environment's instructions are used) and one example
    of the environment (PDDL: of the row's domain, only for our own domains); None when we have
    none for it (then the loop's plain prompt is used)."""
    from lm_eval_acbench.envs import prompts

    entry = examples().get(env)
    if not isinstance(entry, dict):
        return None
    if env == "pddl" and row.get("domain"):
        return None  # a domain of the row's own (AgentBoard's pddlgym files): our domains' actions may differ
    key = str(row.get("game_name") or "") if env == "pddl" else "default"
    example = entry.get("examples", {}).get(key)
    if example is None or str(row.get("id")) in example.get("not_for", []):
        return None  # never the row's own episode as its example
    return {"system_msg": str(entry.get("system_msg") or ""), "instruction": "", "examples": [example["text"]],
            "check_actions": prompts.CHECK_ACTIONS.get(env), "check_inventory": env in prompts.CHECK_INVENTORY,
            "source": SOURCE}
