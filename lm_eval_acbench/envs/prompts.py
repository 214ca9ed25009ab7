"""AgentBoard's VanillaAgent prompts: which prompt file each environment reads, and how one
step's prompt is put together from it.

A prompt file (``agentboard/prompts/VanillaAgent/*.json`` in an AgentBoard checkout) holds
``system_msg``, ``instruction`` and ``examples`` (in-context trajectories); the PDDL file holds
one such entry per domain, the ALFWorld file one list of examples per task type. The loader
reads the file of the user's AgentBoard folder into each episode record
(:data:`RECORD_FIELD`); the episode loop then builds each step as AgentBoard's VanillaAgent
does (:func:`agentboard_messages`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from lm_eval_acbench.envs.base import row_info

RECORD_FIELD = "agentboard_prompt"
PROMPT_DIR = Path("agentboard/prompts/VanillaAgent")
PROMPT_FILES = {
    "babyai": "babyai_vanilla_prompt.json",
    "pddl": "pddl_vanilla_prompt.json",
    "scienceworld": "scienceworld_base.json",
    "alfworld": "alfworld_base.json",
    "jericho": "jericho_vanilla_prompt.json",
}
# AgentBoard's eval config: the help commands each environment's prompt names
CHECK_ACTIONS = {"babyai": "check valid actions", "pddl": "check valid actions",
                 "scienceworld": "check valid actions", "alfworld": "check valid actions",
                 "jericho": "check valid actions"}
CHECK_INVENTORY = frozenset({"babyai", "scienceworld", "alfworld", "jericho"})
# ALFWorld's task-type folder prefixes -> the example set AgentBoard shows for them
ALFWORLD_EXAMPLES = {"pick_and_place": "put", "pick_clean_then_place": "clean", "pick_heat_then_place": "heat",
                     "pick_cool_then_place": "cool", "look_at_obj": "examine", "pick_two_obj": "puttwo"}


def read_prompt_file(root: Path, env: str) -> dict | None:
    """The environment's VanillaAgent prompt file under an AgentBoard folder, or None when the
    folder has none. A file that is not a JSON object raises ValueError naming it."""
    name = PROMPT_FILES.get(env)
    if name is None:
        return None
    path = Path(root) / PROMPT_DIR / name
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: not a JSON object")
    return content


def prompt_for_row(content: dict, env: str, row: dict) -> dict | None:
    """The prompt of one row: ``{system_msg, instruction, examples, check_actions,
    check_inventory}``, picking the PDDL domain's entry (``game_name``) or the ALFWorld task
    type's examples (the game folder's prefix). None when the file has nothing for the row."""
    entry = content
    if env == "pddl":
        entry = content.get(str(row.get("game_name") or ""))
        if not isinstance(entry, dict):
            return None
    examples = entry.get("examples", [])
    if env == "alfworld" and isinstance(examples, dict):
        description = str(row_info(row).get("description") or row.get("id") or "")
        task_folder = description.split("/")[-2] if "/" in description else description
        key = next((v for k, v in ALFWORLD_EXAMPLES.items() if task_folder.startswith(k)), None)
        examples = ["".join(examples.get(key) or [])] if key else []
    if isinstance(examples, str):
        examples = [examples]
    if not isinstance(examples, list):
        examples = []
    return {"system_msg": str(entry.get("system_msg") or ""), "instruction": str(entry.get("instruction") or ""),
            "examples": [str(e) for e in examples],
            "check_actions": CHECK_ACTIONS.get(env), "check_inventory": env in CHECK_INVENTORY, "source": "agentboard"}


def agentboard_messages(prompt: dict, goal: str, first_observation: str, history: Sequence[tuple[str, str]],
                        memory: int, system_instruction: str | None = None,
                        instructions: str = "") -> list[dict[str, str]]:
    """One step's chat messages, as AgentBoard's VanillaAgent builds them: system = the file's
    ``system_msg``; user = instruction, "Here are examples:" and each example, the goal, the
    help-command lines, then the last ``2 * memory`` items of the interaction (the first
    observation, then each action and observation, as "Observation: ..." / "Action: ..." lines)
    and a final "Action: " for the model to continue. A prompt without an instruction of its own
    (acbench's, :mod:`envs.own_examples`) uses the environment's ``instructions``."""
    query = str(prompt.get("instruction") or "") or instructions
    examples = prompt.get("examples") or []
    if examples:
        query += "\nHere are examples:\n" + "".join(f"{example}\n" for example in examples)
    query += f"You should perform actions to accomplish the goal: {goal}\n"
    if prompt.get("check_actions"):
        query += ("You should use the following commands for help when your action cannot be understood: "
                  f"{prompt['check_actions']}\n")
    if prompt.get("check_inventory"):
        query += "You should use the following commands for help when your action cannot be understood: inventory\n"
    items = [("Observation", first_observation)]
    for action, observation in history:
        items += [("Action", action), ("Observation", observation)]
    if memory > 0:
        items = items[-2 * memory:]
    user = query + "\n".join(f"{name}: {text}" for name, text in items) + "\nAction: "
    system = str(prompt.get("system_msg") or "")
    if system_instruction:
        system = f"{system_instruction}\n\n{system}" if system else system_instruction
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
