import math

import numpy as np
import pytest
import torch

from cryonb.core import so3grid
from cryonb.core.ctf import compute_ctf
from cryonb.core.model import HalfPlane
from cryonb.core.phantoms import hinge
from cryonb.core.posesearch import DrawnMap, MapDecoder, marching_radii, phase_ramps, search_classes, search_poses, shift_grid
from cryonb.core.rotations import random_rotations

D = 32


@pytest.fixture(scope="module")
def decoder():
    return MapDecoder(hinge(D))


@pytest.fixture(scope="module")
def half():
    return HalfPlane.build(D)


def on_grid(n, resolution, seed):
    """Grid indices at ``resolution`` reached from the base grid by random descent (reachable by the search)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, so3grid.grid_size(2), (n,), generator=g)
    for r in range(2, resolution):
        idx = so3grid.children(r, idx)[torch.arange(n), torch.randint(0, 8, (n,), generator=g)]
    return idx


def test_marching_radii_and_shift_grid():
    assert marching_radii(4, (12, 32), 128) == [12, 17, 22, 27, 32]
    assert marching_radii(4, (12, 32), 32) == [12, 13, 14, 15, 16]  # capped at Nyquist
    assert marching_radii(0, (12, 32), 128) == [32]
    grid = shift_grid(7, 20.0)
    assert grid.shape == (49, 2)
    np.testing.assert_allclose(grid[:7, 0], -20 + 40 / 7 * (np.arange(7) + 0.5), rtol=1e-6)
    np.testing.assert_allclose(grid.mean(0), 0, atol=1e-5)
    assert shift_grid(1, 5.0).abs().max() == 0


def test_exact_pose_of_noiseless_images_drawn_on_the_grid(decoder, half):
    idx = on_grid(16, 6, seed=1)
    R = so3grid.rotations(6, idx).float()
    images = decoder(half.coords @ R)
    result = search_poses(decoder, images, 1.0, half, keep=16, shift_extent=0)
    np.testing.assert_array_equal(result.index, idx)
    np.testing.assert_allclose(result.rotations, R, atol=1e-6)
    assert result.shifts.abs().max() == 0
    assert result.error.max() < 1e-6 * images.abs().pow(2).sum(1).min()


class TwoMaps(torch.nn.Module):
    """Two known maps as one decoder of a one-hot z (2,): class 0 the closed hinge, class 1 swung."""

    def __init__(self):
        super().__init__()
        self.maps = torch.nn.ModuleList([MapDecoder(hinge(D, 0.0)), MapDecoder(hinge(D, 0.9))])

    def forward(self, coords, z):
        return sum(z[:, k, None] * m(coords) for k, m in enumerate(self.maps))


def test_each_image_gets_its_class_and_pose(half):
    idx = on_grid(12, 6, seed=3)
    R = so3grid.rotations(6, idx).float()
    truth = torch.tensor([0, 1] * 6)
    two = TwoMaps()
    images = torch.where(truth[:, None] == 0, two.maps[0](half.coords @ R), two.maps[1](half.coords @ R))
    result = search_classes(two, images, 1.0, half, torch.eye(2), keep=16, shift_extent=0)
    np.testing.assert_array_equal(result.labels, truth)
    np.testing.assert_array_equal(result.index, idx)
    np.testing.assert_allclose(result.rotations, R, atol=1e-6)


def test_shifts_follow_the_metadata_convention(decoder, half):
    # An image translated by -s (as the simulator draws it) is centred again by +s: the search
    # finds +s when it lies on its shift grid.
    idx = on_grid(8, 6, seed=2)
    R = so3grid.rotations(6, idx).float()
    extent, points = 4.0, 8
    fine = shift_grid(points, extent / 2**4)  # the last round's offsets around a centre
    s = shift_grid(points, extent)[torch.tensor([0, 9, 18, 27, 36, 45, 54, 63])] + fine[torch.arange(8) * 5 % 64]
    images = decoder(half.coords @ R) * phase_ramps(half.coords[:, :2], -s, D)
    result = search_poses(decoder, images, 1.0, half, keep=16, shifts=points, shift_extent=extent)
    np.testing.assert_allclose(result.shifts, s, atol=1e-4)
    np.testing.assert_array_equal(result.index, idx)


def test_simulated_particles_give_their_poses_and_shifts(decoder, half):
    # End to end with the simulator and the training data's preprocessing (window, FFT, half-plane).
    from cryonb.core.simulate import simulate
    from cryonb.core.preprocess import Preprocess

    sim = simulate(hinge(D)[None], n=12, snr=None, ctf=False, shift_sigma=1.5, seed=4, progress=False)
    truth = sim.particles
    blind = type(truth)(truth.images, truth.rotations, None, truth.ctf, truth.apix)
    images = Preprocess(blind)(0, len(blind))
    result = search_poses(decoder, images, 1.0, half, keep=16)
    angle = so3grid.angle_between(result.rotations.double(), torch.as_tensor(truth.rotations).double())
    assert float(angle.median()) < so3grid.step_degrees(6)
    assert float(angle.max()) < 3 * so3grid.step_degrees(6)
    shift_error = (result.shifts - torch.as_tensor(truth.shifts)).norm(dim=1)
    assert float(shift_error.max()) < 0.25


def test_off_grid_low_noise_with_ctf(decoder, half):
    g = torch.Generator().manual_seed(5)
    n = 24
    R = random_rotations(n, g)
    s = (torch.rand(n, 2, generator=g) - 0.5) * 4
    freqs = half.coords[:, :2] / (D * 3.0)
    defocus = 10000 + 10000 * torch.rand(n, generator=g)
    params = torch.stack([defocus, defocus, torch.zeros(n), *(torch.full((n,), v) for v in (300.0, 2.7, 0.1, 0.0, 0.0))], 1)
    ctf = compute_ctf(freqs, *params[:, :, None].unbind(1))
    clean = decoder(half.coords @ R) * ctf * phase_ramps(half.coords[:, :2], -s, D)
    sigma = 0.1 * clean.abs().pow(2).mean().sqrt()
    images = clean + sigma * torch.complex(torch.randn(clean.shape, generator=g), torch.randn(clean.shape, generator=g)) / math.sqrt(2)
    result = search_poses(decoder, images, ctf, half)
    angle = so3grid.angle_between(result.rotations.double(), R.double())
    step = so3grid.step_degrees(6)  # the last round's grid step, 0.94°
    assert float(angle.median()) < 1.25 * step
    assert float((angle < 3 * step).float().mean()) >= 0.85
    assert float((result.shifts - s).norm(dim=1).median()) < 0.15
    # Without the CTF the same images match worse.
    plain = search_poses(decoder, images, 1.0, half, iterations=1)
    assert float(plain.error.mean()) > float(search_poses(decoder, images, ctf, half, iterations=1).error.mean())


@pytest.mark.slow
def test_latents_choose_the_map(half):
    maps = torch.stack([hinge(D, 0.0), hinge(D, 1.2)])
    decoders = [MapDecoder(m) for m in maps]

    def two_maps(coords, z):
        pick = (z[:, 0] > 0)[:, None]
        return torch.where(pick, decoders[1](coords), decoders[0](coords))

    idx = on_grid(4, 4, seed=6)
    R = so3grid.rotations(4, idx).float()
    state = torch.tensor([0, 1, 1, 0])
    z = (state.float() * 2 - 1)[:, None]
    images = torch.where(state[:, None] == 1, decoders[1](half.coords @ R), decoders[0](half.coords @ R))
    right = search_poses(two_maps, images, 1.0, half, z=z, keep=16, iterations=2, shift_extent=0)
    assert int((right.index == idx).sum()) >= 3  # (a hierarchical search can miss one)
    wrong = search_poses(two_maps, images, 1.0, half, z=-z, keep=16, iterations=2, shift_extent=0)
    assert bool((wrong.error > right.error).all())
    assert float(wrong.error.median()) > 100 * max(float(right.error.median()), 1.0)


def test_chunking_does_not_change_the_result(decoder, half):
    R = random_rotations(4, torch.Generator().manual_seed(7))
    images = decoder(half.coords @ R)
    big = search_poses(decoder, images, 1.0, half, iterations=2)
    small = search_poses(decoder, images, 1.0, half, iterations=2, chunk=60_000)  # 16 decoder calls for the base grid instead of 1
    np.testing.assert_array_equal(big.index, small.index)
    np.testing.assert_allclose(big.shifts, small.shifts)


def test_a_turned_grid_finds_poses_on_the_turned_grid(decoder, half):
    turn = random_rotations(1, torch.Generator().manual_seed(9))[0]
    idx = on_grid(8, 5, seed=8)
    R = so3grid.rotations(5, idx).float() @ turn
    images = decoder(half.coords @ R)
    result = search_poses(decoder, images, 1.0, half, keep=16, iterations=3, shift_extent=0, grid_rotation=turn)
    assert int((result.index == idx).sum()) >= 7
    np.testing.assert_allclose(result.rotations[result.index == idx], R[result.index == idx], atol=1e-5)


def test_a_callers_autocast_changes_nothing(decoder, half):
    """Under a caller's bfloat16 autocast the grid, the errors and the poses stay float32 (a bf16 grid
    is off by ~0.5°; on a GPU it failed with a dtype error)."""
    idx = on_grid(4, 4, seed=3)
    images = decoder(half.coords @ so3grid.rotations(4, idx).float())
    plain = search_poses(decoder, images, 1.0, half, iterations=2, shift_extent=0)
    with torch.autocast("cpu", torch.bfloat16):
        cast = search_poses(decoder, images, 1.0, half, iterations=2, shift_extent=0)
    assert cast.rotations.dtype == torch.float32
    torch.testing.assert_close(cast.rotations, plain.rotations)
    np.testing.assert_array_equal(cast.index, plain.index)


def test_the_decoder_runs_in_the_callers_autocast(decoder, half):
    """The decoder's slices are evaluated in the caller's autocast dtype (a 1024-wide MLP searched in
    float32 ran at a twentieth of its bf16 rate), while rotations and errors stay float32."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, coords, z=None):
            seen.append((torch.is_autocast_enabled("cpu"), coords.dtype))
            return decoder(coords, z)

    idx = on_grid(2, 3, seed=4)
    images = decoder(half.coords @ so3grid.rotations(3, idx).float())
    search_poses(Spy(), images, 1.0, half, iterations=1, shift_extent=0)
    assert seen and not any(enabled for enabled, _ in seen)  # no autocast asked for: none used
    seen.clear()
    with torch.autocast("cpu", torch.bfloat16):
        result = search_poses(Spy(), images, 1.0, half, iterations=1, shift_extent=0)
    assert seen and all(enabled for enabled, _ in seen)
    assert all(dtype == torch.float32 for _, dtype in seen)  # the rotated coordinates are float32
    np.testing.assert_array_equal(result.index, idx)


