"""Every analysis metric against a brute-force computation on full random logit matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lm_eval_acbench.analysis import energy as en
from lm_eval_acbench.analysis import erank as er
from lm_eval_acbench.analysis import rankcorr as rc

RTOL = 1e-5


def brute_erank(logits: np.ndarray) -> float:
    """The spec's recipe literally: V x V matrix A = R^T R / n and its eigenvalues."""
    z = np.asarray(logits, dtype=np.float64)
    n = z.shape[0]
    c = z - z.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(c, axis=1, keepdims=True)
    if n < 2 or np.all(norms <= 1e-9 * max(1.0, np.abs(z).max())):
        return float("nan")
    r = np.where(norms > 1e-9 * max(1.0, np.abs(z).max()), c / np.where(norms == 0, 1, norms), 0.0)
    a = r.T @ r / n
    lam = np.linalg.eigvalsh(a)
    sigma = lam / np.trace(a)
    sigma = sigma[sigma > 1e-10]
    return float(np.exp(-np.sum(sigma * np.log(sigma))))


@pytest.mark.parametrize("n,v,scale,offset", [(2, 40, 1.0, 0.0), (7, 60, 3.0, 5.0), (16, 50, 0.5, -2.0),
                                              (30, 200, 10.0, 100.0), (64, 300, 2.0, 0.0)])
def test_erank_matches_brute_force(n, v, scale, offset):
    rng = np.random.default_rng(n * 1000 + v)
    z = rng.normal(offset, scale, size=(n, v)) + rng.normal(0, 3, size=(1, v))  # shared column part
    got = er.erank_from_logits(z)
    want = brute_erank(z)
    assert abs(got - want) <= RTOL * want
    assert 1.0 <= got <= n - 1 + 1e-9


def test_erank_low_rank_and_subselection():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 80))
    assert abs(er.erank_from_logits(z) - brute_erank(z)) <= RTOL * brute_erank(z)
    assert er.erank_from_logits(z) <= 3 + 1e-6
    g = z @ z.T  # a principal sub-matrix of the logged Gram = the ERank of those positions
    sel = np.array([0, 3, 4, 9, 12, 15])
    assert abs(er.erank_from_gram(g[np.ix_(sel, sel)]) - brute_erank(z[sel])) <= RTOL * brute_erank(z[sel])


def test_erank_edge_cases():
    rng = np.random.default_rng(2)
    row = rng.normal(size=(1, 50))
    assert np.isnan(er.erank_from_logits(row))  # n = 1
    assert np.isnan(er.erank_from_logits(np.repeat(row, 5, axis=0)))  # all rows equal: centred to 0
    # constant rows (every logit of a position the same) are fine
    z = np.vstack([np.full(50, 2.0), np.full(50, -1.0), rng.normal(size=50)])
    assert abs(er.erank_from_logits(z) - brute_erank(z)) <= RTOL * brute_erank(z)
    # two positions only: centred rows are opposite, one direction, ERank 1
    assert abs(er.erank_from_logits(rng.normal(size=(2, 30))) - 1.0) < 1e-9
    # a row equal to the mean after centring (zero row) stays zero and does not blow up
    a, b = rng.normal(size=(2, 40))
    z = np.vstack([a, b, (a + b) / 2])
    assert abs(er.erank_from_logits(z) - brute_erank(z)) <= RTOL


def test_diff_erank():
    out = er.diff_erank(np.array([3.0, 4.0, np.nan]), np.array([2.5, 3.0, 1.0]))
    assert out["n_sequences"] == 2
    assert out["diff_erank"] == pytest.approx(-0.75)
    assert out["erank_base"] == pytest.approx(3.5)


def _log_topk(z: np.ndarray, k: int):
    return rc.topk_from_full(z, k)


def brute_rank_corr(b: np.ndarray, c: np.ndarray, k: int):
    taus, rhos = [], []
    for x, y in zip(b, c):
        s = np.lexsort((np.arange(len(x)), -x))[:k]
        taus.append(stats.kendalltau(x[s], y[s]).statistic)  # tau-b
        rhos.append(stats.spearmanr(x[s], y[s]).statistic)
    return np.array(taus), np.array(rhos)


