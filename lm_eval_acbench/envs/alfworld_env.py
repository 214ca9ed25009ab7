"""ALFWorld: household tasks as TextWorld PDDL games (``game.tw-pddl``), AgentBoard-style.

An episode plays one game file with TextWorld's PDDL engine and alfworld's wrappers
(``AlfredDemangler`` names objects "apple 1", "countertop 2"; ``AlfredInfos``). The first
observation is the room description, the goal the game's "Your task is to: ..." line.
Actions are ALFWorld's commands (``go to countertop 1``, ``take apple 1 from countertop 1``,
``clean apple 1 with sinkbasin 1``...); a trailing full stop is dropped. ``check valid actions``
(these exact words, as AgentBoard's ALFWorld reads them) lists the admissible commands, ``look``
repeats the last location observation, and the game's "Nothing happens." counts as an invalid
action.

Progress (AgentBoard): the record's ``subgoals`` are regular expressions searched in each
processed observation; ``progress = matched / (len(subgoals) + 1)``, and 1.0 once the game is
won (:func:`lm_eval_acbench.metrics.progress.alfworld_progress`).

Game files come from ALFWorld's data (``alfworld-download``), found by
:func:`resolve_game_file`. acbench's sample rows instead carry a small PDDL problem we wrote
(``pddl_problem`` and the task text ``task``); :func:`sample_game` combines it with the domain
and grammar that ship inside the ``alfworld`` package into a game file in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from lm_eval_acbench.envs.base import INVALID_ACTION, EnvUnavailable, Step, row_info
from lm_eval_acbench.metrics.progress import alfworld_progress, compile_subgoal, regex_matches

DATA_ENV = "ALFWORLD_DATA"
# ALFWorld's splits; AgentBoard evaluates eval_out_of_distribution = valid_unseen, so it is searched first
SPLITS = ("valid_unseen", "valid_seen", "valid_train", "train")
CHECK_ACTIONS = "check valid actions"
NOTHING = "Nothing happens."
_ARRIVE_AT_LOC = re.compile(r"^You arrive at loc \d+\. ")


def alfworld_data_dir(metadata: dict | None = None) -> Path:
    """ALFWorld's data folder: ``--metadata alfworld_data``, ``$ALFWORLD_DATA``, else alfworld's
    own default ``~/.cache/alfworld``."""
    raw = (metadata or {}).get("alfworld_data") or os.environ.get(DATA_ENV)
    return Path(str(raw)).expanduser() if raw else Path.home() / ".cache" / "alfworld"


def row_description(row: dict) -> str:
    """AgentBoard's game id: ``additional_info.description`` = "<task folder>/<trial folder>"."""
    return str(row_info(row).get("description") or "")


def resolve_game_file(row: dict, folder: Path | None,
                      metadata: dict | None = None) -> tuple[str | None, str | None]:
    """``(game_file, None)`` when the row's game is found, else ``(None, reason)``.

    A row's ``game_file`` (absolute, or relative to the JSONL's folder) wins; otherwise
    ``<data>/json_2.1.1/<split>/<description>/game.tw-pddl`` for the first split that has it
    (:data:`SPLITS`, then any other), with ``<data>`` from :func:`alfworld_data_dir`. When the
    ``json_2.1.1`` folder is missing the reason is one line shared by every row."""
    if row.get("game_file"):
        path = Path(str(row["game_file"])).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        return str(path), None
    root = alfworld_data_dir(metadata) / "json_2.1.1"
    if not root.is_dir():
        return None, (f"no ALFWorld game files: {root} does not exist (run `alfworld-download`, or set "
                      f"{DATA_ENV} or --metadata '{{\"alfworld_data\": ...}}' to the folder that holds "
                      "json_2.1.1)")
    description = row_description(row)
    if not description or ".." in Path(description).parts:
        return None, f"ALFWorld row {row.get('id')} has no additional_info.description naming its game"
    splits = list(SPLITS) + sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in SPLITS)
    for split in splits:
        candidate = root / split / description / "game.tw-pddl"
        if candidate.is_file():
            return str(candidate), None
    return None, f"no ALFWorld game {description}/game.tw-pddl under {root}"


