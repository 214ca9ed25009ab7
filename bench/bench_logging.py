"""Logging overhead of ``acbench-hf`` against ``hf``: the same tasks, the same model, one process.

Both model objects are built once; then the tasks run through ``lm_eval.simple_evaluate``
alternately (hf, acbench-hf, hf, acbench-hf, ...; one uncounted warm-up round) and the ratios of
the median wall times and of the median process CPU times are printed (target <= 1.10).
Start-up (imports, model load) is excluded: it is the same for both.

    .venv/bin/python bench/bench_logging.py                     # SmolLM2, the fixture tasks
    .venv/bin/python bench/bench_logging.py --tasks acbench_niah --limit 4 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "analysis_tasks"


def _fixture_tasks(tmp: Path) -> Path:
    out = tmp / "tasks"
    out.mkdir()
    for f in FIXTURE.iterdir():
        (out / f.name).write_text(f.read_text().replace("DATA_DIR", str(FIXTURE)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF folder (default: SmolLM2-135M-Instruct via model fetch)")
    parser.add_argument("--tasks", default="analysis_fixture_gen,analysis_fixture_mc")
    parser.add_argument("--include-path", default=None, help="extra task folder (default: the test fixtures)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs per model type (default 3)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-positions", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared CPU)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(args.threads)
    from lm_eval.tasks import TaskManager

    from lm_eval_acbench.models import LogitLoggingHFLM

    if args.model is None:
        from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

        args.model = str(fetch(DEFAULT_MODEL))
    tmp = Path(tempfile.mkdtemp(prefix="bench_logging_"))
    include = args.include_path or str(_fixture_tasks(tmp))
    common = dict(pretrained=args.model, device="cpu", dtype="float32", batch_size=args.batch_size)
    plain = HFLM(**common)
    logging_lm = LogitLoggingHFLM(**common, logits_dir=str(tmp / "logs"), logits_top_k=args.top_k,
                                  logits_max_positions=args.max_positions)
    tm = TaskManager(include_path=include)
    tasks = args.tasks.split(",")
    times = {"hf": [], "acbench-hf": []}
    cpu = {"hf": [], "acbench-hf": []}
    outputs = {}
    for rep in range(args.repeats + 1):  # round 0 warms up (datasets, caches) and is not counted
        for name, lm in (("hf", plain), ("acbench-hf", logging_lm)):
            start, start_cpu = time.perf_counter(), time.process_time()
            res = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=tm, limit=args.limit,
                                          log_samples=True, verbosity="ERROR")
            if rep:
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            outputs[name] = {t: [s["resps"] for s in res["samples"][t]] for t in res["samples"]}
    same = outputs["hf"] == outputs["acbench-hf"]
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    from lm_eval_acbench.analysis.logio import read_index

    logged = read_index(tmp / "logs")
    per_pos = sum(f.stat().st_size for f in (tmp / "logs").glob("part-*.parquet")) / max(1, logged["n_positions"].sum())
    print(f"model {args.model}; tasks {args.tasks}; limit {args.limit}; batch {args.batch_size}; "
          f"K {args.top_k}; max positions {args.max_positions}; repeats {args.repeats}; threads {args.threads}")
    print(f"hf          wall s: {', '.join(f'{t:.2f}' for t in times['hf'])} (median {med['hf']:.2f})")
    print(f"acbench-hf  wall s: {', '.join(f'{t:.2f}' for t in times['acbench-hf'])} (median {med['acbench-hf']:.2f})")
    print(f"overhead ratio, wall (median acbench-hf / median hf): {med['acbench-hf'] / med['hf']:.3f}  (target <= 1.10)")
    print(f"overhead ratio, process CPU time (less sensitive to a busy machine): "
          f"{med_cpu['acbench-hf'] / med_cpu['hf']:.3f} ({med_cpu['acbench-hf']:.2f} s / {med_cpu['hf']:.2f} s)")
    print(f"identical responses: {same}; records logged: {len(logged)} "
          f"({logged['n_positions'].sum()} positions, {per_pos:.0f} bytes per position on disk)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
