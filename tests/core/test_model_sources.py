"""The model's pluggable parts: latent sources (encoder, table) and pose sources (metadata, table)."""

import numpy as np
import pytest
import torch

from cryonb.core.poses import PoseTable, recentre, small_rotation
from cryonb.core.projection import shift_images_ft
from cryonb.core.rotations import axis_angle_to_matrix, random_rotations
from cryonb.core.row_adam import RowAdam
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")  # a GPU has other defaults


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


def test_small_rotation_equals_rodrigues_and_has_gradients_at_zero():
    v = torch.randn(50, 3, dtype=torch.float64) * torch.logspace(-5, 0.5, 50, dtype=torch.float64)[:, None]
    assert torch.allclose(small_rotation(v), axis_angle_to_matrix(v), atol=1e-12)
    zero = torch.zeros(4, 3, requires_grad=True)
    (small_rotation(zero) * torch.randn(3, 3)).sum().backward()
    assert torch.isfinite(zero.grad).all() and zero.grad.abs().sum() > 0


def test_recentre_undoes_a_simulated_shift():
    from cryonb.core.model import HalfPlane

    D = 16
    half = HalfPlane.build(D)
    images = torch.randn(3, D, D, dtype=torch.complex64)
    shifts = torch.tensor([[1.5, -2.0], [0.0, 3.0], [-0.25, 0.5]])
    moved = shift_images_ft(images, -shifts)  # how simulate() places a particle off centre
    back = recentre(moved.flatten(1)[:, half.index], half.coords, shifts, D)
    assert torch.allclose(back, images.flatten(1)[:, half.index], atol=1e-5)


def test_pose_table_assign_then_read():
    table = PoseTable(10)
    R = random_rotations(4, torch.Generator().manual_seed(0))
    idx = torch.tensor([1, 3, 5, 7])
    table.assign(idx, R, torch.full((4, 2), 2.0))
    rotations, shifts = table.poses()
    assert torch.allclose(rotations[idx], R, atol=1e-6)
    assert torch.equal(rotations[0], torch.eye(3)) and (shifts[idx] == 2).all() and (shifts[0] == 0).all()


def test_autodecoder_trains_and_resumes_exactly(particles, tmp_path):
    config = TrainConfig(**TINY, latents="table", checkpoint_every=1)
    trainer = Trainer(particles, config, run_dir=tmp_path / "run").fit(2, progress=False)
    assert isinstance(trainer.table_optimizer, RowAdam)
    z = trainer.embed()
    assert np.allclose(z, trainer.model.latents.table.weight.detach().numpy())
    start = trainer.model.latents.table.weight.detach().clone()
    trainer.fit(1, progress=False)
    assert (trainer.model.latents.table.weight != start).any()  # the rows moved
    resumed = Trainer.from_run(tmp_path / "run", particles)
    resumed_state = {k: v.clone() for k, v in resumed.model.state_dict().items()}
    assert resumed.epoch == 3
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(resumed_state[key], value), key


def test_pose_table_rows_are_refined_by_descent(particles):
    """Every particle's pose gets sparse updates; the base rotation a search set stays."""
    trainer = Trainer(particles, TrainConfig(**{**TINY, "zdim": 0}, poses="table", pose_lr=3e-3, seed=2))
    truth = torch.as_tensor(particles.rotations, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    axes = torch.nn.functional.normalize(torch.randn(len(truth), 3, generator=g), dim=-1)
    start = truth @ axis_angle_to_matrix(axes * np.radians(6.0))
    trainer.model.poses.assign(torch.arange(len(truth)), start)
    trainer.fit(1, progress=False)
    assert (trainer.model.poses.turn.weight.abs().sum(-1) > 0).all()
    assert torch.allclose(trainer.model.poses.base, start)
    rotations, _ = trainer.model.poses.poses()
    assert not torch.allclose(rotations, start)


def test_a_pose_table_starts_from_the_metadata_poses(particles):
    """Refining a consensus (poses="table") starts at its poses, not at the identity."""
    trainer = Trainer(particles, TrainConfig(**TINY, poses="table"))
    rotations, shifts = trainer.model.poses.poses()
    assert torch.allclose(rotations, torch.as_tensor(particles.rotations, dtype=torch.float32), atol=1e-6)
    assert torch.equal(shifts, torch.zeros_like(shifts))  # the metadata's shifts are applied to the images already


def test_old_checkpoints_name_the_encoder_encoder(particles):
    trainer = Trainer(particles, TrainConfig(**TINY))
    state = {k.replace("latents.", "encoder.", 1): v for k, v in trainer.model.state_dict().items()}
    assert any(k.startswith("encoder.") for k in state)
    fresh = TrainConfig(**TINY, seed=5).for_device(torch.device("cpu")).build_model(16, len(particles))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.latents.net[0].weight, trainer.model.latents.net[0].weight)


def test_unknown_parts_are_refused():
    from cryonb.core.errors import InputError

    with pytest.raises(InputError, match="latents must be one of encoder, table, gradient, class .*poses must be one of known, table "):
        TrainConfig(latents="lookup", poses="guess").validate()
    with pytest.raises(InputError, match="needs neutral_map"):
        TrainConfig(decoder="gmm").validate()


def test_frequency_marching_fits_a_growing_disc(particles):
    config = TrainConfig(**TINY, march_epochs=2, march_start=0.5)
    trainer = Trainer(particles, config)
    fitted = []
    trainer.before_step.append(lambda t, idx: fitted.append(len(t.data.half) if t._pixels is None else len(t._pixels)))
    trainer.fit(3, progress=False)
    per_epoch = trainer.batches_per_epoch
    assert fitted[0] < fitted[per_epoch] < len(trainer.data.half)  # grows over the first 2 epochs
    assert fitted == sorted(fitted) and fitted[-1] == len(trainer.data.half)  # then the whole disc
    assert all(np.isfinite(h["loss"]) for h in trainer.history)
    plain = Trainer(particles, TrainConfig(**TINY)).fit(1, progress=False)
    assert plain._pixels is None


def test_a_phase_flipping_encoder_reads_the_images_times_the_sign_of_their_ctf(particles):
    assert particles.ctf is not None
    trainer = Trainer(particles, TrainConfig(**TINY, phase_flip=True)).fit(1, progress=False)
    encoder = trainer.model.latents
    idx = torch.arange(len(particles))
    images, _, ctf = trainer.data.batch(idx)
    with torch.no_grad():
        flipped = encoder.net(torch.view_as_real((images * ctf.sign())[:, encoder.pixels]).flatten(1))[:, :2]
        raw = encoder.net(torch.view_as_real(images[:, encoder.pixels]).flatten(1))[:, :2]
    z = torch.as_tensor(trainer.embed())
    assert torch.allclose(z, flipped, atol=1e-5) and not torch.allclose(z, raw, atol=1e-2)  # embed passes the CTF
    with pytest.raises(ValueError, match="CTF"):
        encoder.means(idx, images)
