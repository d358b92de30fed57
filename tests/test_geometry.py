"Tests for factornb.geometry: bad input, properties, and reference comparisons."
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from factornb.geometry import (cumulative_explained_variance, dims_at, fit_belief_regression, principal_angles,
                               subspace_overlap, random_overlap_baseline, unique_prefixes)


@pytest.mark.parametrize("bad, exc, match", [
    (lambda: cumulative_explained_variance(np.zeros(5)), ValueError, "2-d"),
    (lambda: cumulative_explained_variance(np.ones((4, 3))), ValueError, "zero variance"),
    (lambda: cumulative_explained_variance(np.full((4, 3), np.nan)), ValueError, "NaN"),
    (lambda: cumulative_explained_variance(np.eye(3), weights=[1, -1, 1]), ValueError, "weights"),
    (lambda: cumulative_explained_variance(np.eye(3), weights=[1, 1]), ValueError, "weights"),
    (lambda: dims_at(np.eye(3), threshold=1.5), ValueError, "threshold"),
    (lambda: fit_belief_regression(np.eye(4), np.ones((3, 2))), ValueError, "rows"),
    (lambda: fit_belief_regression(np.eye(4), []), ValueError, "beliefs"),
    (lambda: fit_belief_regression([["a"]], np.ones((1, 1))), TypeError, "X"),
    (lambda: principal_angles(np.eye(3), np.eye(4)), ValueError, "rows"),
    (lambda: principal_angles(np.zeros((3, 2)), np.eye(3)), ValueError, "zero"),
    (lambda: subspace_overlap(np.eye(3), np.eye(3), 4), ValueError, "k"),
    (lambda: subspace_overlap(np.eye(3), np.eye(4), 1), ValueError, "ambient"),
    (lambda: random_overlap_baseline(5, 3), ValueError, "k"),
    (lambda: random_overlap_baseline(0, 3), ValueError, "k"),
    (lambda: random_overlap_baseline(2, 5, 6), ValueError, "k2"),
    (lambda: subspace_overlap(np.eye(3), np.eye(3), 1.5), TypeError, "k: expected an int"),
    (lambda: subspace_overlap(np.eye(3), np.zeros((2, 3))), ValueError, "V2: spans only the zero vector"),
    (lambda: unique_prefixes(np.array([[1, 2], [3, 4]]), bos_token=9), ValueError, "bos_token"),
    (lambda: unique_prefixes(np.ones((2, 2))), TypeError, "integer"),
    (lambda: unique_prefixes(np.ones((2, 2), dtype=int), min_length=0), ValueError, "min_length"),
])
def test_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match): bad()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60), d=st.integers(1, 8))
def test_cev_matches_sklearn(seed, n, d):
    X = np.random.default_rng(seed).normal(size=(n, d))
    cev = cumulative_explained_variance(X)
    np.testing.assert_allclose(cev, np.pad(np.cumsum(PCA().fit(X).explained_variance_ratio_), (0, d - min(n, d)), constant_values=1.0), atol=1e-9)
    assert dims_at(X) == PCA(n_components=0.95, svd_solver="full").fit(X).n_components_   # sklearn's own dims@95


def test_torch_input_and_weights():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    np.testing.assert_allclose(cumulative_explained_variance(torch.tensor(X)), cumulative_explained_variance(X))
    w = rng.integers(1, 5, size=50)
    np.testing.assert_allclose(cumulative_explained_variance(X, w), cumulative_explained_variance(np.repeat(X, w, 0)), atol=1e-12)


def test_regression_against_sklearn_weighted():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 10))
    Y = [X[:, :3] @ rng.normal(size=(3, 3)) + rng.normal(size=(400, 3)) * 0.3, rng.normal(size=(400, 2))]
    w = rng.random(400)
    fit = fit_belief_regression(X, Y, weights=w)
    sk = LinearRegression().fit(X, np.concatenate(Y, 1), sample_weight=w)
    np.testing.assert_allclose(np.concatenate(fit.predictions, 1), sk.predict(X), atol=1e-8)
    np.testing.assert_allclose(fit.coefficients[0], sk.intercept_, atol=1e-8)
    np.testing.assert_allclose(fit.coefficients[1:], sk.coef_.T, atol=1e-8)
    assert fit["r2"] == fit.r2 and len(fit.per_factor_rmse) == 2 and len(fit.per_factor_r2) == 2
    assert fit.per_factor_r2[0] > 0.8 and fit.per_factor_r2[1] < 0.2
    err = np.concatenate(fit.predictions, 1) - np.concatenate(Y, 1)
    wn = w / w.sum()
    np.testing.assert_allclose(fit.rmse, np.sqrt(wn @ (err**2).mean(1)), rtol=1e-12)
    np.testing.assert_allclose(fit.per_factor_rmse[1], np.sqrt(wn @ (err[:, 3:]**2).mean(1)), rtol=1e-12)


