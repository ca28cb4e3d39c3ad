import pytest
import torch

from cryonb.core import fourier as ft


@pytest.mark.parametrize("D", [8, 9])
def test_fft_roundtrip_and_centred_dc(D):
    x = torch.randn(3, D, D, dtype=torch.float64)
    X = ft.fft2_center(x)
    torch.testing.assert_close(ft.ifft2_center(X).real, x)
    torch.testing.assert_close(X[:, D // 2, D // 2].real, x.sum(dim=(-1, -2)))
    # Parseval
    torch.testing.assert_close((X.abs() ** 2).sum(dim=(-1, -2)) / D**2, (x**2).sum(dim=(-1, -2)))


@pytest.mark.parametrize("ndim,D", [(2, 10), (2, 7), (3, 6), (3, 5)])
def test_hartley_inverse_and_fourier_consistency(ndim, D):
    x = torch.randn((2,) + (D,) * ndim, dtype=torch.float64)
    H = ft.ht_center(x, ndim)
    torch.testing.assert_close(ft.iht_center(H, ndim), x)
    torch.testing.assert_close(ft.hartley_to_fourier(H, ndim), ft.fft_center(x, ndim))


def test_frequency_grid_orders_x_fastest():
    g = ft.frequency_grid(6, 2, apix=2.0)
    assert g.shape == (6, 6, 2)
    assert g[3, 3].abs().sum() == 0  # DC at D//2
    assert g[3, 4, 0] == pytest.approx(1 / 12) and g[3, 4, 1] == 0  # +1 along x (last index)
    assert g[4, 3, 1] == pytest.approx(1 / 12) and g[4, 3, 0] == 0
    assert g[0, 3, 1] == pytest.approx(-0.25)  # Nyquist = 1 / (2 apix)


def test_shell_index_counts_match_circle():
    s = ft.shell_index(64, 2)
    assert s[32, 32] == 0 and s[32, 40] == 8 and s[0, 32] == 32
    assert (s == 0).sum() == 1 and (s == 1).sum() == 8


def test_fourier_crop_band_limited_signal_is_exact():
    D, d = 64, 32
    k = torch.arange(D, dtype=torch.float64)
    y, x = torch.meshgrid(k, k, indexing="ij")
    img = 1.5 + torch.cos(2 * torch.pi * (3 * x + 2 * y) / D)
    small = ft.fourier_crop(img, d)
    ks = torch.arange(d, dtype=torch.float64)
    ys, xs = torch.meshgrid(ks, ks, indexing="ij")
    torch.testing.assert_close(small, 1.5 + torch.cos(2 * torch.pi * (3 * xs + 2 * ys) / d))


def test_fourier_crop_rejects_upsampling():
    with pytest.raises(ValueError, match="larger"):
        ft.fourier_crop(torch.zeros(8, 8), 16)


def test_soft_mask_profile():
    m = ft.soft_circular_mask(64, radius=20, width=6)
    assert m[32, 32] == 1 and m[32, 32 + 20] == 1
    assert m[32, 32 + 26] == 0 and 0 < m[32, 32 + 23] < 1
    sphere = ft.soft_spherical_mask(32)
    assert sphere.shape == (32, 32, 32) and sphere[16, 16, 16] == 1 and sphere[0, 0, 0] == 0


@pytest.mark.parametrize("ndim", [2, 3])
def test_fourier_pad_is_undone_by_fourier_crop_and_keeps_the_density(ndim):
    X = ft.fft_center(torch.randn((3,) + (12,) * ndim, dtype=torch.float64), ndim)
    for axis in range(1, ndim + 1):
        X.select(axis, 0).zero_()  # no Nyquist content: cropping keeps only one of its two halves
    x = ft.ifft_center(X, ndim).real
    up = ft.fourier_pad(x, 20, ndim)
    assert up.shape == (3,) + (20,) * ndim
    assert torch.allclose(ft.fourier_crop(up, 12, ndim), x, atol=1e-10)
    assert torch.allclose(up.mean(dim=tuple(range(1, ndim + 1))), x.mean(dim=tuple(range(1, ndim + 1))))
    with pytest.raises(ValueError, match="fourier_crop"):
        ft.fourier_pad(x, 8, ndim)
