"""The paper's three logit analyses in their published settings (``acbench analyze --paper``).

* **ERank** (:func:`erank_sweep`): whole WikiText-2 *test* paragraphs at full length (each a
  non-empty, non-heading line of the raw file), one ERank per paragraph from its full logit
  matrix; swept over weight bits (2, 3, 4, 8, 16) and KV-cache bits (4, 8, 16) with RTN
  asymmetric group-128 fake quantization (``fake_quant``); the mean over paragraphs per setting.
* **Top-k ranking correlation** (:func:`topk_nf4`): WikiText-2 *train*, the first 500 non-empty
  lines joined by blank lines, tokenized once; the first 50 consecutive 32-token windows; fp32
  base vs its NF4 copy; Kendall tau-b / Spearman rho at k = 3, 10, 20 at every position (the NF4
  model is logged at the base's top-K ids, so no position is left out), per position and averaged
  over positions 1-31 (the paper's figure) and over all.
* **Energy** (:func:`energy_nf4`): the first 1,000 WikiText-2 *train* lines longer than 50
  characters, each right-padded (or cut) to 256 tokens; ``E = -logsumexp(z)`` (T = 1) per
  position for the base and its NF4 copy; per position the means, Wasserstein-1 and KS, and the
  energies at every position for histograms. Padding positions are not counted (each position's
  count of real tokens is written).

The text comes from the hub (``datasets``: ``wikitext``/``wikitext-2-raw-v1``) or a local raw
WikiText file; every output says which split of which source was used, and when it is not the
paper's split (offline only the test split may be at hand).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PAPER_SPLIT = {"erank": "test", "topk": "train", "energy": "train"}
DEFAULT_WEIGHT_BITS = (2, 3, 4, 8, 16)
DEFAULT_KV_BITS = (4, 8, 16)


class CorpusUnavailable(ValueError):
    """The requested WikiText-2 text could not be read."""


def wikitext_lines(corpus: str, split: str) -> tuple[list[str], dict]:
    """Raw lines of WikiText-2 ``split`` (``corpus`` = ``wikitext2``: the hub) or of a local raw
    WikiText file, and a description ``{"source", "split", "paper_split"}``."""
    if corpus == "wikitext2":
        try:
            import datasets

            ds = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split=split)
            return list(ds["text"]), {"source": "hub:wikitext/wikitext-2-raw-v1", "split": split}
        except Exception as exc:  # noqa: BLE001 - offline / no cache: say so, no stand-in
            raise CorpusUnavailable(
                f"WikiText-2 {split} split not reachable on the hub ({type(exc).__name__}); pass a local raw "
                "WikiText file with --corpus (e.g. ../shared/data/calibration/data/wikitext-2-raw/wiki.test.raw)"
            ) from None
    path = Path(corpus)
    if not path.is_file():
        raise CorpusUnavailable(f"corpus file not found: {path}")
    name = path.name.lower()
    found = next((s for s in ("train", "test", "valid") if s in name), "unknown")
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines, {"source": f"file:{path.name}", "split": "validation" if found == "valid" else found}


def describe(desc: dict, analysis: str) -> dict:
    want = PAPER_SPLIT[analysis]
    out = dict(desc, paper_split=want)
    if desc["split"] != want:
        out["note"] = (f"used the {desc['split']} split of {desc['source']}; the paper's {analysis} analysis "
                       f"used the {want} split (not available here)")
    return out


def paragraphs(lines: list[str]) -> list[str]:
    """Non-empty lines that are not section headings (`` = Title = ``), stripped."""
    out = []
    for line in lines:
        t = line.strip()
        if t and not (t.startswith("=") and t.endswith("=")):
            out.append(t)
    return out


def _load(model_dir, device: str, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    return model.to(device).eval(), tokenizer


# ---------------------------------------------------------------------------- ERank
def erank_sweep(model_dir, texts: list[str], *, weight_bits=DEFAULT_WEIGHT_BITS, kv_bits=DEFAULT_KV_BITS,
                group_size: int = 128, max_tokens: int | None = None, device: str = "cpu",
                model=None, tokenizer=None) -> list[dict]:
    """ERank of each text's full logit matrix under each fake-quantization setting.

    Rows ``{"setting", "kind" (weight|kv), "bits", "text", "n_tokens", "erank"}``; 16 bits is the
    unquantized model (computed once, reported under both kinds). ERank via the n x n Gram matrix
    of the float64 logits (``erank.erank_from_gram``; equal to the V x V definition).
    """
    import torch

    from . import erank as er
    from . import fake_quant as fq

    if model is None:
        model, tokenizer = _load(model_dir, device)
    limit = max_tokens or getattr(model.config, "max_position_embeddings", None) or 4096
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:limit] for t in texts]
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    settings = [("weight", int(b)) for b in weight_bits] + [("kv", int(b)) for b in kv_bits]
    cache: dict[tuple, list[float]] = {}
    rows = []
    dev = next(model.parameters()).device
    for kind, bits in settings:
        effective = ("none",) if bits >= 16 else (kind, bits)
        if effective not in cache:
            model.load_state_dict(original)
            if kind == "weight" and bits < 16:
                fq.quantize_weights(model, "rtn", bits, group_size)
            values = []
            with fq.kv_fake_quant(model, bits if kind == "kv" else 16, group_size), torch.no_grad():
                for ids in encoded:
                    if len(ids) < 2:
                        values.append(float("nan"))
                        continue
                    z = model(torch.tensor([ids], device=dev)).logits[0].double()
                    values.append(er.erank_from_gram((z @ z.T).cpu().numpy()))
            cache[effective] = values
        for i, (ids, value) in enumerate(zip(encoded, cache[effective])):
            rows.append({"setting": f"{'W' if kind == 'weight' else 'KV'}{bits}", "kind": kind, "bits": bits,
                         "text": i, "n_tokens": len(ids), "erank": value})
    model.load_state_dict(original)
    return rows


def erank_summary(rows: list[dict]) -> list[dict]:
    """Mean ERank per setting over the texts where it is defined."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        sel = [r for r in rows if r["setting"] == setting]
        vals = np.array([r["erank"] for r in sel], dtype=np.float64)
        ok = np.isfinite(vals)
        out.append({"setting": setting, "kind": sel[0]["kind"], "bits": sel[0]["bits"],
                    "erank_mean": float(vals[ok].mean()) if ok.any() else float("nan"),
                    "erank_std": float(vals[ok].std()) if ok.any() else float("nan"),
                    "n_texts": int(ok.sum()), "n_tokens": int(sum(r["n_tokens"] for r in sel))})
    return out


