"""``acbench analyze BASE COMPRESSED... --out DIR``: ERank, top-k rank correlation, Energy of logit
logs; ``acbench analyze --paper erank|topk|energy MODEL --out DIR``: one analysis in the paper's
setting on one model (``lm_eval_acbench.analysis.paper``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_acbench.errors import UserError


def _labelled(spec: str) -> tuple[str, Path]:
    """``LABEL=PATH`` or ``PATH`` (label: the folder's name)."""
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
        return label, Path(path)
    return Path(spec).name, Path(spec)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="logit log of the base model ([LABEL=]FOLDER); with --paper: the model")
    parser.add_argument("compressed", nargs="*", help="logit logs of compressed models ([LABEL=]FOLDER)")
    parser.add_argument("--out", required=True, help="output folder (summary.json, CSVs, energies)")
    parser.add_argument("--k", default="3,10,20", help="top-k sizes for the rank correlation (default 3,10,20)")
    parser.add_argument("--max-n", type=int, default=None,
                        help="ERank over at most the last N logged positions per sequence (default: all logged)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="energy temperature; must be one the logs were written with (default 1)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="analyse only the keys both logs hold (reported) instead of refusing")
    paper = parser.add_argument_group("paper settings (--paper)")
    paper.add_argument("--paper", choices=("erank", "topk", "energy"), default=None,
                       help="run one analysis in the paper's setting on the model given as BASE")
    paper.add_argument("--corpus", default="wikitext2",
                       help="wikitext2 (the hub) or a local raw WikiText file (e.g. wiki.test.raw)")
    paper.add_argument("--num-texts", type=int, default=None, help="erank: only the first N paragraphs (reduced)")
    paper.add_argument("--weight-bits", default="2,3,4,8,16", help="erank: weight bits swept (default 2,3,4,8,16)")
    paper.add_argument("--kv-bits", default="4,8,16", help="erank: KV-cache bits swept (default 4,8,16)")
    paper.add_argument("--group-size", type=int, default=128, help="erank: RTN group size (default 128)")
    paper.add_argument("--max-tokens", type=int, default=None, help="erank: cut paragraphs at N tokens")
    paper.add_argument("--num-lines", type=int, default=None,
                       help="topk: lines joined (default 500); energy: lines used (default 1000)")
    paper.add_argument("--num-windows", type=int, default=50, help="topk: windows (default 50)")
    paper.add_argument("--seq-len", type=int, default=None, help="topk: window length (32); energy: padded length (256)")
    paper.add_argument("--device", default="cpu")


def _ints(value: str, name: str) -> list[int]:
    try:
        out = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name} must be comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise UserError(f"{name} needs positive integers, got {value!r}")
    return out


def run_paper(args: argparse.Namespace) -> int:
    from lm_eval_acbench.analysis.paper import CorpusUnavailable, run_paper as run
    from lm_eval_acbench.commands.logits import resolve_model

    model = resolve_model(args.base)
    if args.compressed:
        raise UserError("--paper takes one model (it makes the compressed variants itself)")
    try:
        summary = run(args.paper, model, Path(args.out), corpus=args.corpus, device=args.device,
                      num_texts=args.num_texts, weight_bits=_ints(args.weight_bits, "--weight-bits"),
                      kv_bits=_ints(args.kv_bits, "--kv-bits"), group_size=args.group_size,
                      max_tokens=args.max_tokens, n_lines=args.num_lines, n_windows=args.num_windows,
                      seq_len=args.seq_len, ks=_ints(args.k, "--k"))
    except CorpusUnavailable as exc:
        raise UserError(str(exc)) from exc
    print_paper(summary)
    print(Path(args.out) / "summary.json")
    return 0


def print_paper(summary: dict) -> None:
    corpus = summary["corpus"]
    print(f"{summary['paper']} on {summary['model']}: {corpus['source']} ({corpus['split']} split)"
          + (f"; NOTE {corpus['note']}" if corpus.get("note") else ""))
    print("setting: " + "; ".join(f"{k}={v}" for k, v in summary["setting"].items()))
    if summary["paper"] == "erank":
        for row in summary["erank"]:
            print(f"  {row['setting']:>5}: ERank {_f(row['erank_mean'])} (std {_f(row['erank_std'])}, "
                  f"{row['n_texts']} paragraphs, {row['n_tokens']} tokens)")
    elif summary["paper"] == "topk":
        for k, c in summary["paper_curves"].items():
            rc = summary["rank_correlation"][k]
            print(f"  top-{k}: tau {_f(c['tau_mean_positions_1_on'])} rho {_f(c['rho_mean_positions_1_on'])} "
                  f"(positions 1+), tau at position 0 {_f(c['tau_position_0'])}; all positions tau "
                  f"{_f(rc['tau_mean_over_positions'])}, not covered {_f(rc['not_covered_share'])}")
    else:
        e = summary["energy"]
        print(f"  energy base {_f(e['energy_base_mean'])} NF4 {_f(e['energy_compressed_mean'])} shift "
              f"{_f(e['mean_shift'])} W1 {_f(e['wasserstein1'])} KS {_f(e['ks'])} ({summary['n_positions']} positions)")
    print(f"  ({summary['seconds']} s)")


def run(args: argparse.Namespace) -> int:
    from lm_eval_acbench.analysis import analyze_runs
    from lm_eval_acbench.analysis.analyze import RunMismatch
    from lm_eval_acbench.analysis.logio import BadLog

    if args.paper:
        return run_paper(args)
    if not args.compressed:
        raise UserError("give the base log and at least one compressed log (or --paper NAME MODEL)")

    base_label, base = _labelled(args.base)
    compressed = dict(_labelled(s) for s in args.compressed)
    try:
        ks = [int(k) for k in str(args.k).split(",") if k.strip()]
    except ValueError as exc:
        raise UserError(f"--k must be comma-separated integers, got {args.k!r}") from exc
    if not ks or min(ks) < 2:
        raise UserError("--k needs sizes of at least 2")
    try:
        out = analyze_runs(base, compressed, Path(args.out), ks=ks, max_n=args.max_n,
                           temperature=args.temperature, allow_partial=args.allow_partial,
                           base_label=base_label)
    except (RunMismatch, BadLog, FileNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    _print_summary(out)
    return 0


def _print_summary(out: Path) -> None:
    import json

    summary = json.loads((out / "summary.json").read_text())
    for label, pair in summary["pairs"].items():
        e = pair["erank"]
        line = [f"{label}: {pair['sequences']} sequences, {pair['positions']} positions",
                f"Diff-eRank {_f(e['diff_erank'])} (base {_f(e['erank_base'])})"]
        for k, rc in pair["rank_correlation"].items():
            line.append(f"tau@{k} {_f(rc['tau_mean_over_positions'])} rho@{k} {_f(rc['rho_mean_over_positions'])}"
                        f" (not covered {_f(rc['not_covered_share'])})")
        en = pair["energy"]
        line.append(f"energy shift {_f(en['mean_shift'])} W1 {_f(en['wasserstein1'])} KS {_f(en['ks'])}")
        if pair["overlap"]["n_only_base"] or pair["overlap"]["n_only_compressed"]:
            line.append(f"partial: {pair['overlap']['n_only_base']} base-only, "
                        f"{pair['overlap']['n_only_compressed']} compressed-only keys left out")
        print("; ".join(line))
    print(out / "summary.json")


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"