def test_regression_single_array_and_rank_deficient():
    rng = np.random.default_rng(3)
    B = rng.random((300, 3)); B /= B.sum(1, keepdims=True)
    X = np.concatenate([B @ rng.normal(size=(3, 5)), np.zeros((300, 2))], 1)   # rank-deficient design
    fit = fit_belief_regression(X, B)
    assert fit.r2 > 1 - 1e-9 and fit.rmse < 1e-7 and len(fit.predictions) == 1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), m=st.integers(1, 4))
def test_principal_angles_match_scipy(seed, k, m):
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(9, k)), rng.normal(size=(9, m))
    np.testing.assert_allclose(principal_angles(A, B), np.sort(subspace_angles(A, B)), atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k1=st.integers(1, 5), k2=st.integers(1, 5))
def test_overlap_is_squared_cosines_over_sqrt_k1_k2(seed, k1, k2):
    "subspace_overlap = sum of cos^2 of the principal angles / sqrt(k1 k2), from scipy's angles; k=None: all rows."
    rng = np.random.default_rng(seed)
    V1, V2 = rng.normal(size=(k1, 12)), rng.normal(size=(k2, 12))
    cos2 = np.cos(subspace_angles(V1.T, V2.T)) ** 2
    np.testing.assert_allclose(subspace_overlap(V1, V2), cos2.sum() / np.sqrt(k1 * k2), atol=1e-10)
    k = min(k1, k2)
    np.testing.assert_allclose(subspace_overlap(V1, V2, k), np.mean(np.cos(subspace_angles(V1[:k].T, V2[:k].T)) ** 2), atol=1e-10)
    np.testing.assert_allclose(subspace_overlap(V1, V1), 1.0, atol=1e-12)


def test_overlap_of_nested_and_rank_deficient_subspaces():
    Q = np.linalg.qr(np.random.default_rng(5).normal(size=(10, 4)))[0].T          # 4 orthonormal rows in R^10
    np.testing.assert_allclose(subspace_overlap(Q[:1], Q[:3]), 1 / np.sqrt(3), atol=1e-12)   # a line inside a 3-dim subspace
    np.testing.assert_allclose(subspace_overlap(Q[:2], Q), np.sqrt(2 / 4), atol=1e-12)
    doubled = np.concatenate([Q[:2], Q[:2] + Q[1:3]])                              # 4 rows spanning 3 dimensions
    np.testing.assert_allclose(subspace_overlap(doubled, Q[:3]), 1.0, atol=1e-12)
    np.testing.assert_allclose(subspace_overlap(torch.tensor(Q[:2]), Q[:2].T.copy().T), 1.0, atol=1e-12)


def test_random_overlap_baseline_unequal_dimensions():
    "The mean overlap of random 2- and 6-dim subspaces of R^30 is sqrt(12)/30, within 4 standard errors of 2000 draws."
    rng = np.random.default_rng(6)
    ov = np.array([subspace_overlap(rng.normal(size=(2, 30)), rng.normal(size=(6, 30))) for _ in range(2000)])
    assert abs(ov.mean() - random_overlap_baseline(2, 30, 6)) < 4 * ov.std() / np.sqrt(len(ov))
    assert random_overlap_baseline(3, 120) == 3 / 120


def test_unique_prefixes_brute_force():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 2, size=(50, 5))
    rows, lengths = unique_prefixes(t, min_length=2)
    assert lengths.min() == 2
    brute = {tuple(s[:l]) for s in t for l in range(2, 6)}
    assert {tuple(t[r, :l]) for r, l in zip(rows, lengths)} == brute and len(rows) == len(brute)
    for r, l in zip(rows, lengths):   # first occurrence
        assert r == min(i for i in range(50) if tuple(t[i, :l]) == tuple(t[r, :l]))
    rows_t, _ = unique_prefixes(torch.tensor(t), min_length=2)
    np.testing.assert_array_equal(rows_t, rows)
