"""An optics group's microscope values win over particle rows that repeat them, with a warning on conflict."""

import warnings

import numpy as np
import pytest

from cryonb.core.io.star import read_star

STAR = """# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnVoltage #2
_rlnSphericalAberration #3
_rlnAmplitudeContrast #4
_rlnImagePixelSize #5
_rlnImageSize #6
1 300.0 2.7 0.1 1.5 64

# version 30001

data_particles

loop_
_rlnImageName #1
_rlnOpticsGroup #2
_rlnDefocusU #3
_rlnDefocusV #4
_rlnDefocusAngle #5
_rlnSphericalAberration #6
1@stack.mrcs 1 10000 10000 0 {cs1}
2@stack.mrcs 1 12000 12000 0 {cs2}
"""


def read(tmp_path, cs1, cs2):
    path = tmp_path / "particles.star"
    path.write_text(STAR.format(cs1=cs1, cs2=cs2))
    return read_star(path)


def test_conflicting_particle_values_give_way_to_the_optics_group(tmp_path):
    with pytest.warns(UserWarning, match=r"_rlnSphericalAberration of 1 particle\(s\) differs.*0\.01 vs 2\.7.*optics group's"):
        star = read(tmp_path, 2.7, 0.01)
    np.testing.assert_allclose(star.table["rlnSphericalAberration"].astype(float), [2.7, 2.7])
    assert star.ctf is not None and np.allclose(star.ctf[:, 4], 2.7)  # columns: defocus U, V, angle, voltage, Cs, ...


def test_agreeing_values_are_silent(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        star = read(tmp_path, 2.7, 2.7)
    assert list(star.table.columns).count("rlnSphericalAberration") == 1
