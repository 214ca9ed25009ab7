"""Jericho and ALFWorld without their games: progress rules, action and text handling, and skipping.

Nothing here needs jericho, textworld or alfworld installed; the games themselves are played in
test_env_jericho.py and test_env_alfworld.py.
"""

from __future__ import annotations

import json
import logging
import sys

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from lm_eval_acbench import episodes
from lm_eval_acbench.envs.base import EnvUnavailable
from lm_eval_acbench.envs.jericho_env import clean_observation, cut_action, resolve_game_file, row_subgoals
from lm_eval_acbench.episodes import LoopSettings, run_episodes
from lm_eval_acbench.metrics.progress import (
    alfworld_progress, consume_pattern, pattern_progress_trace, pattern_text, regex_matches,
    regex_progress_trace,
)
from lm_eval_acbench.paths import task_dir
from lm_eval_acbench.tasks.realworld import load_episodes, process_results

texts = st.text(max_size=200)
patterns = st.lists(st.text(max_size=20), max_size=6)


# ---- the pure progress rules -----------------------------------------------------------------
def test_jericho_patterns_ignore_punctuation_and_consume_one_per_step():
    remaining = ["You open the mailbox.", "-= West of House =-", "Taken."]
    assert consume_pattern("You open the mailbox!", remaining) == 0
    # both the 2nd and 3rd pattern occur: only the first remaining one is consumed
    assert consume_pattern("West of House -- Taken", remaining[1:]) == 0
    assert consume_pattern("nothing here", remaining) is None
    observations = ["You open the mailbox", "x", "West of House, Taken", "Taken"]
    assert pattern_progress_trace(observations, remaining) == [
        pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    assert pattern_progress_trace(["anything"], ["...", "?!"]) == [0.0]  # empty after cleaning: never counted


def test_alfworld_progress_counts_the_goal_as_one_more_subgoal():
    subgoals = [r"You pick up the apple \d+", r"You clean the apple \d+", "(unbalanced["]
    observations = ["You arrive at countertop 1.", "You pick up the apple 1 from the countertop 1.",
                    "You clean the apple 1 using the sinkbasin 1.", "You pick up the apple 1 again",
                    "You move the apple 1 to the fridge 1."]
    trace = regex_progress_trace(observations, subgoals, won=[False, False, False, False, True])
    assert trace == [0.0, 0.25, 0.5, 0.5, 1.0]
    # not a valid expression: matched literally
    assert regex_matches("text with (unbalanced[ bracket", subgoals) == [False, False, True]
    assert alfworld_progress([True, True], won=False) == pytest.approx(2 / 3)
    assert alfworld_progress([], won=False) == 0.0 and alfworld_progress([], won=True) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, max_size=8), patterns)
def test_pattern_progress_is_total_bounded_and_monotone(observations, wanted):
    assert set(pattern_text(observations[0] if observations else "")) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")
    trace = pattern_progress_trace(observations, wanted)
    assert len(trace) == len(observations)
    assert all(0.0 <= value <= 1.0 for value in trace)
    assert trace == sorted(trace)


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, max_size=8), patterns, st.lists(st.booleans(), max_size=8))
def test_regex_progress_is_total_bounded_and_monotone(observations, wanted, won):
    trace = regex_progress_trace(observations, wanted, won)
    assert len(trace) == len(observations)
    assert all(0.0 <= value <= 1.0 for value in trace)
    assert trace == sorted(trace)
    assert all(value < 1.0 for value in trace) or any(won[:len(observations)])


@settings(max_examples=200, deadline=None)
@given(st.one_of(texts, st.none(), st.integers()), patterns)
def test_matchers_never_raise_on_odd_input(observation, wanted):
    assert len(regex_matches(observation, wanted)) == len(wanted)
    hit = consume_pattern(observation, wanted)
    assert hit is None or 0 <= hit < len(wanted)


@settings(max_examples=200, deadline=None)
@given(st.one_of(texts, st.none()))
def test_action_and_observation_cleaning_are_total(text):
    action = cut_action(text)
    assert "," not in action and "." not in action and len(action.split()) <= 20
    assert "\n" not in clean_observation(text)


def test_action_cutting_and_observation_cleaning():
    assert cut_action("go north, then east. And more") == "go north"
    assert cut_action("x " * 30) == " ".join(["x"] * 20)
    raw = "\nYou open it.\n[Your score has gone up by one point.]\n\n>      -= Studio =-0/3"
    assert clean_observation(raw) == "You open it."


def test_row_subgoals_join_numbered_parts_in_order():
    row = {"subgoals_10": ["c"], "subgoals_2": ["b"], "subgoals_1": ["a", 3], "difficulty": "hard"}
    assert row_subgoals(row) == ["a", "b", "c"]
    assert row_subgoals({"subgoals": ["x", "y"]}) == ["x", "y"]
    assert row_subgoals({}) == []


