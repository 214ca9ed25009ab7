"""Real-world loaders on AgentBoard's layout: rows that cannot start are kept and counted, and no
path from a data row reads outside the data folders the user named."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from lm_eval_acbench.envs.base import RowError, make_env
from lm_eval_acbench.tasks.realworld import inside, load_episodes, process_results

BLOCKS_DOMAIN = """(define (domain blockworld)
  (:predicates (clear ?x) (on-table ?x) (arm-empty) (holding ?x) (on ?x ?y))
  (:action pickup :parameters (?ob)
    :precondition (and (clear ?ob) (on-table ?ob) (arm-empty))
    :effect (and (holding ?ob) (not (clear ?ob)) (not (on-table ?ob)) (not (arm-empty)))))"""
PROBLEM = """(define (problem p) (:domain blockworld) (:objects b1 b2)
  (:init (arm-empty) (on-table b1) (on-table b2) (clear b1) (clear b2)) (:goal (and (holding b1))))"""


def write_checkout(root: Path, pddl_rows: list[dict]) -> Path:
    """An AgentBoard-shaped folder: data/pddl/test.jsonl and one pddlgym domain with its problem."""
    rows_dir = root / "agentboard" / "data" / "pddl"
    rows_dir.mkdir(parents=True)
    (rows_dir / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pddl_rows))
    domains = root / "agentboard" / "agentboard" / "environment" / "pddl_env" / "pddlgym" / "pddl"
    (domains / "blockworld").mkdir(parents=True)
    (domains / "blockworld.pddl").write_text(BLOCKS_DOMAIN)
    (domains / "blockworld" / "problem1.pddl").write_text(PROBLEM)
    return root


def test_inside_refuses_escapes(tmp_path):
    base = tmp_path / "data"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "ok.txt").write_text("x")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (base / "link.txt").symlink_to(secret)
    assert inside([base], "sub/ok.txt") == ((base / "sub" / "ok.txt").resolve(), None)
    assert inside([base], str((base / "sub" / "ok.txt").resolve()))[0] is not None  # absolute, but inside
    for name in ("../secret.txt", str(secret), "link.txt", "sub/../../secret.txt"):
        found, reason = inside([base], name)
        assert found is None and "outside the data folders" in reason, name
    assert inside([base], "missing.txt")[1].startswith("no file 'missing.txt'")
    for bad in (None, 3, "", "a\x00b", "x" * 2000):
        assert inside([base], bad)[0] is None


def test_pddl_rows_from_data_cannot_read_outside(tmp_path, caplog):
    secret = tmp_path / "secret.pddl"
    secret.write_text(PROBLEM)
    rows = [
        {"id": 20, "goal": "g", "subgoals": ["You are holding b1."], "difficulty": "easy",
         "additional_info": {"subtask": "blockworld"}},  # AgentBoard's rule: blockworld's first problem
        {"id": 1, "problem_file": str(secret), "game_name": "blockworld"},
        {"id": 2, "problem_file": "../../../secret.pddl", "game_name": "blockworld"},
        {"id": 3, "domain_file": "../../../secret.pddl", "game_name": "blockworld"},
        {"id": 4, "game_name": "../../../../secret", "problem": PROBLEM},
        {"id": 5, "_folder": str(tmp_path), "problem_file": "secret.pddl", "game_name": "blockworld"},
        {"id": 6, "goal": "g", "subgoals": ["b2 is on b1."], "additional_info": {"subtask": "blockworld"}},
        {"id": 7, "additional_info": {"subtask": "hanoi"}},
    ]
    root = write_checkout(tmp_path / "user", rows)
    with caplog.at_level(logging.WARNING):
        records = load_episodes("pddl", {"data_dir": str(root)})
    by_id = {r["id"]: r for r in records}
    assert len(records) == len(rows)  # no row is dropped
    assert by_id[20]["problem"] == PROBLEM and not by_id[20].get("load_error")
    for row_id in (1, 2, 3, 5):
        assert "outside the data folders" in by_id[row_id]["load_error"] or "no file" in by_id[row_id]["load_error"]
        assert "problem" not in by_id[row_id] or by_id[row_id]["problem"] != PROBLEM
    assert "not a plain" in by_id[4]["load_error"] or "no usable domain" in by_id[4]["load_error"]
    assert "subgoals" in by_id[6]["load_error"]
    assert "'hanoi' not found" in by_id[7]["load_error"]
    assert all("_folder" not in r for r in records)
    lines = [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()]
    assert len(lines) == len({r["load_error"] for r in records if r.get("load_error")})  # one line per cause
    assert sum(int(line.split(": ", 1)[1].split(" of ")[0]) for line in lines) == 7
    with pytest.raises(RowError):
        make_env(by_id[2])


def test_game_rows_cannot_read_outside(tmp_path):
    secret = tmp_path / "secret.z5"
    secret.write_text("x")
    folder = tmp_path / "user" / "agentboard" / "data" / "jericho"
    folder.mkdir(parents=True)
    rows = [{"id": 0, "game_name": "zork1", "game_file": str(secret)},
            {"id": 1, "game_name": "../../../../secret"},
            {"id": 2, "game_name": "zork1", "game_file": "../../../../secret.z5"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_episodes("jericho", {"data_dir": str(tmp_path / "user")})
    assert [bool(r.get("load_error")) for r in records] == [True, True, True]
    alf = tmp_path / "user" / "agentboard" / "data" / "alfworld"
    alf.mkdir(parents=True)
    alf_rows = [{"id": 0, "problem_file": str(secret)}, {"id": 1, "additional_info": {"description": "/etc"}},
                {"id": 2, "additional_info": {"description": "../../x/y"}}]
    (alf / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in alf_rows))
    records = load_episodes("alfworld", {"data_dir": str(tmp_path / "user"), "alfworld_data": str(tmp_path / "none")})
    assert [bool(r.get("load_error")) for r in records] == [True, True, True]


def test_env_errors_and_skips_are_their_own_metrics():
    started = {"trajectory": [{"progress": 0.5, "valid": True}], "initial_progress": 0.0}
    assert process_results({}, [json.dumps(started)])["env_error_rate"] == 0.0
    failed = {"trajectory": [], "error": "RowError: no problem", "initial_progress": 0.0}
    scores = process_results({}, [json.dumps(failed)])
    assert scores["env_error_rate"] == 1.0 and scores["progress_rate"] == 0.0 and scores["skipped"] == 0.0
    skipped = process_results({}, [json.dumps({"trajectory": [], "skipped": "no java"})])
    assert skipped == {"skipped": 1.0, "env_error_rate": 0.0}


def test_sample_rows_still_load_offline(monkeypatch):
    monkeypatch.delenv("ACBENCH_DATA_DIR", raising=False)
    for env in ("pddl", "babyai", "scienceworld"):
        records = load_episodes(env, {})
        assert records and not [r for r in records if r.get("load_error")], env
        assert all(r["acbench_data_source"].startswith("sample") for r in records)
        # no AgentBoard prompt files: our own one-shot example (tests/test_own_examples.py)
        assert all(r["agentboard_prompt"]["source"] == "acbench" for r in records)


def test_agentboard_tool_rows_get_one_line_saying_what_they_need(tmp_path, caplog):
    folder = tmp_path / "agentboard" / "data" / "tool-query"
    folder.mkdir(parents=True)
    rows = [{"id": i, "goal": "What is the weather?", "subgoals": ["x"], "additional_info": {"tool": "weather"}}
            for i in range(3)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING):
        records = load_episodes("tool-query", {"data_dir": str(tmp_path)})
    assert all("need live web services" in r["load_error"] for r in records)
    (line,) = [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()]
    assert line.startswith("acbench_realworld_tool-query: 3 of 3 rows cannot start: AgentBoard's own tool-query rows")


@pytest.mark.slow  # a real lm_eval run (about a minute; several on a shared machine)
def test_lm_eval_plays_agentboard_rows_with_agentboards_prompts(tmp_path):
    from helpers import run_lm_eval, shared_data_path

    root = shared_data_path("agentboard", "data").parents[1]
    out = run_lm_eval(["--tasks", "acbench_realworld_pddl,acbench_realworld_babyai", "--model", "dummy",
                       "--limit", "4", "--metadata", json.dumps({"data_dir": str(root), "max_steps": 2})],
                      tmp_path, timeout=600)
    for task in ("acbench_realworld_pddl", "acbench_realworld_babyai"):
        result = out["results"]["results"][task]
        assert result["env_error_rate,none"] == 0.0 and result["skipped,none"] == 0.0
        for sample in out["samples"][task]:
            transcript = json.loads(sample["resps"][0][0])
            assert sample["doc"]["acbench_data_source"].startswith("local:")
            prompt = transcript["trajectory"][0]["prompt"]
            assert "Here are examples:" in prompt and "You should perform actions to accomplish the goal: " in prompt
            assert prompt.endswith("Action: ")
