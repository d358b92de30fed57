"Tests for factornb.grokking: bad input, the closed-form rank scan against the hook-based one, clocks on planted circles, resume, the CLI."
import argparse, json
import numpy as np
import pytest
import torch

from factornb.grokking import (modular_addition_data, grok_config, GrokTrainer, core_dimensions, class_means, fit_shift_operator,
                               rotational_modes, checkpoint_epochs, grok_epoch, grok_run, fit_power_law, fit_redundancy_law,
                               redundancy_law, grok_time, register_cli, core_layer, last_position_states)
from factornb.ace import readout_rank_scan, rank_scan, core_basis, activity_matrix, relevance_matrix
from factornb.models import Transformer

torch.set_num_threads(1)


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 0, -5])
def test_modulus_below_3(p):
    with pytest.raises(ValueError, match="p: expected an int >= 3"): modular_addition_data(p)


@pytest.mark.parametrize("p", [3.0, 7.5, "53", True, None])
def test_modulus_not_an_int_is_a_value_error(p):
    # issue 8's contract: a modulus that is not an int is a ValueError naming p (the shared validator would raise TypeError)
    with pytest.raises(ValueError, match="p: expected an int"): modular_addition_data(p)
    with pytest.raises(ValueError, match="p: expected an int"): grok_config(p)


@pytest.mark.parametrize("kw,name", [(dict(epochs=1.5), "epochs"), (dict(epochs=True), "epochs"), (dict(epochs=10, branch_at=5.0, every=5), "branch_at")])
def test_other_counts_not_ints_are_type_errors(kw, name):
    # the other counts use chapter 00's shared `_check_int`: a TypeError naming the argument
    with pytest.raises(TypeError, match=f"{name}: expected an int"): grok_run(p=5, seeds=[0], **kw)
    with pytest.raises(TypeError, match="seeds: expected an int"): GrokTrainer(modular_addition_data(5), [0.5])


@pytest.mark.parametrize("f", [0, 1, 1.5, -0.1])
def test_bad_split_fraction(f):
    with pytest.raises(ValueError, match="train_fraction"): modular_addition_data(11, f)


def test_bad_epochs_and_branch(tmp_path):
    with pytest.raises(ValueError, match="epochs"): grok_run(p=5, seeds=[0], epochs=0)
    with pytest.raises(ValueError, match="branch_at"): grok_run(p=5, seeds=[0], epochs=10, branch_at=10, every=5)
    with pytest.raises(ValueError, match="branch_at"): grok_run(p=5, seeds=[0], epochs=10, branch_at=20, every=5)
    with pytest.raises(ValueError, match="branch_at"): grok_run(p=5, seeds=[0], epochs=10, branch_at=3, every=5)
    with pytest.raises(ValueError, match="seeds"): GrokTrainer(modular_addition_data(5), [0, 0])
    with pytest.raises(ValueError, match="weight_decay"): GrokTrainer(modular_addition_data(5), [0], weight_decay=-1)


def test_bad_fits():
    with pytest.raises(ValueError, match="positive"): fit_power_law([1, 2, 3], [1, -1, 2])
    with pytest.raises(ValueError, match="distinct"): fit_power_law([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="answers"): class_means(np.zeros((4, 2)), [0, 0, 1, 1], 3)


def test_readout_rank_scan_bad_input():
    H = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="width"): readout_rank_scan(H, np.zeros(20, int), np.eye(5), np.ones((3, 4)))
    with pytest.raises(ValueError, match="targets"): readout_rank_scan(H, np.zeros(19, int), np.eye(4), np.ones((3, 4)))
    with pytest.raises(ValueError, match="ranks"): readout_rank_scan(H, np.zeros(20, int), np.eye(4), np.ones((3, 4)), ranks=[5])


# --- data ----------------------------------------------------------------------------------------------
def test_data_is_every_pair_once_with_correct_labels():
    d = modular_addition_data(53)
    assert len(d.x_train) == 1404 and len(d.x_test) == 1405            # spec §5.1
    x = torch.cat([d.x_train, d.x_test]); y = torch.cat([d.y_train, d.y_test])
    assert len({tuple(r) for r in x.tolist()}) == 53 * 53
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 53)
    assert torch.equal(modular_addition_data(53).x_train, d.x_train)   # fixed split


