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


def test_encoder_gives_latents_with_a_fixed_variance():
    system, half, R, coords = setup(8)
    dec = GaussianDecoder(system.at(0.5), zdim=2, width=16, depth=1, movable=system.domain)
    enc = GradientEncoder(dec, zdim=2, width=16, depth=1, noise_std=0.25)
    images = observe(system.at(0.2), coords)
    enc.fit_scaler([(images, R, torch.ones(()))])
    assert enc.scaler.mean.shape == (5 * int(system.domain.sum()),)
    x = enc.scaler(enc.features(images, R, torch.ones(())))
    assert torch.allclose(x.mean(0), torch.zeros(x.shape[1]), atol=1e-4)
    mu, logvar = enc(images, R, torch.ones(()))
    assert mu.shape == (8, 2) and torch.allclose(logvar, torch.full_like(mu, 2 * torch.log(torch.tensor(0.25)).item()))
    loss = image_loss("frc", observe(system.at(0.5), coords), images, ring_index(half.coords))
    assert (loss >= 0).all()