def _require():
    try:
        import textworld
        with _keep_data_env():
            from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    except ImportError as exc:
        raise EnvUnavailable("alfworld is not installed (pip install alfworld)") from exc
    try:
        import fast_downward  # noqa: F401 - TextWorld's PDDL engine (textworld[pddl])
    except ImportError as exc:
        raise EnvUnavailable("ALFWorld needs TextWorld's PDDL engine (pip install 'textworld[pddl]')") \
            from exc
    return textworld, AlfredDemangler, AlfredInfos


@contextmanager
def _keep_data_env():
    """Importing alfworld (``alfworld.info``) sets ``$ALFWORLD_DATA`` to its default
    ``~/.cache/alfworld`` when it is unset. Left so, every later lookup in this process would
    read that default before the data folder (:func:`alfworld_data_dir`): in a study, whose
    cells share one process, the second ALFWorld cell found no games. Put the variable back."""
    saved = os.environ.get(DATA_ENV)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = saved


@contextmanager
def _keep_argv():
    """fast_downward's PDDL translator overwrites ``sys.argv`` while it parses; put it back."""
    saved = list(sys.argv)
    try:
        yield
    finally:
        sys.argv[:] = saved


def sample_game(problem: str, task: str, cache: Path | None = None) -> Path:
    """A ``game.tw-pddl`` for a PDDL problem of the ALFRED domain, built once into the cache.

    The file holds alfworld's shipped domain (``alfred.pddl``), its grammar (``alfred.twl2``)
    with "UNKNOWN GOAL" replaced by ``task``, and ``problem``, as alfworld's own game files do."""
    _require()
    with _keep_data_env():
        from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH, __version__

    from lm_eval_acbench.paths import cache_dir

    digest = hashlib.sha1(json.dumps([problem, task, __version__]).encode()).hexdigest()[:12]
    folder = cache or cache_dir() / "games" / "alfworld"
    target = folder / f"{digest}.tw-pddl"
    if target.is_file():
        return target
    game = {
        "pddl_domain": Path(ALFRED_PDDL_PATH).read_text(),
        "grammar": Path(ALFRED_TWL2_PATH).read_text().replace("UNKNOWN GOAL", task.strip().rstrip(".")),
        "pddl_problem": problem,
        "solvable": True,
    }
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".build-", suffix=".tw-pddl",
                                     delete=False) as handle:
        json.dump(game, handle)
    os.replace(handle.name, target)
    return target


def split_intro(text: str) -> tuple[str, str]:
    """(room description, task) from a game's first text: after the banner (up to the first
    blank line), the first line is the room and the "Your task is to: ..." line the task."""
    body = text.split("\n\n", 1)[1] if "\n\n" in text else text
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    task = next((line for line in lines if line.startswith("Your task is to:")), "")
    room = next((line for line in lines if line != task), "")
    return room, task[len("Your task is to:"):].strip() if task else ""


def shorten(observation: str) -> str:
    """Older ALFWorld grammars start arrivals with "You arrive at loc 12. "; keep what follows."""
    return _ARRIVE_AT_LOC.sub("", observation, count=1)


