"""The needle-in-a-haystack heatmap: depth x context length, from an lm-eval samples log.

``niah_grid(samples)`` returns the score grid as data; ``draw_heatmap(grid, png)`` draws it;
``niah_heatmap(samples_path, png_path)`` does both for a ``samples_acbench_niah_*.jsonl`` file
written by ``lm_eval --log_samples``. Each logged sample's ``doc`` carries its cell
(``context_length``, ``depth_percent``); the cell's score is the logged metric (``recall`` by
default) or, for a log without it, recomputed from the response with
:mod:`lm_eval_acbench.metrics.needle`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.metrics import needle

METRICS = ("recall", "rouge1_f")


def read_samples(path: str | Path) -> list[dict]:
    """The JSON lines of a samples log (blank lines skipped); a UserError for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no samples log at {path}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number} is not valid JSON ({exc})") from exc
    return rows


def _response(sample: dict) -> str:
    filtered = sample.get("filtered_resps")
    if isinstance(filtered, list) and filtered:
        first = filtered[0]
        return first[0] if isinstance(first, list) and first else str(first)
    resps = sample.get("resps")
    if isinstance(resps, list) and resps and isinstance(resps[0], list) and resps[0]:
        return str(resps[0][0])
    return ""


def cell_scores(samples: Iterable[dict], metric: str = "recall") -> list[tuple[int, int, float]]:
    """``(length, depth, score)`` for every NIAH sample (others are skipped)."""
    if metric not in METRICS:
        raise UserError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    cells = []
    for sample in samples:
        doc = sample.get("doc") or {}
        if "context_length" not in doc or "depth_percent" not in doc:
            continue
        value = sample.get(metric)
        if not isinstance(value, (int, float)):
            value = needle.score_response(_response(sample))[metric]
        cells.append((int(doc["context_length"]), int(doc["depth_percent"]), float(value)))
    return cells


def niah_grid(samples: Iterable[dict], metric: str = "recall") -> dict:
    """The depth x length grid of :func:`lm_eval_acbench.metrics.needle.grid`, plus ``metric``."""
    cells = cell_scores(samples, metric)
    if not cells:
        raise UserError("no needle-in-a-haystack samples (docs with context_length/depth_percent)")
    out = needle.grid(cells)
    out["metric"] = metric
    out["cells"] = len(cells)
    return out


def draw_heatmap(grid: dict, png_path: str | Path, title: str | None = None) -> Path:
    """Draw the grid as a PNG (rows: depth %, top = 0; columns: context length; 0..1 colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array([[np.nan if v is None else v for v in row] for row in grid["scores"]], dtype=float)
    lengths, depths = grid["lengths"], grid["depths"]
    width = max(4.0, 0.55 * len(lengths) + 2.5)
    fig, ax = plt.subplots(figsize=(width, max(3.0, 0.4 * len(depths) + 1.5)))
    image = ax.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(lengths)), [str(v) for v in lengths], rotation=45, ha="right")
    ax.set_yticks(range(len(depths)), [str(v) for v in depths])
    ax.set_xlabel("context length (model tokens)")
    ax.set_ylabel("needle depth (%)")
    overall = grid.get("overall")
    ax.set_title(title or f"Needle in a haystack: {grid.get('metric', 'recall')}"
                 + (f" (mean {overall:.3f})" if overall is not None else ""))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path


def niah_heatmap(samples_path: str | Path, png_path: str | Path | None = None, metric: str = "recall",
                 title: str | None = None) -> dict:
    """Grid from a samples log, and the heatmap PNG when ``png_path`` is given.

    Returns the grid dict (see :func:`niah_grid`), with ``"png"`` set to the written path.
    """
    grid = niah_grid(read_samples(samples_path), metric)
    if png_path is not None:
        grid["png"] = str(draw_heatmap(grid, png_path, title))
    return grid
