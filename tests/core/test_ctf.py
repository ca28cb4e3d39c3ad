import math

import pytest
import torch

from cryonb.core import ctf as C


def test_electron_wavelength_known_values():
    # Standard tabulated relativistic wavelengths.
    assert C.electron_wavelength(300.0) == pytest.approx(0.019687, abs=2e-6)
    assert C.electron_wavelength(200.0) == pytest.approx(0.025079, abs=2e-6)


def radial_ctf(defocus, angle_deg=0.0, astig_angle=0.0, dfv=None, **kw):
    s = torch.linspace(0, 0.5, 20001, dtype=torch.float64)
    a = math.radians(angle_deg)
    freqs = torch.stack([s * math.cos(a), s * math.sin(a)], -1)
    params = dict(voltage=300.0, cs=2.7, amplitude_contrast=0.1, phase_shift=0.0, bfactor=0.0)
    params.update(kw)
    return s, C.compute_ctf(freqs, defocus, defocus if dfv is None else dfv, astig_angle, **params)


def first_crossing(s, c):
    i = int(torch.nonzero(torch.sign(c[1:]) != torch.sign(c[:-1]))[0])
    return float(s[i] - c[i] * (s[i + 1] - s[i]) / (c[i + 1] - c[i]))


def test_first_zero_matches_pure_defocus_closed_form():
    # Cs = 0, w = 0: CTF = sin(-π Δf λ s²), zeros at s = sqrt(n / (Δf λ)).
    df = 15000.0
    s, c = radial_ctf(df, cs=0.0, amplitude_contrast=0.0)
    expected = math.sqrt(1 / (df * C.electron_wavelength(300.0)))
    assert first_crossing(s[1:], c[1:]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("df,w", [(10000.0, 0.1), (25000.0, 0.07), (5000.0, 0.0), (1000.0, 0.1), (300.0, 0.07)])
def test_first_zero_with_cs_and_amplitude_contrast(df, w):
    s, c = radial_ctf(df, amplitude_contrast=w)
    start = 1 if w == 0 else 0
    assert first_crossing(s[start:], c[start:]) == pytest.approx(C.first_zero(df, 300.0, 2.7, w), rel=1e-4)


def test_astigmatism_follows_defocus_angle():
    # Along the defocus-U direction the CTF is that of defocus U; perpendicular, of defocus V.
    s, along = radial_ctf(20000.0, angle_deg=30.0, astig_angle=30.0, dfv=12000.0)
    _, iso_u = radial_ctf(20000.0)
    torch.testing.assert_close(along, iso_u)
    _, across = radial_ctf(20000.0, angle_deg=120.0, astig_angle=30.0, dfv=12000.0)
    _, iso_v = radial_ctf(12000.0)
    torch.testing.assert_close(across, iso_v)


def test_dc_value_phase_shift_and_bfactor():
    s, c = radial_ctf(10000.0, amplitude_contrast=0.1)
    assert float(c[0]) == pytest.approx(-0.1)
    _, flipped = radial_ctf(10000.0, phase_shift=90.0, amplitude_contrast=0.0)
    # A 90° phase plate gives full contrast at s = 0, with the sign of amplitude contrast (-w).
    assert float(flipped[0]) == pytest.approx(-1.0)
    _, damped = radial_ctf(10000.0, bfactor=100.0)
    torch.testing.assert_close(damped, c * torch.exp(-100.0 / 4 * s**2))


def test_ctf_images_layout_and_batching():
    params = torch.tensor([[15000, 15000, 0, 300, 2.7, 0.1, 0, 0], [20000, 18000, 45, 200, 2.0, 0.07, 0, 50]])
    img = C.ctf_images(params, 32, 2.0)
    assert img.shape == (2, 32, 32)
    assert img[0, 16, 16] == pytest.approx(-0.1, abs=1e-6) and img[1, 16, 16] == pytest.approx(-0.07, abs=1e-6)
    # Friedel symmetric: CTF(k) = CTF(-k).
    torch.testing.assert_close(img[:, 1:, 1:], img[:, 1:, 1:].flip(-1, -2))
