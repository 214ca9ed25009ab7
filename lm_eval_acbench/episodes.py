"""Multi-turn agent episodes inside one lm-eval run; the one module that touches lm-eval internals.

lm-eval builds every request up front and calls the model once per request type. An episode
needs a model call per step, with the next prompt depending on the last answer. So:

* Each ``acbench_realworld_*`` document is one episode and asks for one ``generate_until``
  request; its document carries the episode record under :data:`EPISODE_FIELD`.
* At start-up the hook (``_hook.py``) calls :func:`patch_evaluator` once
  ``lm_eval.evaluator`` has loaded. It wraps ``evaluate(lm, ...)``: for the duration of that call
  the ``lm`` *instance* gets an episode-aware ``generate_until`` (an instance attribute, so it
  works for every model class, ``hf``, ``vllm``, the API models and ``CachingLM`` alike).
* That ``generate_until`` passes ordinary requests to the model unchanged and resolves episode
  requests by running :func:`run_episodes`: all live episodes advance together, one batched call
  of the model's own ``generate_until`` per step. The response of an episode request is its
  whole transcript as JSON, so lm-eval's samples log keeps every prompt, action, observation and
  the progress after each step; ``tasks.realworld.process_results`` scores it.

Why wrap ``evaluate`` and not the model classes: it is one public function with a stable
signature (``lm`` first, ``apply_chat_template`` and ``system_instruction`` keywords), it sees
the user's chat-template setting, and it needs no knowledge of any model class. What we rely on
is checked in :func:`check_lm_eval`; when it fails the realworld tasks refuse to build their
requests with a message that says why (see :func:`require_loop`), instead of silently sending
one prompt per episode to the model.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from lm_eval_acbench import thinking
from lm_eval_acbench.logsafe import log_safe

# a child of lm-eval's logger, so the loop's progress lines appear with lm-eval's own
log = logging.getLogger("lm_eval.acbench_episodes")

EPISODE_FIELD = "acbench_episode"
TRANSCRIPT_TEXT_LIMIT = 1_000_000  # characters of one text field kept whole in a transcript
LOOP_FIELD = "acbench_loop"
TESTED_LM_EVAL = "0.4.13"

_state: dict[str, Any] = {"patched": False, "problem": None}


# ---- settings ------------------------------------------------------------------------------
@dataclass
class LoopSettings:
    """Per-run settings of the loop (task metadata keys of the same names)."""

    max_steps: int = 30  # steps per episode
    memory: int = 5  # recent (action, observation) pairs shown in each prompt; 0 = none
    max_invalid: int = 3  # consecutive invalid actions that end an episode; 0 = never
    step_timeout: float = 60.0  # seconds one environment step may take; 0 = no limit
    log_prompts: bool = True  # keep every step's prompt in the transcript

    @classmethod
    def from_mapping(cls, values: dict | None) -> "LoopSettings":
        values = values or {}
        out = cls()
        for name in ("max_steps", "memory", "max_invalid"):
            if values.get(name) is not None:
                setattr(out, name, max(0, int(values[name])))
        if values.get("step_timeout") is not None:
            out.step_timeout = max(0.0, float(values["step_timeout"]))
        if values.get("log_prompts") is not None:
            out.log_prompts = bool(values["log_prompts"])
        out.max_steps = max(1, out.max_steps)
        return out


# ---- prompts and actions -------------------------------------------------------------------
_ACTION_PREFIX = re.compile(r"^\s*(?:[-*>#]+\s*)?(?:\**\s*(?:next\s+)?action\s*\**\s*[:：]\s*)", re.IGNORECASE)
MAX_ACTION_CHARS = 400
ACTION_PREFIX_WINDOW = 1_000


def extract_action(text: Any) -> str:
    """The action in a model answer: its first non-empty line, without an ``Action:`` label,
    list marker, surrounding quotes or backticks; at most :data:`MAX_ACTION_CHARS` characters.
    Never raises; returns "" when there is nothing."""
    if not isinstance(text, str):
        return ""
    for line in text.splitlines():
        # The prefix pattern backtracks quadratically on a long run of "*" that is not a label;
        # a label is never longer than this window, so the pattern only ever sees the window.
        prefix = _ACTION_PREFIX.match(line[:ACTION_PREFIX_WINDOW])
        line = (line[prefix.end():] if prefix else line).strip()
        line = line.strip("`").strip()
        if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
            line = line[1:-1].strip()
        if line:
            return line[:MAX_ACTION_CHARS]
    return ""


# Call formats a one-line action cannot carry: model tool-call tokens and tags, a call list after
# prose, a JSON call object. Plain ``name(...)`` lines go to the environment as they are.
_STRUCTURED_FORMATS = ("tool_call_tags", "mistral", "deepseek", "python_tag", "python_after_prose", "json")


def tool_action(text: Any) -> str | None:
    """For environments with tools: the first call in a model-native tool-call format, as the
    one-line action ``name({"arg": value})``; None when the answer holds none (or is a plain
    ``name(...)`` line, which the environment reads itself)."""
    from lm_eval_acbench.metrics.tool_calls import parse_tool_calls

    parsed = parse_tool_calls(text)
    if not parsed.calls or not parsed.format.startswith(_STRUCTURED_FORMATS):
        return None
    if parsed.format == "json" and str(text).lstrip()[:1] not in "[{`":
        return None  # "name with Action Input: {...}" is the environment's own form
    ((name, args),) = parsed.calls[0].items()
    try:
        return f"{name}({json.dumps(args, ensure_ascii=False)})"
    except (TypeError, ValueError):
        return None


def build_messages(instructions: str, goal: str, history: Sequence[tuple[str, str]], observation: str,
                   memory: int, system_instruction: str | None = None) -> list[dict[str, str]]:
    """Chat messages for one step: system = instructions; user = goal, recent history, latest
    observation and the request for one action."""
    system = instructions if not system_instruction else f"{system_instruction}\n\n{instructions}"
    recent = list(history)[-memory:] if memory > 0 else []
    parts = [f"Goal: {goal}"]
    if recent:
        lines = [f"Action: {action}\nObservation: {obs}" for action, obs in recent]
        parts.append("Recent history:\n" + "\n".join(lines))
    parts.append(f"Latest observation: {observation}")
    parts.append("What is your next action? Answer with one action on one line.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def render_plain(messages: Sequence[dict[str, str]]) -> str:
    """A prompt for models used without a chat template; the model continues after "Action:"
    (added unless the last message already ends with it, as AgentBoard's prompts do)."""
    text = "\n\n".join(m["content"] for m in messages if m["content"])
    return text if text.rstrip().endswith("Action:") else text + "\nAction:"


def _step_messages(episode, system_instruction: str | None) -> list[dict[str, str]]:
    """AgentBoard's VanillaAgent layout when the record carries a prompt (AgentBoard's prompt file,
    ``envs.prompts``, or our one-shot example, ``envs.own_examples``), else ours (:func:`build_messages`)."""
    prompt = episode.record.get("agentboard_prompt")
    if isinstance(prompt, dict):
        from lm_eval_acbench.envs.prompts import agentboard_messages

        return agentboard_messages(prompt, episode.env.goal, episode.first_observation, episode.history,
                                   episode.settings.memory, system_instruction,
                                   instructions=str(getattr(episode.env, "instructions", "") or ""))
    return build_messages(episode.env.instructions, episode.env.goal, episode.history, episode.observation,
                          episode.settings.memory, system_instruction)


# ---- the loop ------------------------------------------------------------------------------
@dataclass
class StepRequest:
    """One model call of one episode: the prompt, or the chat messages and tools behind it."""

    messages: list[dict[str, str]]
    tools: list
    gen_kwargs: dict
    episode: int = -1  # index of the episode among run_episodes' records
    step: int = -1  # 1 for the first model call of the episode, 2 for the next, ...


Policy = Callable[[list[StepRequest]], list[str]]


@dataclass
class Episode:
    record: dict
    settings: LoopSettings
    gen_kwargs: dict = field(default_factory=dict)
    env: Any = None
    history: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    observation: str = ""
    first_observation: str = ""
    initial_progress: float = 0.0
    best: float = 0.0
    invalid_run: int = 0
    end_reason: str | None = None
    skipped: str | None = None
    error: str | None = None

    @property
    def live(self) -> bool:
        return self.end_reason is None

    def transcript(self) -> dict:
        from lm_eval_acbench.metrics.progress import score_transcript

        out = {
            "env": self.record.get("env"),
            "subset": self.record.get("subset"),
            "episode_id": self.record.get("id"),
            "goal": getattr(self.env, "goal", self.record.get("goal")),
            "instructions": getattr(self.env, "instructions", None),
            "initial_progress": self.initial_progress,
            "settings": asdict(self.settings),
            "trajectory": self.steps,
            "end_reason": self.end_reason,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        if self.error:
            out["error"] = self.error
        out.update(score_transcript(out))
        return out


class _StepTimeout(Exception):
    pass


def _call_with_timeout(fn: Callable, timeout: float, *args):
    """Run ``fn(*args)``; raise _StepTimeout after ``timeout`` s (0 = wait forever).

    A hung call keeps running in a daemon thread that is abandoned; its episode is ended."""
    if timeout <= 0:
        return fn(*args)
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="acbench-env-step")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise _StepTimeout(f"environment did not answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


_warned_skips: set = set()
START_TIMEOUT = 600.0  # seconds building and resetting an environment may take (unless step_timeout is 0)
PARALLEL_START = frozenset({"scienceworld"})


def _start(episode: Episode, make_env: Callable[[dict], Any]) -> None:
    from lm_eval_acbench.envs.base import EnvUnavailable

    # starting may launch a server (ScienceWorld's JVM), slow on a loaded machine: at least START_TIMEOUT
    timeout = max(episode.settings.step_timeout, START_TIMEOUT) if episode.settings.step_timeout else 0.0
    try:
        episode.env = _call_with_timeout(make_env, timeout, episode.record)
        episode.observation = episode.first_observation = str(_call_with_timeout(episode.env.reset, timeout))
        episode.initial_progress = float(_call_with_timeout(episode.env.progress, timeout))
        episode.best = episode.initial_progress
    except EnvUnavailable as exc:
        episode.skipped = str(exc)
        episode.end_reason = f"skipped: {exc}"
        key = (episode.record.get("env"), str(exc))
        if key not in _warned_skips:
            _warned_skips.add(key)
            log.warning("acbench_realworld_%s skipped: %s", episode.record.get("env"), exc)
    except Exception as exc:  # a broken environment fails its own episode only (logged per cause)
        episode.error = f"{type(exc).__name__}: {exc}"
        episode.end_reason = f"environment failed to start: {episode.error}"


def _advance(episode: Episode, prompt: str, output: str) -> None:
    settings = episode.settings
    answer = thinking.answer(episode.record, output)
    action = (tool_action(answer) if getattr(episode.env, "tools", None) else None) or extract_action(answer)
    entry: dict[str, Any] = {"step": len(episode.steps) + 1}
    if settings.log_prompts:
        entry["prompt"] = prompt
    entry.update(output=output, action=action)
    try:
        result = _call_with_timeout(episode.env.step, settings.step_timeout, action)
    except Exception as exc:  # crash or hang ends this episode as failed
        episode.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _StepTimeout) else str(exc)
        entry.update(observation=None, valid=False, progress=episode.best, error=episode.error)
        episode.steps.append(entry)
        episode.end_reason = f"environment error at step {entry['step']}: {episode.error}"
        return
    progress = float(result.progress)
    episode.best = max(episode.best, progress)
    entry.update(observation=result.observation, valid=bool(result.valid), progress=progress)
    native = getattr(episode.env, "native_progress", None)
    if callable(native):  # the environment's own measure, kept beside AgentBoard's
        try:
            entry["native_progress"] = float(native())
        except Exception:  # noqa: BLE001 - a side metric never ends the episode
            pass
    episode.steps.append(entry)
    episode.history.append((action, result.observation))
    episode.observation = result.observation
    episode.invalid_run = 0 if result.valid else episode.invalid_run + 1
    if progress >= 1.0 - 1e-9:
        episode.end_reason = "success"
    elif result.done:
        episode.end_reason = "environment ended the episode"
    elif settings.max_invalid and episode.invalid_run >= settings.max_invalid:
        episode.end_reason = f"{episode.invalid_run} invalid actions in a row"
    elif len(episode.steps) >= settings.max_steps:
        episode.end_reason = "step limit"


def run_episodes(records: Sequence[dict], policy: Policy, *, settings: Sequence[LoopSettings] | LoopSettings | None = None,
                 gen_kwargs: Sequence[dict] | None = None, render: Callable[[StepRequest], str] | None = None,
                 system_instruction: str | None = None, make_env: Callable[[dict], Any] | None = None,
                 stats: dict | None = None) -> list[dict]:
    """Run one episode per record, all live episodes together: one ``policy`` call per step.

    ``policy`` gets the step requests of every live episode and returns one answer each.
    ``render`` turns a request into the prompt string logged in the transcript (plain text by
    default). Returns one transcript per record, in order. ``stats`` (optional dict) receives
    ``model_calls``, ``model_seconds`` and ``env_seconds``.
    """
    if make_env is None:
        from lm_eval_acbench.envs.base import make_env
    render = render or (lambda request: render_plain(request.messages))
    if settings is None or isinstance(settings, LoopSettings):
        settings = [settings or LoopSettings()] * len(records)
    gen_kwargs = list(gen_kwargs) if gen_kwargs is not None else [{}] * len(records)
    episodes = [Episode(dict(r), s, dict(g)) for r, s, g in zip(records, settings, gen_kwargs, strict=True)]
    stats = stats if stats is not None else {}
    stats.update(model_calls=0, model_seconds=0.0, env_seconds=0.0)

    tick = time.perf_counter()
    # Environments that start a server (ScienceWorld's JVM) start side by side; others in turn.
    slow = [e for e in episodes if e.record.get("env") in PARALLEL_START]
    for episode in episodes:
        if episode.record.get("env") not in PARALLEL_START:
            _start(episode, make_env)
    if slow:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(slow)), thread_name_prefix="acbench-env-start") as pool:
            list(pool.map(lambda episode: _start(episode, make_env), slow))
    stats["env_seconds"] += time.perf_counter() - tick
    failed = Counter((e.record.get("env"), e.error) for e in episodes if e.error)
    for (env_name, error), count in sorted(failed.items(), key=str):
        log.warning("acbench_realworld_%s: %d of %d episodes failed to start: %s", env_name, count,
                    sum(1 for e in episodes if e.record.get("env") == env_name), error)

    number = {id(e): i for i, e in enumerate(episodes)}  # identity: equal episodes stay apart
    while True:
        live = [e for e in episodes if e.live]
        if not live:
            break
        log.info("acbench episodes: step %d, %d of %d episodes live", stats["model_calls"] + 1, len(live), len(episodes))
        tick = time.perf_counter()
        requests = [StepRequest(_step_messages(e, system_instruction), list(getattr(e.env, "tools", []) or []),
                                e.gen_kwargs, episode=number[id(e)], step=len(e.steps) + 1) for e in live]
        prompts = [render(request) for request in requests]
        stats["env_seconds"] += time.perf_counter() - tick
        tick = time.perf_counter()
        outputs = list(policy(requests))
        stats["model_seconds"] += time.perf_counter() - tick
        stats["model_calls"] += 1
        if len(outputs) != len(live):
            raise RuntimeError(f"the model answered {len(outputs)} of {len(live)} step requests")
        tick = time.perf_counter()
        for episode, prompt, output in zip(live, prompts, outputs):
            _advance(episode, prompt, output)
        stats["env_seconds"] += time.perf_counter() - tick
        ended = [e for e in live if not e.live]
        if ended:
            # lm-eval writes results only when the run ends: a run stopped early still shows in
            # its log how many episodes ended, where and why
            log.info("acbench episodes: %d ended at step %d (%s), %d still live", len(ended), stats["model_calls"],
                     end_summary(ended), len(live) - len(ended))

    if episodes:
        log.info("acbench episodes: how the %d episodes ended: %s", len(episodes), end_summary(episodes))
    for episode in episodes:
        if episode.env is not None and (episode.error or "").startswith("environment did not answer"):
            # a hung environment in a process of its own (envs.isolated) can be ended; one in
            # this process is left to its abandoned thread
            kill = getattr(episode.env, "kill", None)
            if callable(kill):
                kill()
        elif episode.env is not None:
            try:
                episode.env.close()
            except Exception as exc:  # closing must not lose the result
                log.warning("closing environment of episode %s failed: %s", episode.record.get("id"), exc)
    return [episode.transcript() for episode in episodes]


