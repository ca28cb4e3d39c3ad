import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.stats import spearmanr

from cryonb.core.analysis import graph_path, knn_graph
from cryonb.core.errors import InputError


@pytest.fixture(scope="module")
def curve():
    """10k latents on a noisy curve in 10-D, dense at its start and sparse at its end; t is the truth."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.random(10_000) ** 3)
    freq = np.arange(1, 6)
    angle = np.pi * np.outer(t, freq)
    z = np.concatenate([np.cos(angle) / freq, np.sin(angle) / freq], 1) + rng.normal(0, 0.02, (len(t), 10))
    return t, z


def test_knn_path_follows_the_curve_end_to_end(curve):
    t, z = curve
    path = graph_path(z, [0, len(z) - 1])
    assert path.indices[0] == 0 and path.indices[-1] == len(z) - 1
    assert spearmanr(np.arange(len(path.indices)), t[path.indices]).statistic > 0.999
    # Distances are the running sum of the Euclidean steps, and the total is Dijkstra's.
    steps = np.linalg.norm(np.diff(z[path.indices], axis=0), axis=1)
    np.testing.assert_allclose(path.distances, np.concatenate([[0], np.cumsum(steps)]))
    best = dijkstra(knn_graph(z), directed=False, indices=0)[len(z) - 1]
    assert path.distances[-1] == pytest.approx(best)


def test_approximate_neighbours_still_follow_the_curve(curve):
    t, z = curve
    path = graph_path(z, [0, len(z) - 1], eps=1.0)
    assert spearmanr(np.arange(len(path.indices)), t[path.indices]).statistic > 0.999


def test_threshold_graph_breaks_where_the_density_drops(curve):
    _, z = curve
    knn_parts = connected_components(knn_graph(z), directed=False)[0]
    threshold_parts, labels = connected_components(knn_graph(z, mode="threshold"), directed=False)
    assert knn_parts == 1
    assert threshold_parts > 100 and labels[0] != labels[-1]
    with pytest.raises(InputError, match=rf"anchors 0 and {len(z) - 1} are not connected.*Fix: .*more neighbours"):
        graph_path(z, [0, len(z) - 1], mode="threshold")


def test_threshold_graph_uses_one_cutoff_for_the_mean_degree():
    z = np.random.default_rng(1).normal(size=(500, 3))
    graph = knn_graph(z, mode="threshold", mean_degree=4, max_degree=8).tocoo()
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.sort(d, axis=1)[:, :8]
    cutoff = np.sort(nearest.ravel())[500 * 4 - 1]
    chosen = (d <= cutoff) & (d <= nearest[:, -1:])  # within the cutoff and among the 8 nearest
    expected = chosen | chosen.T
    assert (graph.toarray() > 0).sum() == expected.sum()
    np.testing.assert_allclose(graph.data, d[graph.row, graph.col])
    np.testing.assert_array_equal(expected[graph.row, graph.col], True)


def test_knn_graph_is_symmetric_with_distance_weights():
    z = np.random.default_rng(2).normal(size=(300, 4))
    graph = knn_graph(z, k=5)
    assert (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    coo = graph.tocoo()
    np.testing.assert_allclose(coo.data, np.linalg.norm(z[coo.row] - z[coo.col], axis=1))
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    five = np.argsort(d, axis=1)[:, :5]
    assert (graph.toarray()[np.arange(300)[:, None], five] > 0).all()


def test_path_through_anchors_on_a_line_and_a_gap():
    z = np.array([[0.0], [1.0], [1.9], [2.7], [10.0], [11.0]])
    graph = knn_graph(z, k=1)  # edges 0-1, 1-2, 2-3 and 4-5
    path = graph_path(z, [0, 3, 1], graph=graph)
    np.testing.assert_array_equal(path.indices, [0, 1, 2, 3, 2, 1])
    np.testing.assert_allclose(path.distances, [0, 1, 1.9, 2.7, 3.5, 4.4])
    with pytest.raises(InputError, match=r"anchors 3 and 4 are not connected.*Fix: .*k=20"):
        graph_path(z, [0, 3, 4], k=1)


def test_duplicate_latents_stay_joined():
    z = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    assert knn_graph(z, k=1)[0, 1] > 0
    np.testing.assert_allclose(graph_path(z, [1, 0], k=1).distances, [0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "z, anchors, match",
    [
        (np.zeros(5), [0, 1], r"z has shape \(5,\), expected \(N, zdim\)"),
        (np.zeros((5, 2)), [0, 5], r"anchors \[0, 5\] are out of range for 5 particles"),
        (np.zeros((5, 2)), [-1, 2], "out of range"),
        (np.zeros((5, 2)), [0.5, 2], "not a list of two or more particle indices"),
        (np.zeros((5, 2)), [3], "not a list of two or more particle indices"),
        (np.array([[0.0, np.nan], [1, 1]]), [0, 1], "NaN"),
    ],
)
def test_bad_input_names_the_problem(z, anchors, match):
    with pytest.raises(InputError, match=match):
        graph_path(z, anchors)


def test_bad_graph_arguments():
    z = np.random.default_rng(3).normal(size=(20, 2))
    with pytest.raises(InputError, match=r"graph has shape \(19, 19\) but z has 20 rows"):
        graph_path(z, [0, 1], graph=knn_graph(z[:19]))
    with pytest.raises(InputError, match="mode='kmeans' is not a graph mode"):
        knn_graph(z, mode="kmeans")
    with pytest.raises(InputError, match=r"k=20 is out of range.*1 <= k <= 19"):
        knn_graph(z, k=20)
    with pytest.raises(InputError, match="mean_degree=12"):
        knn_graph(z, mode="threshold", mean_degree=12)


def test_large_inputs_search_approximately_by_default(curve, monkeypatch):
    from cryonb.core.analysis import graph as graph_module

    t, z = curve
    exact = knn_graph(z)
    monkeypatch.setattr(graph_module, "APPROXIMATE_ABOVE", 1000)  # 10k latents now count as large
    approximate = knn_graph(z)
    assert (approximate != exact).nnz > 0  # a different, approximate neighbour search ran
    path = graph_path(z, [0, len(z) - 1])
    assert spearmanr(np.arange(len(path.indices)), t[path.indices])[0] > 0.99
