"Tests for factornb.models: configs, validation, seeding, causality, round trips, generation."
import dataclasses, io, json, math
import pytest
import torch
from hypothesis import given, settings, strategies as st
from factornb.models import (Transformer, TransformerConfig, RecurrentModel, RNNConfig, markov_transformer_config,
                             model_from_config, config_from_dict, count_parameters, generate,
                             reference_forward, reference_layer_norm, jitter_seed, jitter_weights, numeric_jitter)

torch.set_num_threads(1)
SMALL = dict(vocab_size=11, n_ctx=8, d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32)

def test_paper_defaults_and_parameter_count():
    c = TransformerConfig()
    assert (c.vocab_size, c.n_ctx, c.d_model, c.n_layers, c.n_heads, c.d_head, c.d_mlp, c.act, c.norm, c.seed) == (433, 9, 120, 4, 3, 40, 480, "relu", "pre", 7)
    assert count_parameters(Transformer(c)) == 803_113


@pytest.mark.parametrize("d_model,init_range", [(64, None), (256, None), (64, 0.02)])
def test_gpt2_init_draws_weights_with_the_documented_std(d_model, init_range):
    "TransformerLens init: every W_* ~ N(0, r^2) with r = 0.8 / sqrt(d_model) unless `init_range` is given; biases 0, LN gains 1."
    cfg = TransformerConfig(vocab_size=11, n_ctx=8, d_model=d_model, n_layers=1, n_heads=2, d_head=d_model // 2, d_mlp=4 * d_model, init_range=init_range)
    m = Transformer(cfg)
    r = init_range if init_range is not None else 0.8 / math.sqrt(d_model)
    W = m.blocks[0].mlp.W_in.detach()             # >= 16,384 entries: the sample std is within ~0.6% (1 SE) of r; allow 3%
    assert abs(W.std().item() / r - 1) < 0.03 and abs(W.mean().item()) < 0.03 * r
    assert m.blocks[0].mlp.b_in.abs().max() == 0 and torch.allclose(m.blocks[0].ln1.w.detach(), torch.ones(d_model), rtol=0, atol=1e-5)   # 1: FACTORNB_JITTER moves it ~1e-6


@pytest.mark.parametrize("kw", [dict(), dict(act="gelu"), dict(final_ln=False, n_layers=3)])
def test_reference_forward_matches_model(kw):
    m = Transformer(TransformerConfig(**{**SMALL, **kw})).eval()
    t = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(1))
    logits, streams = reference_forward(m, t)
    with torch.no_grad(): assert torch.allclose(m(t), logits, atol=1e-5)    # float32, same sums in another order
    assert ("ln_final.hook_normalized" in streams) == m.config.final_ln
    with pytest.raises(ValueError, match="pre-LN"): reference_forward(Transformer(TransformerConfig(**SMALL, norm="post")), t)


def test_reference_layer_norm_matches_torch():
    x, w, b = torch.randn(3, 5, 16, dtype=torch.float64), torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    assert torch.allclose(reference_layer_norm(x, w, b, 1e-5), torch.nn.functional.layer_norm(x, (16,), w, b, 1e-5), atol=1e-12)

@pytest.mark.parametrize("kw,word", [(dict(act="tanh"), "act"), (dict(norm="mid"), "norm"), (dict(dropout=1.0), "dropout"),
                                     (dict(d_model=0), "d_model"), (dict(n_layers=2.0), "n_layers"), (dict(init_range=-1.0), "init_range")])
def test_transformer_config_rejects_bad_values(kw, word):
    with pytest.raises((ValueError, TypeError), match=word): TransformerConfig(**kw)

@pytest.mark.parametrize("kw,word", [(dict(kind="transformer"), "kind"), (dict(d_model=-1), "d_model"), (dict(seed=-1), "seed")])
def test_rnn_config_rejects_bad_values(kw, word):
    with pytest.raises((ValueError, TypeError), match=word): RNNConfig(**kw)

def test_bad_tokens():
    m = Transformer(TransformerConfig(**SMALL))
    with pytest.raises(TypeError, match="tokens"): m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch, pos"): m(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_ctx"): m(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 11\)"): m(torch.full((1, 3), 11))
    with pytest.raises(ValueError, match="token ids"): RecurrentModel(RNNConfig(vocab_size=5, d_model=8))(torch.full((1, 3), -1))

@pytest.mark.parametrize("make", [lambda s: TransformerConfig(**SMALL, seed=s), lambda s: markov_transformer_config(seed=s),
                                  lambda s: RNNConfig(kind="lstm", d_model=8, seed=s), lambda s: RNNConfig(kind="gru", d_model=8, seed=s)])
