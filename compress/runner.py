"""``compress_model``: validate everything, calibrate with llmcompressor, save atomically,
then measure what was written and record it in ``acbench_manifest.json``.

Order of work (nothing heavy happens before every check has passed):
1. recipe, model folder (config + weights), layer shapes vs group size and N:M, calibration
   and held-out text long enough;
2. perplexity of the original model on the held-out windows;
3. pruning (llmcompressor Wanda / SparseGPT, or our per-row magnitude pruning), then
   quantization (llmcompressor GPTQ / AWQ / RTN) in llmcompressor's sequential pipeline
   (one decoder layer at a time); after a quantizer the pruning mask is applied again,
   because GPTQ's error feedback refills pruned weights;
4. save in compressed-tensors format into a staging folder beside ``out``, reload it with
   transformers for the perplexity after, measure the weights, write the manifest, rename.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from lm_eval_acbench import owned_dirs
from lm_eval_acbench.errors import UserError

from .calibration import describe, draw_windows, heldout_windows, load_text, tokenize_source
from .measure import measure_checkpoint
from .recipe import PRUNE_METHODS, Recipe, load_recipe

log = logging.getLogger(__name__)

MANIFEST = "acbench_manifest.json"
RECIPE_FILE = "acbench_recipe.yaml"
MANIFEST_VERSION = 1

NOTES_PRUNING = (
    "pruned weights are stored dense (zeros in place): compressed-tensors no longer writes sparse "
    "formats and vLLM has no 2:4 sparse kernels, so pruning brings no size or speed gain here"
)
NOTE_ASYM = (
    "asymmetric (zero-point) int4 checkpoints from llmcompressor 0.14 fail to load in transformers "
    ">= 5.23 (size mismatch on weight_zero_point); symmetric checkpoints load everywhere"
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "llmcompressor", "compressed-tensors", "lm_eval_acbench", "lm_eval"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _resolve_model(model: str | Path) -> Path:
    from lm_eval_acbench.model_store import FetchError, fetch

    try:
        return Path(fetch(str(model)))
    except FetchError as exc:
        raise UserError(str(exc)) from None


def _target_linears(model, ignore: list[str]) -> dict:
    """name -> nn.Linear for every Linear that compression touches (decoder layers)."""
    import torch

    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(name == i or name.endswith("." + i) or i in name.split(".") for i in ignore):
            out[name] = module
    return out


def _meta_shapes(folder: Path, ignore: list[str]) -> dict[str, tuple[int, int]]:
    """Linear shapes without loading weights (model built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception as exc:  # transformers raises OSError, ValueError, TypeError, its own errors
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"{folder / 'config.json'}: transformers cannot build a causal LM from it "
                        f"({type(exc).__name__}: {reason})") from None
    return {name: tuple(mod.weight.shape) for name, mod in _target_linears(skeleton, ignore).items()}, config


def _resolve_group_size(step, shapes: dict) -> tuple[int | None, str | None]:
    """The group size to use, and a note when it had to change."""
    if step.group_size is None:
        return None, None
    bad = sorted({cols for _, cols in shapes.values() if cols % step.group_size})
    if not bad:
        return step.group_size, None
    if step.group_size_policy == "strict":
        raise UserError(
            f"group_size {step.group_size} does not divide the input size of some layers ({bad}); "
            "choose another group size or set group_size_policy: adjust"
        )
    size = step.group_size
    while size > 1 and any(cols % size for _, cols in shapes.values()):
        size //= 2
    note = f"group_size {step.group_size} does not divide input sizes {bad}; used {size} (largest power of two that divides every layer)"
    log.warning(note)
    return size, note


def _check_pattern(step, shapes: dict) -> None:
    if step is None or step.nm is None:
        return
    n, m = step.nm
    bad = sorted({cols for _, cols in shapes.values() if cols % m})
    if bad:
        raise UserError(f"pattern {step.pattern}: input sizes {bad} are not multiples of {m}")


def _quant_scheme(step, group_size):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    args = dict(num_bits=step.bits, type="int", symmetric=step.symmetric)
    if group_size is None:
        args["strategy"] = "channel"
    else:
        args.update(strategy="group", group_size=group_size)
    if getattr(step, "actorder", None) is not None and group_size is not None:
        args["actorder"] = step.actorder
    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**args))


