"""``write_report``: base-vs-compressed tables and plots from lm-eval results and analysis outputs.

Inputs: lm-eval output folders (``results_*.json`` and ``samples_*.jsonl``, possibly nested one
level; several results files in one folder are merged, the newest winning per task) and,
optionally, an :func:`lm_eval_acbench.analysis.analyze_runs` folder. Outputs in ``out``:

* ``report.md`` with PNGs beside it, ``report.html`` (one file, images embedded as base64);
* first, the answer (:mod:`.paired`): per capability and compressed model the paired change on
  the same items with a 95 % bootstrap interval, in the report and in ``paired.csv``;
* ``scores.csv`` (task x metric x model: score, change vs base, relative drop %),
  ``capabilities.csv``, ``models.csv`` and, with an analysis, ``analysis.csv``.

Relative drop in % = ``(base - compressed) / |base| * 100`` (positive: the compressed model is
worse on a higher-is-better metric). Missing or failed cells stay blank and get a note. The ``data`` column says where each
task's data came from: the results file's ``acbench_data`` (see
``lm_eval_acbench.provenance``), else the ``acbench_data_source`` of the logged docs; a task
that ran on acbench's small sample set, not on the benchmark, is marked ``SAMPLE`` there and
gets a note.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path

CAPABILITY_OTHER = "other"


# ----------------------------------------------------------------------------- reading runs
def _run_files(folder: Path, pattern: str) -> list[Path]:
    folder = Path(folder)
    return sorted(list(folder.glob(pattern)) + list(folder.glob(f"*/{pattern}")), key=lambda p: p.name)


def load_results(folder: Path) -> tuple[dict, dict, list[str]]:
    """Merged ``results`` and ``group_subtasks`` of every results file in ``folder``; notes."""
    results, subtasks, notes = {}, {}, []
    files = _run_files(folder, "results_*.json")
    if not Path(folder).is_dir():
        return results, subtasks, [f"{folder}: folder not found"]
    if not files:
        return results, subtasks, [f"{folder}: no results_*.json"]
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"{path.name}: unreadable ({type(exc).__name__})")
            continue
        if not _is_results_file(data):
            notes.append(f"{path.name}: unreadable (not an lm-eval results file)")
            continue
        for task, metrics in (data.get("results") or {}).items():
            results[task] = metrics
        for task, metrics in (data.get("groups") or {}).items():
            results.setdefault(task, metrics)
        subtasks.update(data.get("group_subtasks") or {})
    return results, subtasks, notes


def _is_results_file(data) -> bool:
    """lm-eval's shape: ``results``/``groups`` map task -> metrics mapping; subtasks -> lists."""
    if not isinstance(data, dict):
        return False
    for key in ("results", "groups"):
        section = data.get(key) or {}
        if not isinstance(section, dict) or not all(isinstance(m, dict) for m in section.values()):
            return False
    subtasks = data.get("group_subtasks") or {}
    return isinstance(subtasks, dict) and all(isinstance(v, list) for v in subtasks.values())


def read_analysis_summary(path: Path) -> dict:
    """``summary.json`` of ``acbench analyze``, checked for every field the report reads; a
    ValueError naming the file otherwise."""
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None
    problem = _summary_problem(summary)
    if problem:
        raise ValueError(f"{path}: not an acbench analyze summary ({problem})")
    return summary


