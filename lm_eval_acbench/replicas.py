"""Data-parallel model replicas that start once and answer every later call.

lm-eval's ``vllm`` with ``data_parallel_size=N`` answers a generate call by starting N Ray tasks,
each of which loads the model, generates its share and exits (``vllm_causallms.py``,
``_model_generate``). That is one model load per replica per call; an episode makes one call per
step, so it would load the model N times at every step. A :class:`ReplicaPool` starts N
long-lived workers once and deals each call's prompts out to them.

The pool itself knows nothing of Ray or vLLM: it is given how to start a worker, how to hand it a
share of the prompts, how to wait for the answers and how to stop it, so its sharding and
ordering are plain Python (``tests/test_replicas.py``). :func:`ray_pool` binds it to Ray actors
and :func:`vllm_engine` is what each actor builds: ``vllm.LLM`` answering token-id prompts.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

log = logging.getLogger("lm_eval.acbench_replicas")

# Set by vLLM's own data-parallel set-up on the driver; Ray copies the driver's environment into
# its workers, and a replica that reads them thinks it is one rank of a data-parallel engine.
VLLM_DP_ENV = ("VLLM_DP_RANK", "VLLM_DP_RANK_LOCAL", "VLLM_DP_SIZE", "VLLM_DP_MASTER_IP",
               "VLLM_DP_MASTER_PORT")


class ReplicaError(RuntimeError):
    """A replica failed to start or to answer; the message names which one and why."""


def interleave(workers: int, count: int) -> list[list[int]]:
    """Positions ``0..count-1`` dealt out in turn: position i goes to worker ``i % workers``.

    lm-eval splits the same way (``more_itertools.distribute``): its requests arrive sorted by
    length, and dealing them in turn gives every worker a similar mix of long and short ones."""
    if workers < 1:
        raise ValueError(f"a pool needs at least one worker, not {workers}")
    return [list(range(w, count, workers)) for w in range(workers)]


def merge(shards: Sequence[Sequence[int]], answers: Sequence[Sequence[Any]], count: int) -> list:
    """The answers of every shard put back at their prompts' positions (inverse of :func:`interleave`).

    Raises :class:`ReplicaError` when a worker answered another number of prompts than it got,
    or a position is left without an answer."""
    out: list = [None] * count
    filled = [False] * count
    for worker, (shard, answer) in enumerate(zip(shards, answers, strict=True)):
        answer = list(answer)
        if len(answer) != len(shard):
            raise ReplicaError(f"replica {worker} answered {len(answer)} of its {len(shard)} prompts")
        for position, value in zip(shard, answer):
            out[position] = value
            filled[position] = True
    if not all(filled):
        raise ReplicaError(f"{filled.count(False)} of {count} prompts got no answer")
    return out


class ReplicaPool:
    """``size`` workers started once; :meth:`generate` deals prompts out to them and merges.

    ``start(i)`` returns worker i; ``submit(worker, prompts, params, **kwargs)`` hands it a share
    and returns a handle; ``collect(handles)`` waits for all handles and returns their answers in
    order; ``stop(worker)`` ends one, and ``on_close()`` runs once after all are stopped. A worker
    whose share is empty is not called. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, size: int, *, start: Callable[[int], Any], submit: Callable[..., Any],
                 collect: Callable[[list], list], stop: Callable[[Any], None] = lambda worker: None,
                 on_close: Callable[[], None] | None = None, name: str = "replica") -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least one worker, not {size}")
        self.name = name
        self._submit, self._collect, self._stop, self._on_close = submit, collect, stop, on_close
        self.workers: list = []
        self.calls = 0  # generate calls answered
        try:
            for i in range(size):
                self.workers.append(start(i))
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return len(self.workers)

    def generate(self, prompts: Sequence[Any], params: Sequence[Any], **kwargs) -> list:
        """One answer per prompt, in the prompts' order; ``params[i]`` belongs to ``prompts[i]``."""
        prompts, params = list(prompts), list(params)
        if len(prompts) != len(params):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} parameter sets")
        if not self.workers:
            raise ReplicaError(f"the {self.name} pool is closed")
        busy = [(w, shard) for w, shard in enumerate(interleave(self.size, len(prompts))) if shard]
        handles = [self._submit(self.workers[w], [prompts[i] for i in shard], [params[i] for i in shard],
                                **kwargs) for w, shard in busy]
        answers = self._collect(handles)
        self.calls += 1
        return merge([shard for _, shard in busy], answers, len(prompts))

    def close(self) -> None:
        workers, self.workers = self.workers, []
        for worker in workers:
            try:
                self._stop(worker)
            except Exception as exc:  # noqa: BLE001 - stopping the others matters more
                log.warning("stopping a %s failed: %s", self.name, exc)
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __enter__(self) -> "ReplicaPool":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


