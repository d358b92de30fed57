"""Tests for factornb.groklaw: tau detection on scripted accuracies, the fits on planted laws, grok_time end to end with scripted
accuracies, the sweep's resume rules, and the grok-law command line (one line on stderr, exit 2, naming the flag)."""
import json
import numpy as np
import pytest
import torch

from factornb.groklaw import fit_power_law, fit_redundancy_law, redundancy_law, grok_time, GrokTimes, grok_law

torch.set_num_threads(1)


def test_bad_fits():
    with pytest.raises(ValueError, match="positive"): fit_power_law([1, 2, 3], [1, -1, 2])
    with pytest.raises(ValueError, match="distinct"): fit_power_law([1, 1, 1], [1, 2, 3])


def test_fits_recover_planted_laws():
    w = np.repeat([0.5, 1, 2, 4], 3); tau = 500 * w ** -1.0 * np.exp(np.random.default_rng(0).normal(0, 0.05, len(w)))
    f = fit_power_law(w, tau)
    assert f["ci"][0] < -1 < f["ci"][1] and abs(f["exponent"] + 1) < 0.1
    p = np.array([31, 43, 53, 61, 79]); f2 = fit_redundancy_law(p, redundancy_law(p, 300.0, 20.0))
    assert f2["omega"] == pytest.approx(300, rel=1e-3) and f2["p_crit"] == pytest.approx(20, rel=1e-3) and f2["r2"] > 0.999999


# --- tau detection on scripted accuracies ----------------------------------------------------------------
def _scripted(train, test):
    "A GrokTimes fed step by step from two accuracy lists; also records which accuracies it asked for."
    asked = []; t = GrokTimes()
    for i, (a, b) in enumerate(zip(train, test), 1):
        t.update(lambda a=a, i=i: asked.append(("train", i)) or a, lambda b=b, i=i: asked.append(("test", i)) or b)
    return t, asked


def test_grok_times_exact_on_a_scripted_run():
    t, asked = _scripted([0.1, 0.5, 0.98, 0.99, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.1, 0.4, 0.8, 0.989, 0.99, 1.0])
    assert (t.tau_mem, t.tau_grok, t.delay, t.steps) == (4, 7, 3, 8)       # >= 0.99 counts, 0.989 does not
    # train accuracy is evaluated until memorised, test accuracy until grokked, nothing after
    assert [i for k, i in asked if k == "train"] == [1, 2, 3, 4] and [i for k, i in asked if k == "test"] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("train,test,expected", [
    ([0.5, 1.0, 1.0, 1.0], [0.0, 0.1, 0.2, 0.3], (2, None, None)),          # memorises, never groks
    ([0.5, 0.6, 0.7, 0.8], [0.0, 0.1, 0.2, 0.3], (None, None, None)),       # never memorises
    ([0.5, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], (2, 2, None)),             # both at the same step: no delay
    ([0.5, 0.6, 0.7, 1.0], [0.0, 1.0, 1.0, 1.0], (None, 2, None)),          # generalises first: memorising is then never measured
    ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.995], (1, 4, 3)),              # memorised at the first step
])
def test_grok_times_edge_cases(train, test, expected):
    t, _ = _scripted(train, test)
    assert (t.tau_mem, t.tau_grok, t.delay) == expected and t.steps == 4


def test_grok_time_reads_accuracy_after_every_step(monkeypatch):
    # grok_time end to end, with `accuracy` scripted: the k-th train (test) evaluation returns train[k] (test[k]); step k of
    # the run is the k-th evaluation of each set while that set is still evaluated. p = 7: 24 training pairs, batch 8 ->
    # 3 optimiser steps per epoch
    import factornb.groklaw as g
    train = [0.2, 0.5, 0.9, 0.995, 1.0]; test = [0.0] * 9 + [0.99, 0.3]
    n = {"train": 0, "test": 0}
    def fake(model, x, y, batch_size=4096):
        k = "train" if len(x) == 24 else "test"; n[k] += 1
        seq = train if k == "train" else test
        return seq[min(n[k], len(seq)) - 1]
    monkeypatch.setattr(g, "accuracy", fake)
    r = g.grok_time(p=7, seed=0, batch_size=8, max_epochs=50, stop_after=2, model_kwargs=dict(n_layers=1, d_model=16, n_heads=4, d_mlp=32))
    assert (r["tau_mem"], r["tau_grok"], r["delay"]) == (4, 10, 6)
    # grokked in step 10 = the first step of the 4th pass (epoch 3); stops 2 epochs later, after pass 6 = 18 steps
    assert r["steps"] == 18 and n == {"train": 4, "test": 11}                 # 10 while not grokked, then the final accuracy only
    never = g.grok_time(p=7, seed=0, batch_size=8, max_epochs=3, model_kwargs=dict(n_layers=1, d_model=16, n_heads=4, d_mlp=32))
    assert (never["tau_grok"], never["delay"], never["steps"]) == (None, None, 9)


def test_grok_time_bad_input():
    with pytest.raises(ValueError, match="stop_after"): grok_time(p=7, stop_after=-1)
    with pytest.raises(ValueError, match="max_epochs"): grok_time(p=7, max_epochs=0)
    with pytest.raises(ValueError, match="threshold"): grok_time(p=7, threshold=0)


def test_grok_law_resumes_only_its_own_settings(tmp_path):
    kw = dict(weight_decays=[1.0], ps=[7], seeds=[0], base_p=7, out=tmp_path, batch_size=None,
              model_kwargs=dict(n_layers=1, d_model=16, n_heads=4, d_mlp=32), max_epochs=3, stop_after=0)
    a = grok_law(**kw)
    assert json.loads((tmp_path / "law.json").read_text())["runs"] == a["runs"] and not list(tmp_path.glob("*.tmp"))
    b = grok_law(**kw)                                            # resumed: nothing left to run, the same rows
    assert b["runs"] == a["runs"]
    with pytest.raises(ValueError, match="out: .* other run settings"): grok_law(**{**kw, "max_epochs": 4})
    (tmp_path / "law.json").write_text('{"runs": [')
    with pytest.raises(ValueError, match="out: .* not a readable law.json"): grok_law(**kw)


# --- CLI bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,flag", [
    (["grok-law", "--weight-decays", "1", "-0.5"], "--weight-decays"),
    (["grok-law", "--ps", "31", "2"], "--ps"),
    (["grok-law", "--base-p", "1"], "--base-p"),
    (["grok-law", "--lr", "0"], "--lr"),
    (["grok-law", "--d-model", "30"], "--d-model"),
    (["grok-law", "--d-model", "0"], "--d-model"),
    (["grok-law", "--max-epochs", "0"], "--max-epochs"),
    (["grok-law", "--stop-after", "-1"], "--stop-after"),
    (["grok-law", "--threads", "0"], "--threads"),
    (["grok-law", "--batch-size", "-1"], "--batch-size"),
    (["grok-law", "--layers", "0"], "--layers"),
])
def test_cli_bad_input_exits_2_naming_the_flag(argv, flag, tmp_path, capsys):
    from factornb.cli import main
    argv = [*argv, "--out", str(tmp_path / "o")]
    assert main(["cores", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"factornb cores: error: {flag}: "), err
    assert not (tmp_path / "o").exists()                                     # rejected before anything was written
