"""Write lm_eval_acbench/envs/own_examples.json: acbench's own one-shot example per environment
(see lm_eval_acbench/envs/own_examples.py), each played in our environment by a reference plan.

    PYTHONPATH=. python scripts/make_own_examples.py

Needs every environment's dependency (pddl, minigrid, scienceworld + java, jericho + textworld,
alfworld). The episodes are none of the sample rows: other seeds, another ScienceWorld variation
(from the train split), another TextWorld game; ALFWorld's is one of our three sample problems and
is never shown to that sample row (``not_for``).
"""

from __future__ import annotations

import json


from lm_eval_acbench.envs.own_examples import EXAMPLES_FILE, play_example

SCIENCEWORLD_STEPS = 12  # the first steps of the gold path: a whole run is far longer than the others
SYSTEM = {
    "pddl": "You are a planning agent: you change the state of a world step by step until the goal holds.",
    "babyai": "You are an agent in a grid world of rooms, walls, doors and objects; you finish the mission you are given.",
    "scienceworld": "You are an agent in a simulated science school; you carry out the experiment you are given.",
    "jericho": "You are a player of text adventure games; you reach the goal of the story.",
    "alfworld": "You are a household robot; you do the household task you are given.",
}


def pddl_plan(record: dict) -> list[str]:
    from lm_eval_acbench.envs.pddl_env import make_env, shortest_plan

    plan = shortest_plan(make_env(record).sim, limit=None)
    if plan is None:
        raise SystemExit(f"no plan for {record['id']}")
    return plan


def babyai_plan(record: dict) -> list[str]:
    from lm_eval_acbench.envs.babyai import make_env

    env = make_env(record)
    env.reset()
    listing = env.step("check available actions").observation
    target = env.goal.replace("go to the ", "go to ").replace("go to a ", "go to ")
    action = next(a.strip(" .") for a in listing.split(",") if a.strip().startswith(target))
    env.close()
    return ["check available actions", action]


def jericho_plan(record: dict) -> list[str]:
    from lm_eval_acbench.envs.jericho_env import textworld_game

    meta = json.loads(textworld_game(record["textworld"]).with_suffix(".json").read_text())
    record["goal"] = meta["objective"]
    return ["look", *meta["metadata"]["walkthrough"]]


def alfworld_plan(record: dict) -> list[str]:
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

    from lm_eval_acbench.envs.alfworld_env import sample_game

    game = sample_game(str(record["pddl_problem"]), str(record.get("task") or ""))
    planner = textworld.start(str(game), request_infos=textworld.EnvInfos(policy_commands=True),
                              wrappers=[AlfredDemangler(shuffle=False)])
    return list(planner.reset()["policy_commands"])


def scienceworld_plan(record: dict, steps: int) -> list[str]:
    from lm_eval_acbench.envs.scienceworld import ScienceWorldEpisode

    env = ScienceWorldEpisode(record["task_name"], record["variation"], record["simplification"], gold_path=True)
    try:
        env.reset()
        return list(env.env.get_gold_action_sequence())[:steps]
    finally:
        env.close()


def main() -> None:
    from lm_eval_acbench.envs.pddl_env import GAMES, generate_records
    from lm_eval_acbench.tasks.realworld import load_episodes

    out: dict = {env: {"system_msg": SYSTEM[env], "examples": {}} for env in SYSTEM}
    plays = []
    for game in GAMES:  # seed 9: the sample set is seed 0
        record = dict(generate_records(game, 1, seed=9)[0], env="pddl", id=f"example-{game}")
        plays.append(("pddl", game, record, pddl_plan(record), []))
    record = {"env": "babyai", "id": "example", "level": "BabyAI-GoToObj-v0", "seed": 9}
    plays.append(("babyai", "default", record, babyai_plan(record), []))
    record = {"env": "jericho", "id": "example", "game_name": "tw-example", "subgoals": [],
              "textworld": {"world_size": 3, "nb_objects": 5, "quest_length": 3, "seed": 9}}
    plays.append(("jericho", "default", record, jericho_plan(record), []))
    sample = next(r for r in load_episodes("alfworld", {"data_source": "sample"}) if r["id"] == "mug_on_diningtable")
    plays.append(("alfworld", "default", sample, alfworld_plan(sample), [sample["id"]]))
    record = {"env": "scienceworld", "id": "example", "task_name": "find-living-thing", "variation": 0,
              "simplification": "easy"}
    plays.append(("scienceworld", "default", record, scienceworld_plan(record, SCIENCEWORLD_STEPS), []))
    for env, key, record, actions, not_for in plays:
        text, steps = play_example(record, actions)
        out[env]["examples"][key] = {"record": record, "actions": actions, "text": text,
                                     "final_progress": steps[-1].progress, "not_for": not_for}
        print(env, key, len(actions), "actions, final progress", steps[-1].progress, flush=True)
    EXAMPLES_FILE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
