"""Check a study folder's logit logs of real-world episode steps against the episodes themselves.

    python scripts/check_episode_logits.py OUT_DIR [--model NAME]

For every finished evaluation cell that logged logits and played episodes
(``acbench_realworld*`` samples), every step of every episode in lm-eval's samples log
(``resps`` = the episode transcript, ``trajectory[s-1].prompt`` = what the model saw at step s)
must have exactly one record under ``task|doc_id|generate_until|0|episode<r>|step<s>`` whose input
ids end with the tokenized step prompt (the whole prompt unless the model's window cut its start)
and whose generated ids decode to the step's output; no record may be left without a step. Then,
per recipe, the analysis (``analysis/<model>/per_sequence.csv``) must hold exactly the keys whose
prompts are the same in both runs, and every episode's first step, whose prompt does not depend
on the model, must be among them.

Prints one line per cell and per recipe and exits 1 on the first kind of mismatch found (all are
listed). The keys follow ``lm_eval_acbench.analysis.logio.make_key``; the prompt check follows the
way ``acbench-hf`` encodes a ``generate_until`` prompt (HFLM's ``tok_batch_encode``, no special
tokens added for a chat prompt).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections import Counter
from pathlib import Path


def _transcripts(samples_file: Path):
    """(task, doc_id, repeat, transcript) of every episode in one lm-eval samples log."""
    task = samples_file.name[len("samples_"):].rsplit("_", 1)[0]
    with open(samples_file, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            for r, resp in enumerate(row["resps"]):
                text = resp[0] if isinstance(resp, list) else resp
                yield task, int(row["doc_id"]), r, json.loads(text)


def _squash(text: str) -> str:
    return "".join(text.split())


def check_cell(eval_dir: Path, logit_dir: Path, tokenizer) -> tuple[list[str], dict]:
    """Problems found in one evaluation cell, and {key: prompt_hash} of its step records."""
    from lm_eval_acbench.analysis.logio import iter_records, make_key

    records = {}
    problems = []
    for rec in iter_records(logit_dir):
        if rec["key"] in records:
            problems.append(f"{rec['key']}: logged twice")
        records[rec["key"]] = rec
    used = set()
    n_steps = 0
    for samples in sorted(eval_dir.glob("samples_acbench_realworld*.jsonl")):
        for task, doc_id, repeat, transcript in _transcripts(samples):
            for s, step in enumerate(transcript.get("trajectory") or [], 1):
                if "prompt" not in step:  # an environment error before the model was asked
                    continue
                n_steps += 1
                key = make_key(task, doc_id, "generate_until", 0, repeat, s)
                rec = records.get(key)
                if rec is None:
                    problems.append(f"{key}: step {s} of the episode has no record")
                    continue
                used.add(key)
                want = tokenizer(step["prompt"], add_special_tokens=False)["input_ids"]
                got = rec["input_ids"].tolist()
                m = min(len(want), len(got))
                if m == 0 or got[-m:] != want[-m:]:
                    problems.append(f"{key}: the record's prompt is not step {s}'s prompt")
                out = tokenizer.decode(rec["generated_ids"].tolist(), skip_special_tokens=True)
                # the step's output is the decoded generation cut at the stop sequence
                if step.get("output") is not None and not _squash(out).startswith(_squash(step["output"])[:40]):
                    problems.append(f"{key}: generated ids decode to {out[:60]!r}, step output {step['output'][:60]!r}")
    extra = sorted(set(records) - used)
    for key in extra:
        problems.append(f"{key}: record of no episode step")
    hashes = {k: records[k]["prompt_hash"] for k in used}
    print(f"{logit_dir}: {n_steps} steps, {len(records)} records, {len(problems)} problems", flush=True)
    return problems, hashes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default=None, help="study model name (default: the only one)")
    args = ap.parse_args(argv)
    import pandas as pd
    from transformers import AutoTokenizer

    out = args.out
    models = sorted(p.name for p in (out / "logits").iterdir()) if args.model is None else [args.model]
    problems: list[str] = []
    for model in models:
        variants = sorted(p.name for p in (out / "logits" / model).iterdir() if p.is_dir())
        by_variant: dict[str, dict] = {}
        for variant in variants:
            for logit_dir in sorted((out / "logits" / model / variant).iterdir()):
                if not (logit_dir / "meta.json").is_file() or not (
                        out / "cells/eval" / model / variant / logit_dir.name / "done.json").is_file():
                    continue
                eval_dir = out / "evals" / model / variant / logit_dir.name
                if not glob.glob(str(eval_dir / "samples_acbench_realworld*.jsonl")):
                    continue
                meta = json.loads((logit_dir / "meta.json").read_text())
                tok = AutoTokenizer.from_pretrained(meta["tokenizer"] or meta["model"])
                found, hashes = check_cell(eval_dir, logit_dir, tok)
                problems += found
                by_variant.setdefault(variant, {}).update(hashes)
        base = by_variant.get("base", {})
        per_seq_file = out / "analysis" / model / "per_sequence.csv"
        per_seq = pd.read_csv(per_seq_file) if per_seq_file.is_file() else None
        for variant, hashes in by_variant.items():
            if variant == "base":
                continue
            same = {k for k, h in hashes.items() if base.get(k) == h}
            first = {k for k in base if k.endswith("|step1")}
            if per_seq is None:
                problems.append(f"{variant}: no {per_seq_file}")
                continue
            col = "label" if "label" in per_seq.columns else None
            rows = per_seq[per_seq[col] == variant] if col else per_seq
            analysed = set(rows["key"])
            steps = [k for k in analysed if "|episode" in k]
            missing, extra = sorted(same - analysed), sorted(set(steps) - same)
            lost_first = sorted(first - same)
            by_step = Counter(k.rsplit("|", 1)[1] for k in steps)
            print(f"{model}/{variant}: {len(same)} steps with the base's prompt, {len(steps)} analysed "
                  f"({dict(sorted(by_step.items()))}); first steps {len(first & same)} of {len(first)}")
            problems += [f"{variant} {k}: same prompt as the base but not analysed" for k in missing]
            problems += [f"{variant} {k}: analysed but its prompt is not the base's" for k in extra]
            problems += [f"{variant} {k}: first step's prompt differs from the base's" for k in lost_first]
    for line in problems:
        print("MISMATCH", line)
    print("OK" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
