"Tests for factornb.train, readout and paper1: bad input, checkpoint format and loading, determinism, resume, CLI."
import argparse, dataclasses, json
import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st
from factornb.ghmm import mess3
from factornb.factored import FactoredProcess
from factornb.models import TransformerConfig, RNNConfig, model_from_config
from factornb.train import (TrainConfig, train, checkpoint_schedule, load_checkpoint, save_checkpoint, read_checkpoint,
                            inputs_and_labels, WindowedReduceLROnPlateau, architecture_of, optimal_training_loss,
                            next_token_targets, write_json_atomic, callback_steps)
from factornb.readout import prefix_data, layer_activations, last_layer, subspace_overlaps, belief_geometry
from factornb.paper1 import (register_cli, analyze_checkpoints, reproduce_plan, train_settings, train_plan, PAPER_CPU_COMMANDS,
                             write_results_folder, recorded_process)
import factornb.paper1
from factornb.geometry import unique_prefixes

torch.set_num_threads(1)
PROC = FactoredProcess([mess3(0.15, 0.6)] * 2)   # 9 tokens

def small_transformer(seed=7):
    return model_from_config(TransformerConfig(vocab_size=PROC.vocab_size + 1, n_ctx=9, d_model=16, n_layers=1, n_heads=2,
                                               d_head=8, d_mlp=32, seed=seed))

def small_gru(seed=7): return model_from_config(RNNConfig(kind="gru", vocab_size=PROC.vocab_size, d_model=16, n_layers=2, seed=seed))

def weights_equal(a, b): return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

@pytest.mark.parametrize("kw,err", [(dict(steps=-1), ValueError), (dict(batch_size=0), ValueError), (dict(batch_size=2.5), TypeError),
                                    (dict(seq_len=1), ValueError), (dict(lr=0.0), ValueError), (dict(weight_decay=-1.0), ValueError),
                                    (dict(steps=True), TypeError)])
def test_train_config_rejects_bad_values(kw, err):
    with pytest.raises(err): TrainConfig(**kw)

def test_train_rejects_bad_arguments():
    with pytest.raises(TypeError, match="config"): train(small_transformer(), PROC, {"steps": 1})
    with pytest.raises(TypeError, match="process"): train(small_transformer(), object(), TrainConfig(steps=1, batch_size=2))
    with pytest.raises(TypeError, match="model"): train(torch.nn.Linear(2, 2), PROC, TrainConfig(steps=1, batch_size=2))
    too_small = model_from_config(TransformerConfig(vocab_size=PROC.vocab_size, n_ctx=9, d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32))
    with pytest.raises(ValueError, match="vocab_size"): train(too_small, PROC, TrainConfig(steps=1, batch_size=2))
    with pytest.raises(ValueError, match="device"): train(small_transformer(), PROC, TrainConfig(steps=1, batch_size=2, device="nonsense"))

@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200_000))
def test_checkpoint_schedule_properties(steps):
    s = checkpoint_schedule(steps)
    assert s == sorted(set(s)) and s[0] == 0 and s[-1] == steps and all(0 <= x <= steps for x in s)
    full = set(checkpoint_schedule(500_000))
    assert set(s) - {steps} <= full                      # a truncation of the paper's schedule (plus the final step)
    assert all(x in s for x in range(min(steps, 9) + 1))

def test_inputs_and_labels():
    x = torch.arange(12).reshape(2, 6)
    i, l = inputs_and_labels(x, 99)
    assert i.tolist()[0] == [99, 0, 1, 2, 3, 4] and torch.equal(l, x)
    i, l = inputs_and_labels(x, None)
    assert i.tolist()[0] == [0, 1, 2, 3, 4] and l.tolist()[0] == [1, 2, 3, 4, 5]
    ol = PROC.optimal_loss(8)
    assert optimal_training_loss(PROC, 8, True) == pytest.approx(ol.mean()) and optimal_training_loss(PROC, 8, False) == pytest.approx(ol[1:].mean())

