"""Reasoning models' thoughts, removed before any parser reads an answer.

DeepSeek-R1-Distill, Qwen3, QwQ and the like write ``<think>...</think>`` before the answer;
the numbered steps, JSON and calls inside a thought are not the answer. Every task reads a
completion through :func:`answer` (one line in its ``process_results``, the WorfBench filter and
the episode loop), which applies :func:`strip_thinking` unless the run turned it off with
``--metadata '{"strip_thinking": false}'`` (or ``ACBENCH_STRIP_THINKING=0``). The loaders stamp
the setting on every record (:func:`tag`, called by :func:`lm_eval_acbench.data.load_records`),
so the hooks, which see only the document, know it. lm-eval's samples log keeps the raw
completion in ``resps``; nothing here changes it.
"""

from __future__ import annotations

import os
from typing import Any

OPEN = "<think>"
CLOSE = "</think>"
FIELD = "acbench_strip_thinking"
SETTING = "strip_thinking"
ENV = "ACBENCH_STRIP_THINKING"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def strip_thinking(text: str) -> str:
    """The answer part of a completion.

    Rules, in order: text up to a ``</think>`` that comes before any ``<think>`` is a thought
    (chat templates such as DeepSeek-R1-Distill's open the thought in the prompt); every
    ``<think>...</think>`` block is removed wherever it stands, inside a code fence too; an
    unclosed ``<think>`` runs to the end of the text; a stray ``</think>`` is dropped. When
    something was removed, leading whitespace goes; trailing whitespace goes only when the text
    ends in a thought or in whitespace after it: the answer's own final new line stays, since
    T-Eval's reference string template needs it, as it would without a thought. A text without
    either tag is returned unchanged.
    """
    if not isinstance(text, str) or (OPEN not in text and CLOSE not in text):
        return text
    pos = 0
    first_close, first_open = text.find(CLOSE), text.find(OPEN)
    if first_close != -1 and (first_open == -1 or first_close < first_open):
        pos = first_close + len(CLOSE)
    kept = []
    tail = ""  # the text after the last thought; "" when the text ends inside one
    while True:
        start = text.find(OPEN, pos)
        if start == -1:
            tail = text[pos:]
            kept.append(tail)
            break
        kept.append(text[pos:start])
        end = text.find(CLOSE, start + len(OPEN))
        if end == -1:
            break
        pos = end + len(CLOSE)
    answer = "".join(kept).replace(CLOSE, "").lstrip()
    return answer if tail.replace(CLOSE, "").strip() else answer.rstrip()


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    from lm_eval_acbench.data import DataUnavailable

    raise DataUnavailable(f"{where} must be true or false, not {value!r}")


def enabled(metadata: dict | None) -> bool:
    """Whether thoughts are stripped: task metadata ``strip_thinking``, else ``$ACBENCH_STRIP_THINKING``,
    else yes."""
    metadata = metadata or {}
    if metadata.get(SETTING) is not None:
        return _flag(metadata[SETTING], f"metadata {SETTING}")
    if os.environ.get(ENV, "").strip():
        return _flag(os.environ[ENV], ENV)
    return True


def tag(records: list[dict], metadata: dict | None) -> list[dict]:
    """Stamp the setting in force on every record (in place); returns the records."""
    value = enabled(metadata)
    for record in records:
        record[FIELD] = value
    return records


def answer(doc: Any, text: Any) -> str:
    """The text a parser should read: ``text`` without thoughts unless ``doc`` says to keep them."""
    if not isinstance(text, str):
        return ""
    keep = isinstance(doc, dict) and doc.get(FIELD) is False
    return text if keep else strip_thinking(text)
