"""The paper's analyses: fake quantization against element-wise brute force, the ERank sweep against
the V x V definition at every bit width, top-k with full coverage against full logits, energies
against a direct logsumexp, and the `acbench analyze --paper` command (tiny random Llama)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from helpers import shared_data_path

torch = pytest.importorskip("torch")

WIKI_TEST = ("calibration", "data", "wikitext-2-raw", "wiki.test.raw")
OWN_TEXT = [
    " = Heading = ",
    " The red block sits on the blue block , and the green block is on the table . A robot arm picks "
    "up the red block and puts it down next to the green one , then stacks the blue block on top .",
    "",
    " Rivers carry sediment from the mountains to the sea . Over many years the sediment builds up "
    "deltas , wide flat areas where the river splits into many small channels before it meets the sea .",
    " A short line .",
]


def brute_rtn(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    out = np.empty_like(w, dtype=np.float64)
    levels = 2 ** bits - 1
    for r in range(w.shape[0]):
        for a in range(0, w.shape[1], group):
            g = w[r, a:a + group].astype(np.float64)
            lo, hi = g.min(), g.max()
            if hi == lo:
                out[r, a:a + group] = g
                continue
            scale = (hi - lo) / levels
            zero = np.round(-lo / scale)
            q = np.clip(np.round(g / scale) + zero, 0, levels)
            out[r, a:a + group] = (q - zero) * scale
    return out


def test_rtn_matches_elementwise_brute_force():
    from lm_eval_acbench.analysis.fake_quant import rtn_fake_quant

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 300)).astype(np.float32)  # groups of 128, 128 and a short one of 44
    w[2, :128] = 0.5  # a constant group stays as is
    for bits in (2, 3, 4, 8):
        got = rtn_fake_quant(torch.from_numpy(w), bits, 128).numpy()
        np.testing.assert_allclose(got, brute_rtn(w, bits, 128), rtol=1e-5, atol=1e-6)
        for r in range(5):  # at most 2^bits distinct values per group
            assert len(np.unique(got[r, :128])) <= 2 ** bits
    assert rtn_fake_quant(torch.from_numpy(w), 16, 128) is not None
    assert np.array_equal(rtn_fake_quant(torch.from_numpy(w), 16, 128).numpy(), w)


def test_nf4_matches_nearest_code_value_per_block():
    from lm_eval_acbench.analysis.fake_quant import NF4_CODE, nf4_fake_quant

    rng = np.random.default_rng(1)
    w = rng.normal(size=(7, 50)).astype(np.float32)  # 350 values: five blocks of 64 and one of 30
    got = nf4_fake_quant(torch.from_numpy(w)).numpy().ravel()
    flat = w.ravel().astype(np.float64)
    code = np.array(NF4_CODE)
    for a in range(0, flat.size, 64):
        block = flat[a:a + 64]
        absmax = np.abs(block).max()
        want = code[np.abs(block[:, None] / absmax - code[None, :]).argmin(1)] * absmax
        np.testing.assert_allclose(got[a:a + 64], want, rtol=1e-6, atol=1e-7)
    assert len(NF4_CODE) == 16 and NF4_CODE[0] == -1.0 and NF4_CODE[7] == 0.0 and NF4_CODE[-1] == 1.0


def _brute_erank_vxv(logits: np.ndarray) -> float:
    """The spec's definition: centre columns, normalise rows, A = R^T R / n (V x V), eigenvalues."""
    z = np.asarray(logits, dtype=np.float64)
    c = z - z.mean(axis=0, keepdims=True)
    r = c / np.linalg.norm(c, axis=1, keepdims=True)
    a = r.T @ r / z.shape[0]
    sigma = np.linalg.eigvalsh(a) / np.trace(a)
    sigma = sigma[sigma > 1e-10]
    return float(np.exp(-np.sum(sigma * np.log(sigma))))


def _texts():
    from lm_eval_acbench.analysis.paper import paragraphs

    path = shared_data_path(*WIKI_TEST)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else OWN_TEXT
    return paragraphs(lines)[:2]


