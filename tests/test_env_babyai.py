"""BabyAI as text: minigrid's own bot solves the sample episodes; sub-instructions give progress."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("minigrid")

from lm_eval_acbench.envs.babyai import ACTIONS, make_env, parse_action  # noqa: E402
from lm_eval_acbench.envs.base import EnvUnavailable  # noqa: E402
from lm_eval_acbench.paths import SAMPLES_DIR  # noqa: E402

ROWS = [json.loads(line) for line in (SAMPLES_DIR / "agentboard/data/babyai/test.jsonl").read_text().splitlines()]
BOT_ACTIONS = {0: "turn left", 1: "turn right", 2: "move forward", 3: "pick up", 4: "drop", 5: "toggle"}


def play_bot(row, limit=80):
    from minigrid.utils.baby_ai_bot import BabyAIBot

    env = make_env(row)
    env.reset()
    bot, steps = BabyAIBot(env.env), []
    while len(steps) < limit:
        action = int(bot.replan())
        if action not in BOT_ACTIONS:
            break
        steps.append(env.step(BOT_ACTIONS[action]))
        if steps[-1].done:
            break
    return env, steps


@pytest.mark.parametrize("row", ROWS[::2], ids=lambda r: r["id"])
def test_bot_solves_sample_episodes(row):
    env, steps = play_bot(row)
    assert env.goal == row["goal"]
    assert steps[-1].progress == 1.0 and "completed the mission" in steps[-1].observation


def test_compound_mission_gives_partial_progress():
    row = next(r for r in ROWS if r["level"] == "BabyAI-GoToSeqS5R2-v0" and r["seed"] == 1)
    _, steps = play_bot(row)
    trace = sorted({s.progress for s in steps})
    assert trace[0] == 0.0 and trace[-1] == 1.0 and any(0.0 < p < 1.0 for p in trace)


def test_observation_text_and_invalid_actions():
    env = make_env(ROWS[0])
    first = env.reset()
    assert "You are facing" in first and "carrying nothing" in first
    bad = env.step("fly to the moon")
    assert not bad.valid and "not valid" in bad.observation and bad.progress == 0.0


def test_missing_minigrid_is_a_clear_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "minigrid", None)
    with pytest.raises(EnvUnavailable, match="pip install minigrid"):
        make_env(ROWS[0])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_action_total(text):
    assert parse_action(text) in (None, *ACTIONS)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ACTIONS), st.sampled_from(["", "Action: ", "I will "]), st.sampled_from(["", ".", " now"]))
def test_parse_action_canonical_forms(action, prefix, suffix):
    expected = action
    text = f"{prefix}{action}{suffix}"
    from lm_eval_acbench.episodes import extract_action

    assert parse_action(extract_action(text)) == (expected if prefix != "I will " else None)
