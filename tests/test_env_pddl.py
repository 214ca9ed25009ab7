"""PDDL environment: scripted plans reach progress 1.0, partial plans the expected share."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from lm_eval_acbench.envs.pddl_env import (
    GAMES, PddlSim, domain_text, generate_records, make_env, parse_action, shortest_plan,
)
from lm_eval_acbench.paths import SAMPLES_DIR

SAMPLE = SAMPLES_DIR / "agentboard" / "data" / "pddl" / "test.jsonl"


def bfs_plan(sim: PddlSim, limit: int = 20000) -> list[str]:
    """Shortest plan by breadth-first search over the simulator's own valid actions."""
    plan = shortest_plan(sim, limit)
    assert plan is not None, "no plan found"
    return plan


def test_sample_set_is_the_seeded_generator_output():
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    regenerated = [r for g in GAMES for r in generate_records(g, 5, seed=0)]
    assert [r["problem"] for r in rows] == [r["problem"] for r in regenerated]
    assert {r["game_name"] for r in rows} == set(GAMES)


def barman_plan(problem: str) -> list[str]:
    """Hand-written plan for a one-cocktail barman problem (search is too slow for a test)."""
    first = re.search(r"\(cocktail-part1 cocktail1 (\w+)\)", problem).group(1)
    second = re.search(r"\(cocktail-part2 cocktail1 (\w+)\)", problem).group(1)
    return ["grasp left shot2", f"fill-shot shot2 {first} left dispenser-{first}",
            f"pour-shot-to-shaker shot2 {first} shaker1 left", f"clean-shot shot2 {first} left",
            f"fill-shot shot2 {second} left dispenser-{second}",
            f"pour-shot-to-shaker shot2 {second} shaker1 left", "leave left shot2", "grasp left shaker1",
            f"shake cocktail1 {first} {second} shaker1 left", "pour-shaker-to-shot cocktail1 shot1 left shaker1"]


@pytest.mark.parametrize("game", GAMES)
def test_optimal_plan_solves_each_game(game):
    record = generate_records(game, 1, seed=3)[0]
    env = make_env(record)
    plan = barman_plan(record["problem"]) if game == "barman" else bfs_plan(env.sim)
    env = make_env(record)
    env.reset()
    steps = [env.step(action) for action in plan]
    assert all(s.valid for s in steps)
    assert steps[-1].progress == 1.0 and steps[-1].done
    assert all(s.progress < 1.0 for s in steps[:-1])


def test_partial_plan_gives_partial_match_progress():
    problem = """(define (problem p) (:domain blocksworld) (:objects a b c)
      (:init (handempty) (ontable a) (ontable b) (ontable c) (clear a) (clear b) (clear c))
      (:goal (and (on a b) (on b c))))"""
    env = make_env({"game_name": "blocksworld", "problem": problem})
    assert env.progress() == 0.0
    assert env.step("pick up b").progress == 0.0
    half = env.step("stack b on c")
    assert half.valid and half.progress == 0.5 and not half.done
    bad = env.step("stack a b")  # not holding a
    assert not bad.valid and "not valid" in bad.observation and bad.progress == 0.5
    env.step("pick-up a")
    assert env.step("(stack a b)").progress == 1.0


def test_typed_arguments_are_checked_and_valid_actions_listed():
    record = generate_records("gripper", 1, seed=1)[0]
    env = make_env(record)
    assert not env.step("pick rooma ball1 left").valid  # wrong types
    listing = env.step("check valid actions").observation
    assert "pick ball1 rooma left" in listing


def test_negative_goal_literal():
    sim = PddlSim(domain_text("blocksworld"), """(define (problem p) (:domain blocksworld) (:objects a)
      (:init (handempty) (ontable a) (clear a)) (:goal (and (not (ontable a)) (holding a))))""")
    assert sim.progress() == 0.0
    assert sim.apply("pick-up", ("a",)) and sim.progress() == 1.0


