"""Jericho: interactive-fiction games (Z-machine files) through jericho's ``FrotzEnv``, AgentBoard-style.

An episode plays one game file. Actions are the game's own commands (``open mailbox``,
``go north``); each is cut at its first ``,`` or ``.`` and to 20 words, since frotz's input
buffer overflows on long input. ``check valid actions`` lists what jericho finds valid now
(only for games jericho supports; for others it says so). An observation with ``[!`` or one of
the standard parser refusals (:data:`INVALID_MARKERS`) counts as an invalid action.

Progress (AgentBoard): the episode record carries ``subgoals``, text patterns of observations
that mark milestones. After each step the observation is compared with the remaining patterns
(:func:`lm_eval_acbench.metrics.progress.consume_pattern`: punctuation removed, at most one
pattern consumed per step) and ``progress = consumed / len(subgoals)``. Without patterns the
game's own score counts: ``score / max_score``, 1.0 on victory. The episode ends when progress
reaches 1 or the game is over.

Game files are not shipped (the classic games have their own licences); see
:func:`resolve_game_file` for where they are looked for. acbench's sample rows instead name a
TextWorld game (``textworld``: generator options and seed) that :func:`textworld_game` builds
once into the cache -- a generated game played through the same Jericho interface, not one of
the 20 classic games AgentBoard uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

from lm_eval_acbench.envs.base import INVALID_ACTION, EnvUnavailable, Step
from lm_eval_acbench.metrics.progress import consume_pattern, pattern_text, score_progress

GAMES_DIR_ENV = "JERICHO_GAMES_DIR"
# The games of AgentBoard's Jericho set: its run config lists them in this order and pairs them
# with the rows of its test.jsonl by position. Used to name rows that name no game.
AGENTBOARD_GAMES = ("905", "acorncourt", "afflicted", "balances", "dragon", "jewel", "library", "omniquest",
                    "reverb", "snacktime", "zenon", "zork1", "zork2", "zork3", "detective", "night",
                    "pentari", "weapon", "huntdark", "loose")
GAME_SUFFIXES = (".z5", ".z8", ".z3", ".z4", ".z6", ".z7")
MAX_ACTION_WORDS = 20
CHECK_ACTIONS = "check valid actions"
# "[!" is AgentBoard's marker; the rest are the Inform and Infocom parsers' refusals, which
# mean the game did not understand the command (so it took no effect).
INVALID_MARKERS = (
    "[!",
    "That's not a verb I recognise",
    "That's not a verb I recognize",
    "I didn't understand that sentence",
    "I only understood you as far as",
    "You can't see any such thing",
    "I beg your pardon?",
    "I don't know the word",
    "That sentence isn't one I recognize",
)
# Inform's end-of-game question: games jericho does not know never report "done", and every
# command after this line only repeats the question.
GAME_OVER = re.compile(r"Would you like to RESTART, RESTORE", re.IGNORECASE)
_SCORE_NOTE = re.compile(r"\[Your score [^\]]*\]")
_PROMPT_LINE = re.compile(r"\n>[^\n]*$")  # the input prompt, with the status line frotz prints after it


def clean_observation(text) -> str:
    """Game text as the agent reads it: the trailing input prompt line removed, ``[Your score
    ...]`` notes removed, newlines turned into spaces and runs of spaces collapsed."""
    if not isinstance(text, str):
        return ""
    text = _PROMPT_LINE.sub("", text.rstrip())
    text = _SCORE_NOTE.sub("", text)
    return re.sub(r" {2,}", " ", text.replace("\r", " ").replace("\n", " ")).strip()


# Dumb frotz reads a line that starts with a backslash as its own meta-command (\\q, \\help, ...)
# and then waits for input that never comes: the game hangs for good. Z-machine input is ZSCII, so
# only printable ASCII reaches the game; the rest (control bytes, non-ASCII letters, whose UTF-8
# bytes jericho cuts mid-character at its length limit and then fails to decode) is dropped.
_NOT_GAME_INPUT = re.compile(r"[^\x20-\x7e]|\\")


def cut_action(text) -> str:
    """The command sent to the game: up to the first ``,`` or ``.``, at most 20 words, printable
    ASCII only and without backslashes (see :data:`_NOT_GAME_INPUT`)."""
    if not isinstance(text, str):
        return ""
    text = re.split(r"[,.]", text, maxsplit=1)[0]
    text = _NOT_GAME_INPUT.sub(" ", text)
    return " ".join(text.split()[:MAX_ACTION_WORDS])


def is_check_actions(text) -> bool:
    """AgentBoard's special action: any text that mentions both "check" and "action"."""
    lowered = text.lower() if isinstance(text, str) else ""
    return "check" in lowered and "action" in lowered


def is_invalid(observation: str) -> bool:
    return any(marker in observation for marker in INVALID_MARKERS)


