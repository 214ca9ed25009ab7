"""Energy of a position and distances between two energy distributions; numpy/scipy only.

Energy (ACBENCH.md section 7): ``E(x_t) = -T * logsumexp_v(z_{t,v} / T)``. The logger records the
full-vocabulary ``logsumexp(z/T)`` for each temperature it was given (T = 1 by default), so the
energy at a logged temperature is exact; other temperatures cannot be recovered from a top-K log
and are refused by the analysis.
"""

from __future__ import annotations

import numpy as np


def logsumexp_rows(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``logsumexp(z / T)`` per row, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def energy_from_lse(lse: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``E = -T * lse`` where ``lse = logsumexp(z / T)``."""
    return -float(temperature) * np.asarray(lse, dtype=np.float64)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy per row of full logits."""
    return energy_from_lse(logsumexp_rows(logits, temperature), temperature)


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between two empirical distributions: ``integral |F_a - F_b|``."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``sup_x |F_a(x) - F_b(x)|``."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)


def energy_shift(base: np.ndarray, compressed: np.ndarray) -> dict:
    """Scalar summary of a base/compressed pair of energy samples (finite values only)."""
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(compressed, dtype=np.float64)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        nan = float("nan")
        return {"energy_base_mean": nan, "energy_compressed_mean": nan, "mean_shift": nan,
                "wasserstein1": nan, "ks": nan, "n_base": int(a.size), "n_compressed": int(b.size)}
    return {
        "energy_base_mean": float(a.mean()),
        "energy_compressed_mean": float(b.mean()),
        "mean_shift": float(b.mean() - a.mean()),
        "wasserstein1": wasserstein1(a, b),
        "ks": ks_statistic(a, b),
        "n_base": int(a.size),
        "n_compressed": int(b.size),
    }
