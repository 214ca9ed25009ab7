"""``acbench report [LABEL=]RUN... --out DIR``: tables and plots, base vs compressed."""

from __future__ import annotations

import argparse
from pathlib import Path

from lm_eval_acbench.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", help="lm-eval output folders, [LABEL=]FOLDER (label: folder name)")
    parser.add_argument("--out", required=True, help="report folder (report.md, report.html, CSVs, PNGs)")
    parser.add_argument("--base", default=None, help="label of the base model (default: 'base' or the first run)")
    parser.add_argument("--analysis", action="append", default=None,
                        help="an `acbench analyze` (or `analyze --paper`) output folder to include; repeatable")


def run(args: argparse.Namespace) -> int:
    from lm_eval_acbench.analysis.report import write_report
    from lm_eval_acbench.commands.analyze import _labelled

    runs = dict(_labelled(s) for s in args.runs)
    missing = [str(p) for p in runs.values() if not p.is_dir()]
    if missing:
        raise UserError(f"run folder(s) not found: {', '.join(missing)}")
    missing = [a for a in args.analysis or [] if not Path(a).is_dir()]
    if missing:
        raise UserError(f"analysis folder not found: {', '.join(missing)}")
    try:
        path = write_report(runs, Path(args.out), base=args.base,
                            analysis_dir=[Path(a) for a in args.analysis] if args.analysis else None)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(path)
    return 0
