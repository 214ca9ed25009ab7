"""``analyze_runs``: ERank, top-k ranking correlation and Energy of compressed vs base logit logs.

Streams the logs shard by shard (a small cache of decoded shards), so memory does not grow with
the log except for the per-position energies (8 bytes per position and model, kept because
the Wasserstein-1 distance and the KS statistic need every value) and one row per sequence.

Runs are lined up by record key (``logio.make_key``: task, document, request, and for episode
steps the episode and step). They are refused (:class:`RunMismatch`) when the tokenizers differ,
when a key's prompt differs (different input token ids), or when keys are missing on either side,
unless ``allow_partial=True``, in which case only the common keys with the same prompt are
analysed and the summary says how many were left out (multi-turn episodes of two models diverge
once their answers differ: later steps see other prompts).

Within a record pair, positions past the prompt (the positions that chose generated tokens) are
compared only while both models generated the same tokens (``logio.comparable_positions``).
For top-k rank correlation the compressed model's logits at the base's top-k ids come from the
compressed log's ``ref_ids``/``ref_logits`` when it was logged against this base (then every
position is covered), else from its own top-K (positions where a base top-k token is outside it
are not scored and counted in ``not_covered_share``).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import energy as en
from . import erank as er
from . import logio
from . import rankcorr as rc

DEFAULT_KS = (3, 10, 20)


class RunMismatch(ValueError):
    """Two logit logs that cannot be compared; the message says which keys differ."""


def _fmt_keys(keys, limit: int = 5) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


class _ShardCache:
    def __init__(self, folder: Path, meta: dict, size: int = 3) -> None:
        self.folder = Path(folder)
        self.n_t = len(meta["temperatures"])
        self.top_k = int(meta["top_k"])
        self.size = size
        self._cache: OrderedDict[str, list] = OrderedDict()

    def get(self, shard: str, row: int) -> dict:
        if shard not in self._cache:
            self._cache[shard] = logio.load_shard(self.folder / shard, self.n_t, self.top_k)
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(shard)
        return self._cache[shard][row]


def match_runs(base: Path, comp: Path, *, allow_partial: bool = False, label: str = "compressed"):
    """Check two logs line up; return (meta_b, meta_c, common index frame, overlap report)."""
    meta_b, meta_c = logio.read_meta(base), logio.read_meta(comp)
    if meta_b.get("tokenizer_hash") != meta_c.get("tokenizer_hash"):
        raise RunMismatch(
            f"{label}: different tokenizers (base {meta_b.get('tokenizer')!r} vs {meta_c.get('tokenizer')!r}); "
            "logits of different vocabularies cannot be compared")
    ib = logio.read_index(base).drop_duplicates("key", keep="first")
    ic = logio.read_index(comp).drop_duplicates("key", keep="first")
    if ib.empty:
        raise RunMismatch(f"base log {base} holds no records")
    merged = ib.merge(ic, on="key", how="outer", suffixes=("_b", "_c"), indicator=True)
    only_b = merged.loc[merged["_merge"] == "left_only", "key"].tolist()
    only_c = merged.loc[merged["_merge"] == "right_only", "key"].tolist()
    both = merged[merged["_merge"] == "both"]
    differ = both.loc[both["prompt_hash_b"] != both["prompt_hash_c"], "key"].tolist()
    if differ and not allow_partial:
        raise RunMismatch(f"{label}: {len(differ)} keys have different prompts (input token ids): "
                          f"{_fmt_keys(differ)} (pass allow_partial / --allow-partial to analyse the "
                          "keys with the same prompt)")
    both = both[both["prompt_hash_b"] == both["prompt_hash_c"]]
    if (only_b or only_c) and not allow_partial:
        parts = []
        if only_b:
            parts.append(f"{len(only_b)} keys only in the base log: {_fmt_keys(only_b)}")
        if only_c:
            parts.append(f"{len(only_c)} keys only in {label}: {_fmt_keys(only_c)}")
        raise RunMismatch(f"{label}: runs do not match; " + "; ".join(parts)
                          + " (pass allow_partial / --allow-partial to analyse the common keys)")
    if both.empty:
        raise RunMismatch(f"{label}: no common keys with the base log")
    overlap = {"n_common": int(len(both)), "n_only_base": len(only_b), "n_only_compressed": len(only_c),
               "n_different_prompt": len(differ), "only_base_keys": sorted(only_b)[:20],
               "only_compressed_keys": sorted(only_c)[:20], "different_prompt_keys": sorted(differ)[:20]}
    return meta_b, meta_c, both, overlap, _overlap_by_task(merged)


def _overlap_by_task(merged) -> dict[str, dict]:
    """The overlap counts of :func:`match_runs`, per task (the base's task name, else the
    compressed log's)."""
    task = merged["task_b"].where(merged["_merge"] != "right_only", merged["task_c"]).fillna("")
    same = merged["prompt_hash_b"] == merged["prompt_hash_c"]
    out: dict[str, dict] = {}
    for name in sorted(set(task)):
        sel = task == name
        kind = merged.loc[sel, "_merge"]
        both = kind == "both"
        out[str(name)] = {"n_common": int((both & same[sel]).sum()), "n_only_base": int((kind == "left_only").sum()),
                          "n_only_compressed": int((kind == "right_only").sum()),
                          "n_different_prompt": int((both & ~same[sel]).sum())}
    return out


def _temperature_column(meta: dict, temperature: float, which: str) -> int:
    temps = [float(t) for t in meta["temperatures"]]
    for i, t in enumerate(temps):
        if math.isclose(t, temperature, rel_tol=1e-9):
            return i
    raise RunMismatch(f"{which} log has logsumexp only at T in {temps}, not T={temperature}; energy at other "
                      "temperatures cannot be recovered from a top-K log (log it with logits_temperatures)")


def _cap(positions: np.ndarray, max_n: int | None) -> np.ndarray:
    return positions if not max_n or len(positions) <= max_n else positions[-max_n:]


def analyze_pair(base: Path, comp: Path, *, label: str, ks=DEFAULT_KS, max_n: int | None = None,
                 temperature: float = 1.0, allow_partial: bool = False, erank_cache: dict | None = None):
    """Stream one base/compressed pair. Returns (summary dict, per-sequence rows, per-position
    rows, energies (base, compressed))."""
    meta_b, meta_c, common, overlap, overlap_by_task = match_runs(base, comp, allow_partial=allow_partial,
                                                                  label=label)
    tb = _temperature_column(meta_b, temperature, "base")
    tc = _temperature_column(meta_c, temperature, label)
    max_k = max(ks)
    if max_k > int(meta_b["top_k"]):
        raise RunMismatch(f"k={max_k} exceeds the base log's top-K ({meta_b['top_k']})")
    cache_b = _ShardCache(base, meta_b)
    cache_c = _ShardCache(comp, meta_c)
    erank_cache = {} if erank_cache is None else erank_cache
    common = common.sort_values(["shard_b", "row_b"])
    seq_rows, e_base, e_comp = [], [], []
    acc = {k: np.zeros((4, 0)) for k in ks}  # per window position: tau_sum, tau_n, rho_sum, rho_n
    e_acc = np.zeros((3, 0))  # per window position: base energy sum, compressed energy sum, n
    totals = {k: {"covered": 0, "positions": 0} for k in ks}
    n_positions = 0
    n_ref = 0
    # per task: ERanks, energies, and per k [tau sum, tau n, rho sum, rho n, covered, positions]
    by_task: dict[str, dict] = {}
    with _one_blas_thread():
        for shard_b, group in common.groupby("shard_b", sort=False):
            items = []
            for row_b, shard_c, row_c, key in zip(group["row_b"], group["shard_c"], group["row_c"], group["key"]):
                rb = cache_b.get(shard_b, int(row_b))
                rcm = cache_c.get(shard_c, int(row_c))
                pos, ib, ic = logio.comparable_positions(rb["positions"], rb["generated_ids"], rcm["positions"],
                                                         rcm["generated_ids"], len(rb["input_ids"]))
                if pos.size == 0:
                    continue
                c_ids, c_val = rcm["topk_ids"][ic], rcm["topk_logits"][ic]
                if "ref_ids" in rcm:  # logged at the base's top-K ids: exact at every position
                    c_ids = np.concatenate([c_ids, rcm["ref_ids"][ic]], axis=1)
                    c_val = np.concatenate([c_val, rcm["ref_logits"][ic]], axis=1)
                    n_ref += 1
                # ERank over the (capped) common positions: principal sub-matrix of each raw Gram
                cap_pos = _cap(pos, max_n)
                sel_b, sel_c = ib[-cap_pos.size:], ic[-cap_pos.size:]
                ck = (key, tuple(cap_pos.tolist()))
                if ck not in erank_cache:
                    erank_cache[ck] = er.erank_from_gram(rb["gram"][np.ix_(sel_b, sel_b)])
                items.append({
                    "key": key, "task": rb["task"], "n": int(pos.size), "n_erank": int(cap_pos.size),
                    "erank_b": erank_cache[ck], "erank_c": er.erank_from_gram(rcm["gram"][np.ix_(sel_c, sel_c)]),
                    "b_ids": rb["topk_ids"][ib], "b_val": rb["topk_logits"][ib],
                    "c_ids": c_ids, "c_val": c_val,
                    "eb": en.energy_from_lse(rb["lse"][ib, tb], temperature),
                    "ec": en.energy_from_lse(rcm["lse"][ic, tc], temperature)})
            if not items:
                continue
            # one vectorised rank-correlation call per shard, split back per record
            width = max(it["c_ids"].shape[1] for it in items)
            corr = rc.topk_rank_correlation(np.concatenate([it["b_ids"] for it in items]),
                                            np.concatenate([it["b_val"] for it in items]),
                                            np.concatenate([_pad_ids(it["c_ids"], width) for it in items]),
                                            np.concatenate([_pad_vals(it["c_val"], width) for it in items]), ks=ks)
            offset = 0
            for it in items:
                n = it["n"]
                n_positions += n
                tacc = by_task.setdefault(it["task"], {"erank": [], "eb": [], "ec": [],
                                                       "k": {k: np.zeros(6) for k in ks}})
                tacc["erank"].append((it["erank_b"], it["erank_c"]))
                tacc["eb"].append(it["eb"])
                tacc["ec"].append(it["ec"])
                row = {"pair": label, "key": it["key"], "task": it["task"], "n_positions": n,
                       "n_erank": it["n_erank"], "erank_base": it["erank_b"], "erank_compressed": it["erank_c"]}
                for k in ks:
                    tau = corr[k]["tau"][offset:offset + n]
                    rho = corr[k]["rho"][offset:offset + n]
                    cov = corr[k]["covered"][offset:offset + n]
                    totals[k]["covered"] += int(cov.sum())
                    totals[k]["positions"] += int(cov.size)
                    row[f"tau_{k}"] = _nanmean(tau)
                    row[f"rho_{k}"] = _nanmean(rho)
                    if acc[k].shape[1] < n:  # index within the logged window
                        acc[k] = np.pad(acc[k], ((0, 0), (0, n - acc[k].shape[1])))
                    ft, fr = np.isfinite(tau), np.isfinite(rho)
                    tacc["k"][k] += (np.where(ft, tau, 0.0).sum(), ft.sum(), np.where(fr, rho, 0.0).sum(),
                                     fr.sum(), cov.sum(), cov.size)
                    acc[k][0, :n] += np.where(ft, tau, 0.0)
                    acc[k][1, :n] += ft
                    acc[k][2, :n] += np.where(fr, rho, 0.0)
                    acc[k][3, :n] += fr
                offset += n
                if e_acc.shape[1] < n:
                    e_acc = np.pad(e_acc, ((0, 0), (0, n - e_acc.shape[1])))
                e_acc[0, :n] += it["eb"]
                e_acc[1, :n] += it["ec"]
                e_acc[2, :n] += 1
                e_base.append(it["eb"])
                e_comp.append(it["ec"])
                row["energy_base_mean"] = float(it["eb"].mean())
                row["energy_compressed_mean"] = float(it["ec"].mean())
                seq_rows.append(row)
    e_base = np.concatenate(e_base) if e_base else np.zeros(0)
    e_comp = np.concatenate(e_comp) if e_comp else np.zeros(0)
    pos_rows = []
    for k in ks:
        for j in range(acc[k].shape[1]):
            s = acc[k][:, j]
            pos_rows.append({"pair": label, "k": k, "position": j,
                             "tau_mean": s[0] / s[1] if s[1] else float("nan"), "tau_n": int(s[1]),
                             "rho_mean": s[2] / s[3] if s[3] else float("nan"), "rho_n": int(s[3])})
    energy_rows = [{"pair": label, "position": j, "n": int(e_acc[2, j]),
                    "energy_base_mean": e_acc[0, j] / e_acc[2, j], "energy_compressed_mean": e_acc[1, j] / e_acc[2, j],
                    "mean_shift": (e_acc[1, j] - e_acc[0, j]) / e_acc[2, j]}
                   for j in range(e_acc.shape[1]) if e_acc[2, j]]
    eb_all = np.array([r["erank_base"] for r in seq_rows])
    ec_all = np.array([r["erank_compressed"] for r in seq_rows])
    rank_summary = {}
    for k in ks:
        taus = np.array([r[f"tau_{k}"] for r in seq_rows])
        rhos = np.array([r[f"rho_{k}"] for r in seq_rows])
        tot = totals[k]
        w_tau, n_tau, w_rho, n_rho = acc[k].sum(axis=1)
        rank_summary[str(k)] = {
            "tau_mean_over_sequences": _nanmean(taus), "rho_mean_over_sequences": _nanmean(rhos),
            "tau_mean_over_positions": w_tau / n_tau if n_tau else float("nan"),
            "rho_mean_over_positions": w_rho / n_rho if n_rho else float("nan"),
            "positions": tot["positions"],
            "not_covered_share": 1 - tot["covered"] / tot["positions"] if tot["positions"] else float("nan"),
        }
    summary = {
        "label": label, "path": str(comp), "model": meta_c.get("model"), "overlap": overlap,
        "positions": int(n_positions), "sequences": len(seq_rows),
        "sequences_logged_at_base_topk": int(n_ref),
        "erank": er.diff_erank(eb_all, ec_all), "rank_correlation": rank_summary,
        "energy": en.energy_shift(e_base, e_comp),
    }
    summary["per_task"] = _per_task(by_task, overlap_by_task, ks)
    summary["_energy_per_position"] = energy_rows
    return summary, seq_rows, pos_rows, (e_base, e_comp)


def _per_task(by_task: dict, overlap_by_task: dict, ks) -> dict[str, dict]:
    """The pair's metrics over each task's records alone (as the pair's over all), with the
    task's overlap: e.g. how many steps of a task's episodes were compared at all."""
    out = {}
    for task in sorted(set(by_task) | set(overlap_by_task)):
        acc = by_task.get(task, {"erank": [], "eb": [], "ec": [], "k": {k: np.zeros(6) for k in ks}})
        pairs = np.array(acc["erank"], dtype=np.float64).reshape(-1, 2)
        rank = {}
        for k in ks:
            w_tau, n_tau, w_rho, n_rho, covered, positions = acc["k"][k]
            rank[str(k)] = {"tau_mean_over_positions": w_tau / n_tau if n_tau else float("nan"),
                            "rho_mean_over_positions": w_rho / n_rho if n_rho else float("nan"),
                            "positions": int(positions),
                            "not_covered_share": 1 - covered / positions if positions else float("nan")}
        eb = np.concatenate(acc["eb"]) if acc["eb"] else np.zeros(0)
        ec = np.concatenate(acc["ec"]) if acc["ec"] else np.zeros(0)
        out[task] = {"sequences": len(pairs), "positions": int(eb.size),
                     "erank": er.diff_erank(pairs[:, 0], pairs[:, 1]), "rank_correlation": rank,
                     "energy": en.energy_shift(eb, ec),
                     "overlap": overlap_by_task.get(task, {"n_common": 0, "n_only_base": 0,
                                                           "n_only_compressed": 0, "n_different_prompt": 0})}
    return out


def _pad_ids(ids: np.ndarray, width: int) -> np.ndarray:
    return np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=-1)


