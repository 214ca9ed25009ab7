"""Analysis speed and memory: positions per second over a synthetic logit log.

Writes a synthetic base log and a perturbed 'compressed' log (sequences of ``--seq-len``
positions, top-K 32, raw Gram matrices, T = 1), then

* runs ``analyze_runs`` end to end (read Parquet + ERank + rank correlation k = 3,10,20 +
  energy) in a child process per log size and reports positions/s and the child's peak RSS, so
  that memory can be compared across sizes (streaming: it should stay flat);
* times each metric kernel alone on in-memory arrays (positions/s).

    .venv/bin/python bench/bench_analysis.py             # 1M positions (and 100k for memory)
    .venv/bin/python bench/bench_analysis.py --quick     # 100k positions (and 10k)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_log(folder: Path, n_positions: int, seq_len: int, seed: int, noise: float, vocab: int = 96) -> None:
    from lm_eval_acbench.analysis.logio import LogWriter, summarize_rows, write_meta

    write_meta(folder, {"model": f"synthetic-{seed}", "tokenizer_hash": "synthetic", "top_k": 32,
                        "temperatures": [1.0], "source": "synthetic"})
    writer = LogWriter(folder, flush_every=256)
    base_rng = np.random.default_rng(0)
    noise_rng = np.random.default_rng(seed)
    for d in range(n_positions // seq_len):
        z = base_rng.normal(size=(seq_len, vocab)) * 2
        if noise:
            z = z + noise_rng.normal(scale=noise, size=z.shape)
        writer.add(task="synthetic", doc_id=d, request_type="corpus", request_idx=0,
                   input_ids=np.arange(seq_len) + d, positions=np.arange(seq_len),
                   **summarize_rows(z, 32, [1.0]))
    writer.close()


def child(base: str, comp: str, out: str) -> None:
    from lm_eval_acbench.analysis import analyze_runs

    start = time.perf_counter()
    analyze_runs(Path(base), {"c": Path(comp)}, Path(out))
    wall = time.perf_counter() - start
    summary = json.loads((Path(out) / "summary.json").read_text())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "positions": summary["pairs"]["c"]["positions"], "peak_rss_mb": rss}))


def run_size(tmp: Path, n: int, seq_len: int) -> dict:
    b, c = tmp / f"b{n}", tmp / f"c{n}"
    t0 = time.perf_counter()
    make_log(b, n, seq_len, 0, 0.0)
    make_log(c, n, seq_len, 1, 0.3)
    write_s = time.perf_counter() - t0
    done = subprocess.run([sys.executable, __file__, "--child", str(b), str(c), str(tmp / f"out{n}")],
                          capture_output=True, text=True, check=True)
    res = json.loads(done.stdout.strip().splitlines()[-1])
    res["write_s"] = write_s
    res["log_mb"] = sum(f.stat().st_size for f in b.glob("*.parquet")) / 2**20
    return res


def kernels(n: int = 200_000, seq_len: int = 64) -> dict:
    from lm_eval_acbench.analysis import energy, erank, rankcorr
    from lm_eval_acbench.analysis.analyze import _one_blas_thread

    with _one_blas_thread():
        return _kernels(n, seq_len, energy, erank, rankcorr)


def _kernels(n, seq_len, energy, erank, rankcorr) -> dict:
    rng = np.random.default_rng(0)
    warm = rng.normal(size=(8, 40))  # imports (scipy.stats) and first calls outside the timing
    wi, wv = rankcorr.topk_from_full(warm, 32)
    rankcorr.topk_rank_correlation(wi, wv, wi, wv, ks=(3, 10, 20))
    energy.energy_shift(warm[0], warm[1])
    z = rng.normal(size=(seq_len, 96))
    gram = z @ z.T
    reps = max(1, n // seq_len // 4)
    t = time.perf_counter()
    for _ in range(reps):
        erank.erank_from_gram(gram)
    out = {"erank": reps * seq_len / (time.perf_counter() - t)}
    zb = rng.normal(size=(n // 4, 96))
    zc = zb + rng.normal(scale=0.3, size=zb.shape)
    bi, bv = rankcorr.topk_from_full(zb, 32)
    ci, cv = rankcorr.topk_from_full(zc, 32)
    t = time.perf_counter()
    rankcorr.topk_rank_correlation(bi, bv, ci, cv, ks=(3, 10, 20))
    out["rank_correlation_k3_10_20"] = len(zb) / (time.perf_counter() - t)
    lse = rng.normal(size=n)
    t = time.perf_counter()
    energy.energy_shift(energy.energy_from_lse(lse), energy.energy_from_lse(lse + 0.1))
    out["energy"] = n / (time.perf_counter() - t)
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k positions instead of 1M")
    parser.add_argument("--seq-len", type=int, default=64)
    args = parser.parse_args()
    n = 100_000 if args.quick else args.positions
    tmp = Path(tempfile.mkdtemp(prefix="bench_analysis_"))
    print(f"synthetic logs: {n} positions in sequences of {args.seq_len}, top-K 32, Gram {args.seq_len}x{args.seq_len}")
    for size in (n // 10, n):
        r = run_size(tmp, size, args.seq_len)
        print(f"{r['positions']:>9} positions: analyze {r['wall']:.1f} s = {r['positions'] / r['wall']:,.0f} positions/s "
              f"(all three metrics + Parquet reads), peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"log {r['log_mb']:.1f} MB per model ({r['log_mb'] * 2**20 / r['positions']:.0f} B/position), "
              f"writing both logs took {r['write_s']:.1f} s")
    k = kernels()
    print("kernels alone (positions/s): " + ", ".join(f"{name} {v:,.0f}" for name, v in k.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
