"""Effective rank (ERank) of a logit matrix and Diff-eRank; numpy only.

Definition (ACBENCH.md section 7). For the logits ``L`` (n positions x V vocabulary) of one text:

* centre every column over the positions: ``C = L - mean_rows(L)``;
* L2-normalise every row: ``R_i = C_i / ||C_i||`` (a row that is zero after centring stays zero);
* ``A = R^T R / n`` (V x V), ``sigma = eig(A) / tr(A)``, drop ``sigma <= 1e-10``;
* ``H = -sum(sigma * ln sigma)``, ``ERank = exp(H)``.

``R^T R`` and the n x n Gram matrix ``R R^T`` have the same non-zero eigenvalues, so everything
here works on n x n matrices. The logger stores the *raw* Gram ``G = L L^T`` (float64) of the
logged positions; centring and normalisation are exact linear algebra on ``G``:

* centring: ``Gc = J G J`` with ``J = I - 11^T/n`` (because ``C = J L``);
* normalisation: ``K = D^-1/2 Gc D^-1/2`` with ``D = diag(Gc)`` (zero rows stay zero);
* ``R R^T / n = K / n``; the 1/n cancels in ``sigma = eig / tr``.

So the ERank from the logged Gram equals the ERank of the full logit rows of those positions, up
to floating-point rounding, and a sub-selection of positions is the principal sub-matrix of ``G``.
An undefined ERank (n = 1, or every centred row zero, e.g. all rows equal) is ``nan``.
"""

from __future__ import annotations

import numpy as np

EIG_FLOOR = 1e-10


def erank_from_spectrum(eigenvalues: np.ndarray) -> float:
    """``exp(-sum sigma ln sigma)`` with ``sigma = lambda / sum(lambda)``, ``sigma <= 1e-10`` dropped.

    Negative eigenvalues (rounding noise of a positive semi-definite matrix) are treated as zero.
    Returns ``nan`` when the trace is not positive.
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if not np.isfinite(total) or total <= 0.0:
        return float("nan")
    sigma = lam / total
    sigma = sigma[sigma > EIG_FLOOR]
    return float(np.exp(-np.sum(sigma * np.log(sigma))))


def normalized_gram(gram: np.ndarray) -> np.ndarray:
    """``R R^T`` (without the 1/n) from the raw Gram ``L L^T`` of n positions.

    Centres the columns of the underlying ``L`` (``J G J``) and normalises its rows
    (``D^-1/2 . D^-1/2``); rows whose centred norm is zero become zero rows.
    """
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"Gram matrix must be square, got shape {g.shape}")
    row_mean = g.mean(axis=1, keepdims=True)
    col_mean = g.mean(axis=0, keepdims=True)
    gc = g - row_mean - col_mean + g.mean()
    gc = (gc + gc.T) / 2.0
    diag = np.diag(gc).copy()
    # A centred row whose squared norm is rounding noise relative to the raw norms is zero.
    scale = max(float(np.max(np.abs(np.diag(g)))), np.finfo(np.float64).tiny)
    zero = diag <= scale * 1e-13
    inv = np.zeros_like(diag)
    inv[~zero] = 1.0 / np.sqrt(diag[~zero])
    return gc * inv[:, None] * inv[None, :]


def erank_from_gram(gram: np.ndarray) -> float:
    """ERank of the n positions whose raw Gram matrix ``L L^T`` is ``gram`` (see module doc)."""
    g = np.asarray(gram, dtype=np.float64)
    if g.shape[0] < 2:
        return float("nan")
    k = normalized_gram(g)
    if not np.any(np.diag(k) > 0):
        return float("nan")
    return erank_from_spectrum(np.linalg.eigvalsh(k))


def erank_from_logits(logits: np.ndarray) -> float:
    """ERank of a full logit matrix (n x V) via its n x n Gram matrix."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (positions x vocabulary), got shape {z.shape}")
    return erank_from_gram(z @ z.T)


def diff_erank(base: np.ndarray, compressed: np.ndarray) -> dict:
    """Diff-eRank: compressed minus base over sequences where both ERanks are defined.

    ``base`` and ``compressed`` are per-sequence ERanks in the same order. Returns the mean of
    each, the mean of the per-sequence differences and how many sequences were used.
    """
    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(compressed, dtype=np.float64)
    if b.shape != c.shape:
        raise ValueError("base and compressed ERank arrays must have the same shape")
    ok = np.isfinite(b) & np.isfinite(c)
    if not ok.any():
        return {"erank_base": float("nan"), "erank_compressed": float("nan"),
                "diff_erank": float("nan"), "n_sequences": 0}
    return {
        "erank_base": float(b[ok].mean()),
        "erank_compressed": float(c[ok].mean()),
        "diff_erank": float((c[ok] - b[ok]).mean()),
        "n_sequences": int(ok.sum()),
    }