def end_kind(reason: str | None) -> str:
    """An end reason without its per-episode details ("environment error at step 3: X" ->
    "environment error"), so that reasons can be counted."""
    reason = reason or "live"
    for kind in ("environment error", "environment failed to start", "skipped"):
        if reason.startswith(kind):
            return kind
    return reason


def end_summary(episodes: Sequence[Episode]) -> str:
    """Counts of (environment, end kind), most frequent first: "pddl: 3 invalid actions in a row 18; ..."."""
    counts = Counter((str(e.record.get("env")), end_kind(e.end_reason)) for e in episodes)
    return "; ".join(f"{env}: {kind} {n}" for (env, kind), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- lm-eval adapter -----------------------------------------------------------------------
def check_lm_eval(evaluator_module) -> str | None:
    """None when lm-eval offers what the adapter uses, else what is missing."""
    import inspect

    try:
        from lm_eval.api.instance import Instance
    except Exception as exc:  # noqa: BLE001
        return f"cannot import lm_eval.api.instance.Instance ({exc})"
    evaluate = getattr(evaluator_module, "evaluate", None)
    if evaluate is None:
        return "lm_eval.evaluator has no evaluate()"
    params = list(inspect.signature(evaluate).parameters)
    if not params or params[0] != "lm":
        return f"lm_eval.evaluator.evaluate's first parameter is {params[:1]}, not 'lm'"
    for name in ("apply_chat_template", "system_instruction"):
        if name not in params:
            return f"lm_eval.evaluator.evaluate has no {name!r} parameter"
    fields = getattr(Instance, "__dataclass_fields__", {})
    for name in ("request_type", "doc", "arguments", "idx", "metadata"):
        if name not in fields:
            return f"lm_eval Instance has no field {name!r}"
    return None


def patch_evaluator(module) -> None:
    """Start-up hook for ``lm_eval.evaluator``: wrap ``evaluate`` with the episode loop."""
    original = module.evaluate
    if getattr(original, "_acbench_episodes", False):
        return
    problem = check_lm_eval(module)
    if problem:
        _state["problem"] = f"{problem} (tested with lm-eval {TESTED_LM_EVAL})"
        return
    bound_signature = __import__("inspect").signature(original)

    @functools.wraps(original)
    def evaluate(*args, **kwargs):
        bound = bound_signature.bind(*args, **kwargs)
        bound.apply_defaults()
        lm = bound.arguments["lm"]
        from lm_eval_acbench import run_args

        # tasks see only bool(--apply_chat_template); a template's name is kept for them here
        with run_args.recorded(chat_template=bound.arguments.get("apply_chat_template")):
            with _episode_aware(lm, bound.arguments.get("apply_chat_template"),
                                bound.arguments.get("system_instruction")):
                return original(*args, **kwargs)

    evaluate._acbench_episodes = True  # type: ignore[attr-defined]
    module.evaluate = evaluate
    _record_gen_kwargs(module)
    _state["patched"] = True


def _record_gen_kwargs(module) -> None:
    """Wrap ``simple_evaluate`` so data-set builders see ``--gen_kwargs`` (see run_args.py)."""
    import inspect

    original = getattr(module, "simple_evaluate", None)
    if original is None or getattr(original, "_acbench_run_args", False):
        return
    signature = inspect.signature(original)
    if "gen_kwargs" not in signature.parameters:
        return

    @functools.wraps(original)
    def simple_evaluate(*args, **kwargs):
        from lm_eval_acbench import run_args

        bound = signature.bind_partial(*args, **kwargs)
        with run_args.recorded(gen_kwargs=bound.arguments.get("gen_kwargs")):
            return original(*args, **kwargs)

    simple_evaluate._acbench_run_args = True  # type: ignore[attr-defined]
    module.simple_evaluate = simple_evaluate


def require_loop() -> None:
    """Raise with a clear message when the episode loop is not in place in this process."""
    if _state["patched"]:
        return
    reason = _state["problem"] or (
        "lm_eval.evaluator was not patched: the acbench start-up hook did not run "
        "(ACBENCH_DISABLE_HOOK set, or lm_eval_acbench_hook.pth not installed)"
    )
    raise RuntimeError(f"acbench_realworld needs acbench's episode loop, which is not available: {reason}")


class _episode_aware:
    """Context manager giving one LM instance an episode-aware ``generate_until``."""

    def __init__(self, lm, apply_chat_template, system_instruction) -> None:
        self.lm = lm
        self.chat = bool(apply_chat_template)
        self.system_instruction = system_instruction

    def __enter__(self):
        lm = self.lm
        self.had_own = "generate_until" in getattr(lm, "__dict__", {})
        self.saved = lm.__dict__.get("generate_until") if self.had_own else None
        original = lm.generate_until
        lm.generate_until = functools.partial(_generate_until, lm, original, self.chat, self.system_instruction)
        return self

    def __exit__(self, *exc):
        if self.had_own:
            self.lm.generate_until = self.saved
        else:
            try:
                del self.lm.generate_until
            except AttributeError:
                pass
        return False


def _call_model(original, instances) -> list[str]:
    try:
        return list(original(instances, disable_tqdm=True))
    except TypeError as exc:
        if "disable_tqdm" not in str(exc):
            raise
        return list(original(instances))


def lm_policy(lm, original, chat: bool, origins: Sequence[tuple] | None = None
              ) -> tuple[Policy, Callable[[StepRequest], Any]]:
    """A policy that sends each step's prompts to an lm-eval model in one batched call.

    ``origins[e]`` = (task name, doc id, request idx, repeat) of episode e's lm-eval request: each
    step request carries them, plus ``acbench_episode`` (the repeat) and ``acbench_step``, so a
    model that logs per request (``acbench-hf``) keys every step of every episode apart.
    """
    from lm_eval.api.instance import Instance

    def step_instance(i: int, r: StepRequest) -> Instance:
        origin = origins[r.episode] if origins is not None and 0 <= r.episode < len(origins) else None
        if origin is None:
            task, doc_id, idx, repeat = "acbench_realworld_step", i, 0, -1
        else:
            task, doc_id, idx, repeat = origin
        inst = Instance(request_type="generate_until", doc={},
                        arguments=(rendered.pop(id(r), None) or render(r), r.gen_kwargs),
                        idx=idx, metadata=(task, doc_id, 1))
        inst.acbench_episode = repeat if origin is not None else r.episode
        inst.acbench_step = r.step
        return inst

    def render(request: StepRequest):
        if not chat:
            return render_plain(request.messages)
        from lm_eval_acbench import prompting

        if prompting.renders_locally(lm, lm.apply_chat_template):
            # chat.py's role fallbacks: a template that rejects the system role gets it folded
            # into the user turn (lm-eval's own apply_chat_template would drop it, and with it
            # the instructions and the action list)
            from lm_eval_acbench.chat import render_messages, template_uses_tools

            kwargs = prompting.template_kwargs(lm)
            # the instructions already describe the tools: schemas only for templates that take them
            tools = request.tools if request.tools and template_uses_tools(lm.tokenizer, kwargs) else None
            return render_messages(request.messages, tools=tools, tokenizer=lm.tokenizer,
                                   template_kwargs=kwargs).text
        return lm.apply_chat_template(request.messages, add_generation_prompt=True)

    rendered: dict[int, Any] = {}

    def policy(requests: list[StepRequest]) -> list[str]:
        instances = [step_instance(i, r) for i, r in enumerate(requests)]
        return [str(out) for out in _call_model(original, instances)]

    def render_cached(request: StepRequest) -> str:
        prompt = render(request)
        rendered[id(request)] = prompt  # sent to the model as the model class rendered it
        return loggable_prompt(prompt)

    return policy, render_cached


def loggable_prompt(prompt: Any) -> str:
    """The prompt as text for the transcript (lm-eval's ``JsonChatStr`` as its JSON)."""
    from lm_eval_acbench.prompting import loggable

    return loggable(prompt)


def _generate_until(lm, original, chat: bool, system_instruction, requests, *args, **kwargs):
    """Episode requests run as episodes; any other request goes to the model unchanged."""
    mine = [i for i, r in enumerate(requests) if isinstance(getattr(r, "doc", None), dict) and EPISODE_FIELD in r.doc]
    if not mine:
        return original(requests, *args, **kwargs)
    with _batch_size_detected_once(lm), _vllm_replicas_kept(lm):
        return _run_episode_requests(lm, original, chat, system_instruction, requests, mine, *args, **kwargs)


def _data_parallel_vllm(lm):
    """lm-eval's VLLM with ``data_parallel_size > 1`` behind ``lm`` (``--use_cache`` wraps it in a
    ``CachingLM``), else None. Recognised by what :class:`_vllm_replicas_kept` uses of it."""
    for _ in range(4):
        if lm is None:
            return None
        own = getattr(lm, "__dict__", {})
        if (int(own.get("data_parallel_size", 1) or 1) > 1 and isinstance(own.get("model_args"), dict)
                and callable(getattr(type(lm), "_model_generate", None))):
            return lm
        lm = own.get("lm")  # CachingLM keeps the model it wraps here
    return None


class _vllm_replicas_kept:
    """``vllm`` with ``data_parallel_size=N``: N replicas started once for the whole episode call.

    lm-eval's VLLM starts N Ray tasks per ``_model_generate`` call, each loading the model and
    exiting after one batch (vllm_causallms.py); here that would be N model loads per episode
    step. For the duration of the call the instance's ``_model_generate`` goes to a pool of N
    Ray actors that each load the model once (``replicas.ray_pool``); everything before it --
    tokenising, stop strings, truncation, reading ``outputs[0].text`` -- stays lm-eval's. Scoring
    calls (``generate=False``) keep lm-eval's own path."""

    def __init__(self, lm) -> None:
        self.model = _data_parallel_vllm(lm)
        self.pool = None

    def __enter__(self):
        model = self.model
        if model is None:
            return self
        from lm_eval_acbench.replicas import ray_pool, vllm_engine

        size = int(model.data_parallel_size)
        tick = time.perf_counter()
        self.pool = pool = ray_pool(size, vllm_engine, dict(model.model_args),
                                    num_gpus=int(getattr(model, "tensor_parallel_size", 1) or 1),
                                    name="vllm data-parallel replica")
        log.info("acbench episodes: %d vllm data-parallel replicas started once for all steps (%.1f s)",
                 size, time.perf_counter() - tick)
        self.had_own = "_model_generate" in model.__dict__
        self.saved = model.__dict__.get("_model_generate")
        lm_eval_generate = model._model_generate
        lora = getattr(model, "lora_request", None)

        def _model_generate(requests, generate=False, sampling_params=None):
            if not generate or sampling_params is None:
                return lm_eval_generate(requests, generate, sampling_params)
            params = (sampling_params if isinstance(sampling_params, list)
                      else [sampling_params] * len(requests))
            return pool.generate(list(requests), params, lora_request=lora)

        model._model_generate = _model_generate
        return self

    def __exit__(self, *exc):
        if self.pool is None:
            return False
        if self.had_own:
            self.model._model_generate = self.saved
        else:
            self.model.__dict__.pop("_model_generate", None)
        calls = self.pool.calls
        self.pool.close()
        log.info("acbench episodes: the %d vllm data-parallel replicas answered %d calls and are stopped",
                 self.model.data_parallel_size, calls)
        return False


class _batch_size_detected_once:
    """``--batch_size auto`` on hf: detect once for the whole episode call, not once per step.

    lm-eval's HFLM detects the batch size at every ``generate_until`` call (full-length forward
    passes, and an all-gather across processes under ``accelerate launch``, where ranks run
    different numbers of steps and would hang). Here it is detected once, on every rank alike,
    and the model runs at that fixed size until the call returns."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.active = getattr(lm, "batch_size_per_gpu", None) == "auto" and callable(
            getattr(lm, "_detect_batch_size", None))

    def __enter__(self):
        if self.active:
            detected = int(self.lm._detect_batch_size())
            log.info("acbench episodes: batch size %d (detected once for all steps)", detected)
            self.lm.batch_size_per_gpu = detected
        return self

    def __exit__(self, *exc):
        if self.active:
            self.lm.batch_size_per_gpu = "auto"
        return False


def _run_episode_requests(lm, original, chat: bool, system_instruction, requests, mine, *args, **kwargs):
    results: list = [None] * len(requests)
    mine_set = set(mine)
    others = [i for i in range(len(requests)) if i not in mine_set]
    if others:
        for i, out in zip(others, original([requests[i] for i in others], *args, **kwargs), strict=True):
            results[i] = out
    from lm_eval_acbench.data import doc_json

    # Under a multi-process run lm-eval evens out the ranks by sending the last request of a rank
    # with fewer again (evaluator.evaluate, `padding_requests`); those answers are never scored.
    # A request sent more often than its own `repeats` is such padding: it gets the transcript of
    # the episode already played for it, rather than a whole episode more on this rank.
    played, padding = [], {}  # padding: position in `mine` -> position of the played request
    sent: dict[int, list[int]] = {}
    for k, i in enumerate(mine):
        req = requests[i]
        sent.setdefault(id(req), []).append(k)
        if len(sent[id(req)]) > max(1, int(getattr(req, "repeats", 1) or 1)):
            padding[k] = sent[id(req)][0]
        else:
            played.append(k)
    records, settings, gen_kwargs, origins = [], [], [], []
    repeats: dict[tuple, int] = {}
    for k in played:
        req = requests[mine[k]]
        origin = (req.task_name or "acbench_realworld", -1 if req.doc_id is None else req.doc_id, req.idx)
        repeats[origin] = repeats.get(origin, -1) + 1  # lm-eval sends a request `repeats` times
        origins.append((*origin, repeats[origin]))
        doc = req.doc
        record = doc_json(doc, EPISODE_FIELD)
        records.append(record if isinstance(record, dict) else {})
        settings.append(LoopSettings.from_mapping(doc_json(doc, LOOP_FIELD) or {}))
        args_ = req.args
        gen_kwargs.append(dict(args_[1]) if len(args_) > 1 and isinstance(args_[1], dict) else {})
    policy, render = lm_policy(lm, original, chat, origins)
    stats: dict = {}
    rank = int(getattr(lm, "rank", 0) or 0)
    world = int(getattr(lm, "world_size", 1) or 1)
    where = f" on rank {rank} of {world}" if world > 1 else ""
    copies = f" ({len(padding)} padding requests answered with their episode's transcript)" if padding else ""
    log.info("acbench: running %d episodes%s%s", len(records), where, copies)
    transcripts = run_episodes(records, policy, settings=settings, gen_kwargs=gen_kwargs, render=render,
                               system_instruction=system_instruction, stats=stats)
    log.info("acbench: episodes done in %d model calls (model %.1f s, environments %.1f s)",
             stats["model_calls"], stats["model_seconds"], stats["env_seconds"])
    answers: dict[int, str] = {}
    for k, transcript in zip(played, transcripts):
        # Model text and observations may hold lone surrogates or odd values: the transcript is
        # lm-eval's response, and its samples log must still write it.
        answers[k] = json.dumps(log_safe(transcript, limit=TRANSCRIPT_TEXT_LIMIT), ensure_ascii=False)
    for k, i in enumerate(mine):
        results[i] = answers[padding.get(k, k)]
    return results