def _summary_problem(summary) -> str | None:
    if not isinstance(summary, dict):
        return f"expected a JSON object, got {type(summary).__name__}"
    for key in ("base", "settings", "pairs", "erank_per_model", "energy_files"):
        if not isinstance(summary.get(key, {}), dict):
            return f"{key} is not an object"
    for label, pair in summary.get("pairs", {}).items():
        if not isinstance(pair, dict):
            return f"pairs.{label} is not an object"
        for key, fields in (("erank", ("erank_compressed", "diff_erank")),
                            ("energy", ("mean_shift", "wasserstein1", "ks"))):
            if not isinstance(pair.get(key), dict) or any(f not in pair[key] for f in fields):
                return f"pairs.{label}.{key} lacks {', '.join(fields)}"
        if "sequences" not in pair or "positions" not in pair:
            return f"pairs.{label} lacks sequences/positions"
        corr = pair.get("rank_correlation")
        fields = ("tau_mean_over_positions", "rho_mean_over_positions", "not_covered_share")
        if not isinstance(corr, dict) or not all(
                isinstance(rc, dict) and all(f in rc for f in fields) for rc in corr.values()):
            return f"pairs.{label}.rank_correlation entries lack {', '.join(fields)}"
        if not isinstance(pair.get("overlap", {}), dict):
            return f"pairs.{label}.overlap is not an object"
        per_task = pair.get("per_task", {})
        if not isinstance(per_task, dict) or not all(
                isinstance(t, dict) and all(isinstance(t.get(f), dict) for f in
                                            ("erank", "rank_correlation", "energy", "overlap"))
                for t in per_task.values()):
            return f"pairs.{label}.per_task entries lack erank/rank_correlation/energy/overlap"
    for label, name in summary.get("energy_files", {}).items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            return f"energy_files.{label} is not a file name in the analysis folder"
    return None


def _read_analysis_file(path: Path, read):
    try:
        return read(path)
    except Exception as exc:  # pandas / numpy raise many types on a damaged file
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: "
                         f"{(str(exc).strip().splitlines() or [''])[0]})") from None


def metric_values(metrics: dict) -> dict[str, float]:
    """``{"metric,filter": value}`` without stderr, alias and non-numbers (JSON order kept)."""
    out = {}
    for name, value in metrics.items():
        if name == "alias" or "_stderr," in name or "," not in name:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[name] = float(value)
    return out


def data_sources(folder: Path) -> dict[str, set[str]]:
    """``{task: {data source strings}}`` from the results files' ``acbench_data`` and the samples logs."""
    sources: dict[str, set[str]] = {}
    for path in _run_files(folder, "results_*.json"):
        try:
            recorded = json.loads(path.read_text()).get("acbench_data") or {}
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        for task, provenance in recorded.items() if isinstance(recorded, dict) else ():
            if isinstance(provenance, dict) and provenance.get("source"):
                sources.setdefault(task, set()).add(str(provenance["source"]))
    for path in _run_files(folder, "samples_*.jsonl"):
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        found = sources.setdefault(task, set())
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if '"acbench_data_source"' not in line:
                    continue
                try:
                    doc = json.loads(line).get("doc") or {}
                except json.JSONDecodeError:
                    continue
                if isinstance(doc, dict) and doc.get("acbench_data_source"):
                    found.add(str(doc["acbench_data_source"]))
    return sources


def data_label(sources) -> str:
    """The ``data`` cell: the sources, with sample-set ones marked ``SAMPLE``."""
    return ", ".join(f"{s} (SAMPLE)" if s.startswith("sample:") else s for s in sorted(sources))


def capability_map() -> dict[str, str]:
    """Task and group names -> capability (the top folder of ``task_yamls`` they live in)."""
    from lm_eval_acbench.paths import task_dir

    root = task_dir()
    mapping = {}
    if not root.is_dir():
        return mapping
    pattern = re.compile(r"^(?:task|group):\s*([A-Za-z0-9_.\-]+)\s*$", re.M)
    for path in root.rglob("*yaml"):
        rel = path.relative_to(root).parts
        if len(rel) < 2:
            continue
        for name in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            mapping.setdefault(name, rel[0])
    return mapping


def _capability(task: str, caps: dict, subtasks: dict) -> str:
    if task in caps:
        return caps[task]
    for group, members in subtasks.items():
        if task in members and group in caps:
            return caps[group]
    return CAPABILITY_OTHER


