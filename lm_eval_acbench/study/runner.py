"""Run a study: each cell once, resumably, with one overall progress bar and a timing table.

Resume rules:

* a cell is finished when ``cells/<id>/done.json`` exists; it is written (atomically) only
  after the cell's outputs are in place, and a finished cell is never run again;
* a cell that raises gets ``cells/<id>/error.json`` (message and traceback) and its status in
  ``state.json``; the other cells go on, the cells that need it are ``blocked``; the next run
  tries it again;
* a killed run leaves at worst a staging folder (``.staging/<id>``), which the cell's next
  attempt clears.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from lm_eval_acbench.study.config import Study, study_to_yaml
from lm_eval_acbench.study.plan import KINDS, Cell, Layout, Plan, cell_fingerprint, make_plan
from lm_eval_acbench.study.stages import StageContext

log = logging.getLogger(__name__)

OK = ("done", "cached")
Stages = Mapping[str, Callable[[StageContext, Cell], dict]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_marker(layout: Layout, cell_id: str) -> dict | None:
    try:
        return json.loads(layout.done_marker(cell_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finished_cells(ctx: StageContext, cells) -> set[str]:
    """Ids of the cells a run would not recompute (done markers that are still valid)."""
    status: dict[str, str] = {}
    for cell in cells:
        cached = cached_result(ctx, cell, {d: status.get(d, "blocked") for d in cell.deps})
        status[cell.id] = "cached" if cached else "todo"
    return {cid for cid, st in status.items() if st == "cached"}


def default_stages() -> Stages:
    from lm_eval_acbench.study.stages import STAGES

    return STAGES


def cached_result(ctx: StageContext, cell: Cell, dep_status: Mapping[str, str]) -> dict | None:
    """The ``cached`` result of a finished cell, or None when it must run.

    A cell counts as finished when its done marker exists, was written with the same settings
    (fingerprint), and none of its inputs was recomputed in this run.
    """
    marker = read_marker(ctx.layout, cell.id)
    if marker is None or any(status != "cached" for status in dep_status.values()):
        return None
    if marker.get("fingerprint") != cell_fingerprint(ctx.study, cell):
        return None
    return {"id": cell.id, "kind": cell.kind, "status": "cached",
            "duration_s": marker.get("duration_s", 0.0), "result": marker.get("result", {})}


def execute_cell(ctx: StageContext, cell: Cell, dep_status: Mapping[str, str],
                 stages: Stages | None = None) -> dict:
    """Run one cell unless it is finished or blocked; never raises for a failing stage.

    ``dep_status`` maps each input cell to its status in this run. Returns ``{"id", "kind",
    "status", "duration_s", ...}`` with status ``cached`` (finished before), ``done``,
    ``partial`` (a soft cell that ran although some inputs failed), ``failed`` (with
    ``error``) or ``blocked`` (an input it needs did not finish).
    """
    layout = ctx.layout
    cached = cached_result(ctx, cell, dep_status)
    if cached is not None:
        return cached
    base = {"id": cell.id, "kind": cell.kind}
    missing = [d for d, status in dep_status.items() if status not in OK]
    blocking = [] if cell.soft_deps else [d for d in missing if d != cell.reference]
    if blocking:
        return {**base, "status": "blocked", "duration_s": 0.0,
                "error": f"needs {blocking[0]} ({dep_status[blocking[0]]})"}
    cell_dir = layout.cell_dir(cell.id)
    cell_dir.mkdir(parents=True, exist_ok=True)
    layout.done_marker(cell.id).unlink(missing_ok=True)  # stale: settings or inputs changed
    layout.error_file(cell.id).unlink(missing_ok=True)
    stage = (stages or default_stages())[cell.kind]
    started = time.time()
    cpu_started = time.process_time()
    try:
        result = stage(ctx, cell) or {}
    except Exception as exc:  # recorded; the other cells go on
        duration = time.time() - started
        error = f"{type(exc).__name__}: {exc}".strip()
        write_json_atomic(layout.error_file(cell.id), {
            "cell": cell.id, "error": error, "traceback": traceback.format_exc(),
            "at": _now(), "duration_s": duration,
        })
        log.debug("cell %s failed", cell.id, exc_info=True)
        return {**base, "status": "failed", "duration_s": duration, "error": error,
                "started": started, "cpu_s": time.process_time() - cpu_started}
    duration = time.time() - started
    cpu = time.process_time() - cpu_started  # CPU seconds of this process, all threads
    if missing:
        return {**base, "status": "partial", "duration_s": duration, "result": result, "cpu_s": cpu,
                "started": started, "error": f"ran without {len(missing)} failed input(s), e.g. {missing[0]}"}
    write_json_atomic(layout.done_marker(cell.id), {
        "cell": cell.id, "kind": cell.kind, "finished": _now(), "duration_s": duration, "cpu_s": cpu,
        "fingerprint": cell_fingerprint(ctx.study, cell), "result": result,
    })
    return {**base, "status": "done", "duration_s": duration, "result": result, "started": started,
            "cpu_s": cpu}


# ---- the driver ------------------------------------------------------------------------------

@dataclass
class RunSummary:
    plan: Plan
    results: dict[str, dict] = field(default_factory=dict)
    timings: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    dry_run: bool = False

    def with_status(self, *statuses: str) -> list[str]:
        return [cid for cid, r in self.results.items() if r["status"] in statuses]

    @property
    def ok(self) -> bool:
        return not self.with_status("failed", "blocked", "partial")

    @property
    def reports(self) -> list[Path]:
        out = []
        for r in self.results.values():
            path = (r.get("result") or {}).get("report")
            if r["kind"] == "report" and path:
                out.append(Path(path))
        return out


def stage_timings(plan: Plan, results: Mapping[str, dict], plan_s: float, wall_s: float) -> list[dict]:
    """One row per stage: cells, how many ran now / were cached / failed, busy and wall seconds."""
    rows = [{"stage": "plan", "cells": 0, "ran": 0, "cached": 0, "failed": 0,
             "busy_s": plan_s, "cpu_s": None, "wall_s": plan_s}]
    for kind in KINDS:
        mine = [r for r in results.values() if r["kind"] == kind]
        ran = [r for r in mine if r["status"] in ("done", "partial", "failed")]
        starts = [r["started"] for r in ran if "started" in r]
        ends = [r["started"] + r["duration_s"] for r in ran if "started" in r]
        rows.append({
            "stage": kind,
            "cells": sum(c.kind == kind for c in plan.cells),
            "ran": len(ran),
            "cached": sum(r["status"] == "cached" for r in mine),
            "failed": sum(r["status"] in ("failed", "blocked") for r in mine),
            "busy_s": sum(r["duration_s"] for r in ran),
            "cpu_s": sum(r.get("cpu_s", 0.0) for r in ran),
            "wall_s": (max(ends) - min(starts)) if starts else 0.0,
        })
    rows.append({"stage": "total", "cells": len(plan.cells),
                 "ran": sum(r["ran"] for r in rows), "cached": sum(r["cached"] for r in rows),
                 "failed": sum(r["failed"] for r in rows),
                 "busy_s": sum(r["busy_s"] for r in rows),
                 "cpu_s": sum(r["cpu_s"] or 0.0 for r in rows), "wall_s": wall_s})
    return rows


def timing_table(rows: list[dict]) -> str:
    """Markdown table; busy = seconds inside the stage's cells, CPU = CPU seconds they used
    (all threads; cells run in-process only), wall = first start to last end of the stage."""
    head = "| stage | cells | ran now | cached | failed | busy (s) | CPU (s) | wall (s) |"
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        cpu = "" if r.get("cpu_s") is None else f"{r['cpu_s']:.1f}"
        lines.append(f"| {r['stage']} | {r['cells']} | {r['ran']} | {r['cached']} | {r['failed']} "
                     f"| {r['busy_s']:.1f} | {cpu} | {r['wall_s']:.1f} |")
    return "\n".join(lines)


def _echo(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def run_study(
    study: Study,
    *,
    dry_run: bool = False,
    progress: bool = True,
    stages: Stages | None = None,
    executor=None,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """Plan the study, run every unfinished cell, write state, timings and reports."""
    from tqdm import tqdm

    from lm_eval_acbench.study.executors import make_executor

    echo = echo or _echo
    started = time.time()
    plan = make_plan(study)
    plan_s = time.time() - started
    layout = plan.layout
    done = finished_cells(StageContext(study, layout, tuple(plan.tasks), plan.builtin_tasks), plan.cells)
    if dry_run:
        echo(plan.describe(done))
        return RunSummary(plan, dry_run=True)

    _claim_out(layout.root)
    (layout.root / "study.yaml").write_text(study_to_yaml(study), encoding="utf-8")
    write_json_atomic(layout.root / "plan.json", {
        "tasks": plan.tasks, "skipped": plan.skipped, "builtin_tasks": plan.builtin_tasks,
        "cells": [{"id": c.id, "kind": c.kind, "deps": list(c.deps), "num_gpus": c.num_gpus}
                  for c in plan.cells],
    })
    counts = plan.counts()
    echo(f"acbench: study {study.name!r} -> {layout.root}: "
         + ", ".join(f"{counts[k]} {k}" for k in KINDS) + f" cells ({len(done)} already done)")
    for task, why in plan.skipped:
        echo(f"acbench: skipping task {task}: {why}")

    state = _load_state(layout)
    state["study"] = study.name
    summary = RunSummary(plan)
    ctx = StageContext(study, layout, tuple(plan.tasks), plan.builtin_tasks)
    bar = tqdm(total=len(plan.cells), desc="acbench cells", unit="cell", disable=not progress,
               position=0, leave=True, dynamic_ncols=True)

    def on_result(cell: Cell, result: dict) -> None:
        summary.results[cell.id] = result
        entry = state["cells"].setdefault(cell.id, {})
        entry.update({"kind": cell.kind, "status": result["status"], "at": _now(),
                      "duration_s": round(result.get("duration_s", 0.0), 3)})
        if result["status"] in ("failed", "blocked", "partial"):
            entry["error"] = result.get("error")
        else:
            entry.pop("error", None)
        if result["status"] in ("done", "failed", "partial"):
            entry["attempts"] = entry.get("attempts", 0) + 1
        write_json_atomic(layout.state_file, state)
        bar.update(1)
        if result["status"] in ("failed", "blocked"):
            echo(f"acbench: {result['status']} {cell.id}: {result.get('error')}")

    executor = executor or make_executor(study.executor)
    try:
        executor.run(ctx, plan.cells, on_result, stages)
    except KeyboardInterrupt:
        state["interrupted"] = _now()
        write_json_atomic(layout.state_file, state)
        raise
    finally:
        bar.close()
    state.pop("interrupted", None)
    summary.wall_s = time.time() - started
    summary.timings = stage_timings(plan, summary.results, plan_s, summary.wall_s)
    state["last_run"] = {"finished": _now(), "wall_s": round(summary.wall_s, 3)}
    write_json_atomic(layout.state_file, state)
    _write_timings(layout, summary)
    return summary


def _claim_out(root: Path) -> None:
    """Make ``out`` ours (new, empty or marked): the study writes study.yaml, plan.json and
    state.json at its top and replaces folders below it, so it never takes a user's folder."""
    from lm_eval_acbench.errors import UserError
    from lm_eval_acbench.owned_dirs import MARKER, make_owned_dir

    root = Path(root)
    try:
        make_owned_dir(root, root=root.parent)
    except UserError as exc:
        hint = (f" (a study folder from an acbench without the marker: `touch {root / MARKER}` "
                "to let this study reuse it)") if root.is_dir() else ""
        raise UserError(f"study out: {exc}{hint}") from None


def _load_state(layout: Layout) -> dict:
    try:
        state = json.loads(layout.state_file.read_text(encoding="utf-8"))
        if isinstance(state, dict) and isinstance(state.get("cells"), dict):
            state["cells"] = {k: v for k, v in state["cells"].items() if isinstance(v, dict)}
            return state
    except (OSError, ValueError):
        pass
    return {"cells": {}}


def _write_timings(layout: Layout, summary: RunSummary) -> None:
    table = timing_table(summary.timings)
    text = f"# Stage timings (this run, {_now()})\n\n{table}\n"
    write_json_atomic(layout.root / "timings.json", summary.timings)
    (layout.root / "timings.md").write_text(text, encoding="utf-8")
    for report in summary.reports:
        if report.parent.is_dir():
            (report.parent / "timings.md").write_text(text, encoding="utf-8")
