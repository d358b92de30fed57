"""Tests for factornb.explore_processes: chapter 00's and 01b's explorers over a grid of parameters (edges included), their
data against independent computations, bad parameters, and each widget built and moved."""
import math
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from factornb import explore, explore_processes as ep
from factornb.ghmm import mess3, bloch_walk, simplex_coordinates
from factornb.factored import kron_all, paper_chain_process
from factornb.geometry import dims_at, cumulative_explained_variance

torch.set_num_threads(1)


# --- 00: Mess3 and Bloch walk -----------------------------------------------------------------------------
@pytest.mark.parametrize("x,a", [(1e-6, 0.85), (1e-6, 0.6), (0.15, 0.6), (0.5, 0.0), (0.05, 1.0), (1e-6, 1.0), (0.2, 1 / 3)])
def test_ghmm_explorer_grid(x, a):
    fig = ep.ghmm_explorer_figure(x=x, a=a, depth=5)
    d = fig.explorer_data
    np.testing.assert_allclose(d["mess3_beliefs"].sum(1), 1, atol=1e-12)          # drawn points are beliefs
    assert (d["mess3_beliefs"] >= -1e-12).all()
    np.testing.assert_allclose(d["mess3_probs"].sum(), 1, atol=1e-12)
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), simplex_coordinates(d["mess3_beliefs"]), atol=1e-12)
    np.testing.assert_allclose(d["mess3_loss"], mess3(x, a).optimal_loss(6), atol=1e-12)
    np.testing.assert_allclose(d["mess3_loss"][0], math.log(3), atol=1e-12)          # stationary law is uniform
    # the loss per position is the probability-weighted mean of the drawn entropies at the last level
    np.testing.assert_allclose(d["mess3_probs"] @ d["mess3_entropy"], d["mess3_loss"][-1], atol=1e-12)


def test_ghmm_explorer_edges_closed_form():
    # a = 1, x -> 0: after one token the state is known and almost never moves, so from position 1 on the loss is the
    # entropy of the jump law (1 - 2x, x, x), H = -(1-2x) log(1-2x) - 2x log x (3.0e-5 nats at x = 1e-6)
    x = 1e-6
    d = ep.ghmm_explorer_figure(x=x, a=1.0, depth=4).explorer_data
    np.testing.assert_allclose(d["mess3_loss"][1:], -(1 - 2 * x) * math.log(1 - 2 * x) - 2 * x * math.log(x), rtol=1e-9)
    assert len(d["mess3_beliefs"]) == 3                                              # the three corners
    np.testing.assert_allclose(np.sort(d["mess3_beliefs"].max(1)), 1, atol=1e-12)
    # x -> 0 with a < 1: the state almost never moves, beliefs concentrate as evidence accumulates (loss decreasing)
    d = ep.ghmm_explorer_figure(x=1e-6, a=0.85, depth=6).explorer_data
    assert np.all(np.diff(d["mess3_loss"]) < 0)
    # Bloch walk: beliefs (1/3, u, v) in the disk of radius 1/3, probabilities sum to 1, first token uniform
    d = ep.ghmm_explorer_figure(alpha=0.0, beta=2.0, depth=4).explorer_data
    np.testing.assert_allclose(d["bloch_beliefs"][:, 0], 1 / 3, atol=1e-12)
    assert (np.hypot(d["bloch_beliefs"][:, 1], d["bloch_beliefs"][:, 2]) <= 1 / 3 + 1e-12).all()
    np.testing.assert_allclose(d["bloch_loss"], bloch_walk(0.0, 2.0).optimal_loss(5), atol=1e-12)
    np.testing.assert_allclose(d["bloch_loss"][0], math.log(4), atol=1e-12)


# --- 01: factored vs joint geometry ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_mess3,n_bloch,eps,chain", [(1, 0, 0.0, False), (2, 0, 0.0, False), (0, 1, 0.3, False),
                                                       (2, 1, 0.0, True), (3, 0, 1.0, False), (1, 1, 0.5, True)])
def test_geometry_explorer_matches_geometry(n_mess3, n_bloch, eps, chain):
    fig = ep.geometry_explorer_figure(n_mess3=n_mess3, n_bloch=n_bloch, eps=eps, chain=chain, n_sequences=200, length=6)
    g = fig.explorer_data
    p = ep.explorer_process(n_mess3, n_bloch, eps, chain)
    fb = [b[g["rows"], g["lengths"] - 1] for b in p.factor_predictive_vectors(g["tokens"])]
    fac, joint = np.concatenate(fb, 1), kron_all(fb)
    assert (g["dims_factored"], g["dims_joint"]) == (dims_at(fac), dims_at(joint))
    # the curves drawn are the CEVs; dims@95 independently from the singular values of the centred points
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), cumulative_explained_variance(joint), atol=1e-12)
    sv2 = np.linalg.svd(joint - joint.mean(0), compute_uv=False) ** 2
    assert int(np.searchsorted(np.cumsum(sv2) / sv2.sum(), 0.95 - 1e-12) + 1) == g["dims_joint"]
    assert g["dims_factored"] <= p.factored_dimension
    assert (g["product_excess"] >= -1e-12).all()
    if eps == 1.0:   # every token uniform: loss log V, nothing to gain from the joint law
        np.testing.assert_allclose(g["optimal_loss"], math.log(p.vocab_size), atol=1e-9)
        np.testing.assert_allclose(g["product_excess"], 0, atol=1e-12)


