import argparse
import re

import numpy as np
import pytest

from cryonb.cli import fsc as command
from cryonb.core.errors import InputError
from cryonb.core.io.mrc import write_map
from cryonb.core.phantoms import hinge


def run(*argv):
    parser = argparse.ArgumentParser()
    command.add_args(parser)
    return command.main(parser.parse_args([str(a) for a in argv]))


@pytest.fixture
def maps(tmp_path):
    rng = np.random.default_rng(0)
    vol = hinge(32, 0.0).numpy()
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"half{i + 1}.mrc")
        write_map(paths[-1], vol + 0.02 * rng.standard_normal(vol.shape).astype(np.float32), 2.0)
    return paths


def test_fsc_prints_both_resolutions_and_plots(maps, tmp_path, capsys):
    run(*maps, "--mask", "--plot", tmp_path / "fsc.png")
    out = capsys.readouterr().out
    at_0143 = float(re.search(r"FSC 0\.143: ([\d.]+) Å", out).group(1))
    at_05 = float(re.search(r"FSC 0\.5: +([\d.]+) Å", out).group(1))
    assert 4.0 <= at_0143 < at_05 < 20.0
    assert (tmp_path / "fsc.png").read_bytes()[:4] == b"\x89PNG"


def test_fsc_with_a_mask_map_and_mismatched_boxes(maps, tmp_path, capsys):
    write_map(tmp_path / "mask.mrc", np.ones((32, 32, 32), np.float32), 2.0)
    run(*maps, "--mask", tmp_path / "mask.mrc")
    assert "FSC 0.143" in capsys.readouterr().out
    write_map(tmp_path / "small.mrc", np.ones((16, 16, 16), np.float32), 2.0)
    with pytest.raises(InputError, match="does not match"):
        run(maps[0], tmp_path / "small.mrc")


def test_fsc_takes_a_given_pixel_size_over_the_header_and_refuses_zero(maps, capsys):
    run(*maps, "--apix", "4.0")  # twice the header's 2 Å: every resolution doubles
    at_given = float(re.search(r"FSC 0\.143: ([\d.]+) Å", capsys.readouterr().out).group(1))
    run(*maps)
    at_header = float(re.search(r"FSC 0\.143: ([\d.]+) Å", capsys.readouterr().out).group(1))
    assert at_given == pytest.approx(2 * at_header, rel=0.02)
    with pytest.raises(InputError, match="--apix 0.0 is not a pixel size"):
        run(*maps, "--apix", "0")