class Blobs(torch.nn.Module):
    """The exact transform of a real map of Gaussian blobs, at any frequency (pixels); counts its points."""

    def __init__(self, centres, sigma=1.5):
        super().__init__()
        self.centres, self.sigma, self.points = torch.as_tensor(centres, dtype=torch.float32), sigma, 0

    def forward(self, coords, z=None):
        self.points += coords.shape[0] * coords.shape[1]
        k = coords.float() / D  # cycles per pixel
        envelope = torch.exp(-2 * math.pi**2 * self.sigma**2 * k.pow(2).sum(-1))
        phase = -2 * math.pi * (k @ self.centres.T)
        return (envelope[..., None] * torch.polar(torch.ones_like(phase), phase)).sum(-1)


BLOB_CENTRES = [[0, 0, 0], [5, 0, 0], [0, 3, 1], [-2, -1, 6], [1, -6, -2]]


def test_a_drawn_map_matches_the_decoder_on_both_halves():
    blobs = Blobs(BLOB_CENTRES)
    drawn = DrawnMap(blobs, 12)
    assert blobs.points < 2 * 2**3 * (4 / 3 * math.pi * 14**3) / 2  # half the ball is drawn, at 2 samples per pixel
    R = random_rotations(16, torch.Generator().manual_seed(11))
    coords = (HalfPlane.build(D, radius=12).coords @ R) * torch.tensor([1.0, 1.0, -1.0])  # points on both sides of kz = 0
    exact, interpolated = blobs(coords), drawn(coords)
    assert float((coords[..., 2] < 0).float().mean()) > 0.3
    relative = float((interpolated - exact).abs().pow(2).sum() / exact.abs().pow(2).sum()) ** 0.5
    assert relative < 0.03  # blobs within 7 px of the centre: damped by at most ~4 %, less on average
    mirrored = DrawnMap(Blobs(BLOB_CENTRES), 12)(-coords)
    torch.testing.assert_close(mirrored, interpolated.conj(), atol=1e-5, rtol=1e-5)