class _Replica:
    """What each Ray actor holds: an engine built once in its own process."""

    def __init__(self, make_engine: Callable[[dict], Callable], engine_args: dict) -> None:
        for key in VLLM_DP_ENV:
            os.environ.pop(key, None)
        self.engine = make_engine(dict(engine_args))
        self.calls = 0

    def ready(self) -> dict:
        return {"pid": os.getpid(), "calls": self.calls}

    def generate(self, prompts: list, params: list, kwargs: dict) -> list:
        self.calls += 1
        return list(self.engine(prompts, params, **kwargs))


def ray_pool(size: int, make_engine: Callable[[dict], Callable], engine_args: dict, *,
             num_gpus: float = 1, num_cpus: float = 1, name: str = "replica") -> ReplicaPool:
    """A :class:`ReplicaPool` of ``size`` Ray actors, each holding ``make_engine(engine_args)``.

    ``make_engine`` runs inside each actor (so a GPU engine is built where Ray put the actor's
    GPUs) and returns a callable ``engine(prompts, params, **kwargs) -> answers``. Starting waits
    until every actor has built its engine, so a replica that cannot load fails here, named.
    Ray is started if it is not running, and shut down again when the pool closes."""
    import ray

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init()
    actor = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_restarts=0)(_Replica)

    def start(i: int):
        return actor.remote(make_engine, engine_args)

    def stop(handle) -> None:
        ray.kill(handle)

    def submit(handle, prompts, params, **kwargs):
        return handle.generate.remote(prompts, params, kwargs)

    def collect(refs: list) -> list:
        try:
            return ray.get(refs)
        except Exception as exc:  # Ray wraps the replica's own error
            raise ReplicaError(f"a {name} failed while generating: {_first_line(exc)}") from exc

    def shutdown() -> None:
        if started_ray and ray.is_initialized():
            ray.shutdown()

    try:
        pool = ReplicaPool(size, start=start, submit=submit, collect=collect, stop=stop, on_close=shutdown,
                           name=name)
    except BaseException:
        shutdown()
        raise
    try:
        for i, handle in enumerate(pool.workers):
            try:
                ray.get(handle.ready.remote())
            except Exception as exc:
                raise ReplicaError(f"{name} {i} of {size} failed to start: {_first_line(exc)}") from exc
    except BaseException:
        pool.close()
        raise
    return pool


def replica_info(pool: ReplicaPool) -> list[dict]:
    """Per actor of a :func:`ray_pool`: its process id and how many calls it answered."""
    import ray

    return ray.get([handle.ready.remote() for handle in pool.workers])


def _first_line(exc: BaseException) -> str:
    """The replica's own error, not Ray's wrapping of it: the last non-empty line that names one."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    text = str(cause or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:500]


def vllm_engine(engine_args: dict) -> Callable:
    """Inside a replica: ``vllm.LLM(**engine_args)`` answering token-id prompts.

    The replica is one engine of tensor-parallel size ``tensor_parallel_size`` on the GPUs Ray
    gave it; it must not start Ray itself (nested placement groups deadlock), so any
    ``distributed_executor_backend`` is left to vLLM's own choice."""
    from vllm import LLM, TokensPrompt

    args = {k: v for k, v in engine_args.items() if k != "distributed_executor_backend"}
    llm = LLM(**args)

    def engine(prompts: list, params: list, lora_request=None) -> list:
        return llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], sampling_params=params,
                            use_tqdm=False, lora_request=lora_request)

    return engine