def _prune_modifier(step, ignore):
    if step.method == "magnitude":
        return None
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    # llmcompressor's "N:M" names the pruned count: our "2:4" (2 kept of 4) is its "2:4",
    # our "1:4" (1 kept) is its "3:4".
    structure = "0:0"
    if step.nm is not None:
        n, m = step.nm
        structure = f"{m - n}:{m}"
    common = dict(sparsity=step.sparsity, mask_structure=structure, targets=["Linear"], ignore=list(ignore))
    if step.method == "wanda":
        return WandaPruningModifier(**common)
    return SparseGPTModifier(**common, dampening_frac=step.dampening_frac, block_size=step.block_size)


def _quant_modifiers(step, group_size, ignore):
    scheme = {"group_0": _quant_scheme(step, group_size)}
    if step.method == "gptq":
        from llmcompressor.modifiers.gptq import GPTQModifier

        return [GPTQModifier(config_groups=scheme, ignore=list(ignore), dampening_frac=step.dampening_frac, block_size=step.block_size)]
    from llmcompressor.modifiers.quantization import QuantizationModifier

    quant = QuantizationModifier(config_groups=scheme, ignore=list(ignore))
    if step.method == "rtn":
        return [quant]
    from llmcompressor.modifiers.transform.awq import AWQModifier

    return [AWQModifier(duo_scaling=step.duo_scaling, n_grid=step.n_grid), quant]