# ----------------------------------------------------------------------------- tables
def build_tables(runs: dict[str, Path], base: str):
    """Score, capability and model tables (pandas) plus notes."""
    import pandas as pd

    caps = capability_map()
    notes: list[str] = []
    loaded = {}
    for label, folder in runs.items():
        results, subtasks, run_notes = load_results(Path(folder))
        notes += [f"{label}: {n}" for n in run_notes]
        loaded[label] = (results, subtasks, data_sources(Path(folder)))
    groups = set()
    for results, subtasks, _ in loaded.values():
        groups |= set(subtasks)
    tasks = sorted({t for results, _, _ in loaded.values() for t in results})
    others = [label for label in runs if label != base]
    rows = []
    for task in tasks:
        subtasks_all = {}
        for _, st, _ in loaded.values():
            subtasks_all.update(st)
        cap = _capability(task, caps, subtasks_all)
        metric_names = []
        for results, _, _ in loaded.values():
            for m in metric_values(results.get(task, {})):
                if m not in metric_names:
                    metric_names.append(m)
        srcs = sorted({s for _, _, ds in loaded.values() for s in ds.get(task, set())})
        if not srcs:  # a group: the sources of its subtasks
            srcs = sorted({s for _, _, ds in loaded.values() for sub in subtasks_all.get(task, [])
                           for s in ds.get(sub, set())})
        for rank, metric in enumerate(metric_names):
            row = {"capability": cap, "task": task, "is_group": task in groups, "metric": metric,
                   "primary": rank == 0, "data": data_label(srcs)}
            base_value = metric_values(loaded[base][0].get(task, {})).get(metric) if base in loaded else None
            row[f"{base}"] = base_value
            for label in others:
                value = metric_values(loaded[label][0].get(task, {})).get(metric)
                row[label] = value
                row[f"{label} change"] = None if value is None or base_value is None else value - base_value
                if value is None or base_value is None or base_value == 0:
                    row[f"{label} drop %"] = None
                else:
                    row[f"{label} drop %"] = (base_value - value) / abs(base_value) * 100.0
            rows.append(row)
            if rank == 0:
                for label in runs:
                    if row[label] is None:
                        notes.append(f"{task}: no {metric} for {label} (missing or failed run)")
    for task in tasks:
        for label, (_, _, ds) in loaded.items():
            samples = sorted(s for s in ds.get(task, set()) if s.startswith("sample:"))
            if samples:
                notes.append(f"{task} ({label}) ran on acbench's sample set ({', '.join(samples)}), "
                             "not on the benchmark: scores are a smoke test, not benchmark numbers")
    scores = pd.DataFrame(rows)
    if scores.empty:
        return scores, pd.DataFrame(), pd.DataFrame(), notes
    primary = scores[scores["primary"] & ~scores["is_group"]]
    cap_rows = []
    for cap, part in primary.groupby("capability", sort=True):
        row = {"capability": cap, "tasks": len(part)}
        group_row = scores[scores["primary"] & scores["is_group"] & (scores["task"] == f"acbench_{cap}")]
        for label in runs:
            src = group_row if not group_row.empty else part
            vals = src[label].dropna()
            row[label] = float(vals.mean()) if len(vals) and len(vals) == len(src) else None
        base_value = row.get(base)
        for label in others:
            v = row[label]
            row[f"{label} change"] = None if v is None or base_value is None else v - base_value
            row[f"{label} drop %"] = (None if v is None or not base_value else (base_value - v) / abs(base_value) * 100)
        cap_rows.append(row)
    capabilities = pd.DataFrame(cap_rows)
    model_rows = []
    for label in runs:
        vals = [r[label] for r in cap_rows if r[label] is not None]
        model_rows.append({"model": label, "capabilities scored": len(vals),
                           "mean primary score": sum(vals) / len(vals) if vals else None})
    models = pd.DataFrame(model_rows)
    if base in runs and not models.empty:
        b = models.loc[models["model"] == base, "mean primary score"].iloc[0]
        is_base = models["model"] == base
        models["change"] = [None if v is None or b is None or own else v - b
                            for v, own in zip(models["mean primary score"], is_base)]
        models["drop %"] = [None if v is None or not b or own else (b - v) / abs(b) * 100
                            for v, own in zip(models["mean primary score"], is_base)]
    return scores, capabilities, models, notes