def test_seeded_init(make):
    sd = lambda m: m.state_dict()
    state = torch.random.get_rng_state()
    a, b, c = model_from_config(make(3)), model_from_config(make(3)), model_from_config(make(4))
    assert torch.equal(torch.random.get_rng_state(), state), "building a model must not touch the global RNG"
    assert all(torch.equal(x, sd(b)[k]) for k, x in sd(a).items())
    assert any(not torch.equal(x, sd(c)[k]) for k, x in sd(a).items() if x.std() > 0)

@pytest.mark.parametrize("cfg", [TransformerConfig(**SMALL), TransformerConfig(**SMALL, act="gelu", final_ln=False),
                                 TransformerConfig(**SMALL, norm="post"), RNNConfig(kind="rnn", vocab_size=11, d_model=8),
                                 RNNConfig(kind="lstm", vocab_size=11, d_model=8), RNNConfig(kind="gru", vocab_size=11, d_model=8, n_layers=3)])
def test_causal_and_json_round_trip(cfg):
    m = model_from_config(cfg).eval()
    t = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    t2 = t.clone(); t2[:, 4] = (t2[:, 4] + 1) % 11
    with torch.no_grad(): y, y2 = m(t), m(t2)
    assert y.shape == (3, 8, 11)
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-6) and (y[:, 4:] - y2[:, 4:]).abs().max() > 1e-5
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))        # the config survives JSON too
    clone = model_from_config(d); clone.load_state_dict(m.state_dict())
    with torch.no_grad(): assert torch.equal(clone.eval()(t), y)
    assert type(clone.config) is type(cfg) and clone.config == cfg

@pytest.mark.parametrize("cfg", [markov_transformer_config(n_ctx=16), TransformerConfig(**SMALL),
                                 RNNConfig(kind="lstm", vocab_size=11, d_model=8)])
def test_checkpoint_round_trip_through_train(tmp_path, cfg):
    "factornb.train's save_checkpoint -> load_checkpoint (weights_only) rebuilds the model: its config, its weights, its logits."
    from factornb.train import save_checkpoint, load_checkpoint, read_checkpoint
    with numeric_jitter(None):                               # exact round trip: no jitter on build or load
        m = model_from_config(cfg).eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():                                # weights no init gives: a loader that re-initialised would fail
            for p in m.parameters(): p.add_(0.05 * torch.randn(p.shape, generator=g))
        path = save_checkpoint(tmp_path / "ck" / "model.pt", m, step=17)
        clone = load_checkpoint(path)
    assert not (tmp_path / "ck" / "model.pt.tmp").exists() and read_checkpoint(path)["step"] == 17
    assert type(clone) is type(m) and clone.config == m.config and not clone.training
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), m.state_dict().values()))
    t = torch.randint(0, min(11, m.config.vocab_size), (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): assert torch.equal(clone(t), m(t))
    fresh = model_from_config(cfg)
    assert not all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), fresh.state_dict().values()))


# --- numeric jitter (FACTORNB_JITTER) ----------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Transformer(TransformerConfig(**SMALL)), lambda: RecurrentModel(RNNConfig(kind="gru", vocab_size=11, d_model=8)),
                                  lambda: model_from_config(markov_transformer_config(n_ctx=8))])
def test_jitter_moves_every_weight_by_about_1e6_of_itself(make, monkeypatch):
    monkeypatch.delenv("FACTORNB_JITTER", raising=False)
    plain = make()
    state = torch.random.get_rng_state()
    monkeypatch.setenv("FACTORNB_JITTER", "5")
    a, b = make(), make()
    monkeypatch.setenv("FACTORNB_JITTER", "6")
    c = make()
    assert torch.equal(torch.random.get_rng_state(), state), "jitter must not touch the global RNG"
    P, A, B, C = (torch.cat([p.detach().ravel() for p in m.parameters()]) for m in (plain, a, b, c))
    nz = P != 0
    rel = (A - P)[nz] / P[nz]
    assert 0.8e-6 < rel.pow(2).mean().sqrt().item() < 1.2e-6 and rel.abs().max().item() < 1e-5   # >= 600 entries of 1e-6 N(0, 1)
    assert torch.equal(A[~nz], P[~nz])                    # zeros stay zero
    assert torch.equal(A, B) and not torch.equal(A, C)    # the same seed gives the same weights, another seed others


