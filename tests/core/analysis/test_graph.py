import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.stats import spearmanr

from cryonb.core.analysis import GraphGapWarning, graph_path, knn_graph
from cryonb.core.analysis.graph import _bridges
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
    with pytest.raises(InputError, match=rf"anchors 0 and {len(z) - 1} are not connected.*separate parts.*Fix: .*more neighbours"):
        graph_path(z, [0, len(z) - 1], mode="threshold", disconnected="raise")


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
    with pytest.raises(InputError, match=r"anchors 3 and 4 are not connected.*2 separate parts.*Fix: .*k=20"):
        graph_path(z, [0, 3, 4], k=1, disconnected="raise")


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


# --- anchors in separate parts of the graph ------------------------------------------------------

def separated(centres, n=150, seed=0):
    """Gaussian clusters of ``n`` 2-D latents around ``centres``, far apart: a k-NN graph in one part each."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 0.3, (n, 2)) + c for c in centres]), np.repeat(np.arange(len(centres)), n)


def closest_pair(z, a, b):
    d = np.linalg.norm(z[a][:, None] - z[b][None], axis=-1)
    i, j = np.unravel_index(d.argmin(), d.shape)
    return {int(a[i]), int(b[j])}, d.min()


def test_two_separated_clusters_are_bridged_at_their_closest_pair():
    z, cluster = separated([(0, 0), (6, 0)])
    assert connected_components(knn_graph(z), directed=False)[0] == 2
    with pytest.warns(GraphGapWarning, match=r"2 separate parts.*jumps 1 gap off the data \(length ([\d.]+) in z\)") as caught:
        path = graph_path(z, [0, 299])
    assert path.indices[0] == 0 and path.indices[-1] == 299 and path.parts == 2
    # One step jumps, between the two clusters' closest particles, and it is the only step between clusters.
    assert path.gaps.sum() == 1 and not path.gaps[0]
    step = int(np.flatnonzero(path.gaps)[0])
    pair, gap = closest_pair(z, np.flatnonzero(cluster == 0), np.flatnonzero(cluster == 1))
    assert {int(path.indices[step - 1]), int(path.indices[step])} == pair
    assert f"{gap:.3g}" in str(caught[0].message)
    crossings = np.flatnonzero(np.diff(cluster[path.indices]) != 0) + 1
    np.testing.assert_array_equal(crossings, [step])
    # Every other step is an edge of the graph: on the data.
    graph = knn_graph(z)
    on_graph = np.asarray(graph[path.indices[:-1], path.indices[1:]]).ravel() > 0
    np.testing.assert_array_equal(on_graph, ~path.gaps[1:])
    steps = np.linalg.norm(np.diff(z[path.indices], axis=0), axis=1)
    np.testing.assert_allclose(path.distances, np.r_[0, np.cumsum(steps)])


def test_a_path_between_outer_clusters_crosses_the_middle_one():
    z, cluster = separated([(0, 0), (5, 0), (10, 0)], n=100)
    with pytest.warns(GraphGapWarning, match="3 separate parts.*2 gaps"):
        path = graph_path(z, [0, 250])
    # Two short jumps through the middle cluster, not one long one (the parts joined by their shortest links).
    assert set(cluster[path.indices]) == {0, 1, 2} and path.gaps.sum() == 2
    jumps = [{int(path.indices[s - 1]), int(path.indices[s])} for s in np.flatnonzero(path.gaps)]
    members = [np.flatnonzero(cluster == c) for c in range(3)]
    assert jumps == [closest_pair(z, members[0], members[1])[0], closest_pair(z, members[1], members[2])[0]]


def test_anchors_in_one_part_need_no_bridge(recwarn):
    z, cluster = separated([(0, 0), (6, 0)])
    path = graph_path(z, [0, 100])  # both in the first cluster
    assert not path.gaps.any() and path.parts == 2 and set(cluster[path.indices]) == {0}
    assert not [w for w in recwarn if issubclass(w.category, GraphGapWarning)]


def test_more_neighbours_instead_of_bridges():
    z, cluster = separated([(0, 0), (6, 0)], n=40)
    with pytest.warns(GraphGapWarning, match=r"k=5 leaves the anchors in separate parts: k=(\d+) joins them") as caught:
        path = graph_path(z, [0, 79], k=5, disconnected="grow")
    k = int(caught[0].message.args[0].split("k=")[2].split()[0])
    assert k > 5 and not path.gaps.any() and path.parts == 1
    assert connected_components(knn_graph(z, k=k // 2), directed=False)[0] == 2  # the k before did not join them
    graph = knn_graph(z, k=k)
    assert (np.asarray(graph[path.indices[:-1], path.indices[1:]]).ravel() > 0).all()
    with pytest.raises(InputError, match='"grow" needs a "knn" graph'):
        graph_path(z, [0, 79], graph=knn_graph(z, k=5), disconnected="grow")
    with pytest.raises(InputError, match="disconnected='jump' is not a choice"):
        graph_path(z, [0, 79], disconnected="jump")


def test_bridges_join_many_small_parts_into_one(curve):
    _, z = curve
    graph = knn_graph(z, mode="threshold")
    parts, labels = connected_components(graph, directed=False)
    links = _bridges(z, labels, None)
    assert parts > 100 and len(links) == parts - 1  # a spanning tree over the parts
    i, j = links[:, 0].astype(int), links[:, 1].astype(int)
    assert (labels[i] != labels[j]).all()
    np.testing.assert_allclose(links[:, 2], np.linalg.norm(z[i] - z[j], axis=1))
    joined = graph + sp.csr_matrix((links[:, 2], (i, j)), shape=graph.shape)
    assert connected_components(joined, directed=False)[0] == 1
    with pytest.warns(GraphGapWarning):
        path = graph_path(z, [0, len(z) - 1], mode="threshold")
    assert path.indices[-1] == len(z) - 1 and 0 < path.gaps.sum() < len(path.indices) / 2