def test_a_shared_map_is_drawn_once_and_finds_the_exact_searchs_poses(half):
    """With ``z`` None the decoder runs on the drawn grid and the last round's best candidates only, a
    small fraction of the exact search's points, and the poses are those of the search through the
    decoder at every pixel; from the interpolated slices alone, some are a neighbour."""
    R = random_rotations(8, torch.Generator().manual_seed(12))
    exact_decoder, drawn_decoder = Blobs(BLOB_CENTRES), Blobs(BLOB_CENTRES)
    images = exact_decoder(half.coords @ R)
    exact_decoder.points = 0
    options = dict(keep=8, iterations=3, shift_extent=0)
    exact = search_poses(exact_decoder, images, 1.0, half, map_grid=0, **options)
    drawn = search_poses(drawn_decoder, images, 1.0, half, **options)
    assert drawn_decoder.points < exact_decoder.points / 10
    np.testing.assert_array_equal(drawn.index, exact.index)
    step = so3grid.step_degrees(5)  # the last round's grid step
    interpolated = search_poses(Blobs(BLOB_CENTRES), images, 1.0, half, rescore=0, **options)
    apart = so3grid.angle_between(interpolated.rotations.double(), exact.rotations.double())
    assert int((apart < 0.1).sum()) >= 6 and float(apart.max()) < 1.1 * step  # the same pose or a neighbour


