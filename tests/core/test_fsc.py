import numpy as np
import pytest
import torch

from cryonb.core.fsc import FSCCurve, fsc, plot_fsc
from cryonb.core.phantoms import hinge


def noise(D, seed):
    return torch.randn(D, D, D, generator=torch.Generator().manual_seed(seed))


def test_fsc_of_a_map_with_itself_is_one_in_every_shell():
    vol = hinge(32, 0.3).numpy()
    curve = fsc(vol, vol, apix=2.5)
    np.testing.assert_allclose(curve.values, 1.0, atol=1e-12)
    assert curve.resolution(0.143) == 5.0  # never crosses: Nyquist
    np.testing.assert_allclose(curve.frequencies, np.arange(17) / (32 * 2.5))


def test_fsc_of_independent_noise_is_zero_within_its_error():
    curve = fsc(noise(40, 1), noise(40, 2))
    assert len(curve.values) == 21
    assert np.all(np.abs(curve.values[1:]) < 3 / np.sqrt(curve.n_voxels[1:]))


def test_shells_count_every_voxel_up_to_nyquist():
    curve = fsc(noise(16, 1), noise(16, 2))
    r = torch.linalg.vector_norm(torch.stack(torch.meshgrid(*[torch.arange(16.0) - 8] * 3, indexing="ij")), dim=0)
    assert curve.n_voxels.sum() == int((torch.round(r) <= 8).sum())


def test_fsc_of_signal_plus_noise_matches_the_spectral_snr():
    # Equal signal and noise power in every shell: FSC = SNR / (1 + SNR) = 0.5.
    a, b, s = noise(48, 1), noise(48, 2), noise(48, 3)
    curve = fsc(s + a, s + b)
    assert np.all(np.abs(curve.values[3:] - 0.5) < 4 / np.sqrt(curve.n_voxels[3:]))


def test_soft_mask_and_array_mask_are_applied_to_both_maps():
    vol = hinge(32, 0.0)
    shifted = torch.roll(vol, 16, dims=0)
    assert fsc(vol, shifted).values[1] < 0.5
    box_mask = torch.zeros(32, 32, 32)
    box_mask[:, 8:24, 8:24] = 1
    masked = fsc(vol + noise(32, 1), vol + noise(32, 2), mask=box_mask)
    plain = fsc(vol + noise(32, 1), vol + noise(32, 2))
    assert masked.values[1:10].mean() > plain.values[1:10].mean()
    assert fsc(vol, vol, mask="soft").values == pytest.approx(1.0)


def test_resolution_interpolates_the_first_crossing():
    curve = FSCCurve(frequencies=np.array([0.0, 0.1, 0.2, 0.3]), values=np.array([1.0, 0.6, 0.2, 0.5]),
                     n_voxels=np.ones(4), apix=1.5)
    assert curve.resolution(0.5) == pytest.approx(1 / 0.125)
    assert curve.resolution(0.143) == 3.0  # 0.5 at the last shell does not count: never below
    assert FSCCurve(np.array([0.0, 0.1]), np.array([0.0, 0.0]), np.ones(2), 1.0).resolution() == float("inf")


def test_fsc_rejects_maps_of_different_shapes():
    with pytest.raises(ValueError, match="same shape"):
        fsc(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))


def test_plot_fsc_writes_a_png(tmp_path):
    vol = hinge(24, 0.0)
    a, b = fsc(vol, vol + noise(24, 1), apix=3.0), fsc(vol, vol + 3 * noise(24, 2), apix=3.0)
    fig = plot_fsc(a, b, labels=["low noise", "high noise"], path=tmp_path / "fsc.png")
    assert (tmp_path / "fsc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert {round(line.get_ydata()[0], 3) for line in ax.lines[2:]} == {0.143, 0.5}
    assert "low noise" in ax.get_legend().get_texts()[0].get_text()


def test_auc_is_half_for_identical_maps_and_small_for_noise():
    from cryonb.core.fsc import fsc

    rng = np.random.default_rng(5)
    a = rng.normal(size=(24, 24, 24))
    assert fsc(a, a, apix=3.0).auc() == pytest.approx(0.5)
    assert abs(fsc(a, rng.normal(size=a.shape), apix=3.0).auc()) < 0.05


def test_plot_fsc_shows_itself_in_a_notebook_without_pyplot():
    """03_curation's FSC plot never appeared: a Figure made without pyplot has no display of its own."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from IPython.core.formatters import DisplayFormatter\n"
        "from cryonb.core.fsc import fsc, plot_fsc\n"
        "a = np.random.default_rng(0).normal(size=(16, 16, 16))\n"
        "fig = plot_fsc(fsc(a, a + 0.5 * np.random.default_rng(1).normal(size=a.shape), apix=2.0))\n"
        "data, _ = DisplayFormatter().format(fig)\n"
        "assert data['image/png'][:8] == b'\\x89PNG\\r\\n\\x1a\\n', sorted(data)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
