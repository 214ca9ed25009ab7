"""``acbench run STUDY.yaml``: every model x (base + recipes) x task, resumably."""

from __future__ import annotations

import argparse

from lm_eval_acbench.errors import UserError


def add_study_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``run`` and ``demo``; each overrides the study file."""
    parser.add_argument("--out", help="output folder (overrides the study's 'out')")
    parser.add_argument("--limit", type=float, help="documents per task (<1: a fraction)")
    parser.add_argument("--tasks", help="comma-separated lm-eval task/group names (replaces tasks and capabilities)")
    parser.add_argument("--capabilities", help="comma-separated: workflow,tool_use,long_context,real_world "
                        "(replaces tasks and capabilities)")
    parser.add_argument("--recipes", help="comma-separated recipes (built-in names or YAML files); '' for none")
    parser.add_argument("--models", help="comma-separated models (hub ids, folders, 'default')")
    parser.add_argument("--executor", choices=["local", "ray"], help="run cells in-process or as Ray tasks")
    parser.add_argument("--ray-address", help="Ray cluster to join (default: start a local instance)")
    parser.add_argument("--backend", choices=["hf", "vllm", "local-completions", "local-chat-completions"])
    parser.add_argument("--max-gen-toks", type=int, help="generation length cap for every task")
    parser.add_argument("--no-logits", action="store_true", help="do not log logits (and skip the analysis)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set any study key, dotted, value in YAML (repeatable), e.g. "
                        "--set backend.model_args.dtype=float32")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the cell counts; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no overall progress bar")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def overrides_from_args(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from lm_eval_acbench.study.config import parse_assignment

    over: dict = {}
    if args.out:
        over["out"] = str(Path(args.out).expanduser().resolve())
    if args.limit is not None:
        over["limit"] = args.limit
    if args.tasks is not None or args.capabilities is not None:
        over["tasks"] = _split(args.tasks or "")
        over["capabilities"] = _split(args.capabilities or "")
    if args.recipes is not None:
        over["recipes"] = [str(Path(r).resolve()) if r.endswith((".yaml", ".yml")) else r
                           for r in _split(args.recipes)]
    if args.models is not None:
        over["models"] = [str(Path(m).resolve()) if Path(m).expanduser().is_dir() else m
                          for m in _split(args.models)]
    if args.executor:
        over["executor.type"] = args.executor
    if args.ray_address:
        over["executor.address"] = args.ray_address
    if args.backend:
        over["backend.type"] = args.backend
    if args.max_gen_toks is not None:
        over["generation.max_gen_toks"] = args.max_gen_toks
    if args.no_logits:
        over["logits.enabled"] = False
    for text in args.set:
        key, value = parse_assignment(text)
        over[key] = value
    return over


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study YAML file (see docs/study.md and examples/)")
    add_study_flags(parser)


def run_and_print(study, args: argparse.Namespace) -> int:
    from lm_eval_acbench.study.runner import run_study, timing_table

    summary = run_study(study, dry_run=args.dry_run, progress=not args.no_progress)
    if summary.dry_run:
        return 0
    print("\nStage timings:")
    print(timing_table(summary.timings))
    failed = summary.with_status("failed", "blocked", "partial")
    for cell_id in failed:
        r = summary.results[cell_id]
        print(f"  {r['status']}: {cell_id}: {r.get('error')}")
    print(f"\nstate: {summary.plan.layout.state_file}")
    for report in summary.reports:
        print(f"report: {report}")
    if failed:
        print(f"{len(failed)} cell(s) did not finish; run the same command again to retry them "
              "(finished cells are kept).")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from lm_eval_acbench.study.config import load_study

    if args.study is None:
        raise UserError("name a study file")
    study = load_study(args.study, overrides_from_args(args))
    return run_and_print(study, args)
