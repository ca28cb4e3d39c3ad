"""The pixels a training step fits (cryonb.core.pixels): radius restrictions and random shares."""

import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.model import HalfPlane
from cryonb.core.pixels import FittedPixels
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

D = 16
HALF = HalfPlane.build(D)
RADIUS = HALF.coords[:, :2].norm(dim=-1)
TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


def test_all_pixels_or_those_within_a_radius():
    pixels = FittedPixels(HALF.coords, D)
    assert pixels.at(0) == (None, 1.0)
    assert pixels.at(0, D / 2) == (None, 1.0)  # Nyquist and beyond: all of them
    within, weight = pixels.at(3, 4)
    assert torch.equal(within, torch.nonzero(RADIUS <= 4).squeeze(1))
    assert weight == len(HALF) / len(within)
    assert pixels.at(9, 4)[0] is within  # the same tensor each step: a captured graph reads it


@pytest.mark.parametrize("radius", [None, 5])
def test_a_share_is_a_fresh_uniform_draw_each_step(radius):
    pixels = FittedPixels(HALF.coords, D, fraction=0.25, seed=3)
    inside = torch.nonzero(RADIUS <= (radius or D)).squeeze(1)
    counts = torch.zeros(len(HALF))
    first, weight = pixels.at(0, radius)
    buffer, draws = first, []
    for step in range(400):
        drawn, weight = pixels.at(step, radius)
        assert drawn is buffer  # refilled in place
        assert len(drawn) == round(0.25 * len(inside)) and len(drawn.unique()) == len(drawn)
        assert torch.equal(drawn, drawn.sort().values) and torch.isin(drawn, inside).all()
        counts[drawn] += 1
        draws.append(drawn.clone())
    assert weight == len(HALF) / len(inside)
    assert not torch.equal(draws[0], draws[1])
    share = counts[inside] / 400  # each pixel inside about a quarter of the time: 100 ± 8.7 of 400 draws
    assert abs(share.mean() - len(draws[0]) / len(inside)) < 1e-6
    assert (share - 0.25).abs().max() < 0.1 and counts.sum() == counts[inside].sum()
    again = FittedPixels(HALF.coords, D, fraction=0.25, seed=3)
    assert torch.equal(again.at(7, radius)[0], draws[7])  # the step and the seed decide the draw


@pytest.mark.parametrize("radius", [None, 6])
def test_a_core_is_always_fitted_and_the_rest_drawn_with_weights_that_keep_the_mean(radius):
    pixels = FittedPixels(HALF.coords, D, fraction=0.25, seed=3, core=0.5)
    inside = RADIUS <= (radius or D)
    core, rest = inside & (RADIUS <= D / 4), inside & (RADIUS > D / 4)
    n_core, n_rest = int(core.sum()), int(rest.sum())
    counts, error = torch.zeros(len(HALF)), torch.rand(len(HALF))
    estimates = []
    for step in range(2000):
        drawn, weights = pixels.at(step, radius)
        assert torch.isin(torch.nonzero(core).squeeze(1), drawn).all() and inside[drawn].all()
        assert len(drawn) == n_core + round(0.25 * n_rest) and len(drawn.unique()) == len(drawn)
        counts[drawn] += 1
        estimates.append((error[drawn] * weights).mean())
    scale = len(HALF) / inside.sum()  # as without a core: the error in units of the whole half-plane
    # each pixel's weight × its chance of being drawn is the same for all: the weighted mean is unbiased
    assert torch.allclose(weights[:n_core] / len(drawn), scale / inside.sum())
    assert torch.allclose(weights[n_core:] * 0.25 / len(drawn), scale / inside.sum(), rtol=0.05)
    assert (counts[core] == 2000).all() and abs(counts[rest].mean() / 2000 - 0.25) < 0.01
    mean, spread = torch.stack(estimates).mean(), torch.stack(estimates).std() / 2000**0.5
    assert abs(mean - error[inside].mean() * scale) < 4 * spread
    assert pixels.at(0, radius)[1] is weights  # one tensor of weights: a captured graph reads it


@pytest.mark.parametrize("radius", [None, 6])
def test_after_the_share_every_pixel_is_fitted(radius):
    pixels = FittedPixels(HALF.coords, D, fraction=0.25, seed=3, core=0.5, until=10)
    inside = torch.nonzero(RADIUS <= (radius or D)).squeeze(1)
    drawn, weights = pixels.at(9, radius)
    assert len(drawn) < len(inside) and torch.is_tensor(weights)
    everything, weight = pixels.at(10, radius)
    assert weight == len(HALF) / len(inside)
    if radius is None:
        assert everything is None
    else:
        assert torch.equal(everything, inside) and pixels.at(11, radius)[0] is everything  # one tensor for a graph
    assert pixels.at(9, radius)[0] is drawn  # a resumed run's earlier step draws its share again


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 64, D=D, apix=8.0, snr=1.0, seed=1, progress=False).particles


@pytest.mark.parametrize("core", [0.0, 0.5])
def test_training_on_a_share_of_the_pixels_is_reproducible_and_fits_less(particles, core):
    config = TrainConfig(**TINY, pixel_fraction=0.5, pixel_core=core)
    runs = []
    for _ in range(2):
        trainer = Trainer(particles, config)
        fitted = []
        trainer.before_step.append(lambda t, idx: fitted.append(t._pixels.clone()))
        trainer.fit(2, progress=False)
        runs.append((trainer, fitted))
    (a, fitted), (b, _) = runs
    inner = int((a.data.half.coords[:, :2].norm(dim=-1) <= core * D / 2).sum()) if core else 0
    assert all(len(p) == inner + round(0.5 * (len(a.data.half) - inner)) for p in fitted)
    assert not torch.equal(fitted[0], fitted[1])
    assert all(np.isfinite(h["loss"]) for h in a.history)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(InputError, match="pixel_fraction must be in"):
        TrainConfig(pixel_fraction=0).validate()
    with pytest.raises(InputError, match="pixel_core must be in"):
        TrainConfig(pixel_core=1.5).validate()
    with pytest.raises(InputError, match="pixel_until must be in"):
        TrainConfig(pixel_until=-0.1).validate()


def test_the_share_ends_where_pixel_until_says(particles):
    trainer = Trainer(particles, TrainConfig(**TINY, pixel_fraction=0.5, pixel_core=0.5, pixel_until=0.5, epochs=2))
    fitted = []
    trainer.before_step.append(lambda t, idx: fitted.append(t._pixels))
    trainer.fit(2, progress=False)
    per_epoch = trainer.batches_per_epoch
    assert all(p is not None and len(p) < len(trainer.data.half) for p in fitted[:per_epoch])
    assert all(p is None for p in fitted[per_epoch:]) and len(fitted) == 2 * per_epoch
