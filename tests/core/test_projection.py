import pytest
import torch

from cryonb.core.fourier import fft2_center, fft3_center, ifft2_center, shell_index
from cryonb.core.io.mrc import read_map
from cryonb.core.projection import extract_slices, project, sample_volume, shift_images, shift_images_ft
from cryonb.core.rotations import random_rotations


@pytest.fixture(scope="module")
def real_map(real_data):
    vol, _ = read_map(real_data / "sfftk" / "emd_5625.map")
    return torch.tensor(vol, dtype=torch.float64)


def shell_correlation(a, b, shells, lo, hi):
    m = (shells >= lo) & (shells < hi)
    x, y = a[..., m], b[..., m]
    return float((x * y.conj()).sum().real / torch.sqrt((x.abs() ** 2).sum() * (y.abs() ** 2).sum()))


def test_identity_projection_is_exactly_the_central_slice(real_map):
    I = torch.eye(3, dtype=torch.float64)[None]
    torch.testing.assert_close(fft2_center(project(real_map, I)), extract_slices(fft3_center(real_map), I))


def test_projection_slice_theorem_on_a_real_map(real_map):
    """The transform of a real-space projection equals the central slice at the same pose.

    The slice is taken from a 2x zero-padded map (finer Fourier sampling) so that trilinear
    interpolation error stays small; both sides agree closely up to 2/3 of Nyquist.
    """
    D = real_map.shape[-1]
    R = random_rotations(6, torch.Generator().manual_seed(0), dtype=torch.float64)
    proj = fft2_center(project(real_map, R))
    padded = torch.nn.functional.pad(real_map, (D // 2,) * 6)
    slices = ifft2_center(extract_slices(fft3_center(padded), R)).real[:, D // 2 : D // 2 + D, D // 2 : D // 2 + D]
    shells = shell_index(D)
    assert shell_correlation(proj, fft2_center(slices), shells, 0, D // 4) > 0.999
    assert shell_correlation(proj, fft2_center(slices), shells, D // 4, D // 3) > 0.99


def test_quarter_turn_about_z_rotates_the_image(real_map):
    # R = Rz(90°): image(x, y) = sum_z V(R^T x); a quarter turn of the projection along z.
    R = torch.tensor([[[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    D = real_map.shape[-1]
    p = project(real_map, R)[0]
    p0 = project(real_map, torch.eye(3, dtype=torch.float64)[None])[0]
    # Index mapping for the centred grid: (y, x) -> offsets; compare the interior only.
    c = D // 2
    y, x = torch.meshgrid(torch.arange(1, D), torch.arange(1, D), indexing="ij")
    ox, oy = x - c, y - c
    sx, sy = -oy, ox  # R^T (x, y, z) = (-y, x, z)
    torch.testing.assert_close(p[y, x], p0[sy + c, sx + c])


def test_shifts_are_exact_for_integer_shifts_and_invertible():
    img = torch.randn(2, 16, 16, dtype=torch.float64)
    s = torch.tensor([[3.0, -2.0], [0.0, 5.0]], dtype=torch.float64)
    moved = shift_images(img, s)
    torch.testing.assert_close(moved[0], torch.roll(img[0], shifts=(-2, 3), dims=(0, 1)))
    torch.testing.assert_close(moved[1], torch.roll(img[1], shifts=(5, 0), dims=(0, 1)))
    frac = torch.tensor([[0.3, -1.7], [2.5, 0.25]], dtype=torch.float64)
    back = shift_images_ft(shift_images_ft(fft2_center(img), frac), -frac)
    torch.testing.assert_close(ifft2_center(back).real, img)


def test_sample_volume_samples_each_channel_of_a_real_stack_as_its_own_volume():
    k = torch.arange(9, dtype=torch.float32) - 4
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    stack = torch.stack([x, y, z, x - 2 * z])  # linear in the voxel offsets: trilinear sampling is exact
    coords = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(1)) * 8 - 4
    got = sample_volume(stack, coords)
    assert got.shape == (4, 2, 5)
    want = torch.stack([coords[..., 0], coords[..., 1], coords[..., 2], coords[..., 0] - 2 * coords[..., 2]])
    assert torch.allclose(got, want, atol=1e-4)
