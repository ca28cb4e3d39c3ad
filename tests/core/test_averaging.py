"""The moving average of a module's weights, and the trainer's averaged encoder."""

import numpy as np
import pytest
import torch

from cryonb.core.averaging import WeightAverage
from cryonb.core.errors import InputError
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


def test_the_average_weighs_the_first_steps_equally_then_decays():
    layer = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(layer, decay=0.5)
    expected = None
    for n, value in enumerate([4.0, 2.0, 8.0, 6.0], start=1):
        layer.weight.data.fill_(value)
        average.update()
        weight = max(0.5, 1 / n)  # 1, then 1/2 (both the uniform mean and the decay), then the decay's 1/2
        expected = value if expected is None else (1 - weight) * expected + weight * value
        assert average.module.weight.item() == pytest.approx(expected)
    assert expected == pytest.approx(((4 + 2) / 2 / 2 + 8 / 2) / 2 + 6 / 2)
    assert not average.module.weight.requires_grad and layer.weight.item() == 6.0  # the original is untouched


def test_applied_swaps_the_averaged_weights_in_and_back_and_the_state_round_trips():
    layer = torch.nn.Linear(3, 2)
    average = WeightAverage(layer, decay=0.9)
    average.update()
    with torch.no_grad():
        layer.weight.add_(1.0)
    trained = layer.weight.detach().clone()
    with average.applied():
        assert torch.equal(layer.weight, average.module.weight)
    assert torch.equal(layer.weight, trained)
    copy = WeightAverage(torch.nn.Linear(3, 2), decay=0.5)
    copy.load_state_dict(average.state_dict())
    assert (copy.decay, copy.updates) == (0.9, 1) and torch.equal(copy.module.weight, average.module.weight)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(layer, decay=1.0)


def test_the_average_is_a_gpu_default_with_an_encoder_and_known_poses_at_large_boxes():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert TrainConfig().for_device(gpu, 128).encoder_average == 0.2
    assert TrainConfig().for_device(gpu, 64).encoder_average == 0.0  # at D = 64 it cost the suite's clusters
    assert TrainConfig().for_device(cpu, 128).encoder_average == 0.0  # not measured on the CPU's small models
    for unmeasured in (TrainConfig(latents="table"), TrainConfig(poses="table")):
        assert unmeasured.for_device(gpu, 128).encoder_average == 0.0
    assert TrainConfig(encoder_average=0.1).for_device(cpu).encoder_average == 0.1
    with pytest.raises(InputError, match=r"encoder_average must be in \[0, 1\)"):
        TrainConfig(encoder_average=1.0).validate()
    with pytest.raises(InputError, match="encoder_average needs latents 'encoder'"):
        TrainConfig(latents="table", encoder_average=0.2).validate()


def test_embed_reads_the_averaged_encoder_and_a_resumed_run_keeps_its_average(particles, tmp_path):
    config = TrainConfig(**TINY, encoder_average=0.5, epochs=3)
    reference = Trainer(particles, config).fit(3, progress=False)
    assert reference.encoder_average.decay == pytest.approx(1 - 1 / (0.5 * 3 * reference.batches_per_epoch))
    averaged = reference.embed()
    average, reference.encoder_average = reference.encoder_average, None
    with average.applied():  # the model's own encoder, holding the averaged weights, reads the same latents
        np.testing.assert_allclose(reference.embed(), averaged, atol=1e-6)
    reference.encoder_average = average
    plain = Trainer(particles, TrainConfig(**TINY, encoder_average=0.0, epochs=3)).fit(3, progress=False)
    assert plain.encoder_average is None and [h["loss"] for h in plain.history] == [h["loss"] for h in reference.history]
    assert np.abs(averaged - plain.embed()).max() > 1e-3  # the same training, read by another encoder
    first = Trainer(particles, config, run_dir=tmp_path / "run").fit(1, progress=False)
    resumed = Trainer.from_run(tmp_path / "run", particles)
    assert resumed.encoder_average.updates == first.encoder_average.updates == first.step_count
    resumed.fit(2, progress=False)
    np.testing.assert_array_equal(resumed.embed(), averaged)