def _require_jericho():
    try:
        import jericho
    except ImportError as exc:
        raise EnvUnavailable("jericho is not installed (pip install jericho)") from exc
    return jericho


# ---- game files ------------------------------------------------------------------------------
def games_dirs(folder: Path | None, metadata: dict | None = None) -> list[Path]:
    """Where games named in rows are looked for, in order: ``--metadata jericho_games_dir``,
    ``$JERICHO_GAMES_DIR``, ``games/`` next to the JSONL, and AgentBoard's own layout next to the
    JSONL (``z-machine-games-master/jericho-game-suite``)."""
    metadata = metadata or {}
    out = []
    for raw in (metadata.get("jericho_games_dir"), os.environ.get(GAMES_DIR_ENV)):
        if raw:
            out.append(Path(str(raw)).expanduser())
    if folder is not None:
        out += [folder / "games", folder / "z-machine-games-master" / "jericho-game-suite"]
    return out


def resolve_game_file(row: dict, folder: Path | None,
                      metadata: dict | None = None) -> tuple[str | None, str | None]:
    """``(game_file, None)`` when the row's game is found, else ``(None, reason)``.

    A row's ``game_file`` (absolute, or relative to the JSONL's folder) wins; otherwise
    ``<game_name>.z5`` (or ``.z8`` ...) in the first of :func:`games_dirs` that has it. When
    no games folder exists at all the reason is one line shared by every row, so a run without
    games warns once."""
    name = str(row.get("game_name") or "")
    if row.get("game_file"):
        path = Path(str(row["game_file"])).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        return str(path), None
    dirs = games_dirs(folder, metadata)
    for directory in dirs:
        for suffix in GAME_SUFFIXES:
            candidate = directory / f"{name}{suffix}"
            if candidate.is_file():
                return str(candidate), None
    existing = [str(d) for d in dirs if d.is_dir()]
    if not existing:
        return None, ("no Jericho game files (put AgentBoard's z-machine-games-master/jericho-game-suite, or "
                      "a games/ folder of .z5/.z8 files, next to jericho/test.jsonl, or set "
                      f"{GAMES_DIR_ENV} or --metadata '{{\"jericho_games_dir\": ...}}')")
    return None, f"no game file {name}.z5/.z8 in {', '.join(existing)}"


def row_subgoals(row: dict) -> list[str]:
    """The row's observation patterns: ``subgoals`` (or ``obs_to_reward``), or ``subgoals_1``,
    ``subgoals_2``, ... joined in number order (AgentBoard splits some rows' lists that way)."""
    value = row.get("subgoals")
    if not isinstance(value, list):
        value = row.get("obs_to_reward")  # AgentBoard's environment config calls them so
    if isinstance(value, list):
        return [str(p) for p in value if isinstance(p, str)]
    parts = []
    for key in row:
        match = re.fullmatch(r"subgoals_(\d+)", str(key))
        if match and isinstance(row[key], list):
            parts.append((int(match.group(1)), row[key]))
    return [str(p) for _, part in sorted(parts) for p in part if isinstance(p, str)]


def _textworld_key(spec: dict, version: str) -> str:
    options = {k: int(spec[k]) for k in ("world_size", "nb_objects", "quest_length", "seed")}
    digest = hashlib.sha1(json.dumps([options, version], sort_keys=True).encode()).hexdigest()[:10]
    return (f"tw-r{options['world_size']}-o{options['nb_objects']}-q{options['quest_length']}"
            f"-s{options['seed']}-{digest}")


def textworld_game(spec: dict, cache: Path | None = None) -> Path:
    """The ``.z8`` file of a generated TextWorld game, built once into the cache.

    ``spec`` holds ``world_size`` (rooms), ``nb_objects``, ``quest_length`` and ``seed``, the
    options of ``tw-make custom``; the same spec and TextWorld version give the same game. The
    file is written to a temporary folder and moved into place, so an interrupted build leaves
    nothing that looks complete."""
    try:
        import textworld
    except ImportError as exc:
        raise EnvUnavailable("textworld is not installed (pip install textworld); acbench's sample Jericho "
                             "episodes are TextWorld games generated on first use") from exc
    from lm_eval_acbench.paths import cache_dir

    try:
        key = _textworld_key(spec, textworld.__version__)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("a textworld game spec needs integer world_size, nb_objects, quest_length and seed, "
                         f"not {spec!r}") from exc
    folder = (cache or cache_dir() / "games" / "textworld")
    target = folder / f"{key}.z8"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    options = textworld.GameOptions()
    options.seeds = int(spec["seed"])
    options.nb_rooms = int(spec["world_size"])
    options.nb_objects = int(spec["nb_objects"])
    length = int(spec["quest_length"])
    options.chaining.min_length = options.chaining.max_length = options.chaining.max_depth = length
    options.file_ext = ".z8"
    options.force_recompile = True
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        options.path = str(Path(tmp) / "game.z8")
        built, _ = textworld.make(options)
        json_file = Path(built).with_suffix(".json")
        if json_file.is_file():  # the game's walkthrough and objective, for people and tests
            os.replace(json_file, target.with_suffix(".json"))
        os.replace(built, target)
    return target


