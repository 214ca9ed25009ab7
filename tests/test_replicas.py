"""Data-parallel replicas kept for a whole episode call (``replicas.py``, ``episodes._vllm_replicas_kept``).

vLLM cannot run on this CPU, so the pool's sharding and ordering are checked with plain Python
workers, its Ray binding with real Ray actors that hold a plain Python engine (slow), and the
episode loop's use of it with an object that has the three attributes the loop reads of lm-eval's
VLLM. What vLLM itself does inside a replica is the GPU check in the README.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings, strategies as st

from lm_eval_acbench import replicas
from lm_eval_acbench.replicas import ReplicaError, ReplicaPool, interleave, merge


# ---- sharding: lm-eval's own split ------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(), max_size=60))
def test_interleave_is_lm_evals_split_and_merge_undoes_it(workers, items):
    from lm_eval.models.utils import undistribute
    from more_itertools import distribute

    shards = interleave(workers, len(items))
    assert [[items[i] for i in s] for s in shards] == [list(c) for c in distribute(workers, items)]
    assert merge(shards, [[items[i] for i in s] for s in shards], len(items)) == items
    assert undistribute([[items[i] for i in s] for s in shards]) == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_merge_refuses_a_short_or_missing_answer():
    with pytest.raises(ReplicaError, match="replica 1 answered 0 of its 1 prompts"):
        merge([[0], [1]], [["a"], []], 2)
    with pytest.raises(ReplicaError, match="1 of 3 prompts got no answer"):
        merge([[0], [1]], [["a"], ["b"]], 3)
    with pytest.raises(ValueError):
        interleave(0, 3)


# ---- the pool, with plain Python workers ----------------------------------------------------------
class Engine:
    """A worker: answers each prompt with its own number, the prompt and its parameters."""

    built: list[int] = []

    def __init__(self, number: int, fail: bool = False) -> None:
        if fail:
            raise ValueError(f"engine {number} cannot load")
        self.number, self.seen = number, []
        Engine.built.append(number)

    def __call__(self, prompts, params, **kwargs):
        self.seen.append(list(prompts))
        return [f"{self.number}:{p}:{q}:{kwargs.get('lora_request')}" for p, q in zip(prompts, params)]


def thread_pool(size: int, fail_at: int | None = None, stopped: list | None = None) -> ReplicaPool:
    executor = ThreadPoolExecutor(max_workers=size)
    return ReplicaPool(
        size, start=lambda i: Engine(i, fail=i == fail_at),
        submit=lambda engine, prompts, params, **kw: executor.submit(engine, prompts, params, **kw),
        collect=lambda futures: [f.result() for f in futures],
        stop=lambda engine: (stopped if stopped is not None else []).append(engine.number),
        on_close=lambda: executor.shutdown(wait=True))


def test_pool_starts_each_worker_once_and_keeps_every_answer_in_place():
    Engine.built = []
    with thread_pool(3) as pool:
        for step, count in enumerate([7, 2, 5]):  # fewer prompts than workers leaves one idle
            prompts = [f"p{step}.{i}" for i in range(count)]
            out = pool.generate(prompts, list(range(count)), lora_request="L")
            assert [o.split(":", 1)[1] for o in out] == [f"{p}:{i}:L" for i, p in enumerate(prompts)]
            assert [int(o.split(":")[0]) for o in out] == [i % 3 for i in range(count)]
        engines = list(pool.workers)
        assert pool.calls == 3
    assert Engine.built == [0, 1, 2]  # three starts for three calls
    assert [len(e.seen) for e in engines] == [3, 3, 2]  # the idle worker was not called
    assert pool.workers == []
    with pytest.raises(ReplicaError, match="closed"):
        pool.generate(["x"], [0])


def test_pool_that_cannot_start_stops_the_workers_it_started():
    stopped: list = []
    with pytest.raises(ValueError, match="engine 2 cannot load"):
        thread_pool(3, fail_at=2, stopped=stopped)
    assert stopped == [0, 1]


def test_pool_refuses_mismatched_prompts_and_parameters():
    with thread_pool(2) as pool:
        with pytest.raises(ValueError, match="3 prompts but 2 parameter sets"):
            pool.generate(["a", "b", "c"], [0, 1])


# ---- the episode loop keeps one pool for all steps -------------------------------------------------
class DataParallelModel:
    """What ``_vllm_replicas_kept`` reads of lm-eval's VLLM (``data_parallel_size``, ``model_args``,
    ``tensor_parallel_size``, ``lora_request``, a class ``_model_generate``), with a
    ``generate_until`` that hands a batch to ``_model_generate`` as VLLM's does: token-id
    prompts, ``generate=True`` and one parameter set per prompt."""

    def __init__(self) -> None:
        self.data_parallel_size = 2
        self.tensor_parallel_size = 1
        self.model_args = {"model": "m", "tensor_parallel_size": 1}
        self.lora_request = None
        self.per_call = []

    def set_cache_hook(self, hook) -> None:  # what CachingLM calls on the model it wraps
        self.cache_hook = hook

    def _model_generate(self, requests, generate=False, sampling_params=None):
        self.per_call.append((len(requests), generate))  # lm-eval's path: new workers every call
        return ["check valid actions"] * len(requests)

    def generate_until(self, requests, disable_tqdm=False):
        prompts = [[len(r.args[0]) % 97, 7] for r in requests]
        return list(self._model_generate(prompts, generate=True,
                                         sampling_params=[dict(r.args[1]) for r in requests]))


def test_vllm_data_parallel_episodes_use_one_pool_for_every_step(monkeypatch, caplog):
    from lm_eval_acbench.episodes import _episode_aware
    from test_model_types import episode_requests

    started = []

    def fake_ray_pool(size, make_engine, engine_args, *, num_gpus, name, **kw):
        started.append((size, make_engine, engine_args, num_gpus))
        return thread_pool(size)

    monkeypatch.setattr(replicas, "ray_pool", fake_ray_pool)
    Engine.built = []
    lm = DataParallelModel()
    with caplog.at_level("INFO", logger="lm_eval.acbench_episodes"), \
            _episode_aware(lm, apply_chat_template=False, system_instruction=None):
        out = lm.generate_until(episode_requests(3, max_steps=4))
    # the lines the README's GPU check greps for
    assert "2 vllm data-parallel replicas started once for all steps" in caplog.text
    assert "the 2 vllm data-parallel replicas answered 4 calls and are stopped" in caplog.text
    steps = [len(json.loads(o)["trajectory"]) for o in out]
    assert steps == [4, 4, 4]
    assert started == [(2, replicas.vllm_engine, lm.model_args, 1)]  # one pool of two replicas ...
    assert Engine.built == [0, 1]  # ... each started once for the four steps
    assert lm.per_call == []  # lm-eval's start-per-call path was not used
    assert "_model_generate" not in lm.__dict__  # and is the model's own again afterwards
    lm._model_generate([[1]], generate=False)
    assert lm.per_call == [(1, False)]


def test_scoring_calls_keep_lm_evals_path_inside_the_episode_call(monkeypatch):
    from lm_eval_acbench.episodes import _vllm_replicas_kept

    monkeypatch.setattr(replicas, "ray_pool", lambda size, *a, **k: thread_pool(size))
    lm = DataParallelModel()
    with _vllm_replicas_kept(lm):
        assert lm._model_generate([[1], [2]], generate=False) == ["check valid actions"] * 2
        answers = lm._model_generate([[1], [2]], generate=True, sampling_params=["s", "t"])
        assert answers[1].startswith("1:[2]:t")  # the second prompt, from the second replica
    assert lm.per_call == [(2, False)]


def test_data_parallel_vllm_is_found_behind_caching_lm(tmp_path):
    from lm_eval.api.model import CachingLM

    from lm_eval_acbench.episodes import _data_parallel_vllm

    lm = DataParallelModel()
    assert _data_parallel_vllm(lm) is lm
    assert _data_parallel_vllm(CachingLM(lm, str(tmp_path / "cache"))) is lm
    lm.data_parallel_size = 1
    assert _data_parallel_vllm(lm) is None
    assert _data_parallel_vllm(object()) is None


# ---- the Ray binding, with real actors ------------------------------------------------------------
@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # starting Ray and two actor processes takes 10-30 s here
def test_ray_replicas_are_built_once_in_their_own_processes(local_ray):
    def make_engine(args):  # defined here so Ray ships it by value
        import os as _os

        tag = f"{args['name']}@{_os.getpid()}"
        return lambda prompts, params, **kw: [f"{tag}:{p}:{q}" for p, q in zip(prompts, params)]

    pool = replicas.ray_pool(2, make_engine, {"name": "m"}, num_gpus=0, num_cpus=0.5)
    try:
        for count in (5, 1, 4):
            out = pool.generate([f"p{i}" for i in range(count)], list(range(count)))
            assert [o.split(":", 1)[1] for o in out] == [f"p{i}:{i}" for i in range(count)]
        info = replicas.replica_info(pool)
        pids = {o.split("@")[1].split(":")[0] for o in out}
    finally:
        pool.close()
    assert len({i["pid"] for i in info}) == 2 and os.getpid() not in {i["pid"] for i in info}
    assert {str(i["pid"]) for i in info} == pids  # the engines live in the actors that answered
    assert [i["calls"] for i in info] == [3, 2]  # the one-prompt call went to the first replica only
    assert local_ray.is_initialized()  # a Ray the pool did not start is left running

    def broken(args):
        raise ValueError("no such model: m")

    with pytest.raises(ReplicaError, match="replica 0 of 2 failed to start: .*no such model: m"):
        replicas.ray_pool(2, broken, {}, num_gpus=0, num_cpus=0.5)
