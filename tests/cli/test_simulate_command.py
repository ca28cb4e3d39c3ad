import argparse

import mrcfile
import numpy as np
import pytest

from cryonb.cli import simulate as command
from cryonb.core.errors import InputError
from cryonb.core.particles import load_particles


def run(*argv):
    parser = argparse.ArgumentParser()
    command.add_args(parser)
    return command.main(parser.parse_args([str(a) for a in argv]))


def test_simulate_writes_particles_volumes_and_truth(tmp_path, capsys):
    run("--model", "mixture", "--n", 30, "--box", 16, "--proportions", 1, 1, 4, "--seed", 2, "--outdir", tmp_path)
    out = capsys.readouterr().out
    assert "small 5, large 5, complex 20" in out
    particles = load_particles(tmp_path / "particles.star")
    assert len(particles) == 30 and particles.box_size == 16 and particles.apix == 3.0
    assert sorted(p.name for p in (tmp_path / "volumes").iterdir()) == ["complex.mrc", "large.mrc", "small.mrc"]
    truth = np.load(tmp_path / "truth.npz")
    np.testing.assert_array_equal(np.bincount(truth["state"]), [5, 5, 20])
    mean_defocus = particles.ctf[:, :2].mean(1)
    assert 10_000 <= mean_defocus.min() and mean_defocus.max() <= 25_000  # 1.0-2.5 µm


def test_a_map_is_fourier_cropped_to_the_requested_box(real_data, tmp_path):
    run("--model", real_data / "sfftk" / "emd_5625.map", "--n", 5, "--box", 28, "--snr", "inf", "--outdir", tmp_path)
    with mrcfile.open(tmp_path / "volumes" / "state_00.mrc") as mrc:
        assert mrc.data.shape == (28, 28, 28)
        assert float(mrc.voxel_size.x) == pytest.approx(4.23 * 2)
    assert load_particles(tmp_path / "particles.star").apix == pytest.approx(8.46)


def test_a_map_without_pixel_size_needs_apix(real_data, tmp_path):
    with pytest.raises(InputError, match="--apix"):
        run("--model", real_data / "aspire" / "clean70SRibosome_vol_65p.mrc", "--n", 5, "--outdir", tmp_path)
    with pytest.raises(InputError, match="larger than the map's box"):
        run("--model", real_data / "sfftk" / "emd_5625.map", "--box", 64, "--n", 5, "--outdir", tmp_path)