def analysis_table(summary: dict):
    import pandas as pd

    rows = []
    base_erank = summary.get("erank_per_model", {}).get(summary.get("base", {}).get("label", "base"))
    for label, pair in summary.get("pairs", {}).items():
        row = {"model": label, "sequences": pair["sequences"], "positions": pair["positions"],
               "ERank base": base_erank, **_metric_columns(pair),
               "keys left out": _left_out(pair.get("overlap", {}))}
        rows.append(row)
    return pd.DataFrame(rows)


def _metric_columns(entry: dict) -> dict:
    """The report's columns for one analysed set of records (a pair, or one task of it):
    compressed ERank and Diff-eRank, tau / rho / coverage per k, energy shift / W1 / KS."""
    row = {"ERank": entry["erank"]["erank_compressed"], "Diff-eRank": entry["erank"]["diff_erank"]}
    for k, rc in entry["rank_correlation"].items():
        row[f"tau@{k}"] = rc["tau_mean_over_positions"]
        row[f"rho@{k}"] = rc["rho_mean_over_positions"]
        row[f"not covered@{k}"] = rc["not_covered_share"]
    e = entry["energy"]
    row.update({"energy shift": e["mean_shift"], "energy W1": e["wasserstein1"], "energy KS": e["ks"]})
    return row


def _left_out(overlap: dict) -> int:
    """Keys of either log that were not analysed: on one side only, or with different prompts."""
    return sum(int(overlap.get(k, 0) or 0) for k in ("n_only_base", "n_only_compressed", "n_different_prompt"))


def analysis_task_table(summary: dict):
    """One row per compressed model and task (``pairs.<label>.per_task``); None when the
    summary has no per-task breakdown (an older analysis)."""
    import pandas as pd

    rows = []
    for label, pair in summary.get("pairs", {}).items():
        for task, t in (pair.get("per_task") or {}).items():
            ov = t["overlap"]
            row = {"model": label, "task": task, "sequences": t.get("sequences"), "positions": t.get("positions"),
                   "ERank base": t["erank"].get("erank_base"), **_metric_columns(t),
                   "only base": ov.get("n_only_base"), "only compressed": ov.get("n_only_compressed"),
                   "different prompt": ov.get("n_different_prompt")}
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_erank(summary: dict, png: Path) -> Path:
    plt = _plt()
    per_model = {k: v for k, v in summary.get("erank_per_model", {}).items() if v is not None}
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(per_model) + 2), 3.2))
    labels = list(per_model)
    ax.bar(labels, [per_model[k] for k in labels], color=["#4c72b0"] + ["#dd8452"] * (len(labels) - 1))
    for i, k in enumerate(labels):
        ax.text(i, per_model[k], f"{per_model[k]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("mean ERank per sequence")
    ax.set_title("ERank per model")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _panels(n: int, width: float = 4.2, height: float = 3.2, sharey: bool = True):
    """One row of ``n`` panels (small multiples), at most 4 per row."""
    plt = _plt()
    cols = min(max(n, 1), 4)
    rows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), sharey=sharey, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return plt, fig, flat[:max(n, 1)]


def _save(plt, fig, png: Path) -> Path:
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def plot_rank_correlation(per_position, png: Path) -> Path:
    """Kendall tau-b (solid) and Spearman rho (dashed) against position, one panel per compressed
    model, one colour per k."""
    pairs = list(dict.fromkeys(per_position["pair"]))
    plt, fig, axes = _panels(len(pairs))
    colours = {}
    for ax, pair in zip(axes, pairs):
        for k, part in per_position[per_position["pair"] == pair].groupby("k"):
            part = part.sort_values("position")
            colour = colours.setdefault(k, f"C{len(colours)}")
            ax.plot(part["position"], part["tau_mean"], color=colour, marker=".", ms=3, label=f"tau top-{k}")
            ax.plot(part["position"], part["rho_mean"], color=colour, ls="--", lw=1, label=f"rho top-{k}")
        ax.set_title(f"{pair} vs base: top-k rank correlation", fontsize=9)
        ax.set_xlabel("position in logged window")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over sequences")
    axes[-1].legend(fontsize=7, loc="lower right", ncol=2)
    return _save(plt, fig, png)


