"""Values made safe for lm-eval's samples log (``--log_samples``), whatever a model wrote.

lm-eval writes each sample with ``json.dumps(sample, default=handle_non_serializable,
ensure_ascii=False)`` into a UTF-8 file and hashes the doc the same way. That fails on: keys
that are not str/int/float/bool/None (``default`` is never asked about keys), lone surrogates
(UTF-8 cannot encode them), integers over Python's int-to-string limit (4,300 digits), and
structures deeper than the recursion limit. :func:`log_safe` returns a copy without any of
these, so the sample line is always written and the whole run's results are never lost.

Rules: strings keep their text, with lone surrogates replaced by U+FFFD and anything over
:data:`MAX_LOG_CHARS` cut (with a note of the original length); bytes are decoded as UTF-8
with replacement; floats that are NaN or infinite become the strings ``"nan"``, ``"inf"``,
``"-inf"``; integers over :data:`MAX_INT_BITS` bits become ``"<int of N bits>"``; mapping keys
become strings (after the same cleaning); tuples, sets and lists become lists; anything deeper
than :data:`MAX_LOG_DEPTH` levels becomes ``"<nested deeper than 32 levels>"``; other objects
their ``repr`` (cleaned and cut like a string).
"""

from __future__ import annotations

import math
from typing import Any

MAX_LOG_CHARS = 20_000
MAX_LOG_DEPTH = 32
MAX_INT_BITS = 10_000  # about 3,000 decimal digits, well inside Python's 4,300-digit limit
MAX_LOG_ITEMS = 10_000


def safe_text(text: str, limit: int = MAX_LOG_CHARS) -> str:
    """``text`` cut to ``limit`` characters (noting the full length) and encodable as UTF-8."""
    if len(text) > limit:
        text = f"{text[:limit]}...[cut: {len(text)} characters]"
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # Paired surrogates become their character; lone ones U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _scalar(value: Any, limit: int = MAX_LOG_CHARS) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= MAX_INT_BITS else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return safe_text(value, limit)
    if isinstance(value, (bytes, bytearray)):
        return safe_text(bytes(value[: 4 * limit]).decode("utf-8", "replace"), limit)
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return _scalar(value.item(), limit)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        return safe_text(repr(value), limit)
    except Exception as exc:  # a repr that raises: say so rather than fail the log line
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def log_safe(value: Any, limit: int = MAX_LOG_CHARS, depth: int = 0) -> Any:
    """A copy of ``value`` that lm-eval's sample encoder always writes (rules in the module doc);
    ``limit`` is the longest string kept whole."""
    if depth >= MAX_LOG_DEPTH:
        return f"<nested deeper than {MAX_LOG_DEPTH} levels>"
    if isinstance(value, dict):
        out = {}
        for number, (key, item) in enumerate(value.items()):
            if number >= MAX_LOG_ITEMS:
                out["..."] = f"[cut: {len(value)} entries]"
                break
            safe_key = _scalar(key, limit)
            out[safe_key if isinstance(safe_key, str) else str(safe_key)] = log_safe(item, limit, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out_list = [log_safe(item, limit, depth + 1) for item in items[:MAX_LOG_ITEMS]]
        if len(items) > MAX_LOG_ITEMS:
            out_list.append(f"[cut: {len(items)} items]")
        return out_list
    return _scalar(value, limit)
