"""``acbench_realworld``: AgentBoard's multi-turn environments as lm-eval tasks.

Each document is one episode. Its record (environment name, problem, goal, subgoals) is stored
under ``acbench_episode`` and the loop settings under ``acbench_loop``; the episode itself runs
in :mod:`lm_eval_acbench.episodes`, which answers the document's one request with the episode's
transcript as JSON. :func:`process_results` scores that transcript with the pure functions of
:mod:`lm_eval_acbench.metrics.progress`.

Data: ``<data_dir>/agentboard/data/<task>/test.jsonl`` (AgentBoard's layout) when a data folder is
given, else our sample set in the same layout under ``lm_eval_acbench/samples/agentboard``.
Jericho and ALFWorld rows also need game files, which are not shipped: the loader resolves each
row's file (see ``envs.jericho_env.resolve_game_file`` and ``envs.alfworld_env.resolve_game_file``)
and, when it is missing -- or there are no rows at all -- keeps the episode with the reason, so
that its environment is skipped with one warning line instead of failing the run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path

from lm_eval_acbench import data
from lm_eval_acbench.envs import own_examples, prompts
from lm_eval_acbench.envs.base import row_info
from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, LoopSettings, require_loop

log = logging.getLogger(__name__)

BENCHMARK = "agentboard"
HUB_ID = "hkust-nlp/agentboard"
# A transcript is at most max_steps steps of prompts, outputs and observations; a bigger answer
# is not one (and decoding it would take seconds).
MAX_TRANSCRIPT_CHARS = 5_000_000
LOOP_KEYS = ("max_steps", "memory", "max_invalid", "step_timeout", "log_prompts")
# AgentBoard's defaults: 30 steps, a memory of 100 interaction items (50 action/observation pairs),
# and no early end for invalid actions (AgentBoard plays on until the goal or the step limit)
LOOP_DEFAULTS = {"max_steps": 30, "memory": 50, "max_invalid": 0}

# env name -> AgentBoard's data folder name
DATA_FOLDERS = {
    "pddl": "pddl",
    "babyai": "babyai",
    "tool-query": "tool-query",
    "tool-operation": "tool-operation",
    "scienceworld": "scienceworld",
    "jericho": "jericho",
    "alfworld": "alfworld",
}
# environments whose episodes need game files we cannot ship: missing data skips them
GAME_ENVS = {
    "jericho": "no Jericho episodes ({problem}); put AgentBoard's data/jericho (test.jsonl and its games) "
               "under the data folder",
    "alfworld": "no ALFWorld episodes ({problem}); put AgentBoard's data/alfworld/test.jsonl under the data "
                "folder and ALFWorld's games under $ALFWORLD_DATA (alfworld-download)",
}


ROW_FOLDER = "_acbench_row_folder"  # set by the loader only; a key of that name in a row is dropped
# AgentBoard's PDDL run: the domains in this order, at most 20 problems each, rows in that order
AGENTBOARD_PDDL_GAMES = ("gripper", "blockworld", "barman", "tyreworld")
AGENTBOARD_PDDL_PER_GAME = 20
AGENTBOARD_PDDL_DIR = Path("agentboard/environment/pddl_env/pddlgym/pddl")
# AgentBoard's ScienceWorld simplifications (tasks/scienceworld.py)
AGENTBOARD_SCIENCEWORLD_SIMPLIFICATIONS = "selfWateringFlowerPots,openContainers,openDoors,noElectricalAction"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def inside(bases, name) -> tuple[Path | None, str | None]:
    """A file named by a data row, only inside one of the folders ``bases``.

    ``(path, None)`` for the first base in which ``base / name``, with links and ``..``
    resolved, is a file inside that base; else ``(None, reason)``. Absolute names count only
    when they lie inside a base. Never raises."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name or len(name) > 1000:
        return None, f"file name {str(name)[:80]!r} is not a usable path"
    existing = [Path(b).resolve() for b in bases if b is not None and Path(b).is_dir()]
    if not existing:
        return None, f"no folder to look for {name!r} in"
    escaped = False
    for base in existing:
        try:
            candidate = (base / name).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if not candidate.is_relative_to(base):
            escaped = True
            continue
        if candidate.is_file():
            return candidate, None
    if escaped:
        return None, f"path {name!r} leads outside the data folders ({', '.join(map(str, existing))}); refused"
    return None, f"no file {name!r} in {', '.join(map(str, existing))}"