# ---------------------------------------------------------------------------- top-k
def topk_windows(lines: list[str], tokenizer, *, n_lines: int = 500, n_windows: int = 50,
                 seq_len: int = 32) -> list[list[int]]:
    """The first ``n_lines`` non-empty lines joined by blank lines, tokenized once, cut into the
    first ``n_windows`` consecutive ``seq_len``-token windows."""
    text = "\n\n".join([t.strip() for t in lines if t.strip()][:n_lines])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = [ids[i * seq_len:(i + 1) * seq_len] for i in range(min(n_windows, len(ids) // seq_len))]
    if not windows:
        raise CorpusUnavailable(f"the text holds {len(ids)} tokens, fewer than one window of {seq_len}")
    return windows


def topk_nf4(model_dir, windows: list[list[int]], out: Path, *, ks=(3, 10, 20), top_k: int = 64,
             device: str = "cpu", corpus: dict | None = None) -> dict:
    """Base vs NF4 on ``windows``: logs both (the NF4 model at the base's top-K ids) and analyses
    them (``analyze_runs``); returns the summary with the per-position curves' averages."""
    import pandas as pd

    from lm_eval_acbench.models import tokenizer_fingerprint

    from . import fake_quant as fq
    from .analyze import analyze_runs
    from .window_log import log_windows

    model, tokenizer = _load(model_dir, device)
    meta = {"model": str(model_dir), "tokenizer": getattr(tokenizer, "name_or_path", ""),
            "tokenizer_hash": tokenizer_fingerprint(tokenizer), "source": "corpus",
            "corpus": json.dumps(corpus or {}), "seq_len": len(windows[0])}
    out = Path(out)
    base_log = log_windows(model, windows, out / "logs" / "base", meta=meta, task="corpus:wikitext2",
                           top_k=top_k)
    fq.quantize_weights(model, "nf4")
    nf4_log = log_windows(model, windows, out / "logs" / "nf4", meta={**meta, "model": f"{model_dir} (NF4)"},
                          task="corpus:wikitext2", top_k=top_k, reference=base_log)
    analyze_runs(base_log, {"nf4": nf4_log}, out / "analysis", ks=ks)
    summary = json.loads((out / "analysis" / "summary.json").read_text())
    per_pos = pd.read_csv(out / "analysis" / "per_position.csv")
    curves = {}
    for k in ks:
        sel = per_pos[per_pos["k"] == k]
        later = sel[sel["position"] >= 1]
        curves[str(k)] = {
            "tau_position_0": float(sel.loc[sel["position"] == 0, "tau_mean"].iloc[0]),
            "tau_mean_positions_1_on": float(np.average(later["tau_mean"], weights=later["tau_n"])),
            "rho_mean_positions_1_on": float(np.average(later["rho_mean"], weights=later["rho_n"])),
        }
    summary["paper_curves"] = curves
    return summary


# ---------------------------------------------------------------------------- energy
def energy_lines(lines: list[str], *, n_lines: int = 1000, min_chars: int = 50) -> list[str]:
    """The first ``n_lines`` lines with more than ``min_chars`` characters (stripped)."""
    return [t.strip() for t in lines if len(t.strip()) > min_chars][:n_lines]


def energies(model, tokenizer, texts: list[str], *, seq_len: int = 256, batch_size: int = 8) -> np.ndarray:
    """``E = -logsumexp(z)`` at every position of each text right-padded or cut to ``seq_len``
    tokens: (len(texts), seq_len), nan at padding.

    Right padding under a causal mask does not change the logits of the real positions, so each
    batch is padded only to its longest text (texts are batched in order of length)."""
    import torch

    dev = next(model.parameters()).device
    out = np.full((len(texts), seq_len), np.nan)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:seq_len] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for b in range(0, len(order), batch_size):
        rows = [i for i in order[b:b + batch_size] if encoded[i]]
        if not rows:
            continue
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, :len(encoded[i])] = 1
        with torch.no_grad():
            z = model(ids.to(dev), attention_mask=mask.to(dev)).logits.float()
            e = -torch.logsumexp(z, dim=-1).double().cpu().numpy()
        for r, i in enumerate(rows):
            out[i, :len(encoded[i])] = e[r, :len(encoded[i])]
    return out


def energy_nf4(model_dir, texts: list[str], out: Path, *, seq_len: int = 256, device: str = "cpu",
               batch_size: int = 8) -> dict:
    """Base vs NF4 energies per position; writes ``energy_nf4.npz`` and ``energy_per_position.csv``."""
    import pandas as pd

    from . import energy as en
    from . import fake_quant as fq

    model, tokenizer = _load(model_dir, device)
    e_base = energies(model, tokenizer, texts, seq_len=seq_len, batch_size=batch_size)
    fq.quantize_weights(model, "nf4")
    e_nf4 = energies(model, tokenizer, texts, seq_len=seq_len, batch_size=batch_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "energy_nf4.npz", base=e_base.astype(np.float32), compressed=e_nf4.astype(np.float32))
    rows = []
    for p in range(seq_len):
        a, b = e_base[:, p], e_nf4[:, p]
        ok = np.isfinite(a) & np.isfinite(b)
        if not ok.any():
            continue
        shift = en.energy_shift(a[ok], b[ok])
        rows.append({"pair": "nf4", "position": p, "n": int(ok.sum()), "energy_base_mean": shift["energy_base_mean"],
                     "energy_compressed_mean": shift["energy_compressed_mean"], "mean_shift": shift["mean_shift"],
                     "wasserstein1": shift["wasserstein1"], "ks": shift["ks"]})
    pd.DataFrame(rows).to_csv(out / "energy_per_position.csv", index=False)
    ok = np.isfinite(e_base) & np.isfinite(e_nf4)
    return {"energy": en.energy_shift(e_base[ok], e_nf4[ok]), "n_texts": len(texts),
            "n_positions": int(ok.sum()), "seq_len": seq_len}


# ---------------------------------------------------------------------------- one command
def run_paper(analysis: str, model_dir, out: Path, *, corpus: str = "wikitext2", device: str = "cpu",
              num_texts: int | None = None, weight_bits=DEFAULT_WEIGHT_BITS, kv_bits=DEFAULT_KV_BITS,
              group_size: int = 128, max_tokens: int | None = None, n_lines: int | None = None,
              n_windows: int = 50, seq_len: int | None = None, ks=(3, 10, 20),
              histogram_positions=(0, 31, 127, 255)) -> dict:
    """Run one paper analysis and write ``out/summary.json`` (``paper``: its name, the setting,
    the corpus used, the results); returns the summary."""
    if analysis not in PAPER_SPLIT:
        raise ValueError(f"unknown paper analysis {analysis!r} (erank | topk | energy)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines, desc = wikitext_lines(corpus, PAPER_SPLIT[analysis])
    desc = describe(desc, analysis)
    tick = time.perf_counter()
    summary: dict = {"paper": analysis, "model": str(model_dir), "corpus": desc}
    if analysis == "erank":
        texts = paragraphs(lines)
        if num_texts:
            texts = texts[:num_texts]
        rows = erank_sweep(model_dir, texts, weight_bits=weight_bits, kv_bits=kv_bits, group_size=group_size,
                           max_tokens=max_tokens, device=device)
        import pandas as pd

        pd.DataFrame(rows).to_csv(out / "erank_per_text.csv", index=False)
        summary["setting"] = {"texts": "whole paragraphs (non-empty, non-heading lines), full length",
                              "n_texts": len(texts), "weight_bits": list(weight_bits), "kv_bits": list(kv_bits),
                              "quantization": f"RTN asymmetric, group {group_size} (fake quantization)",
                              "reduced": bool(num_texts)}
        summary["erank"] = erank_summary(rows)
    elif analysis == "topk":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        n_lines = n_lines or 500
        seq_len = seq_len or 32
        windows = topk_windows(lines, tokenizer, n_lines=n_lines, n_windows=n_windows, seq_len=seq_len)
        result = topk_nf4(model_dir, windows, out, ks=ks, device=device, corpus=desc)
        summary["setting"] = {"text": f"first {n_lines} non-empty lines joined by blank lines",
                              "windows": f"first {len(windows)} consecutive {seq_len}-token windows",
                              "compare": "fp32 base vs NF4 (fake quantization, blocks of 64)", "ks": list(ks),
                              "reduced": n_lines != 500 or len(windows) != 50 or seq_len != 32}
        summary["rank_correlation"] = result["pairs"]["nf4"]["rank_correlation"]
        summary["paper_curves"] = result["paper_curves"]
        summary["files"] = {"analysis": "analysis/", "logs": "logs/"}
    else:
        n_lines = n_lines or 1000
        seq_len = seq_len or 256
        texts = energy_lines(lines, n_lines=n_lines)
        result = energy_nf4(model_dir, texts, out, seq_len=seq_len, device=device)
        summary["setting"] = {"text": f"first {len(texts)} lines longer than 50 characters",
                              "padding": f"right-padded or cut to {seq_len} tokens; padding not counted",
                              "compare": "fp32 base vs NF4 (fake quantization, blocks of 64)", "temperature": 1.0,
                              "histogram_positions": [p for p in histogram_positions if p < seq_len],
                              "reduced": n_lines != 1000 or seq_len != 256}
        summary.update(result)
    summary["seconds"] = round(time.perf_counter() - tick, 1)
    from .analyze import _json_safe

    (out / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2))
    return summary
