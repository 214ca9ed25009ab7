"""``acbench demo``: the packaged default study (``lm_eval_acbench/studies/demo.yaml``).

SmolLM2-135M-Instruct (the embedded model), compressed with GPTQ W4A16, AWQ W4A16, Wanda 50%
and SparseGPT 2:4; the base and the four checkpoints evaluated on every acbench task that is
installed, with a small limit; logits logged and analysed; the report written. Offline by
default (the hub is not asked; tasks use their local data or our sample sets).
"""

from __future__ import annotations

import argparse
import os

from lm_eval_acbench.commands.run import add_study_flags, overrides_from_args, run_and_print

DEFAULT_OUT = "acbench_runs/demo"  # acbench_runs/ is git-ignored


def configure(parser: argparse.ArgumentParser) -> None:
    add_study_flags(parser)
    parser.add_argument("--online", action="store_true",
                        help="let models, data and calibration text come from the HF hub")
    parser.set_defaults(out=None)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lm_eval_acbench.paths import PACKAGE_DIR
    from lm_eval_acbench.study.config import load_study

    if not args.online:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    overrides = overrides_from_args(args)
    overrides.setdefault("out", str(Path(args.out or DEFAULT_OUT).expanduser().resolve()))
    study = load_study(PACKAGE_DIR / "studies" / "demo.yaml", overrides)
    return run_and_print(study, args)
