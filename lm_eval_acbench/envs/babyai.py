"""BabyAI (the grid levels that ship with ``minigrid``) as a text environment, as AgentBoard plays it.

Observations are AgentBoard's text rendering of the 7x7 egocentric view: every visible door,
key, ball, box, goal and lava cell, nearest first, numbered per name ("There is a red ball 1
right in front of you 2 steps away."), then the nearest wall or box straight ahead and what the
agent carries. Played at the level and seed of an AgentBoard row, the first observation is the
row's ``additional_info.init_obs`` word for word (tested on AgentBoard's rows).

Actions are AgentBoard's high-level ones, recomputed after every step from what is in view:
``turn left``, ``turn right``, ``move forward``, ``go to <obj> <n>``, ``pickup <obj> <n>``
(also written ``pick up``, as AgentBoard's own prompt writes it), ``drop``, ``go through <door>
<n>``, ``toggle and go through <door> <n>``, ``toggle`` and ``check available actions``. A
high-level action is a shortest path of primitive moves (breadth-first over position and
heading, walls, boxes, balls, keys and lava blocking); the moves run one by one and stop at the
first that changes nothing, as in AgentBoard. Shortest paths that tie may be walked in another
order than AgentBoard's.

Progress: for AgentBoard rows, AgentBoard's rule on the row's annotated ``subgoals``
(:func:`lm_eval_acbench.metrics.progress.babyai_subgoal_matches`; each step consumes at most one
subgoal); the mission's own clauses (BabyAI missions are trees of clauses joined by "and",
"then", "after you"; each leaf counts once verified done) are reported beside as the native
progress, and are the progress of rows without subgoals (our sample set).
"""

from __future__ import annotations

import re
from collections import deque

from lm_eval_acbench.envs.base import EnvUnavailable, Step, row_info
from lm_eval_acbench.metrics.progress import babyai_subgoal_matches, subgoal_progress

# AgentBoard's seed rule: the rows of one level are its episodes with seeds 1234, 1235, ...
AGENTBOARD_SEED = 1234
AGENTBOARD_EPISODES_PER_LEVEL = 4
CHECK_ACTIONS = "check available actions"
UNKNOWN_ACTION = "The action is not recognized. Please check valid actions."
PRIMITIVE = {"turn left": 0, "turn right": 1, "move forward": 2, "pickup": 3, "drop": 4, "toggle": 5}
ACTIONS = ("turn left", "turn right", "move forward", "go to <obj> <n>", "pickup <obj> <n>", "drop",
           "go through <door> <n>", "toggle and go through <door> <n>", "toggle", CHECK_ACTIONS)
OBJECT_NAMES = {4: "door", 5: "key", 6: "ball", 7: "box", 8: "goal", 9: "lava", 2: "wall"}
BLOCKING = ("wall", "box", "lava", "ball", "key")
DOOR_STATES = ("open", "closed", "locked")
DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
MAX_ACTION_CHARS = 200
# minigrid 3 refuses "BabyAI-GoToObjS6-v0", which AgentBoard plays: its registration had a bug
# that built a room of size 4 (hence -v1). The same game under its current id; the rows'
# init_obs confirm it.
RETIRED_LEVELS = {"BabyAI-GoToObjS6-v0": "BabyAI-GoToObjS4-v0"}


def normalise_action(text) -> str:
    """The action as AgentBoard compares it: lower case, stripped, inner whitespace collapsed;
    "pick up" is read as AgentBoard's "pickup". Non-strings give ""."""
    if not isinstance(text, str):
        return ""
    text = " ".join(text[:MAX_ACTION_CHARS].lower().split())
    return re.sub(r"^pick up\b", "pickup", text)


def _require_minigrid():
    try:
        import gymnasium
        import minigrid
    except ImportError as exc:
        raise EnvUnavailable("minigrid is not installed (pip install minigrid)") from exc
    if "BabyAI-GoToObj-v0" not in gymnasium.registry:
        minigrid.register_minigrid_envs()
    return gymnasium


def agentboard_goal(mission: str) -> str:
    """AgentBoard's goal text: the mission with "then" and "after you" read as "and"."""
    return mission.replace("then", "and").replace("after you", "and")


def _dot(a, b) -> int:
    return int(a[0] * b[0] + a[1] * b[1])