class MovingBlobs(Blobs):
    """Blobs whose last one moves along x with the latent: a map per image."""

    def forward(self, coords, z=None):
        self.points += coords.shape[0] * coords.shape[1]
        k = coords.float() / D
        envelope = torch.exp(-2 * math.pi**2 * self.sigma**2 * k.pow(2).sum(-1))
        centres = self.centres.expand(len(z), -1, -1).clone()
        centres[:, -1, 0] += 4 * z[:, 0]
        phase = -2 * math.pi * (k @ centres.transpose(1, 2))
        return (envelope[..., None] * torch.polar(torch.ones_like(phase), phase)).sum(-1)


def test_each_images_map_is_drawn_for_the_first_round_and_the_poses_are_the_exact_searchs(half):
    """With a latent per image, the base grid's round is interpolated from each image's own drawn map:
    the same poses as the decoder at every pixel, from a fraction of its points."""
    R = random_rotations(6, torch.Generator().manual_seed(13))
    z = torch.linspace(-1, 1, 6)[:, None]
    exact_decoder, drawn_decoder = MovingBlobs(BLOB_CENTRES), MovingBlobs(BLOB_CENTRES)
    images = exact_decoder(half.coords @ R, z)
    exact_decoder.points = 0
    options = dict(keep=8, iterations=3, shift_extent=0)
    exact = search_poses(exact_decoder, images, 1.0, half, z, map_grid=0, **options)
    drawn = search_poses(drawn_decoder, images, 1.0, half, z, **options)
    assert drawn_decoder.points < exact_decoder.points / 8  # 11 times fewer here
    np.testing.assert_array_equal(drawn.index, exact.index)
    assert float(so3grid.angle_between(exact.rotations.double(), R.double()).max()) < so3grid.step_degrees(5)
    # each image's own map: with the latents swapped the first round is drawn from the wrong maps
    swapped = search_poses(MovingBlobs(BLOB_CENTRES), images, 1.0, half, z.flip(0), **options)
    assert float(swapped.error.mean()) > 10 * float(drawn.error.mean())


def test_a_drawn_map_per_latent_is_each_latents_map():
    z = torch.tensor([[-1.0], [0.5]])
    drawn = DrawnMap(MovingBlobs(BLOB_CENTRES), 10, z=z)
    coords = HalfPlane.build(D, radius=10).coords @ random_rotations(4, torch.Generator().manual_seed(3))  # (4, P, 3)
    each = drawn.slices(coords)  # (2, 4, P)
    for i in range(2):
        exact = MovingBlobs(BLOB_CENTRES)(coords, z[i : i + 1].expand(4, -1))
        single = DrawnMap(MovingBlobs(BLOB_CENTRES), 10, z=z[i : i + 1]).slices(coords)[0]
        torch.testing.assert_close(each[i], single, atol=1e-5, rtol=1e-5)
        assert float((each[i] - exact).abs().pow(2).sum() / exact.abs().pow(2).sum()) ** 0.5 < 0.03


def test_a_coarse_base_grid_is_searched_through_the_decoder_when_drawing_would_cost_more(half):
    z = torch.zeros(2, 1)
    images = MovingBlobs(BLOB_CENTRES)(half.coords @ random_rotations(2, torch.Generator().manual_seed(1)), z)
    counted = []
    for map_grid in (2, 0):
        decoder = MovingBlobs(BLOB_CENTRES)
        search_poses(decoder, images, 1.0, half, z, base_resolution=0, iterations=1, shift_extent=0, map_grid=map_grid)
        counted.append(decoder.points)
    assert counted[0] == counted[1]  # 72 rotations' slices: fewer points than a map drawn within 12 px