def test_scheduler_cuts_on_plateau_and_not_on_progress():
    p = torch.nn.Parameter(torch.zeros(1)); opt = torch.optim.AdamW([p], lr=1.0)
    s = WindowedReduceLROnPlateau(opt, window=3, check_every=2, factor=0.5, patience=2, cooldown=0)
    for i in range(200): s.step(10.0 - 0.01 * i)        # steadily improving: never cut
    assert opt.param_groups[0]["lr"] == 1.0
    for _ in range(10): s.step(100.0)                    # 5 checks, all bad: cut after the 3rd bad one (patience 2)
    assert s.num_reductions >= 1 and opt.param_groups[0]["lr"] < 1.0

def test_training_is_deterministic_and_learns():
    a, b = small_transformer(), small_transformer()
    ra = train(a, PROC, TrainConfig(steps=40, batch_size=64, lr=3e-3)); rb = train(b, PROC, TrainConfig(steps=40, batch_size=64, lr=3e-3))
    assert weights_equal(a, b) and ra["rows"] == rb["rows"]
    # 40 steps close most of the gap between the initial and the optimal loss (measured: 92% for seed 77, 91% for seed 5)
    assert ra["final_normalised_loss"] < 0.2, ra["final_normalised_loss"]
    c = small_transformer(); train(c, PROC, TrainConfig(steps=40, batch_size=64, lr=3e-3, seed=5))
    assert not weights_equal(a, c)                        # the data seed matters

def test_cpu_chain_uses_the_papers_mess3_variants():
    "One definition of the paper's Mess3 chain variants (factornb.factored): the CPU-scale chain's children use the paper chain's."
    from factornb.train import experiment_process
    from factornb.factored import paper_chain_process
    cpu, paper = experiment_process("chain", scale="cpu"), paper_chain_process()
    for child in (1, 2):
        for a, b in zip(cpu.variants[child], paper.variants[child], strict=True):
            np.testing.assert_array_equal(a.transition_matrices, b.transition_matrices)

@pytest.mark.parametrize("steps,ck,expected", [(12, None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]), (12, (3, 7, 20), [3, 7, 12]), (5, (), [5])])
def test_callback_runs_at_exactly_the_callback_steps(steps, ck, expected):
    "What a caller may analyse (readout.run_experiment's analysis_steps): the steps `train` calls back at, and no other."
    seen, cfg = [], TrainConfig(steps=steps, batch_size=8, checkpoint_steps=ck)
    train(small_transformer(), PROC, cfg, callback=lambda step, m: seen.append(step))
    assert seen == expected and callback_steps(cfg) == expected

@pytest.mark.parametrize("make,arch", [(small_transformer, "transformer"), (small_gru, "gru")])
def test_resume_equals_uninterrupted(tmp_path, make, arch):
    a = make(); train(a, PROC, TrainConfig(steps=24, batch_size=32, out_dir=str(tmp_path / "a")))
    b = make(); train(b, PROC, TrainConfig(steps=12, batch_size=32, out_dir=str(tmp_path / "b")))
    b = make(); m = train(b, PROC, TrainConfig(steps=24, batch_size=32, out_dir=str(tmp_path / "b")))
    assert weights_equal(a, b)
    assert [r["step"] for r in m["rows"]][:3] == [0, 1, 2] and m["rows"][-1]["step"] == 24
    loaded = load_checkpoint(tmp_path / "b" / "final.pt", architecture=arch)
    assert not loaded.training and weights_equal(loaded, a) and architecture_of(loaded) == arch
    ck = torch.load(tmp_path / "b" / "final.pt", weights_only=True)
    assert ck["architecture"] == arch and isinstance(ck["model_config"], dict) and ck["step"] == 24
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["rows"][-1]["step"] == 24

