"""The encoder's slice filters: learned 3D filters read at each image's pose."""

import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.fourier import fft_center
from cryonb.core.latents import SliceFilters
from cryonb.core.model import HalfPlane
from cryonb.core.projection import project
from cryonb.core.rotations import random_rotations
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


def _cube(filters: SliceFilters) -> torch.Tensor:
    """(side, side, side, 3) the (x, y, z) frequency of each voxel of the filters' cube (z, y, x order)."""
    side = filters.weight.shape[-1]
    k = torch.arange(side, dtype=torch.float32) - side // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def test_a_filter_linear_in_frequency_reads_exactly_the_rotated_frequencies():
    D, radius = 24, 7.5
    half = HalfPlane.build(D)
    filters = SliceFilters(half.coords, 2, radius)
    a, b = torch.tensor([0.3, -1.0, 0.7]), torch.tensor([-0.2, 0.5, 1.1])
    with torch.no_grad():  # filter 0: a·k (real), filter 1: i b·k; trilinear sampling is exact for both
        filters.weight.zero_()
        filters.weight[0] = _cube(filters) @ a
        filters.weight[3] = _cube(filters) @ b
    images = torch.randn(5, len(half), dtype=torch.complex64)
    ctf = torch.rand(5, len(half)) * 2 - 1
    rotations = random_rotations(5, generator=torch.Generator().manual_seed(0))
    got = filters(images, rotations, ctf)
    inside = half.coords[:, :2].norm(dim=-1) <= radius
    q = half.coords[inside] @ rotations  # (5, P, 3): the frequencies the decoder would read
    y = (images * ctf)[:, inside]
    want = torch.stack([((q @ a) * y.real).sum(1), ((q @ b) * y.imag).sum(1)], dim=1)
    assert got.shape == (5, 2)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)


def _blob(D: int, centre, sigma: float) -> torch.Tensor:
    k = torch.arange(D, dtype=torch.float32) - D // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    cx, cy, cz = centre
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))


def test_the_transform_of_a_part_of_the_map_finds_that_part_in_every_view():
    """With the part's 3D transform as its filter, images of the map with the part score higher than
    images without it by the part's own power, the same in every view (cryonb's projection convention)."""
    D = 32
    body, part = _blob(D, (0, 0, 0), 5.0), _blob(D, (5, -3, 4), 2.0)
    half = HalfPlane.build(D)
    filters = SliceFilters(half.coords, 1, D // 2)
    part_ft = fft_center(part, 3)
    with torch.no_grad():
        filters.weight.zero_()
        filters.weight[0, :D, :D, :D] = part_ft.real  # the cube's extra +D/2 planes stay zero
        filters.weight[1, :D, :D, :D] = part_ft.imag
    rotations = random_rotations(24, generator=torch.Generator().manual_seed(1))
    images = {name: fft_center(project(v, rotations), 2).flatten(1)[:, half.index]
              for name, v in (("with", body + part), ("without", body), ("part", part))}
    one = torch.tensor(1.0)
    score = {name: filters(y, rotations, one)[:, 0] for name, y in images.items()}
    gain = score["with"] - score["without"]
    power = (images["part"].abs() ** 2)[:, half.coords[:, :2].norm(dim=-1) <= D // 2].sum(1)
    assert (gain > 0).all()
    assert gain.std() / gain.mean() < 0.05  # one filter, every view
    # the matched filter's statistic, the part's power, less what trilinear sampling loses of its phase
    # ramp (the part sits 7 pixels off centre: 1.4 radians per voxel at the box's edge)
    assert ((gain / power > 0.8) & (gain / power < 1.0)).all(), gain / power
    wrong = rotations.transpose(1, 2)  # the other rotation convention reads other planes
    misread = filters(images["with"], wrong, one)[:, 0] - filters(images["without"], wrong, one)[:, 0]
    assert misread.std() / misread.mean().abs() > 0.2


def test_an_encoder_with_slice_filters_trains_embeds_and_resumes(tmp_path):
    particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles
    config = TrainConfig(**TINY, slice_filters=4)
    trainer = Trainer(particles, config, run_dir=tmp_path / "run").fit(2, progress=False)
    filters = trainer.model.latents.slices
    assert filters.n == 4 and filters.weight.grad is not None and filters.weight.grad.abs().sum() > 0
    z = trainer.embed()
    assert z.shape == (64, 2) and np.isfinite(z).all()
    again = Trainer.from_run(tmp_path / "run", particles)
    assert np.allclose(again.embed(), z, atol=1e-5)
    idx = torch.arange(4)
    images, rotations, ctf = trainer.data.batch(idx)
    with pytest.raises(ValueError, match="poses"):
        trainer.model.latents.means(idx, images, ctf=ctf)


def test_the_filters_reach_slice_radius_pixels_up_to_nyquist():
    def side(box, **radius):
        encoder = TrainConfig(**TINY, encoding="none", slice_filters=2, **radius).build_model(box, 10).latents
        return encoder.slices.weight.shape[1:]
    assert side(64) == (33,) * 3 and side(128) == (65,) * 3  # 16 pixels of frequency, and 32 from a box of 128 up
    assert side(64, slice_radius=8) == (17,) * 3
    assert side(32, slice_radius=40) == (33,) * 3  # no further than Nyquist


@pytest.mark.parametrize("bad, match", [(dict(slice_filters=-1), "slice_filters must be"),
                                        (dict(slice_filters=4, latents="table"), "read by an encoder"),
                                        (dict(slice_filters=4, poses="table"), "at its known pose"),
                                        (dict(slice_radius=0), "slice_radius must be at least 1")])
def test_slice_filters_are_checked(bad, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**bad).validate()
