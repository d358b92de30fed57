"""Tests for factornb.grokking: bad input, the closed-form rank scan against the hook-based one, clocks on planted circles, the
last-position step against the model, resume (at a checkpoint, between checkpoints, behind its grok.json), the CLI."""
import argparse, dataclasses, json
import numpy as np
import pytest
import torch

from factornb.grokking import (modular_addition_data, grok_config, GrokTrainer, core_dimensions, class_means, fit_shift_operator,
                               rotational_modes, checkpoint_epochs, grok_epoch, grok_run, register_cli, core_layer,
                               last_position_states, load_weights, last_position_logits, track_core, clock)
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
    with pytest.raises(ValueError, match="answers"): class_means(np.zeros((4, 2)), [0, 0, 1, 1], 3)


def test_readout_rank_scan_bad_input():
    H = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="width"): readout_rank_scan(H, np.zeros(20, int), np.eye(5), np.ones((3, 4)))
    with pytest.raises(ValueError, match="targets"): readout_rank_scan(H, np.zeros(19, int), np.eye(4), np.ones((3, 4)))
    with pytest.raises(ValueError, match="ranks"): readout_rank_scan(H, np.zeros(20, int), np.eye(4), np.ones((3, 4)), ranks=[5])


# --- data ----------------------------------------------------------------------------------------------
def test_data_is_every_pair_once_with_correct_labels():
    d = modular_addition_data(53)
    assert len(d.x_train) == 1404 and len(d.x_test) == 1405            # the authors' split: RandomState(42), half of the 2809 pairs
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
    # held-out block: the authors' code centres on the fitted edges' mean, which is off the circle's centre by O(m/p), so R^2_h < 1
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
    assert len(c) == 57 and c[:3] == [0, 100, 200] and c[20] == 2000 and c[21] == 2500 and c[-1] == 20_000   # the authors' cadence: every 100 to 2000, then every 500
    recs = [{"epoch": e, "test_acc": a} for e, a in [(0, .1), (0, .2), (100, .995), (100, .98), (200, .99), (200, 1.0)]]
    assert grok_epoch(recs) == 200


