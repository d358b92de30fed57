"Tests for factornb.factored: bad input, property tests, and reference comparisons the notebook does not cover."
import itertools, math
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from factornb.ghmm import GHMM, mess3, bloch_walk, random_hmm, zero_one_random
from factornb.factored import (FactoredProcess, kron_all, paper_process, paper_chain_process, paper_noisy_process,
                               affine_dimension, mess3_chain_variants, _torch_belief_update)

torch.set_num_threads(1)
M3 = mess3_chain_variants()


def test_paper_constructors():
    """The documented contracts: 432 composite tokens (BOS = 432), factor 0 most significant, 242 joint and 10 factored
    dimensions; in the chain the parent's token changes the child's law; the noisy generator's states move as if clean."""
    p, c, n = paper_process(), paper_chain_process(), paper_noisy_process(0.1)
    for proc in (p, c, n):
        assert (proc.vocab_size, proc.bos_token, proc.num_factors) == (432, 432, 5)
        assert (proc.joint_dimension, proc.factored_dimension) == (242, 10)
    assert list(p.radix) == [144, 48, 16, 4, 1]
    t = c.sample(20, 6, seed=0)
    law = c.next_token_probs_from_factors(c.factor_predictive_vectors(t))[:, -1].reshape(20, 3, 3, 48).sum(-1)   # P(t0, t1)
    cond = law / law.sum(2, keepdims=True)                                          # P(t1 | t0)
    assert np.abs(cond[:, 0] - cond[:, 1]).max() > 0.05                             # measured: 0.14
    indep = p.sample(20, 6, seed=0)
    law = p.next_token_probs_from_factors(p.factor_predictive_vectors(indep))[:, -1].reshape(20, 3, 3, 48).sum(-1)
    np.testing.assert_allclose(law / law.sum(2, keepdims=True), np.broadcast_to(law.sum(1, keepdims=True) / law.sum((1, 2), keepdims=True), law.shape), atol=1e-12)
    noisy_tokens = n.sample(50, 6, seed=0)
    for a, b in zip(n.factor_predictive_vectors(noisy_tokens), p.factor_predictive_vectors(noisy_tokens)):
        np.testing.assert_array_equal(a, b)


def test_single_ghmm_is_a_factored_process():
    g = mess3()
    p = FactoredProcess([g])
    t = p.sample(50, 6, seed=0)
    np.testing.assert_allclose(p.factor_predictive_vectors(t)[0], g.predictive_vectors(t), atol=1e-14)
    np.testing.assert_allclose(p.optimal_loss(5), g.optimal_loss(5), atol=1e-14)
    assert p.vocab_size == 3 and p.bos_token == 3


@pytest.mark.parametrize("bad, exc, match", [
    (lambda: FactoredProcess([]), ValueError, "factors"),
    (lambda: FactoredProcess("mess3"), ValueError, "factors"),
    (lambda: FactoredProcess([mess3(), 3]), TypeError, r"factors\[1\]"),
    (lambda: FactoredProcess([mess3()], noise=2.0), ValueError, "noise"),
    (lambda: FactoredProcess([mess3()], noise=-1e-9), ValueError, "noise"),
    (lambda: FactoredProcess([mess3()], noise=float("nan")), ValueError, "noise"),
    (lambda: FactoredProcess([mess3()], noise_model="blur"), ValueError, "noise_model"),
    (lambda: FactoredProcess([mess3()], variants=[None]), ValueError, "chain"),
    (lambda: FactoredProcess([mess3(), mess3()], structure="chain", variants=[None, None, None]), ValueError, "variants"),
    (lambda: FactoredProcess([mess3(), mess3()], structure="chain", variants=[M3, None]), ValueError, r"variants\[0\]"),
    (lambda: FactoredProcess([mess3(), mess3()], structure="chain", variants=[None, [mess3(), mess3()]]), ValueError, "control_maps"),
    (lambda: FactoredProcess([mess3(), mess3()], structure="chain", variants=[None, [mess3(0.2, 0.5), mess3()]],
                             control_maps=[None, [0, 1, 1]]), ValueError, "variant 0"),
    (lambda: FactoredProcess([mess3(), bloch_walk()], structure="chain", variants=[None, [bloch_walk(), mess3()]],
                             control_maps=[None, [0, 1, 1]]), ValueError, r"variants\[1\]\[1\]"),
    (lambda: FactoredProcess([mess3(), mess3()], structure="chain", noise=0.1, noise_model="channel"), ValueError, "channel"),
])
def test_bad_construction(bad, exc, match):
    with pytest.raises(exc, match=match): bad()


