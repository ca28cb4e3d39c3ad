import math

import numpy as np
import pytest
import torch

from cryonb.core import so3grid as g
from cryonb.core.rotations import matrix_to_relion, random_rotations


@pytest.mark.parametrize("nside", [1, 2, 4, 8])
def test_pixel_count_and_equal_area_rings(nside):
    theta, phi = (a.numpy() for a in g.pix2ang_nested(nside, torch.arange(12 * nside**2)))
    assert len(theta) == 12 * nside**2
    # Equal areas: the fraction of pixel centres above height z is (1 - z) / 2 of the sphere's area,
    # up to one ring's worth of pixels.
    z = np.cos(theta)
    for z0 in (-0.7, -0.2, 0.3, 0.8):
        assert abs((z > z0).mean() - (1 - z0) / 2) <= 4 * nside / (12 * nside**2) + 1e-12
    # Every centre is distinct and the centres average to the sphere's centre.
    xyz = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    assert len(np.unique(np.round(xyz, 9), axis=0)) == len(xyz)
    np.testing.assert_allclose(xyz.mean(0), 0, atol=1e-12)


def test_known_nested_centres():
    theta, phi = g.pix2ang_nested(1, torch.arange(12))
    np.testing.assert_allclose(torch.cos(theta), [2 / 3] * 4 + [0] * 4 + [-2 / 3] * 4, atol=1e-12)
    np.testing.assert_allclose(phi / (math.pi / 4), [1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7], atol=1e-12)
    # nside 2: values from HEALPix's pix2ang_nest (healpy.pix2ang(2, i, nest=True)).
    theta, phi = g.pix2ang_nested(2, torch.tensor([0, 1, 2, 3, 44, 47]))
    np.testing.assert_allclose(theta[:4], [1.2309594173407747, 0.8410686705679303, 0.8410686705679303, 0.41113786969849993])
    np.testing.assert_allclose(phi[:4], [0.7853981633974483, 1.1780972450961724, 0.39269908169872414, 0.7853981633974483])
    # The first pixel of the last face sits on the southernmost ring, its last one on the face's northern corner.
    np.testing.assert_allclose(torch.cos(theta[4:]), [-11 / 12, -1 / 3])
    # Nested: the 4 children of a pixel lie around it.
    t0, p0 = g.pix2ang_nested(2, torch.tensor([5]))
    t1, p1 = g.pix2ang_nested(4, torch.arange(20, 24))
    assert torch.allclose(torch.cos(t1).mean(), torch.cos(t0), atol=0.05)
    with pytest.raises(ValueError):
        g.pix2ang_nested(1, [12])


def test_grid_rotations_follow_relion_angles():
    r = 1
    R = g.rotations(r)
    assert R.shape == (g.grid_size(r), 3, 3) == (576, 3, 3)
    np.testing.assert_allclose(R @ R.transpose(1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    rot, tilt, psi = matrix_to_relion(R[[0, 1, 13]])
    theta, phi = g.pix2ang_nested(2, torch.tensor([0, 0, 1]))
    np.testing.assert_allclose(tilt, torch.rad2deg(theta))
    np.testing.assert_allclose(np.mod(rot, 360), torch.rad2deg(phi))
    np.testing.assert_allclose(psi, [15.0, 45.0, 45.0])  # 12 in-plane angles of 30°
    assert g.inplane_angles(r)[1] == pytest.approx(math.radians(45.0))


@pytest.mark.parametrize("resolution", [0, 1, 2])
def test_grid_covers_so3_within_the_max_gap(resolution):
    R = random_rotations(3000, torch.Generator().manual_seed(resolution)).double()
    _, angle = g.nearest(resolution, R)
    assert angle.max() <= g.max_gap_degrees(resolution)
    assert angle.max() > 0.6 * g.step_degrees(resolution)  # the bound is not loose by much


@pytest.mark.parametrize("resolution", [0, 1, pytest.param(2, marks=pytest.mark.slow)])
def test_children_subdivide_the_nearest_cell(resolution):
    R = random_rotations(3000, torch.Generator().manual_seed(5 + resolution)).double()
    parent, _ = g.nearest(resolution, R)
    kids = g.children(resolution, parent)
    assert kids.shape == (3000, 8)
    assert len(torch.unique(kids[0])) == 8
    best_child = g.angle_between(g.rotations(resolution + 1, kids), R[:, None]).min(1).values
    global_index, global_best = g.nearest(resolution + 1, R)
    # The hierarchy loses little: the best child is the finer grid's nearest point most of the
    # time, and within 1.25 finer steps always.
    assert (kids == global_index[:, None]).any(1).float().mean() > 0.75
    assert best_child.max() <= 1.25 * g.step_degrees(resolution + 1)
    # Children are the closest cells: all 8 lie among the 16 finer grid points nearest the parent.
    P = g.rotations(resolution, parent[:200]).reshape(-1, 9)
    closeness = P @ g.rotations(resolution + 1).reshape(-1, 9).T  # trace(P Fᵀ): larger is closer
    rank16 = closeness.topk(16, dim=1).indices
    assert all(set(k.tolist()) <= set(r.tolist()) for k, r in zip(kids[:200], rank16))


def test_children_of_a_batch_keep_its_shape():
    idx = torch.tensor([[0, 5], [100, 4607]])
    kids = g.children(2, idx)
    assert kids.shape == (2, 2, 8)
    pixel, _ = g.split_index(3, kids)
    np.testing.assert_array_equal(pixel[1, 1].unique(), 4 * (4607 // 24) + torch.arange(4))
