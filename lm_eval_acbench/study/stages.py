"""The four stage functions a study runs: compress, evaluate, analyze, report.

Each takes ``(ctx, cell)`` and returns a small JSON-able dict that goes into the cell's done
marker. Each writes its output under a staging name and renames it into place when complete,
so a cell killed halfway leaves nothing that looks finished; the runner writes the done marker
only after the stage has returned. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lm_eval_acbench import owned_dirs
from lm_eval_acbench.study.config import BASE, ENDPOINT_BACKENDS, Study
from lm_eval_acbench.study.plan import Cell, Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageContext:
    """What every stage needs; picklable, so Ray ships it to the workers."""

    study: Study
    layout: Layout
    tasks: tuple[str, ...]
    builtin_tasks: bool = False


# ---- helpers ---------------------------------------------------------------------------------

def _staging(ctx: StageContext, cell: Cell) -> Path:
    """An empty scratch folder (ours, marked) for one cell, outside the folders reports read."""
    staging = ctx.layout.staging_dir(cell.id)
    owned_dirs.remove_owned_dir(staging, root=ctx.layout.root)
    return owned_dirs.make_owned_dir(staging, root=ctx.layout.root)


def _publish(ctx: StageContext, staging: Path, final: Path) -> None:
    """Move a finished folder into place, replacing an older one only if the study made it."""
    owned_dirs.replace_owned_dir(staging, final, root=ctx.layout.root)


def model_path(ctx: StageContext, model: str) -> str:
    """The local HF folder of a study model (fetched or converted once, then cached)."""
    from lm_eval_acbench.errors import UserError
    from lm_eval_acbench.model_store import DEFAULT_MODEL, FetchError, fetch

    spec = ctx.study.model(model)
    try:
        return str(fetch(DEFAULT_MODEL if spec.path == "default" else spec.path))
    except FetchError as exc:
        raise UserError(str(exc)) from exc


def variant_path(ctx: StageContext, model: str, variant: str) -> str:
    if variant == BASE:
        return model_path(ctx, model)
    return str(ctx.layout.checkpoint(model, variant))


def lm_eval_model(ctx: StageContext, cell: Cell) -> tuple[str, dict[str, Any]]:
    """lm-eval's model name and model_args for an evaluation cell."""
    study = ctx.study
    backend = study.backend
    spec = study.model(cell.model)
    if backend.type in ENDPOINT_BACKENDS:
        args: dict[str, Any] = {"model": spec.path}
        args.update(backend.model_args)
        args.update(spec.model_args)
        return backend.type, args
    args = {"pretrained": variant_path(ctx, cell.model, cell.variant)}
    args.update(backend.model_args)
    args.update(spec.model_args)
    name = backend.type
    if backend.type == "hf" and study.logits.enabled:
        name = "acbench-hf"
        args.update(study.logits.model_args)
        args["logits_dir"] = str(ctx.layout.logits_dir(cell.model, cell.variant, cell.task))
        reference = reference_log(ctx, cell)
        if reference is not None:
            args["logits_reference"] = str(reference)
    return name, args


def reference_log(ctx: StageContext, cell: Cell) -> Path | None:
    """The finished base logit log a recipe's eval cell logs against (``Cell.reference``), or
    None when the cell has none or the base cell did not finish (its log is then incomplete)."""
    from lm_eval_acbench.analysis.logio import META

    if not cell.reference:
        return None
    folder = ctx.layout.logits_dir(cell.model, BASE, cell.task)
    if ctx.layout.done_marker(cell.reference).is_file() and (folder / META).is_file():
        return folder
    return None


def task_metadata(study: Study) -> dict[str, Any]:
    meta: dict[str, Any] = {"data_source": study.data.source}
    if study.data.dir is not None:
        meta["data_dir"] = str(study.data.dir)
    meta.update(study.metadata)
    return meta


def _scalar_metrics(results: dict) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for task, metrics in (results.get("results") or {}).items():
        values = {k: float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and "_stderr" not in k}
        if values:
            out[task] = values
    return out


# ---- stages ----------------------------------------------------------------------------------

