import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.fsc import fsc
from cryonb.core.io.mrc import read_map
from cryonb.core.particles import ParticleSet
from cryonb.core.phantoms import hinge
from cryonb.core.projection import plane_coordinates, sample_volume
from cryonb.core.reconstruct import OVERSAMPLING, FourierAccumulator, backproject
from cryonb.core.rotations import random_rotations
from cryonb.core.simulate import simulate


def min_fsc_to(curve, fraction):
    """Lowest FSC over the shells up to ``fraction`` of Nyquist."""
    return curve.values[: int(fraction * (len(curve.values) - 1)) + 1].min()


def test_insertion_is_the_adjoint_of_trilinear_slice_extraction():
    D, B = 12, 5
    g = torch.Generator().manual_seed(0)
    grid = FourierAccumulator(D, n_maps=1)
    rotations = random_rotations(B, g)
    images = torch.complex(torch.randn(B, D, D, generator=g), torch.randn(B, D, D, generator=g))
    grid.insert(images, None, rotations, torch.zeros(B, dtype=torch.long))
    G = grid.G
    volume = torch.complex(torch.randn(G, G, G, generator=g), torch.randn(G, G, G, generator=g))
    plane = plane_coordinates(D).reshape(-1, 3)[grid.pixels] * OVERSAMPLING
    slices = sample_volume(volume, plane @ rotations - 1)  # the grid's centre is at index 2D, not G // 2
    inserted = torch.complex(grid.sums[:, 0], grid.sums[:, 1]).reshape(G, G, G)
    lhs = (images.flatten(1)[:, grid.pixels].conj() * slices).sum()
    rhs = (inserted.conj() * volume).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4)
    assert grid.sums[:, 2].sum() == pytest.approx(B * len(grid.pixels), rel=1e-5)


def test_a_radius_inserts_fewer_pixels_and_the_same_sums_for_images_zero_beyond_it():
    D, B, radius = 16, 6, 4.5
    g = torch.Generator().manual_seed(1)
    rotations = random_rotations(B, g)
    images = torch.complex(torch.randn(B, D, D, generator=g), torch.randn(B, D, D, generator=g))
    ctf = torch.randn(B, D, D, generator=g)
    near = (plane_coordinates(D)[..., :2].norm(dim=-1) <= radius).float()
    whole, limited = FourierAccumulator(D), FourierAccumulator(D, radius=radius)
    for grid in (whole, limited):
        grid.insert(images * near, ctf * near, rotations, torch.zeros(B, dtype=torch.long))
    assert len(limited.pixels) < len(whole.pixels) / 2
    assert torch.allclose(limited.sums, whole.sums, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="atomic adds sum in a changing order only on a GPU")
def test_an_ordered_accumulator_sums_the_same_bits_every_run_and_leaves_the_global_setting_as_it_was():
    D, B = 64, 256
    g = torch.Generator().manual_seed(1)
    rotations = random_rotations(B, g).cuda()
    images = torch.complex(torch.randn(B, D, D, generator=g), torch.randn(B, D, D, generator=g)).cuda()
    ctf, maps = torch.randn(B, D, D, generator=g).cuda(), torch.zeros(B, dtype=torch.long, device="cuda")
    runs = [FourierAccumulator(D, device="cuda", ordered=True) for _ in range(3)] + [FourierAccumulator(D, device="cuda")]
    for grid in runs:
        grid.insert(images, ctf, rotations, maps)
    assert all(torch.equal(runs[0].sums, grid.sums) for grid in runs[1:3])
    torch.testing.assert_close(runs[0].sums, runs[3].sums, rtol=1e-4, atol=1e-3)
    assert not torch.are_deterministic_algorithms_enabled()


def test_an_image_weight_counts_as_that_many_copies():
    D, B = 12, 4
    g = torch.Generator().manual_seed(1)
    rotations = random_rotations(B, g)
    images = torch.complex(torch.randn(B, D, D, generator=g), torch.randn(B, D, D, generator=g))
    ctf = torch.rand(B, D, D, generator=g)
    maps = torch.zeros(B, dtype=torch.long)
    weighted, copies = FourierAccumulator(D), FourierAccumulator(D)
    weighted.insert(images, ctf, rotations, maps, torch.tensor([1.0, 2.0, 0.0, 3.0]))
    for i, n in enumerate([1, 2, 0, 3]):
        for _ in range(n):
            copies.insert(images[i : i + 1], ctf[i : i + 1], rotations[i : i + 1], maps[:1])
    torch.testing.assert_close(weighted.sums, copies.sums, rtol=1e-5, atol=1e-5)


