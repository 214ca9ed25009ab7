"""The multi-turn loop: batching, memory, ending rules, faults and the lm-eval adapter."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from lm_eval_acbench.envs.base import EnvUnavailable, Step
from lm_eval_acbench.envs.pddl_env import generate_records
from lm_eval_acbench.episodes import (
    MAX_ACTION_CHARS, LoopSettings, build_messages, check_lm_eval, extract_action, run_episodes,
)
from lm_eval_acbench.tasks.realworld import process_results


def goal_of(request) -> str:
    return request.messages[1]["content"].split("\n", 1)[0]


def scripted(plans: dict[str, list[str]], calls: list):
    """A policy that plays a fixed plan per goal (and 'noop' once the plan is used up)."""
    cursors = {goal: iter(plan) for goal, plan in plans.items()}

    def policy(requests):
        calls.append(len(requests))
        return [" Action: " + next(cursors[goal_of(r)], "noop") + "\nmore text" for r in requests]

    return policy


def bw(n_goal_records=3):
    records = generate_records("blocksworld", n_goal_records, seed=7)
    for r in records:
        r["env"] = "pddl"
    return records


class CountingEnv:
    """A real (tiny) environment: reach ``target`` by answering 'inc'; optionally crash or hang."""

    tools: list = []

    def __init__(self, record):
        self.target = record["target"]
        self.value = 0
        self.fault = record.get("fault")
        self.instructions = "Answer inc to count up."
        self.goal = f"count to {self.target} ({record['id']})"

    def reset(self):
        return "value 0"

    def progress(self):
        return self.value / self.target

    def step(self, action):
        if self.fault == "crash" and self.value == 1:
            raise RuntimeError("simulator exploded")
        if self.fault == "hang" and self.value == 1:
            time.sleep(3)
        if action != "inc":
            return Step("invalid", self.progress(), valid=False)
        self.value += 1
        return Step(f"value {self.value}", self.progress(), done=self.value >= self.target)

    def close(self):
        pass


def counting_env(record):
    if record.get("fault") == "missing":
        raise EnvUnavailable("countlib is not installed")
    return CountingEnv(record)


def always(answer):
    calls = []

    def policy(requests):
        calls.append(len(requests))
        return [answer] * len(requests)

    policy.calls = calls
    return policy


def test_one_batched_call_per_step_and_success():
    records = [{"id": i, "target": t} for i, t in enumerate([1, 3, 5, 2])]
    policy = always("inc")
    out = run_episodes(records, policy, make_env=counting_env, settings=LoopSettings(max_steps=30))
    assert policy.calls == [4, 3, 2, 1, 1]  # live episodes shrink as they succeed
    assert [t["steps"] for t in out] == [1, 3, 5, 2]
    assert all(t["success_rate"] == 1.0 and t["end_reason"] == "success" for t in out)


def test_step_limit_and_partial_progress():
    out = run_episodes([{"id": 0, "target": 4}], always("inc"), make_env=counting_env,
                       settings=LoopSettings(max_steps=3))
    assert out[0]["end_reason"] == "step limit"
    assert out[0]["progress_rate"] == pytest.approx(0.75)
    assert out[0]["success_rate"] == 0.0
    assert [s["progress"] for s in out[0]["trajectory"]] == [0.25, 0.5, 0.75]


def test_invalid_actions_end_the_episode():
    out = run_episodes([{"id": 0, "target": 4}], always("jump"), make_env=counting_env,
                       settings=LoopSettings(max_steps=30, max_invalid=3))
    assert out[0]["steps"] == 3 and out[0]["invalid_actions"] == 3
    assert "invalid" in out[0]["end_reason"]


def test_memory_bounds_the_history_in_the_prompt():
    seen = []

    def policy(requests):
        seen.append(requests[0].messages[1]["content"])
        return ["inc"]

    run_episodes([{"id": 0, "target": 6}], policy, make_env=counting_env, settings=LoopSettings(memory=2))
    assert seen[0].count("Action: inc") == 0
    assert seen[-1].count("Action: inc") == 2 and "Observation: value 5" in seen[-1]
    assert "Observation: value 3" not in seen[-1]


def test_crash_hang_and_missing_dependency_end_only_their_episode():
    records = [{"id": 0, "target": 3}, {"id": 1, "target": 3, "fault": "crash"},
               {"id": 2, "target": 3, "fault": "hang"}, {"id": 3, "target": 3, "fault": "missing"}]
    start = time.perf_counter()
    out = run_episodes(records, always("inc"), make_env=counting_env, settings=LoopSettings(step_timeout=0.3))
    assert time.perf_counter() - start < 2.5
    assert out[0]["success_rate"] == 1.0
    assert "simulator exploded" in out[1]["end_reason"] and out[1]["success_rate"] == 0.0
    assert "did not answer within 0.3 s" in out[2]["end_reason"]
    assert out[1]["progress_rate"] == pytest.approx(1 / 3)
    assert out[3]["skipped"] == "countlib is not installed"
    assert process_results({}, [json.dumps(out[3])]) == {"skipped": 1.0, "env_error_rate": 0.0}
    assert process_results({}, [json.dumps(out[0])])["success_rate"] == 1.0
    assert [process_results({}, [json.dumps(t)])["env_error_rate"] for t in out[:3]] == [0.0, 1.0, 1.0]


def test_pddl_episodes_through_the_loop_with_scripted_plans():
    records = bw(3)
    from lm_eval_acbench.envs.pddl_env import make_env
    from test_env_pddl import bfs_plan

    plans, expected_calls = {}, 0
    for r in records:
        env = make_env(r)
        plan = bfs_plan(env.sim)
        plans[f"Goal: {env.goal}"] = plan
        expected_calls = max(expected_calls, len(plan))
    calls = []
    out = run_episodes(records, scripted(plans, calls), settings=LoopSettings(max_steps=30))
    assert all(t["success_rate"] == 1.0 for t in out)
    assert len(calls) == expected_calls
    first = out[0]["trajectory"][0]
    assert first["prompt"].endswith("Action:") and first["action"] and first["observation"].startswith("You did")


def test_transcript_is_json_and_rescorable():
    out = run_episodes([{"id": 0, "target": 2}], always("inc"), make_env=counting_env)
    again = json.loads(json.dumps(out[0]))
    assert process_results({}, [json.dumps(again)]) == {
        "progress_rate": 1.0, "success_rate": 1.0, "steps": 2.0, "invalid_actions": 0.0, "env_error_rate": 0.0,
        "skipped": 0.0}


def test_settings_from_metadata():
    s = LoopSettings.from_mapping({"max_steps": "3", "memory": 0, "step_timeout": 1.5, "max_invalid": None})
    assert (s.max_steps, s.memory, s.step_timeout, s.max_invalid) == (3, 0, 1.5, 3)
    assert LoopSettings.from_mapping({"max_steps": 0}).max_steps == 1


def test_messages_carry_goal_observation_and_system_instruction():
    messages = build_messages("rules", "win", [("a", "b")], "obs", 5, system_instruction="be brief")
    assert messages[0] == {"role": "system", "content": "be brief\n\nrules"}
    assert "Goal: win" in messages[1]["content"] and "Latest observation: obs" in messages[1]["content"]


def test_lm_eval_internals_are_what_the_adapter_expects():
    import lm_eval.evaluator as evaluator

    from lm_eval_acbench import episodes

    assert check_lm_eval(evaluator) is None
    episodes.patch_evaluator(evaluator)  # idempotent, whether or not the start-up hook ran
    assert getattr(evaluator.evaluate, "_acbench_episodes", False)
    episodes.require_loop()


def test_unknown_transcript_fails_clearly():
    with pytest.raises(RuntimeError, match="not an episode transcript"):
        process_results({}, ["the model just talked"])


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_extract_action_is_total_and_one_line(text):
    action = extract_action(text)
    assert "\n" not in action and "\r" not in action
    assert len(action) <= MAX_ACTION_CHARS
    assert action == action.strip()


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9 _\-]{0,30}[a-z0-9]", fullmatch=True),
       st.sampled_from(["", "Action: ", "action:", "`", "> Action: "]), st.text(alphabet="\n xyz"))
def test_extract_action_finds_the_labelled_action(action, prefix, tail):
    suffix = "`" if prefix == "`" else ""
    assert extract_action(f"\n {prefix}{action}{suffix}\n{tail}") == action


def test_start_up_hook_patches_evaluate_in_a_fresh_interpreter():
    import subprocess
    import sys

    code = ("import lm_eval.evaluator as e, lm_eval_acbench.episodes as ep; "
            "print(getattr(e.evaluate, '_acbench_episodes', False), ep._state['patched'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "ACBENCH_DISABLE_HOOK": "1"})
    assert off.stdout.split() == ["False", "False"], off.stderr[-2000:]


def test_tasks_refuse_to_build_requests_without_the_loop(monkeypatch):
    from lm_eval_acbench import episodes
    from lm_eval_acbench.tasks.realworld import doc_to_text

    monkeypatch.setattr(episodes, "_state", {"patched": False, "problem": "lm_eval.evaluator.evaluate changed"})
    with pytest.raises(RuntimeError, match="needs acbench's episode loop.*evaluate changed"):
        doc_to_text({"env": "pddl", "id": 0})


def test_adapter_runs_episode_requests_and_passes_others_through():
    from lm_eval.api.instance import Instance
    from lm_eval.models.dummy import DummyLM

    from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, _episode_aware
    from lm_eval_acbench.tasks.realworld import load_episodes

    record = load_episodes("tool-query", {"data_source": "sample"})[0]
    lm = DummyLM()
    calls = []
    original = lm.generate_until

    def counting(requests, *args, **kwargs):
        calls.append(len(requests))
        return original(requests, *args, **kwargs)

    lm.generate_until = counting  # count the model calls the loop makes
    ordinary = Instance("generate_until", {"q": 1}, ("Question?", {"until": ["\n"]}), 0, ("other_task", 0, 1))
    episode = Instance("generate_until", {EPISODE_FIELD: json.dumps(record), LOOP_FIELD: json.dumps({"max_steps": 4})},
                       ("label", {"max_gen_toks": 8}), 0, ("acbench_realworld_tool_query", 0, 2))
    with _episode_aware(lm, apply_chat_template=False, system_instruction=None):
        out = lm.generate_until([ordinary, episode, episode])  # lm-eval sends it `repeats` (2) times
    assert lm.generate_until is counting  # restored
    assert out[0] == "lol"
    transcript = json.loads(out[1])
    assert transcript["episode_id"] == record["id"] and transcript["steps"] == 3.0  # 3 invalid in a row
    assert calls == [1, 2, 2, 2]  # the ordinary request, then one batched call per step for both episodes


def test_padding_copies_of_a_request_get_its_transcript_without_playing_again():
    """Under a multi-process run lm-eval pads a rank with fewer requests by sending its last
    request again (evaluator.evaluate, `padding_requests`; answers never scored): that copy gets
    the episode's transcript and costs no model call."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.dummy import DummyLM

    from lm_eval_acbench.episodes import EPISODE_FIELD, LOOP_FIELD, _episode_aware
    from lm_eval_acbench.tasks.realworld import load_episodes

    records = load_episodes("tool-query", {"data_source": "sample"})[:2]
    lm = DummyLM()
    calls = []
    original = lm.generate_until
    lm.generate_until = lambda requests, *a, **k: calls.append(len(requests)) or original(requests, *a, **k)
    loop = json.dumps({"max_steps": 2, "max_invalid": 0})
    first, last = (Instance("generate_until", {EPISODE_FIELD: json.dumps(r), LOOP_FIELD: loop},
                            ("label", {"max_gen_toks": 8}), 0, ("acbench_realworld_tool_query", i, 1))
                   for i, r in enumerate(records))
    with _episode_aware(lm, apply_chat_template=False, system_instruction=None):
        out = lm.generate_until([first, last, last])  # as lm-eval pads: [req] * req.repeats more
    assert calls == [2, 2]  # two episodes, two steps: the copy was not played
    assert out[2] == out[1] and json.loads(out[1])["episode_id"] == records[1]["id"]
    assert json.loads(out[0])["episode_id"] == records[0]["id"]


