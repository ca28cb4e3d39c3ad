"""The kernels' first-launch and the optimiser's benchmarks need a GPU; without one they say so and stop."""

import pytest

import torch

from benchmarks import bench_optimizer, kernel_first_launch
from cryonb.core import kernels


@pytest.mark.skipif(kernels.available(), reason="a GPU with Triton is here: the benchmark runs")
def test_without_a_gpu_it_stops_with_one_line():
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        kernel_first_launch.main([])


@pytest.mark.skipif(kernels.available(), reason="a GPU with Triton is here: the benchmark runs")
def test_the_threads_mode_stops_the_same_way():
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        kernel_first_launch.main(["--threads"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the benchmark runs")
def test_the_optimiser_benchmark_without_a_gpu_stops_with_one_line():
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        bench_optimizer.main([])
