"""Logit logs of fixed token windows (corpus text) from an in-process model; used by
``acbench logits`` and the paper analyses. Same record format as ``acbench-hf``'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def log_windows(model, windows: list[list[int]], out: Path, *, meta: dict, task: str, top_k: int = 64,
                temperatures=(1.0,), batch_size: int = 8, request_idx=None, reference: Path | None = None) -> Path:
    """Teacher-force each token window through ``model`` and log every position.

    ``meta`` is written to ``meta.json`` (plus ``top_k``, ``temperatures`` and, with a
    ``reference`` log of the base model, ``reference``/``reference_top_k``: each record then also
    holds this model's logits at the reference's top-K ids, so rank correlation is exact at
    every position). ``request_idx[i]`` (default 0) is stored with window i (its doc id is i).
    """
    import torch

    from lm_eval_acbench.models import summarize_positions

    from . import logio

    ref = logio.ReferenceLog(Path(reference)) if reference is not None else None
    meta = {**meta, "top_k": int(top_k), "temperatures": [float(t) for t in temperatures]}
    if ref is not None:
        if ref.meta.get("tokenizer_hash") != meta.get("tokenizer_hash"):
            raise ValueError(f"reference log {reference} was written with another tokenizer")
        meta.update(reference=str(reference), reference_model=ref.meta.get("model"),
                    reference_top_k=int(ref.meta["top_k"]))
    logio.write_meta(out, meta)
    writer = logio.LogWriter(out)
    device = next(model.parameters()).device
    for b in range(0, len(windows), batch_size):
        chunk = windows[b:b + batch_size]
        if len({len(w) for w in chunk}) != 1:
            raise ValueError("windows of one batch must have the same length")
        ids = torch.tensor(chunk, device=device)
        with torch.no_grad():
            logits = model(ids).logits
        for i, window in enumerate(chunk):
            d = b + i
            fields = dict(task=task, doc_id=d, request_type="corpus",
                          request_idx=0 if request_idx is None else int(request_idx[d]))
            summary = summarize_positions(logits[i], top_k, temperatures)
            positions = np.arange(len(window))
            if ref is not None:
                rec = ref.get(writer.key_for(**fields), logio.prompt_hash(window))
                if rec is not None:
                    rows = logits[i].float()

                    def at_ids(which, want, rows=rows):
                        sel = torch.as_tensor(np.asarray(which), device=rows.device)
                        return rows[sel].gather(-1, torch.as_tensor(want, device=rows.device)).cpu().numpy()

                    summary["ref_ids"], summary["ref_logits"] = logio.reference_columns(
                        rec, positions, window, (), at_ids)
            writer.add(**fields, input_ids=window, positions=positions, **summary)
        writer.flush()
    writer.close()
    return Path(out)
