"""Episode-loop overhead: environment stepping plus prompt building, against model time.

Two measurements in one run:

1. A stub policy that answers instantly drives ``--episodes`` episodes for ``--steps`` steps
   (the sample episodes of every available environment, repeated; invalid answers never end an
   episode here). Prints steps per second of the loop alone.
2. The same loop drives SmolLM2-135M-Instruct through lm-eval's ``hf`` model, exactly as
   ``lm_eval --tasks acbench_realworld --model hf`` does, for ``--model-episodes`` episodes and
   ``--model-steps`` steps. The loop's own time (environments and prompts) and the model's time
   are taken in that same run; the printed ratio is loop time / model time (target: < 5%).

Usage: python bench/bench_episodes.py [--episodes 60 --steps 30 --model-episodes 60 --model-steps 3]
(the stub answers need the four default environments; ScienceWorld is left out by default)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STUB_ANSWERS = {
    "pddl": ["check valid actions", "pick-up b1", "move rooma roomb", "open boot", "grasp left shot1", "noop"],
    "babyai": ["turn left", "move forward", "turn right", "move forward", "pick up", "toggle", "dance"],
    "tool-query": ['get_weather(city="Paris", date="2024-05-01")', 'search_movies(query="Lena")',
                   'get_paper(paper_id="p2")', "what now?"],
    "tool-operation": ["list_todos()", 'read_sheet(sheet="budget")', 'add_todo(title="x")', "hmm"],
}


def episode_records(count: int, envs: list[str]) -> list[dict]:
    from lm_eval_acbench.envs.base import EnvUnavailable, make_env
    from lm_eval_acbench.tasks.realworld import load_episodes

    pool = []
    for env in envs:
        records = load_episodes(env, {"data_source": "sample"})
        try:
            make_env(records[0]).close()
        except EnvUnavailable as exc:
            print(f"  ({env} skipped: {exc})")
            continue
        pool.append(records)
    mixed = [r for group in itertools.zip_longest(*pool) for r in group if r is not None]
    return [dict(r, id=f"{r['id']}#{i}") for i, r in enumerate(itertools.islice(itertools.cycle(mixed), count))]


def stub_policy(seed: int = 0):
    rng = random.Random(seed)

    def policy(requests):
        answers = []
        for request in requests:
            text = request.messages[0]["content"]
            env = ("babyai" if "grid world" in text else "tool-query" if "answer questions" in text
                   else "tool-operation" if "to-do list" in text else "pddl")
            answers.append(rng.choice(STUB_ANSWERS[env]))
        return answers

    return policy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model-episodes", type=int, default=60)
    parser.add_argument("--model-steps", type=int, default=3)
    parser.add_argument("--max-gen-toks", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chat", action="store_true", help="render prompts with the chat template")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--envs", default="pddl,babyai,tool-query,tool-operation",
                        help="environments to mix (ScienceWorld starts one Java server per episode)")
    args = parser.parse_args(argv)

    from lm_eval_acbench.episodes import LoopSettings, run_episodes

    envs = [name.strip() for name in args.envs.split(",") if name.strip()]
    records = episode_records(args.episodes, envs)
    settings = LoopSettings(max_steps=args.steps, max_invalid=0, memory=5)
    stats: dict = {}
    start = time.perf_counter()
    out = run_episodes(records, stub_policy(), settings=settings, stats=stats)
    wall = time.perf_counter() - start
    steps = sum(len(t["trajectory"]) for t in out)
    print(f"stub policy: {len(records)} episodes, {steps} steps in {wall:.2f} s "
          f"-> {steps / wall:.0f} steps/s ({stats['model_calls']} policy calls; "
          f"loop {stats['env_seconds']:.2f} s, stub {stats['model_seconds']:.3f} s)")
    result = {"stub_steps": steps, "stub_seconds": wall, "stub_steps_per_s": steps / wall}
    if args.skip_model:
        print(json.dumps(result))
        return 0

    from lm_eval.models.huggingface import HFLM

    from lm_eval_acbench.episodes import lm_policy
    from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

    lm = HFLM(pretrained=str(fetch(DEFAULT_MODEL)), batch_size=args.batch_size, device="cpu")
    policy, render = lm_policy(lm, lm.generate_until, args.chat)
    records = episode_records(args.model_episodes, envs)
    settings = LoopSettings(max_steps=args.model_steps, max_invalid=0, memory=5)
    gen = {"until": ["\n\n", "Observation:"], "max_gen_toks": args.max_gen_toks, "do_sample": False}
    stats = {}
    start = time.perf_counter()
    out = run_episodes(records, policy, settings=settings, gen_kwargs=[gen] * len(records), render=render, stats=stats)
    wall = time.perf_counter() - start
    steps = sum(len(t["trajectory"]) for t in out)
    ratio = stats["env_seconds"] / stats["model_seconds"]
    print(f"SmolLM2-135M (hf, CPU, chat={args.chat}): {len(records)} episodes, {steps} steps, "
          f"{stats['model_calls']} model calls in {wall:.1f} s; model {stats['model_seconds']:.1f} s, "
          f"loop {stats['env_seconds']:.2f} s")
    print(f"loop overhead / model time = {100 * ratio:.2f}% (target < 5%)")
    result.update(model_steps=steps, model_calls=stats["model_calls"], model_seconds=stats["model_seconds"],
                  loop_seconds=stats["env_seconds"], overhead_ratio=ratio)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