def plot_energy_positions(frame, png: Path, base_label: str = "base") -> Path:
    """Mean energy per position, base vs compressed, one panel per compressed model."""
    pairs = list(dict.fromkeys(frame["pair"]))
    plt, fig, axes = _panels(len(pairs))
    for ax, pair in zip(axes, pairs):
        part = frame[frame["pair"] == pair].sort_values("position")
        ax.plot(part["position"], part["energy_base_mean"], label=base_label, lw=1.2)
        ax.plot(part["position"], part["energy_compressed_mean"], label=pair, lw=1.2)
        ax.set_title(f"energy vs position: {base_label} vs {pair}", fontsize=9)
        ax.set_xlabel("position")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean energy  -logsumexp(z)")
    return _save(plt, fig, png)


def _hist(ax, a, b, labels):
    import numpy as np

    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
        return
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
    ax.hist(a, bins=bins, alpha=0.55, label=labels[0], density=True)
    ax.hist(b, bins=bins, alpha=0.55, label=labels[1], density=True)
    ax.legend(fontsize=7)


def plot_energy(npzs: dict, base_label: str, png: Path) -> Path:
    """Energy histograms, base vs compressed, one panel per compressed model (``{label: npz}``)."""
    import numpy as np

    plt, fig, axes = _panels(len(npzs), sharey=False)
    for ax, (label, npz) in zip(axes, npzs.items()):
        data = np.load(npz)
        _hist(ax, np.ravel(data["base"]), np.ravel(data["compressed"]), (base_label, label))
        ax.set_title(f"energy: {base_label} vs {label}", fontsize=9)
        ax.set_xlabel("energy  -T logsumexp(z/T)")
    axes[0].set_ylabel("density")
    return _save(plt, fig, png)


def plot_energy_at_positions(npz: Path, positions, label: str, png: Path) -> Path:
    """Energy histograms at chosen positions (one panel each) from a (texts x positions) npz."""
    import numpy as np

    data = np.load(npz)
    a, b = np.asarray(data["base"], dtype=np.float64), np.asarray(data["compressed"], dtype=np.float64)
    positions = [p for p in positions if p < a.shape[1]]
    plt, fig, axes = _panels(len(positions), width=3.4, height=2.9, sharey=False)
    for ax, p in zip(axes, positions):
        _hist(ax, a[:, p], b[:, p], ("base", label))
        ax.set_title(f"position {p} (n = {int(np.isfinite(a[:, p]).sum())})", fontsize=9)
        ax.set_xlabel("energy")
    axes[0].set_ylabel("density")
    return _save(plt, fig, png)


