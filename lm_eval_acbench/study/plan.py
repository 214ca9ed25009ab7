"""The cells of a study, their dependencies, and where each writes.

Cells (ids are also their folders under ``<out>/cells/``):

* ``compress/<model>/<recipe>``         one compressed checkpoint
* ``eval/<model>/<variant>/<task>``     one lm-eval run (variant ``base`` or a recipe)
* ``analyze/<model>``                   logit analysis of every recipe against the base
* ``report/<model>``                    the report over the model's variants

Order: a compress cell before its eval cells; every eval cell of a model before its analysis
and report cells; the analysis cell before the report cell. Analysis and report cells are
*soft* dependents: they also run when some of their inputs failed (on what exists) but then
count as ``partial`` and run again next time.

When the study analyses logits, a recipe's eval cell also comes after the base's eval cell of
the same task (its ``reference``): it logs its logits at the base's top-K token ids
(``logits_reference``), so top-k rank correlation is exact at every position. That input is
soft too: without a finished base log the cell logs on its own, counts as ``partial`` and runs
again next time; a rerun of the base cell reruns it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.study.config import BASE, CAPABILITIES, Study, safe_label

log = logging.getLogger(__name__)

KINDS = ("compress", "evaluate", "analyze", "report")


@dataclass(frozen=True)
class Cell:
    id: str
    kind: str  # one of KINDS
    model: str
    variant: str | None = None
    task: str | None = None
    deps: tuple[str, ...] = ()
    num_gpus: float = 0.0
    soft_deps: bool = False
    # the base eval cell (also in deps) whose logit log this eval cell logs against; soft
    reference: str | None = None


@dataclass(frozen=True)
class Layout:
    """Every path a study writes, under one root."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def done_marker(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / "done.json"

    def error_file(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / "error.json"

    def staging_dir(self, cell_id: str) -> Path:
        return self.root / ".staging" / cell_id

    def checkpoint(self, model: str, recipe: str) -> Path:
        return self.root / "checkpoints" / model / recipe

    def run_dir(self, model: str, variant: str) -> Path:
        """The lm-eval output folder of one model variant (one sub-folder per task)."""
        return self.root / "evals" / model / variant

    def eval_dir(self, model: str, variant: str, task: str) -> Path:
        return self.run_dir(model, variant) / safe_label(task)

    def logits_dir(self, model: str, variant: str, task: str) -> Path:
        return self.root / "logits" / model / variant / safe_label(task)

    def analysis_dir(self, model: str) -> Path:
        return self.root / "analysis" / model

    def report_dir(self, model: str) -> Path:
        return self.root / "reports" / model


@dataclass
class Plan:
    study: Study
    tasks: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (task, why)
    builtin_tasks: bool = False  # whether lm-eval's own task folder is needed
    cells: list[Cell] = field(default_factory=list)

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.study.out))

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}

    def counts(self) -> dict[str, int]:
        return {kind: sum(c.kind == kind for c in self.cells) for kind in KINDS}

    def describe(self, done: set[str] | None = None) -> str:
        """The plan as text: settings, tasks (and skipped ones), cell counts, the cells."""
        s = self.study
        done = done or set()
        counts = self.counts()
        lines = [
            f"study {s.name!r} -> {s.out}",
            f"  models:   {', '.join(m.label for m in s.models)}",
            f"  variants: {', '.join(s.variants)}",
            f"  tasks:    {', '.join(self.tasks) or '(none)'}",
        ]
        for task, why in self.skipped:
            lines.append(f"  skipped:  {task} ({why})")
        lines += [
            f"  backend:  {s.backend.type}, limit {s.limit}, executor {s.executor.type}"
            + (", logits logged" if s.logits.enabled else ""),
            "cells: " + ", ".join(f"{counts[k]} {k}" for k in KINDS) + f" ({len(self.cells)} in all"
            + (f", {len(done & set(self.by_id()))} already done" if done else "") + ")",
        ]
        for cell in self.cells:
            mark = "done" if cell.id in done else "todo"
            gpus = f"  [gpus {cell.num_gpus:g}]" if cell.num_gpus else ""
            lines.append(f"  {mark}  {cell.id}{gpus}")
        return "\n".join(lines)


# ---- tasks -----------------------------------------------------------------------------------

def _known_tasks(study: Study, include_defaults: bool) -> set[str]:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(p) for p in study.include_path] or None,
                          include_defaults=include_defaults)
    return set(manager.all_tasks)


