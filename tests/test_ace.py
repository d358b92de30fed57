"Tests for factornb.ace: bad input, property tests of the ACE algebra, reference comparisons, the CLI."
import argparse, json
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from factornb.geometry import subspace_overlap
from factornb.ace import (activity_matrix, relevance_matrix, core_basis, energy_rank, principal_angles,
                          cca, fit_linear_dynamics, oracle_r2, cyclic_chain, markov_dataset, core_interventions,
                          extract_core, rank_scan, necessary_rank, sufficient_rank, next_token_accuracy,
                          train_markov_transformer, match_eigenvalues, register_cli, MARKOV_LAYER)

torch.set_num_threads(1)


def _psd(rng, d, rank=None):
    A = rng.normal(size=(d, rank or d))
    return A @ A.T


# --- bad input -----------------------------------------------------------------------------------------
def test_core_basis_bad_input():
    rng = np.random.default_rng(0)
    C, O = _psd(rng, 5), _psd(rng, 6)
    with pytest.raises(ValueError, match="same width"): core_basis(C, O)
    with pytest.raises(ValueError, match="rank"): core_basis(C, _psd(rng, 5), rank=6)
    with pytest.raises(ValueError, match="rank"): core_basis(C, _psd(rng, 5), rank=0)
    with pytest.raises(ValueError, match="square"): core_basis(np.ones((5, 4)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="NaN"): core_basis(np.full((3, 3), np.nan), np.eye(3))
    with pytest.raises(ValueError, match="energy"): core_basis(C, _psd(rng, 5), energy=1.5)


def test_activity_relevance_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"): activity_matrix(np.ones((1, 3)))
    with pytest.raises(ValueError, match="activations"): activity_matrix(np.ones(3))
    with pytest.raises(ValueError, match="either"): relevance_matrix(np.eye(3), gradients=np.ones((4, 3)))
    with pytest.raises(ValueError, match="readout"): relevance_matrix()
    with pytest.raises(ValueError, match="activations"): relevance_matrix(lambda h: h.sum())
    with pytest.raises(TypeError, match="readout"): relevance_matrix(3)
    with pytest.raises(ValueError, match="same number of rows"): cca(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="Z"): fit_linear_dynamics(np.ones((3, 1, 2)))


def test_unknown_hook_name_lists_valid_names():
    from factornb.models import Transformer, markov_transformer_config
    model = Transformer(markov_transformer_config(seed=0))
    x = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="valid names.*blocks.0.hook_resid_post"): extract_core(model, x, "blocks.7.nope")


# --- properties of the ACE algebra ---------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 9), seed=st.integers(0, 10_000), data=st.data())
def test_core_is_top_eigvecs_of_cov_obs(d, seed, data):
    rng = np.random.default_rng(seed)
    C, O = _psd(rng, d), _psd(rng, d)
    r = data.draw(st.integers(1, d))
    Q, w = core_basis(C, O, rank=r)
    assert Q.shape == (d, r)
    np.testing.assert_allclose(Q.T @ Q, np.eye(r), atol=1e-9)
    ev, vec = np.linalg.eig(C @ O)
    order = np.argsort(-ev.real)
    np.testing.assert_allclose(w, ev.real[order], rtol=1e-5, atol=1e-7 * w[0])
    if r < d and ev.real[order[r - 1]] > 1.001 * ev.real[order[r]]:   # a spectral gap: the subspace is well defined
        ang = principal_angles(Q, vec[:, order[:r]].real)
        assert np.degrees(ang).max() < 0.1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_core_basis_invariances(seed):
    "Scaling Cov or Obs does not move the core; a rotation of the space rotates it."
    rng = np.random.default_rng(seed)
    C, O = _psd(rng, 6), _psd(rng, 6, rank=3)
    Q, w = core_basis(C, O, rank=2)
    Q2, w2 = core_basis(7.0 * C, 0.5 * O, rank=2)
    np.testing.assert_allclose(w2, 3.5 * w, rtol=1e-6, atol=1e-9 * w[0])
    R, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    Q3, _ = core_basis(R @ C @ R.T, R @ O @ R.T, rank=2)
    if w[1] > 1.01 * w[2]:
        assert np.degrees(principal_angles(Q, Q2)).max() < 0.05
        assert np.degrees(principal_angles(R @ Q, Q3)).max() < 0.05