def test_jitter_switch_parsing_and_override(monkeypatch):
    monkeypatch.setenv("FACTORNB_JITTER", " 0 ")
    assert jitter_seed() == 0                            # 0 is a seed: on
    for off in ("", "  "):
        monkeypatch.setenv("FACTORNB_JITTER", off); assert jitter_seed() is None
    monkeypatch.delenv("FACTORNB_JITTER"); assert jitter_seed() is None
    with numeric_jitter(3):
        assert jitter_seed() == 3
        with numeric_jitter(None): assert jitter_seed() is None
        assert jitter_seed() == 3
    assert jitter_seed() is None
    for bad in ("-1", "1.5", "on"):
        monkeypatch.setenv("FACTORNB_JITTER", bad)
        with pytest.raises(ValueError, match="FACTORNB_JITTER"): Transformer(TransformerConfig(**SMALL))
    monkeypatch.delenv("FACTORNB_JITTER")
    with pytest.raises(ValueError, match="seed"): numeric_jitter(-2).__enter__()
    with pytest.raises(TypeError, match="seed"): jitter_weights(Transformer(TransformerConfig(**SMALL)), seed=1.0)


def test_jitter_weights_explicit_seed_matches_the_switch(monkeypatch):
    "Jittering a loaded (unjittered) copy with seed s gives exactly the model built under FACTORNB_JITTER=s."
    monkeypatch.delenv("FACTORNB_JITTER", raising=False)
    plain = Transformer(TransformerConfig(**SMALL))
    with numeric_jitter(4): built = Transformer(TransformerConfig(**SMALL))
    loaded = Transformer(TransformerConfig(**SMALL)); loaded.load_state_dict(plain.state_dict())
    assert jitter_weights(loaded, seed=4) is loaded
    assert all(torch.equal(x, y) for x, y in zip(loaded.state_dict().values(), built.state_dict().values()))
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    jitter_weights(plain)                                 # switch off: no change
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())

def test_config_from_dict_arch_key_and_errors():
    assert isinstance(config_from_dict({"arch": "transformer", "d_model": 8, "n_heads": 2, "d_head": 4}), TransformerConfig)
    assert config_from_dict({"arch": "lstm", "d_model": 8}).kind == "lstm"
    with pytest.raises(ValueError, match="disagrees"): config_from_dict({"arch": "lstm", "kind": "gru"})
    with pytest.raises(ValueError, match="n_heads"): config_from_dict({"kind": "rnn", "n_heads": 3})
    with pytest.raises(ValueError, match="arch"): config_from_dict({"arch": "mamba"})
    with pytest.raises(TypeError, match="config"): model_from_config([1, 2])
    # a transformer state dict does not load into an RNN
    with pytest.raises(RuntimeError): RecurrentModel(RNNConfig()).load_state_dict(Transformer(TransformerConfig()).state_dict())

def test_explicit_attention_path_matches_sdpa():
    m = Transformer(TransformerConfig(**SMALL)).eval()
    t = torch.randint(0, 11, (4, 8))
    with torch.no_grad():
        fast = m(t)
        pats = []
        h = m.blocks[1].attn.hook_pattern.register_forward_hook(lambda mod, i, o: pats.append(o))
        slow = m(t); h.remove()
    assert torch.allclose(fast, slow, atol=1e-5)
    p = pats[0]
    assert p.shape == (4, 2, 8, 8) and torch.allclose(p.sum(-1), torch.ones(4, 2, 8)) and p.triu(1).abs().max() == 0

def test_generate():
    m = Transformer(TransformerConfig(**SMALL)).eval()
    prompt = torch.randint(0, 11, (5, 2))
    out = generate(m, prompt, 6, seed=3)
    assert out.shape == (5, 8) and torch.equal(out[:, :2], prompt) and torch.equal(out, generate(m, prompt, 6, seed=3))
    assert torch.equal(generate(m, prompt, 0), prompt)
    r = RecurrentModel(RNNConfig(vocab_size=11, d_model=8)).eval()
    assert generate(r, prompt, 20, temperature=0).shape == (5, 22)   # no context limit for an RNN
    with pytest.raises(ValueError, match="n_ctx"): generate(m, prompt, 7)
    with pytest.raises(ValueError, match="temperature"): generate(m, prompt, 1, temperature=-1)
    with pytest.raises(ValueError, match="prompt"): generate(m, prompt[:, :0], 1)

@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.sampled_from(["pre", "post"]), st.sampled_from(["relu", "gelu"]))
def test_shapes_any_config(n_layers, n_heads, norm, act):
    cfg = TransformerConfig(vocab_size=7, n_ctx=5, d_model=4 * n_heads, n_layers=n_layers, n_heads=n_heads, d_head=4, d_mlp=8, norm=norm, act=act)
    m = Transformer(cfg)
    assert m(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 7)
    assert set(m.hook_points()) >= {"hook_embed", f"blocks.{n_layers-1}.hook_resid_post", "ln_final.hook_normalized"}