@pytest.mark.parametrize("ties", [False, True])
def test_rank_correlation_matches_scipy_when_covered(ties):
    rng = np.random.default_rng(3 + ties)
    p, v, big_k = 50, 120, 120  # K = V: every base top-k token is in the compressed top-K
    b = rng.normal(size=(p, v))
    c = b + rng.normal(scale=0.5, size=(p, v))
    if ties:
        b = np.round(b, 1)
        c = np.round(c, 1)
        c[0] = 1.0  # a constant compressed row: correlation undefined
    bi, bv = _log_topk(b, big_k)
    ci, cv = _log_topk(c, big_k)
    got = rc.topk_rank_correlation(bi, bv, ci, cv, ks=(3, 10, 20))
    for k in (3, 10, 20):
        tau, rho = brute_rank_corr(b, c, k)
        assert got[k]["covered"].all()
        np.testing.assert_array_equal(np.isnan(got[k]["tau"]), np.isnan(tau))
        np.testing.assert_array_equal(np.isnan(got[k]["rho"]), np.isnan(rho))
        ok = ~np.isnan(tau)
        np.testing.assert_allclose(got[k]["tau"][ok], tau[ok], rtol=RTOL, atol=1e-12)
        ok = ~np.isnan(rho)
        np.testing.assert_allclose(got[k]["rho"][ok], rho[ok], rtol=RTOL, atol=1e-12)


def test_rank_correlation_with_partial_coverage():
    rng = np.random.default_rng(5)
    p, v = 200, 500
    b = rng.normal(size=(p, v))
    c = b + rng.normal(scale=0.25, size=(p, v))
    bi, bv = _log_topk(b, 32)
    ci, cv = _log_topk(c, 32)
    got = rc.topk_rank_correlation(bi, bv, ci, cv, ks=(3, 20))
    for k in (3, 20):
        tau, rho = brute_rank_corr(b, c, k)
        cov = got[k]["covered"]
        # covered exactly when all of the base's top-k are in the compressed top-32
        want_cov = np.array([set(bi[i, :k]) <= set(ci[i]) for i in range(p)])
        np.testing.assert_array_equal(cov, want_cov)
        assert 0 < cov.sum() < p if k == 20 else cov.sum() > 0, cov.sum()
        np.testing.assert_allclose(got[k]["tau"][cov], tau[cov], rtol=RTOL)
        np.testing.assert_allclose(got[k]["rho"][cov], rho[cov], rtol=RTOL)
        assert np.isnan(got[k]["tau"][~cov]).all()


def test_rank_correlation_identical_and_reversed():
    rng = np.random.default_rng(6)
    b = rng.normal(size=(10, 40))
    bi, bv = _log_topk(b, 40)
    same = rc.topk_rank_correlation(bi, bv, bi, bv, ks=(10,))[10]
    assert np.allclose(same["tau"], 1.0) and np.allclose(same["rho"], 1.0)
    ri, rv = _log_topk(-b, 40)
    rev = rc.topk_rank_correlation(bi, bv, ri, rv, ks=(10,))[10]
    assert np.allclose(rev["tau"], -1.0) and np.allclose(rev["rho"], -1.0)
    with pytest.raises(ValueError):
        rc.topk_rank_correlation(bi[:, :5], bv[:, :5], ri, rv, ks=(10,))


@pytest.mark.parametrize("t", [1.0, 0.5, 2.0])
def test_energy_matches_brute_force(t):
    rng = np.random.default_rng(7)
    z = rng.normal(scale=5, size=(30, 1000)) + 50.0
    z[0] = 3.0  # a constant row: lse = 3/T + ln V
    want = np.array([-t * np.log(np.sum(np.exp((row - 50.0) / t))) - 50.0 for row in z])
    got = en.energy(z, t)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert got[0] == pytest.approx(-t * (3.0 / t + np.log(1000)), rel=1e-12)


def brute_w1(a, b):
    xs = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), xs[:-1], side="right") / len(a)
    fb = np.searchsorted(np.sort(b), xs[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(xs)))


def brute_ks(a, b):
    xs = np.concatenate([a, b])
    fa = np.array([(a <= x).mean() for x in xs])
    fb = np.array([(b <= x).mean() for x in xs])
    return float(np.max(np.abs(fa - fb)))


def test_energy_distances_match_brute_force():
    rng = np.random.default_rng(8)
    a = rng.normal(size=300)
    b = rng.normal(0.4, 1.3, size=200)
    b[:10] = a[:10]  # shared values (ties across samples)
    out = en.energy_shift(a, b)
    assert out["mean_shift"] == pytest.approx(b.mean() - a.mean(), rel=RTOL)
    assert out["wasserstein1"] == pytest.approx(brute_w1(a, b), rel=RTOL)
    assert out["ks"] == pytest.approx(brute_ks(a, b), rel=RTOL)
    same = en.energy_shift(a, a)
    assert same["wasserstein1"] == 0 and same["ks"] == 0 and same["mean_shift"] == 0
    one = en.energy_shift(np.array([1.0]), np.array([3.0]))
    assert one["wasserstein1"] == pytest.approx(2.0) and one["ks"] == 1.0
    assert np.isnan(en.energy_shift(np.array([]), b)["ks"])