def plot_erank_bits(rows: list[dict], png: Path, model: str = "") -> Path:
    """Mean ERank (+- std over texts) against bits: one panel for weights, one for the KV cache."""
    kinds = [k for k in ("weight", "kv") if any(r["kind"] == k for r in rows)]
    plt, fig, axes = _panels(len(kinds), width=4.0, sharey=True)
    for ax, kind in zip(axes, kinds):
        sel = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["bits"])
        x = list(range(len(sel)))
        ax.errorbar(x, [r["erank_mean"] for r in sel], yerr=[r["erank_std"] or 0 for r in sel], marker="o", capsize=3)
        for i, r in zip(x, sel):
            ax.annotate(f"{r['erank_mean']:.2f}", (i, r["erank_mean"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xticks(x, [str(r["bits"]) for r in sel])
        ax.set_xlabel(f"{'weight' if kind == 'weight' else 'KV-cache'} bits (RTN asym, group 128)")
        ax.set_title(f"ERank vs {'weight' if kind == 'weight' else 'KV-cache'} bits", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean ERank per paragraph")
    if model:
        fig.suptitle(model, fontsize=9)
    return _save(plt, fig, png)


# ----------------------------------------------------------------------------- rendering
def _cell(value, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool,)):
        return "yes" if value else ""
    if isinstance(value, float):
        if column.endswith("drop %"):
            return f"{value:+.1f}"
        if column.endswith("change") or column in ("Diff-eRank", "energy shift", "change"):
            return f"{value:+.4f}"
        return f"{value:.4f}"
    return str(value)


def _records(df):
    return [[_cell(None if _isna(v) else v, c) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)]


def _isna(v) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v))
    except TypeError:
        return False


def md_table(df) -> str:
    if df is None or df.empty:
        return "_(no data)_\n"
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in _records(df)]
    return "\n".join([head, sep, *body]) + "\n"


def html_table(df) -> str:
    if df is None or df.empty:
        return "<p><em>(no data)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in _records(df))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}")


def _render(sections: list[dict], out: Path, title: str) -> Path:
    md = [f"# {title}\n"]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        md.append(f"## {sec['title']}\n")
        body.append(f"<h2>{html.escape(sec['title'])}</h2>")
        for para in sec.get("text", []):
            md.append(para + "\n")
            body.append(f"<p>{html.escape(para)}</p>")
        if sec.get("table") is not None:
            md.append(md_table(sec["table"]))
            body.append(html_table(sec["table"]))
        for item in sec.get("items", []):
            md.append(f"- {item}")
            body.append(f"<li>{html.escape(item)}</li>")
        if sec.get("items"):
            md.append("")
        for png in sec.get("images", []):
            md.append(f"![{png.stem}]({png.name})\n")
            data = base64.b64encode(png.read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}"></p>')
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.md"