def test_resume_is_bit_exact(tmp_path):
    kw = dict(p=7, seeds=[0, 1], every=2, coarse_after=4, coarse_every=2, batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    a = grok_run(epochs=6, branch_at=2, state=tmp_path / "a.pt", **kw)
    grok_run(epochs=4, branch_at=2, state=tmp_path / "b.pt", **kw)           # stop early, then resume to 6
    b = grok_run(epochs=6, branch_at=2, state=tmp_path / "b.pt", **kw)
    key = lambda r: (r["epoch"], r["seed"], r["test_acc"], r["train_acc"], r["r_nec"])
    assert [key(r) for r in a["checkpoints"]] == [key(r) for r in b["checkpoints"]]
    sa, sb = torch.load(tmp_path / "a.pt", weights_only=True), torch.load(tmp_path / "b.pt", weights_only=True)
    for m1, m2 in zip(sa["main"]["models"], sb["main"]["models"]):
        assert all(torch.equal(m1[k], m2[k]) for k in m1)


def test_seed_is_independent_of_its_neighbours():
    d = modular_addition_data(7)
    kw = dict(batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    a, b = GrokTrainer(d, [2], **kw), GrokTrainer(d, [0, 2], **kw)
    for _ in range(3): a.train_epoch(); b.train_epoch()
    assert all(torch.equal(a.models[0].state_dict()[k], b.models[1].state_dict()[k]) for k in a.models[0].state_dict())



# --- the last-position step ------------------------------------------------------------------------------
def test_last_position_logits_is_the_model_at_the_last_position():
    d = modular_addition_data(11)
    m = Transformer(grok_config(11, seed=3, d_model=32, d_mlp=64))
    with torch.no_grad():
        m.eval(); torch.testing.assert_close(last_position_logits(m, d.x_test), m(d.x_test)[:, -1], atol=1e-5, rtol=1e-5)
    # training mode without dropout: the same loss and gradient as the full model (dropout aside, the modes coincide)
    m0 = Transformer(grok_config(11, seed=3, d_model=32, d_mlp=64, dropout=0.0)).train()
    y = d.y_test
    g1 = torch.autograd.grad(torch.nn.functional.cross_entropy(m0(d.x_test)[:, -1], y), list(m0.parameters()))
    g2 = torch.autograd.grad(torch.nn.functional.cross_entropy(last_position_logits(m0, d.x_test), y), list(m0.parameters()))
    for a, b in zip(g1, g2): torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # with dropout, training-mode logits are random around the eval-mode ones (the masks are live), and differ between calls
    m.train(); a, b = last_position_logits(m, d.x_test[:64]), last_position_logits(m, d.x_test[:64])
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="model: expected a post-LN"):
        last_position_logits(Transformer(dataclasses.replace(grok_config(11, d_model=32, d_mlp=64), norm="pre")), d.x_test[:4])


def test_fast_trainer_learns_like_the_full_one():
    "Three full-batch epochs on p = 7: the fast and the full step move the weights the same way (dropout 0, so the same numbers)."
    d = modular_addition_data(7); kw = dict(batch_size=None, model_kwargs=dict(d_model=16, d_mlp=32, dropout=0.0))
    a, b = GrokTrainer(d, [0], **kw), GrokTrainer(d, [0], fast=True, **kw)
    for _ in range(3): a.train_epoch(); b.train_epoch()
    # b_K is skipped: a shift of every key leaves the softmax unchanged, so its gradient is 0 up to rounding, which Adam's
    # normalisation turns into steps of random sign in either path (and which no output depends on)
    for k, v in a.models[0].state_dict().items():
        if not k.endswith("attn.b_K"): torch.testing.assert_close(b.models[0].state_dict()[k], v, atol=1e-5, rtol=1e-4)
    with torch.no_grad(): torch.testing.assert_close(a.models[0].eval()(d.x_test)[:, -1], b.models[0].eval()(d.x_test)[:, -1], atol=1e-4, rtol=1e-4)
    assert GrokTrainer.from_state(b.state_dict(), d).fast


def test_track_core_spectrum_is_its_clocks():
    d = modular_addition_data(11)
    m = Transformer(grok_config(11, seed=1, d_model=32, d_mlp=64)).eval()
    a, row = track_core(m, d, spectrum=True), track_core(m, d)
    assert {k: v for k, v in a.items() if not k.startswith("eigenvalues")} == row          # the JSON row is unchanged
    H = last_position_states(m, d.x_test)
    Q = core_dimensions(H, d.y_test, m.unembed.W_U.detach().double().numpy().T, m.unembed.b_U.detach().double().numpy())["basis"]
    Z = H @ Q[:, :row["r_nec"]]
    for key, kw in (("eigenvalues", {}), ("eigenvalues_holdout", dict(ridge=1.0, holdout=3))):   # max(3, round(0.075 * 11)) = 3
        ev = clock(Z, d.y_test, 11, **kw)["operator"].eigenvalues
        np.testing.assert_allclose(np.sort_complex(a[key]), np.sort_complex(ev), atol=1e-10)
    assert rotational_modes(a["eigenvalues"], 11)["modes"] == row["modes"]


# --- resume between checkpoints, and behind its grok.json ---------------------------------------------------
_RUN = dict(p=7, seeds=[0, 1], every=2, coarse_after=4, coarse_every=4, batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32),
            branch_at=2, fast_after=4, state_every=1)
_key = lambda r: (r["epoch"], r["seed"], r["test_acc"], r["train_acc"], r["r_nec"], r["modes"], r["holdout_r2"])