def test_bad_tokens():
    p = paper_process()
    with pytest.raises(ValueError, match="BOS"): p.factor_tokens(np.array([[432, 1]]))
    with pytest.raises(ValueError, match="composite vocabulary"): p.joint_predictive_vectors(np.array([[500]]))
    with pytest.raises(ValueError, match="composite vocabulary"): p.factor_predictive_vectors(torch.tensor([[-2, 0]]))
    with pytest.raises(TypeError, match="integer"): p.factor_predictive_vectors(np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"): p.factor_tokens(np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(TypeError, match="n: expected an int"): p.sample_torch(2.5, 3)
    with pytest.raises(ValueError, match="length"): p.sample(3, -1)
    with pytest.raises(ValueError, match="factor_tokens"): p.composite_tokens([np.zeros(3, dtype=int)] * 4)


def test_zero_probability_sequence_is_refused():
    p = FactoredProcess([zero_one_random(), mess3()])
    bad = p.composite_tokens([np.array([[0, 0, 0]]), np.array([[0, 1, 2]])])
    with pytest.raises(ValueError, match="probability zero"): p.joint_predictive_vectors(bad)
    with pytest.raises(ValueError, match="probability zero at position 2 .token 0., in factor 0"): p.factor_predictive_vectors(bad)


def test_torch_and_numpy_tokens_agree_and_types():
    p = paper_chain_process()
    g = torch.Generator().manual_seed(1)
    t = p.sample_torch(20, 8, generator=g)
    assert t.dtype == torch.int64 and t.shape == (20, 8) and t.device.type == "cpu"
    assert int(t.min()) >= 0 and int(t.max()) < 432
    a, b = p.factor_predictive_vectors(t), p.factor_predictive_vectors(t.numpy())
    for x, y in zip(a, b):
        assert x.dtype == np.float64 and x.shape == (20, 8, 3)
        np.testing.assert_array_equal(x, y)
    toks, ft = p.sample_torch(10, 4, generator=torch.Generator().manual_seed(2), return_factor_tokens=True)
    for i, f in enumerate(p.factor_tokens(toks)): np.testing.assert_array_equal(f, ft[i].numpy())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_factors=st.integers(1, 3))
