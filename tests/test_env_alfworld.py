"""ALFWorld adapter on a real ``game.tw-pddl`` built at test time.

The game file is what ALFWorld's own ones are: the ALFRED domain (``alfred.pddl``) and grammar
(``alfred.twl2``) that ship inside the alfworld package, the task text put into the grammar,
and a PDDL problem, here a tiny one written for this test. It lies where ALFWorld's download
puts games (``$ALFWORLD_DATA/json_2.1.1/<split>/<task>/<trial>/game.tw-pddl``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("textworld")
pytest.importorskip("fast_downward")

from helpers import run_lm_eval  # noqa: E402
from lm_eval_acbench.envs.alfworld_env import (  # noqa: E402
    AlfWorldEpisode, make_env, resolve_game_file, sample_game,
)
from lm_eval_acbench.episodes import LoopSettings, run_episodes  # noqa: E402
from lm_eval_acbench.tasks.realworld import load_episodes  # noqa: E402

DESCRIPTION = "pick_cool_then_place_in_recep-Tomato-None-DiningTable-7/trial_T20990101_000000_000001"
TASK = "put a cool tomato in diningtable"
PROBLEM = """
(define (problem test_cool_tomato)
(:domain alfred)
(:objects
    agent1 - agent
    TomatoType BreadType - otype
    CounterTopType FridgeType DiningTableType - rtype
    Tomato_bar_01 Bread_bar_01 - object
    CounterTop_bar_01 Fridge_bar_01 DiningTable_bar_01 - receptacle
    loc_bar_00 loc_bar_01 loc_bar_02 loc_bar_03 - location
)
(:init
    (atLocation agent1 loc_bar_00)
    (receptacleType CounterTop_bar_01 CounterTopType)
    (receptacleType Fridge_bar_01 FridgeType)
    (receptacleType DiningTable_bar_01 DiningTableType)
    (receptacleAtLocation CounterTop_bar_01 loc_bar_01)
    (receptacleAtLocation Fridge_bar_01 loc_bar_02)
    (receptacleAtLocation DiningTable_bar_01 loc_bar_03)
    (openable Fridge_bar_01)
    (objectType Tomato_bar_01 TomatoType)
    (objectType Bread_bar_01 BreadType)
    (pickupable Tomato_bar_01)
    (pickupable Bread_bar_01)
    (coolable Tomato_bar_01)
    (inReceptacle Tomato_bar_01 CounterTop_bar_01)
    (inReceptacle Bread_bar_01 CounterTop_bar_01)
    (objectAtLocation Tomato_bar_01 loc_bar_01)
    (objectAtLocation Bread_bar_01 loc_bar_01)
    (canContain CounterTopType TomatoType)
    (canContain FridgeType TomatoType)
    (canContain DiningTableType TomatoType)
    (canContain CounterTopType BreadType)
)
(:goal
    (exists (?r - receptacle)
        (exists (?o - object)
            (and (objectType ?o TomatoType) (receptacleType ?r DiningTableType)
                 (isCool ?o) (inReceptacle ?o ?r))
        )
    )
)
)
"""
PLAN = ["go to countertop 1", "take tomato 1 from countertop 1", "go to fridge 1",
        "cool tomato 1 with fridge 1",
        "go to diningtable 1", "move tomato 1 to diningtable 1"]
SUBGOALS = [r"You pick up the tomato \d+ from the countertop \d+",
            r"You cool the tomato \d+ using the fridge \d+",
            r"You arrive at diningtable \d+"]
# progress after each step of PLAN: matched / (3 subgoals + 1), then 1.0 once won
EXPECTED = [0.0, 0.25, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="session")
def alfworld_data(tmp_path_factory):
    """An $ALFWORLD_DATA folder holding one game, in ALFWorld's own layout and file format."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    root = tmp_path_factory.mktemp("alfworld_data")
    game_dir = root / "json_2.1.1" / "valid_unseen" / DESCRIPTION
    game_dir.mkdir(parents=True)
    with open(ALFRED_TWL2_PATH) as grammar, open(ALFRED_PDDL_PATH) as domain:
        game = {"pddl_domain": domain.read(), "grammar": grammar.read().replace("UNKNOWN GOAL", TASK),
                "pddl_problem": PROBLEM, "solvable": True, "walkthrough": PLAN}
    (game_dir / "game.tw-pddl").write_text(json.dumps(game))
    return root


