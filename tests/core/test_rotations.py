import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryonb.core import rotations as rot


def random_euler(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([-180, 0, -180], [180, 180, 180], size=(n, 3))


def test_relion_matrix_matches_the_relion_formula_by_hand():
    # RELION's Euler_angles2matrix for (rot, tilt, psi) = (90, 90, 0): A maps x -> -z... spelled out.
    A = rot.relion_to_matrix(np.array(90.0), np.array(90.0), np.array(0.0))
    expected = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(A, expected, atol=1e-12)
    # Equals the passive ZYZ rotation built by scipy.
    ang = random_euler(20)
    scipy = Rotation.from_euler("ZYZ", ang, degrees=True).as_matrix().transpose(0, 2, 1)
    np.testing.assert_allclose(rot.relion_to_matrix(*ang.T), scipy, atol=1e-12)


def test_euler_roundtrip_including_gimbal_lock():
    ang = np.concatenate([random_euler(200), [[10.0, 0.0, 20.0], [10.0, 180.0, 20.0]]])
    R = rot.relion_to_matrix(*ang.T)
    back = np.stack(rot.matrix_to_relion(R), -1)
    np.testing.assert_allclose(rot.relion_to_matrix(*back.T), R, atol=1e-10)
    np.testing.assert_allclose(back[:-2], ang[:-2], atol=1e-8)
    assert back[-2, 0] == 0 and back[-2, 2] == pytest.approx(30.0)


def test_torch_and_numpy_agree():
    ang = random_euler(10)
    Rn = rot.relion_to_matrix(*ang.T)
    Rt = rot.relion_to_matrix(*torch.tensor(ang).T)
    np.testing.assert_allclose(Rt.numpy(), Rn, atol=1e-12)


def test_axis_angle_and_quaternions():
    v = np.random.default_rng(1).normal(size=(50, 3))
    np.testing.assert_allclose(rot.axis_angle_to_matrix(v), Rotation.from_rotvec(v).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(np.zeros((1, 3))), np.eye(3)[None])
    R = Rotation.from_rotvec(v).as_matrix()
    q = rot.matrix_to_quaternion(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q), R, atol=1e-12)
    xyzw = Rotation.from_matrix(R).as_quat()
    np.testing.assert_allclose(np.abs(q), np.abs(np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)), atol=1e-12)


def test_random_rotations_are_uniform_rotations():
    R = rot.random_rotations(20000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(20000, 3, 3), atol=1e-6, rtol=0)
    assert torch.allclose(torch.det(R), torch.ones(20000, dtype=torch.float64), atol=1e-5)
    # Haar measure: every matrix entry has mean 0 and variance 1/3; the trace is 1 + 2cos(θ), E = 0.
    assert R.mean(0).abs().max() < 0.02
    torch.testing.assert_close(R.var(0), torch.full((3, 3), 1 / 3, dtype=torch.float64), atol=0.02, rtol=0)
    assert abs(R.diagonal(dim1=1, dim2=2).sum(-1).mean()) < 0.03
