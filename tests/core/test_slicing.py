"""Plane sections of a map against known answers: array planes, a linear ramp, a Gaussian blob."""

import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.slicing import map_slice, plane_axes

D = 24
C = D // 2


@pytest.fixture
def volume():
    return np.random.default_rng(1).standard_normal((D, D, D)).astype(np.float32)


def grid():
    """x, y, z voxel coordinates about the centre, each of shape [z, y, x]."""
    z, y, x = np.meshgrid(*(np.arange(D) - C,) * 3, indexing="ij")
    return x, y, z


@pytest.mark.parametrize("offset", [0, 3, -5])
def test_orthogonal_slices_are_planes_of_the_array(volume, offset):
    np.testing.assert_allclose(map_slice(volume, "z", offset), volume[C + offset], atol=1e-6)
    np.testing.assert_allclose(map_slice(volume, "y", offset), volume[:, C + offset, :], atol=1e-6)
    np.testing.assert_allclose(map_slice(volume, "x", offset), volume[:, :, C + offset], atol=1e-6)


def test_a_vector_normal_along_z_is_the_z_slice(volume):
    np.testing.assert_allclose(map_slice(volume, (0, 0, 2), 2), volume[C + 2], atol=1e-6)


def test_oblique_slice_of_a_linear_ramp():
    """Trilinear interpolation is exact for a linear map: f(p) = a·p at every point of the plane."""
    x, y, z = grid()
    a = np.array([0.3, -0.7, 1.1])
    ramp = (a[0] * x + a[1] * y + a[2] * z).astype(np.float32)
    normal, offset = np.array([1.0, 2.0, 2.0]) / 3, 2.5
    section = map_slice(ramp, normal, offset, size=12)
    n, rows, cols = plane_axes(normal)
    s = np.arange(12) - 6
    points = offset * n + s[:, None, None] * rows + s[None, :, None] * cols
    np.testing.assert_allclose(section, points @ a, atol=1e-4)
    assert np.ptp(section) > 10  # a real gradient across the plane, not a constant


def test_sections_of_a_gaussian_blob_are_the_same_in_every_direction():
    x, y, z = grid()
    sigma = 3.0
    blob = np.exp(-(x**2 + y**2 + z**2) / (2 * sigma**2)).astype(np.float32)
    s = np.arange(D) - C
    expected = np.exp(-(s[:, None] ** 2 + s[None] ** 2) / (2 * sigma**2))
    for normal, tilt in [("z", (0, 0)), ((1, 1, 1), (0, 0)), ("x", (35, -20))]:
        section = map_slice(blob, normal, 0, tilt=tilt, order=3)  # cubic: trilinear is 3% off at the peak
        assert section[C, C] == pytest.approx(1.0, abs=1e-6)  # the centre is on every plane through it
        np.testing.assert_allclose(section, expected, atol=0.02)
    # Off centre by t the section is scaled by exp(-t²/2σ²).
    assert map_slice(blob, (0, 1, 1), 2.0, tilt=(10, 10), order=3)[C, C] == pytest.approx(np.exp(-4 / 18), abs=0.02)


def test_tilting_z_by_a_quarter_turn_about_its_columns_gives_the_y_slice(volume):
    n, rows, cols = plane_axes("z", (90, 0))
    np.testing.assert_allclose(n, [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(rows, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(map_slice(volume, "z", 0, tilt=(90, 0)), volume[:, C, :], atol=1e-5)


def test_axes_are_orthonormal():
    for normal in ["x", (1, 0.01, 0), (0.2, -0.5, 0.9)]:
        basis = np.stack(plane_axes(normal, (17, -40)))
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)


def test_outside_the_map_is_zero_and_size_is_kept(volume):
    section = map_slice(volume, "z", 0, size=40)
    assert section.shape == (40, 40)
    assert not section[:8].any() and not section[:, -4:].any()
    assert not map_slice(volume, "x", D).any()


def test_bad_input(volume):
    with pytest.raises(InputError, match="unknown slice axis"):
        map_slice(volume, "w")
    with pytest.raises(InputError, match="non-zero 3-vector"):
        map_slice(volume, (0, 0, 0))
    with pytest.raises(InputError, match="three dimensions"):
        map_slice(volume[0], "z")
