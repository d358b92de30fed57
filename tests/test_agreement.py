"Tests for factornb.agreement: bad input, the AUC against scikit-learn, gradients against autograd, tokenizer filtering, the CLI on a tiny random GPT-2."
import json
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
from factornb.agreement import (agreement_dataset, agreement_corpus, word_tokenizer, copula_ids, token_id, roc_auc, layer_hook,
                                layer_states, intervened_margins, agreement_margin, knob_fit, agreement_score, fisher_combined,
                                wilcoxon_tests, select_layer, null_auc_sd, mode_hook, generation_flip, generate_with_flip,
                                head_number, core_alignment, load_causal_lm, agreement_core, FLIP_DEMO_PROMPTS, HEADS, ATTRACTORS)
from factornb.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    "Word-level tokenizer whose vocabulary lacks 'mouse'/'mice' and 'boxes' (so those pairs must be filtered out)."
    corpus = [s for s in agreement_corpus(3000, seed=0) if not {"mouse", "mice", "boxes"} & set(s.replace(",", " ").split())]
    return word_tokenizer(corpus + [p for p in FLIP_DEMO_PROMPTS if "boxes" not in p])


@pytest.fixture(scope="module")
def tiny(tokenizer, tmp_path_factory):
    "A tiny random GPT-2 with that tokenizer, saved and loaded back through the CLI's loader."
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_gpt2")
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path); tokenizer.save_pretrained(path)
    model, tok = load_causal_lm(str(path))
    return path, model, tok


# --- bad input -----------------------------------------------------------------------------------------
def test_bad_input(tiny, tokenizer):
    _, model, tok = tiny
    no_were = word_tokenizer(["The key is red .", "The keys are red .", "In the past, the key was red ."])
    with pytest.raises(ValueError, match="tokenizer.*were"): copula_ids(no_were)
    with pytest.raises(ValueError, match="tokenizer.*head"): agreement_dataset(8, tokenizer=word_tokenizer(["The cabinet is are was were ."]))
    with pytest.raises(ValueError, match="n_samples"): agreement_dataset(7)
    with pytest.raises(ValueError, match="layer"): layer_hook(model, 3)
    with pytest.raises(ValueError, match="layer"): layer_hook(model, -1)
    with pytest.raises(ValueError, match="layer"): intervened_margins(model, tok, ["The key"], 5)
    with pytest.raises(ValueError, match="prompts"): intervened_margins(model, tok, [], 1)
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
    with pytest.raises(ValueError, match="head noun"): head_number("The cabinet near the door")
    with pytest.raises(ValueError, match="different prompts"): core_alignment({"a": np.ones(5), "b": np.ones(6)})


