import numpy as np
import pytest

from cryonb.core.analysis import interpolate, pc_traversal
from cryonb.core.errors import InputError


def test_pc_traversal_on_a_line_runs_between_percentiles():
    direction = np.array([0.6, 0.0, 0.8])  # largest entry positive: pca keeps this sign
    offset = np.array([1.0, 2.0, 3.0])
    t = np.linspace(0, 1, 1001)
    z = offset + t[:, None] * direction
    expected = offset + np.linspace(0.05, 0.95, 7)[:, None] * direction
    np.testing.assert_allclose(pc_traversal(z, pc=0, n=7), expected, atol=1e-12)


def test_pc_traversal_keeps_the_other_components_at_the_mean():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 4)) * [5.0, 3.0, 1.0, 0.5] + [1, -1, 2, 0]
    path = pc_traversal(z, pc=1, n=5, lo=10, hi=90)
    np.testing.assert_allclose(path[:, [0, 2, 3]], np.tile(z.mean(0)[[0, 2, 3]], (5, 1)), atol=0.1)
    np.testing.assert_allclose(np.abs(path[[0, -1], 1] - z[:, 1].mean()), 3.0 * 1.2816, rtol=0.05)  # ±z_0.9 σ
    np.testing.assert_allclose(np.diff(path, axis=0), np.tile(np.diff(path, axis=0)[:1], (4, 1)))


def test_interpolate_includes_both_ends():
    out = interpolate([0.0, 2.0], [1.0, 0.0], 3)
    np.testing.assert_allclose(out, [[0, 2], [0.5, 1], [1, 0]])


def test_bad_arguments():
    with pytest.raises(InputError, match=r"z0 and z1 have shapes \(2,\) and \(3,\)"):
        interpolate([0, 0], [0, 0, 0], 4)
    with pytest.raises(InputError, match=r"pc=4 is out of range"):
        pc_traversal(np.zeros((10, 4)), pc=4)
    with pytest.raises(InputError, match="lo=95, hi=5"):
        pc_traversal(np.ones((10, 4)), lo=95, hi=5)
