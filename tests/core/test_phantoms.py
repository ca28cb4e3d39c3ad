import numpy as np
import pytest
import torch
from scipy import ndimage

from cryonb.core.phantoms import assemblies, hinge, hinge_states, lacking_a_subunit, render_blobs


def test_blob_is_a_gaussian_at_the_right_voxel():
    D = 32
    vol = render_blobs(np.array([[0.25, -0.125, 0.0, 2 / D, 3.0]]), D)
    z, y, x = np.unravel_index(int(vol.argmax()), vol.shape)
    assert (z, y, x) == (D // 2, D // 2 - 4, D // 2 + 8)
    assert vol.max() == pytest.approx(3.0)
    assert vol[z, y, x + 2] == pytest.approx(3.0 * np.exp(-0.5), rel=1e-5)


def test_narrow_blobs_are_widened_to_one_voxel_with_their_mass_kept():
    narrow = render_blobs(np.array([[0.0, 0.0, 0.0, 0.5 / 16, 1.0]]), 16)
    assert narrow[8, 8, 9] / narrow[8, 8, 8] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert narrow.sum() == pytest.approx((2 * np.pi) ** 1.5 * 0.5**3, rel=1e-3)


@pytest.mark.parametrize("D", [24, 33, 64])
def test_hinge_fits_in_the_box_at_any_size(D):
    vol = hinge(D, 0.7)
    assert vol.shape == (D, D, D) and vol.dtype == torch.float32
    r = torch.linalg.vector_norm(torch.stack(torch.meshgrid(*[torch.arange(D) - D // 2] * 3, indexing="ij")).float(), dim=0)
    assert vol[r > 0.45 * D].max() < 1e-2 * vol.max()


def test_hinge_moves_only_the_arm_and_keeps_its_mass():
    D = 48
    closed, opened = hinge(D, 0.0), hinge(D, 1.5)
    assert float(opened.sum()) == pytest.approx(float(closed.sum()), rel=1e-3)
    moved = (opened - closed).abs() > 0.05 * closed.max()
    assert 0.005 < moved.float().mean() < 0.2


def test_hinge_is_asymmetric():
    vol = hinge(32, 0.0)
    for axes in ([0], [1], [2], [0, 1], [1, 2], [0, 2]):
        assert torch.corrcoef(torch.stack([vol.flatten(), vol.flip(axes).flatten()]))[0, 1] < 0.9


def test_hinge_states_span_the_motion_in_order():
    vols, angles = hinge_states(24, n_states=5, span=1.5)
    assert vols.shape == (5, 24, 24, 24)
    np.testing.assert_allclose(angles.numpy(), [0.0, 0.375, 0.75, 1.125, 1.5])
    torch.testing.assert_close(vols[3], hinge(24, 1.125))
    distance = [(vols[i] - vols[0]).norm().item() for i in range(5)]
    assert distance == sorted(distance)


def test_assemblies_share_the_core():
    maps = assemblies(32)
    assert list(maps) == ["small", "large", "complex"]
    core = maps["small"] + maps["large"] - maps["complex"]
    assert core.min() > -1e-4
    assert 0 < core.sum() < 0.3 * maps["small"].sum()
    assert maps["small"].sum() < maps["large"].sum() < maps["complex"].sum()


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2])
def test_lacking_a_subunit_removes_about_that_fraction_in_one_compact_piece(fraction):
    full = hinge(32)
    cut = lacking_a_subunit(full, fraction)
    removed = (full.clamp(min=0).sum() - cut.clamp(min=0).sum()) / full.clamp(min=0).sum()
    assert fraction <= removed < fraction + 0.05
    pieces = ndimage.label(((cut == 0) & (full > 1e-3 * full.max())).numpy())[1]
    assert pieces == 1
    assert torch.equal(cut[(cut != 0)], full[(cut != 0)])  # nothing else changed