def _niah_heatmaps(runs: dict[str, Path], out: Path, notes: list[str]) -> list[Path]:
    try:
        from . import niah_heatmap
    except ImportError:
        return []
    pngs = []
    for label, folder in runs.items():
        for path in _run_files(Path(folder), "samples_*niah*.jsonl"):
            task = path.name[len("samples_"):].rsplit("_", 1)[0]
            png = out / f"niah_{_safe(label)}_{_safe(task)}.png"
            try:
                niah_heatmap.niah_heatmap(path, png, title=f"NIAH {task}: {label}")
                pngs.append(png)
            except Exception as exc:  # a bad samples log costs one heatmap, not the report
                notes.append(f"NIAH heatmap for {label}/{task} not drawn: {exc}")
    return pngs


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def analysis_sections(folder: Path, out: Path, notes: list[str], tag: str = "") -> list[dict]:
    """Report sections of one analysis folder: an ``analyze_runs`` output, or an
    ``acbench analyze --paper`` output (``summary.json`` has ``paper``)."""
    import pandas as pd

    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        notes.append(f"analysis folder {folder} has no summary.json; logit analysis left out")
        return []
    summary = read_analysis_summary(summary_path)
    if "paper" in summary:
        try:
            return [paper_section(summary, folder, out, tag)]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{summary_path}: not an acbench analyze --paper summary "
                             f"({type(exc).__name__}: {exc})") from None
    table = analysis_table(summary)
    table.to_csv(out / f"analysis{tag}.csv", index=False)
    base_label = summary.get("base", {}).get("label", "base")
    st = summary.get("settings", {})
    src = summary.get("base", {}).get("corpus") or summary.get("base", {}).get("source") or ""
    cap = f"the last {st['max_n']}" if st.get("max_n") else "all comparable logged"
    text = [f"Logit logs: base {summary.get('base', {}).get('model')} ({src}); top-K {st.get('top_k')}.",
            f"ERank: per sequence over {cap} positions (n x n Gram of the full logit rows, exact); Diff-eRank = "
            "mean(compressed - base) over sequences.",
            f"Top-k rank correlation: k = {st.get('ks')}, Kendall tau-b and Spearman rho over the base's top-k "
            "tokens, per position, mean over positions. 'not covered' = share of positions where a base top-k "
            "token was not among the compressed model's logged logits (not scored); 0 when the compressed run "
            "was logged against the base (logits_reference / --reference).",
            f"Energy: -T logsumexp(z/T) at T = {st.get('temperature')} per position; shift = compressed - base "
            "mean, W1 = Wasserstein-1, KS = two-sample Kolmogorov-Smirnov statistic."]
    images = [plot_erank(summary, out / f"analysis_erank{tag}.png")]
    per_pos = folder / "per_position.csv"
    if per_pos.is_file():
        images.append(_read_analysis_file(per_pos, lambda csv: plot_rank_correlation(
            pd.read_csv(csv), out / f"analysis_rankcorr{tag}.png")))
    energy_pos = folder / "energy_per_position.csv"
    if energy_pos.is_file():
        images.append(_read_analysis_file(energy_pos, lambda csv: plot_energy_positions(
            pd.read_csv(csv), out / f"analysis_energy_position{tag}.png", base_label)))
    npzs = {label: folder / name for label, name in summary.get("energy_files", {}).items()
            if (folder / name).is_file()}
    if npzs:
        images.append(_read_analysis_file(folder, lambda _: plot_energy(npzs, base_label,
                                                                        out / f"analysis_energy{tag}.png")))
    for label, pair in summary.get("pairs", {}).items():
        ov = pair.get("overlap", {})
        if ov.get("n_only_base") or ov.get("n_only_compressed") or ov.get("n_different_prompt"):
            notes.append(f"analysis {label}: partial overlap, {ov.get('n_common')} common keys analysed, "
                         f"{ov.get('n_only_base')} base-only, {ov.get('n_only_compressed')} compressed-only and "
                         f"{ov.get('n_different_prompt', 0)} different-prompt keys left out")
    sections = [{"title": "Logit analysis: ERank, top-k ranking correlation, Energy", "text": text, "table": table,
                 "images": images}]
    per_task = analysis_task_table(summary)
    if per_task is not None:
        per_task.to_csv(out / f"analysis_per_task{tag}.csv", index=False)
        sections.append({"title": "Logit analysis per task", "table": per_task, "text": [
            "The same metrics over each task's records alone (for real-world tasks: one record per episode "
            "step). 'only base' / 'only compressed': records logged by one model only (its episode ran "
            "longer); 'different prompt': steps both played after different actions, so not comparable; "
            "neither is analysed."]})
    return sections