def view_cells(inner, image):
    """(name, absolute position, Manhattan distance) of every door, key, ball, box, goal, lava
    and wall cell in the agent's view, in AgentBoard's scan order (far row first, left to right)."""
    from minigrid.core.constants import IDX_TO_COLOR

    size = inner.agent_view_size
    pos = tuple(int(v) for v in inner.agent_pos)
    forward, right = DIR_VEC[inner.agent_dir], DIR_VEC[(inner.agent_dir + 1) % 4]
    top_left = (pos[0] + forward[0] * (size - 1) - right[0] * (size // 2),
                pos[1] + forward[1] * (size - 1) - right[1] * (size // 2))
    cells, in_view = [], set()
    for vis_j in range(size):
        for vis_i in range(size):
            cell = (top_left[0] - forward[0] * vis_j + right[0] * vis_i,
                    top_left[1] - forward[1] * vis_j + right[1] * vis_i)
            if cell[0] < 0 or cell[1] < 0:
                continue
            in_view.add(cell)
            distance = abs(pos[0] - cell[0]) + abs(pos[1] - cell[1])
            kind = OBJECT_NAMES.get(int(image[vis_i, vis_j, 0]))
            if distance == 0 or kind is None:
                continue
            colour = IDX_TO_COLOR.get(int(image[vis_i, vis_j, 1]), "")
            state = int(image[vis_i, vis_j, 2])
            name = f"{colour} {DOOR_STATES[state] if state < 3 else ''} door" if kind == "door" else f"{colour} {kind}"
            cells.append({"name": name, "pos": cell, "dis": distance})
    return cells, in_view


def describe(inner, image, direction: int) -> tuple[str, list, list, set]:
    """AgentBoard's text for one view; also the visible objects, the barriers straight ahead
    and the cells in view."""
    pos = tuple(int(v) for v in inner.agent_pos)
    ahead, side = DIR_VEC[direction], DIR_VEC[(direction + 1) % 4]
    cells, in_view = view_cells(inner, image)
    barriers = []
    for cell in cells:
        kind = cell["name"].split()[-1]
        rel = (cell["pos"][0] - pos[0], cell["pos"][1] - pos[1])
        if kind in ("box", "wall") and ahead[0] * rel[1] - ahead[1] * rel[0] == 0:
            barriers.append({"name": kind, "pos": cell["pos"], "dis": _dot(ahead, rel)})
    cells.sort(key=lambda c: c["dis"])
    if cells:
        text, counts = "In front of you in this room, you can see several objects: ", {}
        for cell in cells:
            if "wall" in cell["name"]:
                continue
            rel = (cell["pos"][0] - pos[0], cell["pos"][1] - pos[1])
            front, right = _dot(ahead, rel), _dot(side, rel)
            if right == 0:
                where = f"right in front of you {front} steps away. "
            elif right > 0:
                where = f"{front} steps in front of you and {right} steps to your right. "
            else:
                where = f"{front} steps in front of you and {-right} steps to your left. "
            counts[cell["name"]] = counts.get(cell["name"], 0) + 1
            text += f"There is a {cell['name']} {counts[cell['name']]} {where} "
    else:
        text = "You cannot see any objects within sight."
    text += "The room has walls around you. "
    if barriers:
        barriers.sort(key=lambda b: b["dis"])
        text += f"You are facing a {barriers[0]['name']} {barriers[0]['dis']} steps away. "
    carrying = inner.carrying
    text += (f"You are carrying a {carrying.color} {carrying.type}." if carrying is not None
             else "You are not carrying anything.")
    return text, cells, barriers, in_view


def find_path(start, heading: int, target, blocked: set, in_view: set, arrive: bool) -> list[int] | None:
    """Shortest list of primitive moves (0 left, 1 right, 2 forward) from (start, heading) until
    the agent stands on ``target`` (``arrive``) or faces it from the next cell; None if there is
    no path inside the view."""
    def reached(pos, dir_):
        if arrive:
            return pos == target
        vec = DIR_VEC[dir_]
        return (target[0] - pos[0], target[1] - pos[1]) == vec

    queue, seen = deque([(start, heading, [])]), {(start, heading)}
    while queue:
        pos, dir_, path = queue.popleft()
        if reached(pos, dir_):
            return path
        for move in (2, 0, 1):
            if move == 2:
                nxt, ndir = (pos[0] + DIR_VEC[dir_][0], pos[1] + DIR_VEC[dir_][1]), dir_
                if nxt not in in_view or nxt in blocked:
                    continue
            else:
                nxt, ndir = pos, (dir_ - 1) % 4 if move == 0 else (dir_ + 1) % 4
            if (nxt, ndir) not in seen:
                seen.add((nxt, ndir))
                queue.append((nxt, ndir, path + [move]))
    return None


def action_space(inner, cells, barriers, in_view) -> tuple[dict[str, list[int]], dict[str, str]]:
    """AgentBoard's high-level actions for the current view (name -> primitive moves) and the
    messages for the ones that cannot be taken now."""
    pos = tuple(int(v) for v in inner.agent_pos)
    heading = inner.agent_dir
    blocked = {c["pos"] for c in cells if any(k in c["name"] for k in BLOCKING)}
    carrying = inner.carrying
    actions: dict[str, list[int]] = {"turn left": [0], "turn right": [1]}
    errors: dict[str, str] = {}
    if not barriers or min(b["dis"] for b in barriers) > 1:
        actions["move forward"] = [2]
    else:
        errors["move forward"] = "There is a barrier in front of you, you can't move forward."

    def path_to(cell, arrive=False):
        return find_path(pos, heading, cell["pos"], blocked - {cell["pos"]} if arrive else blocked, in_view, arrive)

    def offer(label, path, then=()):
        if path is None:
            errors[label] = f"You cannot {label}, as there is no path leading to it."
        else:
            actions[label] = path + list(then)

    counts: dict[str, int] = {}
    for cell in cells:  # numbered in view order, as in the observation
        if "wall" in cell["name"]:
            continue
        counts[cell["name"]] = counts.get(cell["name"], 0) + 1
        cell["n"] = counts[cell["name"]]
    objects = [c for c in cells if "wall" not in c["name"]]
    if carrying is None:
        for cell in objects:
            if "door" in cell["name"] or "goal" in cell["name"]:
                continue
            offer(f"pickup {cell['name']} {cell['n']}", path_to(cell), [3])
        errors["drop"] = "You cannot drop the object, as you are not carrying anything."
    else:
        front = (pos[0] + DIR_VEC[heading][0], pos[1] + DIR_VEC[heading][1])
        if front in blocked:
            errors["drop"] = "You cannot drop the object, as there is already an object in front of you."
        else:
            actions["drop"] = [4]
    for cell in objects:
        name, n = cell["name"], cell.get("n", 1)
        if "door" not in name:
            continue
        if "open door" in name:
            offer(f"go through {name} {n}", path_to(cell, arrive=True))
            continue
        label = f"toggle and go through {name} {n}"
        if "locked door" in name and (carrying is None or carrying.type != "key"):
            errors[label] = f"You cannot toggle and go through {name} {n}, as you are not carrying a key."
            continue
        if "locked door" in name and carrying.color != name.split()[0]:
            errors[label] = (f"You cannot toggle and go through {name} {n}, as the color of the key you are "
                             "carrying does not match the color of door.")
            continue
        path = path_to(cell)
        offer(label, path, [5, 2])
        if path == []:
            actions["toggle"] = [5]
        if "closed door" in name:
            errors[f"go through {name} {n}"] = f"You cannot go through {name} {n}, as it is closed. You should toggle it first."
    for cell in objects:
        if "goal" in cell["name"]:
            offer("go to goal", path_to(cell, arrive=True))
        else:
            offer(f"go to {cell['name']} {cell['n']}", path_to(cell))
    actions[CHECK_ACTIONS] = []
    return actions, errors


def leaf_status(instr, done: bool) -> list[bool]:
    """Completion of each leaf clause of a BabyAI instruction tree."""
    if hasattr(instr, "instr_a") and hasattr(instr, "instr_b"):
        a_done = done or getattr(instr, "a_done", False) == "success"
        b_done = done or getattr(instr, "b_done", False) == "success"
        return leaf_status(instr.instr_a, a_done) + leaf_status(instr.instr_b, b_done)
    return [bool(done)]


class BabyAIEnv:
    tools: list = []

    def __init__(self, level: str, seed: int, subgoals: list | None = None) -> None:
        gymnasium = _require_minigrid()
        self.level, self.seed = level, int(seed)
        try:
            self.env = gymnasium.make(RETIRED_LEVELS.get(level, level))
        except Exception as exc:  # noqa: BLE001 - unknown level id and friends
            raise ValueError(f"cannot build BabyAI level {level!r}: {type(exc).__name__}: {exc}") from exc
        self.subgoals = [str(s) for s in subgoals or [] if isinstance(s, str)]
        self.goal = ""
        self.instructions = (
            "You are placed in a room and you need to accomplish the given goal with actions. Each turn, answer "
            "with exactly one action: " + "; ".join(ACTIONS) + ". <obj> <n> and <door> <n> name an object as the "
            "observation numbers it (e.g. `go to red ball 1`). `toggle` opens the closed or locked door right in "
            "front of you; a locked door needs a key of its colour."
        )

    # ---- state -------------------------------------------------------------------------
    def _render(self) -> str:
        inner = self.env.unwrapped
        text, cells, barriers, in_view = describe(inner, self.obs["image"], int(self.obs["direction"]))
        self.actions, self.errors = action_space(inner, cells, barriers, in_view)
        return text

    def reset(self) -> str:
        self.obs, _ = self.env.reset(seed=self.seed)
        self.mission = str(self.obs["mission"])
        self.goal = agentboard_goal(self.mission)
        self.success = False
        self.remaining = list(self.subgoals)
        self.points = 0
        return self._render()

    def native_progress(self) -> float:
        return subgoal_progress(leaf_status(self.env.unwrapped.instrs, self.success))

    def progress(self) -> float:
        if not self.subgoals:
            return self.native_progress()
        return self.points / len(self.subgoals)

    def _score(self, observation: str) -> None:
        """AgentBoard's rule: the first remaining subgoal the observation matches is consumed."""
        for index, hit in enumerate(babyai_subgoal_matches(observation, self.remaining)):
            if hit:
                self.points += 1
                del self.remaining[index]
                return

    # ---- acting ------------------------------------------------------------------------
    def step(self, action: str) -> Step:
        name = normalise_action(action)
        if "check" in name:
            return Step("You can take the following actions: " + ", ".join(self.actions), self.progress())
        if not name:
            return Step("No change in state.", self.progress(), valid=False)
        if name not in self.actions:
            return Step(self.errors.get(name, UNKNOWN_ACTION), self.progress(), valid=False)
        moves = self.actions[name]
        terminated = False
        for move in moves:
            before = self.obs["image"]
            self.obs, reward, terminated, _, _ = self.env.step(move)
            self.success = self.success or (terminated and reward > 0)
            if (self.obs["image"] == before).all():
                break
            if terminated:
                break
        text = self._render()
        if terminated:
            text += "\n The task is completed."
        if self.subgoals:
            self._score(text)
        progress = self.progress()
        done = bool(terminated) and (progress > 0.5 or not self.subgoals)
        if progress >= 1.0 and not terminated:
            text += "\n The task is completed."
            done = True
        return Step(text, progress, done=done)

    def close(self) -> None:
        self.env.close()


def agentboard_level_and_seed(record: dict) -> tuple[str, int]:
    """Level and seed of an episode record: ``level``/``seed`` (our rows), else AgentBoard's
    rule: the level is ``additional_info.subtask`` and the seed ``1234 + id % 4`` (AgentBoard
    plays 4 seeds per level, from 1234, in the order of its rows)."""
    level = record.get("level") or row_info(record).get("subtask")
    if not isinstance(level, str) or not level:
        raise ValueError("BabyAI row names no level (no 'level' and no additional_info.subtask)")
    if record.get("seed") is not None:
        return level, int(record["seed"])
    try:
        row_id = int(record.get("id"))
    except (TypeError, ValueError):
        raise ValueError(f"BabyAI row id {record.get('id')!r} is not a number, so AgentBoard's seed rule "
                         "does not apply; give the row a 'seed'") from None
    return level, AGENTBOARD_SEED + row_id % AGENTBOARD_EPISODES_PER_LEVEL


def make_env(record: dict) -> BabyAIEnv:
    level, seed = agentboard_level_and_seed(record)
    subgoals = record.get("subgoals") if isinstance(record.get("subgoals"), list) else None
    return BabyAIEnv(level, seed, subgoals)