def resolve_tasks(study: Study) -> tuple[list[str], list[tuple[str, str]], bool]:
    """(tasks to run, [(task, why skipped)], whether lm-eval's built-in tasks are needed).

    Capability tasks that are not installed are skipped with a reason; an explicitly named task
    that no task folder knows is an error. Only acbench's and ``include_path``'s folders are
    indexed unless a named task needs lm-eval's own (indexing those takes many seconds).
    """
    wanted: list[str] = []
    optional: set[str] = set()
    for cap in study.capabilities:
        for name in CAPABILITIES[cap]:
            if name not in wanted:
                wanted.append(name)
                optional.add(name)
    for name in study.tasks:
        if name not in wanted:
            wanted.append(name)
        optional.discard(name)

    known = _known_tasks(study, include_defaults=False)
    builtin = False
    missing = [t for t in wanted if t not in known and t not in optional]
    if missing:
        known |= _known_tasks(study, include_defaults=True)
        builtin = any(t in known for t in missing)
        missing = [t for t in missing if t not in known]
    if missing:
        import difflib

        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hints.append(f"{name}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise UserError("unknown lm-eval task(s): " + "; ".join(hints))
    tasks = [t for t in wanted if t in known]
    skipped = [(t, "not installed in task_yamls/ yet") for t in wanted if t not in known]
    return tasks, skipped, builtin


# ---- cells -----------------------------------------------------------------------------------

def build_cells(study: Study, tasks: list[str]) -> list[Cell]:
    cells: list[Cell] = []
    eval_gpus = study.backend.gpus_per_eval()
    compress_gpus = study.compression.num_gpus
    if compress_gpus is None:
        compress_gpus = 1.0 if eval_gpus else 0.0
    for model in study.models:
        m = model.label
        for recipe in study.recipes:
            cells.append(Cell(f"compress/{m}/{recipe.label}", "compress", m, recipe.label,
                              num_gpus=compress_gpus))
        eval_ids: list[str] = []
        for variant in study.variants:
            deps = () if variant == BASE else (f"compress/{m}/{variant}",)
            for task in tasks:
                cid = f"eval/{m}/{variant}/{safe_label(task)}"
                reference = None
                if study.runs_analysis and variant != BASE:
                    reference = f"eval/{m}/{BASE}/{safe_label(task)}"
                cells.append(Cell(cid, "evaluate", m, variant, task,
                                  deps + ((reference,) if reference else ()),
                                  num_gpus=eval_gpus, reference=reference))
                eval_ids.append(cid)
        report_deps = list(eval_ids)
        if study.runs_analysis and tasks:
            cells.append(Cell(f"analyze/{m}", "analyze", m, deps=tuple(eval_ids), soft_deps=True))
            report_deps.append(f"analyze/{m}")
        if study.report.enabled and tasks:
            cells.append(Cell(f"report/{m}", "report", m, deps=tuple(report_deps), soft_deps=True))
    return cells


def cell_fingerprint(study: Study, cell: Cell) -> str:
    """sha256 of the settings a cell's output depends on (not the output folder or executor).

    A finished cell whose settings changed since is run again (and so are the cells after it).
    """
    import hashlib
    import json

    parts: dict = {"kind": cell.kind, "model": study.model(cell.model).model_dump(mode="json")}
    if cell.kind == "compress":
        parts["recipe"] = study.recipe(cell.variant).model_dump(mode="json")
        parts["compression"] = study.compression.model_dump(mode="json", exclude={"num_gpus"})
    elif cell.kind == "evaluate":
        parts["task"] = cell.task
        parts["variant"] = cell.variant
        parts["eval"] = study.model_dump(mode="json", include={
            "generation", "limit", "num_fewshot", "apply_chat_template", "system_instruction",
            "seed", "metadata", "data", "logits"})
        parts["backend"] = study.backend.model_dump(mode="json", exclude={"num_gpus"})
        if cell.reference:
            parts["reference"] = cell.reference
    elif cell.kind == "analyze":
        parts["analysis"] = study.analysis.model_dump(mode="json")
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_plan(study: Study) -> Plan:
    tasks, skipped, builtin = resolve_tasks(study)
    if not tasks:
        raise UserError(
            "none of the study's tasks is installed: "
            + ", ".join(t for t, _ in skipped) + " (see `lm_eval ls tasks` for what exists)")
    return Plan(study, tasks, skipped, builtin, build_cells(study, tasks))
