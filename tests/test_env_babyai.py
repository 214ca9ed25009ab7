"""BabyAI as AgentBoard plays it: its rows' level and seed give the row's own first observation,
word for word; its high-level actions reach the goal; its subgoal rule scores progress."""

from __future__ import annotations

import json
import re
import sys

import pytest
from hypothesis import example, given, settings, strategies as st

pytest.importorskip("minigrid")

from lm_eval_acbench.envs.babyai import (  # noqa: E402
    agentboard_goal, agentboard_level_and_seed, make_env, normalise_action,
)
from lm_eval_acbench.envs.base import EnvUnavailable  # noqa: E402
from lm_eval_acbench.metrics.progress import babyai_subgoal_hit, babyai_subgoal_matches  # noqa: E402
from lm_eval_acbench.paths import SAMPLES_DIR  # noqa: E402
from helpers import SHARED_DATA  # noqa: E402

SAMPLE_ROWS = [json.loads(line) for line in (SAMPLES_DIR / "agentboard/data/babyai/test.jsonl").read_text().splitlines()]
SHARED_FILE = SHARED_DATA / "agentboard" / "data" / "babyai" / "test.jsonl"
SHARED_ROWS = [json.loads(line) for line in SHARED_FILE.read_text().splitlines()] if SHARED_FILE.is_file() else []
needs_shared = pytest.mark.skipif(not SHARED_ROWS, reason=f"real data not present: {SHARED_FILE}")


def greedy(env, limit=12):
    """Go to / pick up the mission's object by its high-level action once it is in view, else turn."""
    wanted = re.match(r"(go to|pick up) (?:the|a) (\w+) (\w+)$", env.mission)
    steps = []
    for _ in range(limit):
        action = "turn left"
        if wanted:
            verb = "go to" if wanted.group(1) == "go to" else "pick up"
            prefix = f"{normalise_action(verb)} {wanted.group(2)} {wanted.group(3)} "
            action = next((a for a in env.actions if a.startswith(prefix)), action)
        steps.append((action, env.step(action)))
        if steps[-1][1].done:
            break
    return steps


@needs_shared
@pytest.mark.parametrize("row", SHARED_ROWS, ids=lambda r: str(r["id"]))
def test_agentboard_row_reproduces_its_first_observation(row):
    env = make_env(row)
    try:
        first = env.reset()
        assert first == row["additional_info"]["init_obs"]
        assert env.mission == row["goal"] and env.goal == agentboard_goal(row["goal"])
    finally:
        env.close()


def test_agentboard_seed_rule_and_bad_rows():
    assert agentboard_level_and_seed({"id": 9, "additional_info": {"subtask": "BabyAI-GoToRedBall-v0"}}) == (
        "BabyAI-GoToRedBall-v0", 1235)
    assert agentboard_level_and_seed({"level": "BabyAI-GoToObj-v0", "seed": 3}) == ("BabyAI-GoToObj-v0", 3)
    with pytest.raises(ValueError, match="names no level"):
        agentboard_level_and_seed({"id": 1, "goal": "go to the green key"})
    with pytest.raises(ValueError, match="not a number"):
        agentboard_level_and_seed({"id": "x", "additional_info": {"subtask": "BabyAI-GoToObj-v0"}})
    with pytest.raises(ValueError, match="cannot build BabyAI level"):
        make_env({"level": "BabyAI-NoSuchLevel-v0", "seed": 0})


@needs_shared
def test_high_level_actions_reach_the_goal_and_progress_follows_agentboards_rule():
    rows = {r["id"]: r for r in SHARED_ROWS}
    # row 0: the red ball comes into view after one turn (first subgoal, "There is a red ball **"),
    # then "go to red ball 1" leaves it right in front at 1 step (second subgoal)
    env = make_env(rows[0])
    env.reset()
    steps = greedy(env)
    assert [(a, s.progress) for a, s in steps] == [("turn left", 0.5), ("go to red ball 1", 1.0)]
    assert "There is a red ball 1 right in front of you 1 steps away." in steps[-1][1].observation
    assert steps[-1][1].done and steps[-1][1].observation.endswith("The task is completed.")
    # row 72: pick up the purple key once seen
    env = make_env(rows[72])
    env.reset()
    steps = greedy(env)
    assert [(a, s.progress) for a, s in steps] == [("turn left", 0.5), ("pickup purple key 1", 1.0)]
    assert "You are carrying a purple key." in steps[-1][1].observation


def test_sample_rows_keep_mission_progress():
    row = next(r for r in SAMPLE_ROWS if r["level"] == "BabyAI-GoToRedBallGrey-v0")
    env = make_env(row)
    first = env.reset()
    assert env.goal == row["goal"] and first.startswith("In front of you in this room")
    steps = greedy(env)
    assert steps[-1][1].progress == 1.0 and env.native_progress() == 1.0


def test_invalid_and_help_actions():
    env = make_env(SAMPLE_ROWS[0])
    env.reset()
    bad = env.step("fly to the moon")
    assert not bad.valid and bad.observation == "The action is not recognized. Please check valid actions."
    assert not env.step("").valid
    listing = env.step("check available actions")
    assert listing.valid and listing.observation.startswith("You can take the following actions: turn left, turn right")


def test_missing_minigrid_is_a_clear_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "minigrid", None)
    with pytest.raises(EnvUnavailable, match="pip install minigrid"):
        make_env(SAMPLE_ROWS[0])


def test_subgoal_rule_hand_checked():
    observation = ("In front of you in this room, you can see several objects: There is a red ball 1 right in front "
                   "of you 1 steps away.  The room has walls around you. You are not carrying anything.")
    assert babyai_subgoal_hit(observation, " There is a red ball ** right in front of you 1 steps away.")
    assert babyai_subgoal_hit(observation, "There is a red ball **")
    assert not babyai_subgoal_hit(observation, "There is a red ball ** 2 steps in front of you")
    assert not babyai_subgoal_hit(observation, "You are carrying a red ball.")
    # pieces must meet in one sentence, not across sentences
    assert not babyai_subgoal_hit("There is a red ball 1 far. right in front of you 1 steps away", "There is a red ball ** right in front of you 1 steps away.")
    assert babyai_subgoal_matches(observation, ["There is a blue key *", "There is a red ball *"]) == [False, True]


patterns = st.text(alphabet="ab *.", max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.none(), st.integers()), st.one_of(patterns, st.none(), st.integers()))
@example("x", "")
@example("", "**")
def test_subgoal_hit_is_total(observation, pattern):
    assert babyai_subgoal_hit(observation, pattern) in (True, False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abc ", min_size=1, max_size=5), min_size=1, max_size=4), st.text(alphabet="abc .", max_size=30))
def test_subgoal_hit_matches_when_every_piece_is_in_one_sentence(pieces, filler):
    pieces = [p for p in pieces if p.strip(".")]
    if not pieces:
        return
    sentence = filler.replace(".", "") + "".join(pieces)
    assert babyai_subgoal_hit(f"{filler}. {sentence}. end", "**".join(pieces))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.none(), st.integers()))
def test_normalise_action_is_total(text):
    out = normalise_action(text)
    assert isinstance(out, str) and out == out.strip() and not out.startswith("pick up")
