"""Tests for factornb.explore (chapter 00's and 01b's explorers: test_explore_processes.py): the explorers' figures over a grid of parameters (edges included), their data against
independent computations, bad parameters, and each widget built and moved."""
import json
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from factornb import explore as ex

torch.set_num_threads(1)


# --- 02c: training scrubber ------------------------------------------------------------------------------------
def test_training_explorer_scrubs_snapshots():
    run = ex.tiny_training_run()
    snap = run["snapshots"]
    # R^2 derived from the stored RMSE equals fit_belief_regression's own per-factor R^2 at the last step
    np.testing.assert_allclose(snap["per_factor_r2"][-1], run["final"]["per_factor_r2"], atol=1e-9)
    for step in (snap["steps"][0], snap["steps"][len(snap["steps"]) // 2], snap["steps"][-1]):
        d = ex.training_explorer_figure(snap, step=step).explorer_data
        i = snap["steps"].index(step)
        assert d["dims95"] == snap["dims95"][i] == next(h["dims95"] for h in run["history"] if h["step"] == step)
        assert d["vary_one_step"] == step                                  # vary-one measured at every analysed step here
        assert d["overlap"].shape[1] == 1                                  # 2 factors: one pair
        assert ((d["overlap"] >= -1e-12) & (d["overlap"] <= 1 + 1e-12)).all()
    # the run result itself is accepted too
    assert ex.training_explorer_figure(run).explorer_data["step"] == snap["steps"][-1]
    assert list(ex.training_controls(run)["step"].options) == snap["steps"]


def test_snapshots_from_models_agree_with_training_snapshots():
    run = ex.tiny_training_run()
    tokens = run["process"].sample(300, 8, seed=500_001)               # run_experiment's analysis set
    s = ex.snapshots_from_models({80: run["model"]}, run["process"], tokens, vary_one=False)
    assert s["dims95"] == [run["final"]["dims95"]]
    np.testing.assert_allclose(s["per_factor_r2"][0], run["final"]["per_factor_r2"], atol=1e-9)
    d = ex.training_explorer_figure(s).explorer_data
    assert d["vary_one_step"] is None and d["overlap"] is None


# --- 03: ACE --------------------------------------------------------------------------------------------------
def test_ace_explorer_data_against_independent_algebra():
    data = ex.small_markov_models()
    for rank in (1, 3, data.max_rank):
        d = ex.ace_explorer_figure(data, rank=rank, seed_a=0, seed_b=1).explorer_data
        A, B = data.seed_data(0), data.seed_data(1)
        assert (d["keep"], d["remove"]) == (A["scan"]["keep"][rank - 1], A["scan"]["remove"][rank - 1])
    # the closed-form scan the explorer uses equals chapter 03's forward-pass interventions (rank_scan), every rank
    from factornb.ace import rank_scan
    A = data.seed_data(0)
    ref = rank_scan(data.models[0], data.inputs, data.targets, data.hook_name, A["core"].basis)
    np.testing.assert_allclose(A["scan"]["keep"], ref["keep"], atol=1.5 / data.targets.numel())   # at most one argmax tie flips
    np.testing.assert_allclose(A["scan"]["remove"], ref["remove"], atol=1.5 / data.targets.numel())
    for rank in (1, 3, data.max_rank):
        d = ex.ace_explorer_figure(data, rank=rank, seed_a=0, seed_b=1).explorer_data
        A, B = data.seed_data(0), data.seed_data(1)
        # principal angles: arccos of the singular values of Qa^T Qb (bases orthonormal)
        Qa, Qb = A["core"].basis[:, :rank], B["core"].basis[:, :rank]
        np.testing.assert_allclose(Qa.T @ Qa, np.eye(rank), atol=1e-10)
        cos = np.linalg.svd(Qa.T @ Qb, compute_uv=False)
        np.testing.assert_allclose(np.sort(d["principal_angles"]), np.sort(np.degrees(np.arccos(np.clip(cos, -1, 1)))), atol=1e-6)
        # eigenvalues: least squares of centred next on centred current core coordinates, by numpy directly
        Z = A["Z"][..., :rank]
        X0 = Z[:, :-1].reshape(-1, rank); X1 = Z[:, 1:].reshape(-1, rank)
        M = np.linalg.lstsq(X0 - X0.mean(0), X1 - X1.mean(0), rcond=None)[0]
        ev = np.linalg.eigvals(M)
        np.testing.assert_allclose(np.sort_complex(d["eigenvalues"][0]), np.sort_complex(ev), atol=1e-8)
        # canonical correlations: singular values of the whitened cross-covariance (QR whitening, no regulariser)
        za = (Z.reshape(-1, rank) - Z.reshape(-1, rank).mean(0)); zb = B["Z"][..., :rank].reshape(-1, rank); zb = zb - zb.mean(0)
        qa, qb = np.linalg.qr(za)[0], np.linalg.qr(zb)[0]
        np.testing.assert_allclose(d["cca"], np.linalg.svd(qa.T @ qb, compute_uv=False)[:rank], atol=1e-5)
    same = ex.ace_explorer_figure(data, rank=2, seed_a=1, seed_b=1).explorer_data
    np.testing.assert_allclose(same["principal_angles"], 0, atol=1e-5)
    np.testing.assert_allclose(same["cca"], 1, atol=1e-6)


# --- 04: grokking scrubber ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grok():
    return ex.grok_explorer_data()


def _grok_rows():
    return json.loads((ex.results_dir("cores_grok") / "grok.json").read_text())


@pytest.mark.parametrize("arm", ["main", "branch"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grok_explorer_rows_are_the_runs(grok, arm, seed):
    res = _grok_rows()
    stored = {r["epoch"]: r for r in res["checkpoints"] if r["seed"] == seed}
    if arm == "branch":       # the branch shares the main arm's rows up to its start, then has its own
        stored = {e: r for e, r in stored.items() if e <= res["branch"]["from_epoch"]}
        stored.update({r["epoch"]: r for r in res["branch"]["checkpoints"] if r["seed"] == seed})
    epochs = sorted(stored)   # an arm's own checkpoints: the weight-decay arm may be one checkpoint ahead of the branch
    for epoch in (epochs[0], res["grok_epoch"], epochs[len(epochs) // 2], epochs[-1]):   # first and last epoch included
        fig = ex.grok_explorer_figure(grok, epoch=epoch, seed=seed, arm=arm)
        d = fig.explorer_data
        np.testing.assert_array_equal(d["epochs"], sorted(stored))
        np.testing.assert_array_equal(fig.axes[0].lines[1].get_ydata(), [stored[e]["test_acc"] for e in sorted(stored)])
        # core dims drawn up to the chosen epoch only, and they are the rows' r_nec / r_suf_strict
        upto = [e for e in sorted(stored) if e <= epoch]
        np.testing.assert_array_equal(d["r_nec"], [stored[e]["r_nec"] for e in upto])
        np.testing.assert_array_equal(fig.axes[1].lines[1].get_ydata(), [stored[e]["r_suf_strict"] for e in upto])
        assert (d["eigenvalues"] is not None) == (seed == grok.saved_seed and epoch in grok.saved_epochs(arm))
        plt.close(fig)


def test_grok_explorer_rows_agree_with_the_saved_weights(grok):
    "The row drawn at a saved checkpoint is the run's row for it: accuracies recomputed here by a forward pass, r_nec by chapter 04."
    from factornb.grokking import modular_addition_data, load_weights, track_core
    res = _grok_rows()
    data = modular_addition_data(res["p"], res["settings"].get("train_fraction", 0.5))
    files = {("branch" if t == "branch_end" else "main", w["epoch"]): w["file"] for t, w in res["weights"].items()}
    files.update({("main", int(f.stem.split("epoch")[1])): f.name for f in grok.path.glob(f"seed{grok.saved_seed}_epoch*.pt")})
    assert len(files) >= 4
    for (arm, epoch), f in sorted(files.items()):
        row = ex.grok_explorer_figure(grok, epoch=epoch, seed=grok.saved_seed, arm=arm).explorer_data["row"]
        m = load_weights(grok.path / f)
        with torch.no_grad():
            acc = {k: float((m(x)[:, -1].argmax(-1) == y).double().mean()) for k, x, y in
                   (("train_acc", data.x_train, data.y_train), ("test_acc", data.x_test, data.y_test))}
        # float16 weights vs the run's float32 model: measured, weights x (1 + 1e-3 noise), 3 seeds, 5 checkpoints: no prediction
        # changed and r_nec moved by at most 1; allowed: 2 pairs, and chapter 04's r_nec tolerance of 1
        for k in acc: assert abs(acc[k] - row[k]) <= 2 / len(data.y_test), (arm, epoch, k, acc[k], row[k])
        assert abs(track_core(m, data)["r_nec"] - row["r_nec"]) <= 1, (arm, epoch)
        plt.close("all")


def test_grok_explorer_spectra_are_the_chapters_clocks(grok):
    from factornb.grokking import modular_addition_data, load_weights, track_core, last_position_states, core_dimensions, clock, rotational_modes
    res = _grok_rows()
    saved = {w["epoch"] for w in res["weights"].values()}
    assert saved <= set(grok.saved_epochs("main")) | set(grok.saved_epochs("branch"))
    data = modular_addition_data(res["p"])
    # the branch's end checkpoint: its own weights, re-measured by chapter 04's track_core
    f = grok.path / res["weights"]["branch_end"]["file"]
    e = res["weights"]["branch_end"]["epoch"]
    d = ex.grok_explorer_figure(grok, epoch=e, seed=grok.saved_seed, arm="branch").explorer_data
    row = track_core(load_weights(f), data)
    assert d["spectrum"]["r_nec"] == row["r_nec"]
    # the eigenvalues drawn are those of track_core's held-out clock: its near-circle fraction, from them
    assert rotational_modes(d["eigenvalues"], data.p)["frac_near"] == pytest.approx(row["frac_near_holdout"], abs=1e-12)
    # float16 weights vs the run's float32 model: r_nec within 1 of the stored row (chapter 04's tolerance)
    stored = next(r for r in res["branch"]["checkpoints"] if r["epoch"] == e and r["seed"] == grok.saved_seed)
    assert abs(d["spectrum"]["r_nec"] - stored["r_nec"]) <= 1
    # eigenvalues: the held-out-block ridge fit of the class means of the r_nec-dim core, recomputed here
    m = load_weights(f); H = last_position_states(m, data.x_test)
    Q = core_dimensions(H, data.y_test, m.unembed.W_U.detach().double().numpy().T, m.unembed.b_U.detach().double().numpy())["basis"]
    ev = clock(H @ Q[:, :row["r_nec"]], data.y_test, data.p, ridge=1.0, holdout=4)["operator"].eigenvalues   # track_core's: 4 classes at p 53
    np.testing.assert_allclose(np.sort_complex(d["eigenvalues"]), np.sort_complex(ev), atol=1e-10)
    # what is drawn is that spectrum
    fig = ex.grok_explorer_figure(grok, epoch=e, seed=grok.saved_seed, arm="branch")
    pts = np.concatenate([c.get_offsets() for c in fig.axes[2].collections])
    np.testing.assert_allclose(np.sort_complex(pts[:, 0] + 1j * pts[:, 1]), np.sort_complex(ev), atol=1e-10)
    # before the branch point the two arms share the checkpoint (and its spectrum)
    first = grok.saved_epochs("main")[0]
    assert first < res["branch"]["from_epoch"]
    a = ex.grok_explorer_figure(grok, epoch=first, arm="main").explorer_data["eigenvalues"]
    b = ex.grok_explorer_figure(grok, epoch=first, arm="branch").explorer_data["eigenvalues"]
    np.testing.assert_array_equal(a, b)


def test_grok_explorer_on_a_tiny_run(tmp_path, monkeypatch):
    # a run made here (p 7, one seed, two checkpoints, a branch): the explorer reads any `factornb cores grok` folder,
    # and $FACTORNB_RESULTS points the default at it (as it would for an installed package)
    from factornb.grokking import grok_run
    res = grok_run(p=7, seeds=[0], epochs=4, every=2, branch_at=2, batch_size=None, out=tmp_path / "cores_grok", save_epochs=[0],
                   model_kwargs=dict(d_model=16, d_mlp=32))
    monkeypatch.setenv(ex.RESULTS_ENV, str(tmp_path))
    g = ex.GrokExplorerData()
    assert g.path == tmp_path / "cores_grok"
    assert g.epochs == [0, 2, 4] and g.seeds == [0] and g.arms == ["main", "branch"]
    assert g.saved_epochs("main") == sorted({0} | {w["epoch"] for t, w in res["weights"].items() if t != "branch_end"})
    for epoch in g.epochs:
        d = ex.grok_explorer_figure(g, epoch=epoch, arm="branch").explorer_data
        assert d["row"]["epoch"] == epoch


def test_results_folder_missing_is_a_clear_error(tmp_path, monkeypatch):
    "An installed package has no results/ beside it: the error names the folder it looked for and both ways out."
    import factornb
    monkeypatch.delenv(ex.RESULTS_ENV, raising=False)
    monkeypatch.setattr(factornb, "__file__", str(tmp_path / "site-packages" / "factornb" / "__init__.py"))
    for build in (ex.GrokExplorerData, ex.AgreementExplorerData):
        with pytest.raises(ValueError, match="FACTORNB_RESULTS") as e: build()
        assert str(tmp_path / "site-packages" / "results") in str(e.value)
    monkeypatch.setenv(ex.RESULTS_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError) as e: ex.results_dir("cores_grok")
    assert str(tmp_path / "elsewhere" / "cores_grok") in str(e.value) and "$FACTORNB_RESULTS" in str(e.value)


# --- 05: agreement flip strength -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agr():
    return ex.agreement_explorer_data()


def _clean_copulas(data, sentence):
    x = torch.tensor([data.tokenizer(sentence)["input_ids"]])
    with torch.no_grad(): logits = data.model(input_ids=x).logits[0, -1].double()
    p = torch.softmax(logits, -1)[[data.ids[w] for w in ("is", "was", "are", "were")]].numpy()
    return p, float(logits[data.ids["are"]] + logits[data.ids["were"]] - logits[data.ids["is"]] - logits[data.ids["was"]])


def test_agreement_explorer_core_is_the_chapters(agr):
    from factornb.agreement import prompt_sets, core_spectrum
    committed = json.loads((ex.results_dir("cores_agreement") / "agreement.json").read_text())["models"]["small"]
    assert agr.layer == committed["selected_layer"]
    # chapter 05's inputs: the extraction prompts of prompt_sets() (the core is then agreement_core on them, the same code)
    assert agr.extraction == prompt_sets()["extraction"].prompts
    # and the spectrum that `factornb cores agreement` (measure_agreement) committed for this model and layer
    spectrum, ref = core_spectrum(agr.core), committed["spectrum"][str(agr.layer)]     # float32 forward passes: differ across CPUs
    for k in ("sigma2_over_sigma1", "energy_1", "energy_2"): assert spectrum[k] == pytest.approx(ref[k], rel=1e-4), k


def test_agreement_explorer_sentences_are_the_grammars(agr):
    from factornb.grammar import make_lexicon, head_number
    lex = make_lexicon(); words = set(lex.words)
    number = {w: i for pairs in [*lex.nouns.values(), lex.irregular] for p in pairs for i, w in enumerate(p)}
    heads = [head_number(s) for s in agr.sentences]
    assert sorted(set(heads)) == [0, 1] and abs(sum(heads) - len(heads) / 2) <= 1      # singular and plural heads, balanced
    for s, h in zip(agr.sentences, heads):
        assert set(s.replace(",", " ").split()) <= words, s
        assert 1 - h in [number[w] for w in s.split() if w in number], s                 # an attractor of the other number
        assert agr.tokenizer.unk_token_id not in agr.tokenizer(s)["input_ids"], s
    with pytest.raises(ValueError, match="sentences"): ex.AgreementExplorerData((agr.model, agr.tokenizer), sentences=["The key to the cabinets"])
    with pytest.raises(ValueError, match="sentences"): ex.AgreementExplorerData((agr.model, agr.tokenizer), sentences="the key")
    with pytest.raises(ValueError, match="n"): ex.AgreementExplorerData((agr.model, agr.tokenizer), n=100)


@pytest.mark.parametrize("strength", [-2.0, -1.0, -0.25, 0.0, 0.5, 1.0, 1.6, 2.0])
def test_agreement_explorer_matches_library(agr, strength):
    from factornb.agreement import copula_probabilities, intervened_margins
    from factornb.activations import reflect
    hook = lambda pos: reflect(agr.core.basis, agr.core.mean, strength, pos)
    for sentence in (agr.sentences[0], agr.sentences[1], agr.sentences[-1]):
        fig = ex.agreement_explorer_figure(agr, sentence=sentence, strength=strength)
        d = fig.explorer_data
        # float32 model: the same forward pass, batched differently, agrees to ~1e-6
        np.testing.assert_allclose(d["probabilities"], copula_probabilities(agr.model, agr.tokenizer, [sentence], agr.layer, hook)[0], atol=1e-6)
        assert d["margin"] == pytest.approx(intervened_margins(agr.model, agr.tokenizer, [sentence], agr.layer, hook)[0], abs=1e-4)
        # the batched curve (one strength per row) at this strength is the library's flip too
        i = int(np.argmin(np.abs(agr.strengths - strength)))
        assert agr.strengths[i] == pytest.approx(strength, abs=1e-12)
        np.testing.assert_allclose(d["curve_probabilities"][i], d["probabilities"], atol=1e-6)
        assert d["curve_margins"][i] == pytest.approx(d["margin"], abs=1e-4)
        # the bars and the marker drawn are those numbers
        np.testing.assert_array_equal([b.get_height() for b in fig.axes[0].containers[0]], d["probabilities"])
        marker = [l for l in fig.axes[2].lines if l.get_marker() == "o"]
        assert len(marker) == 1 and list(marker[0].get_xydata()[0]) == [strength, d["margin"]]
        plt.close(fig)


def test_agreement_explorer_strength_zero_is_the_model_and_the_sign_flips_the_verb(agr):
    for sentence in agr.sentences:
        p, m = _clean_copulas(agr, sentence)
        d = ex.agreement_explorer_figure(agr, sentence=sentence, strength=0.0).explorer_data
        np.testing.assert_allclose(d["probabilities"], p, atol=1e-6)          # no hook vs a hook at strength 0: float32 rounding
        np.testing.assert_allclose(d["clean_probabilities"], p, atol=1e-6)
        assert d["margin"] == pytest.approx(m, abs=1e-4)
        own = d["plural"]
        assert own in (0, 1)
        wins = lambda q: int(q[2:].sum() > q[:2].sum())                     # 1: are/were win
        assert wins(p) == own                                               # the model agrees with its subject
        # the chapter's flip (s = 1) makes the other number win; s = -1 (the same move, the other sign of 1 - 2s) keeps it
        flip = ex.agreement_explorer_figure(agr, sentence=sentence, strength=1.0).explorer_data
        back = ex.agreement_explorer_figure(agr, sentence=sentence, strength=-1.0).explorer_data
        assert wins(flip["probabilities"]) == 1 - own and wins(back["probabilities"]) == own
        assert np.sign(flip["margin"]) == -np.sign(m) and np.sign(back["margin"]) == np.sign(m)
        assert abs(back["margin"]) > abs(m)                                 # s < 0 pushes further the way the model leans
        plt.close("all")


# --- bad parameters --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,kw,name", [
    (ex.training_explorer_figure, dict(step=-5), "step"), (ex.training_explorer_figure, dict(snapshots={"x": 1}), "snapshots"),
    (ex.ace_explorer_figure, dict(rank=0), "rank"), (ex.ace_explorer_figure, dict(rank=7), "rank"),
    (ex.ace_explorer_figure, dict(seed_a=42), "seed_a"), (ex.ace_explorer_figure, dict(seed_b="0"), "seed_b"),
    (ex.grok_explorer_figure, dict(epoch=150), "epoch"), (ex.grok_explorer_figure, dict(epoch=True), "epoch"),
    (ex.grok_explorer_figure, dict(seed=3), "seed"), (ex.grok_explorer_figure, dict(arm="wd 0"), "arm"),
    (ex.agreement_explorer_figure, dict(strength=2.01), "strength"), (ex.agreement_explorer_figure, dict(strength=float("nan")), "strength"),
    (ex.agreement_explorer_figure, dict(strength="1"), "strength"), (ex.agreement_explorer_figure, dict(sentence="The key is"), "sentence"),
])
def test_bad_parameters(fn, kw, name):
    with pytest.raises(ValueError, match=name):
        fn(**kw)


def test_bad_inputs_to_builders():
    with pytest.raises(ValueError, match="result"): ex.training_snapshots({"history": []})
    with pytest.raises(ValueError, match="models"): ex.AceExplorerData({}, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="data"): ex.ace_explorer_figure(data="not data")
    with pytest.raises(TypeError, match="data"): ex.grok_explorer_figure(data="results/cores_grok")
    with pytest.raises(TypeError, match="data"): ex.agreement_explorer_figure(data="small")
    with pytest.raises(ValueError, match="path"): ex.GrokExplorerData("/nonexistent-folder")
    with pytest.raises(TypeError, match="model"): ex.AgreementExplorerData(model=3)
    with pytest.raises(TypeError, match="figure_fn"): ex.explorer_widget(3, {"x": __import__("ipywidgets").FloatSlider()})
    with pytest.raises(TypeError, match="controls"): ex.explorer_widget(ex.ace_explorer_figure, {})


# --- widgets: build each and move a control ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: (ex.training_explorer_figure, ex.training_controls(), {}, "step", ex.tiny_training_run()["snapshots"]["steps"][1],
             lambda f: f.explorer_data["step"], lambda: ex.tiny_training_run()["snapshots"]["steps"][1]),
    lambda: (ex.ace_explorer_figure, ex.ace_controls(), {}, "rank", 2, lambda f: f.explorer_data["keep"],
             lambda: ex.small_markov_models().seed_data(0)["scan"]["keep"][1]),
    lambda: (ex.grok_explorer_figure, ex.grok_controls(), {}, "epoch", 2000, lambda f: f.explorer_data["row"]["test_acc"],
             lambda: ex.grok_explorer_figure(epoch=2000).explorer_data["row"]["test_acc"]),
    lambda: (ex.grok_explorer_figure, ex.grok_controls(epoch=300), {}, "seed", 2, lambda f: f.explorer_data["r_nec"],
             lambda: ex.grok_explorer_figure(epoch=300, seed=2).explorer_data["r_nec"]),
    lambda: (ex.grok_explorer_figure, ex.grok_controls(epoch=2000), {}, "arm", "branch", lambda f: f.explorer_data["eigenvalues"],
             lambda: ex.grok_explorer_figure(epoch=2000, arm="branch").explorer_data["eigenvalues"]),
    lambda: (ex.agreement_explorer_figure, ex.agreement_controls(), {}, "strength", -0.5, lambda f: f.explorer_data["probabilities"],
             lambda: ex.agreement_explorer_data().at(ex.agreement_explorer_data().sentences[0], -0.5)[0]),
    lambda: (ex.agreement_explorer_figure, ex.agreement_controls(), {}, "sentence", ex.AGREEMENT_EXPLORER_SENTENCES[2],
             lambda f: f.explorer_data["margin"], lambda: ex.agreement_explorer_data().at(ex.AGREEMENT_EXPLORER_SENTENCES[2], 1.0)[1]),
])
def test_widget_redraws_on_change(make):
    fn, controls, fixed, name, value, read, expected = make()
    w = ex.explorer_widget(fn, controls, **fixed)
    first = w.figure
    assert first is not None                                  # drawn once on creation, with the controls' values
    controls[name].value = value
    assert w.figure is not first                              # redrawn with the new value
    np.testing.assert_allclose(read(w.figure), expected())