def test_log_says_how_many_episodes_ended_where_and_why(caplog):
    """lm-eval writes results only at the end; the log of a stopped run must still say this."""
    import logging

    records = [{"id": 0, "target": 1, "env": "count"}, {"id": 1, "target": 3, "env": "count"},
               {"id": 2, "target": 3, "env": "count", "fault": "crash"}, {"id": 3, "target": 9, "env": "other"}]

    def policy(requests):
        return ["jump" if r.messages[1]["content"].startswith("Goal: count to 9") else "inc" for r in requests]

    with caplog.at_level(logging.INFO, logger="lm_eval.acbench_episodes"):
        run_episodes(records, policy, make_env=counting_env, settings=LoopSettings(max_steps=30, max_invalid=3))
    lines = [r.getMessage() for r in caplog.records if "ended" in r.getMessage()]
    assert lines[0] == "acbench episodes: 1 ended at step 1 (count: success 1), 3 still live"
    assert lines[1] == ("acbench episodes: 1 ended at step 2 (count: environment error 1), 2 still live")
    assert lines[2] == ("acbench episodes: 2 ended at step 3 (count: success 1; other: 3 invalid actions in a row 1), "
                        "0 still live")
    assert lines[3] == ("acbench episodes: how the 4 episodes ended: count: success 2; count: environment error 1; "
                        "other: 3 invalid actions in a row 1")
