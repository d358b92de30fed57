"Bad input, properties and reference values for factornb.ghmm (the notebook shows the main behaviour)."
import itertools, math
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from factornb.ghmm import GHMM, mess3, bloch_walk, rrxor, zero_one_random, markov_chain, random_hmm, simplex_coordinates
from factornb.ghmm import _check_int, _as_matrix


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("matrices, match", [
    (np.ones((3, 3)), "3-d array"),
    (np.ones((2, 3, 4)), "shape"),
    (np.full((2, 2, 2), np.inf), "NaN or infinite"),
    (np.ones((2, 2, 2)), "spectral radius 1"),
    (np.zeros((1, 2, 2)), "spectral radius 1"),
])
def test_bad_matrices(matrices, match):
    with pytest.raises(ValueError, match=match): GHMM(matrices)

def test_non_numeric_matrices():
    with pytest.raises(TypeError, match="transition_matrices"): GHMM([["a", "b"], ["c", "d"]])

def test_bad_initial_state():
    m = mess3()
    with pytest.raises(ValueError, match="initial_state: expected shape"): GHMM(m.transition_matrices, [0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"): GHMM(m.transition_matrices, [1.5, -0.5, 0.0])
    with pytest.raises(ValueError, match="not a valid process"): GHMM(bloch_walk().transition_matrices, [1 / 3, 0.9, 0])

def test_reducible_chain_is_refused():
    with pytest.raises(ValueError, match="degenerate"): markov_chain(np.eye(2))

@pytest.mark.parametrize("tokens, exc, match", [
    (np.array([[0, 3]]), ValueError, "outside the vocabulary"),
    (np.array([[-1, 0]]), ValueError, "outside the vocabulary"),
    (np.array([[0.5, 1.0]]), TypeError, "integer"),
    (np.array([[True, False]]), TypeError, "integer"),
    (np.zeros((2, 2, 2), dtype=int), ValueError, "shape"),
])
def test_bad_tokens(tokens, exc, match):
    with pytest.raises(exc, match=match): mess3().predictive_vectors(tokens)

def test_zero_probability_word_names_sequence_and_position():
    "The first impossible RRXOR word (found by enumeration) is reported at its sequence and position."
    p = rrxor()
    for L in range(1, 9):
        impossible = [w for w in itertools.product(range(2), repeat=L) if _word_prob(p, w) == 0 and _word_prob(p, w[:-1]) > 0]
        if impossible: break
    possible = [w for w in itertools.product(range(2), repeat=L) if _word_prob(p, w) > 0][:2]
    with pytest.raises(ValueError, match=f"sequence 2 has probability zero at position {L - 1}"):
        p.predictive_vectors(np.array([*possible, impossible[0]]))

def _word_prob(p, word):
    v = p.initial_state
    for x in word: v = v @ p.transition_matrices[x]
    return float(v @ p.normalizing_eigenvector)

@pytest.mark.parametrize("call, match", [
    (lambda: mess3(x=-0.1), "x:"), (lambda: mess3(a=1.5), "a:"), (lambda: mess3(x="0.1"), "x:"),
    (lambda: bloch_walk(0, 0), "alpha, beta"), (lambda: bloch_walk(float("nan"), 1), "alpha"),
    (lambda: rrxor(p1=2), "p1"), (lambda: zero_one_random(-1), "p:"),
    (lambda: markov_chain([[1.0, 0.5]]), "square"), (lambda: random_hmm(0, 2), "num_states"),
    (lambda: random_hmm(2, 2, concentration=0), "concentration"),
    (lambda: mess3().sample(-1, 4), "n:"),
    (lambda: mess3().mixed_state_presentation(-1), "depth"), (lambda: mess3().optimal_loss(0), "length"),
    (lambda: mess3().next_token_probs(np.ones(4)), "eta"), (lambda: simplex_coordinates(np.ones((2, 4))), "beliefs"),
    (lambda: mess3().entropy_rate(length=10, burn_in=10), "burn_in"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match): call()

@pytest.mark.parametrize("call, match", [
    (lambda: mess3().sample(2, 1.5), "length: expected an int"), (lambda: mess3().sample(True, 2), "n: expected an int"),
    (lambda: random_hmm(2.0, 2), "num_states: expected an int"), (lambda: mess3().optimal_loss(np.float64(3)), "length"),
])
def test_non_integer_counts_are_type_errors(call, match):
    with pytest.raises(TypeError, match=match): call()


# ---------------------------------------------------------------- the shared validators (every module imports them)
def test_check_int():
    assert _check_int(np.int32(4), "n", minimum=4) == 4 and type(_check_int(np.int32(4), "n")) is int
    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="n: expected an int"): _check_int(bad, "n")
    with pytest.raises(ValueError, match="n: expected an int >= 1, got 0"): _check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match="n: expected an int >= 0, got -1"): _check_int(-1, "n")

def test_as_matrix():
    import torch
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)      # a dtype numpy cannot hold: converted via float64
    np.testing.assert_array_equal(_as_matrix(t, "X"), np.arange(6.0).reshape(2, 3))
    assert _as_matrix([[1, 2]], "X").dtype == np.float64
    np.testing.assert_array_equal(_as_matrix(np.arange(24).reshape(2, 3, 4), "H", flatten=True), np.arange(24.0).reshape(6, 4))
    for bad, exc, match in ((np.zeros(3), ValueError, "X: expected a 2-d array"), (np.zeros((2, 0)), ValueError, "X: expected at least one"),
                            ([[np.nan]], ValueError, "X: contains NaN"), ([["a"]], TypeError, "X: expected an array of real numbers"),
                            (np.zeros((1, 1, 1)), ValueError, "X: expected a 2-d array")):
        with pytest.raises(exc, match=match): _as_matrix(bad, "X")
    with pytest.raises(ValueError, match=r"H: expected shape \(\.\.\., D\)"): _as_matrix(np.zeros(3), "H", flatten=True)

def test_callers_array_is_not_frozen():
    T = np.array(mess3().transition_matrices)
    g = GHMM(T)
    T[0, 0, 0] = 0.5                     # still writable, and the GHMM kept its own copy
    assert g.transition_matrices[0, 0, 0] != 0.5 and not g.transition_matrices.flags.writeable


# ---------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(S=st.integers(1, 4), V=st.integers(1, 3), seed=st.integers(0, 10_000), L=st.integers(1, 4))
def test_word_probabilities_sum_to_one_and_match_log_prob(S, V, seed, L):
    "exp(log_prob) of every word of length L equals the matrix-product probability, and they sum to 1."
    p = random_hmm(S, V, seed=seed)
    words = np.array(list(itertools.product(range(V), repeat=L)))
    exact = np.array([_word_prob(p, w) for w in words])
    assert exact.sum() == pytest.approx(1, abs=1e-12)
    assert np.exp(p.log_prob(words)) == pytest.approx(exact, rel=1e-10, abs=1e-15)

@settings(max_examples=25, deadline=None)
@given(S=st.integers(1, 5), V=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_beliefs_match_the_definition_and_msp_is_consistent(S, V, seed):
    "The renormalised recursion equals eta_0 T(x_1)...T(x_t) / (eta_0 T(x_1)...T(x_t) w), formed without renormalising."
    p = random_hmm(S, V, seed=seed)
    toks = p.sample(16, 12, seed=seed)
    direct = np.array([[np.linalg.multi_dot([p.initial_state[None], *p.transition_matrices[seq[:t + 1]], np.eye(S)])[0]
                        for t in range(12)] for seq in toks])
    np.testing.assert_allclose(p.predictive_vectors(toks), direct / (direct @ p.normalizing_eigenvector)[..., None], atol=1e-12)
    beliefs, probs = p.mixed_state_presentation(3)
    assert probs.sum() == pytest.approx(1, abs=1e-12)
    assert probs @ beliefs == pytest.approx(p.initial_state, abs=1e-12)   # stationarity in expectation

@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_sample_with_beliefs_matches_filter(seed):
    p = bloch_walk(1, 3)
    tokens, beliefs = p.sample(8, 20, seed=seed, return_beliefs=True)
    assert np.allclose(p.predictive_vectors(tokens), beliefs, atol=1e-12)


@pytest.mark.parametrize("gather_max", [2**24, 0])    # 0 forces the per-token branch of the update
def test_both_update_branches_match_the_formula(monkeypatch, gather_max):
    "Both branches of `_update` give eta T(x) / (eta T(x) w) and eta T(x) w, computed here row by row."
    import factornb.ghmm as ghmm
    monkeypatch.setattr(ghmm, "_GATHER_MAX", gather_max)
    for p in (random_hmm(70, 60, seed=1), bloch_walk(1, 3)):
        eta = p.predictive_vectors(p.sample(50, 3, seed=0))[:, -1]
        x = np.random.default_rng(0).integers(0, p.vocab_size, size=50)
        new, prob = p._update(eta, x)
        unnorm = np.stack([eta[i] @ p.transition_matrices[x[i]] for i in range(50)])
        np.testing.assert_allclose(prob, unnorm @ p.normalizing_eigenvector, rtol=1e-12)
        np.testing.assert_allclose(new, unnorm / (unnorm @ p.normalizing_eigenvector)[:, None], rtol=1e-10, atol=1e-15)


# ---------------------------------------------------------------- reference values
def test_reproducible_and_seed_dependent():
    m = mess3()
    assert (m.sample(4, 50, seed=1) == m.sample(4, 50, seed=1)).all()
    assert (m.sample(4, 50, seed=1) != m.sample(4, 50, seed=2)).any()
    assert m.sample(0, 5).shape == (0, 5) and m.sample(3, 0).shape == (3, 0)

def test_markov_chain_entropy_rate_closed_form():
    P = np.array([[0.9, 0.1], [0.4, 0.6]])
    mc = markov_chain(P)
    pi = np.array([0.8, 0.2])
    assert mc.stationary_distribution == pytest.approx(pi)
    h = -np.sum(pi[:, None] * P * np.log(P))
    assert mc.optimal_loss(4)[1:] == pytest.approx([h] * 3, abs=1e-12)

def test_zero_one_random_optimal_loss_is_known():
    "Z1R with p=1/2: from position 3 on the phase is known, and one token in three is a fair coin."
    loss = zero_one_random(0.5).optimal_loss(12)
    assert loss[-1] == pytest.approx(math.log(2) / 3, abs=1e-9)

def test_rrxor_entropy_rate():
    "RRXOR(1/2, 1/2) after synchronisation: two fair bits in three -> 2/3 log 2 nats per token."
    rate, se = rrxor().entropy_rate(n=100, length=3000, burn_in=300, seed=0)
    assert abs(rate - 2 / 3 * math.log(2)) < 4 * se + 1e-3

def test_bloch_walk_beliefs_fill_the_disk():
    p = bloch_walk(1, 3)
    eta = p.predictive_vectors(p.sample(500, 30, seed=0)).reshape(-1, 3)
    r = np.hypot(eta[:, 1], eta[:, 2])
    assert np.allclose(eta[:, 0], 1 / 3) and r.max() <= 1 / 3 + 1e-12 and r.max() > 0.3

def test_long_sequence_stable():
    p = bloch_walk(1, 3)
    tokens = p.sample(1, 100_000, seed=3)
    lp = p.log_prob(tokens)
    assert np.isfinite(lp).all() and -lp[0] / 1e5 == pytest.approx(p.optimal_loss(12)[-1], abs=0.02)
