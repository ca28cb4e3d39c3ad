import argparse
import re

import pytest

from cryonb.cli import backproject as command
from cryonb.core.errors import InputError
from cryonb.core.io.mrc import read_map
from cryonb.core.simulate import simulate


def run(*argv):
    parser = argparse.ArgumentParser()
    command.add_args(parser)
    return command.main(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("sim")
    sim = simulate("hinge", 600, D=24, snr=0.5, shift_sigma=1.0, progress=False)
    sim.save(outdir)
    return outdir


def test_backproject_writes_map_half_maps_fsc_plot_and_resolution(simulation, tmp_path, capsys):
    run(simulation / "particles.star", "-o", tmp_path / "map.mrc", "--reference", simulation / "volumes" / "state_00.mrc")
    out = capsys.readouterr().out
    for name in ("map.mrc", "map_half1.mrc", "map_half2.mrc", "map_fsc.png"):
        assert (tmp_path / name).is_file()
    volume, apix = read_map(tmp_path / "map.mrc")
    assert volume.shape == (24, 24, 24) and apix == pytest.approx(3.0)
    resolution = float(re.search(r"FSC 0\.143\): ([\d.]+) Å", out).group(1))
    assert 6.0 <= resolution < 30.0
    assert "against" in out and "lowest FSC up to 80% of Nyquist" in out


def test_backproject_without_ctf_or_half_maps(simulation, tmp_path, capsys):
    run(simulation / "particles.star", "-o", tmp_path / "plain.mrc", "--no-ctf", "--no-half-maps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mrc"]
    assert "resolution" not in capsys.readouterr().out


def test_backproject_needs_poses(real_data, tmp_path):
    with pytest.raises(InputError, match="poses"):
        run(real_data / "cryodrgn" / "empiar_10076_7.mrc", "-o", tmp_path / "map.mrc", "--apix", 1.31)
