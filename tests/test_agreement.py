"Tests for factornb.agreement: bad input, references (scikit-learn, scipy, autograd, a full forward pass), the CLI on a tiny random GPT-2, training resume."
import json
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error(); transformers.utils.logging.disable_progress_bar()
from factornb import agreement as A
from factornb.agreement import (copula_ids, roc_auc, layer_hook, layer_states, last_token_readouts, agreement_margin, knob_fit,
                                agreement_score, fisher_combined, select_layer, null_auc_sd, mode_hook, generation_flip,
                                generate_with_flip, core_alignment, load_causal_lm, agreement_core, core_spectrum, accuracy,
                                prompt_sets, train_grammar_lm)
from factornb.grammar import make_lexicon, grammar_tokenizer
from factornb.activations import run_with_hooks
from factornb.cli import main

torch.set_num_threads(1)
PROMPTS = ["the keys near the cabinet", "the key that the men open", "in the past , the child of the guards"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A tiny random GPT-2 with the grammar's tokenizer, saved and loaded back through the CLI's loader."
    tok = grammar_tokenizer(make_lexicon()); torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_gpt2") / "tiny"
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path); tok.save_pretrained(path)
    model, tok = load_causal_lm(str(path))
    return path, model, tok


def test_bad_input(tiny):
    _, model, tok = tiny
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    t = Tokenizer(models.WordLevel({"<unk>": 0, "is": 1, "are": 2, "was": 3}, unk_token="<unk>")); t.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="tokenizer.*were"): copula_ids(PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>"))
    with pytest.raises(ValueError, match="layer"): layer_hook(model, 3)
    with pytest.raises(ValueError, match="layer"): layer_hook(model, -1)
    with pytest.raises(ValueError, match="layer"): last_token_readouts(model, tok, ["the key"], {"x": (5, None)})
    with pytest.raises(ValueError, match="prompts"): last_token_readouts(model, tok, [], {"x": (1, None)})
    with pytest.raises(ValueError, match="prompts"): layer_states(model, tok, [])
    with pytest.raises(ValueError, match="prompts"): generation_flip(model, tok, [], None, 1)
    with pytest.raises(ValueError, match="prompt"): generate_with_flip(model, tok, "  ", None, 1)
    with pytest.raises(ValueError, match="labels"): roc_auc([1.0, 2.0], [1, 1])
    with pytest.raises(ValueError, match="scores"): roc_auc([np.nan, 2.0], [0, 1])
    with pytest.raises(ValueError, match="same length"): roc_auc([1.0, 2.0, 3.0], [0, 1])
    with pytest.raises(ValueError, match="margins"): knob_fit(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="mode"): mode_hook(None, "invert")
    with pytest.raises(ValueError, match="probabilities"): agreement_score(np.ones((3, 3)), [0, 1, 0])
    with pytest.raises(ValueError, match="pvalues"): fisher_combined([0.0, 0.5])
    with pytest.raises(ValueError, match="rows"): select_layer([{"layer": 0, "flip_auc": 0.5, "remove_auc": 0.5}])
    with pytest.raises(ValueError, match="different prompts"): core_alignment({"a": np.ones(5), "b": np.ones(6)})
    with pytest.raises(ValueError, match="sets"): A.measure_agreement(model, tok, {"test": None})
    with pytest.raises(ValueError, match="scale"): train_grammar_lm("/nonexistent", "huge")
    with pytest.raises(ValueError, match="d_model"): A.grammar_lm(tok, 2, 30, 4)


@pytest.mark.parametrize("argv, needle", [
    (["cores", "agreement", "--model", "/no/such/model", "--out", "OUT"], "not available offline"),
    (["cores", "agreement", "--threads", "0", "--out", "OUT"], "--threads"),
    (["cores", "agreement-train", "--scale", "huge", "--out", "OUT"], "scale"),
    (["cores", "agreement-train", "--scale", "small", "--steps", "0", "--out", "OUT"], "steps")])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, needle):
    rc = main([str(tmp_path / "o") if a == "OUT" else a for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 1)), min_size=2, max_size=40))
def test_roc_auc_matches_sklearn(pairs):
    from sklearn.metrics import roc_auc_score
    s, y = np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs])
    if len(set(y)) < 2: return
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_null_auc_sd_matches_simulation():
    rng = np.random.default_rng(0)
    aucs = [roc_auc(rng.normal(size=60), np.r_[np.zeros(30), np.ones(30)]) for _ in range(4000)]
    assert np.std(aucs) == pytest.approx(null_auc_sd(30, 30), rel=0.05)   # 4000 draws: s.d. of the s.d. ~ 1.1%