def _rows(folder: Path, env: str) -> list[dict]:
    name = DATA_FOLDERS[env]
    for candidate in (folder / "data" / name / "test.jsonl", folder / name / "test.jsonl"):
        if candidate.is_file():
            rows = [row for row in data.iter_jsonl(candidate) if isinstance(row, dict)]
            for row in rows:
                row.pop("_folder", None)
                row.pop(ROW_FOLDER, None)
                row[ROW_FOLDER] = str(candidate.parent)
                row["_acbench_data_root"] = str(folder)
            return rows
    raise data.DataUnavailable(f"agentboard: no data/{name}/test.jsonl under {folder}")


def pddl_dirs(row: dict, metadata: dict | None) -> list[Path]:
    """Where AgentBoard's pddlgym domains may be: ``--metadata pddl_dir``, then
    ``agentboard/environment/pddl_env/pddlgym/pddl`` in the data folder (an AgentBoard checkout)."""
    out = []
    if (metadata or {}).get("pddl_dir"):
        out.append(Path(str(metadata["pddl_dir"])).expanduser())
    if row.get("_acbench_data_root"):
        out.append(Path(row["_acbench_data_root"]) / AGENTBOARD_PDDL_DIR)
    return out


def agentboard_problem_index(row_id, game: str, counts: dict[str, int]) -> int | None:
    """AgentBoard's rule for a PDDL row: its position in the file, minus the rows of the domains
    before its own (:data:`AGENTBOARD_PDDL_GAMES`, ``min(20, problems)`` each), is the index of
    its problem among the domain's problem files in sorted order. None when it does not apply."""
    try:
        position = int(row_id)
    except (TypeError, ValueError):
        return None
    if game not in AGENTBOARD_PDDL_GAMES:
        return None
    offset = sum(min(AGENTBOARD_PDDL_PER_GAME, counts.get(g, 0)) for g in AGENTBOARD_PDDL_GAMES[:AGENTBOARD_PDDL_GAMES.index(game)])
    index = position - offset
    return index if 0 <= index < min(AGENTBOARD_PDDL_PER_GAME, counts.get(game, 0)) else None


def _goal_sentences(domain: str, problem: str) -> list[str] | None:
    from lm_eval_acbench.envs.pddl_env import PddlSim

    try:
        return PddlSim(domain, problem).goal_sentences()
    except Exception:  # noqa: BLE001 - a file that does not parse matches nothing
        return None


def _pddl_row(row: dict, metadata: dict | None) -> dict:
    """Fill ``problem`` and ``domain`` (PDDL text) of a PDDL row, or set ``load_error``.

    Our rows carry ``problem`` text; AgentBoard's name only their domain
    (``additional_info.subtask``), and the problem is found by :func:`agentboard_problem_index`
    and checked against the row's ``subgoals`` (when the check fails, the domain's problem whose
    goal is the row's subgoals is used; when none is, the row cannot start). Files are read only
    inside the row's data folder and the PDDL folders (:func:`pddl_dirs`)."""
    folder = Path(row[ROW_FOLDER]) if row.get(ROW_FOLDER) else None
    game = str(row.get("game_name") or row_info(row).get("subtask") or row.get("subset") or "")
    if not _PLAIN_NAME.fullmatch(game):
        row["load_error"] = f"PDDL row names no usable domain ({game[:60]!r})"
        return row
    row["game_name"] = game
    dirs = pddl_dirs(row, metadata)
    for key in ("problem", "domain"):
        if not row.get(key) and row.get(f"{key}_file"):
            path, reason = inside([folder, *dirs], row[f"{key}_file"])
            if path is None:
                row["load_error"] = f"PDDL {key}_file: {reason}"
                return row
            row[key] = path.read_text(errors="replace")
    if not row.get("domain"):
        path, _ = inside(dirs, f"{game}.pddl")
        if path is not None:
            row["domain"] = path.read_text(errors="replace")
    if row.get("problem"):
        return row
    if not row.get("domain"):
        from lm_eval_acbench.envs.pddl_env import GAMES

        if game in GAMES:
            row["load_error"] = f"PDDL row of {game} has no problem text or problem_file"
        else:
            row["load_error"] = (f"PDDL domain {game!r} not found: put AgentBoard's {AGENTBOARD_PDDL_DIR} in the "
                                 "data folder, or set --metadata '{\"pddl_dir\": ...}'")
        return row
    problem_dir = next((d / game for d in dirs if (d / game).is_dir() and (d / game).resolve().is_relative_to(d.resolve())),
                       None)
    if problem_dir is None:
        row["load_error"] = f"no problem folder {game}/ next to the PDDL domain {game}.pddl"
        return row
    counts = {g: len(list((problem_dir.parent / g).glob("*.pddl"))) for g in AGENTBOARD_PDDL_GAMES
              if (problem_dir.parent / g).is_dir()}
    problems = sorted(problem_dir.glob("*.pddl"))
    wanted = sorted(str(s).strip() for s in row.get("subgoals") or [] if isinstance(s, str))
    index = agentboard_problem_index(row.get("id"), game, counts)
    order = ([index] if index is not None else []) + [i for i in range(len(problems)) if i != index]
    for i in order:
        text = problems[i].read_text(errors="replace")
        goal = _goal_sentences(row["domain"], text)
        if goal is not None and (not wanted or goal == wanted):
            row["problem"], row["problem_name"] = text, problems[i].name
            if i != index:
                log.info("agentboard pddl row %s: problem by goal match (%s), not by order", row.get("id"), problems[i].name)
            return row
    row["load_error"] = f"no {game} problem in {problem_dir} has the row's subgoals as its goal"
    return row


