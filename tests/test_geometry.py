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
    assert np.all(np.diff(cev) >= -1e-12) and abs(cev[-1] - 1) < 1e-12
    assert 1 <= dims_at(X) <= d


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
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5))
def test_overlap_equals_mean_squared_cosine(seed, k):
    rng = np.random.default_rng(seed)
    V1, V2 = rng.normal(size=(k, 12)), rng.normal(size=(k + 1, 12))
    ov = subspace_overlap(V1, V2, k)
    np.testing.assert_allclose(ov, np.mean(np.cos(principal_angles(V1[:k].T, V2[:k].T)) ** 2), atol=1e-10)
    assert 0 <= ov <= 1 + 1e-12
    np.testing.assert_allclose(subspace_overlap(V1, V1, k), 1.0, atol=1e-12)


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