ARITY = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2, "jack-up": 2, "jack-down": 2}
names = st.sampled_from(sorted(ARITY))
objects = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(
    lambda w: w not in {"from", "on", "onto", "to", "in", "into", "with", "using", "the", "at",
                        "up", "down", "pick", "put", "jack", "stack", "unstack"})


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_action_never_raises(text):
    result = parse_action(text, ARITY)
    assert result is None or len(result[1]) == ARITY[result[0]]


@settings(max_examples=200, deadline=None)
@given(names, st.lists(objects, min_size=2, max_size=2), st.sampled_from(["{}", "({})", "{}."]),
       st.booleans(), st.booleans())
def test_parse_action_roundtrip(name, args, wrap, spaced, filler):
    args = args[: ARITY[name]]
    shown_name = name.replace("-", " ") if spaced else name
    words = [shown_name, args[0]] + ((["from"] if filler else []) + args[1:] if len(args) > 1 else [])
    text = wrap.format(" ".join(words)).upper() if filler else wrap.format(" ".join(words))
    assert parse_action(text, ARITY) == (name, tuple(args))


# ---- AgentBoard's own rows, domains and problems (../shared/data) -------------------------------
def _agentboard_pddl_rows():
    from lm_eval_acbench.tasks.realworld import load_episodes
    from helpers import shared_data_path

    root = shared_data_path("agentboard", "data", "pddl", "test.jsonl").parents[3]
    return load_episodes("pddl", {"data_dir": str(root)})


def test_agentboard_rows_get_the_problem_agentboard_plays():
    rows = _agentboard_pddl_rows()
    assert len(rows) == 20 and not [r for r in rows if r.get("load_error")]
    by_id = {r["id"]: r for r in rows}
    # AgentBoard: gripper 0-19, blockworld 20-29, barman 30-49, tyreworld 50-59, each domain's
    # problems in sorted file-name order (so blockworld's second problem is problem10.pddl)
    assert by_id[0]["problem_name"] == "prob01.pddl" and by_id[21]["problem_name"] == "problem10.pddl"
    assert by_id[51]["problem_name"] == "p02.pddl"
    for row in rows:
        env = make_env(row)
        assert env.sim.goal_sentences() == sorted(s.strip() for s in row["subgoals"]), row["id"]
        env.reset()
        assert env.goal == row["goal"] and env.progress() == 0.0  # AgentBoard counts from the first valid action
        assert row["agentboard_prompt"]["system_msg"]  # AgentBoard's prompt file for its domain
    assert any(make_env(row).sim.progress() > 0 for row in rows)  # some goal facts hold from the start


@pytest.mark.parametrize("row_id", [27, 54, 0])
def test_a_plan_reaches_success_on_real_problems(row_id):
    row = next(r for r in _agentboard_pddl_rows() if r["id"] == row_id)
    env = make_env(row)
    plan = bfs_plan(PddlSim(row["domain"], row["problem"]), limit=60000)
    env.reset()
    steps = [env.step(action) for action in plan]
    assert all(s.valid for s in steps) and steps[-1].progress == 1.0 and steps[-1].done
    assert steps[-1].observation.endswith("The goal is satisfied.")


def test_agentboard_action_wording_is_read():
    row = next(r for r in _agentboard_pddl_rows() if r["game_name"] == "gripper")
    env = make_env(row)
    env.reset()
    step = env.step("Pick up ball1 at rooma with arm right.")
    # AgentBoard's own example shows this state sentence after that action
    assert step.valid and "Ball1 is carrying right." in step.observation and "Right is free." not in step.observation
    assert not env.step("Pick up ball1 at rooma with arm right.").valid  # the gripper is no longer free


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.none(), st.integers(),
                 st.lists(st.sampled_from(["pick", "Pick", "up", "ball1", "rooma", "right", "move", "(", ")", "to"]),
                          max_size=8).map(" ".join)))
def test_agentboard_action_reading_is_total(text):
    from lm_eval_acbench.envs.pddl_env import parse_action_anywhere

    arity, objects = {"pick": 3, "move": 2, "drop": 3}, {"ball1", "rooma", "roomb", "right", "left"}
    out = parse_action_anywhere(text, arity, objects)
    assert out is None or (len(out[1]) == arity[out[0]] and set(out[1]) <= objects)