def test_backprojection_without_poses_is_one_clear_error():
    sim = simulate("hinge", 20, D=16, progress=False)
    with pytest.raises(InputError, match="no poses"):
        backproject(ParticleSet(sim.particles.images, ctf=sim.particles.ctf, apix=3.0), progress=False)

@pytest.mark.parametrize("shift_sigma", [0.0, 2.0])
def test_noiseless_projections_of_a_real_map_reproduce_it(real_data, shift_sigma):
    volume, apix = read_map(real_data / "sfftk" / "emd_5625.map")  # 56³, 4.23 Å
    sim = simulate(volume, 200, apix=apix, snr=None, ctf=False, shift_sigma=shift_sigma, seed=1, progress=False)
    rec = backproject(sim.particles, ctf=False, wiener=1e-3, half_maps=False, progress=False)
    assert rec.half1 is None and rec.apix == pytest.approx(4.23)
    assert min_fsc_to(fsc(rec.volume, volume, apix=apix), 0.8) > 0.9


def test_shifts_must_be_undone():
    volume = hinge(32, 0.0)
    sim = simulate(volume, 200, D=32, snr=None, ctf=False, shift_sigma=3.0, progress=False)
    ignored = backproject(ParticleSet(sim.particles.images, sim.particles.rotations, apix=3.0), ctf=False, wiener=1e-3, progress=False)
    undone = backproject(sim.particles, ctf=False, wiener=1e-3, progress=False)
    assert min_fsc_to(fsc(undone.volume, volume), 0.8) > 0.9
    assert min_fsc_to(fsc(ignored.volume, volume), 0.8) < 0.5


def test_ctf_is_corrected():
    volume = hinge(32, 0.0)
    sim = simulate(volume, 400, D=32, apix=3.0, snr=None, progress=False)
    corrected = backproject(sim.particles, wiener=1e-2, half_maps=False, progress=False)
    uncorrected = backproject(sim.particles, ctf=False, wiener=1e-2, half_maps=False, progress=False)
    assert min_fsc_to(fsc(corrected.volume, volume), 0.8) > 0.9
    assert min_fsc_to(fsc(uncorrected.volume, volume), 0.8) < 0.5


def test_half_map_resolution_improves_with_particle_count():
    volume = hinge(32, 0.0)
    resolution = {}
    for n in (500, 4000):
        sim = simulate(volume, n, D=32, apix=4.0, snr=0.1, shift_sigma=1.0, progress=False)
        rec = backproject(sim.particles, progress=False)
        resolution[n] = rec.fsc().resolution(0.143)
        # the half-map estimate is honest: the full map matches the truth to about that resolution
        assert fsc(rec.volume, volume, apix=4.0, mask="soft").resolution(0.5) == pytest.approx(resolution[n], rel=0.15)
    assert resolution[4000] < 0.9 * resolution[500]
    assert 8.0 < resolution[4000] < 20.0


def test_halves_are_a_seeded_random_split(tmp_path):
    sim = simulate(hinge(16, 0.0), 101, D=16, snr=1.0, progress=False)
    a, b, c = (backproject(sim.particles, seed=s, progress=False) for s in (0, 0, 1))
    torch.testing.assert_close(a.half1, b.half1)
    assert not torch.allclose(a.half1, c.half1)
    paths = a.write(tmp_path / "map.mrc")
    assert [p.name for p in paths] == ["map.mrc", "map_half1.mrc", "map_half2.mrc"]
    half2, apix = read_map(paths[2])
    np.testing.assert_array_equal(half2, a.half2.numpy())
    assert apix == pytest.approx(3.0)


def test_missing_ctf_or_half_maps_are_reported():
    particles = ParticleSet(np.zeros((4, 8, 8)), random_rotations(4).numpy(), apix=1.0)
    with pytest.raises(InputError, match="no CTF"):
        backproject(particles, progress=False)
    with pytest.raises(ValueError, match="no half maps"):
        backproject(particles, ctf=False, half_maps=False, progress=False).fsc()
