"""``acbench analyze BASE COMPRESSED... --out DIR``: ERank, top-k rank correlation, Energy."""

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
    parser.add_argument("base", help="logit log of the base model ([LABEL=]FOLDER)")
    parser.add_argument("compressed", nargs="+", help="logit logs of compressed models ([LABEL=]FOLDER)")
    parser.add_argument("--out", required=True, help="output folder (summary.json, CSVs, energies)")
    parser.add_argument("--k", default="3,10,20", help="top-k sizes for the rank correlation (default 3,10,20)")
    parser.add_argument("--max-n", type=int, default=None,
                        help="ERank over at most the last N logged positions per sequence (default: all logged)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="energy temperature; must be one the logs were written with (default 1)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="analyse only the keys both logs hold (reported) instead of refusing")


def run(args: argparse.Namespace) -> int:
    from lm_eval_acbench.analysis import analyze_runs
    from lm_eval_acbench.analysis.analyze import RunMismatch
    from lm_eval_acbench.analysis.logio import BadLog

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
