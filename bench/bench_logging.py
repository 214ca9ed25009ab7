"""Logging overhead of ``acbench-hf`` against ``hf``: the same tasks, the same model, one process.

Both model objects are built once; then the tasks run through ``lm_eval.simple_evaluate``
alternately (hf, acbench-hf, hf, acbench-hf, ...; one uncounted warm-up round) and the ratios of
the median wall times and of the median process CPU times are printed (target <= 1.10).
Start-up (imports, model load) is excluded: it is the same for both.

    .venv/bin/python bench/bench_logging.py                     # SmolLM2, the fixture tasks
    .venv/bin/python bench/bench_logging.py --tasks acbench_niah --limit 4 --repeats 2

``--memory``: peak memory of one ``generate_until`` on a long prompt, for random Llama models of
2 to 16 layers (hidden 512), in fresh processes: plain ``hf``, ``acbench-hf`` (forward-hook
logging) and, for contrast, ``hf`` with ``output_hidden_states`` (what logging used before:
every layer's hidden states for every position). Printed: the peak RSS of the long call above
the RSS just before it (the peak is reset there through ``/proc/self/clear_refs``), the median
of ``--memory-repeats`` fresh processes per mode and layer count, the ratios to ``hf``, and how
much the logger's excess over ``hf`` grows from the fewest to the most layers.

RSS measures live tensors only when freed memory goes back to the system. glibc's malloc does
not promise that: its mmap threshold rises after each large free, so later tensors of that size
come from the heap and stay resident, and the peak depends on what the process allocated
before. The children therefore run with ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB (every
tensor above it is mmapped and unmapped when freed); ``--default-malloc`` keeps glibc's dynamic
threshold, to see that effect.

    .venv/bin/python bench/bench_logging.py --memory --prompt-tokens 3000 --layers 2,8,16
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


def _status_mb() -> dict:
    """VmRSS and VmHWM (peak RSS since the last reset) of this process, in MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def _memory_child(mode: str, model_dir: str, prompt_tokens: int, max_positions: int) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    import gc
    import json

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from lm_eval_acbench.models import LogitLoggingHFLM

    torch.set_num_threads(1)

    class HiddenStatesHF(HFLM):
        def _model_generate(self, context, max_length, stop, **kw):
            return super()._model_generate(context, max_length, stop, output_hidden_states=True,
                                           return_dict_in_generate=True, **kw).sequences

    common = dict(pretrained=model_dir, device="cpu", dtype="float32", batch_size=1, max_length=prompt_tokens + 64)
    if mode == "acbench-hf":
        tmp = tempfile.mkdtemp(prefix="bench_logging_mem_")
        lm = LogitLoggingHFLM(**common, logits_dir=f"{tmp}/logs", logits_max_positions=max_positions, logits_top_k=64)
    else:
        lm = (HiddenStatesHF if mode == "hf+output_hidden_states" else HFLM)(**common)
    words = ("the red block is on the blue block and the robot moves it to the table again " * 4000).split()
    text = " ".join(words)
    ids = lm.tok_encode(text)[:prompt_tokens]
    prompt = lm.tok_decode(ids)
    gen = {"until": ["\n\n\n"], "max_gen_toks": 16, "do_sample": False}
    # the warm-up also runs acbench-hf's first-batch check and its first Parquet write (imports)
    lm.generate_until([Instance("generate_until", {}, (prompt[:200], gen), 0, ("warmup", 0, 1))], disable_tqdm=True)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS: the peak below is this call's, not the model load's
    before = _status_mb()["VmRSS"]
    tick = time.perf_counter()
    lm.generate_until([Instance("generate_until", {}, (prompt, gen), 0, ("long", 0, 1))], disable_tqdm=True)
    after = _status_mb()
    print(json.dumps({"mode": mode, "extra_peak_mb": after["VmHWM"] - before, "seconds": time.perf_counter() - tick,
                      "retained_mb": after["VmRSS"] - before, "prompt_tokens": len(lm.tok_encode(prompt)),
                      "hook_path": getattr(lm, "_acb_hidden_ok", None)}))


