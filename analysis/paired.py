"""The report's answer: per capability and compressed model, the paired change against the base
model on the same items, with a seeded 95 % paired-bootstrap interval and the smallest change the
base run could detect.

Per-item scores come from lm-eval's ``samples_<task>_<time>.jsonl`` logs: one JSON line per
document and filter, with ``doc_id``, ``doc_hash``, ``filter``, ``metrics`` (the task's metric
names in ``metric_list`` order) and each metric's per-item value as a top-level key. A task's
primary metric is the first name in ``metrics`` (function calling: see :func:`primary_score`);
only the primary filter ``none`` is read.

Items are paired by ``doc_id`` and must carry the same ``doc_hash`` in both runs (an item whose
document differs is left out and counted). A capability's score is the mean over its tasks of the
task's mean primary score (as in the capabilities table); its interval resamples items within
each task (a stratified bootstrap). Function calling is reported as two rows, as BFCL does: the
call categories and irrelevance apart, so that a model that never calls cannot score on the first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

PRIMARY_FILTER = "none"
LEVEL = 0.95
Z_TWO_SIDED_95 = 1.959963984540054
Z_POWER_80 = 0.8416212335729143
IRRELEVANCE_MARK = "irrelevance"


@dataclass
class TaskItems:
    """Per-item primary scores of one task in one run, keyed by ``doc_id``."""

    metric: str
    scores: dict[int, float] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)
    sample_set: bool = False


def read_item_scores(folder: Path) -> tuple[dict[str, TaskItems], list[str]]:
    """``{task: TaskItems}`` from every ``samples_*.jsonl`` in ``folder`` (or one level down) and
    notes on lines that could not be read. A later file for the same task (a resumed run) wins per
    item. ``sample_set`` is set when any document's ``acbench_data_source`` starts ``sample:``."""
    folder = Path(folder)
    tasks: dict[str, TaskItems] = {}
    notes: list[str] = []
    files = sorted(list(folder.glob("samples_*.jsonl")) + list(folder.glob("*/samples_*.jsonl")),
                   key=lambda p: p.name)
    for path in files:
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        bad = 0
        with path.open(encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                if not isinstance(row, dict) or row.get("filter", PRIMARY_FILTER) != PRIMARY_FILTER:
                    continue
                names = row.get("metrics")
                doc_id = row.get("doc_id")
                if not isinstance(names, list) or not names or not isinstance(doc_id, int):
                    bad += 1
                    continue
                metric, value = primary_score(row, names)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    bad += 1
                    continue
                items = tasks.setdefault(task, TaskItems(metric=metric))
                items.scores[doc_id] = float(value)
                items.hashes[doc_id] = str(row.get("doc_hash", ""))
                doc = row.get("doc")
                if isinstance(doc, dict) and str(doc.get("acbench_data_source", "")).startswith("sample:"):
                    items.sample_set = True
        if bad:
            notes.append(f"{path.name}: {bad} line(s) without a readable primary score left out")
    return tasks, notes


NATIVE_CALLS = "accuracy (accuracy_fixed where the chat template took the tools)"


def primary_score(row: dict, names: list) -> tuple[str, object]:
    """The headline metric of one samples line and its value: the first of ``names``, except
    for function calling, where a chat template that takes ``tools`` makes the model answer in its
    native format, which BFCL scores with a per-model handler, not the prompting decoder behind
    ``accuracy``: there the item's ``accuracy_fixed`` (our lenient decoder) counts instead
    (docs/tooluse.md)."""
    if {"accuracy", "accuracy_fixed", "tools_in_template"} <= set(names):
        return NATIVE_CALLS, row.get("accuracy_fixed" if row.get("tools_in_template") == 1 else "accuracy")
    return str(names[0]), row.get(names[0])


def pair_items(base: TaskItems, other: TaskItems) -> tuple[list[float], list[float], int]:
    """Base and compressed scores of the items both runs scored on the same document (same
    ``doc_id`` and ``doc_hash``), in ``doc_id`` order, and how many items could not be paired."""
    shared = sorted(doc for doc in base.scores.keys() & other.scores.keys()
                    if base.hashes.get(doc) == other.hashes.get(doc))
    unpaired = len(base.scores.keys() | other.scores.keys()) - len(shared)
    return [base.scores[d] for d in shared], [other.scores[d] for d in shared], unpaired


def paired_bootstrap(strata: list[tuple[list[float], list[float]]], *, resamples: int = 2000,
                     seed: int = 0, level: float = LEVEL) -> dict:
    """Paired difference of means with a percentile bootstrap interval, stratified by task.

    For strata ``t = 1..T`` with paired scores ``(b_ti, c_ti)``, ``i = 1..n_t``:
    ``diff = (1/T) * sum_t mean_i(c_ti - b_ti)``. Each of ``resamples`` replicates draws ``n_t``
    items with replacement inside every stratum (the same draw for base and compressed, so the
    pairing is kept) and recomputes ``diff``; the interval is the replicates' ``(1-level)/2`` and
    ``(1+level)/2`` quantiles. Also returned: ``base`` and ``compressed`` (the same stratified
    means), ``drop_pct = (base - compressed) / |base| * 100`` (None when base is 0), ``n`` items
    and ``excludes_zero``. Seeded: the same input gives the same interval.
    """
    import numpy as np

    strata = [(np.asarray(b, float), np.asarray(c, float)) for b, c in strata if len(b)]
    if not strata:
        raise ValueError("no paired items")
    if any(len(b) != len(c) for b, c in strata):
        raise ValueError("paired lists differ in length")
    base = float(np.mean([b.mean() for b, _ in strata]))
    compressed = float(np.mean([c.mean() for _, c in strata]))
    rng = np.random.default_rng(seed)
    replicates = np.zeros(resamples)
    for b, c in strata:
        delta = c - b
        draws = rng.integers(0, len(delta), size=(resamples, len(delta)))
        replicates += delta[draws].mean(axis=1)
    replicates /= len(strata)
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    diff = compressed - base
    return {"base": base, "compressed": compressed, "diff": diff, "low": float(low), "high": float(high),
            "drop_pct": None if base == 0 else (base - compressed) / abs(base) * 100.0,
            "n": int(sum(len(b) for b, _ in strata)), "excludes_zero": bool(low > 0 or high < 0)}


def detectable_effect(base_strata: list[list[float]]) -> float | None:
    """Smallest change of the (stratified) mean a paired comparison detects at two-sided 95 %
    with 80 % power, from the base run's per-item variance:
    ``MDE = (z_0.975 + z_0.80) * sqrt((1/T^2) * sum_t 2 * s_t^2 / n_t)``, ``s_t^2`` the sample
    variance (ddof 1) of the base scores of task ``t``. The factor 2 assumes base and compressed
    scores uncorrelated; paired items are positively correlated, so the real MDE is smaller.
    None when a task has fewer than 2 items or every base score is the same (no variance to
    estimate from: 0 would claim that any change is detectable)."""
    strata = [list(s) for s in base_strata if len(s)]
    if not strata or any(len(s) < 2 for s in strata):
        return None
    var = 0.0
    for scores in strata:
        mean = sum(scores) / len(scores)
        var += 2 * sum((x - mean) ** 2 for x in scores) / (len(scores) - 1) / len(scores)
    if var == 0:
        return None
    return (Z_TWO_SIDED_95 + Z_POWER_80) * math.sqrt(var / len(strata) ** 2)


def headline_group(task: str, capability: str) -> str:
    """The headline row a task counts in: its capability, with function calling split into the
    call categories and irrelevance (a model that never calls passes irrelevance)."""
    if capability == "function_call":
        return "function_call: irrelevance" if IRRELEVANCE_MARK in task else "function_call: calls"
    return capability


def paired_rows(items: dict[str, dict[str, TaskItems]], base: str, capability_of, *,
                resamples: int = 2000, seed: int = 0) -> tuple[list[dict], list[str]]:
    """One row per (headline group, compressed model): base and compressed scores, paired
    difference with its interval, drop %, items, MDE from the base run, and whether any task of
    the group ran on acbench's sample set. ``items``: run label -> task -> TaskItems;
    ``capability_of(task)`` names a task's capability."""
    notes: list[str] = []
    rows: list[dict] = []
    base_tasks = items.get(base, {})
    groups: dict[str, list[str]] = {}
    for task in sorted(base_tasks):
        groups.setdefault(headline_group(task, capability_of(task)), []).append(task)
    for label in (lab for lab in items if lab != base):
        for group, tasks in sorted(groups.items()):
            strata, base_only, sample, used = [], [], False, []
            for task in tasks:
                other = items[label].get(task)
                if other is None:
                    notes.append(f"{label}: no per-item scores for {task}; left out of {group}")
                    continue
                if other.metric != base_tasks[task].metric:
                    notes.append(f"{task}: primary metric {other.metric} ({label}) is not "
                                 f"{base_tasks[task].metric} (base); left out")
                    continue
                b, c, unpaired = pair_items(base_tasks[task], other)
                if unpaired:
                    notes.append(f"{task}: {unpaired} item(s) not scored on the same document by {base} "
                                 f"and {label}; left out of the pairing")
                if b:
                    strata.append((b, c))
                    base_only.append(b)
                    used.append(task)
                    sample = sample or base_tasks[task].sample_set or other.sample_set
            if not strata:
                continue
            stat = paired_bootstrap(strata, resamples=resamples, seed=seed)
            rows.append({"capability": group, "model": label, "tasks": len(used),
                         "metric": ", ".join(sorted({base_tasks[t].metric for t in used})),
                         "base": stat["base"], "compressed": stat["compressed"], "diff": stat["diff"],
                         "ci_low": stat["low"], "ci_high": stat["high"], "drop %": stat["drop_pct"],
                         "excludes 0": stat["excludes_zero"], "items": stat["n"],
                         "MDE (95 %, 80 % power)": detectable_effect(base_only),
                         "data": "sample set" if sample else "benchmark"})
    return rows, notes


def answer_table(rows: list[dict]):
    """The headline as a DataFrame, one line per capability and compressed model; the change is
    written ``diff [low, high]`` and starred where the interval excludes 0."""
    import pandas as pd

    shown = []
    for row in rows:
        mark = " *" if row["excludes 0"] else ""
        mde = row["MDE (95 %, 80 % power)"]
        shown.append({"capability": row["capability"], "model": row["model"], "base": row["base"],
                      "compressed": row["compressed"],
                      "change [95 % CI]": f"{row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]{mark}",
                      "drop %": row["drop %"], "items": row["items"],
                      "detectable change": None if mde is None else mde, "data": row["data"]})
    return pd.DataFrame(shown)


def plot_drops(rows: list[dict], png: Path) -> Path | None:
    """Small multiples, one panel per capability: each compressed model's paired change with its
    95 % interval as a bar, the base run's detectable change as a grey band around 0."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({row["capability"] for row in rows})
    cols = min(3, len(groups))
    lines = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.2 * cols, 3.0 * lines), squeeze=False, sharey=True)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, group in zip(axes.flat, groups):
        part = [row for row in rows if row["capability"] == group]
        xs = range(len(part))
        mde = next((row["MDE (95 %, 80 % power)"] for row in part if row["MDE (95 %, 80 % power)"]), None)
        if mde:
            ax.axhspan(-mde, mde, color="0.9", zorder=0, label="detectable change")
        ax.axhline(0, color="0.4", lw=0.8)
        for x, row in zip(xs, part):
            color = "tab:red" if row["excludes 0"] and row["diff"] < 0 else (
                "tab:green" if row["excludes 0"] else "tab:gray")
            ax.errorbar([x], [row["diff"]], yerr=[[row["diff"] - row["ci_low"]], [row["ci_high"] - row["diff"]]],
                        fmt="o", color=color, capsize=4)
        ax.set_xlim(-0.6, len(part) - 0.4)
        ax.set_xticks(list(xs), [row["model"] for row in part], rotation=20, ha="right", fontsize=8)
        title = group + (" (sample set)" if any(row["data"] == "sample set" for row in part) else "")
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("compressed - base (95 % CI)")
    fig.suptitle("Change against the base model on the same items, 95 % paired-bootstrap intervals "
                 "(red: a significant drop; grey band: smaller than the base run can detect)", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def answer_section(runs: dict[str, Path], base: str, capability_of, out: Path, notes: list[str]) -> dict | None:
    """The report's first section: the answer table (also ``paired.csv`` with every statistic)
    and the drop plot; None when no run has per-item samples logs (lm-eval ``--log_samples``)."""
    import pandas as pd

    items = {}
    for label, folder in runs.items():
        items[label], read_notes = read_item_scores(Path(folder))
        notes += [f"{label}: {n}" for n in read_notes]
    if not items.get(base):
        notes.append(f"no per-item samples for {base}: no paired intervals (run lm-eval with --log_samples)")
        return None
    rows, pair_notes = paired_rows(items, base, capability_of)
    notes += pair_notes
    if not rows:
        return None
    pd.DataFrame(rows).to_csv(Path(out) / "paired.csv", index=False)
    text = [f"Per capability and compressed model: change = compressed - base on the same items "
            f"(paired by doc id), with a seeded 95 % paired-bootstrap interval (resampled within each "
            f"task); * marks an interval that excludes 0. Drop % = (base - compressed) / |base| x 100. "
            f"Detectable change = the smallest change these items detect at 95 % with 80 % power, "
            f"from the base run's per-item variance. Function calling: call categories and "
            f"irrelevance apart, as BFCL reports them."]
    if any(row["data"] == "sample set" for row in rows):
        text.append("Rows marked 'sample set' ran on acbench's small sample sets, not on the benchmark.")
    png = plot_drops(rows, Path(out) / "paired_drops.png")
    return {"title": "Answer: does compression hurt each capability?", "text": text,
            "table": answer_table(rows), "images": [png] if png else []}
