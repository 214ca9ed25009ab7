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
