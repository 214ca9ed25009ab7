"""The ``acbench`` command: one CLI, one module per subcommand.

Each subcommand lives in ``lm_eval_acbench.commands.<name>`` with two functions,
``configure(parser)`` (argparse only, no heavy imports) and ``run(args) -> int``. Only the
module of the subcommand being run is imported, so ``acbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lm_eval_acbench.errors import UserError

# name -> one-line help; the module is lm_eval_acbench.commands.<name with - as _>.
SUBCOMMANDS = {
    "model": "get models: fetch a local HF folder (hub or offline GGUF), build a tiny test model",
    "compress": "quantize or prune a model into a checkpoint lm-eval and vLLM load",
    "logits": "log teacher-forced logits of a model on a fixed text corpus",
    "analyze": "ERank, top-k ranking correlation and Energy of compressed vs base logit logs",
    "report": "tables and plots from lm-eval results and analysis outputs",
    "run": "run a study (models x recipes x tasks) from a YAML file, resumably",
    "demo": "the default study on the acting Qwen2.5-Coder-0.5B (--smoke: SmolLM2), offline, on CPU",
}


def _command_module(name: str):
    return importlib.import_module(f"lm_eval_acbench.commands.{name.replace('-', '_')}")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acbench",
        description="ACBench on lm-evaluation-harness: what compression does to an LLM's ability to act.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _command_module(name).configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(_command_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("acbench: interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"acbench {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
