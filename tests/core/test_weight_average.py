"""TrainConfig(average_epochs=...): latents and maps from the weights averaged over the last epochs."""

import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu",
            lr_schedule="cosine", epochs=3, average_epochs=1)


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles  # 6 steps an epoch


def weights(trainer):
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def test_results_come_from_the_mean_of_the_last_epochs_weights(particles):
    trainer = Trainer(particles, TrainConfig(**TINY))
    after_step = []  # the weights after each step: seen before the next one, and at the end
    trainer.before_step.append(lambda t, idx: after_step.append(weights(t)) if t.step_count else None)
    trainer.fit(3, progress=False)
    after_step.append(weights(trainer))
    assert len(after_step) == 18
    state = trainer.state_dict()
    for name, final in weights(trainer).items():
        expected = torch.stack([w[name] for w in after_step[12:]]).mean(0)  # the third epoch's six steps
        torch.testing.assert_close(state["model"][name], expected)
        torch.testing.assert_close(state["training_model"][name], final)
        assert not torch.equal(expected, final)

    z = trainer.embed()
    maps = trainer.volumes(z[:2])
    assert all(torch.equal(w, after_step[-1][name]) for name, w in weights(trainer).items())  # training untouched
    averaged = trainer.result_model()
    assert averaged is not trainer.model
    assert all(torch.equal(p, state["model"][name]) for name, p in averaged.named_parameters())
    run = Run.from_trainer(trainer)  # what the explorer shows: the same weights as the latents
    np.testing.assert_allclose(run.volumes(z[:2]), maps, rtol=1e-5, atol=1e-6)
    average, trainer._average = trainer._average, None  # the last step's weights give other results
    assert not np.allclose(trainer.embed(), z) and not np.allclose(trainer.volumes(z[:2]), maps)
    trainer._average = average


def test_a_continued_run_averages_as_an_uninterrupted_one(particles, tmp_path):
    straight = Trainer(particles, TrainConfig(**TINY))
    straight.fit(3, progress=False)
    first = Trainer(particles, TrainConfig(**TINY), run_dir=tmp_path / "run")
    first.fit(2, progress=False)  # a checkpoint every epoch
    continued = Trainer.from_run(tmp_path / "run", particles)
    continued.fit(1, progress=False)
    for key in ("model", "training_model"):
        for name, value in straight.state_dict()[key].items():
            torch.testing.assert_close(continued.state_dict()[key][name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(continued.embed(), straight.embed(), rtol=1e-5, atol=1e-6)


def test_off_by_default_and_checked(particles):
    trainer = Trainer(particles, TrainConfig(**{**TINY, "average_epochs": 0}))
    trainer.fit(1, progress=False)
    assert "training_model" not in trainer.state_dict()
    with pytest.raises(InputError, match="average_epochs"):
        TrainConfig(average_epochs=-1).validate()
