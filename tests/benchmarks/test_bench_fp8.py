"""The FP8 benchmark's scaling, on the CPU (its products need a GPU with FP8 units)."""

import torch

from benchmarks.bench_fp8 import E4M3, E5M2, column_major, to_fp8


def test_to_fp8_scales_the_largest_value_to_the_formats_range():
    torch.manual_seed(0)
    t = torch.randn(64, 32, dtype=torch.bfloat16) * 1e-3  # far below the format's range before scaling
    for dtype, step in ((E4M3, 2**-3), (E5M2, 2**-2)):
        t8, inverse = to_fp8(t, dtype)
        assert t8.dtype == dtype
        assert t8.float().abs().max() == torch.finfo(dtype).max
        back = t8.float() * inverse
        big = t.float().abs() > 1e-4  # normal numbers of the format after scaling
        assert ((back - t.float()).abs()[big] <= step * t.float().abs()[big]).all()


def test_column_major_keeps_values_and_transposes_the_layout():
    t = torch.arange(12.0).reshape(3, 4)
    c = column_major(t)
    assert torch.equal(c, t) and c.stride() == (1, 3)
