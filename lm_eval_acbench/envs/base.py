"""The one small protocol every real-world environment follows, and the registry of them.

An environment is built from one episode record (a dict, as stored in the task's dataset) and
answers three things: :meth:`Env.reset` gives the first observation, :meth:`Env.step` takes
one action string (already stripped to one line) and returns a :class:`Step`, and
:meth:`Env.close` frees what it holds. ``progress`` in a step is the environment's own measure
of how far the goal is reached, in [0, 1]; the loop keeps the highest value it saw.

Environments whose optional dependency is missing raise :class:`EnvUnavailable` from their
factory; the loop then marks every episode of that environment as skipped, with the reason,
and the other environments go on.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Callable, Protocol

INVALID_ACTION = "The action is not valid and therefore takes no effect."


class EnvUnavailable(RuntimeError):
    """An optional dependency (package, Java, game files) is missing; the message says which."""


@dataclass
class Step:
    observation: str
    progress: float
    done: bool = False
    valid: bool = True


class Env(Protocol):
    instructions: str  # rules and the action format, shown once per prompt
    goal: str
    tools: list  # JSON-schema tool descriptions for chat templates that take tools ([] if none)

    def reset(self) -> str: ...

    def progress(self) -> float: ...

    def step(self, action: str) -> Step: ...

    def close(self) -> None: ...


# env name -> "module:factory"; factories take the episode record and return an Env.
ENV_FACTORIES = {
    "pddl": "lm_eval_acbench.envs.pddl_env:make_env",
    "tool-query": "lm_eval_acbench.envs.tools:make_query_env",
    "tool-operation": "lm_eval_acbench.envs.tools:make_operation_env",
    "babyai": "lm_eval_acbench.envs.babyai:make_env",
    "scienceworld": "lm_eval_acbench.envs.scienceworld:make_env",
    "jericho": "lm_eval_acbench.envs.jericho_env:make_env",
    "alfworld": "lm_eval_acbench.envs.alfworld_env:make_env",
}


def env_factory(name: str) -> Callable[[dict], Env]:
    target = ENV_FACTORIES.get(name)
    if target is None:
        raise ValueError(f"unknown environment {name!r}; known: {', '.join(sorted(ENV_FACTORIES))}")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def row_info(row: dict) -> dict:
    """A row's ``additional_info`` (AgentBoard's per-row details) as a dict: parsed when it is
    stored as JSON text, {} when absent or not a mapping."""
    info = row.get("additional_info")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except json.JSONDecodeError:
            info = None
    return info if isinstance(info, dict) else {}


class RowError(ValueError):
    """A data row that cannot start an episode (set by the loader as ``load_error``)."""


def make_env(record: dict) -> Env:
    """Build the environment an episode record names in its ``env`` field; a record the loader
    marked with ``load_error`` raises :class:`RowError` with that reason."""
    if record.get("load_error"):
        raise RowError(str(record["load_error"]))
    return env_factory(str(record.get("env")))(record)
