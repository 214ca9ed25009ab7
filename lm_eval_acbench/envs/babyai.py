"""BabyAI (the grid levels that ship with ``minigrid``) as a text environment, AgentBoard-style.

Each step the agent reads what it sees in its 7x7 egocentric view (objects with colour, and
where they are relative to it: steps forward and left/right), what is right in front of it,
which way it faces and what it carries. Actions: ``turn left``, ``turn right``, ``move
forward``, ``pick up``, ``drop``, ``toggle`` (open, close or unlock a door in front; open a
box); common wordings ("go forward", "open the door", "pickup") are accepted.

Progress is the share of the mission's sub-instructions completed: BabyAI missions are trees of
clauses joined by "and", "then", "after you"; each leaf clause counts once it is verified done
(the whole mission done counts all). Episode records name a ``level`` (gymnasium id) and a
``seed``.
"""

from __future__ import annotations

import re

from lm_eval_acbench.envs.base import INVALID_ACTION, EnvUnavailable, Step
from lm_eval_acbench.metrics.progress import subgoal_progress

ACTIONS = ("turn left", "turn right", "move forward", "pick up", "drop", "toggle")
# minigrid's Actions enum values, in the order above
ACTION_INDEX = {"turn left": 0, "turn right": 1, "move forward": 2, "pick up": 3, "drop": 4, "toggle": 5}
SYNONYMS = [
    (r"^(turn|rotate)\s+(to\s+the\s+)?left\b|^left$", "turn left"),
    (r"^(turn|rotate)\s+(to\s+the\s+)?right\b|^right$", "turn right"),
    (r"^(move|go|walk|step)\s+(forward|ahead|straight)\b|^forward$", "move forward"),
    (r"^(pick\s*up|pickup|grab|take)\b", "pick up"),
    (r"^(drop|put\s+down|release)\b", "drop"),
    (r"^(toggle|open|unlock|close)\b", "toggle"),
]
DIRECTIONS = ("east", "south", "west", "north")


def parse_action(text) -> str | None:
    """The canonical action for the agent's text, or None."""
    if not isinstance(text, str):
        return None
    words = " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())
    for pattern, action in SYNONYMS:
        if re.search(pattern, words):
            return action
    return None


def _require_minigrid():
    try:
        import gymnasium
        import minigrid
    except ImportError as exc:
        raise EnvUnavailable("minigrid is not installed (pip install minigrid)") from exc
    if "BabyAI-GoToObj-v0" not in gymnasium.registry:
        minigrid.register_minigrid_envs()
    return gymnasium


def _where(forward: int, right: int) -> str:
    parts = []
    if forward:
        parts.append(f"{forward} step{'s' if forward != 1 else ''} forward")
    if right:
        side = "right" if right > 0 else "left"
        parts.append(f"{abs(right)} step{'s' if abs(right) != 1 else ''} {side}")
    return " and ".join(parts) or "here"


def describe_view(image, direction: int, carrying) -> str:
    """Text for one egocentric view (``image``: width x height x 3 of object, colour, state)."""
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    seen, front = [], None
    width, height = image.shape[0], image.shape[1]
    me_x, me_y = width // 2, height - 1
    for x in range(width):
        for y in range(height):
            kind = IDX_TO_OBJECT.get(int(image[x, y, 0]), "unseen")
            forward, right = me_y - y, x - me_x
            if (forward, right) == (1, 0):
                front = (kind, int(image[x, y, 1]), int(image[x, y, 2]))
            if kind in ("unseen", "empty", "wall", "floor", "agent") or (forward, right) == (0, 0):
                continue
            colour = IDX_TO_COLOR.get(int(image[x, y, 1]), "")
            state = ""
            if kind == "door":
                state = ("open ", "closed ", "locked ")[int(image[x, y, 2])] if int(image[x, y, 2]) < 3 else ""
            seen.append((forward + abs(right), f"a {state}{colour} {kind} {_where(forward, right)}"))
    lines = []
    if seen:
        lines.append("You see " + ", ".join(text for _, text in sorted(seen)) + ".")
    else:
        lines.append("You see no objects.")
    if front is not None:
        kind, colour, state = front
        if kind == "wall":
            lines.append("A wall is right in front of you.")
        elif kind not in ("empty", "unseen", "floor"):
            lines.append(f"Right in front of you is a {IDX_TO_COLOR.get(colour, '')} {kind}.")
    lines.append(f"You are facing {DIRECTIONS[direction % 4]}.")
    if carrying is not None:
        lines.append(f"You are carrying a {carrying.color} {carrying.type}.")
    else:
        lines.append("You are carrying nothing.")
    return " ".join(lines)


def leaf_status(instr, done: bool) -> list[bool]:
    """Completion of each leaf clause of a BabyAI instruction tree."""
    if hasattr(instr, "instr_a") and hasattr(instr, "instr_b"):
        a_done = done or getattr(instr, "a_done", False) == "success"
        b_done = done or getattr(instr, "b_done", False) == "success"
        return leaf_status(instr.instr_a, a_done) + leaf_status(instr.instr_b, b_done)
    return [bool(done)]


class BabyAIEnv:
    tools: list = []

    def __init__(self, level: str, seed: int) -> None:
        gymnasium = _require_minigrid()
        try:
            self.env = gymnasium.make(level)
        except Exception as exc:  # noqa: BLE001 - unknown level id and friends
            raise ValueError(f"cannot build BabyAI level {level!r}: {exc}") from exc
        self.seed = int(seed)
        self.success = False
        self.obs = None
        self.goal = ""
        self.instructions = (
            "You are an agent in a grid world of rooms with doors, keys, balls and boxes. Each turn, answer "
            "with exactly one action: " + ", ".join(ACTIONS) + ". `pick up`, `drop` and `toggle` act on the "
            "cell right in front of you; `toggle` opens doors (a locked door needs the key of its colour) "
            "and boxes."
        )

    def reset(self) -> str:
        self.obs, _ = self.env.reset(seed=self.seed)
        self.goal = str(self.obs["mission"])
        return self._describe()

    def _describe(self) -> str:
        inner = self.env.unwrapped
        return describe_view(self.obs["image"], int(self.obs["direction"]), inner.carrying)

    def progress(self) -> float:
        return subgoal_progress(leaf_status(self.env.unwrapped.instrs, self.success))

    def step(self, action: str) -> Step:
        name = parse_action(action)
        if name is None:
            return Step(f"{INVALID_ACTION} Answer one of: {', '.join(ACTIONS)}. {self._describe()}",
                        self.progress(), valid=False)
        self.obs, reward, terminated, truncated, _ = self.env.step(ACTION_INDEX[name])
        self.success = self.success or (terminated and reward > 0)
        text = self._describe()
        if self.success:
            text = "You completed the mission. " + text
        elif terminated:
            text = "The mission failed. " + text
        return Step(text, self.progress(), done=bool(terminated or truncated))

    def close(self) -> None:
        self.env.close()


def make_env(record: dict) -> BabyAIEnv:
    return BabyAIEnv(str(record.get("level") or "BabyAI-GoToObj-v0"), int(record.get("seed") or 0))
