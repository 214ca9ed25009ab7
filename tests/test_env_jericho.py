"""Jericho adapter on a TextWorld game generated at test time: walkthrough, partial plans, bad actions.

The game is built once per session with TextWorld's generator (as ``tw-make custom`` does) and
played through jericho's FrotzEnv. Its subgoal patterns are read off the walkthrough's own
observations, as AgentBoard's annotations are read off the classic games.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("jericho")
pytest.importorskip("textworld")

from helpers import run_lm_eval  # noqa: E402
from lm_eval_acbench.envs.jericho_env import JerichoEpisode, make_env, textworld_game  # noqa: E402
from lm_eval_acbench.episodes import LoopSettings, run_episodes  # noqa: E402
from lm_eval_acbench.paths import SAMPLES_DIR  # noqa: E402

SPEC = {"world_size": 3, "nb_objects": 5, "quest_length": 3, "seed": 1}
SAMPLE_FILE = SAMPLES_DIR / "agentboard/data/jericho/test.jsonl"
SAMPLE_ROWS = [json.loads(line) for line in SAMPLE_FILE.read_text().splitlines()]


@pytest.fixture(scope="session")
def game(tmp_path_factory):
    """(game file, walkthrough, objective, patterns) of a small generated game (about 3 s)."""
    path = textworld_game(SPEC, cache=tmp_path_factory.mktemp("tw-games"))
    meta = json.loads(path.with_suffix(".json").read_text())
    walkthrough = list(meta["metadata"]["walkthrough"])
    plain = JerichoEpisode(path)
    plain.reset()
    # one pattern per walkthrough step: the first sentence of what the game answered
    patterns = [plain.step(action).observation.split(".")[0] for action in walkthrough]
    plain.close()
    return path, walkthrough, meta["objective"], patterns


def play(env, actions):
    return [env.step(action) for action in actions]


@pytest.fixture
def episode(game):
    """The generated game with its walkthrough patterns, reset, closed after the test."""
    path, _, _, patterns = game
    env = JerichoEpisode(path, patterns)
    env.reset()
    yield env
    env.close()


def test_walkthrough_reaches_full_progress(game):
    path, walkthrough, objective, patterns = game
    env = JerichoEpisode(path, patterns, goal=objective)
    try:
        first = env.reset()
        assert first and env.progress() == 0.0 and env.goal == objective
        steps = play(env, walkthrough)
        n = len(patterns)
        assert [s.progress for s in steps] == [pytest.approx((i + 1) / n) for i in range(n)]
        assert steps[-1].progress == 1.0 and steps[-1].done  # Inform's end-of-game question ends it
        assert all(s.valid for s in steps)
    finally:
        env.close()


def test_partial_plan_gives_partial_progress(game, episode):
    _, walkthrough, _, patterns = game
    steps = play(episode, walkthrough[:-1])
    assert steps[-1].progress == pytest.approx((len(walkthrough) - 1) / len(patterns))
    assert not steps[-1].done


def test_garbage_is_an_invalid_step_and_actions_are_cut(game, episode):
    _, walkthrough, _, patterns = game
    bad = episode.step("xyzzy frobnicate the quux")
    assert not bad.valid and bad.progress == 0.0
    assert bad.observation.startswith("The action is not valid")
    assert "not a verb I recognise" in bad.observation
    assert not episode.step("...").valid  # nothing left after cutting
    cut = episode.step(f"{walkthrough[0]}, and then {walkthrough[1]}")  # only the part before the comma
    assert cut.valid and cut.progress == pytest.approx(1 / len(patterns))


def test_check_valid_actions(game, episode, monkeypatch):
    walkthrough = game[1]
    listing = episode.step("check valid actions")
    # jericho has no action templates for generated games: the agent is told so
    assert listing.valid and "No list of valid actions" in listing.observation
    monkeypatch.setattr(episode.env, "get_valid_actions", lambda **kw: ["go south", "open chest"])
    listed = episode.step("Check valid actions.").observation
    assert listed == "You can take the following actions: go south, open chest"
    assert play(episode, walkthrough)[-1].progress == 1.0  # checking took no game turn


def test_without_patterns_the_game_decides(game):
    path, walkthrough, _, _ = game
    env = JerichoEpisode(path)
    try:
        env.reset()
        steps = play(env, walkthrough)
        # jericho reads TextWorld games' score (one point, for the whole quest) and their victory
        assert [s.progress for s in steps] == [0.0] * (len(steps) - 1) + [1.0]
        assert steps[-1].done and env.won
    finally:
        env.close()
        env.close()  # closing twice is harmless
    assert env.env is None


def test_episodes_through_the_loop(game):
    path, walkthrough, objective, patterns = game
    record = {"env": "jericho", "id": "g", "game_file": str(path), "subgoals": patterns, "goal": objective}
    plan = iter(walkthrough)

    def policy(requests):  # both episodes play the same plan, one step per model call
        return [next(plan, "look")] * len(requests)

    out = run_episodes([record, dict(record, id="h")], policy, settings=LoopSettings(max_steps=10))
    assert [t["success_rate"] for t in out] == [1.0, 1.0]
    assert out[0]["trajectory"][-1]["observation"].startswith("You close")


@pytest.mark.slow  # builds the four sample games (about 10 s on first use)
def test_sample_rows_are_solved_by_their_walkthroughs(tmp_path, monkeypatch):
    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path))
    for row in SAMPLE_ROWS:
        env = make_env(row)
        try:
            env.reset()
            meta = json.loads(textworld_game(row["textworld"]).with_suffix(".json").read_text())
            assert meta["objective"] == row["goal"]
            steps = play(env, meta["metadata"]["walkthrough"])
            assert steps[-1].progress == 1.0, (row["id"], [s.observation[:60] for s in steps])
            assert any(0.0 < s.progress < 1.0 for s in steps)
        finally:
            env.close()


@pytest.mark.slow  # a real lm_eval run (about 20 s)
def test_lm_eval_plays_jericho_games_from_a_data_folder(tmp_path, game):
    path, _, objective, patterns = game
    folder = tmp_path / "data" / "agentboard" / "data" / "jericho"
    (folder / "games").mkdir(parents=True)
    shutil.copy(path, folder / "games" / "tiny.z8")
    rows = [{"game_name": "tiny", "subgoals": patterns, "goal": objective, "difficulty": "easy"},
            {"game_name": "other", "game_file": "games/tiny.z8", "subgoals": patterns, "difficulty": "hard"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_lm_eval(["--tasks", "acbench_realworld_jericho", "--model", "dummy",
                       "--metadata", json.dumps({"data_dir": str(tmp_path / "data"), "max_steps": 3,
                                                 "max_invalid": 2})], tmp_path, timeout=600)
    result = out["results"]["results"]["acbench_realworld_jericho"]
    assert result["progress_rate,none"] == 0.0 and result["skipped,none"] == 0.0 and result["env_error_rate,none"] == 0.0
    samples = out["samples"]["acbench_realworld_jericho"]
    assert len(samples) == 2 and samples[0]["doc"]["acbench_data_source"].startswith("local:")
    transcript = json.loads(samples[0]["resps"][0][0])
    assert transcript["goal"] == objective and transcript["end_reason"] == "2 invalid actions in a row"
    assert [s["action"] for s in transcript["trajectory"]] == ["lol", "lol"]  # the dummy model's answer
    assert "not a verb I recognise" in transcript["trajectory"][0]["observation"]


def test_frotz_meta_commands_and_odd_bytes_never_reach_the_game(game):
    """A line starting with a backslash is a dumb-frotz meta-command that hangs the game for good;
    non-ASCII text used to make jericho's truncation raise. Through the loop, with a step timeout,
    a regression fails here instead of hanging."""
    path, walkthrough, objective, patterns = game
    record = {"env": "jericho", "id": "g", "game_file": str(path), "subgoals": patterns, "goal": objective}
    answers = iter(["\\help", "\\look", "\U0001F600" * 60, "\x1b[31m\x00", *walkthrough])

    def policy(requests):
        return [next(answers, "look")] * len(requests)

    (out,) = run_episodes([record], policy, settings=LoopSettings(max_steps=20, max_invalid=0, step_timeout=30))
    assert out["env_error_rate"] == 0.0 and "error" not in out, out.get("error")
    steps = out["trajectory"]
    assert [s["action"] for s in steps[:2]] == ["\\help", "\\look"]
    assert steps[0]["observation"] and "DUMB-FROTZ" not in steps[0]["observation"]  # the game read "help"
    assert steps[1]["valid"] and "Cookhouse" in steps[1]["observation"]  # and "look"
    assert not steps[2]["valid"]  # nothing of the emoji answer is left to send
    assert out["success_rate"] == 1.0  # the walkthrough after them still wins


def test_agentboard_rows_find_games_in_agentboard_layout(tmp_path, game):
    """AgentBoard's jericho rows carry no game name (its run config lists the 20 games and pairs
    them with the rows by position) and its games live in
    ``data/jericho/z-machine-games-master/jericho-game-suite``; "afflicted" is one of the .z8 games.
    Our generated game stands in for it under that name."""
    from lm_eval_acbench.tasks.realworld import load_episodes

    path, walkthrough, _, patterns = game
    folder = tmp_path / "agentboard" / "data" / "jericho"
    suite = folder / "z-machine-games-master" / "jericho-game-suite"
    suite.mkdir(parents=True)
    shutil.copy(path, suite / "afflicted.z8")
    # AgentBoard's row shape: subgoals (one row split into subgoals_1, subgoals_2) and difficulty
    rows = [{"subgoals": patterns, "difficulty": "easy"},
            {"subgoals": patterns, "difficulty": "hard"},
            {"subgoals_1": patterns[:1], "subgoals_2": patterns[1:], "difficulty": "hard"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_episodes("jericho", {"data_dir": str(tmp_path)})
    assert [r["game_name"] for r in records] == ["905", "acorncourt", "afflicted"]
    assert "no game file 905.z5/.z8 in" in records[0]["unavailable"] and str(suite) in records[0]["unavailable"]
    assert records[2]["game_file"] == str((suite / "afflicted.z8").resolve())
    assert records[2]["subgoals"] == patterns
    plan = iter(walkthrough)
    out = run_episodes(records, lambda requests: [next(plan, "look") for _ in requests],
                       settings=LoopSettings(max_steps=10))
    assert out[0]["skipped"] and out[1]["skipped"]
    assert out[2]["success_rate"] == 1.0 and out[2]["env_error_rate"] == 0.0
    progress = [s["progress"] for s in out[2]["trajectory"]]
    assert progress == [pytest.approx((i + 1) / len(patterns)) for i in range(len(patterns))]


def crashing_env(record):
    """A real game whose process dies of SIGSEGV on the action "crash", as frotz does on some input
    (run in the child process of envs.isolated)."""
    import os
    import signal

    env = JerichoEpisode(record["game_file"], record["subgoals"])
    step = env.step

    def crash_or_step(action):
        if action == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        return step(action)

    env.step = crash_or_step
    return env


def test_a_crashed_game_process_is_an_env_error_of_its_episode_only(game):
    from lm_eval_acbench.envs.isolated import ProcessEnv

    path, walkthrough, _, patterns = game
    records = [{"env": "jericho", "id": i, "game_file": str(path), "subgoals": patterns} for i in ("a", "b")]
    plans = {0: iter([walkthrough[0], "crash"]), 1: iter(walkthrough)}

    def policy(requests):
        return [next(plans[r.episode], "look") for r in requests]

    out = run_episodes(records, policy, settings=LoopSettings(max_steps=10),
                       make_env=lambda record: ProcessEnv(f"{__name__}:crashing_env", record))
    crashed, fine = out
    assert crashed["end_reason"].startswith("environment error at step 2: EnvProcessDied")
    assert "SIGSEGV" in crashed["error"] and crashed["env_error_rate"] == 1.0
    assert crashed["progress_rate"] == pytest.approx(1 / len(patterns))  # what it reached before the crash
    assert fine["success_rate"] == 1.0 and fine["env_error_rate"] == 0.0