@pytest.fixture()
def game_file(alfworld_data):
    found, reason = resolve_game_file({"additional_info": {"description": DESCRIPTION}}, None,
                                      {"alfworld_data": str(alfworld_data)})
    assert reason is None
    return found


def test_plan_wins_and_subgoals_give_progress(game_file):
    env = AlfWorldEpisode(game_file, SUBGOALS)
    try:
        first = env.reset()
        assert first.startswith("You are in the middle of a room") and "fridge 1" in first
        assert env.goal == f"{TASK}." and env.progress() == 0.0
        steps = [env.step(action) for action in PLAN]
        assert [s.progress for s in steps] == EXPECTED
        assert steps[-1].done and all(s.valid for s in steps) and not any(s.done for s in steps[:-1])
    finally:
        env.close()


def test_partial_plan_stays_below_one(game_file):
    env = AlfWorldEpisode(game_file, SUBGOALS)
    try:
        env.reset()
        steps = [env.step(action) for action in PLAN[:-1]]
        assert steps[-1].progress == 0.75 and not steps[-1].done  # every subgoal met, goal not yet
    finally:
        env.close()


def test_special_actions_and_invalid_commands(game_file):
    env = AlfWorldEpisode(game_file, SUBGOALS)
    try:
        room = env.reset()
        listing = env.step("check valid actions")
        assert listing.valid and listing.observation.startswith("Choose an action from these valid actions: ")
        assert "go to fridge 1" in listing.observation and listing.observation.endswith("check valid actions")
        assert env.step("look").observation == room
        bad = env.step("fly to the moon")
        assert not bad.valid and bad.observation.endswith("Nothing happens.") and bad.progress == 0.0
        arrive = env.step("go to countertop 1.")  # the trailing full stop is dropped
        assert arrive.valid and arrive.observation.startswith("You arrive at countertop 1.")
        assert env.step("look").observation == arrive.observation  # look repeats the last location
        assert "take tomato 1 from countertop 1" in env.step("check valid actions.").observation
        # AgentBoard's ALFWorld lists actions for these exact words only: other wordings are
        # game commands, which the game does not know
        for wording in ("Check valid actions", "check the valid actions",
                        "You should use the following commands for help: check valid actions"):
            other = env.step(wording)
            assert not other.valid and other.observation.endswith("Nothing happens."), wording
    finally:
        env.close()


def test_scripted_policy_through_the_loop(game_file):
    record = {"env": "alfworld", "id": "t", "game_file": game_file, "subgoals": SUBGOALS}
    plan = iter(PLAN)
    out = run_episodes([record], lambda requests: [next(plan, "look")], settings=LoopSettings(max_steps=10))
    (transcript,) = out
    assert transcript["success_rate"] == 1.0 and transcript["steps"] == len(PLAN)
    assert transcript["goal"] == f"{TASK}." and transcript["end_reason"] == "success"
    assert [s["progress"] for s in transcript["trajectory"]] == EXPECTED