def test_resume_refuses_a_different_run(tmp_path):
    train(small_transformer(), PROC, TrainConfig(steps=3, batch_size=8, out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="differs"): train(small_transformer(), PROC, TrainConfig(steps=6, batch_size=16, out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="gru|transformer"): train(small_gru(), PROC, TrainConfig(steps=6, batch_size=8, out_dir=str(tmp_path)))

def test_resume_extends_a_run_whatever_its_logging(tmp_path):
    "A longer --steps sets a coarser log_every (steps // 1000 on the command line): the run still resumes and goes on."
    train(small_transformer(), PROC, TrainConfig(steps=3, batch_size=8, log_every=1, out_dir=str(tmp_path)))
    m = train(small_transformer(), PROC, TrainConfig(steps=6, batch_size=8, log_every=2, out_dir=str(tmp_path)))
    assert [r["step"] for r in m["rows"]][:4] == [0, 1, 2, 3] and m["rows"][-1]["step"] == 6

def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"): load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"): load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a factornb checkpoint"): load_checkpoint(tmp_path / "plain.pt")
    save_checkpoint(tmp_path / "gru.pt", small_gru())
    with pytest.raises(ValueError, match="asked for 'transformer'.*'gru'"): load_checkpoint(tmp_path / "gru.pt", architecture="transformer")
    ck = read_checkpoint(tmp_path / "gru.pt"); ck["state_dict"] = {"x": torch.zeros(1)}; torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not fit"): load_checkpoint(tmp_path / "bad.pt")
    ck = read_checkpoint(tmp_path / "gru.pt"); ck["model_config"]["nonsense"] = 1; torch.save(ck, tmp_path / "badcfg.pt")
    with pytest.raises(ValueError, match="model config"): load_checkpoint(tmp_path / "badcfg.pt")

def test_cli_train_writes_final_and_metrics(tmp_path):
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["train", "--experiment", "noise", "--eps", "0.1", "--arch", "lstm", "--scale", "cpu", "--steps", "3",
                         "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert args.func(args) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["architecture"] == "lstm" and m["rows"][-1]["step"] == 3
    assert architecture_of(load_checkpoint(tmp_path / "run" / "final.pt", architecture="lstm")) == "lstm"
    with pytest.raises(SystemExit): p.parse_args(["train", "--arch", "mamba", "--out", "x"])

def test_prefix_data_rows_match_direct_forward_without_bos():
    m, tok = small_gru(), PROC.sample(40, 8, seed=2)
    d = prefix_data(m, PROC, tok)
    rows, lens = unique_prefixes(tok[:, :-1])
    assert len(d["X"]) == len(rows) and lens.max() == 7
    for j in (0, len(rows) - 1):
        direct = layer_activations(m, tok[rows[j], :lens[j]][None], last_layer(m))[0, -1]   # no BOS: x1..xk, last position
        np.testing.assert_allclose(d["X"][j], direct, atol=1e-5)
        for n, b in enumerate(PROC.factor_predictive_vectors(tok)): np.testing.assert_allclose(d["beliefs"][n][j], b[rows[j], lens[j] - 1])
    g = belief_geometry(m, PROC, tok, references=True)
    # the Factored reference dims@95 against scikit-learn's PCA of the same concatenated beliefs
    from sklearn.decomposition import PCA
    ratio = np.cumsum(PCA().fit(np.concatenate(d["beliefs"], axis=1)).explained_variance_ratio_)
    assert g["factored_dims95"] == int(np.searchsorted(ratio, 0.95 - 1e-12) + 1) and g["num_prefixes"] == len(rows)

def test_subspace_overlaps_identical_and_orthogonal():
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(10, 10)))[0].T   # rows orthonormal
    ov = subspace_overlaps([Q[:4], Q[:4], Q[4:8]], k_max=3)                 # pairs (0,1) same, (0,2), (1,2) orthogonal
    assert ov.shape == (3, 3)
    np.testing.assert_allclose(ov[:, 0], 1, atol=1e-12); np.testing.assert_allclose(ov[:, 1:], 0, atol=1e-12)

def test_cli_analyze_reads_a_run_folder(tmp_path):
    "`factornb analyze` on a run's folder: one row per checkpoint in step order, every residual layer, JSON + figure."
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    run = tmp_path / "run"
    args = p.parse_args(["train", "--experiment", "independent", "--arch", "gru", "--scale", "cpu", "--steps", "4",
                         "--batch-size", "8", "--device", "cpu", "--out", str(run)])
    assert args.func(args) == 0
    args = p.parse_args(["analyze", str(run), str(run / "step_00000004.pt"), "--out", str(tmp_path / "an"), "--no-vary-one"])
    assert args.func(args) == 0
    an = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert [r["step"] for r in an["checkpoints"]] == list(range(5))          # the schedule's steps 0..4, the file named twice counted once
    assert list(an["checkpoints"][0]["layers"]) == ["embed", "rnn.0.hidden", "rnn.1.hidden"]
    assert an["scale"] == "cpu" and an["factored_dims95"] == 6 and (tmp_path / "an" / "analysis.png").exists()
    with pytest.raises(ValueError, match="paths"): analyze_checkpoints(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="no checkpoints"): analyze_checkpoints(tmp_path / "an")