def paper_section(summary: dict, folder: Path, out: Path, tag: str = "") -> dict:
    """One ``acbench analyze --paper`` result: its setting, a table and its per-position plots."""
    import pandas as pd

    name = summary["paper"]
    corpus = summary.get("corpus", {})
    setting = "; ".join(f"{k}: {v}" for k, v in summary.get("setting", {}).items())
    text = [f"Model {summary.get('model')}; text {corpus.get('source')} ({corpus.get('split')} split). "
            f"Setting: {setting}." + (f" NOTE: {corpus['note']}." if corpus.get("note") else "")]
    images = []
    if name == "erank":
        table = pd.DataFrame(summary["erank"])
        images.append(plot_erank_bits(summary["erank"], out / f"paper_erank_bits{tag}.png", Path(str(summary.get("model"))).name))
        title = "ERank vs weight and KV-cache bits (paper setting)"
    elif name == "topk":
        rows = []
        for k, c in summary["paper_curves"].items():
            rc = summary["rank_correlation"][k]
            rows.append({"k": int(k), "tau (positions 1+)": c["tau_mean_positions_1_on"],
                         "rho (positions 1+)": c["rho_mean_positions_1_on"], "tau at position 0": c["tau_position_0"],
                         "tau (all positions)": rc["tau_mean_over_positions"], "positions": rc["positions"],
                         "not covered": rc["not_covered_share"]})
        table = pd.DataFrame(rows)
        per_pos = folder / "analysis" / "per_position.csv"
        if per_pos.is_file():
            images.append(_read_analysis_file(per_pos, lambda csv: plot_rank_correlation(
                pd.read_csv(csv), out / f"paper_topk_positions{tag}.png")))
        title = "Top-k ranking correlation, fp32 vs NF4 (paper setting)"
    else:
        e = summary["energy"]
        table = pd.DataFrame([{"texts": summary["n_texts"], "positions": summary["n_positions"],
                               "energy base": e["energy_base_mean"], "energy NF4": e["energy_compressed_mean"],
                               "energy shift": e["mean_shift"], "energy W1": e["wasserstein1"], "energy KS": e["ks"]}])
        per_pos = folder / "energy_per_position.csv"
        if per_pos.is_file():
            images.append(_read_analysis_file(per_pos, lambda csv: plot_energy_positions(
                pd.read_csv(csv), out / f"paper_energy_positions{tag}.png")))
        if (folder / "energy_nf4.npz").is_file():
            images.append(_read_analysis_file(folder / "energy_nf4.npz", lambda npz: plot_energy_at_positions(
                npz, summary["setting"].get("histogram_positions", [0]), "nf4", out / f"paper_energy_histograms{tag}.png")))
        title = "Energy per position, fp32 vs NF4 (paper setting)"
    return {"title": title, "text": text, "table": table, "images": images}


def write_report(runs: dict, out: Path, *, base: str | None = None, analysis_dir=None) -> Path:
    """Write the report for ``runs`` (label -> lm-eval output folder); return ``report.md``.

    ``base`` names the base model's label (default: ``"base"`` if present, else the first run).
    ``analysis_dir``: one folder or a list, each an ``analyze_runs`` or ``analyze --paper`` output.
    """
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {str(k): Path(v) for k, v in runs.items()}
    if not runs and analysis_dir is None:
        raise ValueError("nothing to report: no runs and no analysis folder")
    if base is None:
        base = "base" if "base" in runs else (next(iter(runs)) if runs else "base")
    if runs and base not in runs:
        raise ValueError(f"base label {base!r} is not among the runs ({', '.join(runs)})")
    sections: list[dict] = []
    notes: list[str] = []
    if runs:
        scores, capabilities, models, table_notes = build_tables(runs, base)
        notes += table_notes
        others = [label for label in runs if label != base]
        intro = (f"Base: **{base}**" + (f"; compressed: {', '.join(others)}" if others else "")
                 + ". Change = compressed - base; drop % = (base - compressed) / |base| x 100.")
        from .paired import answer_section

        caps, subtasks = capability_map(), {}
        for folder in runs.values():
            subtasks.update(load_results(Path(folder))[1])
        answer = answer_section(runs, base, lambda task: _capability(task, caps, subtasks), out, notes)
        if answer:
            sections.append(answer)
        sections.append({"title": "Models", "text": [intro], "table": models})
        sections.append({"title": "Capabilities (mean of each task's primary metric)", "table": capabilities})
        shown = scores.drop(columns=["primary", "is_group"]) if not scores.empty else scores
        sections.append({"title": "Tasks", "table": shown})
        if not scores.empty:
            scores.to_csv(out / "scores.csv", index=False)
            capabilities.to_csv(out / "capabilities.csv", index=False)
            models.to_csv(out / "models.csv", index=False)
        niah = _niah_heatmaps(runs, out, notes)
        if niah:
            sections.append({"title": "Needle in a haystack", "images": niah})
    if analysis_dir is not None:
        folders = [analysis_dir] if isinstance(analysis_dir, (str, Path)) else list(analysis_dir)
        for i, folder in enumerate(folders):
            sections.extend(analysis_sections(Path(folder), out, notes, "" if i == 0 else f"_{i}"))
    sections.append({"title": "Notes", "items": notes or ["none"]})
    return _render(sections, out, "ACBench report")