def memory(args) -> int:
    import json
    import subprocess

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lm_eval_acbench.tiny_model import build_tiny_model

    if not os.access("/proc/self/clear_refs", os.W_OK):
        print("--memory needs Linux's /proc/self/clear_refs (to reset the peak RSS before the long call)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench_logging_mem_"))
    tok_dir = build_tiny_model(tmp / "tok")
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    env = dict(os.environ)
    if not args.default_malloc:
        env.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    modes = ("hf", "acbench-hf", "hf+output_hidden_states")
    layer_counts = sorted(int(x) for x in args.layers.split(","))
    results: dict = {}
    for layers in layer_counts:
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1024,
                             num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=4,
                             max_position_embeddings=args.prompt_tokens + 256, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        folder = tmp / f"llama-{layers}"
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        for rep in range(args.memory_repeats):
            for mode in modes:  # interleaved, so a change in the machine's state hits every mode
                proc = subprocess.run([sys.executable, __file__, "--memory-child", mode, str(folder),
                                       str(args.prompt_tokens), str(args.max_positions)],
                                      capture_output=True, text=True, timeout=1200, env=env)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
                if line is None:
                    print(f"{mode} with {layers} layers failed:\n{proc.stderr[-2000:]}")
                    return 1
                row = json.loads(line)
                if mode == "acbench-hf" and row["hook_path"] is not True:
                    print(f"acbench-hf with {layers} layers did not log through the forward hook "
                          f"(hook_path={row['hook_path']}): the measurement would not be of the hook logger")
                    return 1
                results.setdefault((layers, mode), []).append(row)
    med = {k: statistics.median(r["extra_peak_mb"] for r in v) for k, v in results.items()}
    tokens = next(iter(results.values()))[0]["prompt_tokens"]
    print(f"peak RSS of one generate_until ({tokens} prompt tokens + 16 generated; random Llama, hidden 512, "
          f"fp32, batch 1) above the RSS before it; median of {args.memory_repeats} fresh processes; "
          f"malloc: {'glibc default (dynamic mmap threshold)' if args.default_malloc else 'mmap threshold 128 KiB'}")
    print(f"{'layers':>6}  " + "  ".join(f"{m:>24}" for m in modes) + "   acbench-hf / hf   hidden_states / hf")
    for layers in layer_counts:
        row = [med[layers, m] for m in modes]
        runs = "; ".join(f"{m}: " + ", ".join(f"{r['extra_peak_mb']:.1f}" for r in results[layers, m]) for m in modes)
        print(f"{layers:>6}  " + "  ".join(f"{v:>21.1f} MB" for v in row)
              + f"   {row[1] / max(row[0], 1e-9):>15.2f}   {row[2] / max(row[0], 1e-9):>18.2f}   ({runs})")
    lo, hi = layer_counts[0], layer_counts[-1]
    if hi != lo:
        for mode in modes[1:]:
            excess = {n: med[n, mode] - med[n, "hf"] for n in (lo, hi)}
            print(f"{mode}: excess over hf {excess[lo]:+.1f} MB at {lo} layers, {excess[hi]:+.1f} MB at {hi}; "
                  f"ratio to hf {med[lo, mode] / max(med[lo, 'hf'], 1e-9):.2f} at {lo} layers, "
                  f"{med[hi, mode] / max(med[hi, 'hf'], 1e-9):.2f} at {hi}")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        _memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
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
    parser.add_argument("--memory", action="store_true", help="peak-memory comparison on a long prompt instead")
    parser.add_argument("--prompt-tokens", type=int, default=3000, help="--memory: prompt length (default 3000)")
    parser.add_argument("--layers", default="2,8,16", help="--memory: layer counts (default 2,8,16)")
    parser.add_argument("--memory-repeats", type=int, default=3, help="--memory: fresh processes per cell (default 3)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="--memory: keep glibc's dynamic mmap threshold (RSS then keeps freed tensors)")
    args = parser.parse_args()
    if args.memory:
        return memory(args)

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