def test_fisher_combined_matches_scipy_and_does_not_underflow():
    from scipy.stats import combine_pvalues, chi2
    for p in ([0.3], [0.01, 0.2, 0.5], [1e-8, 0.9, 0.04, 0.5]):
        assert fisher_combined(p) == pytest.approx(combine_pvalues(p, method="fisher").pvalue, rel=1e-10)
    assert fisher_combined([1e-30, 1e-40, 0.5], log10=True) == pytest.approx(np.log10(chi2.sf(-2 * np.log([1e-30, 1e-40, 0.5]).sum(), 6)), rel=1e-10)
    assert fisher_combined([1e-200] * 4, log10=True) < -790


def test_knob_within_classes_against_numpy():
    rng = np.random.default_rng(0); y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    z = rng.normal(size=100) + 3 * y; m = 2 * z + rng.normal(size=100)
    k = knob_fit(z, m, y)
    for c in (0, 1): assert k[f"r2_class{c}"] == pytest.approx(np.corrcoef(z[y == c], m[y == c])[0, 1] ** 2, abs=1e-12)
    assert k["r2"] > k["r2_within"]                 # the clusters add to the pooled fit
    assert knob_fit(z, rng.normal(size=100) + 5 * y, y)["r2_within"] < 0.1   # a margin set by the class only: no knob within


def test_accuracy_and_spectrum():
    P = np.array([[.5, .2, .2, .1], [.1, .1, .3, .5], [.4, .0, .6, .0]])
    assert accuracy(P, [0, 1, 0]).tolist() == [1.0, 1.0, 0.0]
    core = A.Core(np.eye(3)[:, :1], np.array([9.0, 0.8, 0.2]), np.zeros(3))
    sp = core_spectrum(core)
    assert sp["energy_rank"] == 3 and sp["sigma2_over_sigma1"] == pytest.approx(np.sqrt(0.8 / 9)) and sp["energy_1"] == pytest.approx(0.9)