def test_cli_model_absent_exits_2_with_one_line(tmp_path, capsys):
    rc = main(["cores", "agreement", "--out", str(tmp_path / "o"), "--model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not available offline" in err and "Traceback" not in err


# --- reference comparisons and properties ----------------------------------------------------------------
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
    tiny = fisher_combined([1e-200] * 4, log10=True)
    assert np.isfinite(tiny) and tiny < -790          # at least as small as the product of the p-values, 1e-800, up to the tail's polynomial factor


def test_dataset_filtered_to_single_tokens(tokenizer):
    data = agreement_dataset(400, seed=3, tokenizer=tokenizer)
    words = {w for p in data.prompts for w in p.replace(",", " ").split()}
    assert not {"mouse", "mice", "box", "boxes"} & words
    assert all(tokenizer.unk_token_id not in tokenizer(p)["input_ids"] for p in data.prompts)
    for p, lab in zip(data.prompts, data.labels): assert head_number(p) == lab
    again = agreement_dataset(400, seed=3, tokenizer=tokenizer)
    assert again.prompts == data.prompts and (again.heldout == data.heldout).all()


def test_gradients_match_autograd_on_hidden_states(tiny):
    "layer_states' d margin / d h equals autograd through HF's own hidden_states (layers < L; HF's last one is after ln_f)."
    _, model, tok = tiny
    prompts = ["The keys next to the cabinet", "The key near the doors", "In the past, the child of the guards"]
    S = layer_states(model, tok, prompts)
    ids = copula_ids(tok)
    for i, p in enumerate(prompts):
        x = torch.tensor([tok(p)["input_ids"]])
        out = model(input_ids=x, output_hidden_states=True)
        m = agreement_margin(out.logits[0, -1], ids)
        assert S.margins[i] == pytest.approx(m.item(), abs=1e-5)
        for l in range(model.config.n_layer):
            g = torch.autograd.grad(m, out.hidden_states[l], retain_graph=True)[0][0, -1].double().numpy()
            np.testing.assert_allclose(S.gradients[l][i], g, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(S.states[l][i], out.hidden_states[l][0, -1].detach().double().numpy(), rtol=1e-5, atol=1e-6)


def test_flip_reflects_core_coordinate_about_mean(tiny):
    "Under the flip at layer l, the last-token state's core coordinate changes sign; the orthogonal part is untouched."
    _, model, tok = tiny
    prompts = agreement_dataset(40, seed=1, tokenizer=tok).prompts
    S = layer_states(model, tok, prompts)
    core = agreement_core(S.states[1], S.gradients[1])
    from factornb.activations import run_with_cache, intervene
    x = torch.tensor([tok(prompts[0])["input_ids"]]); T = x.shape[1]
    seen = {}
    def grab(h): seen["h"] = h[0, -1].detach().double().numpy(); return h
    with intervene(model, {"blocks.0.hook_resid_post": mode_hook(core, "flip")([T - 1])}), intervene(model, {"blocks.1.hook_resid_pre": grab}):
        with torch.no_grad(): model(input_ids=x)
    q, mu = core.basis[:, 0], core.mean
    z0 = (S.states[1][0] - mu) @ q
    assert (seen["h"] - mu) @ q == pytest.approx(-z0, abs=1e-4)
    np.testing.assert_allclose(seen["h"] - ((seen["h"] - mu) @ q) * q, S.states[1][0] - z0 * q, atol=1e-4)


def test_cli_on_tiny_random_gpt2(tiny, tmp_path):
    path, model, tok = tiny
    out = tmp_path / "run"
    rc = main(["cores", "agreement", "--out", str(out), "--model", str(path), "--n-samples", "60", "--max-new-tokens", "6", "--quiet"])
    assert rc == 0
    res = json.loads((out / "agreement.json").read_text())
    r = res["models"][path.name]
    assert [row["layer"] for row in r["layers"]] == [0, 1, 2] and 1 <= r["selected_layer"] <= 2
    assert set(r["wilcoxon"]) == {"base_vs_remove", "base_vs_flip", "remove_vs_flip"} and "alignment" in res
    assert (out / "agreement.png").stat().st_size > 0
    # the base AUC, recomputed here prompt by prompt with the plain HF forward pass
    data = agreement_dataset(60, seed=0, tokenizer=tok); ids = copula_ids(tok)
    with torch.no_grad():
        m = [agreement_margin(model(input_ids=torch.tensor([tok(data.prompts[i])["input_ids"]])).logits[0, -1], ids).item() for i in data.heldout]
    assert r["layers"][0]["base_auc"] == pytest.approx(roc_auc(m, data.labels[data.heldout]), abs=1e-9)
    # the selected layer obeys the rule, whatever this random model's AUCs: its flip AUC is within one null s.d. of the
    # smallest, and among the layers that are, its removal AUC is the closest to chance
    y = data.labels[data.heldout]; tie = null_auc_sd(int(y.sum()), int(len(y) - y.sum()))
    best = min(row["flip_auc"] for row in r["layers"][1:])
    tied = [row for row in r["layers"][1:] if row["flip_auc"] <= best + tie]
    chosen = r["layers"][r["selected_layer"]]
    assert chosen in tied and abs(chosen["remove_auc"] - 0.5) == min(abs(row["remove_auc"] - 0.5) for row in tied)


def test_select_layer_takes_the_lowest_flip_auc_and_breaks_ties_by_removal():
    rows = [{"layer": 0, "flip_auc": 1.0, "remove_auc": 1.0},
            {"layer": 1, "flip_auc": 0.00, "remove_auc": 0.95},     # inverts most, but removal barely hurts
            {"layer": 2, "flip_auc": 0.01, "remove_auc": 0.54},
            {"layer": 3, "flip_auc": 0.20, "remove_auc": 0.50}]
    assert select_layer(rows) == 1                 # no tolerance: the argmin of the flip AUC
    assert select_layer(rows, tie=0.02) == 2       # layers 1 and 2 tie: the removal closest to chance decides
    assert select_layer(rows, tie=0.25) == 3       # a wider tie lets layer 3 in, whose removal is at chance
    assert select_layer(rows[:2] + [dict(rows[2], flip_auc=0.05)], tie=0.02) == 1   # outside the tie, a better removal does not count


def test_byte_level_bpe_tokenizer_like_gpt2():
    "A GPT-2-style byte-level BPE (words carry their leading space, 'Ġare'): single-token filtering and the pipeline work unchanged."
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast
    corpus = agreement_corpus(2000, seed=1)
    bpe = ByteLevelBPETokenizer(); bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=2, show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)
    ids = copula_ids(tok)
    assert tok.convert_ids_to_tokens(ids["are"]) == "Ġare"
    data = agreement_dataset(200, seed=0, tokenizer=tok)
    words = {w for p in data.prompts for w in p.replace(",", " ").split()}
    kept = {w for pair in HEADS + ATTRACTORS for w in pair} & words
    assert kept and all(token_id(tok, w) is not None for w in kept)
    dropped = [pair for pair in HEADS + ATTRACTORS if any(token_id(tok, w) is None for w in pair)]
    assert dropped and not {w for pair in dropped for w in pair} & words      # a small vocabulary splits some words: they are filtered out
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    S = layer_states(model, tok, data.prompts[:30])
    with torch.no_grad():
        m = agreement_margin(model(input_ids=torch.tensor([tok(data.prompts[3])["input_ids"]])).logits[0, -1], ids).item()
    assert S.margins[3] == pytest.approx(m, abs=1e-5) and len(S.states) == 3