def _scienceworld_row(row: dict) -> dict:
    """AgentBoard's ScienceWorld keys (``additional_info.env_name`` / ``var``) as ours."""
    info = row_info(row)
    row["task_name"] = row.get("task_name") or info.get("env_name")
    if row.get("variation") is None and info.get("var") is not None:
        row["variation"] = info.get("var")
    if not row.get("simplification"):
        row["simplification"] = AGENTBOARD_SCIENCEWORLD_SIMPLIFICATIONS if info else "easy"
    if not isinstance(row["task_name"], str) or not row["task_name"]:
        row["load_error"] = "ScienceWorld row names no task (no task_name and no additional_info.env_name)"
    else:
        row.setdefault("subset", row["task_name"])
    return row


def _babyai_row(row: dict) -> dict:
    from lm_eval_acbench.envs.babyai import agentboard_level_and_seed

    try:
        row["level"], row["seed"] = agentboard_level_and_seed(row)
    except ValueError as exc:
        row["load_error"] = str(exc)
        return row
    row.setdefault("subset", row["level"])
    return row


def _game_row(env: str, row: dict, index: int, metadata: dict | None) -> dict:
    """Resolve a Jericho or ALFWorld row's game file (``game_file``), or record why it is missing
    (``unavailable``, raised as EnvUnavailable when the episode starts) or refused
    (``load_error``: a path from the row that leads outside the data and game folders)."""
    from lm_eval_acbench.envs import alfworld_env, jericho_env

    folder = Path(row[ROW_FOLDER]) if row.get(ROW_FOLDER) else None
    if env == "jericho":
        if not row.get("game_name"):
            row["game_name"] = row.get("game") or (
                jericho_env.AGENTBOARD_GAMES[index] if index < len(jericho_env.AGENTBOARD_GAMES) else "")
        if not _PLAIN_NAME.fullmatch(str(row["game_name"])):
            row["load_error"] = f"Jericho row's game_name {str(row['game_name'])[:60]!r} is not a plain game name"
            return row
        row["subgoals"] = jericho_env.row_subgoals(row)
        if row.get("textworld"):  # acbench's sample rows: a TextWorld game built on first use
            return row
        game_dirs = jericho_env.games_dirs(folder, metadata)
    else:
        row.setdefault("subset", alfworld_env.row_description(row).split("-", 1)[0] or "alfworld")
        if row.get("task") and not row.get("goal"):
            row["goal"] = row["task"]
        description = alfworld_env.row_description(row)
        if description and (Path(description).is_absolute() or ".." in Path(description).parts):
            row["load_error"] = f"ALFWorld row's additional_info.description {description[:80]!r} leaves the game folder"
            return row
        if not row.get("pddl_problem") and row.get("problem_file"):
            path, reason = inside([folder], row["problem_file"])
            if path is None:
                row["load_error"] = f"ALFWorld problem_file: {reason}"
                return row
            row["pddl_problem"] = path.read_text(errors="replace")
        if row.get("pddl_problem"):  # acbench's sample rows: our problem, alfworld's domain and grammar
            return row
        game_dirs = [alfworld_env.alfworld_data_dir(metadata)]
    if row.get("game_file"):
        path, reason = inside([folder, *game_dirs], row["game_file"])
        if path is None:
            row["load_error"] = f"game_file: {reason}"
            return row
        row["game_file"] = str(path)
    found, reason = (jericho_env if env == "jericho" else alfworld_env).resolve_game_file(row, folder, metadata)
    if found:
        row["game_file"] = found
    else:
        row["unavailable"] = reason
    return row


