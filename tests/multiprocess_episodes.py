"""One rank of a 2-process episode run; started by ``tests/test_episodes_multiprocess.py`` as
``accelerate launch --cpu --num_processes 2 tests/multiprocess_episodes.py MODEL_DIR OUT_DIR``.

Every rank builds lm-eval's HFLM and runs lm-eval's own ``simple_evaluate`` on
``acbench_realworld_tool_query``: lm-eval shards the episodes by rank, pads the rank with fewer,
and gathers the samples and metrics on rank 0 once at the end. On CPU, HFLM keeps rank 0 of 1
even under ``accelerate launch`` (it takes the launcher's rank and world size only when there is
more than one GPU); this script gives it the values HFLM's multi-GPU branch sets
(``accelerator.local_process_index``, ``accelerator.num_processes``), and everything after that
is lm-eval's multi-process path over gloo.

Each rank writes ``rank<r>.json``: the torch.distributed collectives it made inside the episode
call and inside the step loop, its model calls and the episodes it played, and (rank 0) the
gathered samples.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

COLLECTIVES = ("all_gather", "all_gather_into_tensor", "all_gather_object", "gather", "gather_object",
               "broadcast", "broadcast_object_list", "all_reduce", "reduce", "barrier", "scatter",
               "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "send", "recv")


def main(model_dir: str, out_dir: str) -> None:
    import torch.distributed as dist
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from lm_eval_acbench import episodes

    lm = HFLM(pretrained=model_dir, device="cpu", max_length=256, batch_size="auto", max_batch_size=4)
    accelerator = lm.accelerator  # HFLM keeps it whenever accelerate runs several processes
    lm._rank, lm._world_size = accelerator.local_process_index, accelerator.num_processes

    phase = {"episode_call": False, "steps": False}
    counts: dict[str, Counter] = {"episode_call": Counter(), "steps": Counter(), "all": Counter()}
    for name in COLLECTIVES:
        function = getattr(dist, name, None)
        if function is None:
            continue

        def counted(*args, _name=name, _function=function, **kwargs):
            counts["all"][_name] += 1
            for key, inside in phase.items():
                if inside:
                    counts[key][_name] += 1
            return _function(*args, **kwargs)

        setattr(dist, name, counted)

    played: dict = {}
    generate_until, run_episodes = episodes._generate_until, episodes.run_episodes

    def episode_call(*args, **kwargs):
        phase["episode_call"] = True
        try:
            return generate_until(*args, **kwargs)
        finally:
            phase["episode_call"] = False

    def step_loop(records, policy, **kwargs):
        phase["steps"] = True
        try:
            out = run_episodes(records, policy, **kwargs)
        finally:
            phase["steps"] = False
        played.update(episodes=len(records), model_calls=kwargs["stats"]["model_calls"])
        return out

    episodes._generate_until, episodes.run_episodes = episode_call, step_loop
    results = simple_evaluate(model=lm, tasks=["acbench_realworld_tool_query"], limit=3, log_samples=True,
                              gen_kwargs="max_gen_toks=4",
                              metadata={"data_source": "sample", "max_steps": 3, "max_invalid": 0})
    report = {"rank": lm.rank, "world_size": lm.world_size, "played": played,
              "collectives": {k: dict(v) for k, v in counts.items()}, "results": results is not None}
    if results is not None:
        samples = results["samples"]["acbench_realworld_tool_query"]
        report["samples"] = [{"doc_id": s["doc_id"], "steps": len(json.loads(s["resps"][0][0])["trajectory"])}
                             for s in samples]
        report["steps_metric"] = results["results"]["acbench_realworld_tool_query"].get("steps,none")
    Path(out_dir, f"rank{lm.rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
