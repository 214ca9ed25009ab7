"""Where one real-world episode step's model time goes, on AgentBoard's prompts.

Builds the first step prompt of the first row of each environment from a data folder (AgentBoard's
layout, e.g. ``../shared/data``) exactly as the episode loop builds it (plain text, no chat
template), then, with SmolLM2-135M-Instruct on CPU:

* lm-eval's ``HFLM.generate_until`` on each prompt alone (``--batch_size 1``), the task's
  generation settings (``until: ["Observation:"]``, 100 new tokens, greedy): seconds, prompt
  tokens, answer tokens;
* the model's own cost split: one forward pass over the prompt (prefill) and the time per new
  token of a 100-token greedy generation with the KV cache (``(generate - prefill) / 100``);
* the same ``generate_until`` with all prompts repeated to ``--batch`` rows in one call at
  ``batch_size = --batch`` (seconds per answer), the gain of lm-eval's batching.

Medians of ``--repeats`` runs. Run it alone on the machine (``flock`` the CPU lock): timings of a
``nice``'d process that competes with normal-priority jobs are several times longer.

Usage: python bench/bench_realworld_step.py [--data ../shared/data --envs pddl,babyai --batch 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GEN_KWARGS = {"until": ["Observation:"], "max_gen_toks": 100, "do_sample": False}  # the task's defaults


def first_prompts(data_dir: str, envs: list[str]) -> dict[str, str]:
    """env -> the first step prompt of its first row, built by the real loop and environment."""
    from lm_eval_acbench.episodes import LoopSettings, render_plain, run_episodes
    from lm_eval_acbench.tasks.realworld import LOOP_DEFAULTS, load_episodes

    out = {}
    for env in envs:
        seen: list[str] = []

        def policy(requests, seen=seen):
            seen.extend(render_plain(r.messages) for r in requests)
            return ["check valid actions"] * len(requests)

        records = load_episodes(env, {"data_dir": data_dir})[:1]
        run_episodes(records, policy, settings=LoopSettings(max_steps=1, memory=LOOP_DEFAULTS["memory"]))
        if not seen:
            raise SystemExit(f"{env}: the first row did not start, so it has no step prompt")
        out[env] = seen[0]
    return out


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--envs", default="pddl,babyai")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="a local model folder (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args(argv)

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

    prompts = first_prompts(args.data, [e.strip() for e in args.envs.split(",") if e.strip()])
    lm = HFLM(pretrained=args.model or str(fetch(DEFAULT_MODEL)), batch_size=1, device="cpu")
    tok, model = lm.tokenizer, lm.model

    def generate(texts: list[str]) -> list[str]:
        return lm.generate_until([Instance("generate_until", {}, (t, dict(GEN_KWARGS)), i)
                                  for i, t in enumerate(texts)], disable_tqdm=True)

    result: dict = {"threads": torch.get_num_threads(), "dtype": str(model.dtype),
                    "attention": model.config._attn_implementation, "per_env": {}}
    for env, prompt in prompts.items():
        ids = tok(prompt, return_tensors="pt").input_ids
        answer = generate([prompt])[0]
        step = median_seconds(lambda: generate([prompt]), args.repeats)
        with torch.inference_mode():
            prefill = median_seconds(lambda: model(ids, use_cache=True), args.repeats)
            full = median_seconds(lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=100,
                                                         min_new_tokens=100, do_sample=False,
                                                         pad_token_id=tok.pad_token_id or tok.eos_token_id),
                                  args.repeats)
        row = {"prompt_chars": len(prompt), "prompt_tokens": int(ids.shape[1]),
               "answer_tokens": len(tok(answer).input_ids), "step_s": round(step, 3),
               "prefill_s": round(prefill, 3), "decode_ms_per_token": round(1000 * (full - prefill) / 100, 1)}
        result["per_env"][env] = row
        print(f"{env}: {row}", flush=True)
    lm.batch_size_per_gpu = args.batch
    rows = list(itertools.islice(itertools.cycle(prompts.values()), args.batch))  # mixed lengths, as in a run
    batched = median_seconds(lambda: generate(rows), args.repeats)
    lm.batch_size_per_gpu = 1
    single = median_seconds(lambda: generate(rows), 1)
    result["batch"] = {"rows": len(rows), "batch_size": args.batch, "s_per_answer": round(batched / len(rows), 3),
                       "batch_1_s_per_answer": round(single / len(rows), 3)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
