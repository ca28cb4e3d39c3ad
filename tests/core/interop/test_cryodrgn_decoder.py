"""cryonb's rebuild of cryoDRGN's decoders gives the maps cryodrgn eval_vol (4.3.1) wrote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryonb.core.interop import CryodrgnDecoder, open_cryodrgn_run
from cryonb.core.fourier import fft3_center
from cryonb.core.interop.cryodrgn_decoder import CoordinateEncoding, geometric_frequencies
from cryonb.core.io.mrc import read_map

from conftest import ALL_RUNS


def _maps_and_oracle(run_dir):
    run = open_cryodrgn_run(run_dir, apix=1.0, device="cpu")
    z = np.loadtxt(run_dir / "zvalues.txt", ndmin=2).astype(np.float32)
    first = 0 if (run_dir / "evalvol" / "vol_000.mrc").exists() else 1  # cryoDRGN 3 numbers maps from 0, 4 from 1
    oracle = [read_map(run_dir / "evalvol" / f"vol_{i + first:03d}.mrc")[0] for i in range(len(z))]
    return run, z, run.volumes(z), np.stack(oracle)


@pytest.mark.parametrize("name", ALL_RUNS)
def test_maps_equal_those_of_cryodrgn_eval_vol(cryodrgn_run, name):
    run, z, maps, oracle = _maps_and_oracle(cryodrgn_run(name))
    assert maps.shape == oracle.shape == (len(z), run.box_size, run.box_size, run.box_size)
    for mine, theirs in zip(maps, oracle):
        assert np.corrcoef(mine.ravel(), theirs.ravel())[0, 1] >= 0.999
        assert np.abs(mine - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_the_map_of_a_homogeneous_train_nn_run_equals_the_one_it_wrote(cryodrgn_run):
    run_dir = cryodrgn_run("box8_train_nn")
    run = open_cryodrgn_run(run_dir, apix=12.0, device="cpu")
    assert run.z is None and run.zdim == 0 and run.config.command == "train_nn"
    theirs, apix = read_map(run_dir / "reconstruct.2.mrc")
    mine = run.volumes()[0]
    assert apix == pytest.approx(12.0) and mine.shape == theirs.shape == (8, 8, 8)
    assert np.abs(mine - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_maps_of_several_latents_at_once_equal_one_at_a_time_and_any_chunk(cryodrgn_run):
    run_dir = cryodrgn_run("vae_gaussian_fourier")
    run, z, maps, _ = _maps_and_oracle(run_dir)
    one_by_one = np.stack([run.volumes(zz)[0] for zz in z])
    np.testing.assert_allclose(maps, one_by_one, atol=1e-6 * np.abs(maps).max())
    chunked = run.model.decoder.volumes(torch.from_numpy(z), points_per_chunk=1).numpy()
    np.testing.assert_allclose(maps, chunked, atol=1e-6 * np.abs(maps).max())


@pytest.mark.parametrize("name", ["vae_gaussian_fourier", "box8_geom_lowf_hartley", "box8_none_fourier", "abinit"])
def test_forward_gives_the_transform_of_the_maps(cryodrgn_run, name):
    # like FourierDecoder: the centred transform of volumes(z) is forward(k, z) on the grid, inside Nyquist
    run = open_cryodrgn_run(cryodrgn_run(name), apix=1.0, device="cpu")
    decoder, D = run.model.decoder, run.box_size
    z = torch.from_numpy(run.z[:2])
    k = torch.arange(D, dtype=torch.float32) - D // 2
    grid = torch.stack(torch.meshgrid(k, k, k, indexing="ij")[::-1], dim=-1).reshape(-1, 3)  # (kx, ky, kz), [z, y, x]
    keep = (grid.norm(dim=-1) < (decoder.mask_radius - 1 if name == "abinit" else D // 2)) & (grid[:, 0] != 0 if name == "abinit" else True)
    keep &= (grid > -(D // 2)).all(-1)
    transform = fft3_center(decoder.volumes(z)).reshape(2, -1)[:, keep]
    values = decoder(grid[keep][None].expand(2, -1, -1), z)
    torch.testing.assert_close(values, transform, atol=1e-4 * transform.abs().max().item(), rtol=0)


def test_the_decoder_has_the_interface_run_uses(cryodrgn_run):
    run = open_cryodrgn_run(cryodrgn_run("box8_geom_lowf_hartley"), apix=1.0, device="cpu")
    decoder = run.model.decoder
    assert (decoder.D, decoder.zdim, run.box_size, run.zdim) == (8, 2, 8, 2)
    assert decoder.volumes(torch.zeros(3, 2)).shape == (3, 8, 8, 8)
    assert run.scale == 1.0


def test_geometric_frequencies_span_cryodrgns_ranges():
    # lattice of 17 points: h = 8, DD = 16
    np.testing.assert_allclose(geometric_frequencies("geom_ft", 8, 17)[[0, -1]], [16 * np.pi, 2 * np.pi], rtol=1e-6)
    np.testing.assert_allclose(geometric_frequencies("geom_full", 8, 17)[[0, -1]], [16 * np.pi, 1.0], rtol=1e-6)
    np.testing.assert_allclose(geometric_frequencies("geom_lowf", 8, 17)[[0, -1]], [8.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(geometric_frequencies("geom_nohighf", 8, 17)[[0, -1]], [8.0, 2 * np.pi], rtol=1e-6)


def test_geometric_features_are_sin_then_cos_per_axis():
    encoding = CoordinateEncoding("geom_lowf", 2, 9)  # frequencies 4 and 1
    features = encoding(torch.tensor([[0.1, 0.2, 0.3]]))[0]
    x = torch.tensor([0.1 * 4, 0.1, 0.2 * 4, 0.2, 0.3 * 4, 0.3])
    expected = torch.cat([torch.stack([x[2 * i : 2 * i + 2].sin(), x[2 * i : 2 * i + 2].cos()]).flatten() for i in range(3)])
    torch.testing.assert_close(features, expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoding="fourier_features"), "positional encoding"),
    (dict(domain="real"), "domain"),
    (dict(activation="gelu"), "activation"),
    (dict(encoding="linear_lowf", n_freqs=3), "linear_lowf"),
])
def test_unknown_architectures_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CryodrgnDecoder(17, 2, 1, 8, **kwargs)
