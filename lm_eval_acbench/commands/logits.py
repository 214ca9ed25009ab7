"""``acbench logits MODEL --corpus wikitext2|FILE --out DIR``: log teacher-forced logits on text.

The paper's setting: fixed windows of ``--seq-len`` tokens from WikiText-2 test paragraphs. Here
the windows are drawn with a seeded generator (the original used an unseeded random index), so
every model of a study sees the same token windows. Without the hub, ``wikitext2`` falls back to
the corpus shipped in ``lm_eval_acbench/samples/corpus/paragraphs.txt`` (our own text, not
WikiText-2) and the log's meta says so. Records have the same format as ``acbench-hf``'s.
``--reference BASE_LOG`` (a compressed model logged against its base's log of the same windows)
also stores this model's logits at the base's top-K ids: rank correlation is then exact at every
position. The paper's own settings of the three analyses: ``acbench analyze --paper``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lm_eval_acbench.errors import UserError

log = logging.getLogger(__name__)

SHIPPED_CORPUS = Path(__file__).resolve().parent.parent / "samples" / "corpus" / "paragraphs.txt"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="local HF model folder (or a name `acbench model fetch` resolves)")
    parser.add_argument("--corpus", default="wikitext2",
                        help="wikitext2 (hub; offline: the shipped corpus), shipped, or a text file "
                             "(paragraphs separated by blank lines)")
    parser.add_argument("--out", required=True, help="logit log folder to write")
    parser.add_argument("--num-seqs", type=int, default=50, help="number of windows (default 50)")
    parser.add_argument("--seq-len", type=int, default=32, help="tokens per window (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the window choice (default 0)")
    parser.add_argument("--top-k", type=int, default=64, help="logits kept per position (default 64)")
    parser.add_argument("--temperatures", default="1", help="energy temperatures, comma-separated (default 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="torch dtype to load the model in (default float32)")
    parser.add_argument("--reference", default=None,
                        help="the base model's log of the same windows: also log this model's logits at its top-K ids")


def load_paragraphs(corpus: str) -> tuple[list[str], str]:
    """The corpus's paragraphs and a description of where they came from."""
    if corpus == "wikitext2":
        try:
            import datasets

            ds = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split="test")
            paras = [t.strip() for t in ds["text"] if t.strip() and not t.strip().startswith("=")]
            if paras:
                return paras, "wikitext-2-raw-v1:test"
        except Exception as exc:  # offline, no datasets cache: fall back, and say so
            log.warning("WikiText-2 unavailable (%s: %s); using the shipped offline corpus %s",
                        type(exc).__name__, str(exc).splitlines()[0][:120] if str(exc) else "", SHIPPED_CORPUS)
        corpus = "shipped"
    if corpus == "shipped":
        path, source = SHIPPED_CORPUS, "acbench-shipped:paragraphs.txt (offline fallback, not WikiText-2)"
    else:
        path, source = Path(corpus), f"file:{Path(corpus).name}"
    if not path.is_file():
        raise UserError(f"corpus file not found: {path}")
    text = path.read_text(encoding="utf-8")
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    if not paras:
        raise UserError(f"corpus {path} has no text")
    return paras, source


def choose_windows(token_stream: list[int], num_seqs: int, seq_len: int, seed: int) -> list[int]:
    """Start offsets of ``num_seqs`` non-overlapping windows, chosen with a seeded generator."""
    import numpy as np

    slots = len(token_stream) // seq_len
    if slots < 1:
        raise UserError(f"corpus has {len(token_stream)} tokens, fewer than one window of {seq_len}")
    if num_seqs > slots:
        log.warning("corpus holds %d windows of %d tokens; using all of them instead of %d", slots, seq_len, num_seqs)
        num_seqs = slots
    rng = np.random.default_rng(seed)
    return sorted(int(s) * seq_len for s in rng.choice(slots, size=num_seqs, replace=False))


def log_corpus(model_dir, out: Path, *, corpus: str = "wikitext2", num_seqs: int = 50, seq_len: int = 32,
               seed: int = 0, top_k: int = 64, temperatures=(1.0,), batch_size: int = 8,
               device: str = "cpu", dtype: str = "float32", reference: Path | None = None) -> Path:
    """Write a logit log of ``model_dir`` on seeded windows of ``corpus``; returns ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_acbench.analysis.window_log import log_windows
    from lm_eval_acbench.models import tokenizer_fingerprint

    paras, source = load_paragraphs(corpus)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    stream: list[int] = []
    for p in paras:
        stream.extend(tokenizer(p + "\n\n", add_special_tokens=False)["input_ids"])
    starts = choose_windows(stream, num_seqs, seq_len, seed)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    model.to(device).eval()
    task = "corpus:" + ("wikitext2" if source.startswith("wikitext") else Path(source.split(":", 1)[1].split()[0]).stem)
    meta = {"model": str(model_dir), "tokenizer": getattr(tokenizer, "name_or_path", ""),
            "tokenizer_hash": tokenizer_fingerprint(tokenizer), "max_positions": seq_len,
            "source": "corpus", "corpus": source, "seed": seed, "seq_len": seq_len}
    return log_windows(model, [stream[s:s + seq_len] for s in starts], Path(out), meta=meta, task=task,
                       top_k=top_k, temperatures=temperatures, batch_size=batch_size, request_idx=starts,
                       reference=reference)


def resolve_model(name: str) -> Path:
    """A local model folder, or a name `acbench model fetch` resolves (one-line error if not)."""
    model = Path(name)
    if model.is_dir():
        return model
    from lm_eval_acbench.model_store import FetchError, fetch

    try:
        return fetch(name)
    except FetchError as exc:
        raise UserError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    model = resolve_model(args.model)
    try:
        temps = [float(t) for t in str(args.temperatures).split(",") if t.strip()]
    except ValueError as exc:
        raise UserError(f"--temperatures must be numbers, got {args.temperatures!r}") from exc
    if args.seq_len < 2 or args.num_seqs < 1 or args.top_k < 1 or not temps or min(temps) <= 0:
        raise UserError("--seq-len >= 2, --num-seqs >= 1, --top-k >= 1 and positive temperatures are required")
    try:
        out = log_corpus(model, Path(args.out), corpus=args.corpus, num_seqs=args.num_seqs, seq_len=args.seq_len,
                         seed=args.seed, top_k=args.top_k, temperatures=temps, batch_size=args.batch_size,
                         device=args.device, dtype=args.dtype,
                         reference=Path(args.reference) if args.reference else None)
    except (ValueError, FileNotFoundError) as exc:  # an existing log in the folder, a bad reference
        raise UserError(str(exc)) from exc
    print(out)
    return 0