# ---- the environment -------------------------------------------------------------------------
class JerichoEpisode:
    tools: list = []

    def __init__(self, game_file: str | Path, subgoals: list[str] | None = None, goal: str = "",
                 name: str = "") -> None:
        jericho = _require_jericho()
        path = Path(game_file)
        if not path.is_file():
            raise EnvUnavailable(f"Jericho game file {path} not found (AgentBoard's data download has the "
                                 f"games; or point {GAMES_DIR_ENV} at a folder of .z5/.z8 files)")
        self.name = name or path.stem
        with warnings.catch_warnings():  # "not fully supported": expected for games jericho has no data on
            warnings.simplefilter("ignore")
            self.env = jericho.FrotzEnv(str(path))
        self.patterns = [p for p in (subgoals or []) if pattern_text(p)]
        self.remaining = list(self.patterns)
        self.goal = goal or (f"Play the interactive fiction game {self.name} and get as far in its story "
                             "as you can.")
        self.score = 0.0
        self.won = False
        self.instructions = (
            "You are playing a text adventure (interactive fiction). Each turn, answer with one short "
            "command in the game's own words, e.g. `look`, `inventory`, `examine mailbox`, `take lamp`, "
            "`open door`, `go north`, `put coin in box`. One command per turn; text after a comma or full "
            "stop is dropped. "
            f"`{CHECK_ACTIONS}` lists commands the game accepts now (for games jericho knows)."
        )

    def reset(self) -> str:
        observation, info = self.env.reset()
        self.remaining = list(self.patterns)
        self.score = float((info or {}).get("score", 0) or 0)
        self.won = False
        return clean_observation(observation)

    def progress(self) -> float:
        if self.patterns:
            return (len(self.patterns) - len(self.remaining)) / len(self.patterns)
        if self.won:
            return 1.0
        return score_progress(self.score, float(self.env.get_max_score() or 0))

    def _valid_actions(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # in-process: the loop runs several episodes, and forking workers under it is not safe
            actions = self.env.get_valid_actions(use_parallel=False)
        if not actions:
            return ("No list of valid actions is available for this game; try commands such as look, "
                    "inventory, examine <thing>, take <thing>, open <thing>, go <direction>.")
        return "You can take the following actions: " + ", ".join(actions)

    def step(self, action: str) -> Step:
        if is_check_actions(action):
            return Step(self._valid_actions(), self.progress())
        command = cut_action(action)
        if not command:
            return Step(f"{INVALID_ACTION} Answer with one command, e.g. look.", self.progress(), valid=False)
        raw, _, done, info = self.env.step(command)
        observation = clean_observation(raw)
        if self.patterns:
            hit = consume_pattern(observation, self.remaining)
            if hit is not None:
                self.remaining.pop(hit)
        else:
            self.score = float((info or {}).get("score", self.score) or 0)
            self.won = bool(self.env.victory())
        done = bool(done) or bool(GAME_OVER.search(raw or ""))
        if is_invalid(observation):
            return Step(f"{INVALID_ACTION} {observation}", self.progress(), done=done, valid=False)
        return Step(observation, self.progress(), done=done)

    def close(self) -> None:
        env, self.env = getattr(self, "env", None), None
        if env is not None:
            env.close()
            del env  # FrotzEnv unloads its private copy of libfrotz when collected


def make_env(record: dict):
    """The episode's game in a process of its own (:class:`~lm_eval_acbench.envs.isolated.ProcessEnv`):
    frotz is C code that can crash on input it does not expect, and a crash must end only this
    episode, as an environment error, not the whole run."""
    if record.get("unavailable"):
        raise EnvUnavailable(str(record["unavailable"]))
    _require_jericho()
    from lm_eval_acbench.envs.isolated import ProcessEnv

    return ProcessEnv("lm_eval_acbench.envs.jericho_env:make_local_env", record)


def make_local_env(record: dict) -> JerichoEpisode:
    """The episode's game in this process."""
    if record.get("unavailable"):
        raise EnvUnavailable(str(record["unavailable"]))
    _require_jericho()
    if record.get("textworld"):
        game_file = textworld_game(dict(record["textworld"]))
    else:  # rows from the task loader carry an absolute game_file; others may name a game
        found, reason = resolve_game_file(record, None)
        if found is None:
            raise EnvUnavailable(reason)
        game_file = Path(found)
    return JerichoEpisode(game_file, row_subgoals(record), goal=str(record.get("goal") or ""),
                          name=str(record.get("game_name") or ""))