def compress(ctx: StageContext, cell: Cell) -> dict:
    """Compress one model with one recipe into ``checkpoints/<model>/<recipe>``."""
    from lm_eval_acbench.compress import compress_model, load_recipe

    study = ctx.study
    spec = study.recipe(cell.variant)
    recipe = load_recipe(spec.recipe)
    out = ctx.layout.checkpoint(cell.model, cell.variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    # compress_model returns a complete checkpoint of the same request as is, replaces others.
    path = compress_model(
        model_path(ctx, cell.model), recipe, out,
        calibration=spec.calibration or study.compression.calibration,
        num_samples=spec.num_samples or study.compression.num_samples,
        seq_len=spec.seq_len or study.compression.seq_len,
        seed=study.compression.seed,
        overwrite=True,
    )
    return {"checkpoint": str(path)}


def evaluate(ctx: StageContext, cell: Cell) -> dict:
    """One lm-eval run (lm_eval.simple_evaluate + EvaluationTracker) of one variant on one task.

    The cell's folder ``evals/<model>/<variant>/<task>/`` holds lm-eval's usual
    ``results_<date>.json`` and ``samples_<task>_<date>.jsonl`` (lm-eval's layout for an
    ``output_path`` ending in ``.json``), so ``evals/<model>/<variant>`` is an output folder
    with results one level down, as the report reads it.
    """
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    study = ctx.study
    final = ctx.layout.eval_dir(cell.model, cell.variant, cell.task)
    staging = _staging(ctx, cell)
    name, model_args = lm_eval_model(ctx, cell)
    if name == "acbench-hf":  # a fresh log for this cell: a rerun must not append twice
        logits = ctx.layout.logits_dir(cell.model, cell.variant, cell.task)
        owned_dirs.remove_owned_dir(logits, root=ctx.layout.root)
        owned_dirs.make_owned_dir(logits, root=ctx.layout.root)
    metadata = task_metadata(study)
    manager = TaskManager(
        include_path=[str(p) for p in study.include_path] or None,
        include_defaults=ctx.builtin_tasks,
        metadata={**model_args, **metadata},
    )
    tracker = EvaluationTracker(output_path=str(staging / "results.json"))
    extra = {}
    if study.backend.type == "hf" and study.backend.device:
        extra["device"] = study.backend.device
    seed = study.seed
    results = simple_evaluate(
        model=name,
        model_args=model_args,
        tasks=[cell.task],
        num_fewshot=study.num_fewshot,
        batch_size=study.backend.batch_size,
        limit=study.limit,
        log_samples=True,
        evaluation_tracker=tracker,
        system_instruction=study.system_instruction,
        apply_chat_template=study.apply_chat_template,
        gen_kwargs=study.generation.gen_kwargs(),
        task_manager=manager,
        random_seed=seed,
        numpy_random_seed=1234 + seed,
        torch_random_seed=1234 + seed,
        fewshot_random_seed=1234 + seed,
        metadata=metadata,
        **extra,
    )
    if results is None:  # not rank 0 of a distributed run
        raise RuntimeError("lm-eval returned no results (not the main process?)")
    samples = results.pop("samples", {})
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results.get("configs", {}):
        if task_name in samples:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    written = sorted(staging.glob("results_*.json"))
    if not written:
        raise RuntimeError(f"lm-eval wrote no results file under {staging}")
    _publish(ctx, staging, final)
    out = {
        "results_file": str(written[-1].relative_to(staging)),
        "metrics": _scalar_metrics(results),
        "model": name,
    }
    if cell.reference:
        out["logits_reference"] = model_args.get("logits_reference")
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def merge_logs(ctx: StageContext, model: str) -> tuple[Path, dict[str, Path], dict]:
    """One logit log per variant, from the per-task logs of the finished evaluation cells.

    Every evaluation cell logs into its own folder (so a rerun of one cell replaces only its
    own records). The analysis wants one log per model variant, so each variant's task logs
    (of the tasks the base logged too) are joined into ``logits-merged/<model>/<variant>``,
    every record kept: the analysis itself leaves out the keys whose prompts differ (a recipe's
    episode that took another action sees other prompts from then on) and counts them as such.
    Dropping them here would make them look like steps the recipe never played. Returns
    ``(base, {variant: folder}, stats)``; ``stats[variant]`` counts the records whose key the
    base has with the same prompt, with another prompt, and keys the base does not have.
    """
    from lm_eval_acbench.analysis import logio

    layout = ctx.layout
    root = layout.root / "logits-merged" / model

    def finished_logs(variant: str) -> dict[str, Path]:
        logs = {}
        for task in ctx.tasks:
            folder = layout.logits_dir(model, variant, task)
            cell_id = f"eval/{model}/{variant}/{folder.name}"
            if layout.done_marker(cell_id).is_file() and (folder / logio.META).is_file():
                logs[folder.name] = folder
        return logs

    owned_dirs.remove_owned_dir(root, root=layout.root)
    owned_dirs.make_owned_dir(root, root=layout.root)
    base_logs = finished_logs(BASE)
    if not base_logs:
        raise RuntimeError(f"no finished logit logs of {model}/{BASE} to compare against")
    base_dir = root / BASE
    base_dir.mkdir(parents=True)
    base_hash: dict[str, str] = {}
    for task, folder in base_logs.items():
        if not (base_dir / logio.META).exists():
            shutil.copy2(folder / logio.META, base_dir / logio.META)
        for shard in logio.shards(folder):
            _link_or_copy(shard, base_dir / f"part-{task}-{shard.name}")
        index = logio.read_index(folder)
        base_hash.update(zip(index["key"], index["prompt_hash"]))

    compressed: dict[str, Path] = {}
    stats: dict[str, dict] = {BASE: {"tasks": sorted(base_logs), "records": len(base_hash)}}
    for variant in ctx.study.variants:
        if variant == BASE:
            continue
        logs = {t: f for t, f in finished_logs(variant).items() if t in base_logs}
        counts = {"records": 0, "same_prompt_as_base": 0, "other_prompt": 0, "not_in_base": 0}
        out = root / variant
        for task, folder in logs.items():
            index = logio.read_index(folder)
            if index.empty:
                continue
            out.mkdir(parents=True, exist_ok=True)
            if not (out / logio.META).exists():
                shutil.copy2(folder / logio.META, out / logio.META)
            for shard in logio.shards(folder):
                _link_or_copy(shard, out / f"part-{task}-{shard.name}")
            for key, h in zip(index["key"], index["prompt_hash"]):
                theirs = base_hash.get(key)
                which = "not_in_base" if theirs is None else "same_prompt_as_base" if theirs == h else "other_prompt"
                counts[which] += 1
            counts["records"] += len(index)
        stats[variant] = {"tasks": sorted(logs), **counts}
        if counts["same_prompt_as_base"]:
            compressed[variant] = out
    return base_dir, compressed, stats


def analyze(ctx: StageContext, cell: Cell) -> dict:
    """Logit analysis (ERank, top-k rank correlation, energy) of each recipe against the base."""
    from lm_eval_acbench.analysis import analyze_runs

    base, compressed, stats = merge_logs(ctx, cell.model)
    if not compressed:
        raise RuntimeError(f"no compressed logit logs of {cell.model} line up with the base log")
    final = ctx.layout.analysis_dir(cell.model)
    staging = _staging(ctx, cell)
    settings = {"allow_partial": True, **ctx.study.analysis.settings}
    analyze_runs(base, compressed, staging, **settings)
    (staging / "acbench_logs.json").write_text(json.dumps(stats, indent=2))
    _publish(ctx, staging, final)
    return {"analysis_dir": str(final), "compared": sorted(compressed), "logs": stats}


def report(ctx: StageContext, cell: Cell) -> dict:
    """The report over every variant of one model that has evaluation results."""
    from lm_eval_acbench.analysis.report import write_report

    layout = ctx.layout
    runs = {}
    for variant in ctx.study.variants:
        run = layout.run_dir(cell.model, variant)
        if run.is_dir() and any(p.is_dir() for p in run.iterdir()):
            runs[variant] = run
    if not runs:
        raise RuntimeError(f"no evaluation results for {cell.model} to report on")
    analysis_dir = layout.analysis_dir(cell.model)
    final = layout.report_dir(cell.model)
    staging = _staging(ctx, cell)
    path = write_report(
        runs, staging,
        base=BASE if BASE in runs else None,
        analysis_dir=analysis_dir if analysis_dir.is_dir() else None,
    )
    name = Path(path).relative_to(staging)
    _publish(ctx, staging, final)
    (final / "acbench_runs.json").write_text(json.dumps({k: str(v) for k, v in runs.items()}, indent=2))
    return {"report": str(final / name)}


STAGES: dict[str, Callable[[StageContext, Cell], dict]] = {
    "compress": compress,
    "evaluate": evaluate,
    "analyze": analyze,
    "report": report,
}