@settings(max_examples=40, deadline=None)
@given(w=st.lists(st.floats(0, 10), min_size=1, max_size=12), energy=st.floats(0.01, 1.0))
def test_energy_rank(w, energy):
    w = np.sort(np.array(w))[::-1]
    r = energy_rank(w, energy)
    assert 1 <= r <= len(w)
    if w.sum() > 0:
        assert w[:r].sum() >= (energy - 1e-9) * w.sum()
        assert r == 1 or w[:r - 1].sum() < energy * w.sum() + 1e-9


def test_relevance_linear_shortcut_matches_jacobian():
    torch.manual_seed(0)
    lin = torch.nn.Linear(7, 3).double()
    H = torch.randn(300, 7, dtype=torch.float64)
    np.testing.assert_allclose(relevance_matrix(lambda h: lin(h), H, sample_size=64), relevance_matrix(lin), rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), r1=st.integers(1, 4), r2=st.integers(1, 4))
def test_projector_overlap_convention_and_cca_properties(seed, r1, r2):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(8, r1)))[0]; V = np.linalg.qr(rng.normal(size=(8, r2)))[0]
    # the paper's projector overlap of column bases, ||U^T V||_F^2 / sqrt(r1 r2), is subspace_overlap of the transposes
    assert subspace_overlap(U.T, V.T) == pytest.approx(np.sum((U.T @ V) ** 2) / np.sqrt(r1 * r2), abs=1e-12)
    Z = rng.normal(size=(400, r1))
    M = rng.normal(size=(r1, r1)) + 3 * np.eye(r1)
    np.testing.assert_allclose(cca(Z, Z @ M + 5.0, k=r1), np.ones(r1), atol=1e-4)   # the 1e-8 I ridge, times cond(M)^2
    # independent sides: the top canonical correlation of <= 4 x 4 Gaussian columns on 400 rows sits near
    # (sqrt(r1) + sqrt(r2)) / sqrt(400) <= 0.2 (the Wachter edge), with fluctuations ~ 400^(-2/3) = 0.02; allow 0.35
    assert cca(Z, rng.normal(size=(400, r2)), k=min(r1, r2)).max() < 0.35


def test_cca_matches_sklearn():
    from sklearn.cross_decomposition import CCA
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(3000, 3))
    A, B = Z @ rng.normal(size=(3, 3)) + 0.5 * rng.normal(size=(3000, 3)), Z[:, :2] @ rng.normal(size=(2, 2)) + rng.normal(size=(3000, 2))
    ours = cca(A, B, k=2)
    a, b = CCA(n_components=2, max_iter=2000, tol=1e-10).fit_transform(A, B)
    ref = sorted((abs(np.corrcoef(a[:, i], b[:, i])[0, 1]) for i in range(2)), reverse=True)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_fit_linear_dynamics_recovers_operator():
    rng = np.random.default_rng(2)
    A = np.array([[0.5, 0.2, 0.0], [-0.2, 0.5, 0.1], [0.0, 0.0, 0.3]])
    z = np.zeros((300, 40, 3)); z[:, 0] = rng.normal(size=(300, 3))
    for t in range(39): z[:, t + 1] = z[:, t] @ A.T + 0.05 * rng.normal(size=(300, 3))
    fit = fit_linear_dynamics(torch.as_tensor(z))
    np.testing.assert_allclose(fit.operator, A, atol=0.02)
    assert match_eigenvalues(fit.eigenvalues, np.linalg.eigvals(A)) < 0.02
    # R^2 = mean over core dims of the centred 1 - SS_res/SS_tot: sklearn's multi-output score is the same definition
    from sklearn.linear_model import LinearRegression
    zt, zn = z[:, :-1].reshape(-1, 3), z[:, 1:].reshape(-1, 3)
    assert fit.r2 == pytest.approx(LinearRegression().fit(zt, zn).score(zt, zn), abs=1e-9)


def test_oracle_r2_reference():
    assert abs(oracle_r2(cyclic_chain()) - 0.5) < 1e-12
    assert abs(oracle_r2(cyclic_chain(3, stay=0.0)) - 1.0) < 1e-12       # a deterministic cycle: perfectly predictable
    assert abs(oracle_r2(np.full((3, 3), 1 / 3))) < 1e-12                # i.i.d.: nothing to predict


def test_markov_dataset_matches_chain():
    P = cyclic_chain()
    x, y = markov_dataset(P, 2000, 32, seed=5)
    assert x.shape == y.shape == (2000, 31) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    counts = np.zeros((4, 4)); np.add.at(counts, (x.numpy().ravel(), y.numpy().ravel()), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), P, atol=0.01)
    np.testing.assert_allclose(np.bincount(x[:, 0].numpy(), minlength=4) / 2000, np.full(4, 0.25), atol=0.04)