def test_loader_finds_games_by_description(tmp_path, alfworld_data):
    folder = tmp_path / "agentboard" / "data" / "alfworld"
    folder.mkdir(parents=True)
    rows = [{"additional_info": {"description": DESCRIPTION}, "subgoals": SUBGOALS, "difficulty": "easy"},
            {"additional_info": {"description": "look_at_obj_in_light-X-None-Y-1/trial_T1"}, "subgoals": [],
             "difficulty": "hard"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metadata = {"data_dir": str(tmp_path), "alfworld_data": str(alfworld_data)}
    found, missing = load_episodes("alfworld", metadata)
    assert found["game_file"].endswith(f"valid_unseen/{DESCRIPTION}/game.tw-pddl")
    assert "unavailable" not in found
    assert found["subset"] == "pick_cool_then_place_in_recep"
    assert missing["unavailable"].startswith(
        "no ALFWorld game look_at_obj_in_light-X-None-Y-1/trial_T1/game.tw-pddl")


def test_sample_rows_are_solved_by_the_planner(tmp_path, monkeypatch):
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path))
    rows = load_episodes("alfworld", {"data_source": "sample"})
    assert len(rows) == 3 and all(r["acbench_data_source"] == "sample:agentboard" for r in rows)
    for row in rows:
        env = make_env(row)
        try:
            env.reset()
            assert env.goal.rstrip(".") == row["task"]
            game = sample_game(row["pddl_problem"], row["task"])  # the file make_env built
            assert game.parent == tmp_path / "games" / "alfworld"
            planner = textworld.start(str(game), request_infos=textworld.EnvInfos(policy_commands=True),
                                      wrappers=[AlfredDemangler(shuffle=False)])  # the agent's names
            plan = planner.reset()["policy_commands"]
            steps = [env.step(action) for action in plan]
            assert steps[-1].progress == 1.0 and steps[-1].done, row["id"]
            assert any(0.0 < s.progress < 1.0 for s in steps), row["id"]  # the annotated subgoals match
        finally:
            env.close()


@pytest.mark.slow  # a real lm_eval run (about 20 s)
def test_lm_eval_plays_alfworld_games_from_a_data_folder(tmp_path, alfworld_data):
    folder = tmp_path / "data" / "agentboard" / "data" / "alfworld"
    folder.mkdir(parents=True)
    row = {"additional_info": {"description": DESCRIPTION}, "subgoals": SUBGOALS, "difficulty": "easy"}
    (folder / "test.jsonl").write_text(json.dumps(row) + "\n")
    out = run_lm_eval(["--tasks", "acbench_realworld_alfworld", "--model", "dummy",
                       "--metadata", json.dumps({"data_dir": str(tmp_path / "data"), "max_steps": 3,
                                                 "max_invalid": 2})],
                      tmp_path, timeout=600, env={"ALFWORLD_DATA": str(alfworld_data)})
    result = out["results"]["results"]["acbench_realworld_alfworld"]
    assert result["progress_rate,none"] == 0.0 and result["skipped,none"] == 0.0 and result["env_error_rate,none"] == 0.0
    (sample,) = out["samples"]["acbench_realworld_alfworld"]
    assert sample["doc"]["acbench_data_source"].startswith("local:")
    transcript = json.loads(sample["resps"][0][0])
    assert transcript["goal"] == f"{TASK}." and transcript["end_reason"] == "2 invalid actions in a row"
    assert [s["observation"] for s in transcript["trajectory"]] == [
        "The action is not valid and therefore takes no effect. Nothing happens."] * 2


# ---- real ALFWorld games (../shared/data/alfworld, the split AgentBoard plays) -------------------
def _shared_game_rows():
    from lm_eval_acbench.tasks.realworld import load_episodes
    from helpers import shared_data_path

    root = shared_data_path("alfworld", "data", "alfworld", "json_2.1.1").parents[3]
    return load_episodes("alfworld", {"data_dir": str(root)})


def test_plain_alfworld_folder_named_by_a_relative_path_starts_every_game(monkeypatch, tmp_path):
    import os

    from lm_eval_acbench.tasks.realworld import load_episodes
    from helpers import shared_data_path

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    root = shared_data_path("alfworld", "data", "alfworld", "json_2.1.1").parents[3]
    monkeypatch.chdir(tmp_path)  # as the done-when command names it: --metadata '{"data_dir": "../..."}'
    rows = load_episodes("alfworld", {"data_dir": os.path.relpath(root, tmp_path)})
    assert len(rows) >= 12 and not [r for r in rows if r.get("load_error") or r.get("unavailable")]
    assert all(Path(r["game_file"]).is_absolute() for r in rows)


