"""acbench's own one-shot examples (envs/own_examples.json): each replays in its environment to
the very text shown to the model, and reaches its goal; rows without AgentBoard's prompt files
get them, in AgentBoard's layout, and never their own episode as the example."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from lm_eval_acbench.envs.own_examples import examples, own_prompt, play_example
from lm_eval_acbench.envs.prompts import agentboard_messages
from lm_eval_acbench.tasks.realworld import load_episodes

NEEDS = {"pddl": ["pddl"], "babyai": ["minigrid"], "scienceworld": ["scienceworld"],
         "jericho": ["jericho", "textworld"], "alfworld": ["alfworld"]}
CASES = [(env, key) for env, entry in examples().items() for key in entry["examples"]]


def test_every_environment_with_a_prompt_file_has_an_example():
    assert {env for env, _ in CASES} == set(NEEDS)
    assert {key for env, key in CASES if env == "pddl"} == {"blocksworld", "gripper", "barman", "tyreworld"}


@pytest.mark.parametrize("env, key", [pytest.param(e, k, marks=pytest.mark.slow) if e == "scienceworld"
                                      else (e, k) for e, k in CASES])
def test_example_replays_to_its_text_and_reaches_the_goal(env, key, tmp_path, monkeypatch):
    for module in NEEDS[env]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    if env == "scienceworld" and shutil.which("java") is None:
        pytest.skip("no java")
    monkeypatch.setenv("ACBENCH_CACHE", str(tmp_path))  # games are built afresh
    example = examples()[env]["examples"][key]
    text, steps = play_example(dict(example["record"]), list(example["actions"]))
    assert text == example["text"]  # every stated observation is what the environment answers
    assert steps[-1].progress == example["final_progress"] == 1.0
    assert all(s.valid for s in steps)
    assert text.startswith(f"Goal: ") and text.count("\nAction: ") == len(example["actions"])


def test_sample_rows_get_our_examples_in_agentboards_layout(monkeypatch):
    monkeypatch.delenv("ACBENCH_DATA_DIR", raising=False)
    for env in NEEDS:
        rows = load_episodes(env, {})
        prompts = [r.get("agentboard_prompt") for r in rows]
        if env == "alfworld":  # the example is played on one of the sample problems: not shown to it
            assert prompts[[r["id"] for r in rows].index("mug_on_diningtable")] is None
            prompts = [p for r, p in zip(rows, prompts) if r["id"] != "mug_on_diningtable"]
        assert prompts and all(p and p["source"] == "acbench" and len(p["examples"]) == 1 for p in prompts), env
        for row, prompt in zip(rows, prompts):
            if env == "pddl":
                assert prompt["examples"] == [examples()["pddl"]["examples"][row["game_name"]]["text"]]
    messages = agentboard_messages(prompts[0], "reach it", "you are here", [("look", "a room")], 50,
                                   instructions="Rules of this world.")
    user = messages[1]["content"]
    assert messages[0]["content"] == examples()["alfworld"]["system_msg"] == prompts[0]["system_msg"]
    assert user.startswith("Rules of this world.\nHere are examples:\n")
    assert "You should perform actions to accomplish the goal: reach it" in user
    assert user.endswith("Observation: you are here\nAction: look\nObservation: a room\nAction: ")


def test_no_example_for_an_agentboard_pddl_domain_or_the_tool_worlds():
    assert own_prompt("pddl", {"game_name": "gripper", "domain": "(define (domain gripper-strips) ...)"}) is None
    assert own_prompt("pddl", {"game_name": "gripper"})["source"] == "acbench"
    assert own_prompt("tool-query", {"id": 0}) is None