def alfworld_game_rows(metadata: dict | None) -> list[dict]:
    """Rows for the games of a plain ALFWorld data folder, as ALFWorld's own evaluation plays
    them when there are no AgentBoard rows: every ``<split>/<task>/<trial>/game.tw-pddl`` of the
    first split of :data:`~lm_eval_acbench.envs.alfworld_env.SPLITS` that has games (AgentBoard's
    valid_unseen first), in sorted order. They carry no subgoals, so progress is the game's win."""
    from lm_eval_acbench.envs import alfworld_env

    # resolved: a relative data_dir ("../shared/data") would otherwise read as a path that leaves it
    root = alfworld_env.alfworld_data_dir(metadata).resolve() / "json_2.1.1"
    for split in alfworld_env.SPLITS:
        games = sorted((root / split).glob("*/*/game.tw-pddl")) if (root / split).is_dir() else []
        if games:
            return [{"id": f"{split}/{g.parent.parent.name}/{g.parent.name}", "game_file": str(g),
                     "subset": g.parent.parent.name.split("-", 1)[0], "difficulty": "",
                     "additional_info": {"description": f"{g.parent.parent.name}/{g.parent.name}"}} for g in games]
    return []


def _alfworld_metadata(metadata: dict | None) -> dict:
    """The settings with ``alfworld_data`` filled from the data folder when it holds ALFWorld's
    data (``<data_dir>/alfworld/...`` with a ``json_2.1.1`` folder) and none is named."""
    metadata = dict(metadata or {})
    if metadata.get("alfworld_data") or os.environ.get("ALFWORLD_DATA"):
        return metadata
    data_dir, _ = data.data_settings(metadata)
    if data_dir is None:
        return metadata
    for candidate in (data_dir / "alfworld", data_dir / "alfworld" / "data" / "alfworld", data_dir):
        if (candidate / "json_2.1.1").is_dir():
            metadata["alfworld_data"] = str(candidate)
            break
    return metadata


AGENTBOARD_TOOLS = ("AgentBoard's own {env} rows need live web services (TMDB and Todoist with API keys, "
                    "open-meteo, Google Sheets with a service account; academia from pickle files, which acbench "
                    "never unpickles); acbench_realworld_{task} plays only our offline tool-world rows (with 'checks')")


def _tool_row(row: dict, env: str) -> dict:
    if not isinstance(row.get("checks"), list):
        row["load_error"] = AGENTBOARD_TOOLS.format(env=env, task=env.replace("-", "_"))
    return row


PREPARE = {"pddl": lambda row, metadata: _pddl_row(row, metadata),
           "tool-query": lambda row, metadata: _tool_row(row, "tool-query"),
           "tool-operation": lambda row, metadata: _tool_row(row, "tool-operation"),
           "scienceworld": lambda row, metadata: _scienceworld_row(row),
           "babyai": lambda row, metadata: _babyai_row(row)}


def load_episodes(env: str, metadata: dict | None) -> list[dict]:
    """Episode records of one environment, each tagged with its data source.

    A row that cannot start keeps its place with the reason under ``load_error`` (the episode
    then fails to start and counts in ``env_error_rate``); one log line per cause gives the
    count. For Jericho and ALFWorld, missing data gives one placeholder episode that is skipped
    with the reason (see :data:`GAME_ENVS`); ALFWorld without AgentBoard rows plays the games
    of its data folder (:func:`alfworld_game_rows`)."""
    data.data_settings(metadata)  # a wrong setting stays an error, not missing data
    if env == "alfworld":
        metadata = _alfworld_metadata(metadata)
    try:
        records, _ = data.load_records(BENCHMARK, metadata, from_folder=lambda folder: _rows(folder, env),
                                       from_hub=None, hub_id=HUB_ID)
    except data.DataUnavailable as exc:
        if env not in GAME_ENVS:
            raise
        games = alfworld_game_rows(metadata) if env == "alfworld" else []
        data_dir, _ = data.data_settings(metadata)
        agentboard_root = data.benchmark_dir(data_dir, BENCHMARK) if data_dir is not None else None
        for game in games:
            game[data.SOURCE_FIELD] = f"local:{game['game_file'].rsplit('/json_2.1.1/', 1)[0]}"
            if agentboard_root is not None and (agentboard_root / prompts.PROMPT_DIR).is_dir():
                game["_acbench_data_root"] = str(agentboard_root)
        records = games or [{"id": "unavailable", "unavailable": GAME_ENVS[env].format(problem=exc),
                             data.SOURCE_FIELD: "none"}]
    out, causes, prompt_files = [], Counter(), {}
    for index, row in enumerate(records):
        root = row.get("_acbench_data_root")
        if env in PREPARE:
            row = PREPARE[env](row, metadata)
        elif env in GAME_ENVS and not row.get("unavailable"):
            row = _game_row(env, row, index, metadata)
        if root and not row.get("load_error"):
            if root not in prompt_files:
                try:
                    prompt_files[root] = prompts.read_prompt_file(Path(root), env)
                except ValueError as exc:
                    raise data.DataUnavailable(str(exc)) from None
            if prompt_files[root] is not None:
                row[prompts.RECORD_FIELD] = prompts.prompt_for_row(prompt_files[root], env, row)
        if not row.get(prompts.RECORD_FIELD) and not row.get("load_error") and not row.get("unavailable"):
            # no AgentBoard prompt file: our own one-shot example in the same layout, where we have one
            own = own_examples.own_prompt(env, row)
            if own is not None:
                row[prompts.RECORD_FIELD] = own
        for key in (ROW_FOLDER, "_acbench_data_root", "_folder"):
            row.pop(key, None)
        if row.get("load_error"):
            causes[str(row["load_error"])] += 1
        row["env"] = env
        row.setdefault("id", index)
        row.setdefault("subset", row.get("game_name") or env)
        out.append(row)
    for cause, count in sorted(causes.items()):
        log.warning("acbench_realworld_%s: %d of %d rows cannot start: %s", env, count, len(out), cause)
    return out


