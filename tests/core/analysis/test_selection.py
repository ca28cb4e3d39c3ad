import numpy as np
import pytest

from cryonb.core.analysis import box_select, lasso_select, range_select
from cryonb.core.errors import InputError


def ray_casting(points, polygon):
    """Even-odd rule, one point and one edge at a time: count crossings of a ray towards +x."""
    inside = []
    for px, py in points:
        crossings = 0
        for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
            if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                crossings += 1
        inside.append(crossings % 2 == 1)
    return np.flatnonzero(inside)


def star_shaped(rng, m):
    """A concave polygon: m vertices at sorted angles and random radii."""
    angle = np.sort(rng.uniform(0, 2 * np.pi, m))
    radius = rng.uniform(0.2, 1.0, m)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)


@pytest.mark.parametrize("seed", range(6))
def test_lasso_matches_ray_casting_on_concave_and_self_crossing_polygons(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1.1, 1.1, (1500, 2))
    concave = star_shaped(rng, 12)
    tangled = rng.uniform(-1, 1, (9, 2))  # random order: edges cross each other
    for polygon in (concave, tangled):
        np.testing.assert_array_equal(lasso_select(points, polygon), ray_casting(points, polygon))


def test_lasso_known_answers():
    points = np.array([[0.5, 0.5], [1.5, 0.5], [0.0, 0.0], [0.1, 0.9], [-0.2, 0.5]])
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    np.testing.assert_array_equal(lasso_select(points, square), [0, 3])
    pentagram = np.array([[np.cos(a), np.sin(a)] for a in np.pi / 2 + 4 * np.pi / 5 * np.arange(5)])
    np.testing.assert_array_equal(lasso_select([[0.0, 0.0], [0.0, 0.9]], pentagram), [1])  # centre: crossed twice
    assert lasso_select(np.empty((0, 2)), square).shape == (0,)


def test_box_select_inclusive_in_either_order():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [0.5, 3.0]])
    np.testing.assert_array_equal(box_select(points, 0, 1, 0, 1), [0, 1])
    np.testing.assert_array_equal(box_select(points, 2, 0, 1, 0), [0, 1, 2])


def test_bad_shapes():
    with pytest.raises(InputError, match=r"polygon has shape \(2, 2\), expected \(N, 2\) with N >= 3"):
        lasso_select(np.zeros((4, 2)), [[0, 0], [1, 1]])
    with pytest.raises(InputError, match=r"points2d has shape \(4, 3\)"):
        box_select(np.zeros((4, 3)), 0, 1, 0, 1)


def test_range_select_between_above_and_below():
    values = np.array([0.5, 2.0, np.nan, 3.5, 2.0, -1.0, np.inf])
    np.testing.assert_array_equal(range_select(values, 0.5, 2.0), [0, 1, 4])  # inclusive, NaN never
    np.testing.assert_array_equal(range_select(values, 2.0, 0.5), [0, 1, 4])  # bounds in either order
    np.testing.assert_array_equal(range_select(values, low=2.0), [1, 3, 4, 6])  # a threshold
    np.testing.assert_array_equal(range_select(values, high=0.5), [0, 5])
    np.testing.assert_array_equal(range_select(values), [0, 1, 3, 4, 5, 6])
    np.testing.assert_array_equal(range_select(np.arange(10), 3, 5), [3, 4, 5])  # integers (cluster labels)
    assert range_select(np.zeros(0), 0, 1).size == 0


def test_range_select_combines_with_a_lasso_and_refuses_bad_input():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (1000, 2))
    norm = np.linalg.norm(points, axis=1)
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    both = np.intersect1d(lasso_select(points, square), range_select(norm, 0.5, 0.8))
    expected = np.flatnonzero((points > 0).all(1) & (norm >= 0.5) & (norm <= 0.8))
    np.testing.assert_array_equal(both, expected)
    with pytest.raises(InputError, match="expected \\(N,\\)"):
        range_select(points, 0, 1)
    with pytest.raises(InputError, match="not numbers"):
        range_select(np.array(["a", "b"]), 0, 1)
    with pytest.raises(InputError, match="low is NaN"):
        range_select(norm, np.nan, 1)


def test_selection_latent_mean_and_medoid():
    from cryonb.core.analysis import selection_latent

    z = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(selection_latent(z, [0, 1, 2, 3]), [[3.25, 0.0]])
    # The medoid is a member, the one with the least summed distance: not pulled by the outlier.
    np.testing.assert_array_equal(selection_latent(z, [0, 1, 2, 3], "medoid"), [[1.0, 0.0]])
    assert selection_latent(z, [0, 1, 2, 3], "medoid", most=3).shape == (1, 2)
    with pytest.raises(InputError, match="empty"):
        selection_latent(z, [])
    with pytest.raises(InputError, match="unknown selection latent"):
        selection_latent(z, [0], "median")