def test_killed_between_checkpoints_resumes_exactly(tmp_path, monkeypatch):
    a = grok_run(epochs=12, out=tmp_path / "a", state=tmp_path / "a.pt", **_RUN)
    calls = {"n": 0}; real = GrokTrainer.train_epoch
    def dies(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 17: raise KeyboardInterrupt     # mid-run: main and branch in lockstep past the branch, between checkpoints
        return real(self, *args, **kw)
    monkeypatch.setattr(GrokTrainer, "train_epoch", dies)
    with pytest.raises(KeyboardInterrupt): grok_run(epochs=12, out=tmp_path / "b", state=tmp_path / "b.pt", **_RUN)
    monkeypatch.setattr(GrokTrainer, "train_epoch", real)
    st = torch.load(tmp_path / "b.pt", weights_only=True)
    assert st["main"]["passes"] - 1 not in (0, 2, 4, 8, 12) and st["branch_start"] is None and not list(tmp_path.glob("**/*.tmp"))
    b = grok_run(epochs=12, out=tmp_path / "b", state=tmp_path / "b.pt", **_RUN)
    for arm in ("main", "branch"):
        ra = a["checkpoints"] if arm == "main" else a["branch"]["checkpoints"]; rb = b["checkpoints"] if arm == "main" else b["branch"]["checkpoints"]
        assert [_key(r) for r in ra] == [_key(r) for r in rb]
    sa, sb = torch.load(tmp_path / "a.pt", weights_only=True), torch.load(tmp_path / "b.pt", weights_only=True)
    for arm in ("main", "branch"):
        assert sa[arm]["fast"] and sa[arm]["passes"] == 13
        assert all(torch.equal(m1[k], m2[k]) for m1, m2 in zip(sa[arm]["models"], sb[arm]["models"]) for k in m1)


def test_fast_after_leaves_the_earlier_epochs_alone(tmp_path):
    "Up to `fast_after` the run is the full-step run, row for row; the epochs after it train with the last-position step."
    a = grok_run(epochs=12, state=tmp_path / "a.pt", **_RUN)
    b = grok_run(epochs=4, state=tmp_path / "b.pt", **{**_RUN, "fast_after": None})
    upto = lambda rows: [_key(r) for r in rows if r["epoch"] <= _RUN["fast_after"]]
    assert upto(a["checkpoints"]) == upto(b["checkpoints"]) and upto(a["branch"]["checkpoints"]) == upto(b["branch"]["checkpoints"])
    sb = torch.load(tmp_path / "b.pt", weights_only=True)
    assert sb["main"]["passes"] == 5 and not sb["main"]["fast"] and torch.load(tmp_path / "a.pt", weights_only=True)["main"]["fast"]


def test_state_behind_its_grok_json_keeps_the_rows_ahead(tmp_path):
    a = grok_run(epochs=12, out=tmp_path / "a", state=tmp_path / "a.pt", **_RUN)
    grok_run(epochs=8, out=tmp_path / "c", state=tmp_path / "c.pt", **_RUN)
    (tmp_path / "c" / "grok.json").write_text((tmp_path / "a" / "grok.json").read_text())   # a grok.json ahead of the state
    for f in ("seed0_main_end.pt", "seed0_branch_end.pt"): (tmp_path / "c" / f).write_bytes((tmp_path / "a" / f).read_bytes())
    c = grok_run(epochs=12, out=tmp_path / "c", state=tmp_path / "c.pt", **_RUN)
    assert [_key(r) for r in c["checkpoints"]] == [_key(r) for r in a["checkpoints"]]
    assert [_key(r) for r in c["branch"]["checkpoints"]] == [_key(r) for r in a["branch"]["checkpoints"]]
    assert c["weights"] == a["weights"]
    # other settings: the old grok.json is not merged (its rows are not this run's)
    d = grok_run(epochs=8, out=tmp_path / "c", state=tmp_path / "d.pt", **{**_RUN, "lr": 2e-3})
    assert max(r["epoch"] for r in d["checkpoints"]) == 8

# --- one checkpoint format, atomic writes ---------------------------------------------------------------
def test_grok_run_weights_are_project_checkpoints(tmp_path):
    from factornb.train import read_checkpoint, load_checkpoint
    kw = dict(p=7, seeds=[0, 1], every=2, batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    res = grok_run(epochs=4, branch_at=2, out=tmp_path / "o", state=tmp_path / "s.pt", save_seed=1, save_epochs=[2], **kw)
    assert sorted(f.name for f in (tmp_path / "o").iterdir()) == ["grok.json", "seed1_branch_end.pt", "seed1_epoch2.pt", "seed1_main_end.pt"]
    for tag, v in res["weights"].items():
        ck = read_checkpoint(tmp_path / "o" / v["file"], "transformer")
        assert ck["step"] == v["epoch"] and ck["state_dict"]["embed.W_E"].dtype == torch.float16 and ck["model_config"]["seed"] == 1
        assert isinstance(load_weights(tmp_path / "o" / v["file"]), Transformer)
    assert res["weights"]["epoch2"]["epoch"] == 2 and res["weights"]["main_end"]["epoch"] == 4
    # the resume state is a plain dict: torch.load(weights_only=True) reads it
    st = torch.load(tmp_path / "s.pt", weights_only=True)
    assert st["main"]["passes"] == 5 and st["branch"]["passes"] == 5 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="path: .* is not a factornb checkpoint"):
        torch.save({"config": {}, "state_dict": {}}, tmp_path / "old.pt"); load_weights(tmp_path / "old.pt")
    with pytest.raises(ValueError, match="save_epochs"): grok_run(epochs=4, branch_at=None, save_epochs=[3], **kw)
    with pytest.raises(ValueError, match="save_seed"): grok_run(epochs=4, branch_at=None, save_seed=5, **kw)


def test_bad_state_file_is_a_value_error(tmp_path):
    kw = dict(p=7, seeds=[0], epochs=2, every=2, branch_at=None, batch_size=16, model_kwargs=dict(d_model=16, d_mlp=32))
    (tmp_path / "s.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="state: .* is not a readable grok-run state"): grok_run(state=tmp_path / "s.pt", **kw)
    torch.save({"main": None}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="state: .* is not a grok-run state"): grok_run(state=tmp_path / "t.pt", **kw)


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


# --- CLI bad input: one line on stderr, exit 2, naming the flag ------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["grok", "--plot-only", "--out", "{tmp}/missing"], "--out"),
    (["grok", "--every", "0"], "--every"), (["grok", "--every", "-5"], "--every"),
    (["grok", "--epochs", "0"], "--epochs"), (["grok", "--p", "2"], "--p"), (["grok", "--seeds", "0", "-1"], "--seeds"),
    (["grok", "--weight-decay", "-1"], "--weight-decay"), (["grok", "--branch-weight-decay", "nan"], "--branch-weight-decay"),
    (["grok", "--branch-at", "-100"], "--branch-at"), (["grok", "--fast-after", "-1"], "--fast-after"), (["grok", "--lr", "0"], "--lr"), (["grok", "--batch-size", "-3"], "--batch-size"),
    (["grok", "--layers", "0"], "--layers"), (["grok", "--save-epochs", "-100"], "--save-epochs"), (["grok", "--threads", "0"], "--threads"),
])
def test_cli_bad_input_exits_2_naming_the_flag(argv, flag, tmp_path, capsys):
    from factornb.cli import main
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv: argv += ["--out", str(tmp_path / "o")]
    assert main(["cores", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"factornb cores: error: {flag}: "), err
    assert not (tmp_path / "o").exists()                                     # rejected before anything was written


def test_cli_grok_plot_only_redraws(tmp_path, capsys):
    from factornb.cli import main
    args = ["cores", "grok", "--out", str(tmp_path / "g"), "--state", str(tmp_path / "s.pt"), "--p", "7", "--epochs", "2", "--every", "2",
            "--seeds", "0", "--batch-size", "0", "--quiet"]
    assert main(args) == 0
    (tmp_path / "g" / "grok.png").unlink()
    assert main(args + ["--plot-only"]) == 0 and (tmp_path / "g" / "grok.png").stat().st_size > 0
