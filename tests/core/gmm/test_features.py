import pytest
import torch

from cryonb.core.gmm import GaussianDecoder, GradientEncoder, gradient_features, moving_domain, ring_index
from cryonb.core.gmm.loss import image_loss
from cryonb.core.gmm.mixture import mixture_transform
from cryonb.core.model import HalfPlane
from cryonb.core.rotations import random_rotations

D = 16


def setup(n=4, seed=0):
    system = moving_domain(D, n_body=20, n_domain=6, seed=seed)
    half = HalfPlane.build(D)
    R = random_rotations(n, torch.Generator().manual_seed(seed))
    coords = half.coords @ R
    return system, half, R, coords


def observe(mixture, coords):
    p, a, w = (t.expand(len(coords), *t.shape[1:]) for t in mixture.batched)
    return mixture_transform(coords, p, a, w, D)


def test_batched_gradients_are_per_particle_gradients():
    system, half, R, coords = setup()
    neutral = system.at(0.5)
    images = observe(system.at(0.9), coords)
    rings = ring_index(half.coords)
    ctf = torch.ones(())
    batch = gradient_features((neutral.positions, neutral.amplitudes, neutral.widths), D, coords, images, ctf, rings)
    for i in range(len(images)):
        one = gradient_features((neutral.positions, neutral.amplitudes, neutral.widths), D, coords[i : i + 1],
                                images[i : i + 1], ctf, rings)
        assert torch.allclose(batch[i], one[0], rtol=1e-3, atol=1e-6 * float(one.abs().max()))
    assert batch.shape == (4, 5 * len(neutral))


def test_gradients_vanish_at_the_neutral_model_and_point_at_the_moving_domain():
    system, half, R, coords = setup()
    neutral = system.at(0.5)
    rings = ring_index(half.coords)
    params = (neutral.positions, neutral.amplitudes, neutral.widths)
    same = gradient_features(params, D, coords, observe(neutral, coords), torch.ones(()), rings, loss="mse")
    moved = gradient_features(params, D, coords, observe(system.at(1.0), coords), torch.ones(()), rings, loss="mse")
    assert float(same.abs().max()) < 1e-4 * float(moved.abs().max())
    per_gaussian = moved.reshape(4, -1, 5)[..., :3].norm(dim=-1).mean(0)  # position gradients
    assert per_gaussian[system.domain].mean() > 3 * per_gaussian[~system.domain].mean()


def test_encoder_is_a_latent_source_with_a_fixed_variance():
    system, half, R, coords = setup(8)
    dec = GaussianDecoder(system.at(0.5), zdim=2, width=16, depth=1, movable=system.domain)
    enc = GradientEncoder(dec, zdim=2, width=16, depth=1, noise_std=0.25)
    images = 2.0 * observe(system.at(0.2), coords)
    one = torch.ones(())
    enc.prepare([(images, R, one)])
    assert float(dec.scale) == pytest.approx(2.0, rel=0.2)  # calibrated on the batch
    assert enc.scaler.mean.shape == (5 * int(system.domain.sum()),)
    x = enc.scaler(enc.features(images, R, one))
    assert torch.allclose(x.mean(0), torch.zeros(x.shape[1]), atol=1e-4)
    idx = torch.arange(8)
    noise = torch.randn(8, 2)
    out = enc(idx, images, noise, rotations=R, ctf=one)
    assert torch.allclose(out.z - out.mu, 0.25 * noise, atol=1e-6)
    assert torch.allclose(enc.means(idx, images, rotations=R, ctf=one), out.mu)
    assert out.prior.shape == (8,) and (out.prior >= 0).all()
    with pytest.raises(ValueError, match="rotation"):
        enc(idx, images, noise)


def test_encoder_prepares_itself_on_its_first_batch():
    system, half, R, coords = setup(6)
    dec = GaussianDecoder(system.at(0.5), zdim=1, width=8, depth=1)
    enc = GradientEncoder(dec, zdim=1, width=8, depth=1)
    assert not bool(enc.ready)
    enc(torch.arange(6), observe(system.at(0.8), coords), None, rotations=R, ctf=torch.ones(()))
    assert bool(enc.ready) and float(enc.scaler.std.min()) > 0


def test_encoder_state_loads_into_an_encoder_of_another_size():
    system, half, R, coords = setup(4)
    dec = GaussianDecoder(system.at(0.5), zdim=1, width=8, depth=1)
    enc = GradientEncoder(dec, zdim=1, width=8, depth=1)
    enc.prepare([(observe(system.at(0.8), coords), R, torch.ones(()))])
    small = system.start.select(torch.arange(5))
    other = GradientEncoder(GaussianDecoder(small, zdim=1, width=8, depth=1), zdim=1, width=8, depth=1)
    other.load_state_dict(enc.state_dict())
    images = observe(system.at(0.8), coords)
    assert torch.allclose(other.means(None, images, R, torch.ones(())), enc.means(None, images, R, torch.ones(())))