@contextlib.contextmanager
def _cpu_safe_awq():
    """llmcompressor 0.14's AWQ pins cached activations (``IntermediatesCache.pin_memory``), which
    raises "Cannot access accelerator device when none is available" on CPU-only torch. Pinning
    only speeds host-to-device copies, so without an accelerator it is skipped for the duration
    of the run; with an accelerator nothing is changed."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        yield False
        return
    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    try:
        yield True
    finally:
        IntermediatesCache.pin_memory = original


def magnitude_prune(linears: dict, sparsity: float, nm: tuple[int, int] | None) -> None:
    """Zero the smallest-|w| weights: per output row (unstructured), or per group of M inputs
    keeping the N largest (N:M). Ties are broken by position (``torch.topk`` order)."""
    import torch

    with torch.no_grad():
        for module in linears.values():
            weight = module.weight
            rows, cols = weight.shape
            if nm is not None:
                n, m = nm
                groups = weight.abs().reshape(rows, cols // m, m)
                drop = torch.topk(groups, m - n, dim=-1, largest=False).indices
                mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, drop, True).reshape(rows, cols)
            else:
                k = int(round(cols * sparsity))
                drop = torch.topk(weight.abs(), k, dim=1, largest=False).indices
                mask = torch.zeros_like(weight, dtype=torch.bool).scatter_(1, drop, True)
            weight[mask] = 0


def perplexity(model, windows: list[list[int]], desc: str) -> float:
    """exp(mean next-token NLL) over the windows (each scored on its own, batch 1)."""
    import math

    import torch
    from tqdm.auto import tqdm

    model.eval()
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for window in tqdm(windows, desc=desc, leave=False):
            ids = torch.tensor([window])
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total_nll += float(nll)
            total_tokens += ids.shape[1] - 1
    return math.exp(total_nll / total_tokens)


def _dataset(windows: list[list[int]]):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})


def _oneshot(model, modifiers, windows, *, awq: bool) -> None:
    from llmcompressor import oneshot
    from llmcompressor.core import reset_session

    reset_session()
    kwargs = dict(model=model, recipe=modifiers)
    if windows is not None:
        kwargs.update(
            dataset=_dataset(windows), num_calibration_samples=len(windows), max_seq_length=len(windows[0]),
            pipeline="sequential", shuffle_calibration_samples=False,
        )
    ctx = _cpu_safe_awq() if awq else contextlib.nullcontext()
    with ctx:
        oneshot(**kwargs)


def _existing_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("complete") else None


def _request_key(model_path: Path, recipe: Recipe, calib: dict) -> dict:
    return {"model": str(model_path), "recipe_sha256": recipe.fingerprint(), "calibration": calib}


def compress_model(
    model: str | Path,
    recipe,
    out: Path,
    *,
    calibration: str | Path | None = None,
    num_samples: int | None = None,
    seq_len: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Compress ``model`` with ``recipe`` into the HF folder ``out``; return ``out``.

    ``calibration``/``num_samples``/``seq_len`` override the recipe's calibration section, which
    overrides the paper's per-method defaults. A complete ``out`` made from the same model,
    recipe and calibration settings is returned as is; a different one needs ``overwrite``.
    """
    started = time.time()
    cpu_started = time.process_time()
    rss_start = _rss_bytes()
    recipe = load_recipe(recipe)
    out = Path(out).expanduser().resolve()
    model_path = _resolve_model(model)

    cal_cfg = recipe.calibration
    default_n, default_len = recipe.default_calibration_shape()
    n_samples = num_samples or cal_cfg.num_samples or default_n
    window = seq_len or cal_cfg.seq_len or default_len
    source = calibration if calibration is not None else cal_cfg.source
    cal_seed = seed if seed != 0 or cal_cfg.seed is None else cal_cfg.seed
    request = _request_key(
        model_path, recipe,
        {"source": str(source) if source is not None else None, "num_samples": n_samples if recipe.needs_calibration else 0,
         "seq_len": window if recipe.needs_calibration else 0, "seed": cal_seed},
    )

    existing = _existing_manifest(out)
    if existing is not None and existing.get("request") == request:
        log.info("%s already holds this checkpoint; nothing to do", out)
        return out
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not owned_dirs.is_owned(out):  # with or without overwrite: never replace what we did not make
            raise UserError(f"{out} exists and is not a checkpoint acbench made (no {owned_dirs.MARKER} "
                            "marker); choose another --out or move it away")
        if not overwrite:
            raise UserError(f"{out} holds a checkpoint made with other settings; pass overwrite (--overwrite) to replace it")

    # ---- checks before any work ------------------------------------------------------------
    shapes, config = _meta_shapes(model_path, recipe.ignore)
    if not shapes:
        raise UserError(f"{model_path}: no Linear layers to compress")
    prune, quant = recipe.prune_step, recipe.quant_step
    _check_pattern(prune, shapes)
    group_size, group_note = (_resolve_group_size(quant, shapes) if quant else (None, None))
    max_pos = getattr(config, "max_position_embeddings", None)
    ppl_cfg = recipe.perplexity
    for what, length in (("calibration seq_len", window if recipe.needs_calibration else 0), ("perplexity seq_len", ppl_cfg.seq_len if ppl_cfg.enabled else 0)):
        if max_pos and length > max_pos:
            raise UserError(f"{what} {length} exceeds the model's max_position_embeddings {max_pos}")

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    needs_text = recipe.needs_calibration or ppl_cfg.enabled
    calib_windows = held = None
    text_info = None
    if needs_text:
        budget = max(n_samples * window, ppl_cfg.windows * ppl_cfg.seq_len) * 8
        text_source = load_text(source, budget)
        text_info = describe(text_source)
        calib_tokens, heldout_tokens = tokenize_source(tokenizer, text_source)
        if recipe.needs_calibration:
            calib_windows = draw_windows(calib_tokens, n_samples, window, cal_seed)
        if ppl_cfg.enabled:
            held = heldout_windows(heldout_tokens, ppl_cfg.windows, ppl_cfg.seq_len)
    warnings = []
    if group_note:
        warnings.append(group_note)
    if quant is not None and not quant.symmetric and quant.bits == 4:
        log.warning(NOTE_ASYM)
        warnings.append(NOTE_ASYM)
    if calib_windows is not None and calib_windows.info["overlapping_windows"]:
        warnings.append("calibration text shorter than num_samples x seq_len: windows overlap")
    if text_info and text_info.get("fallback_reason"):
        warnings.append(f"calibration fell back to acbench's own sample text: {text_info['fallback_reason']}")

    # ---- work --------------------------------------------------------------------------------
    import torch
    from transformers import AutoModelForCausalLM

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = owned_dirs.mark(Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent)))
    stage_times = {}
    previous_sigterm = _sigterm_as_exit()
    try:
        rss_before_model = _rss_bytes()
        dtype = "auto" if recipe.dtype == "auto" else getattr(torch, recipe.dtype)
        t0 = time.time()
        try:
            net = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
        except Exception as exc:  # corrupt or mismatched weights: any loader error
            raise UserError(f"could not load the model from {model_path}: {type(exc).__name__}: {str(exc)[:300]}") from None
        fp32_bytes = sum(p.numel() for p in net.parameters()) * 4
        stage_times["load"] = time.time() - t0
        ppl_before = ppl_after = None
        if held is not None:
            t0 = time.time()
            ppl_before = perplexity(net, held.windows, "perplexity before")
            stage_times["perplexity_before"] = time.time() - t0

        masks = None
        re_zeroed = 0
        if prune is not None:
            t0 = time.time()
            if prune.method == "magnitude":
                magnitude_prune(_target_linears(net, recipe.ignore), prune.sparsity, prune.nm)
            else:
                _oneshot(net, [_prune_modifier(prune, recipe.ignore)], calib_windows.windows, awq=False)
            stage_times[prune.method] = time.time() - t0
            if quant is not None:
                masks = {name: (mod.weight == 0).clone() for name, mod in _target_linears(net, recipe.ignore).items()}
        if quant is not None:
            t0 = time.time()
            windows = calib_windows.windows if quant.method in ("gptq", "awq") else None
            _oneshot(net, _quant_modifiers(quant, group_size, recipe.ignore), windows, awq=quant.method == "awq")
            stage_times[quant.method] = time.time() - t0
            if masks is not None:
                with torch.no_grad():
                    for name, mod in _target_linears(net, recipe.ignore).items():
                        mask = masks[name]
                        re_zeroed += int((mod.weight[mask] != 0).sum())
                        mod.weight[mask] = 0

        t0 = time.time()
        if quant is not None or prune.method != "magnitude":
            net.save_pretrained(staging, save_compressed=True)
        else:
            net.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / RECIPE_FILE).write_text(recipe.to_yaml())
        stage_times["save"] = time.time() - t0
        reapplied = masks is not None
        del net, masks

        if held is not None:
            t0 = time.time()
            reloaded = AutoModelForCausalLM.from_pretrained(staging)
            ppl_after = perplexity(reloaded, held.windows, "perplexity after")
            stage_times["perplexity_after"] = time.time() - t0
            del reloaded

        t0 = time.time()
        measured = measure_checkpoint(staging, pattern=prune.nm if prune else None, skip=tuple(recipe.ignore))
        stage_times["measure"] = time.time() - t0
        peak = _peak_rss_bytes()
        steps = []
        for step in recipe.steps:
            entry = step.model_dump(mode="json")
            if step is quant:
                entry["group_size_used"] = group_size
                entry["scheme"] = step.scheme_name
            if step.method in PRUNE_METHODS and step.method != "magnitude":
                entry["llmcompressor_mask_structure"] = _prune_modifier(step, recipe.ignore).mask_structure
            steps.append(entry)
        manifest = {
            "acbench_manifest_version": MANIFEST_VERSION,
            "complete": True,
            "request": request,
            "model": {
                "source": str(model),
                "path": str(model_path),
                "architecture": (config.architectures or [None])[0],
                "fp32_bytes": fp32_bytes,
                "dtype": recipe.dtype,
            },
            "recipe": recipe.model_dump(mode="json"),
            "recipe_sha256": recipe.fingerprint(),
            "steps": steps,
            "calibration": (
                {**(text_info or {}), **calib_windows.info} if calib_windows is not None else {"used": False}
            ),
            "heldout": ({**held.info} if held is not None else None),
            "perplexity": {"before": ppl_before, "after": ppl_after},
            "mask_reapplied_after_quantization": reapplied if quant is not None and prune is not None else None,
            "weights_rezeroed_after_quantization": re_zeroed if prune is not None and quant is not None else None,
            "versions": _versions(),
            "wall_time_s": time.time() - started,
            "cpu_time_s": time.process_time() - cpu_started,
            "stage_times_s": stage_times,
            "memory": {
                "peak_rss_bytes": peak,
                "rss_at_start_bytes": rss_start,
                "rss_before_model_bytes": rss_before_model,
                "peak_over_model_baseline_bytes": peak - rss_before_model,
                "peak_over_baseline_to_fp32_ratio": (peak - rss_before_model) / fp32_bytes,
                "note": "peak RSS is the process lifetime peak (resource.getrusage); run one compression per process to compare methods",
            },
            "measured": measured,
            "notes": [NOTES_PRUNING] if prune is not None else [],
            "warnings": warnings,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    log.info("wrote %s in %.1f s", out, time.time() - started)
    return out


def _sigterm_as_exit():
    """Turn SIGTERM into SystemExit while compressing, so the staging folder is removed on
    ``kill`` too (SIGKILL cannot be caught: then a ``.OUT.partial-*`` folder without a manifest
    stays behind, which nothing mistakes for a checkpoint). Returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, _exit)


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out``; an old ``out`` only if acbench made it."""
    owned_dirs.replace_owned_dir(staging, out, root=out.parent)
