"""Start-up hook that makes plain ``lm_eval`` see acbench's tasks and model types.

lm-eval (0.4.13) has no plugin mechanism for tasks: ``TaskManager`` scans its own folder plus
``include_path`` only. ``lm_eval_acbench_hook.pth`` calls :func:`install` at interpreter start;
it places a post-import hook that, once lm-eval's own modules have loaded,

* wraps ``TaskManager.__init__`` so our ``task_yamls/`` folder is scanned after lm-eval's
  built-in tasks and *before* any user ``include_path`` (so a user's tasks still override ours);
* registers our model types in lm-eval's registry after ``lm_eval.models`` has registered the
  built-in ones (registering earlier would make lm-eval skip its own lazy registrations).

Fail-safe by construction: nothing is imported until lm-eval itself is, every callback is
wrapped so that a failure becomes one warning and lm-eval carries on unchanged, and
``ACBENCH_DISABLE_HOOK=1`` turns the whole thing off (checked in the .pth line itself).
"""

from __future__ import annotations

import sys
import warnings

# Kept free of typing/importlib.abc imports: this module loads at every interpreter start.

OFF_SWITCH = "ACBENCH_DISABLE_HOOK"

# name -> "module:attribute", resolved lazily by lm-eval's registry.
MODEL_TYPES = {
    "acbench-hf": "lm_eval_acbench.models:LogitLoggingHFLM",
    "acbench-chat-completions": "lm_eval_acbench.tool_chat:ToolCallingChatCompletion",
}

_TASK_MANAGER_MODULE = "lm_eval.tasks.manager"
_MODELS_MODULE = "lm_eval.models"


def _warn(what: str, exc: BaseException) -> None:
    warnings.warn(
        f"lm_eval_acbench: {what} failed ({type(exc).__name__}: {exc}); lm-eval runs without "
        f"acbench's additions. Set {OFF_SWITCH}=1 to silence this.",
        RuntimeWarning,
        stacklevel=2,
    )


def patch_task_manager(module) -> None:
    """Make every ``TaskManager`` also index acbench's task folder."""
    from lm_eval_acbench.paths import task_dir

    manager_cls = module.TaskManager
    original_init = manager_cls.__init__
    if getattr(original_init, "_acbench_wrapped", False):
        return

    def __init__(self, *args, include_path=None, **kwargs):
        ours = str(task_dir())
        if include_path is None:
            paths = [ours]
        elif isinstance(include_path, (list, tuple)):
            paths = [ours, *include_path]
        else:
            paths = [ours, include_path]
        original_init(self, *args, include_path=paths, **kwargs)

    __init__._acbench_wrapped = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
    __init__.__doc__ = original_init.__doc__
    manager_cls.__init__ = __init__


def register_models(_module=None) -> None:
    """Register acbench's model types under their names (lazy "module:class" targets)."""
    from lm_eval.api.registry import model_registry

    for name, target in MODEL_TYPES.items():
        if name not in model_registry:
            model_registry.register(name, target=target)


def patch_evaluator(module) -> None:
    """Give ``lm_eval.evaluator.evaluate`` the multi-turn episode loop (see episodes.py) and the
    per-task data provenance in its results (see provenance.py)."""
    from lm_eval_acbench.episodes import patch_evaluator as patch
    from lm_eval_acbench.provenance import patch_evaluator as record_provenance

    patch(module)
    record_provenance(module)
    install_error_hook()


def install_error_hook() -> None:
    """Print acbench's user errors (bad data, a missing scorer) as one line under ``lm_eval``.

    Only :class:`lm_eval_acbench.errors.UserError` (``DataUnavailable`` and scorer errors are
    ones) reaching the top of the process; every other exception keeps its traceback.
    """
    previous = sys.excepthook
    if getattr(previous, "_acbench_errors", False):
        return

    def hook(kind, value, traceback):
        from lm_eval_acbench.errors import UserError

        cause, seen = value, 0
        while cause is not None and not isinstance(cause, UserError) and seen < 8:
            cause, seen = cause.__cause__ or cause.__context__, seen + 1
        if isinstance(cause, UserError):
            message = " ".join(str(cause).split())
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()
            return
        previous(kind, value, traceback)

    hook._acbench_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


_CALLBACKS = {
    _TASK_MANAGER_MODULE: patch_task_manager,
    _MODELS_MODULE: register_models,
    "lm_eval.evaluator": patch_evaluator,
}


class _RunAfterExec:
    """Delegates to the real loader, then runs the callback on the fresh module."""

    def __init__(self, loader, callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception as exc:  # fail safe: lm-eval must work even if we do not
            _warn(f"hooking {module.__name__}", exc)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PostImportFinder:
    """Finds nothing itself; wraps the loader of the few lm-eval modules we hook."""

    def __init__(self, callbacks: dict) -> None:
        self._pending = dict(callbacks)

    def find_spec(self, fullname, path=None, target=None):
        callback = self._pending.get(fullname)
        if callback is None:
            return None
        del self._pending[fullname]
        try:
            spec = _find_with_other_finders(self, fullname, path, target)
            if spec is None or spec.loader is None:
                return spec
            spec.loader = _RunAfterExec(spec.loader, callback)
            return spec
        except Exception as exc:
            _warn(f"locating {fullname}", exc)
            return None
        finally:
            if not self._pending and self in sys.meta_path:
                sys.meta_path.remove(self)


def _find_with_other_finders(me, fullname, path, target):
    for finder in sys.meta_path:
        if finder is me or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


def install() -> None:
    """Hook lm-eval; safe to call more than once and after lm-eval is already imported."""
    try:
        pending = {}
        for name, callback in _CALLBACKS.items():
            module = sys.modules.get(name)
            if module is not None:
                callback(module)
            else:
                pending[name] = callback
        if pending and not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _PostImportFinder(pending))
    except Exception as exc:
        _warn("installing the start-up hook", exc)
