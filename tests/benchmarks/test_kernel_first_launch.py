"""The kernels' first-launch benchmark needs a GPU with Triton; without one it says so and stops."""

import pytest

from benchmarks import kernel_first_launch
from cryonb.core import kernels


@pytest.mark.skipif(kernels.available(), reason="a GPU with Triton is here: the benchmark runs")
def test_without_a_gpu_it_stops_with_one_line():
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        kernel_first_launch.main([])