def test_plain_alfworld_folder_gives_one_row_per_game(monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    rows = _shared_game_rows()
    games = sorted(Path(rows[0]["game_file"]).parents[2].glob("*/*/game.tw-pddl"))
    assert [r["game_file"] for r in rows] == [str(g) for g in games] and len(rows) >= 12
    assert not [r for r in rows if r.get("load_error") or r.get("unavailable")]
    assert {r["subset"] for r in rows} == {"look_at_obj_in_light", "pick_and_place_simple", "pick_clean_then_place_in_recep",
                                           "pick_cool_then_place_in_recep", "pick_heat_then_place_in_recep",
                                           "pick_two_obj_and_place"}
    heat = next(r for r in rows if r["subset"].startswith("pick_heat"))
    (example,) = heat["agentboard_prompt"]["examples"]  # AgentBoard's examples for the task type
    assert example.startswith("Your task is to: put a hot apple in fridge.")


@pytest.mark.slow  # TextWorld's planner and one game per task type (1-3 min)
def test_planner_plan_wins_real_games(monkeypatch):
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    from lm_eval_acbench.envs.alfworld_env import _keep_argv

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    rows = {r["subset"]: r for r in _shared_game_rows()}
    for row in rows.values():
        with _keep_argv():
            planner = textworld.start(row["game_file"], request_infos=textworld.EnvInfos(extras=["walkthrough"]),
                                      wrappers=[AlfredDemangler(), AlfredInfos()])
            state = planner.reset()
        plan = (state[1] if isinstance(state, tuple) else state)["extra.walkthrough"]
        planner.close()
        env = make_env(row)
        try:
            env.reset()
            steps = [env.step(action) for action in plan]
        finally:
            env.close()
        assert steps[-1].progress == 1.0 and steps[-1].done, row["id"]
        assert all(s.progress < 1.0 for s in steps[:-1])


def test_a_played_game_leaves_the_next_load_on_the_same_data_folder(alfworld_data, tmp_path):
    """Importing alfworld sets $ALFWORLD_DATA to its default (~/.cache/alfworld) when unset. In
    a study all cells share one process: the base cell's episode imported alfworld, and the
    recipe cell's loader then read that default instead of the data folder and skipped its
    episode. Played in a fresh process so that no earlier import hides the effect."""
    import subprocess
    import sys

    script = tmp_path / "play_then_load.py"
    script.write_text(
        "import json, os, sys\n"
        "from lm_eval_acbench.tasks.realworld import load_episodes\n"
        "from lm_eval_acbench.envs.alfworld_env import make_env\n"
        "meta = {'data_dir': sys.argv[1]}\n"
        "first = load_episodes('alfworld', meta)\n"
        "make_env(first[0]).reset()\n"
        "second = load_episodes('alfworld', meta)\n"
        "print(json.dumps({'env': os.environ.get('ALFWORLD_DATA'),\n"
        "                  'rows': [[r.get('game_file'), r.get('unavailable')] for r in first],\n"
        "                  'again': [[r.get('game_file'), r.get('unavailable')] for r in second]}))\n")
    data_dir = tmp_path / "data"  # the shared data's layout: AgentBoard rows (none for ALFWorld), ALFWorld's games
    (data_dir / "agentboard" / "data").mkdir(parents=True)
    (data_dir / "alfworld").symlink_to(alfworld_data)
    env = {k: v for k, v in os.environ.items() if k != "ALFWORLD_DATA"}
    env["HOME"] = str(tmp_path)  # alfworld creates its default folder under $HOME
    done = subprocess.run([sys.executable, str(script), str(data_dir)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    want = [[str((data_dir / "alfworld").resolve() / "json_2.1.1" / "valid_unseen" / DESCRIPTION / "game.tw-pddl"),
             None]]
    assert out["rows"] == want
    assert out["again"] == want
    assert out["env"] is None