def _dataset(env: str, metadata: dict):
    settings = LoopSettings.from_mapping({**LOOP_DEFAULTS, **{k: metadata[k] for k in LOOP_KEYS if metadata.get(k) is not None}})
    rows = []
    for record in load_episodes(env, metadata):
        rows.append({
            "id": str(record["id"]),
            "env": env,
            "subset": str(record.get("subset", env)),
            "goal": str(record.get("goal") or ""),
            "difficulty": str(record.get("difficulty") or ""),
            data.SOURCE_FIELD: record.get(data.SOURCE_FIELD, ""),
            EPISODE_FIELD: json.dumps(record),
            LOOP_FIELD: json.dumps(settings.__dict__),
        })
    return data.as_split(rows)


def load_pddl(**metadata):
    return _dataset("pddl", metadata)


def load_babyai(**metadata):
    return _dataset("babyai", metadata)


def load_scienceworld(**metadata):
    return _dataset("scienceworld", metadata)


def load_jericho(**metadata):
    return _dataset("jericho", metadata)


def load_alfworld(**metadata):
    return _dataset("alfworld", metadata)


def load_tool_query(**metadata):
    return _dataset("tool-query", metadata)


def load_tool_operation(**metadata):
    return _dataset("tool-operation", metadata)


def doc_to_text(doc: dict) -> str:
    """The request's context: a one-line label (the episode's prompts are built per step)."""
    require_loop()
    goal = doc.get("goal") or ""
    return f"[acbench episode] {doc.get('env')}/{doc.get('subset')} #{doc.get('id')}: {goal}".strip()


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Score the transcript the episode loop returned for this document."""
    from lm_eval_acbench.metrics.progress import score_transcript

    raw = results[0] if results else ""
    transcript, problem = decode_transcript(raw)
    if transcript is None:
        # Only the episode loop answers these requests, always with a transcript: anything else
        # means the loop was bypassed, and no score would be true. One clear line, never a
        # RecursionError from a deep answer.
        require_loop()
        raise RuntimeError(f"acbench_realworld: {problem}; the episode loop did not handle this request")
    if transcript.get("skipped"):
        return {"skipped": 1.0, "env_error_rate": 0.0}
    return {**score_transcript(transcript), "skipped": 0.0}


def decode_transcript(raw) -> tuple[dict | None, str]:
    """(transcript, "") from the loop's answer, or (None, why not): not text, longer than
    :data:`MAX_TRANSCRIPT_CHARS`, not JSON, nested too deep, or no ``trajectory``."""
    if not isinstance(raw, str):
        return None, f"the answer is a {type(raw).__name__}, not an episode transcript"
    if len(raw) > MAX_TRANSCRIPT_CHARS:
        return None, f"the answer is longer than {MAX_TRANSCRIPT_CHARS} characters, not an episode transcript"
    try:
        transcript = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # ValueError: also an int over the digit limit
        return None, f"the answer is not an episode transcript ({type(exc).__name__})"
    if not isinstance(transcript, dict) or "trajectory" not in transcript:
        return None, "the answer is not an episode transcript (no trajectory)"
    return transcript, ""