def test_gradients_match_autograd_on_hidden_states(tiny):
    "layer_states' d margin / d h equals autograd through HF's own hidden_states (layers < L; HF's last one is after ln_f)."
    _, model, tok = tiny
    S = layer_states(model, tok, PROMPTS); ids = copula_ids(tok)
    for i, p in enumerate(PROMPTS):
        out = model(input_ids=torch.tensor([tok(p)["input_ids"]]), output_hidden_states=True)
        m = agreement_margin(out.logits[0, -1], ids)
        assert S.margins[i] == pytest.approx(m.item(), abs=1e-5)
        for l in range(model.config.n_layer):
            g = torch.autograd.grad(m, out.hidden_states[l], retain_graph=True)[0][0, -1].double().numpy()
            np.testing.assert_allclose(S.gradients[l][i], g, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(S.states[l][i], out.hidden_states[l][0, -1].detach().double().numpy(), rtol=1e-5, atol=1e-6)


def test_kv_cache_readouts_equal_full_forward_passes(tiny):
    "last_token_readouts (prefix once, then one token per edit) equals a full forward pass with the hook at the last position."
    _, model, tok = tiny
    S = layer_states(model, tok, PROMPTS * 3)
    core = agreement_core(S.states[1], S.gradients[1]); ids = copula_ids(tok)
    r = last_token_readouts(model, tok, PROMPTS, {"base": (0, None), "flip": (1, mode_hook(core, "flip")),
                                                  "remove": (2, mode_hook(core, "remove"))})
    for i, p in enumerate(PROMPTS):
        x = torch.tensor([tok(p)["input_ids"]]); T = x.shape[1]
        for name, l in (("flip", 1), ("remove", 2)):
            full = run_with_hooks(model, x, {layer_hook(model, l): mode_hook(core, name)([T - 1])})[0, -1].double()
            assert r[name]["margin"][i] == pytest.approx(float(agreement_margin(full, ids)), abs=1e-4)
        assert r["base"]["margin"][i] == pytest.approx(S.margins[i], abs=1e-4)
        np.testing.assert_allclose(r["base"]["probs"][i].sum(), torch.softmax(model(input_ids=x).logits[0, -1].double(), -1)[
            [ids[w] for w in ("is", "was", "are", "were")]].sum().item(), rtol=1e-4)


def test_flip_reflects_core_coordinate_about_mean(tiny):
    _, model, tok = tiny
    prompts = prompt_sets(16)["extraction"].prompts
    S = layer_states(model, tok, prompts); core = agreement_core(S.states[1], S.gradients[1])
    from factornb.activations import intervene
    x = torch.tensor([tok(prompts[0])["input_ids"]]); T = x.shape[1]; seen = {}
    def grab(h): seen["h"] = h[0, -1].detach().double().numpy(); return h
    with intervene(model, {"blocks.0.hook_resid_post": mode_hook(core, "flip")([T - 1])}), intervene(model, {"blocks.1.hook_resid_pre": grab}):
        with torch.no_grad(): model(input_ids=x)
    q, mu = core.basis[:, 0], core.mean; z0 = (S.states[1][0] - mu) @ q
    assert (seen["h"] - mu) @ q == pytest.approx(-z0, abs=1e-4)
    np.testing.assert_allclose(seen["h"] - ((seen["h"] - mu) @ q) * q, S.states[1][0] - z0 * q, atol=1e-4)


def test_select_layer_takes_the_lowest_flip_auc_and_breaks_ties_by_removal():
    rows = [{"layer": 1, "flip_auc": 0.00, "remove_auc": 0.95}, {"layer": 2, "flip_auc": 0.01, "remove_auc": 0.54},
            {"layer": 3, "flip_auc": 0.20, "remove_auc": 0.50}]
    assert select_layer(rows) == 1 and select_layer(rows, tie=0.02) == 2 and select_layer(rows, tie=0.25) == 3


def test_cli_on_tiny_random_gpt2(tiny, tmp_path):
    path, model, tok = tiny
    out = tmp_path / "run"; (out / "older").mkdir(parents=True)
    (out / "agreement.json").write_text(json.dumps({"models": {"older": {"selected_layer": 1}, "gone": {}, "tiny": {}}}))
    assert main(["cores", "agreement", "--out", str(out), "--model", str(path), "--n", "32", "--generation-seeds", "1",
                 "--max-new-tokens", "4"]) == 0
    models = json.loads((out / "agreement.json").read_text())["models"]
    assert sorted(models) == ["older", "tiny"] and models["older"] == {"selected_layer": 1}   # kept: its folder is there
    r = models["tiny"]
    assert sorted(r["sets"]) == ["irregular", "test", "val"] and 1 <= r["selected_layer"] <= 2
    sets = prompt_sets(32); y = sets["test"].labels; ids = copula_ids(tok)
    with torch.no_grad():     # the base AUC, recomputed prompt by prompt with the plain HF forward pass
        m = [agreement_margin(model(input_ids=torch.tensor([tok(p)["input_ids"]])).logits[0, -1], ids).item() for p in sets["test"].prompts]
    assert r["sets"]["test"]["base_auc"] == pytest.approx(roc_auc(m, y), abs=1e-9)
    yv = sets["val"].labels; tie = null_auc_sd(int(yv.sum()), int(len(yv) - yv.sum()))   # the layer obeys the rule on val
    assert r["selected_layer"] == select_layer(r["layers"]["val"], tie)
    best = min(row["flip_auc"] for row in r["layers"]["val"])
    assert r["layers"]["val"][r["selected_layer"] - 1]["flip_auc"] <= best + tie


def test_training_resumes_exactly(tmp_path, monkeypatch):
    "A run interrupted after its step-2 checkpoint and restarted ends with the same weights as an uninterrupted run."
    monkeypatch.setitem(A.CORPUS, "n_sentences", 300)
    monkeypatch.setitem(A.SCALES, "small", dict(A.SCALES["small"], d_model=16, n_heads=2))
    train_grammar_lm(tmp_path / "straight", "small", steps=4, checkpoint_every=2)
    calls = {"n": 0}; real = transformers.GPT2LMHeadModel.forward
    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3: raise KeyboardInterrupt
        return real(self, *a, **k)
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "forward", flaky)
    with pytest.raises(KeyboardInterrupt): train_grammar_lm(tmp_path / "resumed", "small", steps=4, checkpoint_every=2)
    assert (tmp_path / "resumed" / "train_state.pt").exists()
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "forward", real)
    r = train_grammar_lm(tmp_path / "resumed", "small", steps=4, checkpoint_every=2)
    assert not (tmp_path / "resumed" / "train_state.pt").exists() and len(r["loss_every_50"]) == 1
    a, _ = load_causal_lm(str(tmp_path / "straight")); b, _ = load_causal_lm(str(tmp_path / "resumed"))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()): assert torch.equal(p, q), n
    assert json.loads((tmp_path / "straight" / "training.json").read_text())["final_loss"] == pytest.approx(r["final_loss"], abs=1e-6)
