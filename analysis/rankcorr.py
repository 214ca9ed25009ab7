"""Top-k ranking correlation between base and compressed logits; numpy/scipy only.

For one position with base logits ``b`` and compressed logits ``c`` over the vocabulary:
``S`` = the k tokens with the largest *base* logits (ties broken by the smaller token id);
``tau`` = Kendall tau-b and ``rho`` = Spearman rank correlation between ``b[S]`` and ``c[S]``.

Kendall tau-b: with ``P = sum_{i<j} sign(x_i - x_j) sign(y_i - y_j)``, ``n0 = k(k-1)/2`` and
``n1``/``n2`` the pairs tied in x/y, ``tau_b = P / sqrt((n0 - n1)(n0 - n2))``.
Spearman: the Pearson correlation of the average ranks (ties share their mean rank).
Both are ``nan`` when a side is constant (undefined), exactly as scipy defines them.

From logs we only have each model's top-K ids and logits. ``b[S]`` is always known (k <= K);
``c[S]`` is known exactly when every token of ``S`` is among the compressed model's top-K;
other positions are not scored and :func:`gather_compressed` reports them as not covered.
"""

from __future__ import annotations

import numpy as np


def order_topk(ids: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by descending logit, ties by ascending token id. Shapes (P, K)."""
    ids = np.asarray(ids)
    logits = np.asarray(logits)
    # lexsort sorts by the last key first: primary = -logit, secondary = id
    order = np.lexsort((ids, -logits.astype(np.float64)), axis=-1)
    return np.take_along_axis(ids, order, -1), np.take_along_axis(logits, order, -1)


def topk_from_full(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids and values of full rows (P, V), in the order of :func:`order_topk`."""
    z = np.asarray(logits)
    ids = np.broadcast_to(np.arange(z.shape[-1]), z.shape)
    order = np.lexsort((ids, -z.astype(np.float64)), axis=-1)[..., :k]
    return order, np.take_along_axis(z, order, -1)


def gather_compressed(base_ids: np.ndarray, comp_ids: np.ndarray, comp_logits: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Compressed logits at the base's token ids, per row.

    ``base_ids`` (P, k); ``comp_ids``/``comp_logits`` (P, K). Returns ``(values (P, k), covered
    (P,))`` where ``covered`` says every base token was found in the compressed top-K; values of
    uncovered entries are nan.
    """
    base_ids = np.asarray(base_ids)
    comp_ids = np.asarray(comp_ids)
    match = base_ids[:, :, None] == comp_ids[:, None, :]  # (P, k, K)
    found = match.any(-1)
    where = match.argmax(-1)
    values = np.take_along_axis(np.asarray(comp_logits, dtype=np.float64), where, -1)
    values = np.where(found, values, np.nan)
    return values, found.all(-1)


def kendall_tau_b(x: np.ndarray, y: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Kendall tau-b per row of x, y (P, k); nan where undefined. Rows go in cache-sized chunks."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = x.shape[-1]
    iu, ju = np.triu_indices(k, 1)
    n0 = iu.size
    out = np.empty(x.shape[0])
    for a in range(0, x.shape[0], chunk):
        xs, ys = x[a:a + chunk], y[a:a + chunk]
        sx = np.sign(xs[:, iu] - xs[:, ju])
        sy = np.sign(ys[:, iu] - ys[:, ju])
        n1 = np.count_nonzero(sx == 0, axis=1)
        n2 = np.count_nonzero(sy == 0, axis=1)
        num = np.einsum("ij,ij->i", sx, sy)
        den = np.sqrt((n0 - n1).astype(np.float64) * (n0 - n2))
        with np.errstate(invalid="ignore", divide="ignore"):
            part = num / den
        part[den == 0] = np.nan
        out[a:a + chunk] = part
    return np.clip(out, -1.0, 1.0)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..k per row, ties get their average rank."""
    from scipy.stats import rankdata

    return rankdata(np.asarray(x, dtype=np.float64), method="average", axis=-1)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho per row of x, y (P, k); nan where a row is constant."""
    rx = average_ranks(x)
    ry = average_ranks(y)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(rx * rx, axis=1) * np.sum(ry * ry, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sum(rx * ry, axis=1) / den
    out[den == 0] = np.nan
    return np.clip(out, -1.0, 1.0)


def topk_rank_correlation(base_ids: np.ndarray, base_logits: np.ndarray,
                          comp_ids: np.ndarray, comp_logits: np.ndarray,
                          ks=(3, 10, 20)) -> dict:
    """Kendall tau-b and Spearman rho over the base's top-k tokens, per position and per k.

    Inputs are the logged top-K of each model (P, K), any order. Returns
    ``{k: {"tau": (P,), "rho": (P,), "covered": (P,) bool}}``; tau/rho are nan where not covered.
    """
    b_ids, b_val = order_topk(base_ids, base_logits)
    out = {}
    for k in ks:
        if k > b_ids.shape[1]:
            raise ValueError(f"k={k} exceeds the logged top-K ({b_ids.shape[1]})")
        s = b_ids[:, :k]
        x = b_val[:, :k]
        y, covered = gather_compressed(s, comp_ids, comp_logits)
        tau = np.full(len(s), np.nan)
        rho = np.full(len(s), np.nan)
        if covered.any():
            tau[covered] = kendall_tau_b(x[covered], y[covered])
            rho[covered] = spearman_rho(x[covered], y[covered])
        out[k] = {"tau": tau, "rho": rho, "covered": covered}
    return out
