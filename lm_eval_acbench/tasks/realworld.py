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
from pathlib import Path

from lm_eval_acbench import data
from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, LoopSettings, require_loop

log = logging.getLogger(__name__)

BENCHMARK = "agentboard"
HUB_ID = "hkust-nlp/agentboard"
# A transcript is at most max_steps steps of prompts, outputs and observations; a bigger answer
# is not one (and decoding it would take seconds).
MAX_TRANSCRIPT_CHARS = 5_000_000
LOOP_KEYS = ("max_steps", "memory", "max_invalid", "step_timeout", "log_prompts")

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


def _rows(folder: Path, env: str) -> list[dict]:
    name = DATA_FOLDERS[env]
    for candidate in (folder / "data" / name / "test.jsonl", folder / name / "test.jsonl"):
        if candidate.is_file():
            rows = list(data.iter_jsonl(candidate))
            for row in rows:
                row.setdefault("_folder", str(candidate.parent))
            return rows
    raise data.DataUnavailable(f"agentboard: no data/{name}/test.jsonl under {folder}")


def _pddl_row(row: dict) -> dict | None:
    """Fill ``problem`` (and ``domain``) from files named in the row, relative to its folder."""
    folder = Path(row.get("_folder", "."))
    for key in ("problem", "domain"):
        if not row.get(key) and row.get(f"{key}_file"):
            path = folder / str(row[f"{key}_file"])
            if path.is_file():
                row[key] = path.read_text()
    if not row.get("problem"):
        log.warning("agentboard pddl row %s has no problem text or problem_file; skipped", row.get("id"))
        return None
    return row


def _game_row(env: str, row: dict, index: int, metadata: dict | None) -> dict:
    """Resolve a Jericho or ALFWorld row's game file (``game_file``), or record why it is missing
    (``unavailable``, raised as EnvUnavailable when the episode starts)."""
    from lm_eval_acbench.envs import alfworld_env, jericho_env

    folder = Path(row["_folder"]) if row.get("_folder") else None
    if env == "jericho":
        if not row.get("game_name"):
            row["game_name"] = row.get("game") or (
                jericho_env.AGENTBOARD_GAMES[index] if index < len(jericho_env.AGENTBOARD_GAMES) else "")
        row["subgoals"] = jericho_env.row_subgoals(row)
        if row.get("textworld"):  # acbench's sample rows: a TextWorld game built on first use
            return row
        found, reason = jericho_env.resolve_game_file(row, folder, metadata)
    else:
        row.setdefault("subset", alfworld_env.row_description(row).split("-", 1)[0] or "alfworld")
        if row.get("task") and not row.get("goal"):
            row["goal"] = row["task"]
        if not row.get("pddl_problem") and row.get("problem_file") and folder is not None:
            path = folder / str(row["problem_file"])
            if path.is_file():
                row["pddl_problem"] = path.read_text()
        if row.get("pddl_problem"):  # acbench's sample rows: our problem, alfworld's domain and grammar
            return row
        found, reason = alfworld_env.resolve_game_file(row, folder, metadata)
    if found:
        row["game_file"] = found
    else:
        row["unavailable"] = reason
    return row


def load_episodes(env: str, metadata: dict | None) -> list[dict]:
    """Episode records of one environment, each tagged with its data source.

    For Jericho and ALFWorld, missing data gives one placeholder episode that is skipped with
    the reason (see :data:`GAME_ENVS`)."""
    data.data_settings(metadata)  # a wrong setting stays an error, not missing data
    try:
        records, _ = data.load_records(BENCHMARK, metadata, from_folder=lambda folder: _rows(folder, env),
                                       from_hub=None, hub_id=HUB_ID)
    except data.DataUnavailable as exc:
        if env not in GAME_ENVS:
            raise
        records = [{"id": "unavailable", "unavailable": GAME_ENVS[env].format(problem=exc),
                    data.SOURCE_FIELD: "none"}]
    out = []
    for index, row in enumerate(records):
        if env == "pddl":
            row = _pddl_row(row)
            if row is None:
                continue
        elif env in GAME_ENVS and not row.get("unavailable"):
            row = _game_row(env, row, index, metadata)
        row.pop("_folder", None)
        row["env"] = env
        row.setdefault("id", index)
        row.setdefault("subset", row.get("game_name") or env)
        out.append(row)
    return out


def _dataset(env: str, metadata: dict):
    settings = LoopSettings.from_mapping({k: metadata.get(k) for k in LOOP_KEYS})
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
        return {"skipped": 1.0}
    return score_transcript(transcript)


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
