"""analyze_runs through real Parquet logs: exact against brute force, and refusals of bad pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from lm_eval_acbench.analysis import analyze_runs
from lm_eval_acbench.analysis.analyze import RunMismatch
from lm_eval_acbench.analysis.logio import write_synthetic
from test_analysis_metrics import brute_erank


def _logits(seed: int, n_seq=6, n=12, v=80):
    rng = np.random.default_rng(seed)
    return {("t", d): rng.normal(size=(n, v)) * 2 + rng.normal(size=(1, v)) for d in range(n_seq)}


def _perturb(logits, scale, seed=1):
    rng = np.random.default_rng(seed)
    return {k: z + rng.normal(scale=scale, size=z.shape) for k, z in logits.items()}


def test_analyze_matches_brute_force(tmp_path):
    base = _logits(0)
    comp = _perturb(base, 0.3)
    write_synthetic(tmp_path / "b", base, model="b", top_k=80, flush_every=4)  # K = V: all covered
    write_synthetic(tmp_path / "c", comp, model="c", top_k=80, flush_every=4)
    out = analyze_runs(tmp_path / "b", {"q": tmp_path / "c"}, tmp_path / "out", ks=(3, 10))
    summary = json.loads((out / "summary.json").read_text())
    pair = summary["pairs"]["q"]
    eb = np.array([brute_erank(z) for z in base.values()])
    ec = np.array([brute_erank(z) for z in comp.values()])
    assert pair["erank"]["erank_base"] == pytest.approx(eb.mean(), rel=1e-5)
    assert pair["erank"]["diff_erank"] == pytest.approx((ec - eb).mean(), rel=1e-5, abs=1e-9)
    for k in (3, 10):
        taus = []
        for key in base:
            for x, y in zip(base[key], comp[key]):
                s = np.lexsort((np.arange(len(x)), -x))[:k]
                taus.append(stats.kendalltau(x[s], y[s]).statistic)
        got = pair["rank_correlation"][str(k)]
        assert got["tau_mean_over_positions"] == pytest.approx(np.nanmean(taus), rel=1e-5)
        assert got["not_covered_share"] == 0
    e_b = np.concatenate([-np.log(np.exp(z).sum(1)) for z in base.values()])
    e_c = np.concatenate([-np.log(np.exp(z).sum(1)) for z in comp.values()])
    assert pair["energy"]["mean_shift"] == pytest.approx(e_c.mean() - e_b.mean(), rel=1e-5)
    assert pair["energy"]["wasserstein1"] == pytest.approx(stats.wasserstein_distance(e_b, e_c), rel=1e-5)
    assert pair["energy"]["ks"] == pytest.approx(stats.ks_2samp(e_b, e_c).statistic, rel=1e-5)
    per_pos = (out / "per_position.csv").read_text().splitlines()
    assert len(per_pos) == 1 + 2 * 12
    energies = np.load(out / "energy_q.npz")
    assert energies["base"].shape == (6 * 12,)


def test_erank_cap_uses_last_positions(tmp_path):
    base = _logits(3, n_seq=2, n=10)
    write_synthetic(tmp_path / "b", base, model="b", top_k=20)
    write_synthetic(tmp_path / "c", base, model="c", top_k=20)
    out = analyze_runs(tmp_path / "b", {"same": tmp_path / "c"}, tmp_path / "o", ks=(3,), max_n=4)
    pair = json.loads((out / "summary.json").read_text())["pairs"]["same"]
    want = np.mean([brute_erank(z[-4:]) for z in base.values()])
    assert pair["erank"]["erank_base"] == pytest.approx(want, rel=1e-5)
    assert pair["erank"]["diff_erank"] == 0
    assert pair["rank_correlation"]["3"]["tau_mean_over_positions"] == pytest.approx(1.0)
    assert pair["energy"]["wasserstein1"] == 0


def test_refuses_mismatched_runs(tmp_path):
    base = _logits(4, n_seq=4)
    write_synthetic(tmp_path / "b", base, model="b", top_k=20)
    # missing samples
    write_synthetic(tmp_path / "miss", dict(list(base.items())[:3]), model="m", top_k=20)
    with pytest.raises(RunMismatch, match=r"1 keys only in the base log: t\|3\|corpus\|0"):
        analyze_runs(tmp_path / "b", {"m": tmp_path / "miss"}, tmp_path / "o1")
    out = analyze_runs(tmp_path / "b", {"m": tmp_path / "miss"}, tmp_path / "o1", allow_partial=True)
    overlap = json.loads((out / "summary.json").read_text())["pairs"]["m"]["overlap"]
    assert overlap["n_common"] == 3 and overlap["only_base_keys"] == ["t|3|corpus|0"]
    # a different prompt under the same key
    ids = {("t", 1): np.arange(12) + 1000}
    write_synthetic(tmp_path / "prompt", base, model="p", top_k=20, input_ids_by_key=ids)
    with pytest.raises(RunMismatch, match=r"different prompts.*t\|1\|corpus\|0"):
        analyze_runs(tmp_path / "b", {"p": tmp_path / "prompt"}, tmp_path / "o2")
    # allow_partial leaves it out (episodes diverge: later steps see other prompts) and says so
    out = analyze_runs(tmp_path / "b", {"p": tmp_path / "prompt"}, tmp_path / "o2", allow_partial=True)
    pair = json.loads((out / "summary.json").read_text())["pairs"]["p"]
    assert pair["overlap"]["n_different_prompt"] == 1 and pair["overlap"]["different_prompt_keys"] == ["t|1|corpus|0"]
    assert pair["sequences"] == 3
    # a different tokenizer
    write_synthetic(tmp_path / "tok", base, model="t", top_k=20, tokenizer_hash="other")
    with pytest.raises(RunMismatch, match="different tokenizers"):
        analyze_runs(tmp_path / "b", {"t": tmp_path / "tok"}, tmp_path / "o3")
    # an energy temperature that was not logged
    write_synthetic(tmp_path / "c", base, model="c", top_k=20)
    with pytest.raises(RunMismatch, match="T=2.0"):
        analyze_runs(tmp_path / "b", {"c": tmp_path / "c"}, tmp_path / "o4", temperature=2.0)


def test_interrupted_writer_keeps_flushed_shards(tmp_path):
    from lm_eval_acbench.analysis.logio import LogWriter, iter_records, summarize_rows, write_meta

    write_meta(tmp_path, {"model": "x", "tokenizer_hash": "h", "top_k": 4, "temperatures": [1.0]})
    w = LogWriter(tmp_path, flush_every=2)
    rng = np.random.default_rng(0)
    for d in range(5):  # 5 records, flush every 2: the 5th is still in the buffer ("crash")
        w.add(task="t", doc_id=d, request_type="corpus", request_idx=0, input_ids=[1, 2, 3],
              positions=[0, 1, 2], **summarize_rows(rng.normal(size=(3, 10)), 4, [1.0]))
    (tmp_path / "part-zzz.parquet.tmp").write_bytes(b"half a file")  # an unfinished write
    assert [r["key"] for r in iter_records(tmp_path)] == [f"t|{d}|corpus|0" for d in range(4)]
