"""Calibration and held-out text: where it comes from, and how it becomes token windows.

Sources: ``wikitext2`` (WikiText-2 raw train; held-out = its test split), ``c4`` (one train
shard; held-out = one validation shard), ``pile-val``, ``open_platypus`` (held-out = the tail of
the text), ``acbench-sample`` (our own text shipped in the package, for offline use), or a local
``.txt`` / ``.jsonl`` file (field ``text``; the last tenth of its tokens is held out).

Windows of ``seq_len`` tokens are drawn with a seeded RNG: disjoint chunks when the text is long
enough, otherwise overlapping windows (reported, with a warning). A text shorter than one
window is an error. The token matrix is hashed so a manifest pins the exact calibration input.
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
SAMPLE_SOURCE = "acbench-sample"
DEFAULT_SOURCE = "wikitext2"
HELDOUT_FRACTION = 0.1


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


@dataclass
class TokenWindows:
    windows: list[list[int]]
    info: dict = field(default_factory=dict)


def _hub_text(name: str, char_budget: int) -> tuple[str, str, str]:
    """(calibration text, held-out text, description) of a hub data set; needs the network."""
    from datasets import load_dataset

    if name == "wikitext2":
        train = load_dataset("wikitext", "wikitext-2-raw-v1", split="train")
        test = load_dataset("wikitext", "wikitext-2-raw-v1", split="test")
        return "\n\n".join(train["text"]), "\n\n".join(test["text"]), "wikitext/wikitext-2-raw-v1 train (held-out: test)"
    if name == "c4":
        train = load_dataset("allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"}, split="train")
        val = load_dataset("allenai/c4", data_files={"validation": "en/c4-validation.00000-of-00008.json.gz"}, split="validation")
        return (
            _take(train["text"], char_budget),
            _take(val["text"], char_budget // 4),
            "allenai/c4 en train shard 0 (held-out: validation shard 0)",
        )
    if name == "pile-val":
        ds = load_dataset("mit-han-lab/pile-val-backup", split="validation")
        return _take(ds["text"], char_budget), "", "mit-han-lab/pile-val-backup validation (held-out: tail)"
    if name == "open_platypus":
        ds = load_dataset("garage-bAInd/Open-Platypus", split="train")
        texts = [f"{r['instruction']}\n{r['output']}" for r in ds]
        return _take(texts, char_budget), "", "garage-bAInd/Open-Platypus train (held-out: tail)"
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
    if path.suffix.lower() in (".jsonl", ".json"):
        texts = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
    return path.read_text(encoding="utf-8")


def load_text(source: str | Path | None, char_budget: int) -> TextSource:
    """Resolve a calibration source; the default falls back to our sample text when offline."""
    requested = str(source) if source is not None else DEFAULT_SOURCE
    key = requested.lower().replace("_", "-")
    if key in ("wikitext2", "wikitext-2", "wikitext"):
        key = "wikitext2"
    if key == "open-platypus":
        key = "open_platypus"
    if key == SAMPLE_SOURCE:
        return TextSource(
            SAMPLE_SOURCE, SAMPLE_TRAIN.read_text(encoding="utf-8"), SAMPLE_HELDOUT.read_text(encoding="utf-8"),
            f"acbench's own sample text ({SAMPLE_TRAIN.name}; held-out: {SAMPLE_HELDOUT.name})", requested,
        )
    if key in HUB_SOURCES:
        try:
            hub.available()  # offline mode at once when unreachable: cached copies still load
            calib, heldout, detail = _hub_text(key, char_budget)
        except Exception as exc:  # offline, hub error, missing data set
            if source is not None:
                raise UserError(f"calibration source {requested!r} could not be loaded: {type(exc).__name__}: {exc}") from None
            reason = f"{requested} unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
            log.warning("calibration: %s; using acbench's own sample text instead", reason)
            fallback = load_text(SAMPLE_SOURCE, char_budget)
            fallback.requested = requested
            fallback.fallback_reason = reason
            return fallback
        return TextSource(key, calib, heldout, detail, requested, heldout_from_tail=not heldout)
    path = Path(requested).expanduser()
    if not path.exists():
        raise UserError(
            f"calibration source {requested!r} is neither a file nor one of {', '.join(HUB_SOURCES + (SAMPLE_SOURCE,))}"
        )
    text = _local_text(path)
    return TextSource(str(path.resolve()), text, "", f"local file {path.resolve()} (held-out: last tenth)", requested, heldout_from_tail=True)


def tokens_sha256(windows: list[list[int]]) -> str:
    import numpy as np

    arr = np.asarray(windows, dtype=np.int64)
    digest = hashlib.sha256(f"{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def tokenize_source(tokenizer, text_source: TextSource) -> tuple[list[int], list[int]]:
    """Token ids of the calibration part and of the held-out part (disjoint)."""
    calib = tokenizer(text_source.calibration_text, add_special_tokens=False, verbose=False)["input_ids"]
    if text_source.heldout_from_tail:
        cut = int(len(calib) * (1 - HELDOUT_FRACTION))
        return calib[:cut], calib[cut:]
    heldout = tokenizer(text_source.heldout_text, add_special_tokens=False, verbose=False)["input_ids"] if text_source.heldout_text else []
    return calib, heldout


def draw_windows(tokens: list[int], num_samples: int, seq_len: int, seed: int, *, what: str = "calibration") -> TokenWindows:
    """``num_samples`` windows of ``seq_len`` tokens, seeded; disjoint when the text allows."""
    total = len(tokens)
    if total < seq_len:
        raise UserError(
            f"{what} text too short: {total} tokens, but one window needs seq_len={seq_len}; "
            "give a longer text or a smaller --seq-len"
        )
    rng = random.Random(seed)
    chunks = total // seq_len
    if chunks >= num_samples:
        starts = [i * seq_len for i in sorted(rng.sample(range(chunks), num_samples))]
        overlapping = False
    else:
        starts = [rng.randrange(0, total - seq_len + 1) for _ in range(num_samples)]
        overlapping = True
        log.warning(
            "%s text has %d tokens, fewer than %d x %d: drawing overlapping windows",
            what, total, num_samples, seq_len,
        )
    windows = [tokens[s : s + seq_len] for s in starts]
    info = {
        "num_samples": num_samples,
        "seq_len": seq_len,
        "seed": seed,
        "tokens_available": total,
        "overlapping_windows": overlapping,
        "tokens_sha256": tokens_sha256(windows),
    }
    return TokenWindows(windows, info)


def heldout_windows(tokens: list[int], windows: int, seq_len: int) -> TokenWindows:
    """The first ``windows`` disjoint windows of the held-out text (fewer if it is short)."""
    if len(tokens) < seq_len:
        raise UserError(
            f"held-out text too short for perplexity: {len(tokens)} tokens < seq_len {seq_len}; "
            "lower perplexity.seq_len or disable perplexity"
        )
    count = min(windows, len(tokens) // seq_len)
    out = [tokens[i * seq_len : (i + 1) * seq_len] for i in range(count)]
    return TokenWindows(out, {"windows": count, "seq_len": seq_len, "tokens_sha256": tokens_sha256(out)})


def describe(text_source: TextSource) -> dict:
    info = asdict(text_source)
    for key in ("calibration_text", "heldout_text"):
        info.pop(key)
    info["calibration_chars"] = len(text_source.calibration_text)
    return info