def test_cli_reproduce_plan_trains_nothing_and_needs_out_otherwise(tmp_path, capsys, monkeypatch):
    "`factornb reproduce --plan` prints every run with a timed step and the committed commands; without --plan, --out is required."
    from factornb.cli import main
    monkeypatch.chdir(tmp_path)                                        # whatever it writes would land here
    assert main(["reproduce", "--scale", "cpu", "--plan", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    names = [r["name"] for r in reproduce_plan("cpu")]
    assert all(f"  {n} " in out for n in names) and out.count("s/step ->") == len(names) and "total about" in out
    assert all(c in out for c in PAPER_CPU_COMMANDS.values())
    assert not list(tmp_path.iterdir())
    assert main(["reproduce", "--scale", "cpu"]) == 2
    assert "--out" in capsys.readouterr().err

def test_train_settings_flags_override_the_cpu_default():
    "On a CPU `--scale auto` is EXACT_CPU_RUN (PAPER_CPU_RUN with --targets sampled); any size flag replaces the default model."
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    _, m, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--steps", "7", "--lr", "3e-4", "--out", "x"]))
    assert (m.config.d_model, m.config.n_layers, c.steps, c.lr, c.batch_size, c.targets) == (96, 3, 7, 3e-4, 1_000, "exact")
    _, m, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--targets", "sampled", "--out", "x"]))
    assert (m.config.d_model, c.steps, c.batch_size, c.targets) == (96, 1_800, 25_000, "sampled")
    _, _, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--scale", "paper", "--out", "x"]))
    assert (c.batch_size, c.targets) == (25_000, "sampled")                                # the paper's own recipe off the CPU default
    _, _, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--experiment", "noise", "--eps", "0.3", "--out", "x"]))
    assert c.process == dict(experiment="noise", eps=0.3, scale="paper")                   # the checkpoints will record the process
    _, m, _, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--d-model", "64", "--heads", "2", "--out", "x"]))
    assert (m.config.d_model, m.config.n_heads, m.config.n_layers) == (64, 2, 4)          # the paper model's 4 layers
    _, m, _, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--arch", "lstm", "--out", "x"]))
    assert architecture_of(m) == "lstm" and m.config.vocab_size == 432                    # paper process; recurrent model of the paper scale
    with pytest.raises(ValueError, match="n_heads"): train_settings(p.parse_args(["train", "--device", "cpu", "--arch", "gru", "--heads", "2", "--out", "x"]))

def test_checkpoint_every_adds_checkpoints_and_a_run_resumes_with_them(tmp_path):
    "`--checkpoint-every N` adds every N-th step to the schedule; checkpoint steps do not change training, so a run resumes with other ones."
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    _, _, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--steps", "1500", "--checkpoint-every", "100", "--out", "x"]))
    assert {900, 1000, 1100, 1400, 1500} <= set(c.checkpoint_steps) and 1450 not in c.checkpoint_steps and 5 in c.checkpoint_steps
    _, _, c, _ = train_settings(p.parse_args(["train", "--device", "cpu", "--steps", "1500", "--out", "x"]))
    assert c.checkpoint_steps is None and 1100 not in checkpoint_schedule(1500)
    for bad in ("0", "-3"):
        with pytest.raises(ValueError, match="--checkpoint-every"):
            train_settings(p.parse_args(["train", "--device", "cpu", "--checkpoint-every", bad, "--out", "x"]))
    a = small_transformer(); train(a, PROC, TrainConfig(steps=12, batch_size=8))
    train(small_transformer(), PROC, TrainConfig(steps=4, batch_size=8, out_dir=str(tmp_path)))
    b = small_transformer(); train(b, PROC, TrainConfig(steps=12, batch_size=8, checkpoint_steps=(6, 9), out_dir=str(tmp_path)))
    assert weights_equal(a, b)                                              # the same run as one uninterrupted call
    assert {int(q.stem[5:]) for q in tmp_path.glob("step_*.pt")} == {0, 1, 2, 3, 4, 6, 9, 12}

def test_train_plan_of_a_resumed_run_counts_only_the_steps_left(tmp_path, monkeypatch):
    "The plan `factornb train` prints before a resumed run names the checkpoint it resumes from and estimates the steps left."
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    argv = ["train", "--scale", "cpu", "--device", "cpu", "--steps", "12", "--batch-size", "8", "--out", str(tmp_path)]
    monkeypatch.setattr(factornb.paper1, "seconds_per_step", lambda *a, **k: 60.0)   # one minute a step: minutes = steps
    *_, fresh = train_plan(p.parse_args(argv))
    assert "resumes" not in fresh and "12 steps x batch 8" in fresh and fresh.endswith("-> about 12.0 min")
    process, model, cfg, _ = train_settings(p.parse_args(argv))
    train(model, process, dataclasses.replace(cfg, steps=4))
    *_, resumed = train_plan(p.parse_args(argv))
    assert "step_00000004.pt at step 4: 8 steps left" in resumed and resumed.endswith("-> about 8.0 min")

def test_analyze_checkpoints_of_a_noise_run_records_the_pooled_dims(tmp_path):
    "A noise run's analysis carries the noise figure's pooled dims@95 (spec §6.5) per checkpoint, computed here again with numpy."
    from factornb.train import experiment_process, experiment_model
    process = experiment_process("noise", 0.2, "cpu")
    model = experiment_model("transformer", process, "cpu")
    train(model, process, TrainConfig(steps=1, batch_size=8, out_dir=str(tmp_path)))
    an = analyze_checkpoints(tmp_path, "noise", 0.2, vary_one=False)
    assert [r["step"] for r in an["checkpoints"]] == [0, 1]
    assert all("pooled_dims95" not in r for r in analyze_checkpoints(tmp_path, "independent", vary_one=False)["checkpoints"])
    for r in an["checkpoints"]:
        m = load_checkpoint(tmp_path / f"step_{r['step']:08d}.pt")
        x = torch.as_tensor(process.sample(5000, 8, seed=42))                  # the spec's 5000 sequences, key 42
        x = torch.cat([torch.full((5000, 1), process.bos_token), x], 1)
        A = np.asarray(layer_activations(m, x, last_layer(m))[:, 1:], dtype=np.float64).reshape(-1, m.config.d_model)   # BOS dropped, positions pooled
        from sklearn.decomposition import PCA                                   # an independent PCA
        cev = np.cumsum(PCA().fit(A).explained_variance_ratio_)
        expected = int(np.argmax(np.round(100 * cev) >= 95) + 1)                  # the author's rounding rule
        assert r["pooled_dims95"] == expected, (r["step"], r["pooled_dims95"], expected)

def test_exact_targets_learn_the_law_and_a_run_keeps_its_targets(tmp_path):
    "targets='exact' trains against P(x_{t+1}|x_1..x_t): the loss nears the optimum; a resumed run must keep its targets."
    cfg = TrainConfig(steps=150, batch_size=64, lr=3e-3, targets="exact", out_dir=str(tmp_path / "a"))
    r = train(small_transformer(), PROC, cfg)
    assert r["train_config"]["targets"] == "exact" and read_checkpoint(tmp_path / "a" / "final.pt")["train_config"]["targets"] == "exact"
    assert r["final_normalised_loss"] < 0.25 and r["final_loss"] > r["optimal_loss"] - 1e-3   # the law's cross-entropy is >= its entropy
    with pytest.raises(ValueError, match="differs"):
        train(small_transformer(), PROC, dataclasses.replace(cfg, steps=200, targets="sampled"))
    with pytest.raises(ValueError, match="targets"): TrainConfig(targets="soft")
    with pytest.raises(TypeError, match="next_token_laws"):
        class NoLaws:
            sample_torch, optimal_loss, vocab_size, bos_token = PROC.sample_torch, PROC.optimal_loss, PROC.vocab_size, PROC.bos_token
        train(small_transformer(), NoLaws(), TrainConfig(steps=1, batch_size=2, targets="exact"))

def test_exact_targets_rows_are_the_laws_of_the_next_token():
    "Row t of the targets is the law of token t+1: it sums to 1 and matches the process's own log-probability of the sequence."
    x = torch.as_tensor(PROC.sample(50, 6, seed=1))
    laws = next_token_targets(PROC, x, PROC.bos_token, PROC.vocab_size + 1).double()
    log_p = torch.log(laws.gather(-1, x[..., None])).squeeze(-1).sum(1).numpy()         # chain rule over the sequence
    assert np.allclose(log_p, PROC.log_prob(x.numpy()), atol=1e-5)
    no_bos = next_token_targets(PROC, x, None, PROC.vocab_size)
    assert torch.equal(no_bos, laws[:, 1:, :PROC.vocab_size].float())                   # recurrent models predict x_2..x_L

def test_analyze_uses_the_process_the_checkpoints_record(tmp_path):
    "Checkpoints record their process; analyze takes it from them and refuses a mismatch (no silent scoring of the wrong beliefs)."
    from factornb.train import experiment_process, experiment_model
    process = experiment_process("noise", 0.2, "cpu")
    train(experiment_model("gru", process, "cpu"), process, TrainConfig(steps=2, batch_size=8, out_dir=str(tmp_path),
                                                                       process=dict(experiment="noise", eps=0.2, scale="cpu")))
    assert recorded_process(tmp_path / "final.pt") == dict(experiment="noise", eps=0.2, scale="cpu")
    an = analyze_checkpoints(tmp_path, vary_one=False)
    assert (an["experiment"], an["eps"]) == ("noise", 0.2) and all("pooled_dims95" in r for r in an["checkpoints"])
    with pytest.raises(ValueError, match="eps"): analyze_checkpoints(tmp_path, eps=0.0, vary_one=False)
    with pytest.raises(ValueError, match="experiment"): analyze_checkpoints(tmp_path, "independent", vary_one=False)

def test_cli_analyze_results_writes_a_resumable_results_folder(tmp_path):
    "`factornb analyze RUN --results` writes analysis, final.pt, dip.pt, resume/ and metrics.json; `train` continues from resume/."
    import shutil
    p = argparse.ArgumentParser(); register_cli(p.add_subparsers(dest="command", required=True))
    run, res = tmp_path / "run", tmp_path / "res"
    train_argv = ["train", "--experiment", "independent", "--arch", "gru", "--scale", "cpu", "--batch-size", "8", "--device", "cpu"]
    a = p.parse_args(train_argv + ["--steps", "6", "--out", str(run)]); assert a.func(a) == 0
    a = p.parse_args(["analyze", str(run), "--out", str(res), "--results", "--every", "3", "--no-vary-one"]); assert a.func(a) == 0
    an = json.loads((res / "analysis.json").read_text())
    assert [r["step"] for r in an["checkpoints"]] == [0, 1, 2, 3, 4, 5, 6] and an["experiment"] == "independent"
    assert sorted(q.name for q in (res / "resume").iterdir()) == ["step_00000006.pt"]
    assert {"final.pt", "dip.pt", "metrics.json", "analysis.png"} <= {q.name for q in res.iterdir()}
    run2 = tmp_path / "run2"; run2.mkdir(); shutil.copy(res / "resume" / "step_00000006.pt", run2)   # a fresh clone continues the run
    a = p.parse_args(train_argv + ["--steps", "9", "--out", str(run2)]); assert a.func(a) == 0
    a = p.parse_args(train_argv + ["--steps", "9", "--out", str(tmp_path / "whole")]); assert a.func(a) == 0
    assert weights_equal(load_checkpoint(run2 / "final.pt"), load_checkpoint(tmp_path / "whole" / "final.pt"))
    with pytest.raises(ValueError, match="every"): write_results_folder(run, res, every=0)

def test_write_json_atomic_leaves_no_temporary_and_replaces_whole(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1}); write_json_atomic(tmp_path / "a.json", {"x": [2, 3]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [2, 3]} and [q.name for q in tmp_path.iterdir()] == ["a.json"]
