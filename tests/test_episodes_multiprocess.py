"""Episodes in a 2-process lm-eval run on CPU (gloo): each rank plays its own shard, no per-step collective.

``accelerate launch --cpu`` starts several CPU processes only through ``mpirun`` (not installed
here), so the two ranks are started with ``torchrun``, the launcher ``accelerate launch`` uses
for GPUs, and ``ACCELERATE_USE_CPU=1``; HFLM's ``Accelerator`` then runs on gloo. What each
rank does is in ``tests/multiprocess_episodes.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes each import lm-eval and torch and play 3-step episodes: ~30 s here
def test_two_ranks_play_their_own_episodes_and_gather_once(tiny_model_dir, tmp_path):
    script = Path(__file__).with_name("multiprocess_episodes.py")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                           str(script), str(tiny_model_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # lm-eval deals 3 documents out as 0, 2 | 1 and pads rank 1 with its last request again:
    # that copy is answered with the played transcript, so rank 1 plays one episode
    assert [r["played"]["episodes"] for r in ranks] == [2, 1]
    for rank in ranks:
        assert rank["played"]["model_calls"] == 3  # one batched call per step, 3 steps
        assert rank["collectives"]["steps"] == {}  # none while the episodes play ...
        assert rank["collectives"]["episode_call"] == {"all_gather": 1}  # ... one: batch size auto, once
    assert [r["results"] for r in ranks] == [True, False]
    # rank 0 holds every episode once, gathered at the end
    assert sorted(s["doc_id"] for s in ranks[0]["samples"]) == [0, 1, 2]
    assert all(s["steps"] == 3 for s in ranks[0]["samples"]) and ranks[0]["steps_metric"] == 3.0