# ---- game files and skipping -----------------------------------------------------------------
def test_game_file_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("JERICHO_GAMES_DIR", raising=False)
    folder = tmp_path / "jericho"
    (folder / "games").mkdir(parents=True)
    (folder / "games" / "zork1.z5").write_bytes(b"")
    own = tmp_path / "mine"
    own.mkdir()
    (own / "zork1.z8").write_bytes(b"")
    assert resolve_game_file({"game_name": "zork1"}, folder) == (str(folder / "games" / "zork1.z5"), None)
    mine = resolve_game_file({"game_name": "zork1"}, folder, {"jericho_games_dir": str(own)})
    assert mine == (str(own / "zork1.z8"), None)
    relative = resolve_game_file({"game_name": "x", "game_file": "a/b.z5"}, folder)
    assert relative == (str(folder / "a" / "b.z5"), None)
    missing, reason = resolve_game_file({"game_name": "zork2"}, folder)
    assert missing is None and "no game file zork2.z5/.z8 in" in reason


def write_rows(root, env, rows):
    folder = root / "agentboard" / "data" / env
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def always(answer):
    return lambda requests: [answer] * len(requests)


def test_missing_data_and_games_skip_with_one_line_each(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("JERICHO_GAMES_DIR", raising=False)
    monkeypatch.setattr(episodes, "_warned_skips", set())
    # AgentBoard-style Jericho rows without their games; no ALFWorld rows at all
    write_rows(tmp_path, "jericho", [{"subgoals": ["a"], "difficulty": "easy"},
                                     {"game_name": "zork1", "subgoals": ["b"], "difficulty": "hard"}])
    metadata = {"data_dir": str(tmp_path), "alfworld_data": str(tmp_path / "nowhere")}
    jericho = load_episodes("jericho", metadata)
    alfworld = load_episodes("alfworld", metadata)
    assert [r["game_name"] for r in jericho] == ["905", "zork1"]  # AgentBoard's order names unnamed rows
    assert all(r["unavailable"].startswith("no Jericho game files") for r in jericho)
    assert len(alfworld) == 1 and alfworld[0]["unavailable"].startswith("no ALFWorld episodes")
    other = load_episodes("tool-query", {"data_source": "sample"})[:1]

    with caplog.at_level(logging.WARNING, logger="lm_eval.acbench_episodes"):
        out = run_episodes(jericho + alfworld + other, always("lol"), settings=LoopSettings(max_steps=2))
    assert [bool(t.get("skipped")) for t in out] == [True, True, True, False]
    assert out[3]["steps"] == 2.0  # the other environment ran as usual
    assert all(process_results({}, [json.dumps(t)]) == {"skipped": 1.0, "env_error_rate": 0.0} for t in out[:3])
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("acbench_realworld_jericho skipped: no Jericho game files (put AgentBoard's")
    assert lines[1].startswith("acbench_realworld_alfworld skipped: no ALFWorld episodes (")


def test_missing_alfworld_games_folder_is_one_reason_for_every_row(tmp_path):
    write_rows(tmp_path, "alfworld", [
        {"additional_info": {"description": f"pick_and_place_simple-Mug-None-Desk-{i}/trial_T1"},
         "subgoals": [], "difficulty": "easy"} for i in range(3)])
    rows = load_episodes("alfworld", {"data_dir": str(tmp_path), "alfworld_data": str(tmp_path / "alf")})
    assert {r["subset"] for r in rows} == {"pick_and_place_simple"}
    assert len({r["unavailable"] for r in rows}) == 1
    assert "alfworld-download" in rows[0]["unavailable"]


def test_missing_packages_and_files_are_clear_skips(monkeypatch, tmp_path):
    from lm_eval_acbench.envs import alfworld_env, jericho_env

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "jericho", None)
        with pytest.raises(EnvUnavailable, match=r"^jericho is not installed \(pip install jericho\)$"):
            jericho_env.make_env({"game_file": str(tmp_path / "g.z5")})
    with monkeypatch.context() as patch:
        for name in ("alfworld", "alfworld.agents.environment.alfred_tw_env"):  # also when imported before
            patch.setitem(sys.modules, name, None)
        with pytest.raises(EnvUnavailable, match=r"^alfworld is not installed \(pip install alfworld\)$"):
            alfworld_env.make_env({"game_file": str(tmp_path / "game.tw-pddl")})
    pytest.importorskip("jericho")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "textworld", None)
        with pytest.raises(EnvUnavailable, match="textworld is not installed"):
            spec = {"world_size": 1, "nb_objects": 1, "quest_length": 1, "seed": 1}
            jericho_env.make_local_env({"textworld": spec})  # what make_env's game process runs
    with pytest.raises(EnvUnavailable, match=r"Jericho game file .*nothere\.z5 not found"):
        jericho_env.make_env({"game_file": str(tmp_path / "nothere.z5")})
    pytest.importorskip("alfworld")
    with pytest.raises(EnvUnavailable, match=r"ALFWorld game file .*nothere\.tw-pddl not found"):
        alfworld_env.make_env({"game_file": str(tmp_path / "nothere.tw-pddl")})


def test_group_lists_both_new_environments():
    group = yaml.safe_load((task_dir() / "realworld" / "_realworld.yaml").read_text())
    assert {"acbench_realworld_jericho", "acbench_realworld_alfworld"} <= set(group["task"])


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_cut_action_sends_only_plain_game_input(text):
    command = cut_action(text)
    # printable ASCII without backslashes (frotz meta-commands hang the game), no clause after , or .
    assert all(" " <= c <= "~" and c != "\\" for c in command)
    assert "," not in command and "." not in command
    assert len(command.split()) <= 20 and command == " ".join(command.split())


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12), min_size=1, max_size=30))
def test_cut_action_keeps_plain_words(words):
    assert cut_action(" ".join(words)) == " ".join(words[:20])