def test_kronecker_identity_random_factors(seed, n_factors):
    "Independent random HMM factors: joint filter == kron of factor filters == explicit Kronecker GHMM."
    rng = np.random.default_rng(seed)
    factors = [random_hmm(int(rng.integers(2, 4)), int(rng.integers(2, 4)), seed=int(rng.integers(1e6))) for _ in range(n_factors)]
    p = FactoredProcess(factors)
    t = p.sample(30, 5, seed=seed)
    joint = p.joint_predictive_vectors(t)
    np.testing.assert_allclose(kron_all(p.factor_predictive_vectors(t)), joint, atol=1e-10)
    np.testing.assert_allclose(p.kronecker_ghmm().predictive_vectors(t), joint, atol=1e-10)
    np.testing.assert_allclose(p.optimal_loss(4), p.kronecker_ghmm().optimal_loss(4), atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(eps=st.floats(0.0, 1.0))
def test_noise_laws_sum_to_one_and_marginals(eps):
    p = FactoredProcess([mess3(), bloch_walk()], noise=eps)
    words = np.array(list(itertools.product(range(p.vocab_size), repeat=2)))
    np.testing.assert_allclose(np.exp(p.log_prob(words)).sum(), 1.0, atol=1e-12)
    c = FactoredProcess([mess3(), bloch_walk()], noise=eps, noise_model="channel")
    np.testing.assert_allclose(np.exp(c.log_prob(words)).sum(), 1.0, atol=1e-12)
    joint = c.joint_predictive_vectors(words)
    # the marginals are normalised factor beliefs: eta_i @ w_i = 1
    np.testing.assert_allclose(c.factor_marginals(joint)[0].sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(c.factor_marginals(joint)[1] @ c.factors[1].normalizing_eigenvector, 1.0, atol=1e-12)


def test_noise_one_is_uniform():
    p = FactoredProcess([mess3(), bloch_walk()], noise=1.0)
    t = p.sample(20000, 3, seed=0)
    se = math.sqrt((1 / 12) * (11 / 12) / t.size)          # every token is an independent uniform draw
    assert abs(np.bincount(t.ravel(), minlength=12) / t.size - 1 / 12).max() < 5 * se
    np.testing.assert_allclose(p.optimal_loss(3), math.log(12), atol=1e-12)


def test_chain_optimal_loss_against_exact_msp():
    p = FactoredProcess([mess3(), mess3()], structure="chain", variants=[None, M3])
    exact = p.kronecker_ghmm().optimal_loss(4)
    est, se = p.optimal_loss(4, n_samples=20_000, max_exact_words=9, return_stderr=True)
    np.testing.assert_allclose(est[:2], exact[:2], atol=1e-10)
    assert (np.abs(est[2:] - exact[2:]) < 4 * se[2:]).all()


def test_factorization_kl_is_total_correlation():
    p = paper_chain_process()
    t = p.sample(200, 6, seed=3)
    law = p.next_token_probs_from_factors(p.factor_predictive_vectors(t))
    np.testing.assert_allclose(law, p.next_token_probs(p.joint_predictive_vectors(t)), atol=1e-12)
    marg = p.factor_marginal_laws(law)
    H = lambda q: -(q * np.log(q)).sum(-1)
    np.testing.assert_allclose(p.factorization_kl(law), sum(H(m) for m in marg) - H(law), atol=1e-10)
    indep = paper_process()
    law0 = indep.next_token_probs_from_factors(indep.factor_predictive_vectors(indep.sample(50, 4, seed=1)))
    assert np.abs(indep.factorization_kl(law0)).max() < 1e-12


def test_chain_factor_filter_is_the_direct_recursion():
    "A chain factor's beliefs (chapter 00's filter on the pairs k*V + x) equal the recursion with each step's own variant."
    c = paper_chain_process()
    t = c.sample(100, 6, seed=4)
    ft, got = c.factor_tokens(t), c.factor_predictive_vectors(t)
    for i in (1, 3, 4):
        eta, w = np.broadcast_to(c.factors[i].initial_state, (100, 3)), c.factors[i].normalizing_eigenvector
        for s in range(6):
            k = np.asarray(c.control_maps[i])[ft[i - 1][:, s]]
            eta = np.stack([eta[j] @ c.variants[i][k[j]].transition_matrices[ft[i][j, s]] for j in range(100)])
            eta = eta / (eta @ w)[:, None]
            np.testing.assert_allclose(got[i][:, s], eta, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_torch_update_matches_numpy_update(seed):
    "The sampler's torch update and chapter 00's NumPy update, on the same beliefs and (variant, token) pairs."
    c = paper_chain_process()
    beliefs = c.factor_predictive_vectors(c.sample(64, 5, seed=seed))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):    # float32 (CUDA's default): ~10 float32 eps
        for i, tab in enumerate(c._torch_tables("cpu", dtype)):
            eta = beliefs[i].reshape(-1, 3)
            pairs = np.random.default_rng(seed).integers(0, tab["KV"], size=len(eta))
            ref, _ = c._filters[i]._update(eta, pairs)
            got = _torch_belief_update(tab["W"] @ torch.as_tensor(eta.T, dtype=dtype), torch.as_tensor(pairs), tab["KV"], tab["S"])
            np.testing.assert_allclose(got.T.double().numpy(), ref, atol=tol)


def test_factor_dimensions_count_what_the_beliefs_span():
    "A 4-state HMM whose last two states are copies has beliefs in 3 dimensions: d = 3 < S = 4, as sampled beliefs show."
    m, src = mess3().transition_matrices, [0, 1, 2, 2]
    T = np.array([[[m[x, src[i], src[j]] / (2 if src[j] == 2 else 1) for j in range(4)] for i in range(4)] for x in range(3)])
    p = FactoredProcess([GHMM(T), bloch_walk()])
    assert p.factor_dimensions == [3, 3] and (p.joint_dimension, p.factored_dimension) == (8, 4)
    assert [1 + affine_dimension(b) for b in p.factor_predictive_vectors(p.sample(500, 8, seed=0))] == [3, 3]


def test_affine_dimension():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 7)) + 3
    assert affine_dimension(pts) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_torch_cuda():
    p = paper_process()
    g = torch.Generator(device="cuda").manual_seed(0)
    t = p.sample_torch(1000, 8, generator=g, device="cuda")
    assert t.device.type == "cuda" and t.dtype == torch.int64 and t.shape == (1000, 8)
    p.factor_predictive_vectors(t)    # all tokens valid
