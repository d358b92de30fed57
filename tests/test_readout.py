"""Tests for factornb.readout: run_experiment refuses steps it would never measure."""
import pytest
import torch
from factornb.readout import run_experiment
from factornb.train import TrainConfig, experiment_process, experiment_model

torch.set_num_threads(1)


@pytest.mark.parametrize("kw,name", [(dict(analysis_steps=[2]), "analysis_steps"),
                                     (dict(analysis_steps=[3], vary_one_steps=[5]), "vary_one_steps")])
def test_steps_that_are_not_checkpoints_are_refused(kw, name):
    cfg = TrainConfig(steps=6, batch_size=8, checkpoint_steps=(0, 3))
    process = experiment_process("independent")
    with pytest.raises(ValueError, match=name):
        run_experiment(experiment_model("transformer", process, "cpu"), process, cfg, **kw)


def test_checkpoint_steps_are_measured():
    cfg = TrainConfig(steps=6, batch_size=8, checkpoint_steps=(0, 3))
    process = experiment_process("independent")
    r = run_experiment(experiment_model("transformer", process, "cpu"), process, cfg, analysis_steps=[0, 3, 6], n_analysis=50)
    assert [h["step"] for h in r["history"]] == [0, 3, 6]
