"""Where cells run: one by one in this process, or as Ray tasks across a cluster.

Both executors take the cells in dependency order (the plan builds them so) and call
``on_result(cell, result)`` in the driver as each one ends. With Ray, each cell is a task that
asks for the GPUs its cell needs; a cell's inputs are passed as the object refs of the cells it
depends on, so Ray starts it only after they have finished (compress before its evaluations,
evaluations before analysis and report). The output folder must be on storage every node sees.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.study.config import Executor as ExecutorConfig
from lm_eval_acbench.study.plan import Cell
from lm_eval_acbench.study.runner import Stages, cached_result, execute_cell
from lm_eval_acbench.study.stages import StageContext

log = logging.getLogger(__name__)

OnResult = Callable[[Cell, dict], None]
# Environment settings that Ray workers must share with the driver (offline mode, caches, data).
_FORWARD_ENV_PREFIXES = ("HF_", "ACBENCH_", "TRANSFORMERS_", "TOKENIZERS_", "XDG_CACHE_HOME", "CUDA_")


class LocalExecutor:
    """Cells one after another in this process (lm-eval's own progress bars show as usual)."""

    def run(self, ctx: StageContext, cells: Sequence[Cell], on_result: OnResult,
            stages: Stages | None = None) -> None:
        status: dict[str, str] = {}
        for cell in cells:
            result = execute_cell(ctx, cell, {d: status.get(d, "blocked") for d in cell.deps}, stages)
            status[cell.id] = result["status"]
            on_result(cell, result)


def _ray_cell(ctx: StageContext, cell: Cell, dep_ids: list[str], stages, *dep_results) -> dict:
    """Body of one Ray task: the dependencies' results arrive resolved, in ``dep_ids`` order."""
    dep_status = {}
    for dep_id, dep in zip(dep_ids, dep_results):
        dep_status[dep_id] = dep["status"] if isinstance(dep, dict) else str(dep)
    return execute_cell(ctx, cell, dep_status, stages)


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV_PREFIXES)}


class RayExecutor:
    """One Ray task per cell; starts a local Ray instance unless ``address`` names a cluster."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    def _init(self):
        try:
            import ray
        except ImportError:
            raise UserError(
                "the ray executor needs Ray: pip install 'lm_eval_acbench[ray]'") from None
        if ray.is_initialized():
            return ray, False
        kwargs = {"runtime_env": {"env_vars": _forwarded_env()}, "log_to_driver": True}
        if self.config.address:
            kwargs["address"] = self.config.address
        else:
            kwargs["num_cpus"] = self.config.num_cpus or os.cpu_count() or 1
            kwargs["include_dashboard"] = False
        ray.init(**kwargs)
        return ray, True

    def run(self, ctx: StageContext, cells: Sequence[Cell], on_result: OnResult,
            stages: Stages | None = None) -> None:
        ray, started = self._init()
        try:
            self._run(ray, ctx, cells, on_result, stages)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, ctx, cells, on_result, stages) -> None:
        remote = ray.remote(max_retries=0)(_ray_cell)
        handles: dict[str, object] = {}  # cell id -> object ref, or a cached result
        pending: dict[object, Cell] = {}
        for cell in cells:
            known = {d: handles[d]["status"] if isinstance(handles[d], dict) else "pending"
                     for d in cell.deps}
            cached = cached_result(ctx, cell, known)
            if cached is not None:  # finished earlier: no task, downstream sees "cached"
                handles[cell.id] = cached
                on_result(cell, cached)
                continue
            deps = [handles[d] for d in cell.deps]
            ref = remote.options(
                num_cpus=self.config.cpus_per_cell, num_gpus=cell.num_gpus, name=cell.id,
            ).remote(ctx, cell, list(cell.deps), stages, *deps)
            handles[cell.id] = ref
            pending[ref] = cell
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the worker died, or an input's task did
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        result = {"id": cell.id, "kind": cell.kind, "status": "failed",
                                  "duration_s": 0.0, "error": f"ray: {type(exc).__name__}: {first}"}
                    on_result(cell, result)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def make_executor(config: ExecutorConfig):
    if config.type == "ray":
        return RayExecutor(config)
    return LocalExecutor()