# --- the closed-form rank scan equals the hook-based one -----------------------------------------------
def test_readout_rank_scan_matches_hooked_rank_scan():
    d = modular_addition_data(11)
    model = Transformer(grok_config(11, seed=3, d_model=32, d_mlp=64)).eval()
    # a briefly trained model so that accuracies are not all equal
    t = GrokTrainer(d, [3], lr=1e-2, batch_size=None, model_kwargs=dict(d_model=32, d_mlp=64))
    for _ in range(30): t.train_epoch()
    model = t.models[0].eval()
    H = last_position_states(model, d.x_train)
    W = model.unembed.W_U.detach().double().numpy().T
    Q, _ = core_basis(activity_matrix(H), relevance_matrix(W), rank=32)
    fast = readout_rank_scan(H, d.y_train, Q, W, model.unembed.b_U.detach().numpy(), ranks=[1, 3, 8, 20, 32])
    # hook-based: keep/remove at every position of the last layer, accuracy at the last position only
    x = d.x_train; y2 = torch.stack([x[:, 1], d.y_train], 1)   # first-position targets are irrelevant: we score column 1 only
    slow = {"keep": [], "remove": []}
    from factornb.ace import core_interventions
    from factornb.activations import run_with_hooks
    for r in fast["ranks"]:
        hooks = core_interventions(Q[:, :r])
        for k in ("keep", "remove"):
            with torch.no_grad(): logits = run_with_hooks(model, x, {core_layer(model): hooks[k]})
            slow[k].append((logits[:, -1].argmax(-1) == d.y_train).double().mean().item())
    np.testing.assert_allclose(fast["keep"], slow["keep"], atol=1.5 / len(x))   # at most one float32-vs-float64 argmax tie flip
    np.testing.assert_allclose(fast["remove"], slow["remove"], atol=1.5 / len(x))
    assert fast["keep"][-1] == pytest.approx((model(x)[:, -1].argmax(-1) == d.y_train).double().mean().item(), abs=1.5 / len(x))


# --- clocks on planted circles -------------------------------------------------------------------------
@pytest.mark.parametrize("p,freqs", [(53, [5]), (53, [3, 11, 20]), (31, [1, 15])])
def test_planted_clock_has_its_frequencies_on_the_circle(p, freqs):
    c = np.arange(p)
    reps = np.concatenate([np.stack([np.cos(2 * np.pi * k * c / p), np.sin(2 * np.pi * k * c / p)], 1) for k in freqs], 1)
    rng = np.random.default_rng(0)
    reps = reps @ np.linalg.qr(rng.normal(size=(reps.shape[1], reps.shape[1])))[0] + 4.0   # rotate, offset
    op = fit_shift_operator(reps)
    np.testing.assert_allclose(np.abs(op.eigenvalues), 1, atol=1e-8)
    m = rotational_modes(op.eigenvalues, p)
    assert m["bins"] == sorted(freqs) and m["frac_near"] == 1.0 and op.r2 == pytest.approx(1.0, abs=1e-10)
    # held-out block: the spec centres on the fitted edges' mean, which is off the circle's centre by O(m/p), so R^2_h < 1
    held = fit_shift_operator(reps, holdout=4)
    assert held.holdout_r2 > 0.95 and rotational_modes(held.eigenvalues, p)["bins"] == sorted(freqs)


def test_random_reps_are_not_a_clock():
    reps = np.random.default_rng(1).normal(size=(53, 6))
    op = fit_shift_operator(reps, ridge=1.0, holdout=4)
    assert np.abs(op.eigenvalues).max() < 0.9 and op.holdout_r2 < 0.2


def test_rotational_modes_fold_and_threshold():
    p = 53; eps = np.sin(np.pi / p)
    ev = np.array([np.exp(2j * np.pi * 5 / p), np.exp(-2j * np.pi * 5 / p), (1 + 0.9 * eps) * np.exp(2j * np.pi * 7 / p), 0.5])
    m = rotational_modes(ev, p)
    assert m["bins"] == [5, 7] and m["modes"] == 2 and m["frac_near"] == 0.75


