"""Wall time, peak memory and perplexity of every compression method on one model.

Each method runs in its own Python process (so each peak RSS is that method's own), through
``lm_eval_acbench.compress.compress_model``; the table is built from the manifests, which hold
the measured facts. Default: SmolLM2-135M-Instruct, every built-in recipe, 32 calibration
samples x 512 tokens (the paper's 128 x 2,048 / 4,096 and 1,024 x 2,048 take too long on 2
cores) from each recipe's own set (offline: the Paul Graham essays), perplexity on 8 x 512
held-out tokens. A method whose first run takes under a minute runs ``--repeats`` times (default 3)
and its row holds the medians of wall time, CPU time and memory (column ``runs``); the perplexity
of every repeat must be identical, else the bench fails for that method.

    .venv/bin/python bench/bench_compress.py [--model DIR] [--methods a,b] [--out DIR] [--repeats N]

Runs into the same ``--out`` accumulate in its ``results.json`` (a method run again replaces its
row), so groups of methods can run as separate invocations and the last one prints the whole table.

Columns: wall time (whole run incl. perplexity and save), peak RSS, peak RSS above the RSS
just before the model was loaded (i.e. without the interpreter and library imports), and that
increase divided by the model's fp32 size (target < 3).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_METHODS = [
    "rtn_w4a16", "rtn_w8a16", "rtn_w3a16", "rtn_w2a16", "nf4", "fp8_dynamic", "kv_fp8", "kv_int4",
    "magnitude_50", "magnitude_2of4", "wanda_50", "wanda_2of4", "sparsegpt_50", "sparsegpt_2of4",
    "gptq_w4a16", "gptq_w8a16", "gptq_w3a16", "gptq_w8a8", "smoothquant_gptq_w8a8",
    "sparsegpt_2of4_gptq_w4a16", "awq_w4a16",
]


def _one(model: str, name: str, out: Path, samples: int, seq_len: int, calibration: str | None, ppl_windows: int,
         ppl_seq_len: int, ppl_text: str | None) -> None:
    from lm_eval_acbench.compress import compress_model, load_recipe

    recipe = load_recipe(name).model_dump(mode="json")
    recipe["perplexity"] = {"windows": ppl_windows, "seq_len": ppl_seq_len}
    compress_model(model, recipe, out, calibration=calibration, num_samples=samples, seq_len=seq_len, overwrite=True,
                   ppl_text=ppl_text)


def _row(name: str, manifest: dict) -> dict:
    summary = manifest["measured"]["summary"]
    memory = manifest["memory"]
    quant = "-"
    if summary.get("weight_dtypes_found"):
        quant = "fp8 e4m3 per channel"
    elif summary["bits_found"]:
        groups = summary["group_sizes_found"]
        quant = f"int{summary['bits_found'][0]} " + ("per channel" if summary.get("config_group_size") is None else f"g{','.join(str(g) for g in groups)}")
    elif summary.get("fake_quant_bits_found"):
        quant = f"nf4 fake ({summary['fake_quant_max_distinct_per_block']} values/block)"
    extra = []
    if summary.get("input_activations"):
        extra.append(f"A{summary['input_activations']['num_bits']} {summary['input_activations']['type']} dynamic")
    if summary.get("kv_cache_scheme"):
        extra.append(f"KV {summary['kv_cache_scheme']['type']}{summary['kv_cache_scheme']['num_bits']}")
    if extra:
        quant += " + " + ", ".join(extra)
    calibration = manifest["calibration"]
    return {
        "method": name,
        "wall_s": manifest["wall_time_s"],
        "cpu_s": manifest.get("cpu_time_s"),
        "compress_s": sum(v for k, v in manifest["stage_times_s"].items() if k in ("gptq", "awq", "rtn", "wanda", "sparsegpt", "magnitude")),
        "peak_rss_mib": memory["peak_rss_bytes"] / 2**20,
        "peak_over_base_mib": memory["peak_over_model_baseline_bytes"] / 2**20,
        "ratio_fp32": memory["peak_over_baseline_to_fp32_ratio"],
        "ppl_before": manifest["perplexity"]["before"],
        "ppl_after": manifest["perplexity"]["after"],
        "sparsity": summary["overall_sparsity"],
        "weights": quant,
        "nm_holds": summary.get("nm_pattern_holds", "-"),
        "calibration": "-" if not calibration.get("tokens_sha256") else f"{calibration['name']} {calibration['num_samples']}x{calibration['seq_len']}",
        "runs": 1,
    }


_TIMED = ("wall_s", "cpu_s", "compress_s", "peak_rss_mib", "peak_over_base_mib", "ratio_fp32")


def _median_row(name: str, rows: list[dict]) -> dict:
    """One row from repeats of a method: medians of the measured costs; the results must agree."""
    for key in ("ppl_before", "ppl_after", "sparsity", "weights", "nm_holds"):
        values = {json.dumps(r[key]) for r in rows}
        if len(values) > 1:
            raise ValueError(f"repeats disagree on {key} ({', '.join(sorted(values))}); no median row")
    out = dict(rows[0])
    for key in _TIMED:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    out["runs"] = len(rows)
    return out


def _table(rows: list[dict], fp32_mib: float) -> str:
    head = ("| recipe | calibration | runs | wall s | CPU s | compress s | peak RSS MiB | peak - base MiB | (peak - base) / fp32 "
            "| ppl before | ppl after | sparsity | weights | 2:4 holds |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        runs = "1" if r.get("runs", 1) == 1 else f"median of {r['runs']}"
        lines.append(
            f"| {r['method']} | {r['calibration']} | {runs} | {r['wall_s']:.0f} | {'-' if r['cpu_s'] is None else format(r['cpu_s'], '.0f')} | {r['compress_s']:.0f} | {r['peak_rss_mib']:.0f} | {r['peak_over_base_mib']:.0f} | "
            f"{r['ratio_fp32']:.2f} | {r['ppl_before']:.2f} | {r['ppl_after']:.2f} | {r['sparsity']:.3f} | {r['weights']} | {r['nm_holds']} |"
        )
    lines.append(f"\nmodel fp32 size: {fp32_mib:.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF folder or hub id (default: SmolLM2-135M-Instruct via acbench model fetch)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--calibration", default=None, help="default: each recipe's own set (offline: the Paul Graham essays)")
    parser.add_argument("--ppl-windows", type=int, default=8)
    parser.add_argument("--ppl-seq-len", type=int, default=512)
    parser.add_argument("--ppl-text", default=None, help="score perplexity on this file (e.g. WikiText-2 wiki.test.raw)")
    parser.add_argument("--out", default=None, help="folder for the checkpoints and results.json (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of a method whose first run took under --repeat-below seconds (medians reported)")
    parser.add_argument("--repeat-below", type=float, default=60.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--table-from", nargs="+", metavar="DIR",
                        help="only print the table from finished checkpoints (folders holding acbench_manifest.json), "
                             "e.g. methods run as separate bench invocations")
    args = parser.parse_args(argv)
    if args.table_from:
        manifests = [(Path(d).name, json.loads((Path(d) / "acbench_manifest.json").read_text())) for d in args.table_from]
        print(_table([_row(name, m) for name, m in manifests], manifests[0][1]["model"]["fp32_bytes"] / 2**20))
        return 0
    if args.model is None:
        from lm_eval_acbench.model_store import DEFAULT_MODEL, fetch

        args.model = str(fetch(DEFAULT_MODEL))
    out_root = Path(args.out or tempfile.mkdtemp(prefix="bench-compress-"))
    if args.one:
        _one(args.model, args.one, out_root / args.one, args.samples, args.seq_len, args.calibration, args.ppl_windows,
             args.ppl_seq_len, args.ppl_text)
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    results = out_root / "results.json"
    # earlier invocations into the same folder keep their rows (the last one prints the whole table)
    rows = {r["method"]: r for r in json.loads(results.read_text())} if results.exists() else {}
    fp32 = 0.0
    for name in args.methods.split(","):
        runs: list[dict] = []
        while len(runs) < args.repeats:
            # compress_model returns a finished checkpoint made with the same settings as is: a
            # repeat must not be handed run 1's manifest, so the bench's own folder goes first
            previous = out_root / name
            if previous.exists():
                from lm_eval_acbench import owned_dirs

                if not owned_dirs.is_owned(previous):
                    print(f"{name}: FAILED: {previous} exists and is not a checkpoint acbench made", file=sys.stderr)
                    break
                shutil.rmtree(previous)
            started = time.time()
            cmd = [sys.executable, __file__, "--one", name, "--model", args.model, "--out", str(out_root),
                   "--samples", str(args.samples), "--seq-len", str(args.seq_len),
                   "--ppl-windows", str(args.ppl_windows), "--ppl-seq-len", str(args.ppl_seq_len)]
            cmd += ["--calibration", args.calibration] if args.calibration else []
            cmd += ["--ppl-text", args.ppl_text] if args.ppl_text else []
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                print(f"{name}: FAILED after {time.time() - started:.0f} s: {(done.stderr.strip().splitlines() or [''])[-1]}",
                      file=sys.stderr)
                break
            manifest_path = out_root / name / "acbench_manifest.json"
            if manifest_path.stat().st_mtime < started:
                print(f"{name}: FAILED: run {len(runs) + 1} wrote no new manifest", file=sys.stderr)
                break
            manifest = json.loads(manifest_path.read_text())
            shutil.copy(manifest_path, out_root / f"{name}.run{len(runs) + 1}.manifest.json")
            fp32 = manifest["model"]["fp32_bytes"] / 2**20
            runs.append(_row(name, manifest))
            print(f"{name} run {len(runs)}: {runs[-1]['wall_s']:.0f} s, ppl {runs[-1]['ppl_before']:.2f} -> "
                  f"{runs[-1]['ppl_after']:.2f}", flush=True)
            if runs[0]["wall_s"] >= args.repeat_below:
                break
        wanted = 1 if runs and runs[0]["wall_s"] >= args.repeat_below else args.repeats
        if len(runs) < wanted:
            continue  # a failed repeat leaves no row: a median of fewer runs than asked would misstate itself
        try:
            rows[name] = _median_row(name, runs)
        except ValueError as err:
            print(f"{name}: FAILED: {err}", file=sys.stderr)
            continue
        rows[name]["fp32_mib"] = fp32
        results.write_text(json.dumps(list(rows.values()), indent=2))
    fp32 = fp32 or next((r.get("fp32_mib", 0.0) for r in rows.values()), 0.0)
    print(f"\n{args.samples} calibration samples x {args.seq_len} tokens ({args.calibration or 'each recipe its own set'}); "
          f"perplexity on {args.ppl_windows} x {args.ppl_seq_len} tokens ({args.ppl_text or 'the set held out'}); model {args.model}\n")
    print(_table(list(rows.values()), fp32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
