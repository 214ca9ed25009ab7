"""An environment played in a process of its own, so that a crash of its native code (frotz's
segmentation faults, for one) ends that episode with an error instead of killing the lm-eval run.

:class:`ProcessEnv` starts ``python -m lm_eval_acbench.envs.isolated``, which builds the real
environment from the episode record with the factory it is given and answers one JSON line per
call (``reset``, ``progress``, ``step``, ``native_progress``, ``close``). When the child dies,
the call raises :class:`EnvProcessDied` naming the signal; the episode loop records that as the
episode's environment error. The child writes its answers to a private copy of its stdout and
points fd 1 at stderr, so what native code prints never mixes with the answers.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys

from lm_eval_acbench.envs.base import EnvUnavailable, RowError, Step

START_LINE_LIMIT = 50_000_000  # characters of one answer line (a step's observation is far smaller)


class EnvProcessDied(RuntimeError):
    """The environment's process ended while a call was waiting for it."""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}" + (" (segmentation fault in native code)" if -code == signal.SIGSEGV else "")
    return f"exited with status {code}"


class ProcessEnv:
    """The environment ``factory`` ("module:function") builds from ``record``, run in a child process."""

    def __init__(self, factory: str, record: dict) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "lm_eval_acbench.envs.isolated", factory],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      text=True, encoding="utf-8", errors="surrogateescape")
        info = self._call("start", record)
        self.instructions = str(info.get("instructions") or "")
        self.goal = str(info.get("goal") or "")
        self.tools = list(info.get("tools") or [])
        self._has_native = bool(info.get("native_progress"))

    def _call(self, method: str, *args):
        proc = self._proc
        if proc is None:
            raise EnvProcessDied("the environment's process was already closed")
        try:
            proc.stdin.write(json.dumps([method, list(args)]) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline(START_LINE_LIMIT)
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if not line:
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            self._proc = None
            raise EnvProcessDied(f"the environment's process {_describe_exit(code)} during {method}")
        answer = json.loads(line)
        if answer.get("error"):
            kind, message = answer["error"]
            raise {"EnvUnavailable": EnvUnavailable, "RowError": RowError}.get(kind, RuntimeError)(
                message if kind in ("EnvUnavailable", "RowError", "RuntimeError") else f"{kind}: {message}")
        return answer.get("value")

    def reset(self) -> str:
        return str(self._call("reset"))

    def progress(self) -> float:
        return float(self._call("progress"))

    def native_progress(self) -> float:
        if not self._has_native:
            raise AttributeError("no native progress")
        return float(self._call("native_progress"))

    def step(self, action: str) -> Step:
        value = self._call("step", action)
        return Step(str(value["observation"]), float(value["progress"]), bool(value["done"]), bool(value["valid"]))

    def kill(self) -> None:
        """End the child at once (its episode timed out: it may be stuck in native code)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.write(json.dumps(["close", []]) + "\n")
            proc.stdin.close()
            proc.wait(timeout=30)
        except (BrokenPipeError, OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def _serve(factory: str) -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="surrogateescape")
    os.dup2(2, 1)  # native code's prints go to stderr, never into the answers
    module, attr = factory.split(":")
    make = getattr(importlib.import_module(module), attr)
    env = None
    for line in sys.stdin:
        method, args = json.loads(line)
        try:
            if method == "start":
                env = make(*args)
                value = {"instructions": env.instructions, "goal": env.goal, "tools": list(env.tools or []),
                         "native_progress": callable(getattr(env, "native_progress", None))}
            elif method == "step":
                result = env.step(*args)
                value = {"observation": result.observation, "progress": result.progress, "done": result.done,
                         "valid": result.valid}
            elif method == "close":
                if env is not None:
                    env.close()
                return
            else:
                value = getattr(env, method)()
            answer = {"value": value}
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it there
            answer = {"error": [type(exc).__name__, str(exc)]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    _serve(sys.argv[1])
