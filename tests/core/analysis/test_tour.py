import itertools

import numpy as np
import pytest

from cryonb.core.analysis import order_anchors, shortest_tour, trajectory
from cryonb.core.analysis.tour import tour_length
from cryonb.core.errors import InputError


def brute_force(points):
    return min(tour_length(points, order) for order in itertools.permutations(range(len(points))))


@pytest.mark.parametrize("seed", range(4))
def test_shortest_tour_is_exact_for_few_points(seed):
    points = np.random.default_rng(seed).normal(size=(7, 3))
    order = shortest_tour(points)
    assert sorted(order) == list(range(7))
    assert tour_length(points, order) == pytest.approx(brute_force(points))


def test_shortest_tour_with_a_fixed_start_and_many_points():
    rng = np.random.default_rng(0)
    line = np.column_stack([np.linspace(0, 10, 25), np.zeros(25)])
    shuffled = rng.permutation(25)
    order = shortest_tour(line[shuffled])  # heuristic beyond 10 points: still finds the line
    assert tour_length(line[shuffled], order) == pytest.approx(10.0)
    points = rng.normal(size=(6, 2))
    fixed = shortest_tour(points, start=4)
    assert fixed[0] == 4
    best = min(tour_length(points, (4, *rest)) for rest in itertools.permutations([0, 1, 2, 3, 5]))
    assert tour_length(points, fixed) == pytest.approx(best)


def test_order_anchors():
    z = np.array([[0.0, 0], [3, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(order_anchors(z, [1, 2, 3], "given"), [1, 2, 3])
    assert order_anchors(z, [1, 0, 3, 2], "shortest").tolist() in ([0, 2, 3, 1], [1, 3, 2, 0])


def blobs():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 300)
    return (np.column_stack([t * 10, np.sin(t * 6)]) + rng.normal(0, 0.05, (300, 2))).astype(np.float32)


def test_graph_trajectory_stays_on_the_data_and_keeps_anchors(tmp_path):
    z = blobs()
    anchors = [0, 150, 299]
    path = trajectory(z, anchors, path="graph", n=12, k=8)
    assert path.z.shape == (12, 2)
    assert (path.particles >= 0).all()  # every latent is a particle's
    np.testing.assert_array_equal(path.z, z[path.particles])
    assert [a for a in path.particles if a in anchors] == anchors
    saved = path.save(tmp_path / "z-path.txt")
    np.testing.assert_allclose(np.loadtxt(saved), path.z, rtol=1e-5, atol=1e-5)


def test_a_short_graph_path_is_filled_in_between_its_particles():
    z = np.array([[0.0, 0], [1, 0], [2, 0], [2, 2]], np.float32)
    path = trajectory(z, [0, 3], path="graph", n=9, k=1)  # the graph walks 0-1-2-3: four particles
    assert len(path.z) == 9
    np.testing.assert_array_equal(path.particles[path.particles >= 0], [0, 1, 2, 3])
    steps = np.linalg.norm(np.diff(path.z, axis=0), axis=1)
    assert steps.max() <= 0.51 and steps.min() >= 0.49  # 4 units in 8 even steps


def test_straight_trajectory_spaces_latents_by_length():
    z = np.array([[0.0, 0], [1, 0], [4, 0]], np.float32)
    path = trajectory(z, [0, 1, 2], path="straight", n=9)
    assert len(path.z) == 9
    np.testing.assert_array_equal(path.particles[[0, -1]], [0, 2])
    assert (path.particles[1:-1] >= -1).all() and 1 in path.particles
    steps = np.diff(path.z[:, 0])
    assert (steps > 0).all() and steps.max() - steps.min() < 0.6  # near-even spacing, anchor 1 kept
    np.testing.assert_allclose(path.z[path.particles == 1], [[1, 0]])


def test_trajectory_refuses_bad_input():
    z = blobs()
    with pytest.raises(InputError, match="two anchors or more"):
        trajectory(z, [3])
    with pytest.raises(InputError, match="out of range"):
        trajectory(z, [0, 300])
    with pytest.raises(InputError, match="unknown path"):
        trajectory(z, [0, 1], path="curved")
    with pytest.raises(InputError, match="unknown order"):
        trajectory(z, [0, 1], order="random")


def two_clusters():
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(0, 0.3, (100, 2)), rng.normal(0, 0.3, (100, 2)) + (8, 0)]).astype(np.float32)


def test_graph_trajectory_across_separate_clusters_marks_the_jump():
    from cryonb.core.analysis import GraphGapWarning, graph_path

    z = two_clusters()
    with pytest.warns(GraphGapWarning, match="2 separate parts"):
        walk = graph_path(z, [0, 199])
    jump = int(np.flatnonzero(walk.gaps)[0])
    into = walk.indices[jump]  # the first particle of the second cluster on the way
    # Fewer latents than particles on the way: the one latent after the jump is marked.
    with pytest.warns(GraphGapWarning):
        few = trajectory(z, [0, 199], path="graph", n=6)
    assert few.gaps.sum() == 1 and (few.particles >= 0).all()
    marked = int(np.flatnonzero(few.gaps)[0])
    assert few.particles[marked - 1] < 100 <= few.particles[marked]  # the step that leaves the first cluster
    # More latents than particles: the latents on the straight line across the gap are all marked,
    # they belong to no particle, and every latent in a cluster is unmarked.
    with pytest.warns(GraphGapWarning):
        many = trajectory(z, [0, 199], path="graph", n=len(walk.indices) + 40)
    across = np.flatnonzero(many.gaps)
    assert len(across) > 1 and np.array_equal(across, np.arange(across[0], across[-1] + 1))
    assert (many.particles[across[:-1]] == -1).all() and many.particles[across[-1]] == into
    assert (many.z[across[:-1], 0] > z[walk.indices[jump - 1], 0]).all() and (many.z[across[:-1], 0] < z[into, 0]).all()
    # Refused on request; straight lines have no gaps to mark.
    with pytest.raises(InputError, match="not connected"):
        trajectory(z, [0, 199], path="graph", disconnected="raise")
    assert not trajectory(z, [0, 199], path="straight", n=5).gaps.any()
