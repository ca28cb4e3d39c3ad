"""The channel-last gathers the slice-filter benchmark times read what the filters read."""

import torch

from benchmarks.bench_slice_filters import ChannelLastFilters, corner_bags, main
from cryonb.core.latents import SliceFilters
from cryonb.core.model import HalfPlane
from cryonb.core.rotations import random_rotations


def test_corner_bags_are_trilinear_weights_summing_to_one_on_the_cube():
    side = 9
    points = torch.tensor([[0.0, 0.0, 0.0], [1.25, -2.5, 3.75], [4.0, 4.0, -4.0]])  # the centre, inside, a corner
    index, weight = corner_bags(points, side)
    assert torch.allclose(weight.sum(1), torch.ones(3)) and (index >= 0).all() and (index < side**3).all()
    centre, last = (4 * side + 4) * side + 4, (0 * side + 8) * side + 8  # the cube is indexed [z, y, x]
    assert weight[0, index[0].tolist().index(centre)] == 1  # a grid point reads its own voxel only
    assert weight[2, index[2].tolist().index(last)] == 1  # so does one on the cube's faces


def test_both_candidates_match_the_filters_statistics_and_gradients():
    g = torch.Generator().manual_seed(0)
    coords = HalfPlane.build(32).coords
    filters = SliceFilters(coords, 3, 8)
    images = torch.randn(5, len(coords), generator=g, dtype=torch.complex64)
    inputs = (images, random_rotations(5, g), torch.randn(5, len(coords), generator=g))
    stats = filters(*inputs)
    stats.square().sum().backward()
    grad = filters.weight.grad.reshape(6, -1).T
    for gather in ("embedding_bag", "index_add"):
        candidate = ChannelLastFilters(filters, gather)
        other = candidate(*inputs)
        other.square().sum().backward()
        assert torch.allclose(other, stats, rtol=1e-5, atol=1e-6)
        assert torch.allclose(candidate.rows.grad, grad, rtol=1e-5, atol=1e-6)


def test_the_benchmark_reports_each_gather(capsys):
    (record,) = main(["--box", "32", "--radius", "8", "--filters", "2", "--batch", "4", "--steps", "1", "--device", "cpu"])
    assert record["embedding_bag_stats_rel_error"] < 1e-5 and record["index_add_grad_rel_error"] < 1e-5
    assert all(record[f"{g}_ms"] > 0 for g in ("grid_sample", "embedding_bag", "index_add"))
