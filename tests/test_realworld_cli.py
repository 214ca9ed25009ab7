"""The real `lm_eval` command line runs acbench_realworld end to end (lm-eval's `dummy` model)."""

from __future__ import annotations

import json

from helpers import run_lm_eval


def test_lm_eval_runs_episodes_and_logs_transcripts(tmp_path):
    # the four pure-Python environments (ScienceWorld's Java start-up is left to the slow tests)
    tasks = ",".join(f"acbench_realworld_{name}" for name in ("pddl", "babyai", "tool_query", "tool_operation"))
    out = run_lm_eval(["--tasks", tasks, "--model", "dummy", "--limit", "2",
                       "--metadata", json.dumps({"max_steps": 3, "max_invalid": 2})], tmp_path, timeout=300)
    results = out["results"]["results"]
    for name in ("pddl", "babyai", "tool_query", "tool_operation"):
        task = f"acbench_realworld_{name}"
        assert 0.0 <= results[task]["progress_rate,none"] <= 1.0
        samples = out["samples"][task]
        assert len(samples) == 2
        transcript = json.loads(samples[0]["resps"][0][0])
        steps = transcript["trajectory"]
        # the dummy model's answers are no valid actions: two invalid steps end the episode
        assert len(steps) == 2 and transcript["end_reason"] == "2 invalid actions in a row"
        assert all({"prompt", "output", "action", "observation", "progress"} <= set(s) for s in steps)
        assert samples[0]["invalid_actions"] == 2.0
        assert transcript["settings"]["max_steps"] == 3


def test_invalid_actions_do_not_end_an_episode_by_default(tmp_path):
    # AgentBoard plays on after invalid actions until the goal or the step limit; only an explicit
    # max_invalid ends an episode early
    out = run_lm_eval(["--tasks", "acbench_realworld_pddl", "--model", "dummy", "--limit", "1",
                       "--metadata", json.dumps({"max_steps": 4})], tmp_path, timeout=300)
    (sample,) = out["samples"]["acbench_realworld_pddl"]
    transcript = json.loads(sample["resps"][0][0])
    assert transcript["settings"]["max_invalid"] == 0 and transcript["settings"]["memory"] == 50
    assert len(transcript["trajectory"]) == 4 and transcript["end_reason"] == "step limit"
    assert sample["invalid_actions"] == 4.0