class AlfWorldEpisode:
    tools: list = []

    def __init__(self, game_file: str | Path, subgoals: list[str] | None = None) -> None:
        textworld, AlfredDemangler, AlfredInfos = _require()
        path = Path(game_file)
        if not path.is_file():
            raise EnvUnavailable(f"ALFWorld game file {path} not found (run `alfworld-download`, "
                                 f"or set {DATA_ENV})")
        infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        with _keep_argv():
            self.env = textworld.start(str(path), request_infos=infos,
                                       wrappers=[AlfredDemangler(shuffle=False), AlfredInfos])
        self.patterns = [compile_subgoal(p) for p in (subgoals or []) if isinstance(p, str) and p]
        self.matched = [False] * len(self.patterns)
        self.won = False
        self.goal = ""
        self.location = ""
        self.admissible: list[str] = []
        grammar = ""
        try:
            grammar = json.loads(path.read_text()).get("grammar", "")
        except (OSError, ValueError, AttributeError):
            pass
        put = "put OBJ in/on RECEP" if "in/on {r}" in grammar else "move OBJ to RECEP"
        self.instructions = (
            "You are in a household (ALFWorld). Each turn, answer with exactly one command, naming things as "
            "the game does (e.g. apple 1, countertop 2): go to RECEP, open RECEP, close RECEP, "
            f"take OBJ from RECEP, {put}, examine RECEP, examine OBJ, use OBJ, heat OBJ with RECEP, "
            f"clean OBJ with RECEP, cool OBJ with RECEP, slice OBJ with OBJ, inventory, look. "
            f"`{CHECK_ACTIONS}` lists the commands possible now."
        )

    def reset(self) -> str:
        with _keep_argv():
            state = self.env.reset()
        room, task = split_intro(str(state.feedback or ""))
        self.goal = task
        self.location = room
        self.matched = [False] * len(self.patterns)
        self.won = bool(state.get("won"))
        self.admissible = list(state.get("admissible_commands") or [])
        return room

    def progress(self) -> float:
        return alfworld_progress(self.matched, self.won)

    def step(self, action: str) -> Step:
        command = " ".join(action.split()).rstrip(".").strip()
        # AgentBoard's ALFWorld takes only the exact words as its special action (its BabyAI, PDDL
        # and Jericho take looser wordings); anything else goes to the game
        if action.strip().rstrip(".").strip() == CHECK_ACTIONS:
            extra = [a for a in ("look", CHECK_ACTIONS) if a not in self.admissible]
            listing = ", ".join(self.admissible + extra)
            return Step(f"Choose an action from these valid actions: {listing}", self.progress())
        if command == "look":
            return Step(self.location, self.progress())
        if not command:
            return Step(f"{INVALID_ACTION} {NOTHING}", self.progress(), valid=False)
        state, _, done = self.env.step(command)
        observation = shorten(str(state.feedback or "").strip())
        valid = not observation.startswith(NOTHING)
        if valid and (command.startswith("go to") or command.startswith("open")):
            self.location = observation
        self.admissible = list(state.get("admissible_commands") or self.admissible)
        self.won = self.won or bool(state.get("won"))
        self.matched = [a or b for a, b in zip(self.matched, regex_matches(observation, self.patterns))]
        if not valid:
            return Step(f"{INVALID_ACTION} {observation}", self.progress(), done=bool(done), valid=False)
        return Step(observation, self.progress(), done=bool(done) or self.won)

    def close(self) -> None:
        env, self.env = getattr(self, "env", None), None
        if env is None:
            return
        env.close()
        lib = getattr(getattr(env, "unwrapped", None), "downward_lib", None)
        if lib is not None:
            # Frees the planner's task. Unloading the library itself (fast_downward.close_lib)
            # makes the interpreter crash at exit, so its private copy stays mapped.
            lib.cleanup()


def make_env(record: dict) -> AlfWorldEpisode:
    if record.get("unavailable"):
        raise EnvUnavailable(str(record["unavailable"]))
    _require()
    if record.get("pddl_problem"):
        task = str(record.get("task") or record.get("goal") or "")
        game_file = sample_game(str(record["pddl_problem"]), task)
    else:  # rows from the task loader carry an absolute game_file; others are looked up by description
        found, reason = resolve_game_file(record, None)
        if found is None:
            raise EnvUnavailable(reason)
        game_file = Path(found)
    return AlfWorldEpisode(game_file, [s for s in record.get("subgoals") or [] if isinstance(s, str)])