def _pad_vals(vals: np.ndarray, width: int) -> np.ndarray:
    return np.pad(np.asarray(vals, dtype=np.float64), ((0, 0), (0, width - vals.shape[1])), constant_values=np.nan)


def _one_blas_thread():
    """Small eigenproblems run fastest on one BLAS thread (threads only add contention);
    uses threadpoolctl when it is installed, else leaves the settings alone."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _nanmean(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def analyze_runs(base: Path, compressed: dict, out: Path, *, ks=DEFAULT_KS, max_n: int | None = None,
                 temperature: float = 1.0, allow_partial: bool = False, base_label: str = "base") -> Path:
    """Analyse every compressed log against the base log; write ``out`` and return it.

    ``out`` receives ``summary.json`` (machine-readable: per pair ERank/Diff-eRank, rank
    correlation per k with the share of positions not covered by the compressed top-K, energy
    mean shift / Wasserstein-1 / KS, and the key overlap), ``per_sequence.csv``,
    ``per_position.csv`` (mean tau/rho per k and position in the logged window) and
    ``energy_per_position.csv`` (mean base/compressed energy per position in the logged window)
    and ``energy_<label>.npz`` (the paired base/compressed energies, for the histograms).
    """
    import pandas as pd

    base = Path(base)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ks = tuple(sorted({int(k) for k in ks}))
    meta_b = logio.read_meta(base)
    summaries, seq_frames, pos_frames, energy_frames = {}, [], [], []
    erank_cache: dict = {}
    for label, path in compressed.items():
        summary, seq_rows, pos_rows, (eb, ec) = analyze_pair(
            base, Path(path), label=label, ks=ks, max_n=max_n, temperature=temperature,
            allow_partial=allow_partial, erank_cache=erank_cache)
        energy_frames.append(pd.DataFrame(summary.pop("_energy_per_position")))
        summaries[label] = summary
        seq_frames.append(pd.DataFrame(seq_rows))
        pos_frames.append(pd.DataFrame(pos_rows))
        np.savez_compressed(out / f"energy_{_safe(label)}.npz", base=eb.astype(np.float32),
                            compressed=ec.astype(np.float32))
    result = {
        "base": {"label": base_label, "path": str(base), "model": meta_b.get("model"),
                 "tokenizer": meta_b.get("tokenizer"), "source": meta_b.get("source"),
                 "corpus": meta_b.get("corpus")},
        "settings": {"ks": list(ks), "max_n": max_n, "temperature": temperature,
                     "allow_partial": allow_partial, "top_k": meta_b.get("top_k")},
        "pairs": summaries,
        "erank_per_model": {base_label: next(iter(summaries.values()))["erank"]["erank_base"] if summaries else None,
                            **{label: s["erank"]["erank_compressed"] for label, s in summaries.items()}},
        "energy_files": {label: f"energy_{_safe(label)}.npz" for label in summaries},
    }
    (out / "summary.json").write_text(json.dumps(_json_safe(result), indent=2, sort_keys=False))
    if seq_frames:
        pd.concat(seq_frames, ignore_index=True).to_csv(out / "per_sequence.csv", index=False)
        pd.concat(pos_frames, ignore_index=True).to_csv(out / "per_position.csv", index=False)
        pd.concat(energy_frames, ignore_index=True).to_csv(out / "energy_per_position.csv", index=False)
    return out


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
