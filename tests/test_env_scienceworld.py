"""ScienceWorld adapter: its gold path reaches progress 1.0, half of it partial progress."""

from __future__ import annotations

import json
import shutil

import pytest

from lm_eval_acbench.envs.base import EnvUnavailable
from lm_eval_acbench.paths import SAMPLES_DIR

ROWS = [json.loads(line) for line in (SAMPLES_DIR / "agentboard/data/scienceworld/test.jsonl").read_text().splitlines()]


@pytest.mark.slow  # starts a Java server (10-30 s)
def test_gold_path_and_partial_path():
    pytest.importorskip("scienceworld")
    if shutil.which("java") is None:
        pytest.skip("no java")
    from lm_eval_acbench.envs.scienceworld import ScienceWorldEpisode

    row = next(r for r in ROWS if r["task_name"] == "find-living-thing")
    env = ScienceWorldEpisode(row["task_name"], row["variation"], row["simplification"], gold_path=True)
    try:
        env.reset()
        start = env.progress()
        assert env.goal == row["goal"] and 0.0 <= start < 1.0
        gold = list(env.env.get_gold_action_sequence())
        bad = env.step("fly to the moon")
        assert not bad.valid and "not valid" in bad.observation
        trace = [env.step(action) for action in gold]
        progress = [s.progress for s in trace]
        assert progress[-1] == 1.0
        assert any(start < p < 1.0 for p in progress)  # partial plans earn partial progress
    finally:
        env.close()


def test_missing_java_is_a_clear_skip(monkeypatch):
    from lm_eval_acbench.envs import scienceworld

    monkeypatch.setattr(scienceworld.shutil, "which", lambda name: None)
    with pytest.raises(EnvUnavailable, match="needs Java"):
        scienceworld.make_env(ROWS[0])


def _agentboard_rows():
    from lm_eval_acbench.tasks.realworld import load_episodes
    from helpers import shared_data_path

    root = shared_data_path("agentboard", "data", "scienceworld", "test.jsonl").parents[3]
    return load_episodes("scienceworld", {"data_dir": str(root)})


def test_agentboard_rows_name_task_variation_and_simplifications():
    rows = _agentboard_rows()
    assert len(rows) == 30 and not [r for r in rows if r.get("load_error")]
    first = next(r for r in rows if r["id"] == 0)
    assert (first["task_name"], first["variation"]) == ("lifespan-longest-lived", 5)
    assert first["simplification"] == "selfWateringFlowerPots,openContainers,openDoors,noElectricalAction"
    assert first["agentboard_prompt"]["examples"] and first["agentboard_prompt"]["check_inventory"]


@pytest.mark.slow  # one Java server per row
def test_every_agentboard_row_starts_with_its_goal():
    pytest.importorskip("scienceworld")
    if shutil.which("java") is None:
        pytest.skip("no java")
    from lm_eval_acbench.episodes import LoopSettings, run_episodes

    rows = _agentboard_rows()
    out = run_episodes(rows, lambda requests: ["look around"] * len(requests), settings=LoopSettings(max_steps=1))
    assert [t.get("error") for t in out] == [None] * len(rows)
    assert [t["goal"] for t in out] == [r["goal"] for r in rows]
    assert all("This room is called" in t["trajectory"][0]["observation"] for t in out)


@pytest.mark.slow  # starts a Java server
def test_gold_path_meets_agentboards_subgoals_in_order():
    pytest.importorskip("scienceworld")
    if shutil.which("java") is None:
        pytest.skip("no java")
    from lm_eval_acbench.envs.scienceworld import ScienceWorldEpisode

    row = next(r for r in _agentboard_rows() if r["id"] == 0)
    assert row["subgoals"] == ["You move to the outside.", "You focus on the crocodile egg."]
    env = ScienceWorldEpisode(row["task_name"], row["variation"], row["simplification"], gold_path=True,
                              subgoals=row["subgoals"], goal=row["goal"])
    try:
        first = env.reset()
        assert env.goal == row["goal"] and "In your inventory, you see" in first
        trace = []
        for action in env.env.get_gold_action_sequence():
            step = env.step(action)
            trace.append((step.observation, step.progress))
            if step.done:
                break
        # hand-checked: 0.5 from the step that says "You move to the outside.", 1.0 from the focus
        moved = next(i for i, (obs, _) in enumerate(trace) if "You move to the outside." in obs)
        focused = next(i for i, (obs, _) in enumerate(trace) if "You focus on the crocodile egg." in obs)
        assert all(p == 0.0 for _, p in trace[:moved]) and all(p == 0.5 for _, p in trace[moved:focused])
        assert trace[focused][1] == 1.0 and focused == len(trace) - 1
    finally:
        env.close()


def test_the_jvm_writes_no_perf_data_file():
    # a locked perf-data file of a recycled pid made the JVM print a warning where py4j reads the port
    from lm_eval_acbench.envs.scienceworld import NO_PERF_DATA, java_tool_options

    assert java_tool_options(None) == NO_PERF_DATA
    assert java_tool_options("-Xmx2g") == f"-Xmx2g {NO_PERF_DATA}"
    assert java_tool_options(f"-Xmx2g {NO_PERF_DATA}") == f"-Xmx2g {NO_PERF_DATA}"