# --- interventions on a small trained model -------------------------------------------------------------
def test_interventions_and_rank_scan_on_tiny_model():
    P = cyclic_chain()
    x, y = markov_dataset(P, 200, 12, seed=0)
    model = train_markov_transformer(x, y, seed=0, epochs=2)
    core, H = extract_core(model, x, MARKOV_LAYER, rank=64)
    hooks = core_interventions(core.basis)
    full = next_token_accuracy(model, x, y)
    assert next_token_accuracy(model, x, y, {MARKOV_LAYER: hooks["keep"]}) == pytest.approx(full, abs=1e-9)   # keep all = identity
    scan = rank_scan(model, x, y, MARKOV_LAYER, core.basis, ranks=[1, 2, 64])
    assert scan["keep"][-1] == pytest.approx(full, abs=1e-9)
    # removing all 64 directions zeroes the layer output: the logits are the unembedding bias alone
    assert scan["remove"][-1] == pytest.approx(float((y == model.unembed.b_U.argmax()).double().mean()), abs=1e-12)
    # centred flip with strength 1/2 equals the centred removal
    Q = core.basis[:, :3]; h = H[:4].double()
    c = core_interventions(Q, mean=core.mean, strength=0.5)
    torch.testing.assert_close(c["flip"](h), c["remove"](h))
    torch.testing.assert_close(c["keep"](h) + c["remove"](h) - torch.as_tensor(core.mean), h)


def test_rank_rules_on_a_known_scan():
    "The author's rules on a scan whose answers we know: sufficient within 1e-3 of the target, necessary from `start`."
    scan = {"ranks": [1, 2, 3, 4], "keep": [0.30, 0.7495, 0.7501, 0.75], "remove": [0.60, 0.40, 0.26, 0.20]}
    assert sufficient_rank(scan, 0.75) == 2                    # 0.7495 is within the author's 1e-3
    assert sufficient_rank(scan, 0.75, tol=1e-4) == 3          # ... but not within 1e-4
    assert sufficient_rank(scan, 0.80) is None
    assert necessary_rank(scan, threshold=0.27) == 3
    assert necessary_rank(scan, threshold=0.27, start=4) == 4  # the author scans from r_energy upwards
    assert necessary_rank(scan, threshold=0.10) is None


# --- CLI --------------------------------------------------------------------------------------------------
def test_cli_markov(tmp_path):
    p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command", required=True); register_cli(sub)
    args = p.parse_args(["cores", "markov", "--seeds", "0", "100", "--out", str(tmp_path), "--epochs", "1",
                         "--n-train", "64", "--n-test", "32", "--quiet"])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "markov.json").read_text())
    assert set(out["seeds"]) == {"0", "100"} and set(out["pairs"]) == {"0-100"}
    s = out["seeds"]["0"]
    assert {"rank", "accuracies", "eigenvalues", "r2", "oracle_r2"} <= set(s)
    assert set(s["accuracies"]) == {"full", "core_only", "core_removed"}
    assert all(len(e) == 2 for e in s["eigenvalues"])
    assert {"projector_overlap", "principal_angles", "cca"} <= set(out["pairs"]["0-100"])
    import matplotlib.image as mpimg
    img = mpimg.imread(tmp_path / "markov.png")
    assert img.shape[:2] == (570, 2850) and img[..., :3].std() > 0.05   # the 19 x 3.8 in figure at 150 dpi, not blank
    # the saved models are the ones measured: reload one and recompute its full accuracy on the regenerated test set
    from factornb.train import load_checkpoint
    xte, yte = markov_dataset(cyclic_chain(), 32, 32, seed=999)
    model = load_checkpoint(tmp_path / "model_seed0.pt")
    assert next_token_accuracy(model, xte, yte) == pytest.approx(s["accuracies"]["full"], abs=1e-12)


def test_cli_markov_threads_restored_and_bad_count_refused(tmp_path, capsys):
    from factornb.cli import main
    before = torch.get_num_threads()
    out = tmp_path / "run"
    assert main(["cores", "markov", "--threads", "0", "--out", str(out)]) == 2          # one line on stderr, exit 2 ...
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0], err
    assert not out.exists()                                                            # ... before any work
    assert main(["cores", "markov", "--threads", "2", "--seeds", "0", "--out", str(out), "--epochs", "1",
                 "--n-train", "16", "--n-test", "8", "--quiet"]) == 0
    assert (out / "markov.json").exists() and torch.get_num_threads() == before        # cpu_threads restores the setting