# --- bookkeeping ---------------------------------------------------------------------------------------
def test_checkpoint_cadence_and_grok_epoch():
    c = checkpoint_epochs(20_000)
    assert len(c) == 57 and c[:3] == [0, 100, 200] and c[20] == 2000 and c[21] == 2500 and c[-1] == 20_000   # spec §9
    recs = [{"epoch": e, "test_acc": a} for e, a in [(0, .1), (0, .2), (100, .995), (100, .98), (200, .99), (200, 1.0)]]
    assert grok_epoch(recs) == 200


def test_fits_recover_planted_laws():
    w = np.repeat([0.5, 1, 2, 4], 3); tau = 500 * w ** -1.0 * np.exp(np.random.default_rng(0).normal(0, 0.05, len(w)))
    f = fit_power_law(w, tau)
    assert f["ci"][0] < -1 < f["ci"][1] and abs(f["exponent"] + 1) < 0.1
    p = np.array([31, 43, 53, 61, 79]); f2 = fit_redundancy_law(p, redundancy_law(p, 300.0, 20.0))
    assert f2["omega"] == pytest.approx(300, rel=1e-3) and f2["p_crit"] == pytest.approx(20, rel=1e-3) and f2["r2"] > 0.999999


def test_resume_is_bit_exact(tmp_path):
    kw = dict(p=7, seeds=[0, 1], every=2, coarse_after=4, coarse_every=2, batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    a = grok_run(epochs=6, branch_at=2, state=tmp_path / "a.pt", **kw)
    grok_run(epochs=4, branch_at=2, state=tmp_path / "b.pt", **kw)           # stop early, then resume to 6
    b = grok_run(epochs=6, branch_at=2, state=tmp_path / "b.pt", **kw)
    key = lambda r: (r["epoch"], r["seed"], r["test_acc"], r["train_acc"], r["r_nec"])
    assert [key(r) for r in a["checkpoints"]] == [key(r) for r in b["checkpoints"]]
    sa, sb = torch.load(tmp_path / "a.pt", weights_only=False), torch.load(tmp_path / "b.pt", weights_only=False)
    for m1, m2 in zip(sa["main"]["models"], sb["main"]["models"]):
        assert all(torch.equal(m1[k], m2[k]) for k in m1)


def test_seed_is_independent_of_its_neighbours():
    d = modular_addition_data(7)
    kw = dict(batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    a, b = GrokTrainer(d, [2], **kw), GrokTrainer(d, [0, 2], **kw)
    for _ in range(3): a.train_epoch(); b.train_epoch()
    assert all(torch.equal(a.models[0].state_dict()[k], b.models[1].state_dict()[k]) for k in a.models[0].state_dict())


def test_grok_time_bookkeeping():
    r = grok_time(p=7, weight_decay=1.0, seed=0, max_epochs=5, model_kwargs=dict(n_layers=1, d_model=16, n_heads=4, d_mlp=32))
    assert r["steps"] == 5 and (r["delay"] is None or r["delay"] == r["tau_grok"] - r["tau_mem"] > 0)


# --- CLI -----------------------------------------------------------------------------------------------
def test_cli_grok_writes_json_and_png(tmp_path):
    ap = argparse.ArgumentParser(); sub = ap.add_subparsers(dest="cmd"); register_cli(sub)
    out = tmp_path / "g"
    args = ap.parse_args(["grok", "--out", str(out), "--state", str(tmp_path / "s.pt"), "--p", "7", "--epochs", "4", "--every", "2",
                          "--seeds", "0", "--branch-at", "2", "--batch-size", "0", "--quiet"])
    assert args.func(args) == 0
    res = json.loads((out / "grok.json").read_text())
    assert res["p"] == 7 and {"epoch", "train_acc", "test_acc", "r_energy", "r_nec", "r_suf", "keep_acc", "remove_acc", "modes",
                              "frac_near", "holdout_r2"} <= set(res["checkpoints"][0])
    assert [r["epoch"] for r in res["branch"]["checkpoints"]] == [4] and (out / "grok.png").stat().st_size > 0
    with pytest.raises(SystemExit): ap.parse_args(["grok", "--epochs", "many"])