def test_geometry_explorer_loss_against_exact():
    # independent, noise-free: the sampled mean of exact conditional entropies estimates the exact optimal loss
    g = ep.geometry_explorer_figure(n_mess3=2, n_bloch=0, n_sequences=2000, length=5).explorer_data
    exact = ep.explorer_process(2, 0).optimal_loss(5)
    assert g["optimal_loss"][0] == pytest.approx(exact[0], abs=1e-12)          # position 0: no past, exact
    # per-position SE of a mean of entropies in [0, log 9] over 2000 sequences is < log(9)/2/sqrt(2000) ~ 0.025; 0.03 is > 1 SE bound
    np.testing.assert_allclose(g["optimal_loss"], exact, atol=0.03)
    np.testing.assert_allclose(g["product_excess"], 0, atol=1e-12)
    # the chain costs a product predictor (chapter 01b: hidden dependencies)
    c = ep.geometry_explorer_figure(n_mess3=2, n_bloch=0, chain=True, n_sequences=300, length=5).explorer_data
    assert c["product_excess"][1:].mean() > 1e-2


def test_chain_explorer_uses_the_papers_mess3_variants():
    # one definition of the paper's Mess3 chain variants (factornb.factored): the explorer's Mess3 child has the paper's chain's
    chain, paper = ep.explorer_process(2, 0, chain=True), paper_chain_process()
    for mine, theirs in zip(chain.variants[1], paper.variants[1], strict=True):
        np.testing.assert_array_equal(mine.transition_matrices, theirs.transition_matrices)


# --- bad parameters --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,kw,name", [
    (ep.ghmm_explorer_figure, dict(x=0.51), "x"), (ep.ghmm_explorer_figure, dict(x=-0.01), "x"), (ep.ghmm_explorer_figure, dict(x=0.0), "x"),
    (ep.ghmm_explorer_figure, dict(a=1.01), "a"), (ep.ghmm_explorer_figure, dict(a=float("nan")), "a"),
    (ep.ghmm_explorer_figure, dict(alpha=0, beta=0), "alpha"), (ep.ghmm_explorer_figure, dict(beta=float("inf")), "beta"),
    (ep.ghmm_explorer_figure, dict(depth=-1), "depth"), (ep.ghmm_explorer_figure, dict(depth=2.5), "depth"),
    (ep.geometry_explorer_figure, dict(n_mess3=4), "n_mess3"), (ep.geometry_explorer_figure, dict(n_bloch=3), "n_bloch"),
    (ep.geometry_explorer_figure, dict(n_mess3=0, n_bloch=0), "n_mess3"), (ep.geometry_explorer_figure, dict(eps=-0.1), "eps"),
    (ep.geometry_explorer_figure, dict(eps=1.01), "eps"), (ep.geometry_explorer_figure, dict(chain=1), "chain"),
    (ep.geometry_explorer_figure, dict(n_sequences=1), "n_sequences"), (ep.geometry_explorer_figure, dict(length=0), "length"),
])
def test_bad_parameters(fn, kw, name):
    with pytest.raises(ValueError, match=name):
        fn(**kw)


# --- widgets: build each and move a control ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: (ep.ghmm_explorer_figure, ep.ghmm_controls(depth=4), "x", 0.2, lambda f: f.explorer_data["mess3_loss"],
             lambda: ep.ghmm_explorer_figure(x=0.2, depth=4).explorer_data["mess3_loss"]),
    lambda: (ep.geometry_explorer_figure, ep.geometry_controls(n_mess3=2, n_bloch=0, chain=False), "chain", True,
             lambda f: f.explorer_data["product_excess"],
             lambda: ep.geometry_explorer_figure(n_mess3=2, n_bloch=0, chain=True).explorer_data["product_excess"]),
])
def test_widget_redraws_on_change(make):
    fn, controls, name, value, read, expected = make()
    w = explore.explorer_widget(fn, controls)
    first = w.figure
    assert first is not None                                  # drawn once on creation, with the controls' values
    controls[name].value = value
    assert w.figure is not first                              # redrawn with the new value
    np.testing.assert_allclose(read(w.figure), expected())


def test_show_explorer_static_outside_kernel(monkeypatch):
    monkeypatch.setenv("IN_TEST", "1")
    fig = explore.show_explorer(ep.ghmm_explorer_figure, ep.ghmm_controls(depth=3))
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.explorer_data["mess3_loss"]) == 4