def test_erank_sweep_equals_the_vxv_definition_at_every_bit_width(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_acbench.analysis import fake_quant as fq
    from lm_eval_acbench.analysis.paper import erank_sweep

    texts = _texts()
    rows = erank_sweep(tiny_model_dir, texts, max_tokens=64)
    assert [r["setting"] for r in rows[::len(texts)]] == ["W2", "W3", "W4", "W8", "W16", "KV4", "KV8", "KV16"]
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    values = {}
    for row in rows:
        model.load_state_dict(original)
        if row["kind"] == "weight":
            fq.quantize_weights(model, "rtn", row["bits"], 128)
        ids = tok(texts[row["text"]], add_special_tokens=False)["input_ids"][:64]
        with fq.kv_fake_quant(model, row["bits"] if row["kind"] == "kv" else 16, 128), torch.no_grad():
            z = model(torch.tensor([ids])).logits[0].double().numpy()
        want = _brute_erank_vxv(z)
        assert row["erank"] == pytest.approx(want, rel=1e-6), row
        values[row["setting"], row["text"]] = row["erank"]
    # the settings really differ (a sweep that changed nothing would pass the equality above)
    assert values["W2", 0] != values["W16", 0] and values["KV4", 0] != values["KV16", 0]
    assert values["W16", 0] == values["KV16", 0]


def test_topk_with_full_coverage_equals_brute_force_on_full_logits(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_acbench.analysis import fake_quant as fq
    from lm_eval_acbench.analysis.paper import topk_nf4, topk_windows

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    lines = OWN_TEXT * 6
    windows = topk_windows(lines, tok, n_lines=30, n_windows=4, seq_len=12)
    # top_k = 20 = max k: without the reference columns many positions would not be covered
    summary = topk_nf4(tiny_model_dir, windows, tmp_path, ks=(3, 10, 20), top_k=20)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        zb = model(torch.tensor(windows)).logits.double().numpy()
        fq.quantize_weights(model, "nf4")
        zc = model(torch.tensor(windows)).logits.double().numpy()
    import pandas as pd

    per_pos = pd.read_csv(tmp_path / "analysis" / "per_position.csv")
    uncovered = 0
    for k in (3, 10, 20):
        rc = summary["pairs"]["nf4"]["rank_correlation"][str(k)]
        assert rc["not_covered_share"] == 0 and rc["positions"] == 4 * 12
        taus = np.full((4, 12), np.nan)
        rhos = np.full((4, 12), np.nan)
        for w in range(4):
            for p in range(12):
                x, y = zb[w, p], zc[w, p]
                s = np.lexsort((np.arange(x.size), -x))[:k]
                taus[w, p] = stats.kendalltau(x[s], y[s]).statistic
                rhos[w, p] = stats.spearmanr(x[s], y[s]).statistic
                top_c = set(np.argsort(-y)[:20].tolist())
                uncovered += not set(s.tolist()) <= top_c
        sel = per_pos[per_pos["k"] == k].sort_values("position")
        np.testing.assert_allclose(sel["tau_mean"], np.nanmean(taus, axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sel["rho_mean"], np.nanmean(rhos, axis=0), rtol=1e-4, atol=1e-4)
        assert rc["tau_mean_over_positions"] == pytest.approx(np.nanmean(taus), rel=1e-4, abs=1e-4)
    assert uncovered > 0  # the compressed top-20 alone would have missed positions


def test_energies_equal_a_direct_logsumexp_and_skip_padding(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_acbench.analysis.paper import energies, energy_lines

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    texts = energy_lines(OWN_TEXT, n_lines=10)
    assert len(texts) == 2 and all(len(t) > 50 for t in texts)
    e = energies(model, tok, texts, seq_len=48, batch_size=2)
    for i, t in enumerate(texts):
        ids = tok(t, add_special_tokens=False)["input_ids"][:48]
        with torch.no_grad():
            z = model(torch.tensor([ids])).logits[0].double().numpy()
        want = -np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) - z.max(1)
        np.testing.assert_allclose(e[i, :len(ids)], want, rtol=1e-5)
        assert np.isnan(e[i, len(ids):]).all()


def test_paper_command_prints_every_setting_and_names_the_split(tiny_model_dir, tmp_path, capsys):
    from lm_eval_acbench.cli import main

    corpus = tmp_path / "wiki.test.raw"
    corpus.write_text("\n".join(OWN_TEXT * 3), encoding="utf-8")
    assert main(["analyze", "--paper", "erank", str(tiny_model_dir), "--out", str(tmp_path / "e"),
                 "--corpus", str(corpus), "--num-texts", "2", "--max-tokens", "40"]) == 0
    out = capsys.readouterr().out
    for setting in ("W2", "W3", "W4", "W8", "W16", "KV4", "KV8", "KV16"):
        assert f"{setting}: ERank" in out
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["corpus"]["split"] == "test" and "note" not in summary["corpus"]
    assert main(["analyze", "--paper", "energy", str(tiny_model_dir), "--out", str(tmp_path / "g"),
                 "--corpus", str(corpus), "--num-lines", "4", "--seq-len", "32"]) == 0
    assert "the paper's energy analysis used the train split" in capsys.readouterr().out
    assert main(["report", "--analysis", str(tmp_path / "e"), "--analysis", str(tmp_path / "g"),
                 "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "ERank vs weight and KV-cache bits" in md and "Energy per position" in md and "train split" in md
    for png in ("paper_erank_bits.png", "paper_energy_positions_1.png", "paper_energy_histograms_1.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000 and f"({png})" in md
    # offline, the hub's WikiText-2 is not silently replaced by another text
    assert main(["analyze", "--paper", "topk", str(tiny_model_dir), "--out", str(tmp_path / "t")]) == 1
    assert "not reachable" in capsys.readouterr().err
