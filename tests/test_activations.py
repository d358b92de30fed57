"Tests for factornb.activations: bad input, hook hygiene, algebraic properties of the interventions, HF GPT-2."
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from factornb.models import Transformer, TransformerConfig, RecurrentModel, RNNConfig, markov_transformer_config, generate, reference_forward
from factornb.activations import (hook_names, run_with_cache, activations_and_gradients, run_with_hooks, intervene,
                                  project, ablate, reflect, steer, Intervention)

torch.set_num_threads(1)
SMALL = dict(vocab_size=11, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)

@pytest.fixture(scope="module")
def tfm(): return Transformer(TransformerConfig(**SMALL)).eval()

@pytest.fixture(scope="module")
def gpt():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()

def toks(v=11, n=3, p=8, seed=0): return torch.randint(0, v, (n, p), generator=torch.Generator().manual_seed(seed))

def n_hooks(m): return sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules())

def rand_basis(d, r, seed):
    return torch.linalg.qr(torch.randn(d, max(r, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0][:, :r]

# --- bad input -------------------------------------------------------------------------------------------------------
def test_bad_names_list_valid_ones(tfm, gpt):
    with pytest.raises(ValueError, match="blocks.1.hook_resid_post"): run_with_cache(tfm, toks(), ["nope"])
    with pytest.raises(ValueError, match="valid names"): run_with_hooks(gpt, toks(50), {"blocks.5.hook_resid_post": lambda h: h})
    with pytest.raises(ValueError, match="rnn.0.hidden"): activations_and_gradients(RecurrentModel(RNNConfig(vocab_size=11, d_model=8)), toks(), ["hidden"], lambda l: l.sum())

def test_bad_model_and_hooks(tfm):
    with pytest.raises(TypeError, match="model"): hook_names(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="model"): hook_names("gpt2")
    with pytest.raises(TypeError, match="hooks"): run_with_hooks(tfm, toks(), [("hook_embed", lambda h: h)])
    with pytest.raises(TypeError, match="callable"): run_with_hooks(tfm, toks(), {"hook_embed": 3})
    with pytest.raises(ValueError, match="batch_size"): run_with_cache(tfm, toks(), "hook_embed", batch_size=0)

def test_bad_objective(tfm):
    with pytest.raises(ValueError, match="scalar"): activations_and_gradients(tfm, toks(), "hook_embed", lambda l: l.sum(-1))
    with pytest.raises(ValueError, match="differentiabl"): activations_and_gradients(tfm, toks(), "hook_embed", lambda l: l.detach().sum())
    with pytest.raises(TypeError, match="objective"): activations_and_gradients(tfm, toks(), "hook_embed", 3.0)

def test_bad_bases():
    with pytest.raises(ValueError, match="orthonormal"): project(torch.ones(4, 2))
    with pytest.raises(ValueError, match="orthonormal"): ablate(np.array([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="rank"): reflect(torch.eye(3, 4))
    with pytest.raises(ValueError, match="NaN"): project(torch.full((3, 1), float("nan")))
    with pytest.raises(ValueError, match="basis"): project(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="mean"): ablate(torch.eye(4)[:, :1], mean=torch.zeros(5))
    with pytest.raises(ValueError, match="strength"): reflect(torch.eye(4)[:, :1], strength=float("inf"))
    with pytest.raises(ValueError, match="positions"): project(torch.eye(4), positions=[-1])
    with pytest.raises(ValueError, match="vector"): steer(torch.zeros(3, 2))

def test_width_mismatch_and_wrong_shape_are_reported_and_hooks_removed(tfm, gpt):
    before = n_hooks(tfm), n_hooks(gpt)
    with pytest.raises(ValueError, match="width"): run_with_hooks(tfm, toks(), {"blocks.0.hook_resid_post": ablate(torch.eye(8))})
    with pytest.raises(ValueError, match="hook_embed"): run_with_hooks(tfm, toks(), {"hook_embed": lambda h: h[:, :2]})
    with pytest.raises(ValueError, match="blocks.1.hook_resid_pre"): run_with_hooks(gpt, toks(50), {"blocks.1.hook_resid_pre": lambda h: None})
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(tfm, {"hook_embed": lambda h: h}): raise RuntimeError("boom")
    assert (n_hooks(tfm), n_hooks(gpt)) == before

# --- reading ---------------------------------------------------------------------------------------------------------
def test_cache_returns_only_requested_detached(tfm):
    c = run_with_cache(tfm, toks(), ["blocks.1.hook_resid_post", "hook_embed"])
    assert list(c) == ["blocks.1.hook_resid_post", "hook_embed"] and all(not v.requires_grad for v in c.values())
    assert c["blocks.1.hook_resid_post"].shape == (3, 8, 16)
    pat = run_with_cache(tfm, toks(), "blocks.0.attn.hook_pattern")["blocks.0.attn.hook_pattern"]
    assert pat.shape == (3, 2, 8, 8) and torch.allclose(pat.sum(-1), torch.ones(3, 2, 8))

def test_post_ln_markov_model_hooks():
    m = Transformer(markov_transformer_config(n_ctx=16)).eval()
    t = toks(4, 2, 16)
    c = run_with_cache(m, t, ["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"]
    with torch.no_grad(): assert torch.allclose(c @ m.unembed.W_U + m.unembed.b_U, m(t), atol=1e-5)  # no final LN
    assert "ln_final.hook_normalized" not in hook_names(m)
    assert torch.allclose(c.mean(-1), torch.zeros(2, 16), atol=1e-5)   # post-LN: the stream is normalised (gain 1, bias 0 at init)

@pytest.mark.parametrize("kw", [dict(), dict(act="gelu", final_ln=False), dict(n_layers=3, n_heads=4, d_head=4)])
def test_residual_hooks_match_reference_forward(kw):
    "Every residual-stream hook holds what chapter 02a's reference forward pass computes from the weights."
    m = Transformer(TransformerConfig(**{**SMALL, **kw})).eval()
    logits, streams = reference_forward(m, toks())
    cache = run_with_cache(m, toks(), list(streams))
    assert len(streams) == 3 * m.config.n_layers + m.config.final_ln
    for n, ref in streams.items(): assert torch.allclose(cache[n], ref, atol=1e-5), n
    with torch.no_grad(): assert torch.allclose(m(toks()), logits, atol=1e-5)


def test_gradients_with_frozen_weights_match_unfrozen(tfm):
    obj = lambda l: torch.log_softmax(l, -1)[..., 3].mean()
    a1, g1 = activations_and_gradients(tfm, toks(), ["hook_embed", "blocks.0.hook_resid_mid"], obj)
    for p in tfm.parameters(): p.requires_grad_(False)
    try: a2, g2 = activations_and_gradients(tfm, toks(), ["hook_embed", "blocks.0.hook_resid_mid"], obj)
    finally:
        for p in tfm.parameters(): p.requires_grad_(True)
    for n in g1: assert torch.allclose(g1[n], g2[n]) and torch.equal(a1[n], a2[n])
    assert g1["hook_embed"].abs().max() > 0

def test_gradient_of_unused_hook_is_zero():
    m = Transformer(TransformerConfig(**SMALL)).eval()
    _, g = activations_and_gradients(m, toks(), ["hook_pos_embed", "blocks.1.hook_resid_post"], lambda l: l[:, 0].sum())
    assert g["blocks.1.hook_resid_post"][:, 1:].abs().max() == 0

def test_rnn_gradient_matches_readout():
    m = RecurrentModel(RNNConfig(kind="lstm", vocab_size=11, d_model=8)).eval()
    _, g = activations_and_gradients(m, toks(), "rnn.1.hidden", lambda l: l[..., 5].sum())
    assert torch.allclose(g["rnn.1.hidden"], m.readout.weight[5].detach().expand(3, 8, -1))

# --- interventions: algebra (property tests) -------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.data())
def test_projector_identities(d, data):
    r = data.draw(st.integers(0, d)); seed = data.draw(st.integers(0, 10_000))
    Q = rand_basis(d, r, seed)
    g = torch.Generator().manual_seed(seed + 1)
    h = torch.randn(2, 5, d, generator=g, dtype=torch.float64); mu = torch.randn(d, generator=g, dtype=torch.float64)
    P, A, R = project(Q, mu), ablate(Q, mu), reflect(Q, mu)
    assert torch.allclose(P(P(h)), P(h)) and torch.allclose(A(A(h)), A(h))              # idempotent
    assert torch.allclose(P(h) + A(h) - mu, h)                                          # complementary
    assert torch.allclose(R(R(h)), h)                                                   # involution
    assert torch.allclose(reflect(Q, mu, strength=0.5)(h), A(h))
    assert torch.allclose(((A(h) - mu) @ Q), torch.zeros(2, 5, r, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(torch.linalg.norm(R(h) - mu, dim=-1), torch.linalg.norm(h - mu, dim=-1))  # an isometry

@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 7), max_size=4), st.integers(0, 5))
def test_positions_mask_is_absolute(positions, offset):
    h = torch.randn(2, 3, 4, dtype=torch.float64)
    out = Intervention(lambda x: x * 0, positions)(h, offset)
    for i in range(3):
        zeroed = (offset + i) in positions
        assert torch.equal(out[:, i], torch.zeros_like(h[:, i]) if zeroed else h[:, i])

def test_dtype_and_numpy_inputs_follow_activation():
    Q = rand_basis(16, 3, 0).numpy()                       # float64 numpy basis on float32 activations
    h = torch.randn(2, 4, 16)
    assert project(Q)(h).dtype == torch.float32 and torch.allclose(project(Q)(h) + ablate(Q)(h), h, atol=1e-6)
    assert torch.allclose(project(Q[:, 0])(h), (h @ torch.tensor(Q[:, :1], dtype=torch.float32)) * torch.tensor(Q[:, 0], dtype=torch.float32), atol=1e-6)

def test_interventions_compose_with_cache_and_rnn():
    m = RecurrentModel(RNNConfig(kind="gru", vocab_size=11, d_model=8)).eval()
    u = rand_basis(8, 1, 3)[:, 0].float()
    with intervene(m, {"rnn.0.hidden": ablate(u)}):
        h = run_with_cache(m, toks(), "rnn.0.hidden")["rnn.0.hidden"]
        out = generate(m, toks()[:, :2], 4, temperature=0)
    assert (h @ u).abs().max() < 1e-5 and out.shape == (3, 6)

# --- Hugging Face ----------------------------------------------------------------------------------------------------
def test_gpt2_bare_model_and_kwargs(gpt):
    t = toks(50, 2, 10)
    c1 = run_with_cache(gpt.transformer, t, "blocks.1.hook_resid_post")["blocks.1.hook_resid_post"]
    c2 = run_with_cache(gpt, t, "blocks.1.hook_resid_post", attention_mask=torch.ones_like(t))["blocks.1.hook_resid_post"]
    assert torch.allclose(c1, c2, atol=1e-6)
    with pytest.raises(TypeError, match="tokens"): run_with_cache(gpt, t.float(), "hook_embed")
    with pytest.raises(ValueError, match=r"\[0, 50\)"): run_with_cache(gpt, t + 50, "hook_embed")   # ids outside GPT-2's vocabulary
    with pytest.raises(TypeError, match="keyword"): run_with_cache(Transformer(TransformerConfig(**SMALL)), toks(), "hook_embed", attention_mask=1)

def test_gpt2_generate_project_full_basis_is_identity_and_positions(gpt):
    t = toks(50, 2, 4)
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        plain = gpt.generate(t, **kw)
        with intervene(gpt, {f"blocks.{l}.hook_resid_post": project(torch.eye(32)) for l in range(2)}): same = gpt.generate(t, **kw)
        with intervene(gpt, {"blocks.0.hook_resid_post": project(torch.zeros(32, 0), positions=[7])}):
            a = gpt.generate(t, **kw); b = gpt.generate(t, use_cache=False, **kw)
    assert torch.equal(plain, same) and torch.equal(a, b) and torch.equal(a[:, :8], plain[:, :8])

def test_gpt2_gradient_finite_difference(gpt):
    m = gpt.double()
    try:
        t = toks(50, 2, 6)
        J = lambda l: torch.log_softmax(l, -1)[:, -1, 7].sum()
        _, g = activations_and_gradients(m, t, "hook_embed", J)
        u = torch.randn(g["hook_embed"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        eps = 1e-5
        fd = (J(run_with_hooks(m, t, {"hook_embed": steer_all(u, eps)})) - J(run_with_hooks(m, t, {"hook_embed": steer_all(u, -eps)}))) / (2 * eps)
        assert abs(fd.item() - (g["hook_embed"] * u).sum().item()) < 1e-6 * max(1.0, abs(fd.item()))
    finally: gpt.float()

def steer_all(u, eps): return lambda h: h + eps * u
